# Images for the two services, built by docker-compose.yml:
#   docker build --target consumer -t hookline-consumer .
#   docker build --target helpdesk -t hookline-helpdesk .
# Both binaries are pure Rust (no libpq, no OpenSSL): the runtime images are
# debian-slim plus CA certificates and the binary. Each binary checks its own
# health with `<binary> healthcheck` (docker-compose.yml's healthchecks), so
# no curl.
#
# The base images are build arguments whose defaults are the official ones.
# Without a registry, scripts/compose_images.sh builds local stand-ins and
# prints the arguments that select them.
#
# Works with BuildKit and with the legacy builder alike (docker-compose v1
# and `docker build` without buildx use the latter), so no `# syntax=` line
# and no cache mounts: dependencies are cached in an ordinary layer instead.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---- recipe: what decides the dependency graph ---------------------------------
# The manifests and the lock file, each crate's sources replaced by empty
# targets. The result changes only when a manifest does, so the layer that
# builds the dependencies from it is reused across source changes.
FROM ${RUST_IMAGE} AS recipe
WORKDIR /src
COPY . .
RUN mkdir /recipe \
    && find . \( -name Cargo.toml -o -name Cargo.lock \) -exec cp --parents {} /recipe \; \
    && cd /recipe \
    && for crate in crates/*/; do \
        mkdir -p "$crate/src" \
        && printf 'fn main() {}\n' >"$crate/src/main.rs" \
        && : >"$crate/src/lib.rs"; \
    done

# ---- build ------------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src
# No debug info in the images' binaries (the workspace profile keeps line
# tables for profiling): a third of the size. Symbols stay, for backtraces.
ENV CARGO_PROFILE_RELEASE_DEBUG=false
COPY --from=recipe /recipe ./
RUN cargo build --release --locked -p hookline-consumer -p hookline-helpdesk
COPY . .
# The real sources may be older than the empty targets built above; touch
# them so cargo sees that our crates changed (it compares modification times).
RUN find crates -name '*.rs' -exec touch {} + \
    && cargo build --release --locked --bin consumer --bin helpdesk \
    && mkdir -p /out \
    && cp target/release/consumer target/release/helpdesk /out/

# ---- runtime base -------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
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
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=10 CMD ["consumer", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/consumer"]

# ---- helpdesk -----------------------------------------------------------------
FROM runtime AS helpdesk
COPY --from=build /out/helpdesk /usr/local/bin/helpdesk
ENV HELPDESK_LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=10 CMD ["helpdesk", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/helpdesk"]
