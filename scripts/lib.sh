#!/usr/bin/env bash
# Helpers shared by scripts/*.sh and .ci/run.
#
# Source it, don't run it:   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# What it gives you:
#   say / warn / die          messages on stderr ("die" exits 1)
#   need_cmd CMD HINT         fail clearly when a prerequisite is missing
#   now_ms, fmt_ms, since     wall-clock timing of steps
#   pg_bindir                 the newest PostgreSQL server bin directory
#   free_port, port_in_use    TCP ports on 127.0.0.1
#   port_or_free PORT         PORT, or a free one when PORT is taken
#   make_temp_dir             a temp dir the postgres user can reach
#   start_postgres DIR PORT   a throwaway (or reused) cluster, pid in HL_PG_PID
#   start_redis DIR PORT ...  a redis-server, pid in HL_REDIS_PID
#   start_bg NAME LOG CMD...  any background process, pid in HL_BG_PID
#   install_cleanup           trap that stops what we started, removes temp dirs
#   json_field KEY JSON       the first "KEY": "string" | number in a JSON text
#   env_file_lines FILE       the KEY=value lines of an env file (demo.env)
#   env_file_value FILE KEY   one value of it
#   compose_cmd               HL_COMPOSE: `docker compose` (v2) or `docker-compose` (v1)
#
# Only pids this script started are ever signalled: every start_* registers
# the pid it got, and cleanup stops exactly those, newest first.
#
# Environment overrides:
#   PG_BINDIR         PostgreSQL server bin dir (default: newest installed)
#   PG_OS_USER        system user that runs PostgreSQL when we are root (postgres)
#   START_TIMEOUT     seconds to wait for a server to get ready (60)
#   STOP_TIMEOUT      seconds between SIGTERM and SIGKILL on cleanup (5)
#   KEEP_TEMP=1       keep temp dirs (logs) after exit, for debugging

# Sourced twice (e.g. by a script and a helper it sources)? Keep the state.
if [[ -n "${HL_LIB_LOADED:-}" ]]; then
    return 0
fi
HL_LIB_LOADED=1

if ((BASH_VERSINFO[0] < 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] < 1))); then
    printf 'error: bash >= 5.1 is required (this is %s)\n' "$BASH_VERSION" >&2
    exit 1
fi

HL_PIDS=()     # pids to stop on exit, in start order
HL_SIGNALS=()  # the first signal to send to each (postgres wants INT: fast shutdown)
HL_NAMES=()    # what each pid is, for messages
HL_DIRS=()     # temp dirs to remove on exit
HL_CLEANED=""

: "${PG_OS_USER:=postgres}"
: "${START_TIMEOUT:=60}"
: "${STOP_TIMEOUT:=5}"

say() { printf '%s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# need_cmd CMD "how to get it": fail with the hint when CMD is not on PATH.
need_cmd() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH. $2"
}

is_root() { [[ "$(id -u)" == 0 ]]; }

# ----------------------------------------------------------------------------
# Time

# Milliseconds since the epoch (EPOCHREALTIME, bash >= 5; the decimal
# separator follows the locale, so keep digits only).
now_ms() {
    local t=${EPOCHREALTIME//[!0-9]/}
    printf '%s\n' "$((10#$t / 1000))"
}

# fmt_ms 83456 -> "1m23.4s"; fmt_ms 3456 -> "3.4s"
fmt_ms() {
    local ms=$1 m s t
    m=$((ms / 60000))
    s=$(((ms % 60000) / 1000))
    t=$(((ms % 1000) / 100))
    if ((m > 0)); then
        printf '%dm%02d.%ds\n' "$m" "$s" "$t"
    else
        printf '%d.%ds\n' "$s" "$t"
    fi
}

# since START_MS -> human duration from START_MS to now
since() { fmt_ms "$(($(now_ms) - $1))"; }

# ----------------------------------------------------------------------------
# PostgreSQL location

# has_pg_server: true when a PostgreSQL server (initdb) is installed.
has_pg_server() { pg_bindir_find >/dev/null; }

pg_bindir_find() {
    local d best=""
    if [[ -n "${PG_BINDIR:-}" ]]; then
        [[ -x "$PG_BINDIR/initdb" ]] || return 1
        printf '%s\n' "$PG_BINDIR"
        return 0
    fi
    # Newest version first: 16 sorts after 9.6 with sort -V.
    best=$(
        for d in /usr/lib/postgresql/*/bin; do
            [[ -x "$d/initdb" ]] && printf '%s\n' "$d"
        done | sort -V | tail -n 1
    )
    if [[ -z "$best" ]] && command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null || true)
        [[ -n "$d" && -x "$d/initdb" ]] && best=$d
    fi
    if [[ -z "$best" ]] && command -v initdb >/dev/null 2>&1; then
        best=$(dirname "$(command -v initdb)")
    fi
    [[ -n "$best" ]] || return 1
    printf '%s\n' "$best"
}

# pg_bindir: the directory holding initdb, pg_ctl, postgres, pg_isready.
pg_bindir() {
    pg_bindir_find || die "PostgreSQL server not found (no initdb under /usr/lib/postgresql/*/bin, \
nor via pg_config or PATH${PG_BINDIR:+, nor in PG_BINDIR=$PG_BINDIR}). \
Install it: apt-get install postgresql"
}

# ----------------------------------------------------------------------------
# Ports

# port_in_use PORT: true when something accepts connections on 127.0.0.1:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port: print a TCP port on 127.0.0.1 nobody listens on, chosen below the
# kernel's ephemeral range (ip_local_port_range): ports in that range are also
# handed to the local end of outgoing connections, so one can be taken between
# this check and our server's bind ("Address already in use", seen in CI).
# Someone could still take a port before we bind; callers start their server
# right away and a failed start says so in its log.
free_port() {
    local p i low=32768 high
    if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
        read -r low _ </proc/sys/net/ipv4/ip_local_port_range || low=32768
    fi
    high=$((low < 12000 ? 12000 : (low > 32768 ? 32768 : low)))
    for ((i = 0; i < 100; i++)); do
        p=$((10000 + (RANDOM * 32768 + RANDOM) % (high - 10000)))
        if ! port_in_use "$p"; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    die "no free TCP port found on 127.0.0.1 after 100 tries"
}

# port_or_free PORT: PORT when nothing listens on it, else a free port (a
# fixed port of the demo may be taken on a shared machine).
port_or_free() {
    if port_in_use "$1"; then
        free_port
    else
        printf '%s\n' "$1"
    fi
}

# ----------------------------------------------------------------------------
# Running things as the PostgreSQL user

# PostgreSQL refuses to run as root; as root we run its tools as PG_OS_USER.
# The working directory moves to / so that initdb can always resolve it (it
# calls getcwd, which fails in e.g. /root for the postgres user).
as_pg_user() {
    if is_root; then
        getent passwd "$PG_OS_USER" >/dev/null ||
            die "running as root, but there is no '$PG_OS_USER' system user to run PostgreSQL as \
(it comes with 'apt-get install postgresql'; or set PG_OS_USER)"
        if command -v runuser >/dev/null 2>&1; then
            (cd / && runuser -u "$PG_OS_USER" -- "$@")
        else
            (cd / && su "$PG_OS_USER" -s /bin/sh -c "$(printf '%q ' "$@")")
        fi
    else
        (cd / && "$@")
    fi
}

# as_pg_exec CMD...: exec CMD as the PostgreSQL user, keeping this pid.
# Meant for `start_bg`: the tracked pid then is CMD's own pid.
as_pg_exec() {
    if is_root; then
        if command -v setpriv >/dev/null 2>&1; then
            cd / && exec setpriv --reuid="$PG_OS_USER" --regid="$PG_OS_USER" \
                --init-groups --reset-env -- "$@"
        fi
        # No setpriv: runuser forks, so the tracked pid is runuser's; it
        # passes our signal on as SIGTERM (smart shutdown) - slower, but works.
        cd / && exec runuser -u "$PG_OS_USER" -- "$@"
    fi
    exec "$@"
}

# pg_user_can_use DIR: true when the PostgreSQL user can reach and write DIR.
pg_user_can_use() {
    if is_root; then
        as_pg_user test -x "$1" -a -w "$1" 2>/dev/null
    else
        [[ -x "$1" && -w "$1" ]]
    fi
}

# make_temp_dir [NAME]: a fresh temp dir (removed on exit), printed on stdout.
# As root it must be reachable by the postgres user: chmod 755, and fall
# back to /tmp when $TMPDIR sits somewhere it can't traverse.
make_temp_dir() {
    local name=${1:-hookline} dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX") || die "mktemp failed in ${TMPDIR:-/tmp}"
    chmod 755 "$dir"
    if is_root && ! as_pg_user test -x "$dir" 2>/dev/null; then
        rmdir "$dir"
        dir=$(mktemp -d "/tmp/$name.XXXXXX") || die "mktemp failed in /tmp"
        chmod 755 "$dir"
    fi
    printf '%s\n' "$dir"
}

# ----------------------------------------------------------------------------
# Processes

# track_pid PID NAME [SIGNAL]: stop PID on exit (SIGNAL first, default TERM).
track_pid() {
    HL_PIDS+=("$1")
    HL_NAMES+=("$2")
    HL_SIGNALS+=("${3:-TERM}")
}

# track_dir DIR: remove DIR on exit (unless KEEP_TEMP=1).
track_dir() { HL_DIRS+=("$1"); }

# pid_alive PID: running and not a zombie (an orphan's zombie lingers when
# PID 1 of a container does not reap).
pid_alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    if [[ -r "/proc/$1/stat" ]]; then
        stat=$(<"/proc/$1/stat") || return 1
        stat=${stat##*) }
        [[ "${stat:0:1}" != Z ]]
    fi
}

# stop_pid PID NAME [SIGNAL]: SIGNAL (TERM), then KILL after STOP_TIMEOUT s.
stop_pid() {
    local pid=$1 name=$2 sig=${3:-TERM} deadline
    pid_alive "$pid" || {
        wait "$pid" 2>/dev/null || true
        return 0
    }
    kill "-$sig" "$pid" 2>/dev/null || return 0
    deadline=$(($(now_ms) + STOP_TIMEOUT * 1000))
    while pid_alive "$pid" && (($(now_ms) < deadline)); do
        sleep 0.1
    done
    if pid_alive "$pid"; then
        warn "$name (pid $pid) still running ${STOP_TIMEOUT}s after SIG$sig; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # Reap it if it is our child; quiet the "Killed" notice.
    wait "$pid" 2>/dev/null || true
}

# start_bg NAME LOG CMD [ARGS...]: run CMD in the background, stdout and
# stderr appended to LOG; its pid is in HL_BG_PID, stopped on exit with
# SIGTERM (or $HL_STOP_SIGNAL when set).
start_bg() {
    local name=$1 log=$2
    shift 2
    "$@" >>"$log" 2>&1 </dev/null &
    HL_BG_PID=$!
    track_pid "$HL_BG_PID" "$name" "${HL_STOP_SIGNAL:-TERM}"
}

# show_log_tail FILE: the last lines of a log, to explain a failure.
show_log_tail() {
    [[ -s "$1" ]] || return 0
    say "---- last lines of $1 ----"
    tail -n 40 "$1" >&2
    say "----"
}

# wait_ready WHAT TIMEOUT PID LOG CMD...: poll CMD every 0.1 s until it
# succeeds. Dies (showing LOG) when PID exits first or TIMEOUT s pass.
# PID may be "-" when there is no process to watch.
wait_ready() {
    local what=$1 timeout=$2 pid=$3 log=$4 deadline
    shift 4
    deadline=$(($(now_ms) + timeout * 1000))
    until "$@" >/dev/null 2>&1; do
        if [[ "$pid" != - ]] && ! pid_alive "$pid"; then
            show_log_tail "$log"
            die "$what exited before it got ready (log: $log)"
        fi
        if (($(now_ms) >= deadline)); then
            show_log_tail "$log"
            die "$what not ready after ${timeout}s (log: $log)"
        fi
        sleep 0.1
    done
}

# cleanup: stop every tracked pid (newest first), remove temp dirs.
# Runs once, from the EXIT trap; keeps the script's exit status.
cleanup() {
    local rc=$? i
    [[ -n "$HL_CLEANED" ]] && return "$rc"
    HL_CLEANED=1
    set +e
    trap '' INT TERM
    for ((i = ${#HL_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${HL_PIDS[i]}" "${HL_NAMES[i]}" "${HL_SIGNALS[i]}"
    done
    for i in "${HL_DIRS[@]}"; do
        if [[ "${KEEP_TEMP:-}" == 1 ]]; then
            say "kept $i (KEEP_TEMP=1)"
        else
            rm -rf -- "$i"
        fi
    done
    return "$rc"
}

# install_cleanup: run cleanup on any exit, Ctrl-C or SIGTERM included.
install_cleanup() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# ----------------------------------------------------------------------------
# PostgreSQL

# start_postgres DIR PORT [postgres args...]
# A cluster in DIR/data (initdb'd unless it already exists: the demo reuses
# it), listening on 127.0.0.1:PORT only, socket in DIR, log DIR/postgres.log,
# superuser "postgres" with trust auth. Sets HL_PG_PID, HL_PG_BINDIR and
# HL_PG_LOG; the server is stopped on exit.
start_postgres() {
    local dir=$1 port=$2 bindir data log sockdir
    shift 2
    bindir=$(pg_bindir)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    data=$dir/data
    log=$dir/postgres.log

    if is_root; then
        chown "$PG_OS_USER": "$dir" 2>/dev/null ||
            die "cannot chown $dir to '$PG_OS_USER' (is there such a user? apt-get install postgresql)"
        [[ -e "$data" ]] && chown -R "$PG_OS_USER": "$data"
        pg_user_can_use "$dir" ||
            die "the '$PG_OS_USER' user cannot reach $dir (a parent directory is not \
world-traversable); use a directory under /tmp"
    fi

    if [[ ! -s "$data/PG_VERSION" ]]; then
        as_pg_user "$bindir/initdb" -D "$data" --auth=trust -U postgres --no-sync \
            --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 || {
            show_log_tail "$dir/initdb.log"
            die "initdb failed in $data (log: $dir/initdb.log)"
        }
    elif [[ "$(<"$data/PG_VERSION")" != "$("$bindir/postgres" -V | awk '{print $3}' | cut -d. -f1)" ]]; then
        die "$data was made by PostgreSQL $(<"$data/PG_VERSION"), but $bindir is \
$("$bindir/postgres" -V | awk '{print $3}'); remove $dir to start afresh"
    fi

    # The socket path must fit in sun_path (107 bytes); we talk TCP anyway.
    sockdir=$dir
    if ((${#dir} > 90)); then
        sockdir=""
    fi

    # postgres runs as our direct child (setpriv execs, it does not fork
    # like runuser does), so the pid we track is the postmaster's own.
    # SIGINT is PostgreSQL's "fast shutdown": it doesn't wait for clients.
    HL_STOP_SIGNAL=INT start_bg postgres "$log" as_pg_exec "$bindir/postgres" -D "$data" \
        -c listen_addresses=127.0.0.1 -p "$port" -c "unix_socket_directories=$sockdir" \
        -c fsync=off -c max_connections=300 "$@"
    HL_PG_PID=$HL_BG_PID
    # shellcheck disable=SC2034 # for the caller
    HL_PG_BINDIR=$bindir
    # shellcheck disable=SC2034 # for the caller
    HL_PG_LOG=$log

    wait_ready "PostgreSQL" "$START_TIMEOUT" "$HL_PG_PID" "$log" \
        "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres
}

# ----------------------------------------------------------------------------
# Redis

# start_redis DIR PORT [redis-server args...]
# redis-server on 127.0.0.1:PORT with its files in DIR, no RDB snapshots,
# log DIR/redis.log. Sets HL_REDIS_PID; stopped on exit.
start_redis() {
    local dir=$1 port=$2
    shift 2
    need_cmd redis-server "Install it: apt-get install redis-server"
    need_cmd redis-cli "Install it: apt-get install redis-tools"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    start_bg redis-server "$dir/redis.log" redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
        --save '' --daemonize no --logfile "$dir/redis.log" "$@"
    HL_REDIS_PID=$HL_BG_PID
    wait_ready "redis-server" "$START_TIMEOUT" "$HL_REDIS_PID" "$dir/redis.log" \
        redis_pong "$port"
}

redis_pong() {
    [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]
}

# ----------------------------------------------------------------------------
# JSON

# json_field KEY JSON: the first "KEY": "string" | number in JSON. Enough for
# the flat answers of our own services; not a JSON parser.
json_field() {
    local re="\"$1\"[[:space:]]*:[[:space:]]*(\"([^\"]*)\"|(-?[0-9][0-9.]*))"
    [[ "$2" =~ $re ]] || return 1
    printf '%s\n' "${BASH_REMATCH[2]}${BASH_REMATCH[3]}"
}

# ----------------------------------------------------------------------------
# Env files

# env_file_lines FILE: its KEY=value lines, as Compose's env_file reads them:
# blank lines and # comments skipped, the value taken as it stands (demo.env
# writes none that quotes, escapes or expansion would change). Fails, naming
# the line, on anything else.
env_file_lines() {
    local file=$1 line n=0
    [[ -r "$file" ]] || {
        warn "$file: cannot read it"
        return 1
    }
    while IFS= read -r line || [[ -n "$line" ]]; do
        n=$((n + 1))
        [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
        if [[ ! "$line" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; then
            warn "$file:$n: not a KEY=value line: $line"
            return 1
        fi
        printf '%s\n' "$line"
    done <"$file"
}

# env_file_value FILE KEY: the value of KEY in FILE (the last, as Compose
# does when a key repeats); fails when FILE does not set it.
env_file_value() {
    local lines line value="" found=""
    lines=$(env_file_lines "$1") || return 1
    while IFS= read -r line; do
        if [[ "${line%%=*}" == "$2" ]]; then
            value=${line#*=}
            found=1
        fi
    done <<<"$lines"
    [[ -n "$found" ]] || return 1
    printf '%s\n' "$value"
}

# ----------------------------------------------------------------------------
# Docker Compose

# compose_cmd: set HL_COMPOSE to the Compose this machine has, `docker
# compose` (v2, the plugin) or else `docker-compose` (v1, e.g. Debian's
# package); false when it has neither. docker-compose.yml works with both.
# shellcheck disable=SC2034 # for the caller
compose_cmd() {
    if docker compose version >/dev/null 2>&1; then
        HL_COMPOSE=(docker compose)
    elif command -v docker-compose >/dev/null 2>&1; then
        HL_COMPOSE=(docker-compose)
    else
        return 1
    fi
}
