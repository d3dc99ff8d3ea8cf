//! One webhook attempt: build the payload, sign it (Standard Webhooks), POST
//! it to the callback URL, and say how it went. Redirects are not followed
//! (a redirect is a failed attempt): the callback URL the client registered
//! is the only place a webhook goes.

use std::time::{Duration, Instant};

use awc::error::SendRequestError;
use chrono::Utc;
use hookline_contract::signature::SecretSet;
use hookline_contract::{DocumentWebhook, headers};

use crate::queue::CaseRecord;

/// How much of a receiver's answer is read (and thrown away) so the
/// connection can be reused.
const DRAIN_LIMIT: usize = 64 * 1024;

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered 2xx.
    Delivered { status: u16, took: Duration },
    /// Anything else: a non-2xx status, a refused connection, a timeout.
    Failed {
        error: String,
        /// The receiver's status, if it answered.
        status: Option<u16>,
        /// The receiver's `Retry-After` on a 429 or 503.
        retry_after: Option<Duration>,
        took: Duration,
    },
}

impl Attempt {
    fn failed(error: String, took: Duration) -> Self {
        Self::Failed {
            error,
            status: None,
            retry_after: None,
            took,
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(raw: &str, now: chrono::DateTime<Utc>) -> Option<Duration> {
    let raw = raw.trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// Sends webhooks. Holds an `awc::Client`, so it lives on one thread.
pub struct Deliverer {
    client: awc::Client,
    secrets: Option<SecretSet>,
}

impl Deliverer {
    pub fn new(secrets: Option<SecretSet>, timeout: Duration, max_connections: usize) -> Self {
        let connector = awc::Connector::new()
            .limit(max_connections)
            .timeout(timeout.min(Duration::from_secs(5)));
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(timeout)
            .disable_redirects()
            .add_default_header((
                "user-agent",
                concat!("hookline-helpdesk/", env!("CARGO_PKG_VERSION")),
            ))
            .finish();
        Self { client, secrets }
    }

    /// The JSON body of the webhook for `case`.
    pub fn payload(case: &CaseRecord) -> DocumentWebhook {
        DocumentWebhook {
            agent_id: case.agent_id.clone(),
            document_id: case.document_id.clone(),
            document_status: case.status,
            id: case.request_id.clone(),
        }
    }

    /// Makes one attempt. Never panics and never takes longer than the
    /// client timeout.
    pub async fn send(&self, case: &CaseRecord) -> Attempt {
        let started = Instant::now();
        let body = match serde_json::to_vec(&Self::payload(case)) {
            Ok(body) => body,
            Err(e) => {
                return Attempt::failed(
                    format!("cannot encode the payload: {e}"),
                    started.elapsed(),
                );
            }
        };
        let timestamp = Utc::now().timestamp();
        let mut request = self
            .client
            .post(&case.callback_url)
            .insert_header(("content-type", "application/json"))
            .insert_header((headers::WEBHOOK_ID, case.webhook_id.as_str()))
            .insert_header((headers::WEBHOOK_TIMESTAMP, timestamp.to_string()));
        if let Some(secrets) = &self.secrets {
            request = request.insert_header((
                headers::WEBHOOK_SIGNATURE,
                secrets.sign(&case.webhook_id, timestamp, &body),
            ));
        }
        match request.send_body(body).await {
            Ok(mut response) => {
                let status = response.status();
                let retry_after = match status.as_u16() {
                    429 | 503 => response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, Utc::now())),
                    _ => None,
                };
                // Read what the receiver said so the connection can be reused;
                // its content does not matter.
                let _ = response.body().limit(DRAIN_LIMIT).await;
                let took = started.elapsed();
                if status.is_success() {
                    Attempt::Delivered {
                        status: status.as_u16(),
                        took,
                    }
                } else {
                    Attempt::Failed {
                        error: format!("HTTP {}", status.as_u16()),
                        status: Some(status.as_u16()),
                        retry_after,
                        took,
                    }
                }
            }
            Err(e) => Attempt::failed(describe(&e), started.elapsed()),
        }
    }
}

fn describe(error: &SendRequestError) -> String {
    match error {
        SendRequestError::Timeout => "timed out".to_owned(),
        SendRequestError::Connect(e) => format!("cannot connect: {e}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
