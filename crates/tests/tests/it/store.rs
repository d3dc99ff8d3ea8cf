//! The help desk's queue on a real Redis, below the HTTP layer (the time is
//! passed in, so nothing sleeps): outcomes recorded in one pipelined batch
//! (`Store::finish_many`) land exactly as lone `finish` calls would, even on
//! a Redis that has forgotten the script; a stale lease changes nothing; and
//! each endpoint's limits hold — its concurrency, its turn in the line, a
//! worker's share, the circuit breaker, a `Retry-After` pause, the rate
//! limit — as does the move of jobs stored by an older help desk.

use std::time::Duration;

use chrono::{DateTime, Utc};
use helpdesk::store::{
    Allowance, Claim, ClaimedJob, EndpointLimits, EndpointSignal, Finish, Health, NewCase, Recorded, Store, StoreError,
};
use hookline_contract::{AttemptView, DeliveryState, DocumentStatus};
use hookline_tests::TestRedis;

const LEASE: Duration = Duration::from_secs(60);

/// What `token` claims at `at`, one job per decision, with no worker-side
/// limit (the endpoint's own limits still apply).
async fn claim_due(store: &Store, at: DateTime<Utc>, token: &str, decisions: &[DocumentStatus]) -> Claim {
    store
        .at(at)
        .claim(LEASE, token, decisions, &Allowance::unlimited())
        .await
        .unwrap()
}

/// A case due as soon as it is stored: `queue.at(t).schedule(&case(id))`
/// stores it at `t`, due at `t`.
fn case(document_id: &str) -> NewCase {
    NewCase {
        document_id: document_id.to_owned(),
        agent_id: "agent-1".to_owned(),
        document_url: "http://example.com/doc.pdf".to_owned(),
        callback_url: Some("http://127.0.0.1:9/document/update".to_owned()),
        tenant: hookline_kit::auth::DEFAULT_TENANT.to_owned(),
        verdict: None,
        event_prefix: "msg_test".to_owned(),
        request_id: None,
        webhook_id: format!("msg_{document_id}"),
        delay: Duration::ZERO,
        chaos: None,
        reorder: false,
        dialect: None,
        chaos_seed: None,
        traceparent: None,
    }
}

/// An outcome that tells the endpoint's breaker nothing.
const UNKNOWN: EndpointSignal = EndpointSignal {
    health: Health::Unknown,
    pause: None,
};

fn attempt(at: DateTime<Utc>, status_code: Option<u16>) -> AttemptView {
    AttemptView {
        at,
        status_code,
        error: status_code
            .filter(|code| *code >= 300)
            .map(|code| format!("HTTP {code}")),
        duration_ms: 3,
        chaos: None,
        note: None,
    }
}

#[actix_web::test]
async fn a_batch_of_outcomes_lands_like_single_ones_even_after_the_script_cache_is_flushed() {
    let redis = TestRedis::default();
    let store = Store::connect(&redis.url, &redis.prefix, EndpointLimits::default())
        .await
        .unwrap();
    let now = Utc::now();
    for id in ["delivered", "retried", "dead"] {
        store.at(now).schedule(&case(id)).await.unwrap();
    }
    let decisions = [DocumentStatus::Accepted; 3];
    let claim = claim_due(&store, Utc::now(), "worker-a:1", &decisions).await;
    assert_eq!(claim.jobs.len(), 3);

    // A Redis that restarted without its script cache: the pipelined EVALSHA
    // answers NOSCRIPT, and finish_many must load the script and try again.
    let mut conn = redis.connection().await;
    let () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();

    let retry_at = now + chrono::Duration::minutes(5);
    let outcomes: Vec<(AttemptView, Finish)> = claim
        .jobs
        .iter()
        .map(|job| match job.case.document_id.as_str() {
            "delivered" => (attempt(now, Some(204)), Finish::Delivered),
            "retried" => (
                attempt(now, Some(500)),
                Finish::Retry {
                    after: Duration::from_secs(5 * 60),
                    error: "HTTP 500".to_owned(),
                },
            ),
            _ => (
                attempt(now, Some(500)),
                Finish::Dead {
                    error: "HTTP 500".to_owned(),
                },
            ),
        })
        .collect();
    let items: Vec<_> = claim
        .jobs
        .iter()
        .zip(&outcomes)
        .map(|(job, (record, finish))| (job, std::slice::from_ref(record), finish, UNKNOWN))
        .collect();
    assert_eq!(
        store.at(now).finish_many(&items).await.unwrap(),
        vec![Recorded::Recorded; 3]
    );

    let delivered = store.case("delivered").await.unwrap().unwrap();
    assert_eq!(delivered.delivery, DeliveryState::Delivered);
    assert_eq!((delivered.attempts, delivered.log.len()), (1, 1));
    let retried = store.case("retried").await.unwrap().unwrap();
    assert_eq!(retried.delivery, DeliveryState::Scheduled);
    assert_eq!(
        retried.next_attempt_at.map(|at| at.timestamp_millis()),
        Some(retry_at.timestamp_millis())
    );
    assert_eq!(retried.last_error.as_deref(), Some("HTTP 500"));
    let dead = store.case("dead").await.unwrap().unwrap();
    assert_eq!(dead.delivery, DeliveryState::Dead);
    let depth = store.depth().await.unwrap();
    assert_eq!((depth.due, depth.inflight, depth.dead), (1, 0, 1));
}

#[actix_web::test]
async fn an_outcome_whose_lease_expired_and_was_reclaimed_is_refused_without_touching_the_rest_of_its_batch() {
    let redis = TestRedis::default();
    let store = Store::connect(&redis.url, &redis.prefix, EndpointLimits::default())
        .await
        .unwrap();
    let now = Utc::now();
    store.at(now).schedule(&case("stale")).await.unwrap();
    let decisions = [DocumentStatus::Declined; 2];
    // Worker A takes "stale" with a one-second lease...
    // Claims come after the scheduling: a job is claimable from when it was stored.
    let now = Utc::now();
    let first = store
        .at(now)
        .claim(
            Duration::from_secs(1),
            "worker-a:1",
            &decisions,
            &Allowance::unlimited(),
        )
        .await
        .unwrap();
    assert_eq!(first.jobs.len(), 1);
    // ...and worker B, claiming "two seconds later" (the claim takes the
    // time as an argument: no sleeping), finds that lease expired and takes
    // the job again, together with a fresh one.
    store.at(now).schedule(&case("fresh")).await.unwrap();
    let later = now + chrono::Duration::seconds(2);
    let second = claim_due(&store, later, "worker-b:1", &decisions).await;
    assert_eq!(second.jobs.len(), 2);
    let fresh = second.jobs.iter().find(|job| job.case.document_id == "fresh").unwrap();

    // A late outcome from A, batched with B's outcome for the fresh job.
    let record = attempt(Utc::now(), Some(204));
    let applied = store
        .finish_many(&[
            (
                &first.jobs[0],
                std::slice::from_ref(&record),
                &Finish::Delivered,
                UNKNOWN,
            ),
            (fresh, std::slice::from_ref(&record), &Finish::Delivered, UNKNOWN),
        ])
        .await
        .unwrap();
    assert_eq!(applied, vec![Recorded::Stale, Recorded::Recorded]);

    let stale = store.case("stale").await.unwrap().unwrap();
    assert_eq!(
        stale.delivery,
        DeliveryState::InFlight,
        "B still holds it; A's outcome is discarded"
    );
    assert_eq!((stale.attempts, stale.log.len()), (0, 0));
    assert_eq!(
        store.case("fresh").await.unwrap().unwrap().delivery,
        DeliveryState::Delivered
    );
}

#[actix_web::test]
async fn the_attempt_log_keeps_the_latest_hundred_attempts_and_the_count_keeps_them_all() {
    let redis = TestRedis::default();
    let store = Store::connect(&redis.url, &redis.prefix, EndpointLimits::default())
        .await
        .unwrap();
    let start = Utc::now();
    store.at(start).schedule(&case("stubborn")).await.unwrap();
    let start = Utc::now();
    let decisions = [DocumentStatus::Accepted];
    for round in 0..105_i64 {
        // Each round is claimed "one second later" than the last, and retried for then.
        let at = start + chrono::Duration::seconds(round);
        let claim = claim_due(&store, at, &format!("worker:{round}"), &decisions).await;
        assert_eq!(claim.jobs.len(), 1, "round {round}");
        let record = attempt(at, Some(500 + u16::try_from(round % 2).unwrap()));
        let retry = Finish::Retry {
            after: Duration::from_secs(1),
            error: format!("HTTP {}", record.status_code.unwrap()),
        };
        // Unknown to the breaker: this test is about the log, and 105 failures
        // in a row would (rightly) open it.
        let recorded = store
            .at(at)
            .finish(&claim.jobs[0], &record, &retry, UNKNOWN)
            .await
            .unwrap();
        assert_eq!(recorded, Recorded::Recorded);
    }
    let case = store.case("stubborn").await.unwrap().unwrap();
    assert_eq!(case.attempts, 105);
    assert_eq!(case.log.len(), 100, "only the latest 100 attempts are kept");
    assert_eq!(
        case.log.first().unwrap().at.timestamp(),
        (start + chrono::Duration::seconds(5)).timestamp()
    );
    assert_eq!(
        case.log.last().unwrap().at.timestamp(),
        (start + chrono::Duration::seconds(104)).timestamp()
    );
    assert_eq!(case.delivery, DeliveryState::Scheduled);
    assert_eq!(
        case.status,
        DocumentStatus::Accepted,
        "decided once, on the first claim"
    );
}

/// A case for the endpoint `http://127.0.0.1:<port>`.
fn case_to(document_id: &str, port: u16) -> NewCase {
    NewCase {
        callback_url: Some(format!("http://127.0.0.1:{port}/hook")),
        tenant: hookline_kit::auth::DEFAULT_TENANT.to_owned(),
        verdict: None,
        event_prefix: "msg_test".to_owned(),
        ..case(document_id)
    }
}

fn signal(health: Health) -> EndpointSignal {
    EndpointSignal { health, pause: None }
}

#[actix_web::test]
async fn a_backlog_on_one_endpoint_never_holds_up_the_due_job_of_another() {
    let redis = TestRedis::default();
    let store = Store::connect(&redis.url, &redis.prefix, EndpointLimits::default())
        .await
        .unwrap();
    let start = Utc::now() - chrono::Duration::seconds(60);
    // 10,000 jobs for endpoint A, all due (and due before B's), then one for B.
    let mut pipe_cases = Vec::new();
    for i in 0..10_000 {
        pipe_cases.push(case_to(&format!("a-{i}"), 1001));
    }
    let then = store.at(start);
    futures_util::future::try_join_all(pipe_cases.iter().map(|c| then.schedule(c)))
        .await
        .unwrap();
    store
        .at(start + chrono::Duration::seconds(1))
        .schedule(&case_to("b-0", 1002))
        .await
        .unwrap();
    let decisions = [DocumentStatus::Accepted; 128];
    // A takes at most its ENDPOINT_CONCURRENCY (16) slots; B's job comes next
    // in the very same claim.
    let claim = claim_due(&store, Utc::now(), "w:1", &decisions).await;
    let ids: Vec<&str> = claim.jobs.iter().map(|job| job.case.document_id.as_str()).collect();
    assert_eq!(ids.len(), 17, "{ids:?}");
    assert_eq!(ids.iter().filter(|id| id.starts_with("a-")).count(), 16);
    assert!(ids.contains(&"b-0"), "B's only job waits behind A's backlog: {ids:?}");
    // With A's slots all taken, A is out of the line: nothing more to claim.
    let next = claim_due(&store, Utc::now(), "w:2", &decisions).await;
    assert!(next.jobs.is_empty(), "A is at ENDPOINT_CONCURRENCY");
}

#[actix_web::test]
async fn an_endpoint_never_has_more_than_its_concurrency_in_flight_and_a_finish_frees_a_slot() {
    let redis = TestRedis::default();
    let limits = EndpointLimits {
        concurrency: 4,
        ..EndpointLimits::default()
    };
    let store = Store::connect(&redis.url, &redis.prefix, limits).await.unwrap();
    let now = Utc::now();
    for i in 0..10 {
        store.at(now).schedule(&case_to(&format!("j{i}"), 1001)).await.unwrap();
    }
    let decisions = [DocumentStatus::Accepted; 100];
    let now = Utc::now();
    let first = claim_due(&store, now, "w:1", &decisions).await;
    assert_eq!(first.jobs.len(), 4);
    // Another worker finds nothing: the limit is in Redis, not in a process.
    let other = claim_due(&store, now, "v:1", &decisions).await;
    assert!(other.jobs.is_empty());
    let record = attempt(Utc::now(), Some(204));
    let recorded = store
        .finish(&first.jobs[0], &record, &Finish::Delivered, signal(Health::Up))
        .await
        .unwrap();
    assert_eq!(recorded, Recorded::Recorded);
    let after = claim_due(&store, Utc::now(), "v:2", &decisions).await;
    assert_eq!(after.jobs.len(), 1, "one slot was freed");
    let view = store.endpoint(&first.jobs[0].endpoint).await.unwrap();
    assert_eq!((view.in_flight, view.due, view.concurrency), (Some(4), Some(5), 4));
}

#[actix_web::test]
async fn a_worker_gives_each_endpoint_only_its_share_of_its_slots_and_leaves_the_rest_to_others() {
    let redis = TestRedis::default();
    let store = Store::connect(&redis.url, &redis.prefix, EndpointLimits::default())
        .await
        .unwrap();
    let now = Utc::now();
    store.at(now).schedule(&case_to("slow", 1001)).await.unwrap();
    for i in 0..3 {
        store
            .at(now)
            .schedule(&case_to(&format!("half-{i}"), 1002))
            .await
            .unwrap();
        store
            .at(now)
            .schedule(&case_to(&format!("new-{i}"), 1003))
            .await
            .unwrap();
    }
    let endpoint = |port: u16| -> helpdesk::endpoint::Endpoint { format!("http://127.0.0.1:{port}").parse().unwrap() };
    let decisions = [DocumentStatus::Accepted; 10];
    let now = Utc::now();
    // This worker has 2 in flight to 1001 (its whole share) and 1 to 1002.
    let allowance = Allowance {
        per_endpoint: 2,
        in_flight: vec![(endpoint(1001), 2), (endpoint(1002), 1)],
    };
    let claim = store.at(now).claim(LEASE, "w:1", &decisions, &allowance).await.unwrap();
    let mut ids: Vec<&str> = claim.jobs.iter().map(|job| job.case.document_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["half-0", "new-0", "new-1"],
        "1001 skipped, 1002 one more, 1003 two"
    );
    assert!(
        claim.next_wake.unwrap() > now + chrono::Duration::seconds(30),
        "the skipped endpoint is no reason for this worker to wake (only the leases are)"
    );
    let claim = claim_due(&store, now, "v:1", &decisions).await;
    assert_eq!(claim.jobs.len(), 4, "another worker takes what this one left");
}

#[actix_web::test]
async fn failures_in_a_row_open_the_breaker_and_a_probe_closes_it() {
    let redis = TestRedis::default();
    let limits = EndpointLimits {
        circuit_failures: 3,
        circuit_cooldown: Duration::from_secs(30),
        ..EndpointLimits::default()
    };
    let store = Store::connect(&redis.url, &redis.prefix, limits).await.unwrap();
    let now = Utc::now();
    for i in 0..6 {
        store.at(now).schedule(&case_to(&format!("j{i}"), 1001)).await.unwrap();
    }
    let decisions = [DocumentStatus::Accepted; 3];
    let now = Utc::now();
    let claim = claim_due(&store, now, "w:1", &decisions).await;
    assert_eq!(claim.jobs.len(), 3);
    let failed = attempt(Utc::now(), Some(500));
    let retry = Finish::Retry {
        after: Duration::ZERO,
        error: "HTTP 500".to_owned(),
    };
    let mut recorded = Vec::new();
    for job in &claim.jobs {
        recorded.push(store.finish(job, &failed, &retry, signal(Health::Down)).await.unwrap());
    }
    assert_eq!(
        recorded,
        [Recorded::Recorded, Recorded::Recorded, Recorded::BreakerOpened]
    );
    let endpoint = claim.jobs[0].endpoint.clone();
    let view = store.endpoint(&endpoint).await.unwrap();
    assert_eq!(view.breaker, hookline_contract::BreakerState::Open);
    assert_eq!(view.consecutive_failures, Some(3));
    assert_eq!(view.last_error.as_deref(), Some("HTTP 500"));

    // Open: all six jobs are due, none is claimed, no attempt is spent.
    let decisions = [DocumentStatus::Accepted; 10];
    let held = claim_due(&store, Utc::now(), "w:2", &decisions).await;
    assert!(held.jobs.is_empty());
    assert_eq!(store.depth().await.unwrap().circuit_open, 6);

    // After the cooldown, exactly one probe goes out, and nothing beside it.
    let after = Utc::now() + chrono::Duration::seconds(31);
    let probe = claim_due(&store, after, "w:3", &decisions).await;
    assert_eq!(probe.jobs.len(), 1);
    assert!(claim_due(&store, after, "w:4", &decisions).await.jobs.is_empty());
    // A failed probe reopens it for twice as long.
    let reopened = store
        .finish(&probe.jobs[0], &failed, &retry, signal(Health::Down))
        .await
        .unwrap();
    assert_eq!(reopened, Recorded::BreakerOpened);
    let view = store.endpoint(&endpoint).await.unwrap();
    let open_for = view.open_until.unwrap() - Utc::now();
    assert!((55..=60).contains(&open_for.num_seconds()), "{open_for:?}");

    // A probe that gets through closes it, and the rest flows.
    let later = Utc::now() + chrono::Duration::seconds(61);
    let probe = claim_due(&store, later, "w:5", &decisions).await;
    assert_eq!(probe.jobs.len(), 1);
    let closed = store
        .finish(
            &probe.jobs[0],
            &attempt(Utc::now(), Some(200)),
            &Finish::Delivered,
            signal(Health::Up),
        )
        .await
        .unwrap();
    assert_eq!(closed, Recorded::BreakerClosed);
    let rest = claim_due(&store, later, "w:6", &decisions).await;
    // The rest flow as the endpoint's limit allows: each failure halved it
    // (16, 8, 4, 2, 1) and the probe's quick answer earned one slot back.
    assert_eq!(rest.jobs.len(), 2);
    let view = store.endpoint(&endpoint).await.unwrap();
    assert_eq!(
        (view.breaker, view.consecutive_failures, view.concurrency),
        (hookline_contract::BreakerState::Closed, Some(0), 2)
    );
}

/// A store whose endpoints may have `concurrency` attempts in flight,
/// starting at `start`, with 100 jobs due for one endpoint (returned).
async fn hundred_jobs_for_one_endpoint(
    redis: &TestRedis,
    concurrency: u32,
    start: u32,
) -> (Store, helpdesk::endpoint::Endpoint) {
    let limits = EndpointLimits {
        concurrency,
        start,
        ..EndpointLimits::default()
    };
    let store = Store::connect(&redis.url, &redis.prefix, limits).await.unwrap();
    let now = Utc::now();
    for i in 0..100 {
        store.at(now).schedule(&case_to(&format!("j{i}"), 1001)).await.unwrap();
    }
    (store, "http://127.0.0.1:1001".parse().unwrap())
}

/// Finishes `jobs` in one batch, each answered with `status` after `took_ms`.
async fn finish_all(store: &Store, jobs: &[ClaimedJob], status: u16, took_ms: u64) {
    let log = AttemptView {
        duration_ms: took_ms,
        ..attempt(Utc::now(), Some(status))
    };
    let (outcome, health) = if status < 300 {
        (Finish::Delivered, Health::Up)
    } else {
        (
            Finish::Retry {
                after: Duration::from_secs(60),
                error: format!("HTTP {status}"),
            },
            Health::Down,
        )
    };
    let items: Vec<_> = jobs
        .iter()
        .map(|job| (job, std::slice::from_ref(&log), &outcome, signal(health)))
        .collect();
    let recorded = store.finish_many(&items).await.unwrap();
    assert!(recorded.iter().all(|r| r.applied()), "{recorded:?}");
}

#[actix_web::test]
async fn an_endpoint_s_limit_grows_with_quick_answers_and_halves_on_a_failure() {
    let redis = TestRedis::default();
    let (store, endpoint) = hundred_jobs_for_one_endpoint(&redis, 64, 4).await;
    let limit = async || store.endpoint(&endpoint).await.unwrap().concurrency;
    let decisions = [DocumentStatus::Accepted; 50];
    let claim = async |token: &str| claim_due(&store, Utc::now(), token, &decisions).await.jobs;

    // It starts at 4; four quick answers while every slot was taken earn one more.
    let jobs = claim("w:1").await;
    assert_eq!((jobs.len(), limit().await), (4, 4));
    finish_all(&store, &jobs, 200, 3).await;
    assert_eq!(limit().await, 5);
    // A failure halves it (5 -> 2), whatever else the batch says.
    let jobs = claim("w:2").await;
    assert_eq!(jobs.len(), 5);
    finish_all(&store, &jobs[..1], 500, 3).await;
    assert_eq!(limit().await, 2);
    // Slow answers (over a second) earn nothing, even with every slot taken.
    finish_all(&store, &jobs[1..], 200, 2_000).await;
    assert_eq!(limit().await, 2);
    // Below where it started, each quick answer is a slot (slow start).
    let jobs = claim("w:3").await;
    assert_eq!(jobs.len(), 2);
    finish_all(&store, &jobs, 200, 3).await;
    assert_eq!(limit().await, 4);
    assert_eq!(claim("w:4").await.len(), 4);
}

#[actix_web::test]
async fn retry_after_pauses_the_whole_endpoint_and_only_it() {
    let redis = TestRedis::default();
    let store = Store::connect(&redis.url, &redis.prefix, EndpointLimits::default())
        .await
        .unwrap();
    let now = Utc::now();
    store.at(now).schedule(&case_to("busy-1", 1001)).await.unwrap();
    let decisions = [DocumentStatus::Accepted; 10];
    let now = Utc::now();
    let claim = claim_due(&store, now, "w:1", &decisions).await;
    assert_eq!(claim.jobs.len(), 1);
    for i in 2..5 {
        store
            .at(now)
            .schedule(&case_to(&format!("busy-{i}"), 1001))
            .await
            .unwrap();
    }
    store.at(now).schedule(&case_to("calm", 1002)).await.unwrap();
    let finished = Utc::now();
    let until = finished + chrono::Duration::seconds(10);
    let paused = EndpointSignal {
        health: Health::Unknown,
        pause: Some(Duration::from_secs(10)),
    };
    let retry = Finish::Retry {
        after: Duration::from_secs(10),
        error: "HTTP 503".to_owned(),
    };
    store
        .at(finished)
        .finish(&claim.jobs[0], &attempt(Utc::now(), Some(503)), &retry, paused)
        .await
        .unwrap();
    let during = claim_due(&store, Utc::now(), "w:2", &decisions).await;
    let ids: Vec<&str> = during.jobs.iter().map(|job| job.case.document_id.as_str()).collect();
    assert_eq!(ids, ["calm"], "the paused endpoint's due jobs wait; the other's go");
    assert_eq!(
        during.next_wake.map(|at| at.timestamp_millis()),
        Some(until.timestamp_millis()),
        "the worker wakes when the pause ends"
    );
    let view = store.endpoint(&claim.jobs[0].endpoint).await.unwrap();
    assert_eq!(
        view.paused_until.map(|at| at.timestamp_millis()),
        Some(until.timestamp_millis())
    );
    assert_eq!(view.consecutive_failures, Some(0), "a pause asked for is not a failure");
    assert_eq!(view.concurrency, 8, "but it is congestion: the limit halves");
    let after = claim_due(&store, until + chrono::Duration::milliseconds(1), "w:3", &decisions).await;
    assert_eq!(after.jobs.len(), 4);
}

#[actix_web::test]
async fn the_rate_limit_spaces_claims_whoever_claims() {
    let redis = TestRedis::default();
    let (store, endpoint) = hundred_jobs_for_one_endpoint(&redis, 1000, 1000).await;
    let view = store.set_rate(&endpoint, Some(20.0)).await.unwrap();
    assert_eq!((view.rate, view.rate_overridden), (Some(20.0), true));
    let now = Utc::now();
    // Two workers claiming every 10 ms of (simulated) time for two seconds.
    let decisions = [DocumentStatus::Accepted; 100];
    let mut claimed = 0;
    let mut finished = Vec::new();
    for step in 0..200_i64 {
        let at = now + chrono::Duration::milliseconds(step * 10);
        let worker = if step % 2 == 0 { "w" } else { "v" };
        let claim = claim_due(&store, at, &format!("{worker}:{step}"), &decisions).await;
        claimed += claim.jobs.len();
        finished.extend(claim.jobs);
    }
    // 20 a second over 2 s, plus the two tokens (a tenth of a second's
    // worth, at least one) a fresh bucket holds.
    assert!((40..=42).contains(&claimed), "{claimed} claimed in 2 s at 20/s");
    let view = store.set_rate(&endpoint, None).await.unwrap();
    assert_eq!((view.rate, view.rate_overridden), (None, false));
}

#[actix_web::test]
async fn a_prefix_holding_jobs_stored_before_per_endpoint_queues_is_refused_at_start_and_left_as_it_was() {
    let redis = TestRedis::default();
    let mut conn = redis.connection().await;
    let tag = format!("{{{}}}", redis.prefix);
    // A job as a help desk from before per-endpoint queues stored it: one
    // global due set, the case without its endpoint.
    let () = redis::pipe()
        .hset(
            format!("{tag}:case:old-1"),
            "callbackUrl",
            "http://127.0.0.1:1001/document/update",
        )
        .ignore()
        .zadd(format!("{tag}:due"), "old-1", Utc::now().timestamp_millis())
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let before = redis.snapshot().await;
    let refused = Store::connect(&redis.url, &redis.prefix, EndpointLimits::default()).await;
    let Err(error @ StoreError::OldLayout { .. }) = refused else {
        panic!("connected to a prefix of the old layout: {refused:?}");
    };
    let message = error.to_string();
    assert!(
        message.contains(&format!("{tag}:due")) && message.contains("1 jobs"),
        "{message}"
    );
    assert_eq!(redis.snapshot().await, before, "nothing is changed");
}

#[actix_web::test]
async fn endpoints_take_turns_an_endpoint_just_served_goes_to_the_back_of_the_line() {
    let redis = TestRedis::default();
    let limits = EndpointLimits {
        concurrency: 1000,
        start: 1000,
        ..EndpointLimits::default()
    };
    let store = Store::connect(&redis.url, &redis.prefix, limits).await.unwrap();
    let due = Utc::now();
    for i in 0..50 {
        store.at(due).schedule(&case_to(&format!("a-{i}"), 1001)).await.unwrap();
    }
    for i in 0..50 {
        store.at(due).schedule(&case_to(&format!("b-{i}"), 1002)).await.unwrap();
    }
    let decisions = [DocumentStatus::Accepted; 10];
    let mut turns = String::new();
    for round in 0..6 {
        let claim = claim_due(&store, Utc::now(), &format!("w:{round}"), &decisions).await;
        assert_eq!(claim.jobs.len(), 10);
        let first = &claim.jobs[0].case.document_id[..1];
        assert!(
            claim.jobs.iter().all(|job| job.case.document_id.starts_with(first)),
            "a claim of 10 comes from the endpoint at the front"
        );
        turns.push_str(first);
    }
    assert_eq!(turns, "ababab");
}
