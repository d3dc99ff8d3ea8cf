#!/usr/bin/env bash
# Schema-driven API fuzzing: schemathesis (from PyPI) reads each service's
# /openapi.json and throws generated requests at the running service, failing
# on any 5xx and on any response that contradicts the published schema
# (status code, content type, headers, body).
#
# Usage: scripts/api_fuzz.sh
#   Starts a throwaway PostgreSQL and Redis (like scripts/test.sh), builds and
#   starts both services on free ports, fuzzes each, stops everything.
#
# Environment:
#   MAX_EXAMPLES           generated cases per operation              [30]
#   SCHEMATHESIS_VERSION   the pinned version                         [4.32.5]
#   SCHEMATHESIS_VENV      where it is installed (reused across runs) [~/.cache/hookline-schemathesis]
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

MAX_EXAMPLES=${MAX_EXAMPLES:-30}
SCHEMATHESIS_VERSION=${SCHEMATHESIS_VERSION:-4.32.5}
SCHEMATHESIS_VENV=${SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hookline-schemathesis}
need_cmd python3 "apt-get install python3 python3-venv"
need_cmd cargo "Install Rust: https://rustup.rs"
install_cleanup

st=$SCHEMATHESIS_VENV/bin/schemathesis
if ! "$st" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
    say "==> installing schemathesis $SCHEMATHESIS_VERSION into $SCHEMATHESIS_VENV"
    python3 -m venv "$SCHEMATHESIS_VENV" || die "python3 -m venv failed: apt-get install python3-venv"
    "$SCHEMATHESIS_VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

say "==> cargo build --bin consumer --bin helpdesk"
cargo build --quiet --bin consumer --bin helpdesk
bin=${CARGO_TARGET_DIR:-target}/debug

tmp=$(make_temp_dir hookline-api-fuzz)
track_dir "$tmp"
pg_port=$(free_port)
start_postgres "$tmp/pg" "$pg_port"
redis_port=$(free_port)
start_redis "$tmp/redis" "$redis_port"

secret=whsec_c2NoZW1hdGhlc2lzLXNlY3JldC1mb3ItZnV6emluZw==
helpdesk_port=$(free_port)
start_bg helpdesk "$tmp/helpdesk.log" env \
    REDIS_URL="redis://127.0.0.1:$redis_port" HELPDESK_LISTEN="127.0.0.1:$helpdesk_port" \
    REVIEW_DELAY_MS=0-200 RETRY_SCHEDULE=100ms WEBHOOK_SECRET="$secret" "$bin/helpdesk"
helpdesk_pid=$HL_BG_PID
consumer_port=$(free_port)
start_bg consumer "$tmp/consumer.log" env \
    DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres" CONSUMER_LISTEN="127.0.0.1:$consumer_port" \
    HELPDESK_URL="http://127.0.0.1:$helpdesk_port" WEBHOOK_SECRET="$secret" "$bin/consumer"
consumer_pid=$HL_BG_PID

# shellcheck disable=SC2317 # called through wait_ready
ready() { [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1")" == 200 ]]; }
wait_ready helpdesk 60 "$helpdesk_pid" "$tmp/helpdesk.log" ready "http://127.0.0.1:$helpdesk_port/readyz"
wait_ready consumer 60 "$consumer_pid" "$tmp/consumer.log" ready "http://127.0.0.1:$consumer_port/readyz"

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
rc=0
for target in "consumer $consumer_port" "helpdesk $helpdesk_port"; do
    read -r name port <<<"$target"
    # /events (the consumer's) is an endless server-sent event stream:
    # nothing to fuzz there.
    skip=()
    [[ "$name" == consumer ]] && skip=(--exclude-path /events)
    say "==> schemathesis: $name (http://127.0.0.1:$port/openapi.json)"
    # Run from the temp dir: schemathesis keeps a .schemathesis/ cache in its cwd.
    # An endpoint in a path (/endpoints/{endpoint}) is a URL, so most strings
    # generated for it are dropped as unusable in a path; the health check that
    # counts the drops would stop the run, so it is off (the rest still run).
    (cd "$tmp" && "$st" run "http://127.0.0.1:$port/openapi.json" \
        --checks "$checks" \
        --max-examples "$MAX_EXAMPLES" \
        --suppress-health-check=filter_too_much \
        "${skip[@]}" \
        --request-timeout 10 \
        --seed 1) || rc=$?
done
if ((rc != 0)); then
    show_log_tail "$tmp/consumer.log"
    show_log_tail "$tmp/helpdesk.log"
    say "==> API fuzzing found problems (exit $rc)"
else
    say "==> API fuzzing: no 5xx, no response contradicting the schema"
fi
exit "$rc"
