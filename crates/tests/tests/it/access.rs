//! Access: with `HELPDESK_API_KEYS` set, every private route of the help
//! desk needs `Authorization: Bearer <key>` (any of the keys, for rotation),
//! the open ones stay open, and the consumer sends its `HELPDESK_API_KEY`.

use std::time::Duration;

use hookline_kit::config::Secret;
use hookline_tests::Stack;
use hookline_tests::post_review;
use serde_json::{Value, json};

const OLD_KEY: &str = "hookline-test-key-0ld-0123456789";
const NEW_KEY: &str = "hookline-test-key-new-0123456789";

/// One request: status, `WWW-Authenticate`, body.
async fn call(
    method: &str,
    url: &str,
    authorization: Option<&str>,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish()
        .request(method, url)
        .insert_header((hookline_contract::headers::CALLBACK_URL, "http://127.0.0.1:9/hook"));
    if let Some(value) = authorization {
        request = request.insert_header(("authorization", value));
    }
    let mut response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    }
    .unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.body().limit(1 << 20).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
    (response.status().as_u16(), challenge, body)
}

fn keyed(stack_keys: &str) -> impl FnOnce(&mut helpdesk::Settings) + '_ {
    move |hd| hd.api_keys = stack_keys.parse().unwrap()
}

#[actix_web::test]
async fn private_routes_need_an_accepted_key_and_the_open_ones_do_not() {
    let keys = format!("{OLD_KEY},{NEW_KEY}");
    let stack = Stack::start_with(keyed(&keys), |c| {
        c.helpdesk_api_key = Some(Secret::new(NEW_KEY.to_owned()));
    })
    .await;
    let base = &stack.helpdesk.url;
    let endpoint = "http%3A%2F%2F127.0.0.1%3A9";
    let document = json!({"documentUrl": "https://example.com/a.pdf", "id": "access-1"});
    let private = [
        ("POST", format!("{base}/document"), Some(document.clone())),
        (
            "GET",
            format!("{base}/document/7f1c2d9e-0000-4000-8000-000000000000"),
            None,
        ),
        (
            "POST",
            format!("{base}/document/7f1c2d9e-0000-4000-8000-000000000000/redeliver"),
            None,
        ),
        ("GET", format!("{base}/cases"), None),
        ("GET", format!("{base}/chaos"), None),
        ("GET", format!("{base}/dead-letters"), None),
        ("GET", format!("{base}/endpoints"), None),
        ("GET", format!("{base}/endpoints/{endpoint}"), None),
        ("PUT", format!("{base}/endpoints/{endpoint}"), Some(json!({"rate": 5}))),
        (
            "POST",
            format!("{base}/webhooks"),
            Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["webhook.test"]})),
        ),
        ("GET", format!("{base}/webhooks"), None),
        ("GET", format!("{base}/webhooks/sub_1"), None),
        (
            "PATCH",
            format!("{base}/webhooks/sub_1"),
            Some(json!({"disabled": true})),
        ),
        ("DELETE", format!("{base}/webhooks/sub_1"), None),
        ("POST", format!("{base}/webhooks/sub_1/rotate-secret"), None),
        ("POST", format!("{base}/webhooks/sub_1/test"), None),
        ("POST", format!("{base}/webhooks/sub_1/enable"), None),
        ("POST", format!("{base}/webhooks/sub_1/redeliver/msg_1"), None),
    ];
    let refused = [
        (None, "needs an API key"),
        (Some(format!("Bearer {OLD_KEY}x")), "not accepted"),
        (Some(format!("Bearer {}", &NEW_KEY[1..])), "not accepted"),
        (Some(format!("Basic {OLD_KEY}")), "must be Bearer"),
    ];
    for (method, url, body) in &private {
        for (authorization, why) in &refused {
            let (status, challenge, answer) = call(method, url, authorization.as_deref(), body.clone()).await;
            assert_eq!(status, 401, "{method} {url} with {authorization:?}: {answer}");
            assert_eq!(challenge.as_deref(), Some("Bearer"), "{method} {url}");
            assert_eq!(answer["error"], "unauthorized", "{method} {url}: {answer}");
            assert!(
                answer["detail"].as_str().unwrap().contains(why),
                "{method} {url}: {answer}"
            );
        }
    }
    // The refused POST /document and PUT stored nothing.
    for key in [OLD_KEY, NEW_KEY] {
        let (status, _, cases) = call("GET", &format!("{base}/cases"), Some(&format!("Bearer {key}")), None).await;
        assert_eq!((status, &cases["total"]), (200, &json!(0)), "{cases}");
        let (status, _, endpoints) = call(
            "GET",
            &format!("{base}/endpoints"),
            Some(&format!("bearer {key}")),
            None,
        )
        .await;
        assert_eq!((status, &endpoints["total"]), (200, &json!(0)), "{endpoints}");
    }

    // With a key, each private route answers as it would on an open help desk.
    let authorization = format!("Bearer {OLD_KEY}");
    let (status, _, accepted) = call(
        "POST",
        &format!("{base}/document"),
        Some(&authorization),
        Some(document),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let document_id = accepted["documentId"].as_str().unwrap();
    let (status, _, case) = call(
        "GET",
        &format!("{base}/document/{document_id}"),
        Some(&authorization),
        None,
    )
    .await;
    assert_eq!((status, &case["documentId"]), (200, &json!(document_id)), "{case}");

    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/openapi.json",
        "/assets/helpdesk.js",
    ] {
        let (status, challenge, _) = call("GET", &format!("{base}{path}"), None, None).await;
        assert_eq!((status, challenge), (200, None), "{path} stays open");
    }
}

#[actix_web::test]
async fn a_consumer_with_the_key_gets_its_review_decided() {
    let stack = Stack::start_with(keyed(NEW_KEY), |c| {
        c.helpdesk_api_key = Some(Secret::new(NEW_KEY.to_owned()));
    })
    .await;
    let review = stack.request_review("https://example.com/keyed.pdf").await;
    let decided = stack.wait_until_all_decided(1, Duration::from_secs(20)).await;
    assert_eq!(decided[0].id.to_string(), review.id);
}

#[actix_web::test]
async fn a_consumer_without_the_key_is_refused_and_keeps_no_review() {
    let stack = Stack::start(keyed(NEW_KEY)).await;
    let (status, body) = post_review(&stack.consumer.url, "https://example.com/no-key.pdf").await;
    assert_eq!(status, 502, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("401"), "{body}");
    assert!(stack.db.reviews().await.is_empty(), "a refused review is not kept");
}
