//! Property-based fuzzing of both services over real HTTP: random and
//! mutated requests (methods, paths, headers, bodies — including validly
//! signed webhooks with random payloads) never get a 5xx, and the only
//! changes to stored data are the reviews the fuzzer legitimately created
//! (answered 201).
//!
//! `FUZZ_CASES` sets the number of requests per service (default 300);
//! `FUZZ_SEED` replays a run.

use std::time::Duration;

use hookline_tests::{Receiver, Stack, secret_set};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Request {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Sign the body as the help desk would (so parsing is reached).
    sign: bool,
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("https://example.com/a.pdf"),
            Just("ACCEPTED"),
            Just("DECLINED"),
            Just("PENDING_REVIEW"),
            Just("ftp://x"),
            Just("http://169.254.169.254/"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("documentUrl".to_owned()),
                        Just("documentId".to_owned()),
                        Just("agentId".to_owned()),
                        Just("documentStatus".to_owned()),
                        Just("id".to_owned()),
                        "[a-zA-Z]{1,8}"
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// A valid body of some route, then damaged: bytes flipped, cut short, or
/// with fields replaced.
fn mutated_body() -> impl Strategy<Value = Vec<u8>> {
    let valid = prop_oneof![
        Just(json!({"documentUrl": "https://example.com/a.pdf"})),
        Just(json!({"documentUrl": "https://example.com/a.pdf", "id": "ref-1"})),
        Just(json!({"agentId": "a", "documentId": "d", "documentStatus": "ACCEPTED"})),
    ]
    .prop_map(|v| serde_json::to_vec(&v).unwrap());
    (
        valid,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(mut bytes, flips, cut, truncate)| {
            for (at, byte) in flips {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes
        })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        mutated_body(),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn id(known_ids: Vec<String>) -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        prop::sample::select(known_ids),
        "[a-zA-Z0-9._:-]{0,40}",
        "(%[0-9A-F]{2}|[a-z]){0,12}",
    ]
}

fn query() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        Just(String::new()),
        "\\?limit=-?[0-9]{0,4}",
        "\\?status=[A-Z_]{0,16}",
        "\\?cursor=[a-zA-Z0-9_%-]{0,30}",
        "\\?[a-z]{1,6}=[a-z0-9]{0,6}(&[a-z]{1,6}=[a-z0-9]{0,6}){0,3}",
    ]
}

/// A (method, path) of a real route of `service`, most of the time; anything otherwise.
fn target(service: &'static str, known_ids: Vec<String>) -> BoxedStrategy<(&'static str, String)> {
    let id = id(known_ids);
    let real: BoxedStrategy<(&'static str, String)> = if service == "consumer" {
        prop_oneof![
            Just(("POST", "/documents".to_owned())),
            query().prop_map(|q| ("GET", format!("/documents{q}"))),
            id.clone().prop_map(|id| ("GET", format!("/documents/{id}"))),
            Just(("POST", "/document/update".to_owned())),
        ]
        .boxed()
    } else {
        prop_oneof![
            Just(("POST", "/document".to_owned())),
            id.clone().prop_map(|id| ("GET", format!("/document/{id}"))),
            id.clone().prop_map(|id| ("POST", format!("/document/{id}/redeliver"))),
            query().prop_map(|q| ("GET", format!("/dead-letters{q}"))),
            query().prop_map(|q| ("GET", format!("/endpoints{q}"))),
            Just(("PUT", "/endpoints/http%3A%2F%2F127.0.0.1%3A9".to_owned())),
            id.clone().prop_map(|id| ("PUT", format!("/endpoints/{id}"))),
        ]
        .boxed()
    };
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]);
    let any_path = prop_oneof![id.prop_map(|id| format!("/document/{id}")), "/[a-z/]{0,20}"];
    let anything = (method, any_path, query()).prop_map(|(m, p, q)| (m, format!("{p}{q}")));
    prop_oneof![7 => real, 3 => anything].boxed()
}

fn request(service: &'static str, known_ids: Vec<String>, receiver: String) -> impl Strategy<Value = Request> {
    let content_type = prop_oneof![
        3 => Just(Some("application/json".to_owned())),
        1 => Just(Some("application/problem+json".to_owned())),
        1 => Just(Some("text/plain".to_owned())),
        1 => Just(None),
        1 => "[a-z/+;= -]{0,30}".prop_map(Some),
    ];
    let callback = prop_oneof![
        3 => Just(Some(receiver)),
        1 => Just(None),
        1 => Just(Some("http://169.254.169.254/latest".to_owned())),
        1 => "[ -~]{0,40}".prop_map(Some),
    ];
    let key = prop_oneof![3 => Just(None), 1 => "[ -~]{0,20}".prop_map(Some), 1 => Just(Some("k".repeat(300)))];
    (
        target(service, known_ids),
        content_type,
        callback,
        key,
        body(),
        any::<bool>(),
    )
        .prop_map(|((method, path), content_type, callback, key, body, sign)| {
            let mut headers = Vec::new();
            if let Some(ct) = content_type {
                headers.push(("content-type".to_owned(), ct));
            }
            if let Some(callback) = callback {
                headers.push(("x-callback-url".to_owned(), callback));
            }
            if let Some(key) = key {
                headers.push(("idempotency-key".to_owned(), key));
            }
            Request {
                method,
                path,
                headers,
                body,
                sign,
            }
        })
}

fn cases(strategy: impl Strategy<Value = Request>) -> Vec<Request> {
    let count: u32 = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x600d_5eed);
    let mut seed_bytes = [0_u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    (0..count)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

/// Sends one request; `None` when the client itself refuses to send it
/// (an invalid header value, say), which says nothing about the server.
async fn send(base: &str, request: &Request) -> Option<u16> {
    let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let method = actix_web::http::Method::from_bytes(request.method.as_bytes()).ok()?;
    let mut builder = client.request(method, format!("{base}{}", request.path));
    for (name, value) in &request.headers {
        let value = actix_web::http::header::HeaderValue::from_str(value).ok()?;
        builder = builder.insert_header((name.as_str(), value));
    }
    if request.sign {
        let now = chrono::Utc::now().timestamp();
        builder = builder
            .insert_header(("webhook-id", "msg_fuzz"))
            .insert_header(("webhook-timestamp", now.to_string()))
            .insert_header(("webhook-signature", secret_set().sign("msg_fuzz", now, &request.body)));
    }
    let response = builder.send_body(request.body.clone()).await.ok()?;
    Some(response.status().as_u16())
}

#[actix_web::test]
async fn random_and_mutated_requests_never_get_a_5xx_and_only_created_reviews_change_storage() {
    let stack = Stack::start(|hd| hd.accept_ratio = 1.0).await;
    let receiver = Receiver::start(200).await;
    let seeded = stack.request_review("https://example.com/seed.pdf").await;
    stack.wait_until_all_decided(1, Duration::from_secs(30)).await;
    let seeded_document = seeded.document_id.clone().unwrap();
    stack
        .wait_for_delivery(&seeded_document, hookline_contract::DeliveryState::Delivered)
        .await;
    let rows_before = stack.db.reviews().await;
    // What no request may change about the seeded case: who decided what,
    // about which document, for which callback. (Redelivering it is allowed
    // and only moves its delivery bookkeeping.)
    let identity = |case: hookline_contract::CaseView| {
        (
            case.status,
            case.agent_id,
            case.document_url,
            case.callback_url,
            case.delivery.webhook_id,
            case.decided_at,
        )
    };
    let case_before = identity(stack.case(&seeded_document).await);

    let known = vec![
        seeded.id.clone(),
        seeded_document.clone(),
        uuid::Uuid::now_v7().to_string(),
    ];
    let mut created = 0;
    let mut statuses = std::collections::BTreeMap::<(&str, u16), usize>::new();
    for (base, name) in [(&stack.consumer.url, "consumer"), (&stack.helpdesk.url, "helpdesk")] {
        for request in cases(request(name, known.clone(), receiver.url.clone())) {
            let Some(status) = send(base, &request).await else {
                *statuses.entry((name, 0)).or_default() += 1;
                continue;
            };
            *statuses.entry((name, status)).or_default() += 1;
            assert!(status < 500, "{name} answered {status} to {request:?}");
            if name == "consumer" && status == 201 {
                created += 1;
            }
        }
    }

    eprintln!("fuzz: (service, status) -> requests (status 0: not sendable): {statuses:?}");
    let rows_after = stack.db.reviews().await;
    for row in &rows_before {
        assert!(rows_after.contains(row), "a seeded review changed: {row:?}");
    }
    assert_eq!(
        rows_after.len(),
        rows_before.len() + created,
        "only 201s created reviews"
    );
    assert_eq!(
        identity(stack.case(&seeded_document).await),
        case_before,
        "the seeded case is untouched"
    );
}
