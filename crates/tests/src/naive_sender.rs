//! A webhook sender that cuts the usual corners, honestly written: what
//! `hookline grade` must not give full marks.
//!
//! It is awc with its defaults — redirects followed (awc follows them
//! unless told `disable_redirects()`), a 5 s timeout — and a fixed 1 s
//! retry after a 5xx, a 429 (its `Retry-After` ignored), a timeout or a
//! lost connection, up to [`ATTEMPTS`] attempts; any other answer ends the
//! message (so a 410 stops it). Each attempt is signed anew with the
//! Standard Webhooks scheme: the same `webhook-id`, a fresh timestamp. It
//! takes the status and drops the answer unread.

use std::time::Duration;

use chrono::Utc;
use hookline_contract::headers;
use hookline_contract::signature::SecretSet;

/// Attempts per message, at most.
pub const ATTEMPTS: usize = 5;
/// The fixed pause between attempts.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Sends `body` as message `webhook_id` to `url` until a 2xx or a final
/// answer; the statuses it got (`None`: no answer).
pub async fn send(url: &str, secrets: &SecretSet, webhook_id: &str, body: Vec<u8>) -> Vec<Option<u16>> {
    let client = awc::Client::default();
    let mut got = Vec::new();
    for _ in 0..ATTEMPTS {
        let timestamp = Utc::now().timestamp();
        let answer = client
            .post(url)
            .insert_header(("content-type", "application/json"))
            .insert_header((headers::WEBHOOK_ID, webhook_id))
            .insert_header((headers::WEBHOOK_TIMESTAMP, timestamp.to_string()))
            .insert_header((headers::WEBHOOK_SIGNATURE, secrets.sign(webhook_id, timestamp, &body)))
            .send_body(body.clone())
            .await;
        let status = answer.ok().map(|response| response.status().as_u16());
        got.push(status);
        match status {
            Some(200..=299) => break,
            Some(429 | 500..=599) | None => actix_web::rt::time::sleep(RETRY_EVERY).await,
            Some(_) => break,
        }
    }
    got
}

/// Sends `count` messages at once (review payloads with fresh ids), each
/// as [`send`] does; their statuses.
pub async fn send_many(url: &str, secrets: &SecretSet, count: usize) -> Vec<Vec<Option<u16>>> {
    let sends = (0..count).map(|_| {
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let body = serde_json::json!({
            "documentId": uuid::Uuid::new_v4().to_string(),
            "agentId": "naive",
            "documentStatus": "ACCEPTED",
        });
        let body = serde_json::to_vec(&body).unwrap();
        async move { send(url, secrets, &id, body).await }
    });
    futures_util::future::join_all(sends).await
}
