#!/usr/bin/env bash
# Benchmarks: builds the services and the bench tool in release mode, starts
# throwaway PostgreSQL and Redis (unless DATABASE_URL / REDIS_URL are set),
# the consumer and two help desks (the consumer's, at the default 2-5 s
# delay, and a zero-delay one for the delivery scenarios, trusting the CA of
# the HTTPS receivers that `bench make-tls` makes for scenario 8), runs every
# scenario, prints the table and writes results.json and latency.svg.
# Scenario 9 (cluster) gets a throwaway Redis Cluster on loopback (3 masters,
# 3 replicas, no persistence, like the single Redis) and four more zero-delay
# help desks: on the single Redis (REDIS_PARTITIONS 1, then 3), on the
# cluster (REDIS_PARTITIONS=3), and the same with REDIS_MIN_REPLICAS=1.
#
# PostgreSQL runs with fsync on (every commit waits for its WAL flush, as
# in production) and pg_stat_statements loaded; scenarios 1 and 2 are
# compared with pgbench doing only their database writes on the same
# server (the same-run ceiling).
#
# Every run compares scenario 3's figures (CPU per job per process, Redis
# calls per job) with the committed baseline, docs/bench/baseline.json.
#
# Usage: scripts/bench.sh [--fsync on|off] [--quick] [--write-baseline]
#                         [--against REF [--rounds N]] [bench args...]
#   (no flag)  the standard run, about 2 minutes on 2 cores after the build;
#              Redis grows to about 1 GB while 1M pending jobs are measured
#   --quick    a short smoke run with small counts (under a minute)
#   --fsync off  the throwaway PostgreSQL without fsync (as scripts/test.sh);
#              ignored with DATABASE_URL                              [on]
#   --check-baseline  fail when a figure grew past its margin over the
#              baseline of the run's mode (CI: 1.10x calls, 1.5x CPU)
#   --write-baseline  the run's figures become the baseline of its mode
#              (quick or standard); say what else ran in BASELINE_LOAD
#   --against REF  builds REF's consumer and help desk in a temporary git
#              worktree (build in target/against, where the dependencies
#              stay built between runs), runs this tree's
#              and REF's alternately, N rounds (half in each order), the
#              same bench measuring both, and prints new/old ratios per
#              round and their median; scenario 3 unless --only says more
#   --rounds N rounds of --against                                     [4]
#   e.g. scripts/bench.sh --only 1,6     (see target/release/bench --help)
#
# Environment:
#   DATABASE_URL, REDIS_URL  use these servers instead of throwaway ones (the
#                            bench adds rows and keys, and removes its filler jobs)
#   BENCH_OUT                where results go                        [docs/bench]
#   BENCH_CLUSTER=0          no cluster, no scenario 9 (also when --only leaves out 9)
#   HTTP_WORKERS             HTTP worker threads of each service     [one per core]
#   WRITE_BATCH              the consumer's group commit; 1 turns it off [its default]
#   CONSUMER_BIN             another consumer build to measure (e.g. an older
#                            commit's), same migrations     [the one built here]
#   HELPDESK_BIN             another help desk build, likewise (with
#                            BENCH_HELPDESK_STORE: its sources' store folder,
#                            naming its scripts)            [the one built here]
#   BASELINE_LOAD            --write-baseline: what else ran on the machine
#   PGBENCH                  pgbench for the ceilings        [next to postgres]
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

# --fsync, --write-baseline, --against and --rounds are ours; every other
# argument goes to the bench tool.
fsync=on
write_baseline=""
against=""
rounds=4
bench_args=()
while (($#)); do
    case $1 in
    --write-baseline) write_baseline=1 ;;
    --against)
        (($# >= 2)) || die "--against needs a git commit or branch"
        against=$2
        shift
        ;;
    --against=*) against=${1#--against=} ;;
    --rounds)
        (($# >= 2)) || die "--rounds needs a number"
        rounds=$2
        shift
        ;;
    --rounds=*) rounds=${1#--rounds=} ;;
    --fsync | --fsync=*)
        if [[ "$1" == --fsync ]]; then
            (($# >= 2)) || die "--fsync needs a value: on or off"
            fsync=$2
            shift
        else
            fsync=${1#--fsync=}
        fi
        [[ "$fsync" == on || "$fsync" == off ]] || die "--fsync takes on or off, not '$fsync'"
        ;;
    *) bench_args+=("$1") ;;
    esac
    shift
done
set -- "${bench_args[@]}"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds takes a positive number, not '$rounds'"
[[ -z "$against" || -z "$write_baseline" ]] || die "--against and --write-baseline do not go together"

# runs_scenario N ARGS...: true unless ARGS hold an --only that leaves out N.
runs_scenario() {
    local n=$1 arg only="" take=""
    shift
    for arg in "$@"; do
        if [[ -n "$take" ]]; then
            only+=",$arg"
            take=""
            continue
        fi
        case $arg in
        --only) take=1 ;;
        --only=*) only+=",${arg#--only=}" ;;
        esac
    done
    [[ -z "$only" || "$only," == *",$n,"* ]]
}

# The cluster's shape: `redis-cli --cluster create --cluster-replicas 1`
# makes half of the nodes masters, each with one replica.
cluster_nodes=6
cluster_masters=3

# start_cluster DIR: $cluster_nodes redis-servers with --cluster-enabled on
# free ports, files in DIR/<port>, persistence as the single Redis (none:
# --save '' and appendonly no), joined by `redis-cli --cluster create`;
# waits until every node says cluster_state:ok and every replica's link is
# up (no 5 s wait before a replica's first sync: repl-diskless-sync-delay 0).
# Each node's cluster bus gets a free port of its own (`cluster-port`,
# Redis >= 7): the default, port + 10000, can fall in the kernel's
# ephemeral range, where an outgoing connection may hold it (see
# free_port). Ports in cluster_ports; every node is stopped on exit like
# the other servers.
start_cluster() {
    local dir=$1 port bus i state
    need_cmd redis-server "Install it: apt-get install redis-server"
    need_cmd redis-cli "Install it: apt-get install redis-tools"
    if ! [[ "$(redis-server --version)" =~ v=([0-9]+) ]] || ((BASH_REMATCH[1] < 7)); then
        die "scenario 9 needs redis-server >= 7 (cluster-port); this is $(redis-server --version). \
BENCH_CLUSTER=0 skips it"
    fi
    cluster_ports=()
    mkdir -p "$dir"
    for ((i = 0; i < cluster_nodes; i++)); do
        port=$(free_port)
        bus=$(free_port)
        while [[ "$bus" == "$port" ]]; do
            bus=$(free_port)
        done
        start_redis "$dir/$port" "$port" --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-port "$bus" --cluster-node-timeout 5000 --appendonly no --repl-diskless-sync-delay 0
        cluster_ports+=("$port")
    done
    redis-cli --cluster create "${cluster_ports[@]/#/127.0.0.1:}" --cluster-replicas 1 --cluster-yes \
        >"$dir/create.log" 2>&1 || {
        show_log_tail "$dir/create.log"
        die "redis-cli --cluster create failed (log: $dir/create.log)"
    }
    for port in "${cluster_ports[@]}"; do
        wait_ready "cluster node :$port" "$START_TIMEOUT" - "$dir/$port/redis.log" cluster_node_ready "$port"
    done
    state=$(redis-cli -p "${cluster_ports[0]}" cluster info | tr -d '\r')
    [[ "$state" == *"cluster_size:$cluster_masters"* && "$state" == *"cluster_known_nodes:$cluster_nodes"* ]] ||
        die "the Redis Cluster is not $cluster_masters masters among $cluster_nodes nodes: \
$(grep -E 'cluster_(size|known_nodes)' <<<"$state" | tr '\n' ' ')(log: $dir/create.log)"
}

# cluster_node_ready PORT: the node sees the cluster ok, and if it is a
# replica its link to the master is up (REDIS_MIN_REPLICAS waits on it).
# shellcheck disable=SC2317 # called through wait_ready
cluster_node_ready() {
    local info
    [[ "$(redis-cli -p "$1" cluster info)" == *cluster_state:ok* ]] || return 1
    info=$(redis-cli -p "$1" info replication)
    [[ "$info" == *role:master* || "$info" == *master_link_status:up* ]]
}

# start_cluster_helpdesk NAME REDIS_URL [VAR=VALUE...]: a zero-delay help
# desk for scenario 9 under its own key prefix, like helpdesk-fast.
declare -A cluster_pid_of=()
start_cluster_helpdesk() {
    local name=$1 url=$2 port
    shift 2
    port=$(free_port)
    start_bg "helpdesk-$name" "$tmp/helpdesk-$name.log" env "${workers[@]}" LOG_FORMAT=json RUST_LOG=warn \
        HELPDESK_LISTEN="127.0.0.1:$port" REDIS_URL="$url" REDIS_PREFIX="$prefix-$name" REVIEW_DELAY_MS=0 \
        WEBHOOK_SECRET="$secret" "$@" "$helpdesk_bin"
    cluster_helpdesks+=("$name=http://127.0.0.1:$port")
    cluster_pids+=("$name=$HL_BG_PID")
    cluster_pid_of[$name]=$HL_BG_PID
}

say "==> cargo build --release (consumer, helpdesk, bench)"
cargo build --quiet --release -p hookline-consumer -p hookline-helpdesk -p hookline-bench
bin=${CARGO_TARGET_DIR:-target}/release
consumer_bin=${CONSUMER_BIN:-$bin/consumer}
[[ -x "$consumer_bin" ]] || die "CONSUMER_BIN=$consumer_bin is not an executable"
helpdesk_bin=${HELPDESK_BIN:-$bin/helpdesk}
[[ -x "$helpdesk_bin" ]] || die "HELPDESK_BIN=$helpdesk_bin is not an executable"

# --against REF: this script again, once per side and round, each run with
# its own servers (they stop with it); then the paired ratios. REF's
# worktree is removed on exit, whatever happened.
if [[ -n "$against" ]]; then
    ref=$(git rev-parse --verify --quiet "$against^{commit}") || die "--against: '$against' is not a git commit"
    [[ " $* " == *" --only"* ]] || set -- --only 3 "$@"
    tmp=$(make_temp_dir hookline-against)
    track_dir "$tmp"
    tree=$tmp/tree
    against_cleanup() {
        local rc=$?
        set +e
        git worktree remove --force "$tree" >/dev/null 2>&1
        git worktree prune >/dev/null 2>&1
        (exit "$rc")
        cleanup
    }
    trap against_cleanup EXIT
    git worktree add --detach --quiet "$tree" "$ref"
    ref_target=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/against
    say "==> cargo build --release of $against ($(git rev-parse --short "$ref")): consumer, helpdesk (in $ref_target)"
    (cd "$tree" && CARGO_TARGET_DIR=$ref_target cargo build --quiet --release -p hookline-consumer -p hookline-helpdesk)
    mkdir -p "$tmp/old"
    cp "$ref_target/release/consumer" "$ref_target/release/helpdesk" "$tmp/old/"
    olds=() news=()
    for ((round = 1; round <= rounds; round++)); do
        order=(old new)
        ((round % 2 == 0)) && order=(new old)
        for side in "${order[@]}"; do
            say "==> round $round/$rounds: $side ($([[ $side == old ]] && printf '%s' "$against" || printf 'this tree'))"
            out=$tmp/$side-$round
            # A run with a FAILED row still writes its figures: compare what there is.
            if [[ "$side" == old ]]; then
                env BENCH_OUT="$out" CONSUMER_BIN="$tmp/old/consumer" HELPDESK_BIN="$tmp/old/helpdesk" \
                    BENCH_HELPDESK_STORE="$tree/crates/helpdesk/src/store" "$0" --fsync "$fsync" "$@" ||
                    warn "round $round, $against: the bench exited non-zero (above)"
                olds+=(--old "$out/results.json")
            else
                env BENCH_OUT="$out" "$0" --fsync "$fsync" "$@" ||
                    warn "round $round, this tree: the bench exited non-zero (above)"
                news+=(--new "$out/results.json")
            fi
        done
    done
    say "==> $against ($(git rev-parse --short "$ref")) is old, this tree ($(git rev-parse --short HEAD)$(git diff --quiet HEAD || printf ' + changes')) is new"
    "$bin/bench" compare "${olds[@]}" "${news[@]}"
    exit 0
fi

tmp=$(make_temp_dir hookline-bench)
track_dir "$tmp"
if [[ -z "${DATABASE_URL:-}" ]]; then
    pg_port=$(free_port)
    # start_postgres passes -c fsync=off first: a later -c wins.
    start_postgres "$tmp/pg" "$pg_port" -c "fsync=$fsync" -c shared_preload_libraries=pg_stat_statements
    DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
    say "PostgreSQL $("$HL_PG_BINDIR/postgres" -V | awk '{print $3}') on 127.0.0.1:$pg_port \
(fsync=$fsync, synchronous_commit=on, pg_stat_statements; throwaway)"
else
    say "PostgreSQL at DATABASE_URL: its own fsync setting (--fsync ignored; results.json records it)"
fi
pgbench=${PGBENCH:-}
if [[ -z "$pgbench" ]]; then
    if [[ -n "${HL_PG_BINDIR:-}" && -x "$HL_PG_BINDIR/pgbench" ]]; then
        pgbench=$HL_PG_BINDIR/pgbench
    elif bindir=$(pg_bindir_find) && [[ -x "$bindir/pgbench" ]]; then
        pgbench=$bindir/pgbench
    elif command -v pgbench >/dev/null 2>&1; then
        pgbench=$(command -v pgbench)
    else
        warn "no pgbench (postgresql-15 ships it; or set PGBENCH): scenarios 1 and 2 go without their ceilings"
    fi
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
    HELPDESK_LISTEN="127.0.0.1:$helpdesk_port" REDIS_PREFIX="$prefix" WEBHOOK_SECRET="$secret" "$helpdesk_bin"
helpdesk_pid=$HL_BG_PID
fast_port=$(free_port)
"$bin/bench" make-tls "$tmp/tls"
start_bg helpdesk-fast "$tmp/helpdesk-fast.log" env "${workers[@]}" LOG_FORMAT=json RUST_LOG=warn \
    HELPDESK_LISTEN="127.0.0.1:$fast_port" REDIS_PREFIX="$prefix-fast" REVIEW_DELAY_MS=0 \
    CALLBACK_CA_FILE="$tmp/tls/ca.pem" WEBHOOK_SECRET="$secret" "$helpdesk_bin"
fast_pid=$HL_BG_PID
consumer_port=$(free_port)
start_bg consumer "$tmp/consumer.log" env "${workers[@]}" LOG_FORMAT=json RUST_LOG=warn \
    CONSUMER_LISTEN="127.0.0.1:$consumer_port" HELPDESK_URL="http://127.0.0.1:$helpdesk_port" \
    WEBHOOK_SECRET="$secret" ${WRITE_BATCH:+WRITE_BATCH="$WRITE_BATCH"} "$consumer_bin"
consumer_pid=$HL_BG_PID

# Scenario 9: a Redis Cluster and help desks on it, when it is to run.
cluster_args=() cluster_helpdesks=() cluster_pids=()
if runs_scenario 9 "$@" && [[ "${BENCH_CLUSTER:-1}" != 0 ]]; then
    start_cluster "$tmp/cluster"
    cluster_url=$(printf 'redis://127.0.0.1:%s,' "${cluster_ports[@]}")
    cluster_url=${cluster_url%,}
    say "Redis Cluster on 127.0.0.1, ports ${cluster_ports[*]} ($cluster_masters masters + replicas, no persistence, throwaway)"
    start_cluster_helpdesk single "$REDIS_URL"
    start_cluster_helpdesk single-p3 "$REDIS_URL" REDIS_PARTITIONS=3
    start_cluster_helpdesk cluster-p3 "$cluster_url" REDIS_PARTITIONS=3
    start_cluster_helpdesk cluster-p3-wait1 "$cluster_url" REDIS_PARTITIONS=3 REDIS_MIN_REPLICAS=1
    cluster_args=(--cluster-helpdesks "$(
        IFS=,
        printf '%s' "${cluster_helpdesks[*]}"
    )" --cluster-pids "$(
        IFS=,
        printf '%s' "${cluster_pids[*]}"
    )")
fi

# shellcheck disable=SC2317 # called through wait_ready
ready() { [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1")" == 200 ]]; }
wait_ready helpdesk 60 "$helpdesk_pid" "$tmp/helpdesk.log" ready "http://127.0.0.1:$helpdesk_port/readyz"
wait_ready helpdesk-fast 60 "$fast_pid" "$tmp/helpdesk-fast.log" ready "http://127.0.0.1:$fast_port/readyz"
wait_ready consumer 60 "$consumer_pid" "$tmp/consumer.log" ready "http://127.0.0.1:$consumer_port/readyz"
for spec in "${cluster_helpdesks[@]}"; do
    name=${spec%%=*}
    wait_ready "helpdesk-$name" 60 "${cluster_pid_of[$name]}" "$tmp/helpdesk-$name.log" ready "${spec#*=}/readyz"
done
say "consumer :$consumer_port (pid $consumer_pid), helpdesk :$helpdesk_port (pid $helpdesk_pid), \
helpdesk-fast :$fast_port (pid $fast_pid); WRITE_BATCH=${WRITE_BATCH:-default}; logs in $tmp"

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
    ${HL_PG_PID:+--pg-pid "$HL_PG_PID"} \
    ${pgbench:+--pgbench "$pgbench"} \
    "${cluster_args[@]}" \
    "$@" || rc=$?
if ((rc != 0)); then
    show_log_tail "$tmp/consumer.log"
    show_log_tail "$tmp/helpdesk.log"
    for spec in "${cluster_helpdesks[@]}"; do
        show_log_tail "$tmp/helpdesk-${spec%%=*}.log"
    done
    say "==> bench FAILED (exit $rc) after $(since "$started")"
else
    say "==> bench done in $(since "$started")"
    if [[ -n "$write_baseline" ]]; then
        "$bin/bench" write-baseline --results "${BENCH_OUT:-docs/bench}/results.json" \
            --commit "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates Cargo.lock || printf ' + changes')" \
            --load "${BASELINE_LOAD:-not stated}"
    fi
fi
exit "$rc"
