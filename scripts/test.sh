#!/usr/bin/env bash
# Run the whole test suite against real PostgreSQL and Redis.
#
# Usage: scripts/test.sh [cargo test args...]
#   e.g. scripts/test.sh -p consumer
#        scripts/test.sh -- --nocapture webhook
#
# Unless DATABASE_URL / REDIS_URL are already set, it starts a throwaway
# PostgreSQL and redis-server on free ports under a temp dir, exports
#   DATABASE_URL=postgres://postgres@127.0.0.1:PORT/postgres   (admin URL:
#                tests create and drop one database each)
#   REDIS_URL=redis://127.0.0.1:PORT                           (tests use
#                their own key prefix)
# runs `cargo test --workspace "$@"` from the repo root, and stops both
# servers and removes the temp dir whatever happens (failure, Ctrl-C).
# Exits with cargo's exit code.
#
# Environment:
#   DATABASE_URL, REDIS_URL   use these servers instead of throwaway ones
#   CARGO                     cargo command (default: cargo)
#   TEST_LOG                  set to see the services' logs in tests
#   KEEP_TEMP=1               keep the temp dir (server logs) for debugging
#   PG_BINDIR, START_TIMEOUT, STOP_TIMEOUT: see scripts/lib.sh
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
case "${1:-}" in
-h | --help)
    usage
    exit 0
    ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
cd "$here/.."

CARGO=${CARGO:-cargo}
need_cmd "${CARGO%% *}" "Install Rust: https://rustup.rs"
install_cleanup

tmp=""
if [[ -z "${DATABASE_URL:-}" || -z "${REDIS_URL:-}" ]]; then
    tmp=$(make_temp_dir hookline-test)
    track_dir "$tmp"
fi

if [[ -z "${DATABASE_URL:-}" ]]; then
    pg_port=$(free_port)
    start_postgres "$tmp/pg" "$pg_port"
    export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
    say "PostgreSQL $("$HL_PG_BINDIR/postgres" -V | awk '{print $3}') on 127.0.0.1:$pg_port (pid $HL_PG_PID, log $HL_PG_LOG)"
else
    say "PostgreSQL: using DATABASE_URL from the environment"
fi

if [[ -z "${REDIS_URL:-}" ]]; then
    redis_port=$(free_port)
    start_redis "$tmp/redis" "$redis_port"
    export REDIS_URL="redis://127.0.0.1:$redis_port"
    say "Redis on 127.0.0.1:$redis_port (pid $HL_REDIS_PID, log $tmp/redis/redis.log)"
else
    say "Redis: using REDIS_URL from the environment"
fi

say "==> $CARGO test --workspace${*:+ $*}"
started=$(now_ms)
rc=0
# shellcheck disable=SC2086 # CARGO may carry arguments, e.g. "cargo +nightly"
$CARGO test --workspace "$@" || rc=$?
if ((rc == 0)); then
    say "==> tests passed in $(since "$started")"
else
    say "==> tests FAILED (exit $rc) after $(since "$started")"
fi
exit "$rc"
