#!/usr/bin/env bash
# Local stand-ins for the base images of Dockerfile and docker-compose.yml,
# for a Docker engine that cannot pull from a registry. Built from Debian
# bookworm packages with mmdebstrap and `docker import`ed:
#
#   RUNTIME_IMAGE   debian:bookworm-slim's place: a minbase tree without docs
#   RUST_IMAGE      rust:1-bookworm's place: gcc, libc6-dev, make, pkg-config
#                   and THIS machine's Rust toolchain (`rustc --print sysroot`)
#   POSTGRES_IMAGE  postgres:16's place: Debian's postgresql-15, with an
#                   entrypoint that honours POSTGRES_USER/PASSWORD/DB and PGDATA
#                   (scripts/standin/postgres-entrypoint.sh)
#   REDIS_IMAGE     redis:7's place: Debian's redis-server 7.0, whose entrypoint
#                   runs the compose command line (scripts/standin/redis-entrypoint.sh)
#   PROMETHEUS_IMAGE  prom/prometheus's place (docker-compose.yml's `monitoring`
#                   profile): Debian's prometheus 2.42, run as the official
#                   image runs it (nobody, data in /prometheus)
#
# They are named hookline-standin/<name>:<recipe hash>, never with an official
# image's name; an image already present is reused. On stdout it prints only
# KEY=value lines that point the Dockerfile's build arguments and the compose
# file's image variables at them, so any script can run the README's command:
#
#   export $(scripts/compose_images.sh)
#   docker compose up --build          # or docker-compose, v1
#
# The Rust stand-in also trusts what this machine trusts (HOST_CA_BUNDLE):
# where outgoing HTTPS passes an intercepting proxy, as on hookline's CI, that
# is what lets `cargo build` inside the image reach crates.io.
#
# Usage: scripts/compose_images.sh [--rebuild]
#   --rebuild   build every stand-in again even if an image with its tag exists
#
# Needs: a running Docker engine, mmdebstrap (installed with apt-get when
# missing and run as root), network access to the Debian mirror.
#
# Environment:
#   DEBIAN_MIRROR            [http://deb.debian.org/debian]
#   DEBIAN_SECURITY_MIRROR   [http://deb.debian.org/debian-security]
#   HOST_CA_BUNDLE           CA bundle copied into the Rust stand-in
#                            [/etc/ssl/certs/ca-certificates.crt; empty: Debian's own]
#   STANDIN_PREFIX           image name prefix [hookline-standin]
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

rebuild=""
for arg in "$@"; do
    case "$arg" in
    --rebuild) rebuild=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        printf 'error: unknown argument: %s (see %s --help)\n' "$arg" "$0" >&2
        exit 2
        ;;
    esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

: "${DEBIAN_MIRROR:=http://deb.debian.org/debian}"
: "${DEBIAN_SECURITY_MIRROR:=http://deb.debian.org/debian-security}"
HOST_CA_BUNDLE=${HOST_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}
: "${STANDIN_PREFIX:=hookline-standin}"

need_cmd docker "Install Docker (apt-get install docker.io) and start its engine"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (docker info failed): is it running, and may this user use it?"
if ! command -v mmdebstrap >/dev/null 2>&1; then
    if is_root && command -v apt-get >/dev/null 2>&1; then
        say "installing mmdebstrap"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >&2 ||
            { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >&2; }
    fi
    need_cmd mmdebstrap "Install it: apt-get install mmdebstrap"
fi

# What the images are made of; a change to any of it makes new tags.
recipe_hash() {
    cat "${BASH_SOURCE[0]}" "$here"/standin/* "$@" | sha256sum | cut -c1-12
}

sysroot=$(rustc --print sysroot 2>/dev/null) || die "rustc not found: the Rust stand-in carries this machine's toolchain"
[[ -x "$sysroot/bin/cargo" ]] ||
    die "no cargo in $sysroot/bin: the Rust stand-in needs a toolchain with cargo beside rustc (rustup installs one)"
if [[ -n "$HOST_CA_BUNDLE" && ! -r "$HOST_CA_BUNDLE" ]]; then
    die "HOST_CA_BUNDLE=$HOST_CA_BUNDLE is not readable (set it empty to keep Debian's CA bundle)"
fi

install_cleanup
logs=$(make_temp_dir hookline-standin)
track_dir "$logs"

base_tag=$(recipe_hash)
rust_tag=$(recipe_hash <(rustc -vV) <(cargo -V) ${HOST_CA_BUNDLE:+"$HOST_CA_BUNDLE"})
rust_version=$(rustc -V | awk '{print $2}')

# Package lists from the three suites a Debian image has; dpkg skips the
# documentation, manuals and translations, as debian:bookworm-slim does.
mmdebstrap_common=(
    --variant=minbase
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
    --format=tar
    --aptopt='Acquire::Retries "3"'
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-exclude=/usr/share/lintian/*'
)
suites=(
    "deb $DEBIAN_MIRROR bookworm main"
    "deb $DEBIAN_MIRROR bookworm-updates main"
    "deb $DEBIAN_SECURITY_MIRROR bookworm-security main"
)
base_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# mmdebstrap runs each hook in a shell with the tree's path as $1: the
# single quotes below keep "$1" for that shell.
# shellcheck disable=SC2016
apt_docker_config=(
    --customize-hook="upload $here/standin/apt-docker.conf /etc/apt/apt.conf.d/docker-clean"
    --customize-hook='rm -f "$1"/var/cache/apt/*.bin'
)

# standin KEY NAME TAG [mmdebstrap args...] -- [docker import --change args...]
# Reuses PREFIX/NAME:TAG when present, else builds it; prints KEY=value.
built=()
standin() {
    local key=$1 name=$2 tag=$3 image started
    shift 3
    local mm=() changes=()
    while (($#)) && [[ "$1" != -- ]]; do
        mm+=("$1")
        shift
    done
    shift
    changes=("$@")
    image=$STANDIN_PREFIX/$name:$tag
    if [[ -z "$rebuild" ]] && docker image inspect "$image" >/dev/null 2>&1; then
        say "$image: present, reused"
    else
        say "$image: building (mmdebstrap bookworm | docker import)"
        started=$(now_ms)
        # `docker import --change` takes most instructions, not STOPSIGNAL:
        # that one goes into a one-line build on top of the imported tree.
        local change_args=() later=() c
        for c in "${changes[@]}" \
            "LABEL org.opencontainers.image.description=\"hookline stand-in for $name, built by scripts/compose_images.sh\"" \
            "LABEL dev.hookline.standin=$name"; do
            case "$c" in
            STOPSIGNAL\ *) later+=("$c") ;;
            *) change_args+=(--change "$c") ;;
            esac
        done
        local log=$logs/$name.log
        mmdebstrap "${mmdebstrap_common[@]}" "${mm[@]}" "${apt_docker_config[@]}" bookworm - "${suites[@]}" 2>"$log" |
            docker import "${change_args[@]}" - "$image" >/dev/null || {
            show_log_tail "$log"
            die "building $image failed (mmdebstrap's log above)"
        }
        if ((${#later[@]})); then
            { printf 'FROM %s\n' "$image" && printf '%s\n' "${later[@]}"; } |
                docker build -q -t "$image" - >/dev/null 2>&1 ||
                die "cannot add ${later[*]} to $image"
        fi
        say "$image: built in $(since "$started"), $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')"
        built+=("$image")
    fi
    printf '%s=%s\n' "$key" "$image"
}

standin RUNTIME_IMAGE debian "bookworm-$base_tag" \
    -- \
    "ENV PATH=$base_path" \
    'CMD ["bash"]'

# The toolchain goes to /usr/local/rust (rustc finds its libraries next to
# itself); CARGO_HOME and PATH are the official image's.
rust_hooks=(
    --customize-hook="mkdir -p \"\$1/usr/local/rust\" \"\$1/usr/local/cargo/bin\" && tar -C '$sysroot' -c bin lib libexec etc | tar -C \"\$1/usr/local/rust\" -x && chmod -R a+w \"\$1/usr/local/cargo\""
)
if [[ -n "$HOST_CA_BUNDLE" ]]; then
    rust_hooks+=(--customize-hook="upload $HOST_CA_BUNDLE /etc/ssl/certs/ca-certificates.crt")
fi
standin RUST_IMAGE rust "$rust_version-bookworm-$rust_tag" \
    --include=ca-certificates,gcc,libc6-dev,make,pkg-config "${rust_hooks[@]}" \
    -- \
    "ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:$base_path" \
    'ENV CARGO_HOME=/usr/local/cargo' \
    "ENV RUST_VERSION=$rust_version" \
    'CMD ["bash"]'

# No cluster is made when the package is installed: the entrypoint makes one
# in PGDATA on the first start, as the official image does.
# shellcheck disable=SC2016 # "$1" is for mmdebstrap's hook shell
standin POSTGRES_IMAGE postgres "15-bookworm-$base_tag" \
    --include=postgresql-15 \
    --essential-hook='mkdir -p "$1/etc/postgresql-common/createcluster.d" && echo "create_main_cluster = false" >"$1/etc/postgresql-common/createcluster.d/hookline.conf"' \
    --customize-hook="upload $here/standin/postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh" \
    --customize-hook='chmod 755 "$1/usr/local/bin/docker-entrypoint.sh" && mkdir -p "$1/var/lib/postgresql/data" "$1/var/run/postgresql" "$1/docker-entrypoint-initdb.d" && chroot "$1" chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql' \
    -- \
    "ENV PATH=/usr/lib/postgresql/15/bin:$base_path" \
    'ENV PGDATA=/var/lib/postgresql/data' \
    'ENV LANG=C.UTF-8' \
    'VOLUME /var/lib/postgresql/data' \
    'EXPOSE 5432' \
    'STOPSIGNAL SIGINT' \
    'ENTRYPOINT ["docker-entrypoint.sh"]' \
    'CMD ["postgres"]'

# shellcheck disable=SC2016 # "$1" is for mmdebstrap's hook shell
standin REDIS_IMAGE redis "7-bookworm-$base_tag" \
    --include=redis-server \
    --customize-hook="upload $here/standin/redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh" \
    --customize-hook='chmod 755 "$1/usr/local/bin/docker-entrypoint.sh" && mkdir -p "$1/data" && chroot "$1" chown redis:redis /data' \
    -- \
    "ENV PATH=$base_path" \
    'WORKDIR /data' \
    'VOLUME /data' \
    'EXPOSE 6379' \
    'ENTRYPOINT ["docker-entrypoint.sh"]' \
    'CMD ["redis-server"]'

# The package's own user and service are unused: the image runs prometheus
# as nobody on /prometheus, with the command line compose gives it.
# shellcheck disable=SC2016 # "$1" is for mmdebstrap's hook shell
standin PROMETHEUS_IMAGE prometheus "2-bookworm-$base_tag" \
    --include=prometheus \
    --customize-hook='mkdir -p "$1/prometheus" "$1/etc/prometheus" && chroot "$1" chown nobody:nogroup /prometheus' \
    -- \
    "ENV PATH=$base_path" \
    'USER nobody' \
    'WORKDIR /prometheus' \
    'VOLUME /prometheus' \
    'EXPOSE 9090' \
    'ENTRYPOINT ["/usr/bin/prometheus"]' \
    'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]'

if ((${#built[@]} == 0)); then
    say "every stand-in was already present"
fi
