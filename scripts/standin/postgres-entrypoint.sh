#!/bin/bash
# Entrypoint of hookline's PostgreSQL stand-in image (scripts/compose_images.sh),
# for engines that cannot pull the official postgres image. It does what that
# image's entrypoint does for docker-compose.yml, no more:
#   - an empty data directory ($PGDATA) is initialised with POSTGRES_USER
#     (default postgres) and POSTGRES_PASSWORD, and POSTGRES_DB is created
#     (default: the user's name); *.sql and *.sh in /docker-entrypoint-initdb.d
#     run once, on that first start;
#   - local (socket) connections are trusted, TCP ones need the password
#     (POSTGRES_HOST_AUTH_METHOD, default scram-sha-256);
#   - started as root it fixes ownership, then runs as the postgres user;
#   - anything but `postgres ...` (or flags for it) is run as given.
set -euo pipefail

if [[ "${1:-}" == -* ]]; then
    set -- postgres "$@"
fi
if [[ "${1:-}" != postgres ]]; then
    exec "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [[ "$(id -u)" == 0 ]]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
    exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${BASH_SOURCE[0]}" "$@"
fi

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    user=${POSTGRES_USER:-postgres}
    db=${POSTGRES_DB:-$user}
    method=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
    if [[ -z "${POSTGRES_PASSWORD:-}" && "$method" != trust ]]; then
        printf 'error: the database is not initialised and POSTGRES_PASSWORD is empty.\n' >&2
        printf '       Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust to allow anyone in).\n' >&2
        exit 1
    fi
    pwargs=() pwfile=""
    if [[ -n "${POSTGRES_PASSWORD:-}" ]]; then
        pwfile=$(umask 077 && mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
        pwargs=(--pwfile="$pwfile")
    fi
    initdb --username="$user" "${pwargs[@]}" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host="$method" >/dev/null
    rm -f "$pwfile"
    printf 'host all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"
    printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

    # A server on the socket only while the database is set up.
    pg_ctl --silent --wait -o "-c listen_addresses=''" start
    if [[ "$db" != postgres ]]; then
        psql -v ON_ERROR_STOP=1 --no-psqlrc --username="$user" --dbname=postgres \
            --set=db="$db" <<<'CREATE DATABASE :"db";' >/dev/null
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
        *.sql) psql -v ON_ERROR_STOP=1 --no-psqlrc --username="$user" --dbname="$db" -f "$f" ;;
        *.sh) bash "$f" ;;
        esac
    done
    pg_ctl --silent --wait -m fast stop
    printf 'PostgreSQL initialised: database "%s", user "%s"\n' "$db" "$user" >&2
fi

exec "$@"
