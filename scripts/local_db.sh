#!/usr/bin/env bash
# psql into the demo's database, wherever the demo runs.
#
# Usage: scripts/local_db.sh [psql args...]
#   e.g. scripts/local_db.sh -c 'SELECT * FROM document_reviews;'
#
# Looks, in order, for:
#   1. the compose stack's db service (docker compose up, or docker-compose):
#        docker compose exec db psql -U hookline hookline ...
#   2. the database of scripts/demo.sh, as recorded in .demo/env, if its
#      PostgreSQL answers
#   3. DATABASE_URL from the environment
#
# Environment:
#   COMPOSE_PROJECT_NAME   the compose stack to look in [hookline, from .env]
#   DEMO_DIR       the demo's state directory [<repo>/.demo]
#   DATABASE_URL   fallback database URL
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
root=$(cd "$here/.." && pwd)
cd "$root"
DEMO_DIR=${DEMO_DIR:-$root/.demo}

# 1. The compose stack (v2 or v1; COMPOSE_PROJECT_NAME picks another stack
#    than .env's), if its db container runs. Without a TTY (scripts, CI) exec
#    needs -T.
if command -v docker >/dev/null 2>&1 && compose_cmd; then
    db_container=$("${HL_COMPOSE[@]}" ps -q db 2>/dev/null | head -n 1 || true)
    if [[ -n "$db_container" &&
        "$(docker inspect -f '{{.State.Running}}' "$db_container" 2>/dev/null || true)" == true ]]; then
        tty_flag=()
        [[ -t 0 && -t 1 ]] || tty_flag=(-T)
        exec "${HL_COMPOSE[@]}" exec "${tty_flag[@]}" db psql -U hookline hookline "$@"
    fi
fi

need_cmd psql "Install it: apt-get install postgresql-client"

# reachable URL: psql can connect to URL within a few seconds.
reachable() {
    PGCONNECT_TIMEOUT=3 psql "$1" -X -q -t -A -c 'SELECT 1' >/dev/null 2>&1
}

# 2. scripts/demo.sh's database.
if [[ -r "$DEMO_DIR/env" ]]; then
    url=$(sed -n 's/^DATABASE_URL=//p' "$DEMO_DIR/env" | tail -n 1)
    if [[ -n "$url" ]] && reachable "$url"; then
        exec psql "$url" "$@"
    fi
fi

# 3. Whatever DATABASE_URL says.
if [[ -n "${DATABASE_URL:-}" ]]; then
    exec psql "$DATABASE_URL" "$@"
fi

die "no running hookline database found. Start the demo first, either
    docker compose up --build     (then: scripts/local_db.sh)
or  scripts/demo.sh               (in another terminal)
or point DATABASE_URL at a database."
