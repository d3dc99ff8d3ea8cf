#!/usr/bin/env bash
# Benchmarks: builds the services and the bench tool in release mode, starts
# throwaway PostgreSQL and Redis (unless DATABASE_URL / REDIS_URL are set),
# the consumer and two help desks (the consumer's, at the default 2-5 s
# delay, and a zero-delay one for the delivery scenarios, trusting the CA of
# the HTTPS receivers that `bench make-tls` makes for scenario 8), runs every
# scenario, prints the table and writes results.json and latency.svg.
#
# Usage: scripts/bench.sh [--quick] [bench args...]
#   (no flag)  the standard run, about 2 minutes on 2 cores after the build;
#              Redis grows to about 1 GB while 1M pending jobs are measured
#   --quick    a short smoke run with small counts (under a minute)
#   e.g. scripts/bench.sh --only 1,6     (see target/release/bench --help)
#
# Environment:
#   DATABASE_URL, REDIS_URL  use these servers instead of throwaway ones (the
#                            bench adds rows and keys, and removes its filler jobs)
#   BENCH_OUT                where results go                        [docs/bench]
#   HTTP_WORKERS             HTTP worker threads of each service     [one per core]
#   KEEP_TEMP=1              keep the temp dir (service logs)
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

need_cmd cargo "Install Rust: https://rustup.rs"
need_cmd curl "apt-get install curl"
install_cleanup
command_line="scripts/bench.sh${*:+ $*}"

say "==> cargo build --release (consumer, helpdesk, bench)"
cargo build --quiet --release -p hookline-consumer -p hookline-helpdesk -p hookline-bench
bin=${CARGO_TARGET_DIR:-target}/release

tmp=$(make_temp_dir hookline-bench)
track_dir "$tmp"
if [[ -z "${DATABASE_URL:-}" ]]; then
    pg_port=$(free_port)
    start_postgres "$tmp/pg" "$pg_port"
    DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
    say "PostgreSQL $("$HL_PG_BINDIR/postgres" -V | awk '{print $3}') on 127.0.0.1:$pg_port (fsync=off, throwaway)"
fi
if [[ -z "${REDIS_URL:-}" ]]; then
    redis_port=$(free_port)
    start_redis "$tmp/redis" "$redis_port"
    REDIS_URL="redis://127.0.0.1:$redis_port"
    say "Redis on 127.0.0.1:$redis_port (no persistence, throwaway)"
fi
export DATABASE_URL REDIS_URL

# A fresh random secret per run, shared by the help desks, the consumer and the bench.
secret="whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
prefix="bench-$$"
workers=()
[[ -n "${HTTP_WORKERS:-}" ]] && workers=(HTTP_WORKERS="$HTTP_WORKERS")

helpdesk_port=$(free_port)
start_bg helpdesk "$tmp/helpdesk.log" env "${workers[@]}" LOG_FORMAT=json RUST_LOG=warn \
    HELPDESK_LISTEN="127.0.0.1:$helpdesk_port" REDIS_PREFIX="$prefix" WEBHOOK_SECRET="$secret" "$bin/helpdesk"
helpdesk_pid=$HL_BG_PID
fast_port=$(free_port)
"$bin/bench" make-tls "$tmp/tls"
start_bg helpdesk-fast "$tmp/helpdesk-fast.log" env "${workers[@]}" LOG_FORMAT=json RUST_LOG=warn \
    HELPDESK_LISTEN="127.0.0.1:$fast_port" REDIS_PREFIX="$prefix-fast" REVIEW_DELAY_MS=0 \
    CALLBACK_CA_FILE="$tmp/tls/ca.pem" WEBHOOK_SECRET="$secret" "$bin/helpdesk"
fast_pid=$HL_BG_PID
consumer_port=$(free_port)
start_bg consumer "$tmp/consumer.log" env "${workers[@]}" LOG_FORMAT=json RUST_LOG=warn \
    CONSUMER_LISTEN="127.0.0.1:$consumer_port" HELPDESK_URL="http://127.0.0.1:$helpdesk_port" \
    WEBHOOK_SECRET="$secret" "$bin/consumer"
consumer_pid=$HL_BG_PID

# shellcheck disable=SC2317 # called through wait_ready
ready() { [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1")" == 200 ]]; }
wait_ready helpdesk 60 "$helpdesk_pid" "$tmp/helpdesk.log" ready "http://127.0.0.1:$helpdesk_port/readyz"
wait_ready helpdesk-fast 60 "$fast_pid" "$tmp/helpdesk-fast.log" ready "http://127.0.0.1:$fast_port/readyz"
wait_ready consumer 60 "$consumer_pid" "$tmp/consumer.log" ready "http://127.0.0.1:$consumer_port/readyz"
say "consumer :$consumer_port (pid $consumer_pid), helpdesk :$helpdesk_port (pid $helpdesk_pid), \
helpdesk-fast :$fast_port (pid $fast_pid); logs in $tmp"

started=$(now_ms)
rc=0
BENCH_COMMAND="$command_line" WEBHOOK_SECRET="$secret" "$bin/bench" \
    --consumer-url "http://127.0.0.1:$consumer_port" \
    --helpdesk-url "http://127.0.0.1:$helpdesk_port" \
    --fast-helpdesk-url "http://127.0.0.1:$fast_port" \
    --tls-dir "$tmp/tls" \
    --redis-prefix "$prefix" \
    --pids "consumer=$consumer_pid,helpdesk=$helpdesk_pid,helpdesk-fast=$fast_pid" \
    --out "${BENCH_OUT:-docs/bench}" \
    "$@" || rc=$?
if ((rc != 0)); then
    show_log_tail "$tmp/consumer.log"
    show_log_tail "$tmp/helpdesk.log"
    say "==> bench FAILED (exit $rc) after $(since "$started")"
else
    say "==> bench done in $(since "$started")"
fi
exit "$rc"
