//! Months of uptime: a finished case is kept for `CASE_RETENTION` and then
//! forgotten with everything that pointed at it, a case that can still be
//! delivered never is, webhook receipts and idempotency keys are pruned,
//! and a review the help desk has forgotten is reported once instead of
//! being asked about forever.

use std::time::{Duration, Instant};

use chrono::Utc;
use helpdesk::store::{Allowance, EndpointLimits, Finish, Health, NewCase, Redelivery, Store};
use hookline_contract::{AttemptView, DocumentStatus};
use hookline_tests::{Footprint, Receiver, Stack, TestRedis, get_text, helpdesk_settings, start_helpdesk, wait_for};
use serde_json::json;

const LEASE: Duration = Duration::from_secs(60);

fn case(id: &str, port: u16) -> NewCase {
    NewCase {
        document_id: id.to_owned(),
        agent_id: "agent-1".to_owned(),
        document_url: "https://example.com/a.pdf".to_owned(),
        callback_url: Some(format!("http://127.0.0.1:{port}/hook")),
        tenant: hookline_kit::auth::DEFAULT_TENANT.to_owned(),
        verdict: None,
        event_prefix: "msg_test".to_owned(),
        request_id: Some(format!("request-{id}")),
        webhook_id: format!("msg_{id}"),
        delay: Duration::ZERO,
        chaos: None,
        reorder: false,
        dialect: None,
        chaos_seed: None,
        traceparent: None,
    }
}

fn attempt(status: u16) -> AttemptView {
    AttemptView {
        at: Utc::now(),
        status_code: Some(status),
        error: (status >= 300).then(|| format!("HTTP {status}")),
        duration_ms: 1,
        chaos: None,
        note: None,
    }
}

#[actix_web::test]
async fn finished_cases_are_forgotten_after_the_retention_and_live_ones_never() {
    let redis = TestRedis::default();
    let store = Store::connect(&redis.url, &redis.prefix, EndpointLimits::default())
        .await
        .unwrap()
        .with_retention(Duration::from_secs(60));
    let now = Utc::now();
    // Each on its own endpoint: delivered, dead, retrying, dead-then-redelivered.
    for (id, port) in [
        ("delivered", 1001),
        ("dead", 1002),
        ("retrying", 1003),
        ("redelivered", 1004),
    ] {
        store.at(now).schedule(&case(id, port)).await.unwrap();
    }
    let decisions = [DocumentStatus::Accepted; 4];
    let claim = store
        .at(now)
        .claim(LEASE, "w:1", &decisions, &Allowance::unlimited())
        .await
        .unwrap();
    assert_eq!(claim.jobs.len(), 4);
    let signal = helpdesk::store::EndpointSignal {
        health: Health::Unknown,
        pause: None,
    };
    for job in &claim.jobs {
        let (record, finish) = match job.case.document_id.as_str() {
            "delivered" => (attempt(200), Finish::Delivered),
            "retrying" => (
                attempt(500),
                Finish::Retry {
                    after: Duration::from_secs(3600),
                    error: "HTTP 500".to_owned(),
                },
            ),
            _ => (
                attempt(500),
                Finish::Dead {
                    error: "HTTP 500".to_owned(),
                },
            ),
        };
        store.at(now).finish(job, &record, &finish, signal).await.unwrap();
    }
    // Finished cases carry a TTL (Redis frees them even if nothing trims);
    // the one still retrying does not.
    let conn = redis.connection().await;
    let ttl = |key: String| {
        let mut conn = conn.clone();
        async move { redis::cmd("PTTL").arg(key).query_async::<i64>(&mut conn).await.unwrap() }
    };
    let keys = helpdesk::store::Keys::new(&redis.prefix);
    for id in ["delivered", "dead"] {
        // The attempt log is a field of the case's hash: it goes with it.
        for key in [
            keys.case(id),
            keys.request(hookline_kit::auth::DEFAULT_TENANT, &format!("request-{id}")),
        ] {
            let left = ttl(key.clone()).await;
            assert!((1..=60_000).contains(&left), "{key}: PTTL {left}");
        }
    }
    assert_eq!(
        ttl(keys.case("retrying")).await,
        -1,
        "a case that will be retried never expires"
    );
    // A redelivery takes the expiry off again.
    assert_eq!(store.redeliver("redelivered").await.unwrap(), Redelivery::Scheduled);
    assert_eq!(ttl(keys.case("redelivered")).await, -1);
    assert_eq!(
        ttl(keys.request(hookline_kit::auth::DEFAULT_TENANT, "request-redelivered")).await,
        -1
    );

    // Before the retention is over, nothing is forgotten.
    let trimmed = store.at(now + chrono::Duration::seconds(59)).trim(100).await.unwrap();
    assert_eq!((trimmed.cases, trimmed.endpoints), (0, 0));
    // After it: the two finished cases and everything pointing at them, and
    // the endpoints that have nothing left.
    let later = store.at(now + chrono::Duration::seconds(61));
    let trimmed = later.trim(100).await.unwrap();
    assert_eq!((trimmed.cases, trimmed.endpoints), (2, 2), "{trimmed:?}");
    let snapshot = redis.snapshot().await;
    for id in ["delivered", "dead"] {
        assert!(store.case(id).await.unwrap().is_none(), "{id} is forgotten");
        assert!(
            !snapshot
                .keys()
                .any(|key| key.ends_with(&format!(":{id}")) || key.ends_with(&format!("-{id}"))),
            "nothing of {id} is left: {snapshot:#?}"
        );
        assert!(
            !snapshot.values().flatten().any(|member| member == id),
            "{id} is in no set: {snapshot:#?}"
        );
    }
    let (recent, total) = later.recent_cases(10).await.unwrap();
    assert_eq!(total, 2);
    let mut ids: Vec<_> = recent.iter().map(|c| c.document_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["redelivered", "retrying"]);
    assert_eq!(later.dead_letters(10).await.unwrap().1, 0);
    let (_, endpoints) = later.endpoints(10).await.unwrap();
    assert_eq!(endpoints, 2, "the endpoints of the live cases stay");
}

#[actix_web::test]
async fn fifty_thousand_cases_leave_redis_as_they_found_it() {
    let n: usize = std::env::var("SOAK_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let redis = TestRedis::default();
    let mut receiver = Receiver::start(200).await;
    // Stored straight into the queue (the HTTP path is the same schedule
    // script), delivered by a real worker with a retention of two seconds.
    let store = Store::connect(&redis.url, &redis.prefix, EndpointLimits::default())
        .await
        .unwrap();
    // An empty queue: its two fixed keys (the partition count, the anchor).
    let before = redis.footprint().await;
    let started = Instant::now();
    let cases: Vec<NewCase> = (0..n)
        .map(|i| NewCase {
            document_id: format!("soak-{i}"),
            agent_id: "agent-1".to_owned(),
            document_url: "https://example.com/a.pdf".to_owned(),
            callback_url: Some(receiver.url.clone()),
            tenant: hookline_kit::auth::DEFAULT_TENANT.to_owned(),
            verdict: None,
            event_prefix: "msg_test".to_owned(),
            request_id: Some(format!("request-{i}")),
            webhook_id: format!("msg_soak_{i}"),
            delay: Duration::ZERO,
            chaos: None,
            reorder: false,
            dialect: None,
            chaos_seed: None,
            traceparent: None,
        })
        .collect();
    for chunk in cases.chunks(2000) {
        futures_util::future::try_join_all(chunk.iter().map(|c| store.schedule(c)))
            .await
            .unwrap();
    }
    let peak = redis.footprint().await;
    let mut settings = helpdesk_settings(&redis);
    settings.case_retention = Duration::from_secs(2);
    settings.role = helpdesk::config::Role::Worker;
    settings.endpoint_concurrency = 64;
    let _worker = start_helpdesk(settings).await;
    receiver
        .collect_until(Duration::from_secs(300), |got| got.len() >= n)
        .await;
    let delivered_in = started.elapsed();
    let after = wait_for(Duration::from_secs(60), "retention to forget every case", || async {
        let now = redis.footprint().await;
        (now.keys <= before.keys + before.keys / 20).then_some(now)
    })
    .await;
    let forgotten_in = started.elapsed();
    eprintln!(
        "soak: {n} cases; before {before:?}, peak {peak:?}, after {after:?}; delivered in {delivered_in:?}, \
         forgotten {:?} later",
        forgotten_in - delivered_in
    );
    assert!(peak.keys > n, "the cases were there: {peak:?}");
    let within = |now: Footprint, then: Footprint| now.bytes <= then.bytes + then.bytes / 20;
    assert!(
        within(after, before),
        "memory back to where it started: {before:?} -> {after:?}"
    );
}

#[actix_web::test]
async fn receipts_and_idempotency_keys_are_pruned_and_the_tables_stop_growing() {
    let stack = Stack::start_with(
        |_| {},
        |consumer| {
            consumer.receipt_retention = Duration::from_secs(1);
            consumer.idempotency_retention = Duration::from_secs(1);
        },
    )
    .await;
    for n in 0..30 {
        let key = format!("key-{n}");
        let (status, review) = hookline_tests::post_json(
            &format!("{}/documents", stack.consumer.url),
            &json!({"documentUrl": format!("https://example.com/{n}.pdf")}),
            &[("idempotency-key", key.as_str())],
        )
        .await;
        assert_eq!(status, 201, "{review}");
    }
    stack.wait_until_all_decided(30, Duration::from_secs(30)).await;
    let stored = wait_for(Duration::from_secs(30), "receipts and keys to be pruned", || async {
        let now = stack.db.snapshot().await;
        (now.receipts.is_empty() && now.idempotency_keys.is_empty()).then_some(now)
    })
    .await;
    assert_eq!(stored.reviews.len(), 30, "the reviews themselves stay");
    let (_, metrics) = get_text(&format!("{}/metrics", stack.consumer.url)).await;
    assert!(
        metrics.contains("hookline_consumer_pruned_total{what=\"receipt\"} 30\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hookline_consumer_pruned_total{what=\"idempotency_key\"} 30\n"),
        "{metrics}"
    );
}

#[actix_web::test]
async fn a_review_the_helpdesk_has_forgotten_is_reported_once_and_not_asked_about_again() {
    // The help desk signs with a secret the consumer does not know, so the
    // webhook is refused and the case dies; it is forgotten 300 ms later,
    // before the consumer's reconciler first asks about it.
    let stack = Stack::start_with(
        |hd| {
            hd.webhook_secret = Some("whsec_b3RoZXItc2VjcmV0LWZvci10aGUtbG9zdC10ZXN0".parse().unwrap());
            hd.retry_schedule = "20ms".parse().unwrap();
            hd.case_retention = Duration::from_millis(300);
        },
        |consumer| consumer.reconcile_after = Duration::from_secs(2),
    )
    .await;
    let review = stack.request_review("https://example.com/a.pdf").await;
    let document_id = review.document_id.clone().unwrap();
    wait_for(Duration::from_secs(10), "the help desk to forget the case", || async {
        let (status, _) = hookline_tests::get_json(&format!("{}/document/{document_id}", stack.helpdesk.url)).await;
        (status == 404).then_some(())
    })
    .await;
    let lost = |metrics: &str| metrics.contains("hookline_consumer_reviews_lost_total 1\n");
    wait_for(Duration::from_secs(10), "the review to be reported lost", || async {
        let (_, metrics) = get_text(&format!("{}/metrics", stack.consumer.url)).await;
        lost(&metrics).then_some(())
    })
    .await;
    let asked = |metrics: String| {
        metrics
            .lines()
            .filter(|line| line.starts_with("hookline_http_requests_total") && line.contains("method=\"GET\""))
            .filter(|line| line.contains("route=\"/document/{document_id}\""))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let (_, metrics) = get_text(&format!("{}/metrics", stack.helpdesk.url)).await;
    let asked_then = asked(metrics);
    // Two more rounds of reconciliation: nobody asks about it again.
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    let (_, metrics) = get_text(&format!("{}/metrics", stack.helpdesk.url)).await;
    assert_eq!(asked(metrics), asked_then, "the lost review is not asked about again");
    let rows = stack.db.reviews().await;
    assert_eq!(rows[0].status(), DocumentStatus::PendingReview, "nobody decided it");
}
