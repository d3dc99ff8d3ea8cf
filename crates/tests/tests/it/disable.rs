//! Disable and tell: a subscription whose receiver answers `410 Gone`, or
//! keeps failing for `DISABLE_AFTER` with `DISABLE_AFTER_DEAD` dead letters
//! in a row, is disabled (nothing more is sent or queued for it), and its
//! tenant's other subscriptions are told with operational events
//! (`endpoint.disabled`, `message.attempt.exhausted`, `endpoint.enabled`),
//! signed with their own secrets; `POST /webhooks/{id}/enable` brings it
//! back. Operational events about failing ones end: none loops.

use std::time::Duration;

use hookline_tests::api::{auth, post_document, subscribe};
use hookline_tests::redis::TestRedis;
use hookline_tests::{Received, Receiver, Running, call, helpdesk_settings, metric_sum, start_helpdesk, wait_for};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(20);
const ACME: &str = "Bearer acme-key-0123456789abcdef";
const GLOBEX: &str = "Bearer globex-key-0123456789abcdef";

fn id(sub: &Value) -> String {
    sub["id"].as_str().unwrap().to_owned()
}

fn secret(sub: &Value) -> String {
    sub["secret"].as_str().unwrap().to_owned()
}

async fn subscription(helpdesk: &Running, key: Option<&str>, id: &str) -> (u16, Value) {
    let (status, _, body) = call("GET", &format!("{}/webhooks/{id}", helpdesk.url), &auth(key), None).await;
    (status, body)
}

/// The dead letters of subscription `id`.
async fn dead_letters(helpdesk: &Running, key: Option<&str>, id: &str) -> Vec<Value> {
    let (_, _, dead) = call("GET", &format!("{}/dead-letters", helpdesk.url), &auth(key), None).await;
    dead["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["subscriptionId"] == id)
        .cloned()
        .collect()
}

/// Waits until `id` has `n` dead letters.
async fn until_dead(helpdesk: &Running, key: Option<&str>, id: &str, n: usize) {
    let give_up = tokio::time::Instant::now() + DEADLINE;
    while dead_letters(helpdesk, key, id).await.len() < n {
        assert!(tokio::time::Instant::now() < give_up, "{id} never had {n} dead letters");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `hookline_helpdesk_events_queued_total` counts one `event`
/// (the worker counts what its finish queued once the script has answered).
async fn queued_once(helpdesk: &str, event: &str) {
    let prefix = format!("hookline_helpdesk_events_queued_total{{type=\"{event}\"}}");
    wait_for(DEADLINE, &format!("one {event} counted as queued"), || async {
        (metric_sum(helpdesk, &prefix).await == 1).then_some(())
    })
    .await;
    assert_eq!(metric_sum(helpdesk, &prefix).await, 1, "{event}");
}

/// The operational events of `got` of type `name`.
fn of_type<'a>(got: &'a [Received], name: &str) -> Vec<&'a Received> {
    got.iter().filter(|r| r.body["type"] == name).collect()
}

#[actix_web::test]
async fn a_410_disables_the_subscription_at_once_and_the_tenant_is_told_on_another_signed_with_its_secret() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    let mut gone = Receiver::start(410).await;
    let mut ops = Receiver::start(200).await;
    let gone_sub = subscribe(&helpdesk.url, None, &gone.url, &["document.received"]).await;
    let ops_sub = subscribe(
        &helpdesk.url,
        None,
        &ops.url,
        &["endpoint.disabled", "message.attempt.exhausted"],
    )
    .await;

    post_document(&helpdesk.url, None).await;
    let first = gone.next(DEADLINE).await;
    assert_eq!(first.body["type"], "document.received");
    let got = ops.collect_until(DEADLINE, |got| got.len() >= 2).await;
    for received in &got {
        received
            .verify_with(&secret(&ops_sub))
            .unwrap_or_else(|e| panic!("{e}: {}", received.body));
    }
    let disabled = of_type(&got, "endpoint.disabled");
    assert_eq!(disabled.len(), 1, "{got:?}");
    let data = &disabled[0].body["data"];
    assert_eq!(data["subscriptionId"], id(&gone_sub).as_str(), "{data}");
    assert_eq!(data["url"], gone.url.as_str(), "{data}");
    assert_eq!(data["reason"], "gone", "{data}");
    assert!(data["lastError"].as_str().unwrap().contains("Gone"), "{data}");
    assert!(data["at"].is_string(), "{data}");
    let exhausted = of_type(&got, "message.attempt.exhausted");
    assert_eq!(exhausted.len(), 1, "{got:?}");
    let data = &exhausted[0].body["data"];
    assert_eq!(data["subscriptionId"], id(&gone_sub).as_str(), "{data}");
    assert_eq!(data["webhookId"], first.headers["webhook-id"].as_str(), "{data}");
    assert_eq!(data["eventType"], "document.received", "{data}");
    // Counted as queued, as every event is.
    for event in ["endpoint.disabled", "message.attempt.exhausted"] {
        queued_once(&helpdesk.url, event).await;
    }

    let (status, shown) = subscription(&helpdesk, None, &id(&gone_sub)).await;
    assert_eq!(status, 200);
    assert_eq!(shown["disabled"], true, "{shown}");
    assert_eq!(shown["disablement"]["reason"], "gone", "{shown}");
    assert!(shown["disablement"]["at"].is_string(), "{shown}");
    assert!(
        shown["disablement"]["lastError"].as_str().unwrap().contains("410"),
        "{shown}"
    );

    // Nothing more for it, and nothing queued: no new dead letter says "not sent".
    post_document(&helpdesk.url, None).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        gone.received.try_recv().is_err(),
        "a disabled subscription got an event"
    );
    assert_eq!(dead_letters(&helpdesk, None, &id(&gone_sub)).await.len(), 1);
    assert!(ops.received.try_recv().is_err(), "told twice");

    let (_, _, metrics) = call("GET", &format!("{}/metrics", helpdesk.url), &[], None).await;
    let metrics = metrics
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| metrics.to_string());
    assert!(
        metrics.contains("hookline_helpdesk_subscriptions_disabled 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hookline_helpdesk_subscription_disablements_total{reason=\"gone\"} 1\n"),
        "{metrics}"
    );
}

#[actix_web::test]
async fn continuous_failures_disable_only_after_both_the_time_and_the_count_and_a_delivery_starts_afresh() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.retry_schedule = "50ms".parse().unwrap();
    settings.disable_after = Duration::from_secs(1);
    settings.disable_after_dead = 2;
    settings.circuit_failures = 100;
    let helpdesk = start_helpdesk(settings).await;
    let mut failing = Receiver::start(500).await;
    let mut ops = Receiver::start(200).await;
    let sub = subscribe(&helpdesk.url, None, &failing.url, &["document.received"]).await;
    let sub_id = id(&sub);
    let ops_sub = subscribe(
        &helpdesk.url,
        None,
        &ops.url,
        &["endpoint.disabled", "message.attempt.exhausted"],
    )
    .await;
    let enabled = |shown: &Value| shown["disabled"] == false && shown["disablement"].is_null();

    // Two dead letters within a second: the count, not yet the time.
    post_document(&helpdesk.url, None).await;
    post_document(&helpdesk.url, None).await;
    until_dead(&helpdesk, None, &sub_id, 2).await;
    let (_, shown) = subscription(&helpdesk, None, &sub_id).await;
    assert!(enabled(&shown), "disabled before DISABLE_AFTER: {shown}");

    // A delivery ends the streak.
    failing.behaviour.script.lock().unwrap().push_back((200, None));
    post_document(&helpdesk.url, None).await;
    failing.collect_until(DEADLINE, |got| got.len() >= 5).await;

    // A streak begins (a 503 asking for 2 s), and its message dies after
    // DISABLE_AFTER: the time, not yet the count.
    failing
        .behaviour
        .script
        .lock()
        .unwrap()
        .push_back((503, Some("2".to_owned())));
    post_document(&helpdesk.url, None).await;
    until_dead(&helpdesk, None, &sub_id, 3).await;
    let (_, shown) = subscription(&helpdesk, None, &sub_id).await;
    assert!(enabled(&shown), "disabled with one dead letter in a row: {shown}");

    // The next dead letter makes both.
    post_document(&helpdesk.url, None).await;
    until_dead(&helpdesk, None, &sub_id, 4).await;
    let (_, shown) = subscription(&helpdesk, None, &sub_id).await;
    assert_eq!(shown["disabled"], true, "{shown}");
    assert_eq!(shown["disablement"]["reason"], "failing", "{shown}");
    assert!(
        shown["disablement"]["lastError"].as_str().unwrap().contains("500"),
        "{shown}"
    );
    let got = ops
        .collect_until(DEADLINE, |got| !of_type(got, "endpoint.disabled").is_empty())
        .await;
    let disabled = of_type(&got, "endpoint.disabled");
    disabled[0].verify_with(&secret(&ops_sub)).unwrap();
    assert_eq!(disabled[0].body["data"]["reason"], "failing");
    assert_eq!(disabled[0].body["data"]["subscriptionId"], sub_id.as_str());
    // Each dead letter was told of.
    let exhausted = of_type(&got, "message.attempt.exhausted").len();
    let more = ops
        .collect_until(DEADLINE, |more| {
            exhausted + of_type(more, "message.attempt.exhausted").len() >= 4
        })
        .await;
    assert!(of_type(&more, "endpoint.disabled").is_empty(), "told twice");

    // No more deliveries, and new events are not queued.
    failing.take();
    post_document(&helpdesk.url, None).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        failing.received.try_recv().is_err(),
        "a disabled subscription got an event"
    );
    assert_eq!(dead_letters(&helpdesk, None, &sub_id).await.len(), 4);
}

#[actix_web::test]
async fn enabling_resumes_deliveries_and_tells_the_tenant_and_another_tenant_cannot_see_or_enable_it() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.api_keys = "acme:acme-key-0123456789abcdef,globex:globex-key-0123456789abcdef"
        .parse()
        .unwrap();
    settings.tenant_secrets = hookline_tests::tenant_secrets(&["acme", "globex"]);
    let helpdesk = start_helpdesk(settings).await;
    let base = &helpdesk.url;
    let mut gone = Receiver::start(410).await;
    let mut ops = Receiver::start(200).await;
    let sub = subscribe(&helpdesk.url, Some(ACME), &gone.url, &["document.received"]).await;
    let sub_id = id(&sub);
    let ops_sub = subscribe(&helpdesk.url, Some(ACME), &ops.url, &["endpoint.enabled"]).await;
    post_document(&helpdesk.url, Some(ACME)).await;
    gone.next(DEADLINE).await;
    let give_up = tokio::time::Instant::now() + DEADLINE;
    while subscription(&helpdesk, Some(ACME), &sub_id).await.1["disabled"] != true {
        assert!(tokio::time::Instant::now() < give_up, "never disabled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Another tenant: as if it did not exist.
    let (status, body) = subscription(&helpdesk, Some(GLOBEX), &sub_id).await;
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = call(
        "POST",
        &format!("{base}/webhooks/{sub_id}/enable"),
        &auth(Some(GLOBEX)),
        None,
    )
    .await;
    assert_eq!((status, &body["error"]), (404, &json!("not_found")), "{body}");
    assert_eq!(subscription(&helpdesk, Some(ACME), &sub_id).await.1["disabled"], true);
    // Not a subscription id: a 400 that names the field.
    let (status, _, body) = call(
        "POST",
        &format!("{base}/webhooks/not%20a%20subscription/enable"),
        &auth(Some(ACME)),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "id", "{body}");

    gone.behaviour.answer(200);
    let (status, _, body) = call(
        "POST",
        &format!("{base}/webhooks/{sub_id}/enable"),
        &auth(Some(ACME)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["disabled"], false, "{body}");
    assert!(body["disablement"].is_null(), "{body}");
    let told = ops.next(DEADLINE).await;
    told.verify_with(&secret(&ops_sub)).unwrap();
    assert_eq!(told.body["type"], "endpoint.enabled", "{}", told.body);
    assert_eq!(told.body["data"]["subscriptionId"], sub_id.as_str());
    assert_eq!(told.body["data"]["url"], gone.url.as_str());
    queued_once(&helpdesk.url, "endpoint.enabled").await;

    let document = post_document(&helpdesk.url, Some(ACME)).await;
    let resumed = gone.next(DEADLINE).await;
    assert_eq!(resumed.body["data"]["documentId"], document.as_str());
    // Enabling one that is enabled changes nothing and tells nobody.
    let (status, _, _) = call(
        "POST",
        &format!("{base}/webhooks/{sub_id}/enable"),
        &auth(Some(ACME)),
        None,
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        ops.received.try_recv().is_err(),
        "told of an enable that changed nothing"
    );
}

#[actix_web::test]
async fn a_dead_operational_event_tells_of_nothing_more_so_failing_subscriptions_do_not_tell_each_other_forever() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.circuit_failures = 100;
    let helpdesk = start_helpdesk(settings).await;
    // Two failing subscriptions that both want to hear of dead letters, and
    // one that works.
    let failing_a = Receiver::start(500).await;
    let failing_b = Receiver::start(500).await;
    let mut ops = Receiver::start(200).await;
    let a = subscribe(
        &helpdesk.url,
        None,
        &failing_a.url,
        &["document.received", "message.attempt.exhausted"],
    )
    .await;
    let b = subscribe(&helpdesk.url, None, &failing_b.url, &["message.attempt.exhausted"]).await;
    subscribe(&helpdesk.url, None, &ops.url, &["message.attempt.exhausted"]).await;

    post_document(&helpdesk.url, None).await;
    // A's document.received dies: B and the working one are told (A is not).
    let told = ops.next(DEADLINE).await;
    assert_eq!(told.body["data"]["subscriptionId"], id(&a).as_str(), "{}", told.body);
    // B's copy of that news dies too, and tells nobody of itself.
    until_dead(&helpdesk, None, &id(&b), 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        ops.received.try_recv().is_err(),
        "a dead message.attempt.exhausted was told of"
    );
    assert_eq!(dead_letters(&helpdesk, None, &id(&a)).await.len(), 1);
    assert_eq!(dead_letters(&helpdesk, None, &id(&b)).await.len(), 1);
}
