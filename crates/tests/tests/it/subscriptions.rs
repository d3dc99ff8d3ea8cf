//! Subscriptions: registered URLs receive the event types they chose, in
//! the Standard Webhooks envelope, each signed with its own secret and
//! checked here with the scheme's reference library; each is its own
//! delivery, so a failing subscriber delays no other; tenants see only
//! their own.

use std::time::Duration;

use hookline_tests::api::{post_document, subscribe};
use hookline_tests::redis::TestRedis;
use hookline_tests::{Received, Receiver, call, helpdesk_settings, start_helpdesk};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(20);

/// The events of `received` as (type, documentId, sequence).
fn events(received: &[Received]) -> Vec<(String, String, u64)> {
    let mut events: Vec<_> = received
        .iter()
        .map(|r| {
            (
                r.body["type"].as_str().unwrap().to_owned(),
                r.body["data"]["documentId"].as_str().unwrap_or_default().to_owned(),
                r.body["data"]["sequence"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    events.sort();
    events
}

#[actix_web::test]
async fn three_subscribers_each_get_exactly_their_events_signed_with_their_own_secret() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    // Every attempt of the failing one counts: its breaker must not open.
    settings.circuit_failures = 100;
    let helpdesk = start_helpdesk(settings).await;
    let mut all = Receiver::start(200).await;
    let mut decisions = Receiver::start(200).await;
    // Always 500, and slow: each of its attempts takes half a second.
    let mut failing = Receiver::start(500).await;
    failing.behaviour.delay(Duration::from_millis(500));
    let all_sub = subscribe(
        &helpdesk.url,
        None,
        &all.url,
        &["document.received", "document.accepted", "document.declined"],
    )
    .await;
    let decisions_sub = subscribe(
        &helpdesk.url,
        None,
        &decisions.url,
        &["document.accepted", "document.declined"],
    )
    .await;
    let failing_sub = subscribe(&helpdesk.url, None, &failing.url, &["document.received"]).await;
    let secret = |sub: &Value| sub["secret"].as_str().unwrap().to_owned();

    let mut documents = Vec::new();
    for _ in 0..5 {
        documents.push(post_document(&helpdesk.url, None).await);
    }
    documents.sort();

    let got_all = all.collect_until(DEADLINE, |got| got.len() >= 10).await;
    let got_decisions = decisions.collect_until(DEADLINE, |got| got.len() >= 5).await;
    // Its first retry: the first webhook-id it sees again.
    let repeats = |got: &[Received]| {
        got.iter()
            .enumerate()
            .find(|(i, r)| {
                got[..*i]
                    .iter()
                    .any(|e| e.headers["webhook-id"] == r.headers["webhook-id"])
            })
            .map(|(_, r)| r.clone())
    };
    let failures = failing.collect_until(DEADLINE, |got| repeats(got).is_some()).await;
    let first_retry = repeats(&failures).unwrap();
    // Both others were served in full before the failing one's first retry:
    // its hanging attempts and retries hold up nobody.
    let served = got_all.iter().chain(&got_decisions).map(|r| r.at).max().unwrap();
    assert!(
        served < first_retry.at,
        "the healthy subscribers waited for the failing one"
    );

    // Exactly their events: received (1) and the decision (2) for `all`,
    // only the decisions for `decisions`.
    let expected_all: Vec<_> = documents
        .iter()
        .flat_map(|id| {
            let decision = got_all
                .iter()
                .find(|r| r.body["data"]["documentId"] == id.as_str() && r.body["data"]["sequence"] == 2)
                .map(|r| r.body["type"].as_str().unwrap().to_owned())
                .expect("a decision event for every document");
            [
                ("document.received".to_owned(), id.clone(), 1),
                (decision, id.clone(), 2),
            ]
        })
        .collect();
    let mut expected_all = expected_all;
    expected_all.sort();
    assert_eq!(events(&got_all), expected_all);
    let expected_decisions: Vec<_> = expected_all.iter().filter(|e| e.2 == 2).cloned().collect();
    assert_eq!(events(&got_decisions), expected_decisions);
    for event in got_all.iter().chain(&got_decisions) {
        let data = &event.body["data"];
        let status = data["documentStatus"].as_str().unwrap();
        match event.body["type"].as_str().unwrap() {
            "document.received" => assert_eq!(status, "PENDING_REVIEW"),
            "document.accepted" => assert_eq!(status, "ACCEPTED"),
            other => assert_eq!((other, status), ("document.declined", "DECLINED")),
        }
        assert!(event.body["timestamp"].as_str().is_some(), "{}", event.body);
    }

    // Each verifies with its own secret in the reference library, and not
    // with another's.
    for (got, own, other) in [
        (&got_all, secret(&all_sub), secret(&decisions_sub)),
        (&got_decisions, secret(&decisions_sub), secret(&failing_sub)),
        (&failures, secret(&failing_sub), secret(&all_sub)),
    ] {
        for event in got {
            event.verify_with(&own).unwrap();
            assert!(event.verify_with(&other).is_err(), "verified with another's secret");
        }
    }

    // The failing one: every document.received dead-lettered after its
    // retries (1 + 3 attempts each), counted on the subscription.
    let failing_id = failing_sub["id"].as_str().unwrap();
    let stats = hookline_tests::wait_for(DEADLINE, "the failing subscriber's events to die", || async {
        let (_, _, sub) = call("GET", &format!("{}/webhooks/{failing_id}", helpdesk.url), &[], None).await;
        (sub["stats"]["dead"] == 5).then_some(sub["stats"].clone())
    })
    .await;
    assert_eq!(stats["failedAttempts"], 20, "{stats}");
    assert_eq!(stats["delivered"], 0, "{stats}");
    assert_eq!(stats["lastError"], "HTTP 500", "{stats}");
    let (_, _, dead) = call("GET", &format!("{}/dead-letters", helpdesk.url), &[], None).await;
    let dead: Vec<_> = dead["items"].as_array().unwrap().iter().collect();
    assert_eq!(dead.len(), 5, "{dead:?}");
    assert!(
        dead.iter()
            .all(|d| d["event"] == "document.received" && d["subscriptionId"] == failing_id)
    );
    let (_, _, page) = call("GET", &format!("{}/webhooks", helpdesk.url), &[], None).await;
    let delivered: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["stats"]["delivered"])
        .collect();
    assert_eq!(delivered, [&json!(10), &json!(5), &json!(0)]);
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["secret"] == "whsec_********"),
        "{page}"
    );

    // The cases themselves: decided, with no callback of their own.
    for id in &documents {
        let (_, _, case) = call("GET", &format!("{}/document/{id}", helpdesk.url), &[], None).await;
        assert_eq!(case["delivery"]["state"], "NO_CALLBACK", "{case}");
        assert_ne!(case["status"], "PENDING_REVIEW", "{case}");
        assert!(case.get("callbackUrl").is_none(), "{case}");
    }
}

#[actix_web::test]
async fn a_disabled_or_deleted_subscription_receives_nothing_more_not_even_what_was_queued() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    // The decision comes a second after the case: time to change things.
    settings.review_delay_ms = "1000".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;
    let all = ["document.received", "document.accepted", "document.declined"];
    let mut control = Receiver::start(200).await;
    let mut disabled = Receiver::start(200).await;
    let mut deleted = Receiver::start(200).await;
    subscribe(&helpdesk.url, None, &control.url, &all).await;
    let to_disable = subscribe(&helpdesk.url, None, &disabled.url, &all).await;
    let to_delete = subscribe(&helpdesk.url, None, &deleted.url, &all).await;

    let first = post_document(&helpdesk.url, None).await;
    for receiver in [&mut control, &mut disabled, &mut deleted] {
        let received = receiver.next(DEADLINE).await;
        assert_eq!(received.body["type"], "document.received");
        assert_eq!(received.body["data"]["documentId"], first.as_str());
    }
    // Its decision is queued for all three; now disable one, delete another.
    let base = &helpdesk.url;
    let id = |sub: &Value| sub["id"].as_str().unwrap().to_owned();
    let (status, _, body) = call(
        "PATCH",
        &format!("{base}/webhooks/{}", id(&to_disable)),
        &[],
        Some(&json!({"disabled": true})),
    )
    .await;
    assert_eq!((status, &body["disabled"]), (200, &json!(true)), "{body}");
    let (status, _, _) = call("DELETE", &format!("{base}/webhooks/{}", id(&to_delete)), &[], None).await;
    assert_eq!(status, 204);
    let (status, _, _) = call("GET", &format!("{base}/webhooks/{}", id(&to_delete)), &[], None).await;
    assert_eq!(status, 404);

    let second = post_document(&helpdesk.url, None).await;
    // The control gets the first decision, then all of the second document.
    let got = control.collect_until(DEADLINE, |got| got.len() >= 3).await;
    assert_eq!(
        got.iter()
            .filter(|r| r.body["data"]["documentId"] == second.as_str())
            .count(),
        2
    );
    // Whatever was sent to the other two went out with the control's.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        disabled.received.try_recv().is_err(),
        "a disabled subscription got an event"
    );
    assert!(
        deleted.received.try_recv().is_err(),
        "a deleted subscription got an event"
    );
    // The disabled one's queued decision is a dead letter that says why.
    let (_, _, dead) = call("GET", &format!("{base}/dead-letters"), &[], None).await;
    let reasons: Vec<_> = dead["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["delivery"]["lastError"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        reasons.contains(&"not sent: the subscription is disabled".to_owned()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"not sent: the subscription was deleted".to_owned()),
        "{reasons:?}"
    );
}

#[actix_web::test]
async fn during_a_rotation_both_secrets_verify_and_after_the_overlap_only_the_new_one() {
    for (overlap, old_verifies) in [(Duration::from_secs(3600), true), (Duration::ZERO, false)] {
        let redis = TestRedis::default();
        let mut settings = helpdesk_settings(&redis);
        settings.secret_overlap = overlap;
        let helpdesk = start_helpdesk(settings).await;
        let mut receiver = Receiver::start(200).await;
        let sub = subscribe(&helpdesk.url, None, &receiver.url, &["webhook.test"]).await;
        let old = sub["secret"].as_str().unwrap();
        let id = sub["id"].as_str().unwrap();
        let (status, _, rotated) = call(
            "POST",
            &format!("{}/webhooks/{id}/rotate-secret", helpdesk.url),
            &[],
            None,
        )
        .await;
        assert_eq!(status, 200, "{rotated}");
        let new = rotated["secret"].as_str().unwrap();
        assert_ne!(new, old);
        assert_eq!(rotated["previousSecretUntil"].is_string(), old_verifies, "{rotated}");

        let (status, _, queued) = call("POST", &format!("{}/webhooks/{id}/test", helpdesk.url), &[], None).await;
        assert_eq!(status, 202, "{queued}");
        let test = receiver.next(DEADLINE).await;
        assert_eq!(test.body["type"], "webhook.test");
        assert_eq!(test.body["data"]["subscriptionId"], id);
        assert_eq!(test.headers["webhook-id"], queued["webhookId"].as_str().unwrap());
        test.verify_with(new).unwrap();
        assert_eq!(test.verify_with(old).is_ok(), old_verifies, "overlap {overlap:?}");
    }
}

#[actix_web::test]
async fn a_tenant_cannot_see_or_change_another_tenants_subscriptions_nor_receive_its_events() {
    const ACME: &str = "Bearer acme-key-0123456789abcdef";
    const GLOBEX: &str = "Bearer globex-key-0123456789abcdef";
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.api_keys = "acme:acme-key-0123456789abcdef,globex:globex-key-0123456789abcdef"
        .parse()
        .unwrap();
    settings.tenant_secrets = hookline_tests::tenant_secrets(&["acme", "globex"]);
    let helpdesk = start_helpdesk(settings).await;
    let base = &helpdesk.url;
    let mut acme_hook = Receiver::start(200).await;
    let mut globex_hook = Receiver::start(200).await;
    let acme = subscribe(&helpdesk.url, Some(ACME), &acme_hook.url, &["document.received"]).await;
    let acme_id = acme["id"].as_str().unwrap();

    // Globex has no subscription yet: no document without a callback.
    let (status, _, body) = call(
        "POST",
        &format!("{base}/document"),
        &[("authorization", GLOBEX)],
        Some(&json!({"documentUrl": "https://example.com/a.pdf"})),
    )
    .await;
    assert_eq!((status, &body["error"]), (400, &json!("missing_header")), "{body}");
    let (_, _, page) = call("GET", &format!("{base}/webhooks"), &[("authorization", GLOBEX)], None).await;
    assert_eq!(page, json!({"items": [], "total": 0}));
    for (method, path, body) in [
        ("GET", format!("/webhooks/{acme_id}"), None),
        ("PATCH", format!("/webhooks/{acme_id}"), Some(json!({"disabled": true}))),
        ("DELETE", format!("/webhooks/{acme_id}"), None),
        ("POST", format!("/webhooks/{acme_id}/rotate-secret"), None),
        ("POST", format!("/webhooks/{acme_id}/test"), None),
    ] {
        let (status, _, answer) = call(
            method,
            &format!("{base}{path}"),
            &[("authorization", GLOBEX)],
            body.as_ref(),
        )
        .await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    // Acme's is as it was (same secret: the rotation did not happen).
    let (_, _, mine) = call(
        "GET",
        &format!("{base}/webhooks/{acme_id}"),
        &[("authorization", ACME)],
        None,
    )
    .await;
    assert_eq!(mine["disabled"], false, "{mine}");
    assert!(mine.get("previousSecretUntil").is_none(), "{mine}");

    // Events go to the document's tenant only.
    subscribe(&helpdesk.url, Some(GLOBEX), &globex_hook.url, &["document.received"]).await;
    let acme_document = post_document(&helpdesk.url, Some(ACME)).await;
    let globex_document = post_document(&helpdesk.url, Some(GLOBEX)).await;
    let to_acme = acme_hook.next(DEADLINE).await;
    let to_globex = globex_hook.next(DEADLINE).await;
    assert_eq!(to_acme.body["data"]["documentId"], acme_document.as_str());
    assert_eq!(to_globex.body["data"]["documentId"], globex_document.as_str());
    to_acme.verify_with(acme["secret"].as_str().unwrap()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(acme_hook.received.try_recv().is_err(), "acme got globex's event");
    assert!(globex_hook.received.try_recv().is_err(), "globex got acme's event");
}

#[actix_web::test]
async fn bad_subscriptions_are_refused_with_the_field_named_and_nothing_stored() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.callback_deny = vec!["169.254.0.0/16".parse().unwrap()];
    let helpdesk = start_helpdesk(settings).await;
    let url = format!("{}/webhooks", helpdesk.url);
    for (body, code, field) in [
        (
            json!({"url": "https://example.com/h", "events": ["document.reviewed"]}),
            "unknown_event",
            "events",
        ),
        (
            json!({"url": "https://example.com/h", "events": []}),
            "invalid_field",
            "events",
        ),
        (
            json!({"url": "ftp://example.com/h", "events": ["webhook.test"]}),
            "invalid_field",
            "url",
        ),
        (
            json!({"url": "http://169.254.169.254/latest", "events": ["webhook.test"]}),
            "url_refused",
            "url",
        ),
        (
            json!({"url": "https://example.com/h", "events": ["webhook.test"], "description": "x".repeat(257)}),
            "invalid_field",
            "description",
        ),
        (json!({"events": ["webhook.test"]}), "invalid_body", "url"),
    ] {
        let (status, _, answer) = call("POST", &url, &[], Some(&body)).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(
            (&answer["error"], &answer["field"]),
            (&json!(code), &json!(field)),
            "{body}: {answer}"
        );
    }
    let (_, _, page) = call("GET", &url, &[], None).await;
    assert_eq!(page["total"], 0, "{page}");
    let (status, _, answer) = call(
        "PATCH",
        &format!("{url}/sub_nope"),
        &[],
        Some(&json!({"disabled": true})),
    )
    .await;
    assert_eq!(status, 404, "{answer}");
}
