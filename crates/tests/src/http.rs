//! Talking to the services over HTTP, and waiting on them with deadlines.

use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use hookline_contract::DeliveryState;
use hookline_testkit::receiver::json_or_text as parse_body;
use serde_json::Value;

use crate::secret_set;

fn client() -> awc::Client {
    awc::Client::builder().timeout(Duration::from_secs(30)).finish()
}

/// POSTs `body` as JSON with extra `headers`; returns the status and the
/// JSON answer (a string if it was not JSON, null if empty).
pub async fn post_json(url: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    post_raw(url, serde_json::to_vec(body).unwrap(), "application/json", headers).await
}

/// `POST {consumer_url}/documents` for `document_url`: the status and the answer.
pub async fn post_review(consumer_url: &str, document_url: &str) -> (u16, Value) {
    post_json(
        &format!("{consumer_url}/documents"),
        &serde_json::json!({ "documentUrl": document_url }),
        &[],
    )
    .await
}

/// As [`post_json`], and the answer's headers too (names in lower case).
pub async fn post_json_with_headers(
    url: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Value, std::collections::HashMap<String, String>) {
    let (status, answer_headers, answer) = call("POST", url, headers, Some(body)).await;
    (status, answer, answer_headers)
}

/// Sends `body` as JSON with any method (`PUT`, `PATCH`, ...).
pub async fn send_json(method: &str, url: &str, body: &Value) -> (u16, Value) {
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut response = client().request(method, url).send_json(body).await.unwrap();
    let bytes = response.body().limit(1 << 20).await.unwrap();
    (response.status().as_u16(), parse_body(&bytes))
}

/// POSTs raw bytes with a content type (`""` for none) and extra headers.
pub async fn post_raw(url: &str, body: Vec<u8>, content_type: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = client().post(url);
    if !content_type.is_empty() {
        request = request.insert_header(("content-type", content_type));
    }
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let mut response = request.send_body(body).await.unwrap();
    let bytes = response.body().limit(1 << 20).await.unwrap();
    (response.status().as_u16(), parse_body(&bytes))
}

/// Any method, with extra `headers` and an optional JSON body: the status,
/// the answer's headers (names in lower case) and its JSON body.
pub async fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, std::collections::HashMap<String, String>, Value) {
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client().request(method, url);
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let mut response = match body {
        Some(body) => request.send_json(body).await,
        None => request.send().await,
    }
    .unwrap();
    let bytes = response.body().limit(1 << 20).await.unwrap();
    let answer_headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or_default().to_owned()))
        .collect();
    (response.status().as_u16(), answer_headers, parse_body(&bytes))
}

pub async fn get_json(url: &str) -> (u16, Value) {
    request_json("GET", url).await
}

/// Any method without a body.
pub async fn request_json(method: &str, url: &str) -> (u16, Value) {
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut response = client().request(method, url).send().await.unwrap();
    let bytes = response.body().limit(1 << 20).await.unwrap();
    (response.status().as_u16(), parse_body(&bytes))
}

/// Signs `body` as the help desk would and POSTs it to `url`.
pub async fn post_signed_webhook(url: &str, body: &[u8], msg_id: &str) -> (u16, Value) {
    let timestamp = chrono::Utc::now().timestamp();
    let signature = secret_set().sign(msg_id, timestamp, body);
    let timestamp = timestamp.to_string();
    post_raw(
        url,
        body.to_vec(),
        "application/json",
        &[
            ("webhook-id", msg_id),
            ("webhook-timestamp", &timestamp),
            ("webhook-signature", &signature),
        ],
    )
    .await
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `deadline`.
pub async fn wait_for<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the help desk at `helpdesk_url` until the case's delivery is in
/// `state`; returns the case. Panics at once if it was delivered instead.
pub async fn wait_for_delivery(
    helpdesk_url: &str,
    document_id: &str,
    state: hookline_contract::DeliveryState,
) -> hookline_contract::CaseView {
    let url = format!("{helpdesk_url}/document/{document_id}");
    wait_for(
        Duration::from_secs(60),
        &format!("delivery state {state:?}"),
        || async {
            let (status, case) = get_json(&url).await;
            assert_eq!(status, 200, "{case}");
            let case: hookline_contract::CaseView = serde_json::from_value(case).unwrap();
            // Delivered is final: waiting on for another state would only time out.
            assert!(
                case.delivery.state == state || case.delivery.state != DeliveryState::Delivered,
                "waiting for {state:?}, but the case was delivered: {case:?}"
            );
            (case.delivery.state == state).then_some(case)
        },
    )
    .await
}

/// A loopback port nothing listens on (connections are refused).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Asserts a 4xx with the JSON error envelope; returns its `error` code.
#[track_caller]
pub fn assert_client_error(status: u16, body: &Value, expected_status: u16) -> String {
    assert_eq!(status, expected_status, "unexpected status, body: {body}");
    let code = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no JSON error envelope: {body}"));
    code.to_owned()
}

/// A GET answered as text (`/metrics`): the status and the body.
pub async fn get_text(url: &str) -> (u16, String) {
    let mut response = client().get(url).send().await.unwrap();
    let bytes = response.body().limit(1 << 22).await.unwrap();
    (response.status().as_u16(), String::from_utf8_lossy(&bytes).into_owned())
}

/// The sum of the series at `base_url/metrics` whose line starts with
/// `prefix` (e.g. `hookline_helpdesk_chaos_faults_total{answer="2xx"`).
pub async fn metric_sum(base_url: &str, prefix: &str) -> u64 {
    let (status, metrics) = get_text(&format!("{base_url}/metrics")).await;
    assert_eq!(status, 200, "{metrics}");
    metrics
        .lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
