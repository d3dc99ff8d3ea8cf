//! The help desk's queue on a real Redis, below the HTTP layer: outcomes
//! recorded in one pipelined batch (`Queue::finish_many`) land exactly as
//! lone `finish` calls would, including on a Redis that has forgotten the
//! script, and a stale lease inside a batch changes nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use helpdesk::queue::{Finish, NewCase, Queue};
use hookline_contract::{AttemptView, DeliveryState, DocumentStatus};
use hookline_tests::TestRedis;

fn case(document_id: &str, due_at: DateTime<Utc>) -> NewCase {
    NewCase {
        document_id: document_id.to_owned(),
        agent_id: "agent-1".to_owned(),
        document_url: "http://example.com/doc.pdf".to_owned(),
        callback_url: "http://127.0.0.1:9/document/update".to_owned(),
        request_id: None,
        webhook_id: format!("msg_{document_id}"),
        created_at: due_at,
        due_at,
    }
}

fn attempt(at: DateTime<Utc>, status_code: Option<u16>) -> AttemptView {
    AttemptView {
        at,
        status_code,
        error: status_code
            .filter(|code| *code >= 300)
            .map(|code| format!("HTTP {code}")),
        duration_ms: 3,
    }
}

#[actix_web::test]
async fn a_batch_of_outcomes_lands_like_single_ones_even_after_the_script_cache_is_flushed() {
    let redis = TestRedis::default();
    let queue = Queue::connect(&redis.url, &redis.prefix).await.unwrap();
    let now = Utc::now();
    for id in ["delivered", "retried", "dead"] {
        queue.schedule(&case(id, now)).await.unwrap();
    }
    let decisions = [DocumentStatus::Accepted; 3];
    let claim = queue
        .claim(Utc::now(), Duration::from_secs(60), "worker-a:1", &decisions)
        .await
        .unwrap();
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
                    at: retry_at,
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
        .map(|(job, (record, finish))| (job, record, finish))
        .collect();
    assert_eq!(queue.finish_many(&items).await.unwrap(), vec![true, true, true]);

    let delivered = queue.case("delivered").await.unwrap().unwrap();
    assert_eq!(delivered.delivery, DeliveryState::Delivered);
    assert_eq!((delivered.attempts, delivered.log.len()), (1, 1));
    let retried = queue.case("retried").await.unwrap().unwrap();
    assert_eq!(retried.delivery, DeliveryState::Scheduled);
    assert_eq!(
        retried.next_attempt_at.map(|at| at.timestamp_millis()),
        Some(retry_at.timestamp_millis())
    );
    assert_eq!(retried.last_error.as_deref(), Some("HTTP 500"));
    let dead = queue.case("dead").await.unwrap().unwrap();
    assert_eq!(dead.delivery, DeliveryState::Dead);
    let depth = queue.depth().await.unwrap();
    assert_eq!((depth.due, depth.inflight, depth.dead), (1, 0, 1));
}

#[actix_web::test]
async fn an_outcome_whose_lease_expired_and_was_reclaimed_is_refused_without_touching_the_rest_of_its_batch() {
    let redis = TestRedis::default();
    let queue = Queue::connect(&redis.url, &redis.prefix).await.unwrap();
    let now = Utc::now();
    queue.schedule(&case("stale", now)).await.unwrap();
    let decisions = [DocumentStatus::Declined; 2];
    // Worker A takes "stale" with a one-second lease...
    let first = queue
        .claim(now, Duration::from_secs(1), "worker-a:1", &decisions)
        .await
        .unwrap();
    assert_eq!(first.jobs.len(), 1);
    // ...and worker B, claiming "two seconds later" (the claim takes the
    // time as an argument: no sleeping), finds that lease expired and takes
    // the job again, together with a fresh one.
    queue.schedule(&case("fresh", now)).await.unwrap();
    let later = now + chrono::Duration::seconds(2);
    let second = queue
        .claim(later, Duration::from_secs(60), "worker-b:1", &decisions)
        .await
        .unwrap();
    assert_eq!(second.jobs.len(), 2);
    let fresh = second.jobs.iter().find(|job| job.case.document_id == "fresh").unwrap();

    // A late outcome from A, batched with B's outcome for the fresh job.
    let record = attempt(Utc::now(), Some(204));
    let applied = queue
        .finish_many(&[
            (&first.jobs[0], &record, &Finish::Delivered),
            (fresh, &record, &Finish::Delivered),
        ])
        .await
        .unwrap();
    assert_eq!(applied, vec![false, true]);

    let stale = queue.case("stale").await.unwrap().unwrap();
    assert_eq!(
        stale.delivery,
        DeliveryState::InFlight,
        "B still holds it; A's outcome is discarded"
    );
    assert_eq!((stale.attempts, stale.log.len()), (0, 0));
    assert_eq!(
        queue.case("fresh").await.unwrap().unwrap().delivery,
        DeliveryState::Delivered
    );
}

#[actix_web::test]
async fn the_attempt_log_keeps_the_latest_hundred_attempts_and_the_count_keeps_them_all() {
    let redis = TestRedis::default();
    let queue = Queue::connect(&redis.url, &redis.prefix).await.unwrap();
    let start = Utc::now();
    queue.schedule(&case("stubborn", start)).await.unwrap();
    let decisions = [DocumentStatus::Accepted];
    for round in 0..105_i64 {
        // Each round is claimed "one second later" than the last, and retried for then.
        let at = start + chrono::Duration::seconds(round);
        let claim = queue
            .claim(at, Duration::from_secs(60), &format!("worker:{round}"), &decisions)
            .await
            .unwrap();
        assert_eq!(claim.jobs.len(), 1, "round {round}");
        let record = attempt(at, Some(500 + u16::try_from(round % 2).unwrap()));
        let retry = Finish::Retry {
            at: at + chrono::Duration::seconds(1),
            error: format!("HTTP {}", record.status_code.unwrap()),
        };
        assert!(queue.finish(&claim.jobs[0], &record, &retry).await.unwrap());
    }
    let case = queue.case("stubborn").await.unwrap().unwrap();
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
