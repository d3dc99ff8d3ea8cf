//! The consumer as an app exposed to the internet: its own API and the
//! dashboard's data behind `CONSUMER_API_KEYS` (the signed webhook
//! receivers stay open), an `Idempotency-Key` that belongs to its caller,
//! a `Host` allow-list against DNS rebinding, and URLs in logs without
//! their userinfo and query.

use std::collections::HashMap;
use std::time::Duration;

use hookline_tests::process::{LogCapture, consumer_process_logged, free_port, helpdesk_process_logged};
use hookline_tests::{
    Stack, TestDb, TestRedis, call, consumer_settings, post_signed_webhook, start_consumer, wait_for,
};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(20);
const ALICE: &str = "alice-consumer-key-0123456789";
const BOB: &str = "bob-consumer-key-0123456789ab";
const CAROL: &str = "carol-consumer-key-0123456789";

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// A consumer that takes `alice:`, `bob:` and `carol:` keys, its help desk
/// open and quick.
async fn keyed_stack() -> Stack {
    Stack::start_with(
        |hd| hd.review_delay_ms = "50-100".parse().unwrap(),
        |c| c.api_keys = format!("alice:{ALICE},bob:{BOB},carol:{CAROL}").parse().unwrap(),
    )
    .await
}

/// `POST /documents` for `document_url` with `headers`.
async fn create(stack: &Stack, document_url: &str, headers: &[(&str, &str)]) -> (u16, HashMap<String, String>, Value) {
    call(
        "POST",
        &format!("{}/documents", stack.consumer.url),
        headers,
        Some(&json!({ "documentUrl": document_url })),
    )
    .await
}

/// The status of `GET path` with `headers`, without reading the body (an
/// event stream never ends).
async fn status_of(base: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish()
        .get(format!("{base}{path}"));
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    request.send().await.unwrap().status().as_u16()
}

#[actix_web::test]
async fn with_api_keys_the_private_routes_need_one_and_a_review_still_flows_end_to_end() {
    let stack = keyed_stack().await;
    let base = stack.consumer.url.clone();
    let unknown = format!("/documents/{}", uuid::Uuid::now_v7());
    let private = ["/documents", unknown.as_str(), "/events"];

    let (status, headers, body) = create(&stack, "https://example.com/a.pdf", &[]).await;
    assert_eq!(status, 401, "POST /documents without a key: {body}");
    assert_eq!(body["error"], "unauthorized", "{body}");
    assert_eq!(headers["www-authenticate"], "Bearer");
    let wrong = bearer("mallory-consumer-key-0123456789");
    let (status, _, body) = create(&stack, "https://example.com/a.pdf", &[("authorization", &wrong)]).await;
    assert_eq!(status, 401, "POST /documents with a key not in the list: {body}");
    for path in private {
        assert_eq!(status_of(&base, path, &[]).await, 401, "GET {path} without a key");
        assert_eq!(
            status_of(&base, path, &[("authorization", &wrong)]).await,
            401,
            "GET {path} with a wrong key"
        );
    }
    assert!(stack.db.reviews().await.is_empty(), "nothing was stored without a key");
    for open in ["/healthz", "/readyz", "/openapi.json", "/", "/assets/consumer.js"] {
        assert_eq!(status_of(&base, open, &[]).await, 200, "GET {open} stays open");
    }

    // With a key: requested, then decided by the help desk's signed webhook,
    // which needs no key of ours.
    let alice = bearer(ALICE);
    let auth = [("authorization", alice.as_str())];
    let (status, _, review) = create(&stack, "https://example.com/a.pdf", &auth).await;
    assert_eq!(status, 201, "{review}");
    let id = review["id"].as_str().unwrap().to_owned();
    assert_eq!(status_of(&base, "/events", &auth).await, 200);
    let decided = wait_for(DEADLINE, "the webhook to decide the review", || async {
        let (status, _, body) = call("GET", &format!("{base}/documents/{id}"), &auth, None).await;
        assert_eq!(status, 200, "{body}");
        (body["documentStatus"] != "PENDING_REVIEW").then_some(body)
    })
    .await;
    assert!(
        decided["documentStatus"] == "ACCEPTED" || decided["documentStatus"] == "DECLINED",
        "{decided}"
    );
    let (status, _, page) = call("GET", &format!("{base}/documents"), &auth, None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"][0]["id"], json!(id));

    // The subscription's receiver is judged by its signature, not by a key:
    // this one is signed, and this consumer does not subscribe.
    let (status, body) = post_signed_webhook(&format!("{base}/helpdesk/events"), b"{}", "msg_exposed_1").await;
    assert_ne!(body["error"], "unauthorized", "{status} {body}");
}

/// `POST /documents` for `document_url` with `key` and `Idempotency-Key: order-7`.
async fn create_as(stack: &Stack, key: &str, document_url: &str) -> (u16, HashMap<String, String>, Value) {
    let authorization = bearer(key);
    let headers = [
        ("authorization", authorization.as_str()),
        ("idempotency-key", "order-7"),
    ];
    create(stack, document_url, &headers).await
}

#[actix_web::test]
async fn an_idempotency_key_belongs_to_its_caller() {
    let stack = keyed_stack().await;
    let (status, _, first) = create_as(&stack, ALICE, "https://example.com/alice.pdf").await;
    assert_eq!(status, 201, "{first}");

    // Bob picks the same key for the same document: his own review, not
    // Alice's answer replayed.
    let (status, headers, bobs) = create_as(&stack, BOB, "https://example.com/alice.pdf").await;
    assert_eq!(status, 201, "{bobs}");
    assert_ne!(
        bobs["id"], first["id"],
        "another caller's key replayed Alice's review: {bobs}"
    );
    assert!(!headers.contains_key("idempotent-replayed"), "{headers:?}");

    // Carol, the same key for another document: no 422 telling her the key is taken.
    let (status, _, carols) = create_as(&stack, CAROL, "https://example.com/carol.pdf").await;
    assert_eq!(
        status, 201,
        "a 422 would reveal that another caller used the key: {carols}"
    );
    assert_eq!(carols["documentUrl"], "https://example.com/carol.pdf");

    // Within one caller the key still works both ways.
    let (status, headers, again) = create_as(&stack, ALICE, "https://example.com/alice.pdf").await;
    assert_eq!((status, &again["id"]), (201, &first["id"]), "{again}");
    assert_eq!(headers["idempotent-replayed"], "true");
    let (status, _, body) = create_as(&stack, BOB, "https://example.com/other.pdf").await;
    assert_eq!(status, 422, "Bob's own key reused for another document: {body}");
    assert_eq!(stack.db.reviews().await.len(), 3);
}

#[actix_web::test]
async fn a_request_naming_a_host_the_consumer_is_not_known_by_is_misdirected() {
    // Known as consumer.internal (its public URL) and by the loopback names.
    let stack = Stack::start_with(
        |_| {},
        |c| c.public_url = Some("http://consumer.internal:3333".parse().unwrap()),
    )
    .await;
    let base = stack.consumer.url.clone();
    let port = base.rsplit(':').next().unwrap().to_owned();

    for host in [
        "evil.example",
        &format!("evil.example:{port}"),
        "127.0.0.2",
        "consumer.internal.evil.example",
    ] {
        let (status, _, body) = call("GET", &format!("{base}/documents"), &[("host", host)], None).await;
        assert_eq!(status, 421, "GET /documents with Host: {host}: {body}");
        assert_eq!(body["error"], "misdirected_request", "{body}");
        let (status, body) = hookline_tests::post_raw(
            &format!("{base}/document/update"),
            b"{}".to_vec(),
            "application/json",
            &[("host", host)],
        )
        .await;
        assert_eq!(status, 421, "POST /document/update with Host: {host}: {body}");
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "consumer.internal:3333".to_owned(),
        "LOCALHOST".to_owned(),
    ] {
        let (status, _, body) = call("GET", &format!("{base}/documents"), &[("host", &host)], None).await;
        assert_eq!(status, 200, "GET /documents with Host: {host}: {body}");
    }
    assert_eq!(
        status_of(&base, "/healthz", &[("host", "10.1.2.3:3333")]).await,
        200,
        "a probe by address"
    );

    // ALLOWED_HOSTS=* answers to any name.
    let mut settings = consumer_settings(&stack.db, &stack.helpdesk.url);
    settings.allowed_hosts = "*".parse().unwrap();
    let any = start_consumer(settings).await;
    let (status, _, body) = call(
        "GET",
        &format!("{}/documents", any.url),
        &[("host", "evil.example")],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[actix_web::test]
async fn urls_are_logged_without_their_userinfo_and_query() {
    let (db, redis) = (TestDb::create().await, TestRedis::default());
    let (helpdesk_log, consumer_log) = (LogCapture::default(), LogCapture::default());
    let json_logs = [("LOG_FORMAT", "json")];
    let helpdesk = helpdesk_process_logged(&redis, free_port(), &json_logs, Some(&helpdesk_log)).await;

    // A subscription (the help desk's callback for events) whose URL carries a token.
    let hook = format!("http://127.0.0.1:{}/hooks/ours", free_port());
    let (status, _, body) = call(
        "POST",
        &format!("{}/webhooks", helpdesk.url),
        &[],
        Some(&json!({"url": format!("{hook}?token=sub-query-secret"), "events": ["document.accepted"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // A help desk URL with a user, a password and a query.
    let with_secrets = format!(
        "http://hd-user:hd-password-secret@127.0.0.1:{}/?token=hd-query-secret",
        helpdesk.port
    );
    let consumer = consumer_process_logged(&db, free_port(), &with_secrets, &json_logs, Some(&consumer_log)).await;

    let helpdesk_text = wait_for(DEADLINE, "the subscription's log line", || async {
        let text = helpdesk_log.text();
        text.contains("subscription created").then_some(text)
    })
    .await;
    assert!(
        helpdesk_text.contains(&hook),
        "the URL's place is logged: {helpdesk_text}"
    );
    assert!(!helpdesk_text.contains("sub-query-secret"), "{helpdesk_text}");

    let consumer_text = consumer_log.text();
    let started = consumer_text
        .lines()
        .find(|line| line.contains("consumer started"))
        .unwrap_or_else(|| panic!("no start line: {consumer_text}"));
    assert!(
        started.contains(&format!("http://127.0.0.1:{}/", helpdesk.port)),
        "{started}"
    );
    for secret in ["hd-user", "hd-password-secret", "hd-query-secret"] {
        assert!(!consumer_text.contains(secret), "{secret} logged: {consumer_text}");
    }
    drop(consumer);
}
