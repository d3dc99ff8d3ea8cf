//! Receivers cannot break the help desk: every attempt ends at its deadline,
//! each endpoint has its own limits (in flight, rate, a pause asked for with
//! `Retry-After`, a circuit breaker), and a bad endpoint never delays a good
//! one. Real help desk processes on a real Redis; the hostile receivers are
//! raw TCP servers on loopback ([`hookline_tests::hostile`]). And the same
//! for the consumer facing a slow help desk: its calls end at
//! `HELPDESK_TIMEOUT`, body included, and one stuck case never holds up
//! the reconciliation of the others.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::future::join_all;
use helpdesk::store::{EndpointLimits, NewCase, Store};
use hookline_tests::hostile::{Hostile, Hostility};
use hookline_tests::process::{free_port, helpdesk_process};
use hookline_tests::{
    Receiver, TestDb, TestRedis, consumer_settings, get_json, post_json, post_review, send_json, start_consumer,
    wait_for,
};
use serde_json::{Value, json};

/// Schedules a review on the help desk at `helpdesk` for `callback`; its documentId.
async fn schedule(helpdesk: &str, callback: &str, n: usize) -> String {
    let (status, body) = post_json(
        &format!("{helpdesk}/document"),
        &json!({"documentUrl": format!("https://example.com/{n}.pdf")}),
        &[("x-callback-url", callback)],
    )
    .await;
    assert_eq!(status, 202, "{body}");
    body["documentId"].as_str().unwrap().to_owned()
}

/// `GET /endpoints/{endpoint}` for the endpoint of `callback`.
async fn endpoint_of(helpdesk: &str, callback: &str) -> Value {
    let endpoint = helpdesk::endpoint::Endpoint::of_str(callback).unwrap();
    let encoded: String = url::form_urlencoded::byte_serialize(endpoint.as_str().as_bytes()).collect();
    let (status, body) = get_json(&format!("{helpdesk}/endpoints/{encoded}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn case(helpdesk: &str, document_id: &str) -> Value {
    let (status, body) = get_json(&format!("{helpdesk}/document/{document_id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The attempts logged for a case.
fn attempts(case: &Value) -> Vec<Value> {
    case["delivery"]["log"].as_array().cloned().unwrap_or_default()
}

#[actix_web::test]
async fn hostile_receivers_cost_only_their_own_attempts_and_healthy_webhooks_land_before_any_hostile_attempt_ends() {
    let redis = TestRedis::default();
    // A small worker, as in the report that found this: 16 slots in all. It
    // starts once every job is stored (the API alone takes them), so the
    // hostile jobs are due first whatever the pace of this test.
    let settings = [
        ("DELIVERY_TIMEOUT", "1s"),
        ("JOB_LEASE", "5s"),
        ("WORKER_CONCURRENCY", "16"),
        ("RETRY_SCHEDULE", "500ms,500ms,500ms,500ms,500ms,500ms"),
        ("CIRCUIT_FAILURES", "5"),
        ("CIRCUIT_COOLDOWN", "1m"),
    ];
    let with_role = |role| {
        let mut env = settings.to_vec();
        env.push(("HELPDESK_ROLE", role));
        env
    };
    let helpdesk = helpdesk_process(&redis, free_port(), &with_role("api")).await;
    let black_hole = Hostile::start(Hostility::BlackHole).await;
    let loris = Hostile::start(Hostility::HeadThenSilence).await;
    let trickle = Hostile::start(Hostility::TrickledHead).await;
    let busy = Hostile::start(Hostility::Refuses {
        status: 503,
        retry_after_secs: 1,
    })
    .await;
    let hostile = [&black_hole, &loris, &trickle, &busy];
    let mut hostile_cases = Vec::new();
    for receiver in hostile {
        let scheduled = join_all((0..100).map(|n| schedule(&helpdesk.url, &receiver.url, n))).await;
        hostile_cases.push(scheduled);
    }
    let mut healthy = Receiver::start(200).await;
    let mut sent = Vec::new();
    for n in 0..20 {
        sent.push(schedule(&helpdesk.url, &healthy.url, n).await);
    }
    let _worker = helpdesk_process(&redis, free_port(), &with_role("worker")).await;

    // The three that hang hold their share of the slots until the deadline
    // cuts their first attempts off; every healthy webhook lands before
    // that, in a slot they left free, not in one they gave back.
    let received = healthy
        .collect_until(Duration::from_secs(10), |all| all.len() >= 20)
        .await;
    for document_id in &sent {
        assert!(
            received.iter().any(|r| r.body["documentId"] == document_id.as_str()),
            "{document_id} was not delivered"
        );
    }
    let hanging = [&black_hole, &loris, &trickle];
    let first_cut_off = wait_for(Duration::from_secs(10), "a hostile attempt to end", || async {
        hanging
            .iter()
            .filter_map(|receiver| receiver.stats.ended().first().copied())
            .min()
    })
    .await;
    let last_landed = received.iter().map(|r| r.at).max().unwrap();
    assert!(
        last_landed < first_cut_off,
        "a healthy webhook landed {:?} after the first hostile attempt was cut off, behind 400 hostile ones",
        last_landed.duration_since(first_cut_off)
    );

    // Every hostile attempt ended at the deadline, and says where it stood.
    let mut first_logs = Vec::new();
    for (receiver, document_ids, stage) in [
        (
            &black_hole,
            &hostile_cases[0],
            "timed out after 1s waiting for the response",
        ),
        (
            &loris,
            &hostile_cases[1],
            "timed out after 1s reading the body of an HTTP 200 answer",
        ),
        (
            &trickle,
            &hostile_cases[2],
            "timed out after 1s waiting for the response",
        ),
    ] {
        // Which of the endpoint's cases go first is the queue's choice (and
        // its breaker holds the rest after a few failures): look at the
        // first one that has an attempt logged.
        let logged = wait_for(Duration::from_secs(10), "a logged attempt", || async {
            for document_id in document_ids {
                let log = attempts(&case(&helpdesk.url, document_id).await);
                if !log.is_empty() {
                    return Some(log);
                }
            }
            None
        })
        .await;
        for attempt in &logged {
            assert_eq!(attempt["error"], stage, "{attempt}");
            let took = attempt["durationMs"].as_u64().unwrap();
            assert!(
                (900..2000).contains(&took),
                "cut off at the 1 s deadline, not after {took} ms"
            );
        }
        assert!(
            receiver.stats.max_open() <= 4,
            "an endpoint gets at most a quarter of the worker's 16 slots, had {}",
            receiver.stats.max_open()
        );
        first_logs.push(logged);
    }
    assert_eq!(first_logs[1][0]["statusCode"], 200, "the loris sent its head");

    // The three that time out trip their breakers; the one that asks for a
    // pause is paused instead, and never counted as failing.
    for receiver in [&black_hole, &loris, &trickle] {
        wait_for(Duration::from_secs(15), "the breaker to open", || async {
            let endpoint = endpoint_of(&helpdesk.url, &receiver.url).await;
            (endpoint["breaker"] == "OPEN").then_some(())
        })
        .await;
    }
    let connections = black_hole.stats.connections();
    let endpoint = endpoint_of(&helpdesk.url, &black_hole.url).await;
    // Five in a row opened it; attempts already in flight then still count.
    assert!(endpoint["consecutiveFailures"].as_u64().unwrap() >= 5, "{endpoint}");
    assert!(endpoint["openUntil"].is_string(), "{endpoint}");
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        black_hole.stats.connections(),
        connections,
        "an open breaker spends no attempts"
    );
    let endpoint = endpoint_of(&helpdesk.url, &busy.url).await;
    assert_eq!(endpoint["breaker"], "CLOSED", "{endpoint}");
    assert_eq!(endpoint["consecutiveFailures"], 0, "{endpoint}");
    assert_eq!(endpoint["lastError"], "HTTP 503", "{endpoint}");
    let requests = busy.stats.requests();
    assert!(requests >= 4, "the busy receiver was tried ({requests})");
}

#[actix_web::test]
async fn retry_after_pauses_the_whole_endpoint_for_that_long() {
    let redis = TestRedis::default();
    let helpdesk = helpdesk_process(
        &redis,
        free_port(),
        &[
            ("ENDPOINT_CONCURRENCY", "1"),
            ("RETRY_SCHEDULE", "10ms,10ms,10ms,10ms,10ms"),
        ],
    )
    .await;
    let mut receiver = Receiver::start(200).await;
    receiver
        .behaviour
        .script
        .lock()
        .unwrap()
        .push_back((429, Some("2".to_owned())));
    for n in 0..5 {
        schedule(&helpdesk.url, &receiver.url, n).await;
    }
    let received = receiver
        .collect_until(Duration::from_secs(10), |all| all.len() >= 6)
        .await;
    let pause = received[1].at.duration_since(received[0].at);
    assert!(
        pause >= Duration::from_millis(1900),
        "after a 429 with Retry-After: 2, the endpoint's next webhook came after {pause:?}"
    );
    let rest = received[5].at.duration_since(received[1].at);
    assert!(rest < Duration::from_secs(1), "then the rest flowed ({rest:?})");
}

#[actix_web::test]
async fn the_breaker_opens_on_failures_in_a_row_holds_the_jobs_and_a_probe_closes_it() {
    let redis = TestRedis::default();
    let helpdesk = helpdesk_process(
        &redis,
        free_port(),
        &[
            ("ENDPOINT_CONCURRENCY", "1"),
            ("CIRCUIT_FAILURES", "3"),
            ("CIRCUIT_COOLDOWN", "1s"),
            ("RETRY_SCHEDULE", "10ms,10ms,10ms,10ms,10ms,10ms,10ms,10ms"),
        ],
    )
    .await;
    let mut receiver = Receiver::start(500).await;
    for n in 0..5 {
        schedule(&helpdesk.url, &receiver.url, n).await;
    }
    let failures = receiver
        .collect_until(Duration::from_secs(10), |all| all.len() >= 3)
        .await;
    let endpoint = wait_for(Duration::from_secs(5), "the breaker to open", || async {
        let endpoint = endpoint_of(&helpdesk.url, &receiver.url).await;
        (endpoint["breaker"] == "OPEN").then_some(endpoint)
    })
    .await;
    assert_eq!(endpoint["consecutiveFailures"], 3, "{endpoint}");
    // While it is open nothing is sent; the receiver recovers meanwhile.
    receiver.behaviour.answer(200);
    let rest = receiver
        .collect_until(Duration::from_secs(10), |all| all.len() >= 5)
        .await;
    let held = rest[0].at.duration_since(failures[2].at);
    assert!(
        held >= Duration::from_millis(900),
        "the probe went {held:?} after the third failure, inside the 1 s cooldown"
    );
    let endpoint = endpoint_of(&helpdesk.url, &receiver.url).await;
    assert_eq!(endpoint["breaker"], "CLOSED", "the probe closed it: {endpoint}");
    assert_eq!(endpoint["consecutiveFailures"], 0);
}

#[actix_web::test]
async fn the_rate_limit_holds_across_two_worker_processes() {
    let redis = TestRedis::default();
    let limited = [("ENDPOINT_RATE", "20"), ("HELPDESK_ROLE", "worker")];
    let api = helpdesk_process(
        &redis,
        free_port(),
        &[("ENDPOINT_RATE", "20"), ("HELPDESK_ROLE", "api")],
    )
    .await;
    let _workers = (
        helpdesk_process(&redis, free_port(), &limited).await,
        helpdesk_process(&redis, free_port(), &limited).await,
    );
    let mut receiver = Receiver::start(200).await;
    join_all((0..100).map(|n| schedule(&api.url, &receiver.url, n))).await;
    let received = receiver
        .collect_until(Duration::from_secs(20), |all| all.len() >= 100)
        .await;
    let span = received[99].at.duration_since(received[0].at).as_secs_f64();
    let rate = 99.0 / span;
    assert!(
        (18.0..=22.0).contains(&rate),
        "two workers together sent {rate:.1} webhooks/s to an endpoint limited to 20/s"
    );
}

#[actix_web::test]
async fn an_endpoint_rate_set_through_the_api_applies_and_can_be_cleared() {
    let redis = TestRedis::default();
    let helpdesk = helpdesk_process(&redis, free_port(), &[]).await;
    let mut receiver = Receiver::start(200).await;
    let endpoint = helpdesk::endpoint::Endpoint::of_str(&receiver.url).unwrap();
    let encoded: String = url::form_urlencoded::byte_serialize(endpoint.as_str().as_bytes()).collect();
    let url = format!("{}/endpoints/{encoded}", helpdesk.url);
    let (status, body) = send_json("PUT", &url, &json!({"rate": 5})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["rate"].as_f64(), &body["rateOverridden"]),
        (Some(5.0), &json!(true))
    );
    for n in 0..6 {
        schedule(&helpdesk.url, &receiver.url, n).await;
    }
    let received = receiver
        .collect_until(Duration::from_secs(10), |all| all.len() >= 6)
        .await;
    let span = received[5].at.duration_since(received[0].at);
    assert!(span >= Duration::from_millis(900), "6 webhooks at 5/s took {span:?}");

    let (status, body) = send_json("PUT", &url, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body.get("rate"), &body["rateOverridden"]), (None, &json!(false)));
    let (status, body) = get_json(&format!("{}/endpoints", helpdesk.url)).await;
    assert_eq!(status, 200);
    assert_eq!(body["items"][0]["endpoint"], endpoint.as_str(), "{body}");

    // Bad input is refused with the field named, and changes nothing.
    for (path, body) in [
        (url.clone(), json!({"rate": 0})),
        (url.clone(), json!({"rate": -3})),
        (url.clone(), json!({"rate": "fast"})),
        (
            format!("{}/endpoints/not-an-endpoint", helpdesk.url),
            json!({"rate": 5}),
        ),
        (
            format!("{}/endpoints/http%3A%2F%2Fexample.com", helpdesk.url),
            json!({"rate": 5}),
        ),
    ] {
        let (status, answer) = send_json("PUT", &path, &body).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    assert_eq!(endpoint_of(&helpdesk.url, &receiver.url).await["rateOverridden"], false);
}

#[actix_web::test]
async fn another_endpoints_job_lands_before_a_backlog_of_ten_thousand_on_one_endpoint_is_worked_through() {
    let redis = TestRedis::default();
    let _worker = helpdesk_process(&redis, free_port(), &[("HELPDESK_ROLE", "worker")]).await;
    let mut busy = Receiver::start(200).await;
    let mut quiet = Receiver::start(200).await;
    // Stored directly (the worker is the process under test): 10,000 jobs
    // for one endpoint, all due at once, then one for another, just after.
    let store = Store::connect(&redis.url, &redis.prefix, EndpointLimits::default())
        .await
        .unwrap();
    // Stored as of `stored`, so every job of the backlog is due at once;
    // 10 s ahead, for storing 10,000 cases on a busy machine (3 s was
    // once too short while other builds ran).
    let stored = Utc::now();
    let due = stored + chrono::Duration::seconds(10);
    let new_case = |id: String, callback: &str, delay| NewCase {
        document_id: id.clone(),
        agent_id: "agent".to_owned(),
        document_url: "https://example.com/doc.pdf".to_owned(),
        callback_url: Some(callback.to_owned()),
        tenant: hookline_kit::auth::DEFAULT_TENANT.to_owned(),
        verdict: None,
        event_prefix: "msg_test".to_owned(),
        request_id: None,
        webhook_id: format!("msg_{id}"),
        delay,
        chaos: None,
        reorder: false,
        dialect: None,
        chaos_seed: None,
        traceparent: None,
    };
    let backlog: Vec<NewCase> = (0..10_000)
        .map(|n| new_case(format!("busy-{n}"), &busy.url, Duration::from_secs(10)))
        .collect();
    let then = store.at(stored);
    for chunk in backlog.chunks(1000) {
        futures_util::future::try_join_all(chunk.iter().map(|c| then.schedule(c)))
            .await
            .unwrap();
    }
    then.schedule(&new_case(
        "quiet-0".to_owned(),
        &quiet.url,
        Duration::from_millis(10_010),
    ))
    .await
    .unwrap();
    assert!(Utc::now() < due, "the jobs were stored before they were due");

    // Due just after all of the backlog, it lands while the backlog is
    // still being worked through: it did not queue behind it.
    let landed = quiet.next(Duration::from_secs(30)).await;
    let delivered_before = busy.take().iter().filter(|r| r.at < landed.at).count();
    assert!(
        delivered_before < 10_000,
        "the quiet endpoint's job landed after the whole backlog ({delivered_before} delivered before it)"
    );
}

#[actix_web::test]
async fn a_help_desk_that_trickles_its_answer_is_cut_off_at_helpdesk_timeout_and_the_review_is_kept_for_later() {
    let slow = Hostile::start(Hostility::TrickledBody {
        head: "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{".to_owned(),
    })
    .await;
    let db = TestDb::create().await;
    let mut settings = consumer_settings(&db, &format!("http://127.0.0.1:{}", slow.port));
    settings.helpdesk_timeout = Duration::from_secs(1);
    let consumer = start_consumer(settings).await;
    let started = Instant::now();
    let (status, body) = post_review(&consumer.url, "https://example.com/a.pdf").await;
    let took = started.elapsed();
    // All tries together get one HELPDESK_TIMEOUT: the first one took it all.
    assert!(took < Duration::from_millis(1800), "answered after {took:?}");
    assert_eq!(slow.stats.requests(), 1);
    // The help desk may have taken it: the review is kept, without its
    // ticket, for the reconciler to send again (safe_retries.rs).
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["documentId"], serde_json::Value::Null, "{body}");
    let rows = db.reviews().await;
    assert_eq!((rows.len(), rows[0].document_id.as_deref()), (1, None));
}

/// A help desk whose `GET /document/{id}` takes `delay` (and never answers
/// for `doc-0`), deciding every case ACCEPTED; `POST /document` hands out
/// `doc-0`, `doc-1`, ...
async fn slow_helpdesk(delay: Duration) -> hookline_tests::Running {
    use actix_web::{App, HttpResponse, HttpServer, web};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let counter = std::sync::Arc::new(AtomicUsize::new(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let counter = counter.clone();
        App::new()
            .route(
                "/document",
                web::post().to(move || {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        HttpResponse::Accepted().json(
                            json!({"agentId": "agent-1", "documentId": format!("doc-{n}"), "status": "PENDING_REVIEW"}),
                        )
                    }
                }),
            )
            .route(
                "/document/{id}",
                web::get().to(move |id: web::Path<String>| async move {
                    if id.as_str() == "doc-0" {
                        actix_web::rt::time::sleep(Duration::from_secs(3600)).await;
                    }
                    actix_web::rt::time::sleep(delay).await;
                    let now = Utc::now();
                    HttpResponse::Ok().json(json!({
                        "documentId": id.as_str(), "agentId": "agent-1", "documentUrl": "https://example.com/a.pdf",
                        "callbackUrl": "http://127.0.0.1:9/document/update", "status": "ACCEPTED",
                        "createdAt": now, "dueAt": now,
                        "delivery": {"state": "DEAD", "webhookId": "msg_1", "attempts": 1}
                    }))
                }),
            )
    })
    .workers(2)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    hookline_tests::Running::new(port, handle)
}

#[actix_web::test]
async fn the_reconciler_asks_about_a_backlog_concurrently_and_one_stuck_case_holds_up_nothing() {
    let helpdesk = slow_helpdesk(Duration::from_millis(300)).await;
    let db = TestDb::create().await;
    let mut settings = consumer_settings(&db, &helpdesk.url);
    settings.reconcile_after = Duration::from_millis(300);
    settings.helpdesk_timeout = Duration::from_secs(2);
    // Webhooks would go nowhere: only reconciliation can decide these.
    settings.public_url = Some(
        format!("http://127.0.0.1:{}", hookline_tests::closed_port())
            .parse()
            .unwrap(),
    );
    let consumer = start_consumer(settings).await;
    for n in 0..49 {
        let (status, body) = post_review(&consumer.url, &format!("https://example.com/{n}.pdf")).await;
        assert_eq!(status, 201, "{body}");
    }
    // 48 answers of 300 ms each: 14 s one after the other, about 1 s sixteen at a time.
    let rows = wait_for(Duration::from_secs(6), "48 reviews reconciled", || async {
        let rows = db.reviews().await;
        (rows.iter().filter(|row| row.status().is_decided()).count() == 48).then_some(rows)
    })
    .await;
    let stuck = rows
        .iter()
        .find(|row| row.document_id.as_deref() == Some("doc-0"))
        .unwrap();
    assert!(
        !stuck.status().is_decided(),
        "the case whose answer never came stays pending"
    );
}
