#!/usr/bin/env bash
# The README's `docker compose up`, proven on a real Docker engine: builds
# the images, starts the stack, and breaks it on purpose.
#
#   0. base images: the official ones, or (default) local stand-ins from
#      scripts/compose_images.sh for an engine without a registry; then the
#      README's own command, `docker compose up --build -d`, and a wait for
#      every healthcheck
#   1. POST /documents on the consumer: the review is PENDING_REVIEW, through
#      the API and through scripts/local_db.sh, and flips to ACCEPTED or
#      DECLINED 2-5 s later
#   2. both dashboards answer; only on loopback, the help desk's API behind
#      the demo key
#   3. --scale worker=3 and 500 reviews: each decided exactly once on the
#      consumer, every case delivered once by the help desk
#   4. a worker SIGKILLed (docker kill) with deliveries in flight: nothing lost
#   5. the consumer cut off the network for 20 s: the webhooks that failed
#      meanwhile land after it returns
#   6. `docker compose restart redis` with jobs pending, then the same with a
#      SIGKILL (`docker compose kill redis`): nothing accepted is lost (AOF)
#   7. `docker compose stop` is clean (exit 0, within compose's 10 s) with a
#      dashboard's event stream open, and `docker compose down -v` leaves no
#      container, network or volume of the project behind
# then the same images (rebuilt from the layer cache: nothing compiles again)
# in the "beyond one box" topology, docker-compose.cluster.yml, under a
# project of its own:
#   8. up: six Redis nodes, the cluster's one-shot init, the help desk and two
#      workers on the cluster, three consumer replicas behind nginx; a wait
#      for every healthcheck and for the init to exit 0
#   9. the cluster: 3 masters holding all 16384 slots, each with a synced
#      replica, nodes known by their names; the init run again creates nothing
#  10. the dashboard's event stream through nginx: a review's creation and
#      its decision arrive while the stream is open (nothing buffered)
#  11. CLUSTER_BATCH reviews through nginx, one consumer replica SIGKILLed
#      once decisions are landing and before the second half is posted: every
#      POST answered 201, every review created once and decided once (one
#      receipt each), every case delivered; which replica took what (nginx's
#      log)
#  12. the queue's keys on the masters: with REDIS_PARTITIONS (if this help
#      desk has it) on every master
#  13. `down -v` leaves nothing of that project either
# and prints the figures: engine and compose versions, build time, time to
# healthy, the flip time, image sizes; the cluster's time to healthy, the
# batch, the kill, the spread over replicas and masters, each phase's time.
#
# Each phase is a list of steps (run_step, below): a step's checks stop the
# test at the first that fails, and the report then shows the containers and
# the last log lines of the services that step involves.
#
# Usage: scripts/compose_test.sh [--keep] [--no-cluster | --cluster-only]
#   --keep           leave the stack running at the end (and after a failure),
#                    to look around; the command that removes it is printed
#   --no-cluster     steps 0-7 only
#   --cluster-only   steps 0 and 8-13 only (builds the images if missing)
#
# Uses `docker compose` (v2) or else `docker-compose` (v1), whichever is
# installed. Touches only its own compose project: containers, network and
# volumes labelled with COMPOSE_PROJECT_NAME.
#
# Environment:
#   COMPOSE_PROJECT_NAME   the test's project [hookline-compose-test]; the
#                          cluster phase's is the same with -cluster appended
#   CONSUMER_PORT, HELPDESK_PORT   published ports [3333, 8080; free ones if taken]
#   STANDIN_IMAGES=0       use the official base images (needs a registry);
#                          by default scripts/compose_images.sh builds or
#                          reuses local stand-ins
#   BATCH                  reviews of step 3 [500]
#   KILL_BATCH             reviews requested just before the kill of step 4 [300]
#   ENDPOINT_CONCURRENCY   deliveries in flight at the kill, at least [16]
#   OUTAGE_SECONDS         how long step 5 cuts the consumer off [20]
#   CLUSTER_BATCH          reviews of step 11, half before the kill [200]
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

keep=""
phases=all
for arg in "$@"; do
    case "$arg" in
    --keep) keep=1 ;;
    --no-cluster) phases=single ;;
    --cluster-only) phases=cluster ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        printf 'error: unknown argument: %s (see %s --help)\n' "$arg" "$0" >&2
        exit 2
        ;;
    esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
root=$(cd "$here/.." && pwd)
cd "$root"

: "${BATCH:=500}"
: "${KILL_BATCH:=300}"
: "${ENDPOINT_CONCURRENCY:=16}" # the help desk's ENDPOINT_CONCURRENCY_START: an endpoint's limit, at first
: "${OUTAGE_SECONDS:=20}"
: "${CLUSTER_BATCH:=200}"
# Half of it is killed into; each replica must have answered some of it.
((CLUSTER_BATCH >= 60 && CLUSTER_BATCH % 2 == 0)) || die "CLUSTER_BATCH must be an even number, 60 or more"
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-hookline-compose-test}
single_project=$COMPOSE_PROJECT_NAME
cluster_project=$COMPOSE_PROJECT_NAME-cluster

need_cmd docker "Install Docker (apt-get install docker.io docker-compose) and start its engine"
need_cmd curl "Install it: apt-get install curl"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (docker info failed)"
compose_cmd || die "neither 'docker compose' nor 'docker-compose' is installed (apt-get install docker-compose)"
compose() { "${HL_COMPOSE[@]}" "$@"; }

export CONSUMER_PORT=${CONSUMER_PORT:-$(port_or_free 3333)}
export HELPDESK_PORT=${HELPDESK_PORT:-$(port_or_free 8080)}
consumer=http://127.0.0.1:$CONSUMER_PORT
helpdesk=http://127.0.0.1:$HELPDESK_PORT
# The demo's API key, as demo.env gives it to the consumer (one of the help
# desk's HELPDESK_API_KEYS).
api_key=$(env_file_value "$root/demo.env" HELPDESK_API_KEY) || die "no HELPDESK_API_KEY in $root/demo.env"

# --- the stack under test --------------------------------------------------------------
# compose, and every helper below, follows COMPOSE_FILE and
# COMPOSE_PROJECT_NAME: a phase only points them at its topology.
project="" stack_services=() front="" down_hint=""

# use_stack single | cluster: docker-compose.yml alone, or with
# docker-compose.cluster.yml under a project of its own.
use_stack() {
    case "$1" in
    single)
        export COMPOSE_PROJECT_NAME=$single_project
        stack_services=(consumer helpdesk worker redis db)
        front=consumer
        down_hint="${HL_COMPOSE[*]} -p $single_project down -v"
        ;;
    cluster)
        export COMPOSE_PROJECT_NAME=$cluster_project
        export COMPOSE_FILE=docker-compose.yml${COMPOSE_PATH_SEPARATOR:-:}docker-compose.cluster.yml
        stack_services=(consumer consumer-replica helpdesk worker redis-cluster-init redis db)
        front=nginx
        down_hint="${HL_COMPOSE[*]} -p $cluster_project -f docker-compose.yml -f docker-compose.cluster.yml down -v"
        ;;
    esac
    project=$COMPOSE_PROJECT_NAME
}

# --- steps, and what a failed one shows ------------------------------------------------
started_all=$(now_ms)
step_title=""   # the step running; empty between steps
step_logs=()    # the services whose logs explain its failure
step_started=0

# run_step FUNC TITLE [SERVICE... | all]: announce TITLE and run FUNC, a
# step: its checks call fail, and it ends with an ok line and its figures.
# When it fails, by a check or by a command nothing checks, the report at
# exit (failure_report) shows the stack's containers and the last log lines
# of each SERVICE ("all": every service of the stack; none: no logs).
run_step() {
    local fn=$1
    step_title=$2
    shift 2
    step_logs=("$@")
    step_started=$(now_ms)
    say ""
    say "==> $step_title"
    "$fn"
    step_title=""
}
ok() { say "    ok: $* ($(since "$step_started"))"; }
fail() {
    say ""
    say "FAILED: $*"
    exit 1
}

# failure_report: the failed step, the containers and the logs it names.
failure_report() {
    local service services=("${step_logs[@]}")
    say ""
    say "==> FAILED: $step_title (after $(since "$step_started"))"
    ((${#services[@]} > 0)) || return 0
    [[ "${services[0]}" == all ]] && services=("${stack_services[@]}")
    say "---- containers of $project ----"
    compose ps >&2 || true
    for service in "${services[@]}"; do
        say "---- last log lines of $service ----"
        compose logs --no-color --tail 25 "$service" >&2 2>/dev/null || true
    done
}

bg_pids=()
paused=""
# unpause: let a container paused by step 4 go (also when a check fails).
unpause() {
    if [[ -n "$paused" ]]; then
        docker unpause "$paused" >/dev/null 2>&1 || true
        paused=""
    fi
}
finish() {
    local rc=$?
    set +e
    trap - ERR
    unpause
    # Not after Ctrl-C or a SIGTERM: nothing failed.
    if ((rc != 0 && rc != 130 && rc != 143)) && [[ -n "$step_title" ]]; then
        failure_report
    fi
    local pid
    for pid in "${bg_pids[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ -n "$keep" ]]; then
        say "the stack is still up (--keep): $down_hint"
    elif [[ -n "$project" ]]; then
        compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1
    fi
    return "$rc"
}
trap finish EXIT
# set -e stops the test at a failure nothing checks: say where.
set -E
trap 'say "FAILED: exit $? of a command nothing checks, line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# poll_until SECONDS WHAT CMD...: CMD every 0.25 s until it succeeds, or fail.
poll_until() {
    local timeout=$1 what=$2 deadline
    shift 2
    deadline=$(($(now_ms) + timeout * 1000))
    until "$@"; do
        (($(now_ms) < deadline)) || fail "$what: not within ${timeout}s"
        sleep 0.25
    done
}

# --- helpers the steps share -----------------------------------------------------------
# helpdesk_get PATH: GET from the help desk's API, with the demo key.
helpdesk_get() { curl -sS --max-time 5 -H "Authorization: Bearer $api_key" "$helpdesk$1"; }

# container_of SERVICE: the id of the service's (first) container; stopped
# ones included (v2's `ps` lists only running containers without -a).
container_of() { compose ps -a -q "$1" | head -n 1; }
containers() { compose ps -a -q; }
health_of() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1" 2>/dev/null; }
# ip_of CONTAINER: its address on the project's network.
ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
# exit_code_of CONTAINER: how its last run ended (137: SIGKILLed).
exit_code_of() { docker inspect -f '{{.State.ExitCode}}' "$1"; }

# healthy_count N [SERVICE]: N containers of SERVICE (of the stack when
# none is named), every one healthy.
healthy_count() {
    local want=$1 c n=0
    shift
    for c in $(compose ps -a -q "$@"); do
        [[ "$(health_of "$c")" == healthy ]] || return 1
        n=$((n + 1))
    done
    ((n == want))
}

# The stack's db and redis (the cluster's first node) containers, set by the
# step that waits for the stack to be healthy.
db="" redis=""
sql() { docker exec -i "$db" psql -U hookline -d hookline -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
redis_cli() { docker exec -i "$redis" redis-cli "$@"; }

# jobs_pending: jobs waiting in any endpoint's due set or in flight.
jobs_pending() {
    local total key
    total=$(redis_cli ZCARD '{helpdesk}:inflight')
    while read -r key; do
        [[ -n "$key" ]] && total=$((total + $(redis_cli ZCARD "$key")))
    done < <(redis_cli --scan --pattern '{helpdesk}:due:*')
    echo "$total"
}

# post_review URL: POST /documents; the body on stdout, or fail.
post_review() {
    local answer code
    answer=$(curl -sS --max-time 15 -w '\n%{http_code}' -X POST "$consumer/documents" \
        -H 'content-type: application/json' -d "{\"documentUrl\": \"$1\"}") ||
        fail "POST /documents: no answer"
    code=${answer##*$'\n'}
    [[ "$code" == 201 ]] || fail "POST /documents answered $code: ${answer%$'\n'*}"
    printf '%s\n' "${answer%$'\n'*}"
}

# post_many TAG N: N reviews of https://example.com/TAG/<i>.pdf, 16 at a time.
post_many() {
    local tag=$1 n=$2 codes
    codes=$(seq 1 "$n" | xargs -P 16 -I{} curl -sS --max-time 15 -o /dev/null -w '%{http_code}\n' \
        -X POST "$consumer/documents" -H 'content-type: application/json' \
        -d "{\"documentUrl\": \"https://example.com/$tag/{}.pdf\"}" | sort | uniq -c | tr -s ' ')
    [[ "$codes" == " $n 201" ]] || fail "POST /documents of $tag: want $n x 201, got:$codes"
}

# count_reviews TAG STATUS: reviews of TAG with that status.
count_reviews() {
    sql "SELECT count(*) FROM document_reviews WHERE document_url LIKE 'https://example.com/$1/%' AND document_status = '$2'"
}
# none_pending TAG...: no review of any TAG is still PENDING_REVIEW.
none_pending() {
    local tag
    for tag in "$@"; do
        [[ "$(count_reviews "$tag" PENDING_REVIEW)" == 0 ]] || return 1
    done
}
# decided_count TAG: reviews of TAG that are ACCEPTED or DECLINED.
decided_count() {
    sql "SELECT count(*) FROM document_reviews WHERE document_url LIKE 'https://example.com/$1/%' AND document_status <> 'PENDING_REVIEW'"
}
# decided_at_least TAG N: N reviews of TAG or more are decided.
decided_at_least() { (($(decided_count "$1") >= $2)); }
# review_decided ID: the review is ACCEPTED or DECLINED, which review_status says.
review_status=""
review_decided() {
    review_status=$(json_field documentStatus "$(curl -sS --max-time 5 "$consumer/documents/$1")") &&
        [[ "$review_status" == ACCEPTED || "$review_status" == DECLINED ]]
}
# cases_of WHERE: "STATE ATTEMPTS" of the help desk's case of each review
# matching the SQL condition WHERE.
cases_of() {
    local doc json
    sql "SELECT document_id FROM document_reviews WHERE $1" |
        while read -r doc; do
            json=$(helpdesk_get "/document/$doc")
            printf '%s %s\n' "$(json_field state "$json")" "$(json_field attempts "$json")"
        done
}

# metric URL NAME{labels}: a sample's value (0 when absent).
metric() {
    curl -sS --max-time 5 "$1/metrics" | awk -v name="$2" '$1 == name { print $2; found = 1 } END { if (!found) print 0 }'
}

# --- steps of both phases ----------------------------------------------------------------
step_base_images() {
    engine_version=$(docker version -f '{{.Server.Version}}')
    compose_version=$(compose version --short 2>/dev/null || compose version | head -n 1)
    say "    docker engine $engine_version, client $(docker version -f '{{.Client.Version}}'), $compose_version (${HL_COMPOSE[*]})"
    if [[ "${STANDIN_IMAGES:-1}" != 0 ]]; then
        local t standins line
        t=$(now_ms)
        standins=$("$here/compose_images.sh")
        standin_time=$(since "$t")
        say "    stand-in base images ready in $standin_time:"
        while IFS= read -r line; do
            export "${line?}"
            say "      $line"
        done <<<"$standins"
    else
        standin_time="(official images)"
    fi
    ok "base images ready"
}

# step_up: `up --build -d` from a clean start; its output shown if it fails.
# Sets t_up and t_started (when it returned).
step_up() {
    local up_log
    # A clean start: whatever an earlier, interrupted run of this project left.
    compose down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || true
    say "    ${HL_COMPOSE[*]} up --build -d   (project $project, $front :$CONSUMER_PORT, helpdesk :$HELPDESK_PORT)"
    t_up=$(now_ms)
    up_log=$(mktemp "${TMPDIR:-/tmp}/hookline-compose-up.XXXXXX")
    if ! compose up --build -d >"$up_log" 2>&1; then
        tail -n 60 "$up_log" >&2
        rm -f "$up_log"
        fail "up --build -d (the last lines of its output above)"
    fi
    rm -f "$up_log"
    t_started=$(now_ms)
    ok "up returned after $(fmt_ms $((t_started - t_up)))"
}

# down_leaves_nothing: `down -v`, then no container, network or volume of
# the project may be left.
step_down() {
    local kind found left=""
    compose down -v --remove-orphans || fail "docker compose down -v"
    for kind in container network volume; do
        case "$kind" in
        container) found=$(docker ps -aq --filter "label=com.docker.compose.project=$project") ;;
        *) found=$(docker "$kind" ls -q --filter "label=com.docker.compose.project=$project") ;;
        esac
        [[ -z "$found" ]] || left+=" $kind(s): $found"
    done
    [[ -z "$left" ]] || fail "docker compose down -v left behind:$left"
    ok "no container, network or volume left"
}

# --- the single-server stack: docker-compose.yml ------------------------------------
step_healthy() {
    poll_until 120 "every container healthy" healthy_count 5
    local t_healthy built_at built_ms
    t_healthy=$(now_ms)
    # The build ends when the last image is written; compose v1 builds before it
    # starts anything, so the time from then to healthy is the start-up itself.
    built_at=$(docker image inspect -f '{{.Created}}' "$(docker inspect -f '{{.Image}}' "$(container_of consumer)")")
    built_ms=$(($(date -d "$built_at" +%s%3N)))
    if ((built_ms > t_up)); then
        build_time=$(fmt_ms $((built_ms - t_up)))
        healthy_time=$(fmt_ms $((t_healthy - built_ms)))
    else
        build_time="(images were already built)"
        healthy_time=$(fmt_ms $((t_healthy - t_up)))
    fi
    db=$(container_of db)
    redis=$(container_of redis)
    ok "built in $build_time; every container healthy $healthy_time after"
}

step_one_review() {
    local review t_posted id document_id in_db flip_ms case_json
    review=$(post_review https://example.com/contract.pdf)
    t_posted=$(now_ms)
    id=$(json_field id "$review") || fail "no id in $review"
    document_id=$(json_field documentId "$review") || fail "no documentId in $review"
    [[ "$(json_field documentStatus "$review")" == PENDING_REVIEW ]] || fail "a new review should be PENDING_REVIEW: $review"
    # Stored as PENDING_REVIEW; on a busy machine psql may come after the
    # decision (the agent takes 2-5 s), which must then be 2 s after it.
    in_db=$("$here/local_db.sh" -XAtq -F ' ' -c "SELECT document_status,
            round(extract(epoch FROM updated_at - created_at) * 1000) FROM document_reviews WHERE id = '$id'") ||
        fail "scripts/local_db.sh cannot reach the compose stack's database"
    case "$in_db" in
    "PENDING_REVIEW "*) ;;
    ACCEPTED\ * | DECLINED\ *)
        ((${in_db#* } >= 1900)) || fail "scripts/local_db.sh shows the review decided ${in_db#* } ms after it was stored"
        ;;
    *) fail "scripts/local_db.sh shows '$in_db' for the new review, not PENDING_REVIEW" ;;
    esac
    poll_until 30 "the review's decision" review_decided "$id"
    flip_ms=$(($(now_ms) - t_posted))
    ((flip_ms >= 1900 && flip_ms <= 8000)) || fail "the review flipped after ${flip_ms} ms; the help desk takes 2-5 s"
    in_db=$("$here/local_db.sh" -XAtq -c "SELECT document_status FROM document_reviews WHERE id = '$id'")
    [[ "$in_db" == "$review_status" ]] || fail "the API says $review_status, scripts/local_db.sh says $in_db"
    case_json=$(helpdesk_get "/document/$document_id")
    [[ "$(json_field state "$case_json")" == DELIVERED ]] || fail "the help desk's case is not DELIVERED: $case_json"
    flip_time=$(fmt_ms "$flip_ms")
    ok "$review_status after $flip_time; scripts/local_db.sh agrees; the help desk's case is DELIVERED"
}

step_dashboards() {
    local page html
    for page in "$consumer/|hookline · consumer" "$helpdesk/|hookline · help desk"; do
        html=$(curl -sS --max-time 5 -w '\n%{http_code} %{content_type}' "${page%%|*}") || fail "GET ${page%%|*}: no answer"
        [[ "${html##*$'\n'}" == "200 text/html"* ]] || fail "GET ${page%%|*}: ${html##*$'\n'}"
        [[ "$html" == *"<title>${page#*|}</title>"* ]] || fail "GET ${page%%|*} is not the ${page#*|} dashboard"
    done
    ok "$consumer/ and $helpdesk/"
}

step_exposure() {
    local service published code
    for service in consumer helpdesk; do
        published=$(docker port "$(container_of "$service")")
        [[ -n "$published" && "$(grep -vc '^[^ ]* -> 127\.0\.0\.1:' <<<"$published")" == 0 ]] ||
            fail "$service is published beyond 127.0.0.1: $published"
    done
    code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "$helpdesk/cases")
    [[ "$code" == 401 ]] || fail "GET /cases without the key: HTTP $code, want 401"
    [[ "$(json_field total "$(helpdesk_get /cases)")" -ge 1 ]] || fail "GET /cases with the key shows no case"
    ok "ports on 127.0.0.1 only; /cases is 401 without the key, served with it"
}

step_exactly_once() {
    local applied_before duplicates_before decided applied duplicates attempts
    compose up -d --scale worker=3 || fail "docker compose up -d --scale worker=3"
    poll_until 60 "three healthy workers" healthy_count 3 worker
    applied_before=$(metric "$consumer" 'hookline_consumer_webhooks_total{outcome="applied"}')
    duplicates_before=$(metric "$consumer" 'hookline_consumer_webhooks_total{outcome="duplicate"}')
    post_many batch "$BATCH"
    poll_until 60 "every review of the batch decided" none_pending batch
    decided=$(($(count_reviews batch ACCEPTED) + $(count_reviews batch DECLINED)))
    ((decided == BATCH)) || fail "$decided of $BATCH reviews decided"
    applied=$(($(metric "$consumer" 'hookline_consumer_webhooks_total{outcome="applied"}') - applied_before))
    duplicates=$(($(metric "$consumer" 'hookline_consumer_webhooks_total{outcome="duplicate"}') - duplicates_before))
    ((applied == BATCH && duplicates == 0)) ||
        fail "want $BATCH webhooks applied and none twice; the consumer applied $applied and saw $duplicates duplicates"
    # The help desk's side: every case of the batch delivered, in one attempt.
    attempts=$(cases_of "document_url LIKE 'https://example.com/batch/%'" | sort | uniq -c | tr -s ' ')
    [[ "$attempts" == " $BATCH DELIVERED 1" ]] || fail "want $BATCH cases DELIVERED in 1 attempt, got:$attempts"
    ok "$BATCH decided, $applied webhooks applied, 0 duplicates, every case delivered in one attempt"
}

inflight() { redis_cli ZCARD '{helpdesk}:inflight'; }
# in_flight_of WORKER_ID: jobs in flight under that worker's lease tokens.
in_flight_of() {
    redis_cli EVAL "local n = 0
        for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
          local lease = redis.call('HGET', ARGV[1] .. id, 'lease')
          if lease and string.sub(lease, 1, #ARGV[2]) == ARGV[2] then n = n + 1 end
        end
        return n" 1 '{helpdesk}:inflight' '{helpdesk}:case:' "$1:"
}
many_in_flight() { (($(inflight) >= ENDPOINT_CONCURRENCY)); }

step_worker_killed() {
    # The consumer answers in milliseconds, so few deliveries are ever in flight
    # at one instant. Pausing it (its kernel still accepts the connections, its
    # process answers nothing) holds them in flight until the kill; it is let go
    # right after. They are one endpoint's, so at most its limit (which starts
    # at 16 and grows with quick answers) are in flight at once, over all workers.
    local consumer_container victim="" victim_jobs=0 c wid n t_kill decided
    post_many kill "$KILL_BATCH"
    consumer_container=$(container_of consumer)
    docker pause "$consumer_container" >/dev/null
    paused=$consumer_container
    poll_until 20 "deliveries in flight" many_in_flight
    for c in $(compose ps -q worker); do
        wid=$(docker logs "$c" 2>&1 | sed -n 's/.*worker_id="\{0,1\}\([0-9a-f]\{32\}\).*/\1/p' | head -n 1)
        [[ -n "$wid" ]] || continue
        n=$(in_flight_of "$wid")
        if ((n > victim_jobs)); then
            victim=$c victim_jobs=$n
        fi
    done
    [[ -n "$victim" ]] || fail "no worker holds a delivery in flight"
    docker kill "$victim" >/dev/null
    t_kill=$(now_ms)
    unpause
    say "    killed worker ${victim:0:12} holding $victim_jobs of $(inflight) deliveries in flight"
    poll_until 120 "every review decided after the kill" none_pending kill
    decided=$(($(count_reviews kill ACCEPTED) + $(count_reviews kill DECLINED)))
    ((decided == KILL_BATCH)) || fail "$decided of $KILL_BATCH reviews decided after the kill"
    [[ "$(exit_code_of "$victim")" == 137 ]] || fail "the worker was not SIGKILLed"
    ok "all $KILL_BATCH decided, the last $(fmt_ms $(($(now_ms) - t_kill))) after the kill (JOB_LEASE is 30s)"
    compose up -d --scale worker=3 >/dev/null 2>&1 || fail "bringing the killed worker back"
}

step_network_cut() {
    local consumer_container network t_cut failed_cases=0 doc n
    consumer_container=$(container_of consumer)
    network=$(docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}' "$consumer_container" | awk '{print $1}')
    post_many outage 20
    docker network disconnect "$network" "$consumer_container"
    t_cut=$(now_ms)
    sleep "$OUTAGE_SECONDS"
    # Back under its service name, as compose had attached it.
    docker network connect --alias consumer "$network" "$consumer_container"
    say "    reconnected after $(since "$t_cut")"
    poll_until 180 "every review decided after the outage" none_pending outage
    for doc in $(sql "SELECT document_id FROM document_reviews WHERE document_url LIKE 'https://example.com/outage/%'"); do
        n=$(json_field attempts "$(helpdesk_get "/document/$doc")")
        ((n > 1)) && failed_cases=$((failed_cases + 1))
    done
    ((failed_cases > 0)) || fail "no delivery failed during the outage: was the consumer really cut off?"
    ok "all 20 decided, $failed_cases after failed attempts, the last $(fmt_ms $(($(now_ms) - t_cut))) after the cut"
}

step_redis_crash() {
    # A restart stops Redis cleanly, and a clean stop saves even without the
    # AOF; a SIGKILL saves nothing, so only `appendfsync always` keeps every
    # accepted job through the second one.
    local pending crash_pending
    post_many restart 50
    pending=$(jobs_pending)
    ((pending > 0)) || fail "no job pending in Redis before the restart"
    compose restart redis >/dev/null 2>&1 || fail "docker compose restart redis"
    poll_until 120 "every review decided after the Redis restart" none_pending restart
    post_many crash 50
    crash_pending=$(jobs_pending)
    ((crash_pending > 0)) || fail "no job pending in Redis before the kill"
    compose kill redis >/dev/null 2>&1 || fail "docker compose kill redis"
    compose start redis >/dev/null 2>&1 || fail "docker compose start redis"
    poll_until 120 "every review decided after Redis was killed" none_pending crash
    post_review https://example.com/after-restart.pdf >/dev/null
    ok "all 100 decided ($pending pending at the restart, $crash_pending at the SIGKILL); POST /documents works after"
}

step_clean_stop() {
    local t_stop stop_time unclean="" c code service image size user
    curl -sSN --max-time 60 "$consumer/events" >/dev/null 2>&1 &
    bg_pids+=($!)
    sleep 0.5
    t_stop=$(now_ms)
    compose stop || fail "docker compose stop"
    stop_time=$(since "$t_stop")
    for c in $(containers); do
        code=$(exit_code_of "$c")
        [[ "$code" == 0 ]] || unclean+=" $(docker inspect -f '{{.Name}}' "$c")=$code"
    done
    [[ -z "$unclean" ]] || fail "not stopped cleanly (exit codes):$unclean"

    image_sizes=$(for service in consumer helpdesk; do
        image=$(docker inspect -f '{{.Image}}' "$(container_of "$service")")
        docker image inspect -f "$service {{.Size}} {{.Config.User}}" "$image"
    done)
    while read -r service size user; do
        [[ "$user" == 10001:10001 ]] || fail "the $service image runs as '$user', not the unprivileged 10001"
    done <<<"$image_sizes"
    ok "every container exited 0 in $stop_time (with an event stream open); both images run as 10001"
}

single_phase() {
    use_stack single
    run_step step_up "0b. the README's command: ${HL_COMPOSE[*]} up --build -d" all
    run_step step_healthy "0c. every container healthy" all
    run_step step_one_review "1. one review flips from PENDING_REVIEW to a decision" consumer helpdesk worker db
    run_step step_dashboards "2. both dashboards answer" consumer helpdesk
    run_step step_exposure "2b. exposed only as meant: loopback ports, the help desk's API behind the demo key" consumer helpdesk
    run_step step_exactly_once "3. --scale worker=3, $BATCH reviews: each decided exactly once" consumer helpdesk worker
    run_step step_worker_killed "4. docker kill a worker with deliveries in flight: nothing lost" worker consumer
    run_step step_network_cut "5. the consumer cut off the network for ${OUTAGE_SECONDS}s: the webhooks land after it returns" consumer worker
    run_step step_redis_crash "6. docker compose restart redis with jobs pending, then kill it: nothing lost (AOF)" redis helpdesk worker
    run_step step_clean_stop "7. docker compose stop is clean" all
    run_step step_down "7b. down -v leaves nothing of $project"
}

# --- the cluster topology: docker-compose.cluster.yml ---------------------------------
# The same images in the "beyond one box" topology, under a project of its own.

# cluster_ready: the cluster's init exited 0 (a failed init fails the test at
# once) and the 14 long-running containers are healthy: 6 Redis nodes, db,
# helpdesk, 2 workers, 3 consumer replicas, nginx.
cluster_ready() {
    local init state c n=0
    init=$(container_of redis-cluster-init)
    [[ -n "$init" ]] || return 1
    state=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$init" 2>/dev/null) || return 1
    case "$state" in
    "exited 0") ;;
    exited*) fail "redis-cluster-init exited with ${state#exited }" ;;
    *) return 1 ;;
    esac
    for c in $(containers); do
        [[ "$c" == "$init" ]] && continue
        [[ "$(health_of "$c")" == healthy ]] || return 1
        n=$((n + 1))
    done
    ((n == 14))
}

step_cluster_healthy() {
    poll_until 120 "every container of the cluster topology healthy, the cluster's init done" cluster_ready
    cluster_up_time=$(fmt_ms $((t_started - t_up)))
    cluster_healthy_time=$(since "$t_up")
    db=$(container_of db)
    redis=$(container_of redis) # the first node, redis-1
    proxy=$(container_of consumer)
    ok "every container healthy, the init done, $cluster_healthy_time after the start"
}

step_cluster_shape() {
    local info want shape init again
    info=$(redis_cli cluster info | tr -d '\r')
    for want in cluster_state:ok cluster_slots_assigned:16384 cluster_slots_ok:16384 cluster_known_nodes:6 cluster_size:3; do
        grep -qx "$want" <<<"$info" || fail "CLUSTER INFO on redis-1 lacks $want:"$'\n'"$info"
    done
    # CLUSTER NODES: id ip:port@bus,hostname flags master-id ... slots. One
    # line per master: its name, its slots, its replicas' names and count.
    shape=$(redis_cli cluster nodes | tr -d '\r' | awk '
        { split($2, address, ","); name[$1] = address[2] }
        $3 ~ /fail|handshake|noaddr/ { bad = bad " " address[2] "(" $3 ")" }
        $3 ~ /master/ && NF >= 9 { slots[$1] = $9; for (i = 10; i <= NF; i++) slots[$1] = slots[$1] "," $i }
        $3 ~ /slave/ { replicas[$4] = replicas[$4] " " $1 }
        END {
            if (bad != "") { print "unhealthy:" bad; exit }
            for (m in slots) {
                n = split(replicas[m], r, " ")
                line = name[m] " " slots[m] " <-"
                for (i = 1; i <= n; i++) line = line " " name[r[i]]
                print line " (" n ")"
            }
        }' | sort)
    [[ "$(grep -c ' (1)$' <<<"$shape")" == 3 && "$(wc -l <<<"$shape")" == 3 ]] ||
        fail "want 3 masters with slots and one replica each, CLUSTER NODES shows:"$'\n'"$shape"
    # What a client is sent (CLUSTER SLOTS, MOVED): the nodes' names.
    [[ "$(redis_cli cluster slots | tr -d '\r' | grep -x 'redis-[1-6]' | sort -u | wc -l)" == 6 ]] ||
        fail "CLUSTER SLOTS does not name all six nodes (cluster-announce-hostname):"$'\n'"$(redis_cli cluster slots)"
    init=$(container_of redis-cluster-init)
    # How long the init took, from its first start to its exit 0.
    init_time=$(docker inspect -f '{{.State.StartedAt}} {{.State.FinishedAt}}' "$init" |
        { read -r from to && fmt_ms $(($(date -d "$to" +%s%3N) - $(date -d "$from" +%s%3N))); })
    again=$(docker start -a "$init" 2>&1) || fail "redis-cluster-init run again failed:"$'\n'"$again"
    grep -q 'exists already' <<<"$again" || fail "redis-cluster-init run again did not find the cluster made:"$'\n'"$again"
    cluster_shape=$(tr '\n' ';' <<<"$shape" | sed 's/;$//; s/;/; /g')
    ok "$cluster_shape; CLUSTER SLOTS names the six nodes; the init made the cluster in $init_time, run again it created nothing"
}

# stream_open DIR: the event stream whose headers go to DIR/head answered 200.
stream_open() { grep -q '^HTTP/1.1 200' "$1/head" 2>/dev/null; }
# event_of DIR ID STATUS...: the stream whose body goes to DIR/body carried
# review ID in one of the STATUSes.
event_of() {
    local dir=$1 id=$2 status
    shift 2
    for status in "$@"; do
        grep "^data: .*\"id\":\"$id\"" "$dir/body" | grep -q "\"documentStatus\":\"$status\"" && return 0
    done
    return 1
}

step_event_stream() {
    local events_dir stream_pid review id t_posted
    events_dir=$(mktemp -d "${TMPDIR:-/tmp}/hookline-events.XXXXXX")
    curl -sSN --max-time 60 -D "$events_dir/head" "$consumer/events" >"$events_dir/body" 2>/dev/null &
    stream_pid=$!
    bg_pids+=("$stream_pid")
    poll_until 10 "GET /events through nginx" stream_open "$events_dir"
    grep -qi '^content-type: text/event-stream' "$events_dir/head" ||
        fail "GET /events through nginx is not an event stream:"$'\n'"$(cat "$events_dir/head")"
    review=$(post_review https://example.com/cluster-events.pdf)
    t_posted=$(now_ms)
    id=$(json_field id "$review") || fail "no id in $review"
    poll_until 5 "the new review's event through nginx" event_of "$events_dir" "$id" PENDING_REVIEW
    events_created_time=$(since "$t_posted")
    poll_until 15 "the review's decision on the event stream through nginx" event_of "$events_dir" "$id" ACCEPTED DECLINED
    events_decided_time=$(since "$t_posted")
    kill "$stream_pid" 2>/dev/null
    wait "$stream_pid" 2>/dev/null || true
    rm -rf "$events_dir"
    ok "the creation $events_created_time after the POST, the decision $events_decided_time after"
}

# Step 11's kill, for the spread over replicas that follows it.
declare -A replica_of=() # nginx's upstream address -> "replica N"
victim_ip="" log_mark=0 half=$((CLUSTER_BATCH / 2)) decided_at_kill=0

step_replica_killed() {
    # Half the batch, the kill once their decisions are landing (webhooks to
    # every replica, the victim's included; those of the last 2 s of POSTs
    # still to come, the review delay being 2-5 s), then the other half:
    # nginx must route the POSTs and the webhooks around the dead replica.
    # No POST is in flight at the kill: one cut there gets a 502, and a
    # retry with its Idempotency-Key a 409 until the key counts as abandoned.
    local c t_batch victim t_kill created decided not_once cases undelivered
    replica_of=()
    for c in $(compose ps -q consumer-replica); do
        replica_of[$(ip_of "$c"):3333]="replica $(docker inspect -f '{{index .Config.Labels "com.docker.compose.container-number"}}' "$c")"
    done
    ((${#replica_of[@]} == 3)) || fail "want 3 consumer replicas, found ${#replica_of[@]}"
    log_mark=$(docker logs "$proxy" 2>/dev/null | wc -l)
    t_batch=$(now_ms)
    post_many cluster-a "$half"
    poll_until 30 "decisions of the first half landing" decided_at_least cluster-a $((half / 10))
    victim=$(compose ps -q consumer-replica | head -n 1)
    victim_ip=$(ip_of "$victim")
    decided_at_kill=$(decided_count cluster-a)
    docker kill "$victim" >/dev/null
    t_kill=$(now_ms)
    ((decided_at_kill < half)) || fail "every review of the first half was decided before the kill: it came too late to hit deliveries"
    say "    killed ${replica_of[$victim_ip:3333]} (${victim:0:12}) with $decided_at_kill of $half decided"
    post_many cluster-b "$half"
    poll_until 120 "every review of the batch decided after the kill" none_pending cluster-a cluster-b
    cluster_batch_time=$(since "$t_batch")
    cluster_after_kill=$(since "$t_kill")

    created=$(sql "SELECT count(*) FROM document_reviews WHERE document_url ~ '^https://example\.com/cluster-[ab]/'")
    ((created == CLUSTER_BATCH)) || fail "$created reviews for $CLUSTER_BATCH POSTs answered 201"
    decided=$(($(decided_count cluster-a) + $(decided_count cluster-b)))
    ((decided == CLUSTER_BATCH)) || fail "$decided of $CLUSTER_BATCH reviews decided"
    # Decided exactly once: one applied webhook (one receipt) per review; a
    # redelivery is recognised by its webhook-id and adds none.
    not_once=$(sql "SELECT count(*) FROM document_reviews r WHERE r.document_url ~ '^https://example\.com/cluster-[ab]/'
        AND (SELECT count(*) FROM webhook_receipts w WHERE w.review_id = r.id) <> 1")
    ((not_once == 0)) || fail "$not_once reviews were not decided by exactly one webhook"
    [[ "$(exit_code_of "$victim")" == 137 ]] || fail "the consumer replica was not SIGKILLed"
    # The help desk's side: every case delivered; how many attempts it took.
    cases=$(cases_of "document_url ~ '^https://example\.com/cluster-[ab]/'")
    undelivered=$(grep -vc '^DELIVERED ' <<<"$cases" || true)
    ((undelivered == 0)) ||
        fail "$undelivered cases not DELIVERED:"$'\n'"$(grep -v '^DELIVERED ' <<<"$cases" | sort | uniq -c)"
    cluster_attempts=$(awk '{ n[$2]++ } END { for (a in n) printf "%s%d in %d attempt(s)", (sep++ ? ", " : ""), n[a], a }' <<<"$cases")
    ok "all $CLUSTER_BATCH created once and decided once in $cluster_batch_time (the last $cluster_after_kill after the kill); cases: $cluster_attempts"
}

step_replica_spread() {
    # nginx's log since step 11 began: which replica answered each POST
    # /documents and each webhook (the last address tried), and how many went
    # elsewhere after the dead replica failed them.
    local served address a route n spread="" rerouted webhook_502
    served=$(docker logs "$proxy" 2>/dev/null | tail -n "+$((log_mark + 1))" | awk '
        $2 == "\"POST" && ($3 == "/documents" || $3 == "/document/update") {
            from = index($0, "upstream=") + 9
            n = split(substr($0, from, index($0, " upstream_status=") - from), tried, ", ")
            served[$3 " " tried[n]]++
            if (n > 1) rerouted++
            if ($5 == 502) failed[$3]++
        }
        END {
            for (k in served) print k, served[k]
            print "rerouted", rerouted + 0
            print "502 /document/update", failed["/document/update"] + 0
            print "502 /documents", failed["/documents"] + 0
        }')
    # By replica number: "replica N address" sorted, the address kept.
    for address in $(for a in "${!replica_of[@]}"; do echo "${replica_of[$a]} $a"; done | sort | cut -d' ' -f3); do
        spread+=" ${replica_of[$address]}"
        if [[ "$address" == "$victim_ip:3333" ]]; then
            spread+=" (killed)"
        fi
        for route in POSTs:/documents webhooks:/document/update; do
            n=$(awk -v key="${route#*:} $address" '$1 " " $2 == key { print $3 }' <<<"$served")
            ((${n:-0} > 0)) || fail "${replica_of[$address]} answered no POST ${route#*:}: nginx does not spread the load"$'\n'"$served"
            spread+=" $n ${route%%:*}"
        done
        spread+=";"
    done
    rerouted=$(awk '$1 == "rerouted" { print $2 }' <<<"$served")
    webhook_502=$(awk '$1 == "502" && $2 == "/document/update" { print $3 }' <<<"$served")
    [[ "$(awk '$1 == "502" && $2 == "/documents" { print $3 }' <<<"$served")" == 0 ]] ||
        fail "nginx answered POST /documents with a 502"
    cluster_spread=${spread%;}
    cluster_kill="${replica_of[$victim_ip:3333]} killed with $decided_at_kill of $half decided; $rerouted requests sent on after it failed them, $webhook_502 webhooks answered 502 (in flight at the kill) and delivered again"
    say "    $cluster_kill"
    ok "by replica:$cluster_spread"
}

step_keys_on_masters() {
    local c role name keys masters=0 with_keys=0
    cluster_keys=""
    for c in $(compose ps -q redis redis-2 redis-3 redis-4 redis-5 redis-6); do
        role=$(docker exec "$c" redis-cli role | head -n 1)
        [[ "$role" == master ]] || continue
        name=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$c")
        keys=$(docker exec "$c" redis-cli dbsize)
        masters=$((masters + 1))
        ((keys > 0)) && with_keys=$((with_keys + 1))
        [[ "$name" == redis ]] && name="redis-1"
        cluster_keys+=" $name=$keys"
    done
    ((masters == 3)) || fail "want 3 masters, found $masters"
    if grep -q REDIS_PARTITIONS "$root/crates/helpdesk/src/config.rs"; then
        ((with_keys == 3)) || fail "REDIS_PARTITIONS=3, but keys on $with_keys of the 3 masters:$cluster_keys"
        ok "keys on every master (REDIS_PARTITIONS=3):$cluster_keys"
    else
        ((with_keys >= 1)) || fail "no key on any master"
        ok "keys on $with_keys of 3 masters:$cluster_keys (this help desk has no REDIS_PARTITIONS: one hash tag, one slot)"
    fi
}

redis_nodes=(redis-cluster-init redis redis-2 redis-3 redis-4 redis-5 redis-6)
cluster_phase() {
    use_stack cluster
    run_step step_up "8. the cluster topology: ${HL_COMPOSE[*]} -f docker-compose.yml -f docker-compose.cluster.yml up --build -d" all
    run_step step_cluster_healthy "8b. every container of the cluster topology healthy, the cluster's init done" all
    run_step step_cluster_shape "9. a Redis Cluster: 3 masters holding every slot, each with a synced replica; nodes known by name" "${redis_nodes[@]}"
    run_step step_event_stream "10. the dashboard's event stream through nginx: a review's creation and decision arrive as they happen" consumer consumer-replica helpdesk worker
    run_step step_replica_killed "11. $CLUSTER_BATCH reviews through nginx, a consumer replica SIGKILLed mid-run: each created once, decided once" consumer consumer-replica helpdesk worker
    run_step step_replica_spread "11b. nginx spread the batch over every replica, and sent it around the dead one" consumer consumer-replica
    run_step step_keys_on_masters "12. the queue's keys on the cluster's masters" helpdesk worker "${redis_nodes[@]:1}"
    run_step step_down "13. down -v leaves nothing of $project"
}

# --- the run --------------------------------------------------------------------------
run_step step_base_images "0. base images"
if [[ "$phases" != cluster ]]; then
    single_started=$(now_ms)
    single_phase
    single_time=$(since "$single_started")
fi
if [[ "$phases" != single ]]; then
    cluster_started=$(now_ms)
    cluster_phase
    cluster_time=$(since "$cluster_started")
fi

say ""
say "==> compose test passed in $(since "$started_all")"
say "    engine $engine_version, $compose_version (${HL_COMPOSE[*]})"
say "    stand-in base images: $standin_time"
if [[ "$phases" != cluster ]]; then
    say "    single server, steps 0b-7b: $single_time"
    say "      cold build: $build_time; healthy $healthy_time after; a review flipped after $flip_time"
    while read -r service size user; do
        say "      image $service: $(awk -v s="$size" 'BEGIN { printf "%.1f MB", s / 1e6 }') (user $user)"
    done <<<"$image_sizes"
fi
if [[ "$phases" != single ]]; then
    say "    cluster topology, steps 8-13: $cluster_time"
    say "      up returned after $cluster_up_time; healthy, the cluster made, $cluster_healthy_time after the start"
    say "      cluster: $cluster_shape; the init made it in $init_time"
    say "      event stream through nginx: the creation after $events_created_time, the decision after $events_decided_time"
    say "      $CLUSTER_BATCH reviews decided once each in $cluster_batch_time, the last $cluster_after_kill after the kill; cases: $cluster_attempts"
    say "      $cluster_kill"
    say "      by replica:$cluster_spread"
    say "      keys by master:$cluster_keys"
fi
