//! Delivery that survives failure, proven on real processes that are killed
//! by pid: the consumer going away, a worker SIGKILLed mid-delivery, Redis
//! crashing, receivers that fail, rate-limit, or never see the webhooks.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use hookline_contract::DeliveryState;
use hookline_tests::process::{PrivateRedis, consumer_process, free_port, helpdesk_process};
use hookline_tests::{
    Received, Receiver, Stack, TestDb, TestRedis, assert_client_error, get_json, helpdesk_settings, post_json,
    post_review, post_signed_webhook, start_helpdesk, wait_for, wait_for_delivery,
};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(60);

/// Requests `n` reviews from a help desk directly, calling back to `callback`.
async fn schedule(helpdesk_url: &str, callback: &str, n: usize) -> Vec<String> {
    let endpoint = format!("{helpdesk_url}/document");
    let requests = (0..n).map(|i| {
        let endpoint = endpoint.clone();
        async move {
            let body = json!({"documentUrl": format!("https://example.com/{i}.pdf")});
            let (status, accepted) = post_json(&endpoint, &body, &[("x-callback-url", callback)]).await;
            assert_eq!(status, 202, "{accepted}");
            accepted["documentId"].as_str().unwrap().to_owned()
        }
    });
    futures_util::future::join_all(requests).await
}

fn document_ids(received: &[Received]) -> HashSet<String> {
    received
        .iter()
        .filter_map(|r| r.body["documentId"].as_str().map(str::to_owned))
        .collect()
}

fn deliveries_per_webhook(received: &[Received]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in received {
        *counts.entry(r.headers["webhook-id"].clone()).or_insert(0) += 1;
    }
    counts
}

#[actix_web::test]
async fn reviews_that_come_due_while_the_consumer_is_down_are_decided_when_it_is_back() {
    let db = TestDb::create().await;
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    // Long enough that the consumer is surely gone before the first is due.
    settings.review_delay_ms = "1000-1400".parse().unwrap();
    settings.retry_schedule = "100ms,200ms,300ms,400ms,500ms,500ms,500ms,500ms,500ms,500ms"
        .parse()
        .unwrap();
    let helpdesk = start_helpdesk(settings).await;
    let port = free_port();
    let mut consumer = consumer_process(&db, port, &helpdesk.url, &[]).await;

    let mut reviews = Vec::new();
    for n in 0..20 {
        let (status, review) = post_review(&consumer.url, &format!("https://example.com/{n}.pdf")).await;
        assert_eq!(status, 201, "{review}");
        reviews.push(review["documentId"].as_str().unwrap().to_owned());
    }
    consumer.kill();
    assert!(
        db.reviews().await.iter().all(|row| !row.status().is_decided()),
        "the reviews came due before the consumer went away: the test proves nothing"
    );

    // Wait until the help desk has seen a delivery fail against the dead consumer.
    let (_, cases) = get_json(&format!("{}/cases?limit=100", helpdesk.url)).await;
    assert_eq!(cases["total"], 20);
    wait_for(DEADLINE, "a delivery to fail", || async {
        let (_, cases) = get_json(&format!("{}/cases?limit=100", helpdesk.url)).await;
        let failed = cases["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|case| case["delivery"]["lastError"].is_string() && case["delivery"]["state"] != "DELIVERED");
        failed.then_some(())
    })
    .await;
    let _consumer = consumer_process(&db, port, &helpdesk.url, &[]).await;

    let rows = wait_for(DEADLINE, "every review to be decided", || async {
        let rows = db.reviews().await;
        rows.iter().all(|row| row.status().is_decided()).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 20);
}

#[actix_web::test]
async fn a_worker_sigkilled_with_deliveries_in_flight_loses_nothing() {
    // The figures in the note come from
    //   FAULT_N=1000 FAULT_CONCURRENCY=1000 FAULT_RECEIVER_DELAY_MS=3000
    // which puts all 1000 deliveries in flight at the kill.
    let knob = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let n = usize::try_from(knob("FAULT_N", 300)).unwrap();
    let concurrency = knob("FAULT_CONCURRENCY", 64);
    let receiver_delay = knob("FAULT_RECEIVER_DELAY_MS", 300);
    let redis = TestRedis::default();
    let mut receiver = Receiver::start(200).await;
    // A slow receiver keeps deliveries in flight for a while.
    receiver.behaviour.delay(Duration::from_millis(receiver_delay));
    let port = free_port();
    // One receiver is one endpoint: let it have `concurrency` in flight from
    // the start (a worker gives one endpoint at most a quarter of its
    // slots; an endpoint's limit only grows with answers under a second).
    let (timeout, lease, workers, per_endpoint) = (
        format!("{}ms", receiver_delay + 1000),
        format!("{}ms", receiver_delay + 2000),
        (concurrency * 4).to_string(),
        concurrency.to_string(),
    );
    let settings = [
        ("JOB_LEASE", lease.as_str()),
        ("DELIVERY_TIMEOUT", timeout.as_str()),
        ("WORKER_CONCURRENCY", workers.as_str()),
        ("ENDPOINT_CONCURRENCY", per_endpoint.as_str()),
        ("ENDPOINT_CONCURRENCY_START", per_endpoint.as_str()),
        ("RETRY_SCHEDULE", "100ms,200ms,400ms,800ms"),
    ];
    let mut worker = helpdesk_process(&redis, port, &settings).await;

    let started = Instant::now();
    let ids = schedule(&worker.url, &receiver.url, n).await;
    // Kill once the worker is saturated: as many deliveries in flight as it allows.
    let saturated = u64::try_from(n).unwrap().min(concurrency);
    let in_flight = wait_for(DEADLINE, "the worker to be saturated", || async {
        let in_flight = redis.queue_depth().await.inflight;
        (in_flight >= saturated).then_some(in_flight)
    })
    .await;
    worker.kill();
    let mut received = Vec::new();
    while let Ok(got) = receiver.received.try_recv() {
        received.push(got);
    }
    let killed_at = started.elapsed();

    let _worker = helpdesk_process(&redis, port, &settings).await;
    // Done when the queue is empty: every job delivered, none waiting or claimed.
    wait_for(DEADLINE, "the queue to drain", || async {
        let depth = redis.queue_depth().await;
        (depth.due == 0 && depth.inflight == 0).then_some(())
    })
    .await;
    let all_decided = started.elapsed();
    while let Ok(more) = receiver.received.try_recv() {
        received.push(more);
    }
    let expected: HashSet<String> = ids.into_iter().collect();
    let duplicates: usize = deliveries_per_webhook(&received).values().map(|c| c - 1).sum();
    eprintln!(
        "sigkill: n={n} in_flight_at_kill={in_flight} killed_at={killed_at:?} lost={} delivered_twice={duplicates} queue_empty_after={all_decided:?}",
        expected.difference(&document_ids(&received)).count()
    );
    assert_eq!(document_ids(&received), expected, "no review lost");
    assert!(
        duplicates <= usize::try_from(in_flight).unwrap(),
        "only jobs in flight at the kill may repeat"
    );
}

#[actix_web::test]
async fn a_redis_crash_and_restart_loses_no_accepted_job() {
    let mut redis = PrivateRedis::start().await;
    let keys = TestRedis {
        url: redis.url(),
        prefix: "crash".to_owned(),
    };
    let mut settings = helpdesk_settings(&keys);
    settings.review_delay_ms = "500-1000".parse().unwrap();
    settings.retry_schedule = "100ms,200ms,400ms,800ms,1s,1s,1s".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;
    let mut receiver = Receiver::start(200).await;

    let ids: HashSet<String> = schedule(&helpdesk.url, &receiver.url, 100).await.into_iter().collect();
    redis.crash(); // every job was acknowledged with a 202; none is due yet
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    redis.restart().await;

    let received = receiver.collect_until(DEADLINE, |got| document_ids(got) == ids).await;
    assert_eq!(document_ids(&received), ids);
}

#[actix_web::test]
async fn a_receiver_that_always_fails_gets_dead_lettered_and_redelivery_succeeds_once_it_recovers() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.retry_schedule = "20ms,20ms".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;
    let mut receiver = Receiver::start(500).await;
    let id = schedule(&helpdesk.url, &receiver.url, 1).await.remove(0);

    let case = wait_for_delivery(&helpdesk.url, &id, DeliveryState::Dead).await;
    let log = &case.delivery.log;
    assert_eq!(log.len(), 3, "one attempt and two retries: {case:?}");
    assert!(
        log.iter()
            .all(|a| a.status_code == Some(500) && a.error.as_deref() == Some("HTTP 500"))
    );
    let (_, dead) = get_json(&format!("{}/dead-letters", helpdesk.url)).await;
    assert_eq!(dead["total"], 1);
    assert_eq!(dead["items"][0]["documentId"], id.as_str());

    let failed: Vec<Received> = receiver.collect_until(DEADLINE, |got| got.len() == 3).await;
    receiver.behaviour.answer(200);
    let (status, body) = post_json(&format!("{}/document/{id}/redeliver", helpdesk.url), &json!({}), &[]).await;
    assert_eq!(status, 202, "{body}");
    let redelivered = receiver.next(DEADLINE).await;
    assert_eq!(
        redelivered.headers["webhook-id"], failed[0].headers["webhook-id"],
        "the same event"
    );
    let case = wait_for_delivery(&helpdesk.url, &id, DeliveryState::Delivered).await;
    assert_eq!(case.delivery.attempts, 4);
    let (_, dead) = get_json(&format!("{}/dead-letters", helpdesk.url)).await;
    assert_eq!(dead["total"], 0);

    // A delivered case can be replayed too.
    let (status, _) = post_json(&format!("{}/document/{id}/redeliver", helpdesk.url), &json!({}), &[]).await;
    assert_eq!(status, 202);
    let replay = receiver.next(DEADLINE).await;
    assert_eq!(replay.headers["webhook-id"], failed[0].headers["webhook-id"]);
    // An unknown case cannot be redelivered.
    let (status, _) = post_json(&format!("{}/document/nope/redeliver", helpdesk.url), &json!({}), &[]).await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn a_case_is_not_redelivered_before_it_is_decided_nor_while_a_delivery_is_in_flight() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.review_delay_ms = "3600000".parse().unwrap();
    let undecided = start_helpdesk(settings).await;
    let receiver = Receiver::start(200).await;
    let id = schedule(&undecided.url, &receiver.url, 1).await.remove(0);
    let (status, body) = post_json(&format!("{}/document/{id}/redeliver", undecided.url), &json!({}), &[]).await;
    assert_eq!(assert_client_error(status, &body, 409), "conflict");
    assert_eq!(
        delivery_state(&undecided.url, &id).await,
        DeliveryState::Scheduled,
        "and still waits for its agent"
    );

    // A receiver that takes its time: the first delivery is in flight.
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    let mut receiver = Receiver::start(200).await;
    receiver.behaviour.delay(Duration::from_millis(1500));
    let id = schedule(&helpdesk.url, &receiver.url, 1).await.remove(0);
    wait_for_delivery(&helpdesk.url, &id, DeliveryState::InFlight).await;
    let (status, body) = post_json(&format!("{}/document/{id}/redeliver", helpdesk.url), &json!({}), &[]).await;
    assert_eq!(assert_client_error(status, &body, 409), "conflict");
    let case = wait_for_delivery(&helpdesk.url, &id, DeliveryState::Delivered).await;
    assert_eq!(
        case.delivery.attempts, 1,
        "the refused redelivery sent nothing: {case:?}"
    );
    receiver.next(DEADLINE).await;
    receiver.behaviour.delay(Duration::ZERO);
    let (status, body) = post_json(&format!("{}/document/{id}/redeliver", helpdesk.url), &json!({}), &[]).await;
    assert_eq!(status, 202, "once it has finished it can: {body}");
}

async fn delivery_state(helpdesk_url: &str, id: &str) -> DeliveryState {
    let (_, case) = get_json(&format!("{helpdesk_url}/document/{id}")).await;
    serde_json::from_value::<hookline_contract::CaseView>(case)
        .unwrap()
        .delivery
        .state
}

#[actix_web::test]
async fn gone_stops_the_retries_at_once() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    let mut receiver = Receiver::start(410).await;
    let id = schedule(&helpdesk.url, &receiver.url, 1).await.remove(0);
    receiver.next(DEADLINE).await;
    let case = wait_for_delivery(&helpdesk.url, &id, DeliveryState::Dead).await;
    assert_eq!(case.delivery.attempts, 1, "{case:?}");
}

#[actix_web::test]
async fn a_429_with_retry_after_makes_the_next_attempt_wait_for_it() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await; // schedule: 50ms first
    let mut receiver = Receiver::start(200).await;
    receiver
        .behaviour
        .script
        .lock()
        .unwrap()
        .push_back((429, Some("1".to_owned())));
    schedule(&helpdesk.url, &receiver.url, 1).await;
    let first = receiver.next(DEADLINE).await;
    let second = receiver.next(DEADLINE).await;
    let waited = second.at - first.at;
    assert!(
        waited >= Duration::from_millis(1000),
        "retried after {waited:?}, not after Retry-After: 1"
    );
}

#[actix_web::test]
async fn two_workers_on_one_redis_deliver_each_job_exactly_once() {
    let redis = TestRedis::default();
    let mut api_settings = helpdesk_settings(&redis);
    api_settings.role = helpdesk::config::Role::Api;
    api_settings.review_delay_ms = "0-500".parse().unwrap();
    let api = start_helpdesk(api_settings).await;
    let worker = [("HELPDESK_ROLE", "worker")];
    let _first = helpdesk_process(&redis, free_port(), &worker).await;
    let _second = helpdesk_process(&redis, free_port(), &worker).await;
    let mut receiver = Receiver::start(200).await;

    let ids: HashSet<String> = schedule(&api.url, &receiver.url, 500).await.into_iter().collect();
    let received = receiver.collect_until(DEADLINE, |got| got.len() >= ids.len()).await;
    // Give a duplicate, if there were one, the time to show up.
    let late = tokio::time::timeout(Duration::from_millis(500), receiver.received.recv()).await;
    assert!(late.is_err(), "a job was delivered twice: {late:?}");
    assert_eq!(document_ids(&received), ids);
    assert!(deliveries_per_webhook(&received).values().all(|count| *count == 1));
}

#[actix_web::test]
async fn sigterm_lets_in_flight_deliveries_finish_and_loses_nothing() {
    let redis = TestRedis::default();
    let mut receiver = Receiver::start(200).await;
    receiver.behaviour.delay(Duration::from_millis(400));
    let port = free_port();
    let settings = [("REVIEW_DELAY_MS", "0-1000")];
    let mut helpdesk = helpdesk_process(&redis, port, &settings).await;
    let ids: HashSet<String> = schedule(&helpdesk.url, &receiver.url, 50).await.into_iter().collect();

    let mut received = receiver.collect_until(DEADLINE, |got| !got.is_empty()).await;
    helpdesk.terminate();
    let status = helpdesk
        .exited(Duration::from_secs(10))
        .await
        .expect("it exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    let mut conn = redis.connection().await;
    let in_flight: u64 = redis::cmd("ZCARD")
        .arg(format!("{{{}}}:inflight", redis.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(in_flight, 0, "every claimed delivery finished before exit");

    let _again = helpdesk_process(&redis, port, &settings).await;
    let rest = receiver
        .collect_until(DEADLINE, |got| {
            let mut seen = document_ids(&received);
            seen.extend(document_ids(got));
            seen == ids
        })
        .await;
    received.extend(rest);
    assert!(
        deliveries_per_webhook(&received).values().all(|count| *count == 1),
        "graceful: no duplicates"
    );
}

#[actix_web::test]
async fn reviews_whose_webhooks_never_arrive_are_decided_by_reconciliation() {
    // The help desk calls back to a port where nobody listens, and gives up.
    let silent = format!("http://127.0.0.1:{}", free_port());
    let stack = Stack::start_with(
        |hd| {
            hd.retry_schedule = "none".parse().unwrap();
            hd.review_delay_ms = "0-100".parse().unwrap();
        },
        |consumer| {
            consumer.public_url = Some(silent.parse().unwrap());
            consumer.reconcile_after = Duration::from_millis(300);
        },
    )
    .await;
    let mut reviews = Vec::new();
    for n in 0..10 {
        reviews.push(stack.request_review(&format!("https://example.com/{n}.pdf")).await);
    }
    let rows = stack.wait_until_all_decided(10, DEADLINE).await;
    for review in &reviews {
        let case = stack.case(review.document_id.as_deref().unwrap()).await;
        assert_eq!(
            case.delivery.state,
            DeliveryState::Dead,
            "the webhook really never arrived"
        );
        let ours = rows.iter().find(|r| r.document_id == review.document_id).unwrap();
        assert_eq!(ours.status(), case.status, "reconciled to the help desk's decision");
    }
    let (_, metrics) = hookline_tests::get_text(&format!("{}/metrics", stack.consumer.url)).await;
    assert!(
        metrics.contains("hookline_consumer_reconciled_total 10\n"),
        "all ten by reconciliation: {metrics}"
    );
}

#[actix_web::test]
async fn the_consumer_answers_503_while_its_database_is_unreachable_and_the_retry_lands() {
    let stack = Stack::start(|hd| {
        hd.review_delay_ms = "300".parse().unwrap();
        hd.retry_schedule = "200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms"
            .parse()
            .unwrap();
    })
    .await;
    let review = stack.request_review("https://example.com/a.pdf").await;
    stack.db.cut().await;

    let webhook = json!({"agentId": "a", "documentId": review.document_id, "documentStatus": "ACCEPTED"});
    let (status, body) = post_signed_webhook(
        &format!("{}/document/update", stack.consumer.url),
        &serde_json::to_vec(&webhook).unwrap(),
        "msg_while_down",
    )
    .await;
    assert_eq!(status, 503, "never acknowledge what was not stored: {body}");
    assert_eq!(body["error"], "unavailable");

    let document_id = review.document_id.clone().unwrap();
    wait_for(DEADLINE, "the help desk to meet the outage", || async {
        (stack
            .case(&document_id)
            .await
            .delivery
            .log
            .iter()
            .any(|a| a.status_code == Some(503)))
        .then_some(())
    })
    .await;
    stack.db.restore().await;
    stack.wait_until_all_decided(1, DEADLINE).await;
    // Decided by the help desk's retry, after the 503: not by a webhook
    // wrongly acknowledged, not by reconciliation.
    let case = stack.wait_for_delivery(&document_id, DeliveryState::Delivered).await;
    let statuses: Vec<Option<u16>> = case.delivery.log.iter().map(|attempt| attempt.status_code).collect();
    assert_eq!(statuses.last(), Some(&Some(200)), "{statuses:?}");
    assert!(statuses.contains(&Some(503)), "{statuses:?}");
}
