//! Every malformed request gets a 4xx with a JSON error body and changes
//! nothing that is stored (compared by snapshots of PostgreSQL and Redis).

use std::time::Duration;

use hookline_tests::{
    Stack, assert_client_error, get_json, post_json, post_raw, post_signed_webhook, request_json, send_json,
};
use serde_json::{Value, json};

/// A stack holding one decided review, so that "changes nothing" has
/// something to change.
async fn stack_with_a_decided_review() -> (Stack, hookline_contract::Review) {
    let stack = Stack::start(|hd| hd.accept_ratio = 1.0).await;
    let review = stack.request_review("https://example.com/seed.pdf").await;
    stack.wait_until_all_decided(1, Duration::from_secs(20)).await;
    // Let the help desk finish its bookkeeping so Redis is quiet too.
    let document_id = review.document_id.clone().unwrap();
    stack
        .wait_for_delivery(&document_id, hookline_contract::DeliveryState::Delivered)
        .await;
    let review = stack.review(&review.id).await;
    (stack, review)
}

async fn snapshot(
    stack: &Stack,
) -> (
    hookline_tests::db::Snapshot,
    std::collections::BTreeMap<String, Vec<String>>,
) {
    (stack.db.snapshot().await, stack.redis.snapshot().await)
}

#[actix_web::test]
async fn malformed_review_requests_get_a_4xx_json_error_and_change_nothing() {
    let (stack, _) = stack_with_a_decided_review().await;
    let url = format!("{}/documents", stack.consumer.url);
    let before = snapshot(&stack).await;

    let json_cases: Vec<(Value, u16, &str)> = vec![
        (json!({}), 400, "invalid_body"),
        (json!({"documentUrl": null}), 400, "invalid_body"),
        (json!({"documentUrl": 42}), 400, "invalid_body"),
        (json!({"documentUrl": ""}), 400, "invalid_field"),
        (json!({"documentUrl": "not a url"}), 400, "invalid_field"),
        (json!({"documentUrl": "ftp://example.com/a.pdf"}), 400, "invalid_field"),
        (json!({"documentUrl": "javascript:alert(1)"}), 400, "invalid_field"),
        (
            json!({"documentUrl": format!("https://example.com/{}", "a".repeat(3000))}),
            400,
            "invalid_field",
        ),
        (json!("https://example.com/a.pdf"), 400, "invalid_body"),
    ];
    for (body, expected, code) in json_cases {
        let (status, answer) = post_json(&url, &body, &[]).await;
        assert_eq!(assert_client_error(status, &answer, expected), code, "for {body}");
    }
    let (status, answer) = post_raw(&url, b"{\"documentUrl\": ".to_vec(), "application/json", &[]).await;
    assert_eq!(assert_client_error(status, &answer, 400), "invalid_json");
    let (status, answer) = post_raw(
        &url,
        b"documentUrl=https://example.com".to_vec(),
        "application/x-www-form-urlencoded",
        &[],
    )
    .await;
    assert_eq!(assert_client_error(status, &answer, 415), "unsupported_media_type");
    let huge =
        serde_json::to_vec(&json!({"documentUrl": "https://example.com/a.pdf", "pad": "x".repeat(100_000)})).unwrap();
    let (status, answer) = post_raw(&url, huge, "application/json", &[]).await;
    assert_eq!(assert_client_error(status, &answer, 413), "payload_too_large");
    let (_, answer) = post_json(&url, &json!({"documentUrl": "ftp://example.com/a.pdf"}), &[]).await;
    assert_eq!(answer["field"], "documentUrl", "the error names the field: {answer}");

    assert_eq!(before, snapshot(&stack).await);
}

#[actix_web::test]
async fn malformed_reads_of_the_consumer_get_a_4xx_json_error() {
    let (stack, review) = stack_with_a_decided_review().await;
    let base = &stack.consumer.url;
    let before = snapshot(&stack).await;
    let cases: Vec<(String, u16)> = vec![
        (format!("{base}/documents/not-a-uuid"), 400),
        (format!("{base}/documents/{}", uuid::Uuid::now_v7()), 404),
        (format!("{base}/documents?limit=0"), 400),
        (format!("{base}/documents?limit=101"), 400),
        (format!("{base}/documents?limit=many"), 400),
        (format!("{base}/documents?status=MAYBE"), 400),
        (format!("{base}/documents?cursor=garbage"), 400),
        (format!("{base}/no/such/route"), 404),
    ];
    for (url, expected) in cases {
        let (status, answer) = get_json(&url).await;
        assert_client_error(status, &answer, expected);
    }
    let (status, answer) = request_json("DELETE", &format!("{base}/documents/{}", review.id)).await;
    assert!((400..500).contains(&status), "{status}");
    assert!(answer["error"].is_string(), "{answer}");
    assert_eq!(before, snapshot(&stack).await);
}

#[actix_web::test]
async fn malformed_or_unwelcome_webhooks_get_a_4xx_json_error_and_change_nothing() {
    let (stack, review) = stack_with_a_decided_review().await;
    let url = format!("{}/document/update", stack.consumer.url);
    let document_id = review.document_id.clone().unwrap();
    let agent_id = review.agent_id.clone().unwrap();
    let before = snapshot(&stack).await;
    assert_eq!(review.document_status, hookline_contract::DocumentStatus::Accepted);

    // Unsigned, even if otherwise perfect.
    let good = json!({"agentId": agent_id, "documentId": document_id, "documentStatus": "DECLINED"});
    let (status, answer) = post_json(&url, &good, &[]).await;
    assert_eq!(assert_client_error(status, &answer, 401), "unauthorized");

    let signed_cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "invalid_json"),
        (br#"{"documentId": "x"}"#.to_vec(), 400, "invalid_body"),
        (
            serde_json::to_vec(&json!({"agentId": "a", "documentId": document_id, "documentStatus": "MAYBE"})).unwrap(),
            400,
            "invalid_body",
        ),
        (
            serde_json::to_vec(&json!({"agentId": "a", "documentId": document_id, "documentStatus": "PENDING_REVIEW"}))
                .unwrap(),
            400,
            "invalid_field",
        ),
        (
            serde_json::to_vec(&json!({"agentId": "a", "documentId": "has spaces", "documentStatus": "ACCEPTED"}))
                .unwrap(),
            400,
            "invalid_field",
        ),
        (
            serde_json::to_vec(
                &json!({"agentId": "a", "documentId": "unknown-document", "documentStatus": "ACCEPTED"}),
            )
            .unwrap(),
            404,
            "not_found",
        ),
        // The stored decision is ACCEPTED: a contradicting one is refused.
        (serde_json::to_vec(&good).unwrap(), 409, "conflict"),
    ];
    for (n, (body, expected, code)) in signed_cases.into_iter().enumerate() {
        let (status, answer) = post_signed_webhook(&url, &body, &format!("msg_bad_{n}")).await;
        assert_eq!(
            assert_client_error(status, &answer, expected),
            code,
            "case {n}: {answer}"
        );
    }
    let huge = vec![b' '; 200_000];
    let (status, answer) = post_signed_webhook(&url, &huge, "msg_huge").await;
    assert_eq!(assert_client_error(status, &answer, 413), "payload_too_large");

    assert_eq!(before, snapshot(&stack).await);

    // The same decision again is a harmless 2xx no-op.
    let same = json!({"agentId": agent_id, "documentId": document_id, "documentStatus": "ACCEPTED"});
    let (status, answer) = post_signed_webhook(&url, &serde_json::to_vec(&same).unwrap(), "msg_again").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "already_applied");
    assert_eq!(before, snapshot(&stack).await);
}

#[actix_web::test]
async fn malformed_requests_to_the_helpdesk_get_a_4xx_json_error_and_change_nothing() {
    let (stack, review) = stack_with_a_decided_review().await;
    let url = format!("{}/document", stack.helpdesk.url);
    let good_body = json!({"documentUrl": "https://example.com/a.pdf"});
    let before = snapshot(&stack).await;

    let (status, answer) = post_json(&url, &good_body, &[]).await;
    assert_eq!(assert_client_error(status, &answer, 400), "missing_header");
    assert_eq!(answer["field"], "X-Callback-Url");
    for callback in [
        "",
        "not-a-url",
        "/relative",
        "ftp://example.com/hook",
        "http://user:pw@example.com/hook",
        "file:///etc/passwd",
    ] {
        let (status, answer) = post_json(&url, &good_body, &[("x-callback-url", callback)]).await;
        assert_eq!(
            assert_client_error(status, &answer, 400),
            "invalid_field",
            "callback {callback:?}"
        );
        assert_eq!(answer["field"], "X-Callback-Url");
    }
    let callback = [("x-callback-url", "http://127.0.0.1:9/hook")];
    let bodies: Vec<(Value, &str)> = vec![
        (json!({}), "invalid_body"),
        (json!({"documentUrl": "nope"}), "invalid_field"),
        (
            json!({"documentUrl": "https://example.com/a.pdf", "id": "has spaces"}),
            "invalid_field",
        ),
        (
            json!({"documentUrl": "https://example.com/a.pdf", "id": {"nested": true}}),
            "invalid_body",
        ),
    ];
    for (body, code) in bodies {
        let (status, answer) = post_json(&url, &body, &callback).await;
        assert_eq!(assert_client_error(status, &answer, 400), code, "for {body}");
    }
    let (status, answer) = post_raw(
        &url,
        b"{\"documentUrl\": \"https://exa".to_vec(),
        "application/json",
        &callback,
    )
    .await;
    assert_eq!(assert_client_error(status, &answer, 400), "invalid_json");
    // Just over the documented 64 KiB (actix's own default would be 256 KiB).
    let over =
        serde_json::to_vec(&json!({"documentUrl": "https://example.com/a.pdf", "pad": "x".repeat(64 * 1024)})).unwrap();
    let (status, answer) = post_raw(&url, over, "application/json", &callback).await;
    assert_eq!(assert_client_error(status, &answer, 413), "payload_too_large");

    let base = &stack.helpdesk.url;
    let (status, answer) = get_json(&format!("{base}/document/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(assert_client_error(status, &answer, 404), "not_found");
    let (status, answer) = get_json(&format!("{base}/document/bad%20id")).await;
    assert_eq!(assert_client_error(status, &answer, 400), "invalid_field");
    let (status, answer) = get_json(&format!("{base}/nowhere")).await;
    assert_eq!(assert_client_error(status, &answer, 404), "not_found");
    // An endpoint's settings: a real endpoint with a bad rate, or no endpoint.
    let endpoint = format!("{base}/endpoints/http%3A%2F%2F127.0.0.1%3A9");
    for (url, body, expected) in [
        (endpoint.as_str(), json!({"rate": 0}), "invalid_field"),
        (endpoint.as_str(), json!({"rate": -1.5}), "invalid_field"),
        (endpoint.as_str(), json!({"rate": 1e9}), "invalid_field"),
        (endpoint.as_str(), json!({"rate": "fast"}), "invalid_body"),
        (endpoint.as_str(), json!([5]), "invalid_body"),
        (
            &format!("{base}/endpoints/127.0.0.1%3A9"),
            json!({"rate": 5}),
            "invalid_field",
        ),
        (
            &format!("{base}/endpoints/http%3A%2F%2F127.0.0.1%3A9%2Fhook"),
            json!({"rate": 5}),
            "invalid_field",
        ),
    ] {
        let (status, answer) = send_json("PUT", url, &body).await;
        assert_eq!(assert_client_error(status, &answer, 400), expected, "{url} {body}");
    }
    let (status, answer) = get_json(&format!("{base}/endpoints?limit=0")).await;
    assert_eq!(assert_client_error(status, &answer, 400), "invalid_field");
    // Resuming: no endpoint, or one no webhook ever went to.
    let (status, answer) = request_json("POST", &format!("{base}/endpoints/127.0.0.1%3A9/resume")).await;
    assert_eq!(assert_client_error(status, &answer, 400), "invalid_field");
    let (status, answer) = request_json("POST", &format!("{base}/endpoints/http%3A%2F%2F127.0.0.1%3A9/resume")).await;
    assert_eq!(assert_client_error(status, &answer, 404), "not_found");
    let (status, answer) = request_json("DELETE", &format!("{base}/document/{}", review.document_id.unwrap())).await;
    assert!(
        (400..500).contains(&status) && answer["error"].is_string(),
        "{status} {answer}"
    );

    assert_eq!(before, snapshot(&stack).await);
}
