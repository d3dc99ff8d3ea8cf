#!/usr/bin/env bash
# The end-to-end demo without Docker: PostgreSQL, Redis, helpdesk and
# consumer as local processes, configured like docker-compose.yml: the same
# settings, from demo.env; addresses on 127.0.0.1.
#
# Usage: scripts/demo.sh [--once] [--no-build]
#   --once       request one review, show it go from PENDING_REVIEW to
#                ACCEPTED/DECLINED, stop everything and exit 0 (CI uses this)
#   --no-build   use the binaries already built (skip cargo build)
#   default      the same, then keep the services running and tail their
#                logs until Ctrl-C, then stop everything it started
#
# State lives in .demo/ (gitignored): .demo/pg (PostgreSQL cluster, database
# "hookline", reused across runs), .demo/redis (AOF), .demo/logs/*.log, and
# .demo/env (the URLs of this run, read by scripts/local_db.sh).
# PostgreSQL and Redis get free ports; the services listen on fixed ones.
#
# Every service gets every setting of demo.env (as in compose), where each
# one is described; a variable of the same name in the environment wins, e.g.
#   REVIEW_DELAY_MS=0 scripts/demo.sh
# HELPDESK_API_KEY alone sets the help desk's HELPDESK_API_KEYS too.
#
# Environment (defaults in brackets):
#   PROFILE           release | debug                          [release]
#   CONSUMER_PORT     consumer's port                          [3333]
#   HELPDESK_PORT     helpdesk's port                          [8080]
#   CHAOS             the help desk's chaos profile (docs/test-bench.md) [none]
#   any setting of demo.env                                    [demo.env]
#   DOCUMENT_URL      document to get reviewed      [https://example.com/contract.pdf]
#   HEALTH_TIMEOUT    seconds to wait for /healthz             [60]
#   REVIEW_TIMEOUT    seconds to wait for the review decision  [30]
#   DEMO_DIR          state directory                          [<repo>/.demo]
#   CARGO_TARGET_DIR  where cargo puts the binaries            [<repo>/target]
#   PG_BINDIR, START_TIMEOUT, STOP_TIMEOUT: see scripts/lib.sh
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

once=""
build=1
for arg in "$@"; do
    case "$arg" in
    --once) once=1 ;;
    --no-build) build="" ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument '$arg' (see $0 --help)" ;;
    esac
done

root=$(cd "$here/.." && pwd)
cd "$root"

# The settings compose gives the services (demo.env), each overridden by a
# non-empty variable of the same name in the environment.
settings_file=$root/demo.env
settings_lines=$(env_file_lines "$settings_file") || die "cannot read the demo's settings from $settings_file"
if [[ -n "${HELPDESK_API_KEY:-}" && -z "${HELPDESK_API_KEYS:-}" ]]; then
    HELPDESK_API_KEYS=$HELPDESK_API_KEY
fi
settings=() # KEY=value, for `env`
while IFS= read -r line; do
    key=${line%%=*}
    if [[ -n "${!key:-}" ]]; then
        settings+=("$key=${!key}")
    else
        settings+=("$line")
    fi
done <<<"$settings_lines"
# setting KEY: its value as the services get it.
setting() {
    local entry value=""
    for entry in "${settings[@]}"; do
        [[ "${entry%%=*}" == "$1" ]] && value=${entry#*=}
    done
    printf '%s\n' "$value"
}

PROFILE=${PROFILE:-release}
CONSUMER_PORT=${CONSUMER_PORT:-3333}
HELPDESK_PORT=${HELPDESK_PORT:-8080}
DOCUMENT_URL=${DOCUMENT_URL:-https://example.com/contract.pdf}
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-60}
REVIEW_TIMEOUT=${REVIEW_TIMEOUT:-30}
DEMO_DIR=${DEMO_DIR:-$root/.demo}
[[ -n "$(setting WEBHOOK_SECRET)" ]] ||
    die "no WEBHOOK_SECRET: set it, or restore the one in $settings_file"

case "$PROFILE" in
release) build_cmd=(cargo build --release --bin consumer --bin helpdesk) ;;
debug) build_cmd=(cargo build --bin consumer --bin helpdesk) ;;
*) die "PROFILE must be 'release' or 'debug', not '$PROFILE'" ;;
esac
bin_dir=${CARGO_TARGET_DIR:-$root/target}/$PROFILE

# --- prerequisites, before we start anything --------------------------------
need_cmd curl "Install it: apt-get install curl"
need_cmd psql "Install it: apt-get install postgresql-client"
need_cmd redis-server "Install it: apt-get install redis-server"
pg_bindir >/dev/null
[[ -z "$build" ]] || need_cmd cargo "Install Rust: https://rustup.rs"
for port_var in CONSUMER_PORT HELPDESK_PORT; do
    port=${!port_var}
    [[ "$port" =~ ^[0-9]+$ ]] || die "$port_var must be a port number, not '$port'"
    if port_in_use "$port"; then
        die "port $port is already taken (another demo? 'docker compose up'?); \
stop it or pick another one: $port_var=<port> $0"
    fi
done
[[ "$CONSUMER_PORT" != "$HELPDESK_PORT" ]] || die "CONSUMER_PORT and HELPDESK_PORT must differ"

pg_dir=$DEMO_DIR/pg
pid_file=$pg_dir/data/postmaster.pid
if [[ -r "$pid_file" ]]; then
    old_pid=$(head -n 1 "$pid_file")
    if [[ "$old_pid" =~ ^[0-9]+$ ]] && pid_alive "$old_pid" &&
        [[ "$(cat "/proc/$old_pid/comm" 2>/dev/null)" == postgres ]]; then
        die "the demo's PostgreSQL is still running (pid $old_pid) - is another demo running? \
If not, stop it: kill -INT $old_pid"
    fi
fi

install_cleanup

# --- build --------------------------------------------------------------------
if [[ -n "$build" ]]; then
    say "==> ${build_cmd[*]}"
    t=$(now_ms)
    "${build_cmd[@]}"
    say "==> built in $(since "$t")"
fi
for b in consumer helpdesk; do
    [[ -x "$bin_dir/$b" ]] ||
        die "$bin_dir/$b not found; build it: ${build_cmd[*]}"
done

logs=$DEMO_DIR/logs
mkdir -p "$logs"

# --- PostgreSQL ---------------------------------------------------------------
# As root, PostgreSQL runs as the postgres user, which must reach .demo/pg.
# When the repo sits somewhere it can't traverse (e.g. under /root), the
# cluster lives in /var/tmp and .demo/pg points there.
if is_root && [[ ! -L "$pg_dir" ]]; then
    mkdir -p "$pg_dir"
    chown "$PG_OS_USER": "$pg_dir" 2>/dev/null || true
    if ! pg_user_can_use "$pg_dir"; then
        [[ -z "$(ls -A "$pg_dir")" ]] ||
            die "the '$PG_OS_USER' user cannot reach $pg_dir; move the repo somewhere \
world-traversable or remove $pg_dir"
        alt=/var/tmp/hookline-demo-$(printf '%s' "$DEMO_DIR" | cksum | cut -d' ' -f1)
        mkdir -p "$alt"
        chmod 755 "$alt"
        rmdir "$pg_dir"
        ln -s "$alt" "$pg_dir"
        say "note: '$PG_OS_USER' cannot reach $DEMO_DIR; the cluster lives in $alt ($pg_dir links there)"
    fi
fi

pg_port=$(free_port)
start_postgres "$pg_dir" "$pg_port"
psql_admin() {
    psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres "$@"
}
# The same role and database as the compose stack's db service.
if [[ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'hookline'")" != 1 ]]; then
    psql_admin -c "CREATE ROLE hookline LOGIN PASSWORD 'hookline'"
fi
if [[ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = 'hookline'")" != 1 ]]; then
    psql_admin -c "CREATE DATABASE hookline OWNER hookline"
fi
DATABASE_URL=postgres://hookline:hookline@127.0.0.1:$pg_port/hookline
say "PostgreSQL on 127.0.0.1:$pg_port (pid $HL_PG_PID, data $pg_dir)"

# --- Redis (persistent like the compose service) ------------------------------
redis_port=$(free_port)
start_redis "$DEMO_DIR/redis" "$redis_port" --appendonly yes --appendfsync always
REDIS_URL=redis://127.0.0.1:$redis_port
say "Redis on 127.0.0.1:$redis_port (pid $HL_REDIS_PID, data $DEMO_DIR/redis)"

consumer_url=http://127.0.0.1:$CONSUMER_PORT
helpdesk_url=http://127.0.0.1:$HELPDESK_PORT

cat >"$DEMO_DIR/env" <<EOF
# Written by scripts/demo.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ); read by scripts/local_db.sh.
DATABASE_URL=$DATABASE_URL
REDIS_URL=$REDIS_URL
CONSUMER_URL=$consumer_url
HELPDESK_URL=$helpdesk_url
EOF

# --- the services: demo.env, and addresses as docker-compose.yml's ------------
http_200() {
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1")" == 200 ]]
}

: >"$logs/helpdesk.log"
start_bg helpdesk "$logs/helpdesk.log" env "${settings[@]}" \
    HELPDESK_ROLE=api \
    REDIS_URL="$REDIS_URL" \
    HELPDESK_LISTEN="127.0.0.1:$HELPDESK_PORT" \
    CHAOS="${CHAOS:-none}" \
    "$bin_dir/helpdesk"
helpdesk_pid=$HL_BG_PID
wait_ready helpdesk "$HEALTH_TIMEOUT" "$helpdesk_pid" "$logs/helpdesk.log" http_200 "$helpdesk_url/readyz"
say "helpdesk API on $helpdesk_url (pid $helpdesk_pid, log $logs/helpdesk.log)"

# The delivery worker, like compose's `worker` service (its port only serves /readyz).
worker_port=$(free_port)
: >"$logs/worker.log"
start_bg worker "$logs/worker.log" env "${settings[@]}" \
    HELPDESK_ROLE=worker \
    REDIS_URL="$REDIS_URL" \
    HELPDESK_LISTEN="127.0.0.1:$worker_port" \
    CHAOS="${CHAOS:-none}" \
    "$bin_dir/helpdesk"
worker_pid=$HL_BG_PID
wait_ready worker "$HEALTH_TIMEOUT" "$worker_pid" "$logs/worker.log" http_200 "http://127.0.0.1:$worker_port/readyz"
say "helpdesk worker (pid $worker_pid, log $logs/worker.log)"

: >"$logs/consumer.log"
start_bg consumer "$logs/consumer.log" env "${settings[@]}" \
    DATABASE_URL="$DATABASE_URL" \
    CONSUMER_LISTEN="127.0.0.1:$CONSUMER_PORT" \
    HELPDESK_URL="$helpdesk_url" \
    CONSUMER_PUBLIC_URL="$consumer_url" \
    "$bin_dir/consumer"
consumer_pid=$HL_BG_PID
wait_ready consumer "$HEALTH_TIMEOUT" "$consumer_pid" "$logs/consumer.log" http_200 "$consumer_url/readyz"
say "consumer on $consumer_url (pid $consumer_pid, log $logs/consumer.log)"

# --- one review, end to end ---------------------------------------------------
show_json() {
    if command -v jq >/dev/null 2>&1; then
        jq . <<<"$1" 2>/dev/null || printf '%s\n' "$1"
    else
        printf '%s\n' "$1"
    fi
}
show_rows() {
    psql "$DATABASE_URL" -X -P pager=off -c \
        "SELECT id, document_id, document_status, created_at, updated_at
           FROM document_reviews ORDER BY created_at DESC LIMIT 5"
}
fail_with_logs() {
    show_log_tail "$logs/helpdesk.log"
    show_log_tail "$logs/worker.log"
    show_log_tail "$logs/consumer.log"
    die "$*"
}

echo
echo "\$ curl -sS -X POST $consumer_url/documents -H 'content-type: application/json' -d '{\"documentUrl\":\"$DOCUMENT_URL\"}'"
answer=$(curl -sS --max-time 10 -X POST "$consumer_url/documents" \
    -H 'content-type: application/json' \
    -d "{\"documentUrl\":\"$DOCUMENT_URL\"}" -w '\n%{http_code}') ||
    fail_with_logs "POST $consumer_url/documents failed"
asked=$(now_ms)
code=${answer##*$'\n'}
body=${answer%$'\n'*}
show_json "$body"
[[ "$code" == 201 ]] || fail_with_logs "POST /documents answered HTTP $code, expected 201"
id=$(json_field id "$body") || fail_with_logs "no \"id\" in the answer of POST /documents"
status=$(json_field documentStatus "$body") || status="?"
review=$body
echo
show_rows

echo
say "waiting (up to ${REVIEW_TIMEOUT}s) for the helpdesk's webhook to decide review $id ..."
deadline=$((asked + REVIEW_TIMEOUT * 1000))
while [[ "$status" == PENDING_REVIEW || "$status" == "?" ]]; do
    if (($(now_ms) >= deadline)); then
        fail_with_logs "review $id is still ${status/\?/unknown} after ${REVIEW_TIMEOUT}s \
(GET $consumer_url/documents/$id: $review); see $logs/"
    fi
    for p in "$helpdesk_pid" "$worker_pid" "$consumer_pid"; do
        pid_alive "$p" || fail_with_logs "a service died while waiting for the review (pid $p)"
    done
    sleep 0.25
    review=$(curl -s --max-time 2 "$consumer_url/documents/$id") || review=""
    status=$(json_field documentStatus "$review") || status="?"
done
took=$(since "$asked")
echo
show_json "$review"
echo
show_rows
echo
say "==> review $id: PENDING_REVIEW -> $status after $took"

if [[ -n "$once" ]]; then
    say "==> demo OK; stopping everything"
    exit 0
fi

cat <<EOF

The demo is running:
  consumer   $consumer_url/   (try: curl -sS $consumer_url/documents)
  helpdesk   $helpdesk_url/   (its dashboard asks for the API key: $(setting HELPDESK_API_KEY))
  database   scripts/local_db.sh -c 'SELECT * FROM document_reviews;'
  logs       $logs/{consumer,helpdesk,worker}.log (tailed below)
Press Ctrl-C to stop everything.

EOF
tail -n 0 -F "$logs/helpdesk.log" "$logs/worker.log" "$logs/consumer.log" &
track_pid $! tail

# Interruptible wait: Ctrl-C/SIGTERM run the cleanup trap at once; a service
# that dies on its own ends the demo too.
exited=""
status=0
wait -n -p exited "$helpdesk_pid" "$worker_pid" "$consumer_pid" 2>/dev/null || status=$?
case "$exited" in
"$helpdesk_pid") die "helpdesk exited (status $status); see $logs/helpdesk.log" ;;
"$worker_pid") die "helpdesk worker exited (status $status); see $logs/worker.log" ;;
"$consumer_pid") die "consumer exited (status $status); see $logs/consumer.log" ;;
esac
