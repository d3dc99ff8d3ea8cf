# syntax=docker/dockerfile:1

# Images for the two services, built by docker-compose.yml:
#   docker build --target consumer -t hookline-consumer .
#   docker build --target helpdesk -t hookline-helpdesk .
# Both binaries are pure Rust (no libpq, no OpenSSL): the runtime images are
# debian-slim plus CA certificates. Each binary checks its own health with
# `<binary> healthcheck` (docker-compose.yml's healthchecks), so no curl.

# ---- build ------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target dir are BuildKit cache mounts: rebuilds after a
# source change recompile only our crates. A cache mount is not part of the
# image, so the binaries are copied out of it into /out.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin consumer --bin helpdesk \
    && mkdir -p /out \
    && cp target/release/consumer target/release/helpdesk /out/

# ---- runtime base -------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 hookline \
    && useradd --system --uid 10001 --gid hookline --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin hookline
USER 10001:10001
ENV RUST_LOG=info

# ---- consumer -----------------------------------------------------------------
FROM runtime AS consumer
COPY --from=build /out/consumer /usr/local/bin/consumer
ENV CONSUMER_LISTEN=0.0.0.0:3333
EXPOSE 3333
ENTRYPOINT ["/usr/local/bin/consumer"]

# ---- helpdesk -----------------------------------------------------------------
FROM runtime AS helpdesk
COPY --from=build /out/helpdesk /usr/local/bin/helpdesk
ENV HELPDESK_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/helpdesk"]
