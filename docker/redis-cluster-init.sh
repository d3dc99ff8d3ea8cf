#!/bin/sh
# One-shot init of docker-compose.cluster.yml's Redis Cluster: joins blank
# nodes into a cluster (`redis-cli --cluster create`, --cluster-replicas
# REPLICAS), then waits until it serves: every node sees cluster_state:ok,
# each master holds slots and its replicas, and every replica has synced
# (master_link_status:up), so a `WAIT 1` (REDIS_MIN_REPLICAS=1) can succeed
# from the first request on. Exit 0 means the cluster is ready; services
# start after it (depends_on: service_completed_successfully).
#
# Idempotent: when the cluster already exists (a second `up`, a restart) it
# creates nothing and only waits. Nodes neither blank nor a whole cluster (a
# create that died half-way, a node that holds keys) are refused, with what
# to do.
#
# Runs in the Redis image itself (redis:7 or the stand-in): POSIX sh,
# redis-cli, getent. `--cluster create` needs addresses (CLUSTER MEET takes
# IPs only), so the names are resolved here; the nodes then announce their
# names (cluster-announce-hostname), which is what clients are sent.
#
# Usage: redis-cluster-init.sh HOST:PORT...
#
# Environment:
#   REPLICAS       replicas per master [1]
#   INIT_TIMEOUT   seconds to wait for the nodes, and then for the cluster [60]
set -eu

usage() { sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p}' "$0"; }
case "${1:-}" in
"")
    usage >&2
    exit 2
    ;;
-h | --help)
    usage
    exit 0
    ;;
esac

REPLICAS=${REPLICAS:-1}
INIT_TIMEOUT=${INIT_TIMEOUT:-60}

say() { printf 'redis-cluster-init: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}
command -v redis-cli >/dev/null 2>&1 || die "no redis-cli: run this in a Redis image"

# cli HOST:PORT ARGS...: redis-cli against one node, CRs stripped.
cli() {
    node=$1
    shift
    redis-cli -h "${node%:*}" -p "${node##*:}" "$@" | tr -d '\r'
}

# field HOST:PORT SECTION NAME: one "name:value" of CLUSTER INFO or INFO SECTION.
field() {
    if [ "$2" = cluster ]; then
        cli "$1" cluster info
    else
        cli "$1" info "$2"
    fi | sed -n "s/^$3://p"
}

# until_ok WHAT CMD...: CMD every 0.5 s until it succeeds, or die after INIT_TIMEOUT.
until_ok() {
    what=$1
    shift
    deadline=$(($(date +%s) + INIT_TIMEOUT))
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || die "$what: not within ${INIT_TIMEOUT}s"
        sleep 0.5
    done
}

all_answer() {
    for node in "$@"; do
        [ "$(cli "$node" ping 2>/dev/null)" = PONG ] || return 1
    done
}
until_ok "every node to answer PING" all_answer "$@"

masters=$(($# / (REPLICAS + 1)))
if [ "$((masters * (REPLICAS + 1)))" -ne "$#" ] || [ "$masters" -lt 3 ]; then
    die "$# nodes do not make 3 or more masters with $REPLICAS replica(s) each"
fi

if [ "$(field "$1" cluster cluster_slots_assigned)" = 16384 ]; then
    say "the cluster exists already: nothing to create"
else
    addresses=""
    for node in "$@"; do
        known=$(field "$node" cluster cluster_known_nodes)
        keys=$(cli "$node" dbsize)
        if [ "$known" != 1 ] || [ "$keys" != 0 ]; then
            die "$node is not blank (it knows $known nodes and holds $keys keys), yet no cluster covers every slot: a create that died half-way, or a volume from another topology? \`down -v\` (with the same -f files) starts from blank nodes"
        fi
        ip=$(getent hosts "${node%:*}" | awk '{ print $1; exit }')
        [ -n "$ip" ] || die "cannot resolve ${node%:*}"
        addresses="$addresses $ip:${node##*:}"
    done
    say "creating the cluster:$addresses ($masters masters, $REPLICAS replica(s) each)"
    # Word splitting of $addresses is wanted: one argument per node.
    # shellcheck disable=SC2086
    redis-cli --cluster create $addresses --cluster-replicas "$REPLICAS" --cluster-yes >&2 ||
        die "redis-cli --cluster create failed (its output above)"
fi

# serving: what the help desk needs, seen from every node.
serving() {
    for node in "$@"; do
        [ "$(field "$node" cluster cluster_state)" = ok ] || return 1
        if [ "$(field "$node" replication role)" = slave ]; then
            [ "$(field "$node" replication master_link_status)" = up ] || return 1
        fi
    done
    # Masters holding slots, each with REPLICAS replicas (CLUSTER NODES:
    # id addr flags master-id ... slots; a replica's 4th field is its master).
    cli "$1" cluster nodes | awk -v masters="$masters" -v replicas="$REPLICAS" '
        $3 ~ /fail|handshake|noaddr/ { bad = 1 }
        $3 ~ /master/ && NF >= 9 { held[$1] = 1; n++ }
        $3 ~ /slave/ { of[$4]++ }
        END {
            if (bad || n != masters) exit 1
            for (id in held) if (of[id] != replicas) exit 1
        }'
}
until_ok "the cluster to serve" serving "$@"
say "the cluster serves: $masters masters with slots, $REPLICAS replica(s) each, in sync"
cli "$1" cluster nodes | awk '{ print "  " $2, $3, ($3 ~ /master/ ? $9 : "of " $4) }' >&2
