//! Metrics and request ids, seen from outside: a review through both real
//! services shows up in their `/metrics`, and every answer carries the
//! request's `x-request-id`, kept from the request when it is sound.

use std::time::Duration;

use awc::http::header::HeaderMap;
use hookline_contract::DeliveryState;
use hookline_tests::{Receiver, Stack, TestDb, consumer_settings, start_consumer};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(20);

/// A GET with extra headers: status, response headers and body as text.
async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, String) {
    let mut request = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
        .get(url);
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let mut response = request.send().await.unwrap();
    let body = response.body().limit(1 << 20).await.unwrap();
    let mut kept = HeaderMap::new();
    for (name, value) in response.headers() {
        kept.append(name.clone(), value.clone());
    }
    (
        response.status().as_u16(),
        kept,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// The exposition of `GET {base}/metrics`.
async fn scrape(base: &str) -> String {
    let (status, headers, body) = get(&format!("{base}/metrics"), &[]).await;
    assert_eq!(status, 200, "{body}");
    let content_type = headers.get("content-type").unwrap().to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    body
}

/// The value of one series (`name{labels}` exactly as exposed).
#[track_caller]
fn value(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{exposition}"))
        .parse()
        .unwrap()
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .expect("every answer carries x-request-id")
        .to_str()
        .unwrap()
        .to_owned()
}

#[actix_web::test]
async fn a_review_through_both_services_is_counted_in_their_metrics() {
    let stack = Stack::start(|hd| hd.review_delay_ms = "50-100".parse().unwrap()).await;
    let review = stack.request_review("https://example.com/contract.pdf").await;
    let document_id = review.document_id.clone().unwrap();
    stack.wait_for_delivery(&document_id, DeliveryState::Delivered).await;
    let (status, _, _) = get(&format!("{}/documents/{}", stack.consumer.url, review.id), &[]).await;
    assert_eq!(status, 200);
    let (status, _, _) = get(&format!("{}/no/such/route", stack.consumer.url), &[]).await;
    assert_eq!(status, 404);

    let helpdesk = scrape(&stack.helpdesk.url).await;
    assert_eq!(value(&helpdesk, "hookline_helpdesk_jobs_scheduled_total"), 1.0);
    assert_eq!(
        value(
            &helpdesk,
            r#"hookline_helpdesk_delivery_attempts_total{outcome="delivered"}"#
        ),
        1.0
    );
    for outcome in ["retry", "dead", "refused"] {
        let series = format!(r#"hookline_helpdesk_delivery_attempts_total{{outcome="{outcome}"}}"#);
        assert_eq!(value(&helpdesk, &series), 0.0, "{series}");
    }
    assert_eq!(
        value(&helpdesk, "hookline_helpdesk_delivery_duration_seconds_count"),
        1.0
    );
    assert!(value(&helpdesk, "hookline_helpdesk_delivery_duration_seconds_sum") > 0.0);
    assert_eq!(
        value(&helpdesk, "hookline_helpdesk_delivery_lateness_seconds_count"),
        1.0
    );
    for state in ["due", "in_flight", "dead"] {
        let series = format!(r#"hookline_helpdesk_queue_depth{{state="{state}"}}"#);
        assert_eq!(value(&helpdesk, &series), 0.0, "{series}");
    }
    assert_eq!(
        value(
            &helpdesk,
            r#"hookline_http_requests_total{method="POST",route="/document",status="202"}"#
        ),
        1.0
    );
    assert!(
        value(
            &helpdesk,
            r#"hookline_http_request_duration_seconds_count{method="POST",route="/document"}"#
        ) >= 1.0
    );

    let consumer = scrape(&stack.consumer.url).await;
    assert_eq!(
        value(&consumer, r#"hookline_consumer_webhooks_total{outcome="applied"}"#),
        1.0
    );
    assert_eq!(
        value(
            &consumer,
            r#"hookline_consumer_webhooks_total{outcome="refused_unauthorized"}"#
        ),
        0.0
    );
    let by_status: f64 = ["PENDING_REVIEW", "ACCEPTED", "DECLINED"]
        .iter()
        .map(|status| value(&consumer, &format!(r#"hookline_consumer_reviews{{status="{status}"}}"#)))
        .sum();
    assert_eq!(by_status, 1.0, "one review, counted once");
    assert_eq!(
        value(&consumer, r#"hookline_consumer_reviews{status="PENDING_REVIEW"}"#),
        0.0
    );
    assert_eq!(
        value(
            &consumer,
            r#"hookline_http_requests_total{method="POST",route="/documents",status="201"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &consumer,
            r#"hookline_http_requests_total{method="GET",route="/documents/{id}",status="200"}"#
        ),
        1.0,
        "counted under the route pattern"
    );
    assert!(
        !consumer.contains(&review.id),
        "no raw path (nor any review id) becomes a label:\n{consumer}"
    );
    assert_eq!(
        value(
            &consumer,
            r#"hookline_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        1.0
    );
    assert!(value(&consumer, "hookline_consumer_reconcile_rounds_total{result=\"failed\"}") == 0.0);
}

#[actix_web::test]
async fn refused_and_unknown_webhooks_are_counted_by_outcome() {
    let stack = Stack::start(|_| {}).await;
    let url = format!("{}/document/update", stack.consumer.url);
    let webhook = json!({"agentId": "agent-1", "documentId": "doc-unknown", "documentStatus": "ACCEPTED"});
    let body = serde_json::to_vec(&webhook).unwrap();
    let (status, _) = hookline_tests::post_raw(&url, body.clone(), "application/json", &[]).await;
    assert_eq!(status, 401);
    let (status, _) = hookline_tests::post_signed_webhook(&url, &body, "msg_unknown").await;
    assert_eq!(status, 404);
    let (status, _) = hookline_tests::post_signed_webhook(&url, b"{\"documentId\": 4}", "msg_bad").await;
    assert_eq!(status, 400);

    let consumer = scrape(&stack.consumer.url).await;
    for (outcome, count) in [
        ("refused_unauthorized", 1.0),
        ("unknown_review", 1.0),
        ("invalid", 1.0),
        ("applied", 0.0),
    ] {
        let series = format!(r#"hookline_consumer_webhooks_total{{outcome="{outcome}"}}"#);
        assert_eq!(value(&consumer, &series), count, "{series}");
    }
}

#[actix_web::test]
async fn an_incoming_request_id_comes_back_in_the_response_of_both_services() {
    let stack = Stack::start(|_| {}).await;
    for base in [&stack.consumer.url, &stack.helpdesk.url] {
        for path in ["/healthz", "/no/such/route"] {
            let (_, headers, _) = get(&format!("{base}{path}"), &[("x-request-id", "test-123")]).await;
            assert_eq!(request_id(&headers), "test-123", "{base}{path}");
        }
    }
}

#[actix_web::test]
async fn a_missing_or_malformed_request_id_is_replaced_by_a_fresh_uuid() {
    let stack = Stack::start(|_| {}).await;
    let too_long = "x".repeat(129);
    for base in [&stack.consumer.url, &stack.helpdesk.url] {
        let mut seen = std::collections::HashSet::new();
        for sent in [None, Some("has spaces"), Some(too_long.as_str())] {
            let headers: Vec<(&str, &str)> = sent.map(|id| ("x-request-id", id)).into_iter().collect();
            let (status, answer, _) = get(&format!("{base}/healthz"), &headers).await;
            assert_eq!(status, 200);
            let id = request_id(&answer);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{sent:?} became {id:?}");
            seen.insert(id);
        }
        assert_eq!(seen.len(), 3, "each request gets its own id: {seen:?}");
    }
}

#[actix_web::test]
async fn the_consumer_passes_its_request_id_on_to_the_helpdesk() {
    // A stand-in help desk that records what it is sent (and answers
    // nothing useful: the consumer then gives up with a 502).
    let mut helpdesk = Receiver::start(202).await;
    let base = helpdesk.url.trim_end_matches("/hook").to_owned();
    let db = TestDb::create().await;
    let consumer = start_consumer(consumer_settings(&db, &base)).await;

    let (status, body) = hookline_tests::post_json(
        &format!("{}/documents", consumer.url),
        &json!({"documentUrl": "https://example.com/a.pdf"}),
        &[("x-request-id", "trace-me-42")],
    )
    .await;
    assert_eq!(status, 502, "{body}");
    let call = helpdesk.next(DEADLINE).await;
    assert_eq!(
        call.headers.get("x-request-id").map(String::as_str),
        Some("trace-me-42")
    );
}
