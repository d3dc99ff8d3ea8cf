//! Recovery after an outage: `POST /webhooks/{id}/recover {"since"}` sends
//! again every event of the subscription that died since then, and
//! nothing else, once; `POST /dead-letters/redeliver` does the same for
//! dead letters by filter (here: an endpoint's callbacks); `GET
//! /recoveries/{id}` shows the progress. Bad requests are 4xx naming the
//! field, another tenant's subscription or recovery a 404.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use hookline_tests::api::{auth, post_document, subscribe};
use hookline_tests::redis::TestRedis;
use hookline_tests::{Received, Receiver, Running, call, helpdesk_settings, start_helpdesk};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(20);
const OPERATOR: &str = "Bearer operator-key-0123456789abcdef";
const ACME: &str = "Bearer acme-key-0123456789abcdef";

async fn post(
    helpdesk: &Running,
    key: Option<&str>,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut all = auth(key);
    all.extend_from_slice(headers);
    let (status, _, body) = call("POST", &format!("{}{path}", helpdesk.url), &all, Some(&body)).await;
    (status, body)
}

async fn get(helpdesk: &Running, key: Option<&str>, path: &str) -> (u16, Value) {
    let (status, _, body) = call("GET", &format!("{}{path}", helpdesk.url), &auth(key), None).await;
    (status, body)
}

/// How many dead letters the caller sees.
async fn dead(helpdesk: &Running, key: Option<&str>) -> u64 {
    get(helpdesk, key, "/dead-letters?limit=500").await.1["total"]
        .as_u64()
        .unwrap()
}

async fn until_dead(helpdesk: &Running, key: Option<&str>, n: u64) {
    let give_up = tokio::time::Instant::now() + DEADLINE;
    while dead(helpdesk, key).await < n {
        assert!(tokio::time::Instant::now() < give_up, "never {n} dead letters");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Follows recovery `started` until it is done; its last view.
async fn finished(helpdesk: &Running, key: Option<&str>, started: &Value) -> Value {
    let give_up = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, view) = get(
            helpdesk,
            key,
            &format!("/recoveries/{}", started["id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(status, 200, "{view}");
        if view["state"] != "running" {
            return view;
        }
        assert!(tokio::time::Instant::now() < give_up, "still running: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each webhook-id received, and how often.
fn ids(got: &[Received]) -> BTreeMap<String, usize> {
    let mut counted = BTreeMap::new();
    for received in got {
        *counted.entry(received.headers["webhook-id"].clone()).or_default() += 1;
    }
    counted
}

#[actix_web::test]
async fn a_subscription_s_recovery_sends_every_event_that_died_since_and_nothing_else_once() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    // Twenty failed attempts in a row: not enough to open the breaker,
    // which would hold the last events back instead of letting them die.
    settings.circuit_failures = 1000;
    let helpdesk = start_helpdesk(settings).await;
    let mut receiver = Receiver::start(503).await;
    let sub = subscribe(&helpdesk.url, None, &receiver.url, &["document.received"]).await;
    let sub_id = sub["id"].as_str().unwrap().to_owned();

    // Two events die before the outage we recover from, three during it.
    for _ in 0..2 {
        post_document(&helpdesk.url, None).await;
    }
    until_dead(&helpdesk, None, 2).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = Utc::now();
    for _ in 0..3 {
        post_document(&helpdesk.url, None).await;
    }
    until_dead(&helpdesk, None, 5).await;
    let during: Vec<String> = get(&helpdesk, None, "/dead-letters").await.1["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["createdAt"].as_str().unwrap() >= since.to_rfc3339().as_str())
        .map(|d| d["delivery"]["webhookId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(during.len(), 3);
    receiver.take();

    // The receiver is back; recover since the outage began.
    receiver.behaviour.answer(200);
    let (status, started) = post(
        &helpdesk,
        None,
        &format!("/webhooks/{sub_id}/recover"),
        json!({"since": since}),
        &[],
    )
    .await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["state"], "running", "{started}");
    let done = finished(&helpdesk, None, &started).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        (done["matched"].as_u64(), done["scheduled"].as_u64()),
        (Some(3), Some(3)),
        "{done}"
    );
    assert_eq!(done["filter"]["subscriptionId"], sub_id.as_str(), "{done}");

    let got = receiver.collect_until(DEADLINE, |got| got.len() >= 3).await;
    // Anything sent twice, or one of the first two, would land in this second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut all = got;
    all.extend(receiver.take());
    let counted = ids(&all);
    let expected: BTreeMap<String, usize> = during.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(counted, expected, "exactly the events that died since, once each");
    assert_eq!(dead(&helpdesk, None).await, 2, "the two older dead letters stay dead");

    // Again: nothing of the window is dead any more.
    let (_, again) = post(
        &helpdesk,
        None,
        &format!("/webhooks/{sub_id}/recover"),
        json!({"since": since}),
        &[],
    )
    .await;
    let again = finished(&helpdesk, None, &again).await;
    assert_eq!(again["matched"], 0, "{again}");
}

#[actix_web::test]
async fn dead_letters_are_redelivered_by_endpoint_and_bad_requests_are_refused_naming_the_field() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.api_keys = "operator-key-0123456789abcdef,acme:acme-key-0123456789abcdef"
        .parse()
        .unwrap();
    settings.tenant_secrets = hookline_tests::tenant_secrets(&["acme"]);
    let helpdesk = start_helpdesk(settings).await;
    let mut down = Receiver::start(500).await;
    let mut other = Receiver::start(500).await;
    let since = Utc::now();
    for receiver in [&down, &other] {
        let (status, body) = post(
            &helpdesk,
            Some(ACME),
            "/document",
            json!({"documentUrl": "https://example.com/c.pdf"}),
            &[("x-callback-url", receiver.url.as_str())],
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    until_dead(&helpdesk, Some(ACME), 2).await;
    down.take();
    other.take();
    down.behaviour.answer(200);
    other.behaviour.answer(200);
    let endpoint = down.url.trim_end_matches("/hook").to_owned();

    let (status, started) = post(
        &helpdesk,
        Some(ACME),
        "/dead-letters/redeliver",
        json!({"since": since, "endpoint": endpoint}),
        &[],
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let done = finished(&helpdesk, Some(ACME), &started).await;
    assert_eq!(
        (done["matched"].as_u64(), done["scheduled"].as_u64()),
        (Some(1), Some(1)),
        "{done}"
    );
    down.next(DEADLINE).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(other.take().is_empty(), "only the endpoint asked for");
    assert_eq!(dead(&helpdesk, Some(ACME)).await, 1);

    // Bad input: a 400 naming the field, nothing started.
    for (body, field) in [
        (json!({"since": Utc::now(), "until": since}), "since"),
        (json!({"since": since, "eventType": "document.nope"}), "eventType"),
        (json!({"since": since, "endpoint": "not a url"}), "endpoint"),
        (json!({"since": since, "subscriptionId": "nope"}), "subscriptionId"),
        (json!({"since": "yesterday"}), "since"),
        (json!({"since": since, "surprise": 1}), "surprise"),
    ] {
        let (status, answer) = post(&helpdesk, Some(ACME), "/dead-letters/redeliver", body.clone(), &[]).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.to_string().contains(field), "{body}: {answer}");
    }
    assert_eq!(dead(&helpdesk, Some(ACME)).await, 1);
    let (status, answer) = get(&helpdesk, Some(ACME), "/recoveries/not-one").await;
    assert_eq!(status, 400, "{answer}");
    // The operator's recovery (the default tenant's) is not acme's to see.
    let (status, operators) = post(
        &helpdesk,
        Some(OPERATOR),
        "/dead-letters/redeliver",
        json!({"since": since}),
        &[],
    )
    .await;
    assert_eq!(status, 202, "{operators}");
    let (status, answer) = get(
        &helpdesk,
        Some(ACME),
        &format!("/recoveries/{}", operators["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = post(
        &helpdesk,
        Some(ACME),
        "/webhooks/sub_doesnotexist/recover",
        json!({"since": since}),
        &[],
    )
    .await;
    assert_eq!(status, 404, "{answer}");
}
