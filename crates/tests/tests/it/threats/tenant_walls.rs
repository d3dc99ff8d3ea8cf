//! Every object a tenant can name is its own; the operator alone steers endpoints.
//!
//! The security review's finding 2, replayed: with tenant B's key, reading,
//! listing and redelivering tenant A's case, reusing A's request `id`, and
//! setting the limits of A's endpoint; and finding 5's `Retry-After: 3600`
//! from one path holding a whole host. A help desk with an operator key
//! (no tenant name) and two tenants' keys on a real Redis.

use std::time::Duration;

use hookline_contract::DeliveryState;
use hookline_tests::{Receiver, TestRedis, call, helpdesk_settings, start_helpdesk, wait_for};
use serde_json::{Value, json};

const OPERATOR: &str = "operator-key-000000";
const ACME: &str = "acme-key-0000000000";
const GLOBEX: &str = "globex-key-000000";
const DEADLINE: Duration = Duration::from_secs(30);

/// A help desk with the three keys; `tune` adjusts it first.
async fn helpdesk(redis: &TestRedis, tune: impl FnOnce(&mut helpdesk::Settings)) -> hookline_tests::Running {
    let mut settings = helpdesk_settings(redis);
    settings.api_keys = format!("{OPERATOR},acme:{ACME},globex:{GLOBEX}").parse().unwrap();
    settings.tenant_secrets = hookline_tests::tenant_secrets(&["acme", "globex"]);
    tune(&mut settings);
    start_helpdesk(settings).await
}

/// One request with `key`: status and JSON body.
async fn with_key(key: &str, method: &str, url: &str, headers: &[(&str, &str)], body: Option<&Value>) -> (u16, Value) {
    let bearer = format!("Bearer {key}");
    let mut all = vec![("authorization", bearer.as_str())];
    all.extend_from_slice(headers);
    let (status, _, answer) = call(method, url, &all, body).await;
    (status, answer)
}

/// `POST /document` with `key`: status and body.
async fn post_document(base: &str, key: &str, callback: &str, document: &str, id: Option<&str>) -> (u16, Value) {
    let mut body = json!({"documentUrl": document});
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    with_key(
        key,
        "POST",
        &format!("{base}/document"),
        &[("x-callback-url", callback)],
        Some(&body),
    )
    .await
}

/// The documentIds of a listing (`/cases`, `/dead-letters`) as `key` sees it.
async fn listed(base: &str, key: &str, list: &str) -> Vec<String> {
    let (status, page) = with_key(key, "GET", &format!("{base}/{list}?limit=500"), &[], None).await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| case["documentId"].as_str().unwrap().to_owned())
        .collect()
}

async fn delivery_state(base: &str, key: &str, document_id: &str) -> DeliveryState {
    let (status, case) = with_key(key, "GET", &format!("{base}/document/{document_id}"), &[], None).await;
    assert_eq!(status, 200, "{case}");
    serde_json::from_value(case["delivery"]["state"].clone()).unwrap()
}

async fn wait_for_state(base: &str, key: &str, document_id: &str, state: DeliveryState) {
    wait_for(DEADLINE, &format!("{document_id} to be {state:?}"), || async {
        (delivery_state(base, key, document_id).await == state).then_some(())
    })
    .await;
}

/// The endpoint (`scheme://host:port`) of a receiver, URL-encoded for a path.
fn encoded(receiver: &Receiver) -> String {
    endpoint(receiver).replace(':', "%3A").replace('/', "%2F")
}

fn endpoint(receiver: &Receiver) -> String {
    let url = url::Url::parse(&receiver.url).unwrap();
    url.origin().ascii_serialization()
}

#[actix_web::test]
async fn another_tenant_s_case_is_not_found_not_listed_and_not_redelivered() {
    let redis = TestRedis::default();
    let hd = helpdesk(&redis, |_| {}).await;
    let base = &hd.url;
    let receiver = Receiver::start(500).await;
    let callback = format!("{}/acme-private-path?token=acme-only", receiver.url);
    // Acme's case, with chaos of its own, fails until it is a dead letter.
    let (status, accepted) = with_key(
        ACME,
        "POST",
        &format!("{base}/document"),
        &[("x-callback-url", &callback), ("hookline-chaos", "forged_signature=1")],
        Some(&json!({"documentUrl": "https://example.com/acme.pdf"})),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let acme_case = accepted["documentId"].as_str().unwrap().to_owned();
    wait_for_state(base, ACME, &acme_case, DeliveryState::Dead).await;

    // Globex reads it: not found, and nothing of it in the answer.
    let (status, answer) = with_key(GLOBEX, "GET", &format!("{base}/document/{acme_case}"), &[], None).await;
    assert_eq!((status, answer["error"].as_str()), (404, Some("not_found")), "{answer}");
    assert!(!answer.to_string().contains("acme-private-path"), "{answer}");
    // Lists it: absent from its cases and its dead letters.
    for list in ["cases", "dead-letters"] {
        assert!(
            !listed(base, GLOBEX, list).await.contains(&acme_case),
            "acme's case in globex's /{list}"
        );
        assert!(
            listed(base, ACME, list).await.contains(&acme_case),
            "acme's own /{list}"
        );
        assert!(
            listed(base, OPERATOR, list).await.contains(&acme_case),
            "the operator's /{list}"
        );
    }
    // Redelivers it: not found, and it stays dead.
    let redeliver = format!("{base}/document/{acme_case}/redeliver");
    let (status, answer) = with_key(GLOBEX, "POST", &redeliver, &[], None).await;
    assert_eq!((status, answer["error"].as_str()), (404, Some("not_found")), "{answer}");
    assert_eq!(delivery_state(base, ACME, &acme_case).await, DeliveryState::Dead);
    // Its chaos tally is acme's alone.
    let faults = |key| async move {
        let (status, report) = with_key(key, "GET", &format!("{base}/chaos"), &[], None).await;
        assert_eq!(status, 200, "{report}");
        report["faults"].clone()
    };
    assert_eq!(faults(GLOBEX).await, json!([]), "globex sees acme's chaos faults");
    let (acme_faults, all_faults) = (faults(ACME).await, faults(OPERATOR).await);
    assert!(acme_faults[0]["injected"].as_u64() > Some(0), "{acme_faults}");
    assert_eq!(acme_faults, all_faults);
    // The owner may redeliver it.
    let (status, answer) = with_key(ACME, "POST", &redeliver, &[], None).await;
    assert_eq!(status, 202, "{answer}");
}

#[actix_web::test]
async fn a_tenant_reusing_another_s_request_id_gets_a_case_of_its_own() {
    let redis = TestRedis::default();
    let hd = helpdesk(&redis, |_| {}).await;
    let base = &hd.url;
    let receiver = Receiver::start(200).await;
    let callback = format!("{}/acme", receiver.url);
    let (a_pdf, b_pdf) = ("https://example.com/a.pdf", "https://example.com/b.pdf");
    // The review's two attacks: acme's id with acme's own document and
    // callback (acme's case replayed to globex), and with another document
    // (a 409 naming acme's case).
    for (id, globex_document) in [("order-42", a_pdf), ("order-43", b_pdf)] {
        let (status, acme) = post_document(base, ACME, &callback, a_pdf, Some(id)).await;
        assert_eq!(status, 202, "{acme}");
        let acme_case = acme["documentId"].as_str().unwrap().to_owned();
        let (status, globex) = post_document(base, GLOBEX, &callback, globex_document, Some(id)).await;
        assert!(matches!(status, 201 | 202), "{id}: {status} {globex}");
        assert!(!globex.to_string().contains(&acme_case), "{id}: {globex}");
        let globex_case = globex["documentId"].as_str().unwrap().to_owned();
        let (status, case) = with_key(GLOBEX, "GET", &format!("{base}/document/{globex_case}"), &[], None).await;
        assert_eq!(
            (status, case["documentUrl"].as_str()),
            (200, Some(globex_document)),
            "{case}"
        );
        // Each one's retry finds its own case.
        let (_, again) = post_document(base, GLOBEX, &callback, globex_document, Some(id)).await;
        assert_eq!(again["documentId"], json!(globex_case), "{again}");
        let (_, again) = post_document(base, ACME, &callback, a_pdf, Some(id)).await;
        assert_eq!(again["documentId"], json!(acme_case), "{again}");
    }
}

#[actix_web::test]
async fn a_tenant_cannot_steer_or_inspect_another_s_endpoint_and_the_operator_can() {
    let redis = TestRedis::default();
    let hd = helpdesk(&redis, |_| {}).await;
    let base = &hd.url;
    let receiver = Receiver::start(200).await;
    let (status, acme) = post_document(
        base,
        ACME,
        &format!("{}/acme", receiver.url),
        "https://example.com/a.pdf",
        None,
    )
    .await;
    assert_eq!(status, 202, "{acme}");
    let acme_case = acme["documentId"].as_str().unwrap();
    wait_for_state(base, ACME, acme_case, DeliveryState::Delivered).await;
    let endpoint_url = format!("{base}/endpoints/{}", encoded(&receiver));

    // Globex slows acme's endpoint to a crawl: forbidden, and nothing changed.
    for (method, url, body) in [
        ("PUT", endpoint_url.clone(), Some(json!({"rate": 1e-9}))),
        ("POST", format!("{endpoint_url}/resume"), None),
    ] {
        let (status, answer) = with_key(GLOBEX, method, &url, &[], body.as_ref()).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (403, Some("forbidden")),
            "{method} {answer}"
        );
    }
    let (status, view) = with_key(OPERATOR, "GET", &endpoint_url, &[], None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (view.get("rate"), &view["rateOverridden"]),
        (None, &json!(false)),
        "{view}"
    );

    // Globex neither lists nor reads it; acme does, without the shared counts.
    let (_, globex_page) = with_key(GLOBEX, "GET", &format!("{base}/endpoints"), &[], None).await;
    assert_eq!(globex_page["total"], 0, "{globex_page}");
    let (status, answer) = with_key(GLOBEX, "GET", &endpoint_url, &[], None).await;
    assert_eq!(status, 404, "{answer}");
    let (_, acme_page) = with_key(ACME, "GET", &format!("{base}/endpoints"), &[], None).await;
    assert_eq!(
        acme_page["items"][0]["endpoint"],
        json!(endpoint(&receiver)),
        "{acme_page}"
    );
    for shared in ["inFlight", "due", "consecutiveFailures", "lastError", "nextAttemptAt"] {
        assert!(acme_page["items"][0].get(shared).is_none(), "{shared}: {acme_page}");
    }
    assert!(view.get("inFlight").is_some(), "the operator sees the counts: {view}");

    // The operator may.
    let (status, view) = with_key(OPERATOR, "PUT", &endpoint_url, &[], Some(&json!({"rate": 50}))).await;
    assert_eq!((status, &view["rate"]), (200, &json!(50.0)), "{view}");
}

/// A receiver answering `429 Retry-After: 3600` once, then 200.
async fn asking_for_an_hour() -> Receiver {
    let receiver = Receiver::start(200).await;
    receiver
        .behaviour
        .script
        .lock()
        .unwrap()
        .push_back((429, Some("3600".to_owned())));
    receiver
}

#[actix_web::test]
async fn a_retry_after_of_an_hour_pauses_a_host_for_at_most_retry_after_max() {
    let redis = TestRedis::default();
    let hd = helpdesk(&redis, |hd| hd.retry_after_max = Duration::from_secs(2)).await;
    let base = &hd.url;
    let mut receiver = asking_for_an_hour().await;
    let (_, acme) = post_document(
        base,
        ACME,
        &format!("{}/acme", receiver.url),
        "https://example.com/a.pdf",
        None,
    )
    .await;
    let acme_case = acme["documentId"].as_str().unwrap().to_owned();
    let first = receiver.next(DEADLINE).await;
    assert_eq!(first.path, "/hook/acme");
    // Another tenant's webhook to another path of the same host, sent into the pause.
    let (_, globex) = post_document(
        base,
        GLOBEX,
        &format!("{}/globex", receiver.url),
        "https://example.com/g.pdf",
        None,
    )
    .await;
    let globex_case = globex["documentId"].as_str().unwrap().to_owned();
    // Both arrive: the pause ended long before the hour asked for.
    let rest = receiver.collect_until(DEADLINE, |got| got.len() >= 2).await;
    let mut paths: Vec<&str> = rest.iter().map(|got| got.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/hook/acme", "/hook/globex"]);
    wait_for_state(base, ACME, &acme_case, DeliveryState::Delivered).await;
    wait_for_state(base, GLOBEX, &globex_case, DeliveryState::Delivered).await;
}

#[actix_web::test]
async fn the_operator_lifts_a_pause_at_once() {
    let redis = TestRedis::default();
    let hd = helpdesk(&redis, |hd| hd.retry_after_max = Duration::from_secs(3600)).await;
    let base = &hd.url;
    let mut receiver = asking_for_an_hour().await;
    post_document(
        base,
        ACME,
        &format!("{}/acme", receiver.url),
        "https://example.com/a.pdf",
        None,
    )
    .await;
    receiver.next(DEADLINE).await;
    let endpoint_url = format!("{base}/endpoints/{}", encoded(&receiver));
    wait_for(DEADLINE, "the endpoint to be paused", || async {
        let (_, view) = with_key(OPERATOR, "GET", &endpoint_url, &[], None).await;
        view.get("pausedUntil").is_some().then_some(())
    })
    .await;
    let (_, globex) = post_document(
        base,
        GLOBEX,
        &format!("{}/globex", receiver.url),
        "https://example.com/g.pdf",
        None,
    )
    .await;
    let globex_case = globex["documentId"].as_str().unwrap().to_owned();
    // Held by the pause: globex's case waits, scheduled, while the endpoint
    // says it is paused.
    let (_, view) = with_key(OPERATOR, "GET", &endpoint_url, &[], None).await;
    assert!(view.get("pausedUntil").is_some(), "{view}");
    assert_eq!(
        delivery_state(base, GLOBEX, &globex_case).await,
        DeliveryState::Scheduled
    );

    let (status, view) = with_key(OPERATOR, "POST", &format!("{endpoint_url}/resume"), &[], None).await;
    assert_eq!((status, view.get("pausedUntil")), (200, None), "{view}");
    let after = receiver.next(DEADLINE).await;
    assert_eq!(after.path, "/hook/globex");
    wait_for_state(base, GLOBEX, &globex_case, DeliveryState::Delivered).await;
}
