#!/usr/bin/env bash
# Check that crates/consumer/src/schema.rs is exactly what `diesel
# print-schema` makes of the migrations in migrations/.
#
# Usage: scripts/schema_check.sh [--write]
#   --write   regenerate crates/consumer/src/schema.rs instead of checking it
#
# It creates an empty database and runs the migrations on it (`diesel
# database setup`), then `diesel print-schema` from the repo root with
# diesel.toml, so its [print_schema] settings apply, and diffs that against
# the committed file. Exits 0 when they match; 1, showing the diff, when they
# don't.
#
# diesel_cli: $DIESEL if set, else target/tools/bin/diesel or diesel on PATH
# when it is version DIESEL_CLI_VERSION with PostgreSQL support (another
# version may print another schema.rs); otherwise the script installs it into
# target/tools (reused by later runs, never committed):
#   cargo install --locked --force diesel_cli --version =DIESEL_CLI_VERSION \
#     --no-default-features --features postgres --root target/tools
# with `--features postgres` when pkg-config finds libpq (libpq-dev), else
# `--features postgres-bundled`, which builds libpq and OpenSSL from source
# (it needs only a C compiler, make and perl, but takes minutes longer).
#
# Unless DATABASE_URL is set, it starts a throwaway PostgreSQL on a free port
# in a temp dir, removed afterwards. With DATABASE_URL (an admin URL, as for
# scripts/test.sh) it creates a database of its own there and drops it again.
#
# Environment:
#   DATABASE_URL         use this server instead of a throwaway one
#   DIESEL               the diesel binary to use (no version check)
#   DIESEL_CLI_VERSION   the diesel_cli version to use or install [2.3.14]
#   KEEP_TEMP=1          keep the temp dir (PostgreSQL's log, the output)
#   PG_BINDIR, START_TIMEOUT, STOP_TIMEOUT: see scripts/lib.sh
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
write=""
case "${1:-}" in
-h | --help)
    usage
    exit 0
    ;;
--write) write=1 ;;
"") ;;
*)
    printf 'error: unknown argument: %s (see %s --help)\n' "$1" "$0" >&2
    exit 2
    ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
root=$(cd "$here/.." && pwd)
# print-schema reads diesel.toml; its paths are relative to the repo root.
cd "$root"

schema=crates/consumer/src/schema.rs
tools=$root/target/tools
DIESEL_CLI_VERSION=${DIESEL_CLI_VERSION:-2.3.14}
# rustup installs into ~/.cargo/bin, which a non-login shell may not have.
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    PATH=$HOME/.cargo/bin:$PATH
fi

# diesel_version BIN: "2.3.14 (postgres)", from `diesel --version`, which
# prints "diesel", " Version: 2.3.14" and " Supported Backends: postgres".
diesel_version() {
    local out re='Version:[[:space:]]*([^[:space:]]+).*Backends:[[:space:]]*(.*)'
    out=$("$1" --version 2>/dev/null) || return 1
    [[ "$out" =~ $re ]] || return 1
    printf '%s (%s)\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
}

# diesel_fits BIN: BIN is diesel_cli DIESEL_CLI_VERSION and speaks PostgreSQL.
diesel_fits() {
    local v
    [[ -x "$1" ]] || return 1
    v=$(diesel_version "$1") || return 1
    [[ "$v" == "$DIESEL_CLI_VERSION ("*postgres* ]]
}

# install_diesel: diesel_cli DIESEL_CLI_VERSION into target/tools. --force:
# we only get here when the binary there does not fit (another version, or
# it lost the libpq it was linked to), and cargo would keep the same version.
install_diesel() {
    local feature started
    need_cmd cargo "Install Rust: https://rustup.rs"
    need_cmd cc "diesel_cli links C code: apt-get install gcc"
    if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists libpq; then
        feature=postgres
        say "installing diesel_cli $DIESEL_CLI_VERSION into target/tools, linked to the system's libpq"
    else
        feature=postgres-bundled
        need_cmd make "without libpq-dev, diesel_cli builds libpq and OpenSSL: apt-get install make"
        need_cmd perl "without libpq-dev, diesel_cli builds OpenSSL, whose build needs perl: apt-get install perl"
        say "installing diesel_cli $DIESEL_CLI_VERSION into target/tools, with libpq and OpenSSL built" \
            "from source (no libpq found by pkg-config; with libpq-dev installed this is minutes faster)"
    fi
    started=$(now_ms)
    cargo install --locked --force diesel_cli --version "=$DIESEL_CLI_VERSION" \
        --no-default-features --features "$feature" --root "$tools" ||
        die "installing diesel_cli failed (see above)"
    say "installed diesel_cli in $(since "$started")"
}

if [[ -n "${DIESEL:-}" ]]; then
    diesel=$DIESEL
    [[ -x "$diesel" ]] || diesel=$(command -v "$diesel") || die "DIESEL=$DIESEL: no such program"
elif diesel_fits "$tools/bin/diesel"; then
    diesel=$tools/bin/diesel
elif command -v diesel >/dev/null 2>&1 && diesel_fits "$(command -v diesel)"; then
    diesel=$(command -v diesel)
else
    if command -v diesel >/dev/null 2>&1; then
        say "diesel on PATH is $(diesel_version diesel || echo "of an unknown version"), not $DIESEL_CLI_VERSION with postgres"
    fi
    install_diesel
    diesel=$tools/bin/diesel
    diesel_fits "$diesel" || die "$diesel is not diesel_cli $DIESEL_CLI_VERSION with postgres after installing it"
fi
say "using diesel_cli $(diesel_version "$diesel" || echo "of an unknown version") ($diesel)"

install_cleanup
tmp=$(make_temp_dir hookline-schema)
track_dir "$tmp"

# db_url URL NAME: URL with its database replaced by NAME (query kept).
db_url() {
    local url=$1 name=$2 query=""
    if [[ "$url" == *\?* ]]; then
        query="?${url#*\?}"
        url=${url%%\?*}
    fi
    [[ "${url#*://}" == */* ]] && url=${url%/*}
    printf '%s/%s%s\n' "$url" "$name" "$query"
}

drop_db=""
if [[ -z "${DATABASE_URL:-}" ]]; then
    pg_port=$(free_port)
    start_postgres "$tmp/pg" "$pg_port"
    say "PostgreSQL $("$HL_PG_BINDIR/postgres" -V | awk '{print $3}') on 127.0.0.1:$pg_port (pid $HL_PG_PID, log $HL_PG_LOG)"
    url=$(db_url "postgres://postgres@127.0.0.1:$pg_port/postgres" schema_check)
else
    say "PostgreSQL: using DATABASE_URL from the environment"
    url=$(db_url "$DATABASE_URL" "schema_check_$$_$RANDOM")
    drop_db=1
fi

# A database of our own on someone else's server is dropped on any exit;
# then lib.sh's cleanup (it keeps the exit status it finds in $?).
# shellcheck disable=SC2317 # called by the EXIT trap
on_exit() {
    local rc=$?
    set +e
    if [[ -n "$drop_db" ]]; then
        "$diesel" database drop --database-url "$url" >/dev/null 2>&1 ||
            warn "could not drop the database ${url##*/} (drop it by hand)"
    fi
    (exit "$rc")
    cleanup
}
trap on_exit EXIT

# `diesel database setup` writes into the project: it rewrites [print_schema]'s
# file when the config names one (which would hide the very drift we look
# for) and adds a 00000000000000_diesel_initial_setup migration. So it gets a
# config without [print_schema], and a copy of migrations/.
cp -R migrations "$tmp/migrations"
cat >"$tmp/migrate.toml" <<EOF
[migrations_directory]
dir = "$tmp/migrations"
EOF
"$diesel" database setup --config-file "$tmp/migrate.toml" --database-url "$url" \
    >"$tmp/setup.log" 2>&1 || {
    show_log_tail "$tmp/setup.log"
    die "diesel database setup (create the database, run migrations/) failed"
}

"$diesel" print-schema --config-file "$root/diesel.toml" --database-url "$url" >"$tmp/schema.rs" 2>"$tmp/print-schema.log" || {
    show_log_tail "$tmp/print-schema.log"
    die "diesel print-schema failed"
}
[[ -s "$tmp/schema.rs" ]] || die "diesel print-schema printed nothing"

if [[ -n "$write" ]]; then
    if cmp -s "$schema" "$tmp/schema.rs"; then
        say "$schema already matches the migrations"
    else
        cp "$tmp/schema.rs" "$schema"
        say "wrote $schema from the migrations"
    fi
    exit 0
fi

if diff -u --label "$schema (committed)" --label "diesel print-schema (of migrations/)" \
    "$schema" "$tmp/schema.rs" >&2; then
    say "$schema matches the migrations"
    exit 0
fi
say ""
die "$schema is not what \`diesel print-schema\` makes of migrations/ (diff above). \
Regenerate it with scripts/schema_check.sh --write (or, against a migrated database: \
diesel print-schema --database-url URL > $schema)"
