//! One webhook attempt: build the payload, sign it (Standard Webhooks, or the
//! [dialect](hookline_contract::dialect) of the case or subscription), POST
//! it to the callback URL, and say how it went. Redirects are not followed
//! (a redirect is a failed attempt): the callback URL the client registered
//! is the only place a webhook goes.
//!
//! A message in Standard Webhooks goes out exactly as before dialects were:
//! `webhook-id`, `webhook-timestamp`, and `webhook-signature` with a `v1,`
//! per secret. In another dialect it carries only that provider's headers
//! ([`Dialect::sign_with`]): its signature (one per secret where the header
//! holds several, else the first secret's), the `webhook-id` in its delivery
//! id header where it has one (`X-GitHub-Delivery`, `X-Shopify-Webhook-Id`),
//! the event type where it names one (`X-GitHub-Event`, `X-Shopify-Topic`).
//! Unsigned (signing off), it carries those headers without the signature.
//!
//! An attempt has one deadline, `DELIVERY_TIMEOUT`, for all of it: connect,
//! send, the status line and headers, and the body we read. A receiver that
//! never answers, trickles its status line, or sends a 200 and then holds
//! back the body it announced is cut off there and the attempt fails as
//! timed out, saying where it stood; it never holds a worker's slot longer.
//!
//! Every address connected to has passed the [callback policy](crate::ssrf)
//! at that moment: names resolve through the policy's
//! [`GuardedResolver`], and IP-literal hosts, which awc does not resolve,
//! are checked here before sending. A refusal is an [`Attempt::Refused`].
//! Under `CALLBACK_POLICY=strict`, an attempt that got no HTTP answer from
//! an address that is not public reads like a refusal ([`UNANSWERED`]), so
//! the attempt log tells no closed port from a silent or non-HTTP one.
//!
//! `https://` callbacks go over rustls ([`hookline_kit::tls`]: the system's
//! roots plus `CALLBACK_CA_FILE`, a client certificate for mutual TLS when
//! configured). awc runs the TLS handshake on top of the same guarded TCP
//! connector, so the policy sees every address either way, and verifies the
//! certificate against the URL's host (also sent as SNI). A certificate that
//! does not verify, or a server that refuses us during the handshake, is an
//! ordinary failed attempt (`certificate not trusted: ...`, `TLS handshake
//! failed: ...`) and is retried on the schedule: the receiver may fix its
//! certificate, or we our CA file, before the retries run out.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::error::ParseError;
use actix_web::web::Bytes;
use awc::error::{ConnectError, SendRequestError};
use chrono::Utc;
use hookline_contract::dialect::{Delivery, Dialect};
use hookline_contract::signature::SecretSet;
use hookline_contract::{
    DocumentEvent, DocumentWebhook, EndpointEvent, Event, EventType, MessageExhaustedEvent, TestEvent, headers,
};
use hookline_kit::tls::{self, ClientConfig, TlsFailure};
use hookline_kit::trace::TRACEPARENT;

use crate::signing::CallbackSigning;
use crate::ssrf::{CallbackPolicy, GuardedResolver, Refusal, UNANSWERED, refusal_in};
use crate::store::{CaseRecord, EventJob};

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
    /// The callback policy refused the address: nothing was sent. `reason`
    /// is the attempt log's words ([`Refusal::attempt_error`]).
    Refused { reason: String, took: Duration },
    /// Not sent: the event's subscription was deleted or disabled.
    Cancelled { reason: String },
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
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

/// A webhook ready to send: where it goes, its id, its body, the
/// secret(s) that sign it (none: it goes out unsigned), and how.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub url: &'a str,
    pub webhook_id: &'a str,
    /// Its event type, for the dialects that send it in a header.
    pub event: &'static str,
    pub body: Bytes,
    pub secrets: Option<&'a SecretSet>,
    pub dialect: Dialect,
    /// The `traceparent` this attempt sends (its span's), when its case
    /// carries a trace.
    pub traceparent: Option<String>,
}

/// How one request of a delivery is sent: by default the message as it is,
/// signed now with its own secrets. The [chaos](crate::chaos) faults send
/// it otherwise.
#[derive(Debug, Clone, Default)]
pub struct Sending {
    /// The timestamp to sign and send (default: now).
    pub timestamp: Option<i64>,
    /// Another body, signed as the message's would be.
    pub body: Option<Bytes>,
    /// Sign with these instead of the message's secrets.
    pub forged_with: Option<SecretSet>,
    /// Trickle the body in small chunks over this long.
    pub trickle: Option<Duration>,
    /// A deadline shorter than `DELIVERY_TIMEOUT`.
    pub timeout: Option<Duration>,
}

/// How many pieces a trickled body is sent in.
const TRICKLE_PIECES: usize = 8;

/// `body` in [`TRICKLE_PIECES`] pieces, `over` spread between them.
fn trickled(body: Bytes, over: Duration) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let piece = body.len().div_ceil(TRICKLE_PIECES).max(1);
    let pause = over / u32::try_from(TRICKLE_PIECES).unwrap_or(1);
    futures_util::stream::unfold((body, true), move |(mut rest, first)| async move {
        if rest.is_empty() {
            return None;
        }
        if !first {
            tokio::time::sleep(pause).await;
        }
        let chunk = rest.split_to(piece.min(rest.len()));
        Some((Ok(chunk), (rest, false)))
    })
}

/// Sends webhooks. Holds an `awc::Client`, so it lives on one thread.
pub struct Deliverer {
    client: awc::Client,
    signing: CallbackSigning,
    policy: Arc<CallbackPolicy>,
    resolver: GuardedResolver,
    timeout: Duration,
}

impl Deliverer {
    /// `tls` is the configuration of `https://` callbacks
    /// ([`Settings::callback_tls`](crate::Settings::callback_tls)).
    pub fn new(
        signing: CallbackSigning,
        timeout: Duration,
        max_connections: usize,
        policy: Arc<CallbackPolicy>,
        tls: Arc<ClientConfig>,
    ) -> Self {
        let resolver = GuardedResolver::new(policy.clone());
        let guarded = actix_tls::connect::Connector::new(actix_tls::connect::Resolver::custom(resolver.clone()));
        // The TLS connector wraps this same guarded TCP connector (awc's
        // `finish` composes them), so https callbacks resolve through the
        // policy too.
        let connector = awc::Connector::new()
            .connector(guarded.service())
            .rustls_0_23(tls)
            .limit(max_connections)
            .timeout(timeout.min(Duration::from_secs(5)))
            .handshake_timeout(timeout.min(Duration::from_secs(5)));
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(timeout)
            .disable_redirects()
            .add_default_header(("user-agent", concat!("hookline-helpdesk/", env!("CARGO_PKG_VERSION"))))
            .finish();
        Self {
            client,
            signing,
            policy,
            resolver,
            timeout,
        }
    }

    /// Checks an IP-literal callback host, which awc connects to without
    /// asking the resolver. Names are left to the [`GuardedResolver`], and
    /// so are bracketed IPv6 hosts (awc hands those to it as they are).
    fn check_literal_host(&self, callback_url: &str) -> Result<(), Refusal> {
        let Ok(uri) = callback_url.parse::<awc::http::Uri>() else {
            return Ok(()); // awc will refuse to send it
        };
        match uri.host().map(str::parse::<IpAddr>) {
            Some(Ok(ip)) => self.policy.check_ip(None, ip),
            _ => Ok(()),
        }
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

    /// The Standard Webhooks envelope of an event job: `timestamp` is when
    /// it happened (the case's acceptance or decision), the same on every
    /// attempt, so a retry carries the very same body.
    pub fn event(case: &CaseRecord, event: &EventJob) -> Event {
        let data = match event.event_type {
            EventType::WebhookTest => serde_json::to_value(TestEvent {
                subscription_id: event.subscription_id.clone(),
                message: event.message.clone().unwrap_or_default(),
            }),
            EventType::EndpointDisabled | EventType::EndpointEnabled => {
                let about = event.about.clone().unwrap_or_default();
                serde_json::to_value(EndpointEvent {
                    subscription_id: about.subscription_id,
                    url: about.url.unwrap_or_default(),
                    reason: about.reason,
                    last_error: about.error,
                    at: case.due_at,
                })
            }
            EventType::MessageAttemptExhausted => {
                let about = event.about.clone().unwrap_or_default();
                serde_json::to_value(MessageExhaustedEvent {
                    subscription_id: about.subscription_id,
                    webhook_id: about.message.unwrap_or_default(),
                    event_type: about.event.unwrap_or(EventType::WebhookTest),
                    last_error: about.error,
                    at: case.due_at,
                })
            }
            _ => serde_json::to_value(DocumentEvent {
                document_id: case.document_id.clone(),
                agent_id: case.agent_id.clone(),
                document_status: case.status,
                document_url: case.document_url.clone(),
                id: case.request_id.clone(),
                sequence: event.sequence,
            }),
        };
        Event {
            event_type: event.event_type,
            timestamp: case.due_at,
            data: data.unwrap_or_default(),
        }
    }

    /// Makes one attempt of a case's callback: the tutorial's flat payload,
    /// signed with its tenant's secrets ([`crate::signing`]) in its dialect. Never panics and never takes longer
    /// than `DELIVERY_TIMEOUT` (plus the scheduling of this task).
    pub async fn send(&self, case: &CaseRecord) -> Attempt {
        match self.case_message(case) {
            Ok(message) => self.transmit(&message, &Sending::default()).await,
            Err(refused) => refused,
        }
    }

    /// The webhook of a case's callback, signed with the secrets of the
    /// case's tenant in the case's dialect (`Hookline-Dialect`), ready to send (an [`Attempt`] if it cannot be: its
    /// address refused, its payload not encodable, no secret of its tenant
    /// here: retried, as the setting may be fixed before the retries end).
    pub fn case_message<'a>(&'a self, case: &'a CaseRecord) -> Result<Message<'a>, Attempt> {
        let secrets = self
            .signing
            .secrets_for(&case.tenant)
            .map_err(|missing| Attempt::failed(format!("not sent: {missing}"), Duration::ZERO))?;
        // A callback carries the decision: its event's name, for the
        // dialects that send one.
        let event = EventType::of_decision(case.status).map_or(case.status.as_str(), EventType::as_str);
        self.message(case, &Self::payload(case), secrets, case.dialect, event)
    }

    /// An event for a subscription, ready to send: the envelope, signed with
    /// the subscription's own secret(s) in its dialect.
    pub fn event_message<'a>(
        &'a self,
        case: &'a CaseRecord,
        event: &EventJob,
        secrets: &'a SecretSet,
        dialect: Dialect,
    ) -> Result<Message<'a>, Attempt> {
        let name = event.event_type.as_str();
        self.message(case, &Self::event(case, event), Some(secrets), dialect, name)
    }

    fn message<'a>(
        &self,
        case: &'a CaseRecord,
        payload: &impl serde::Serialize,
        secrets: Option<&'a SecretSet>,
        dialect: Dialect,
        event: &'static str,
    ) -> Result<Message<'a>, Attempt> {
        let started = Instant::now();
        if let Err(refusal) = self.check_literal_host(&case.callback_url) {
            return Err(Attempt::Refused {
                reason: refusal.attempt_error(),
                took: started.elapsed(),
            });
        }
        let body = serde_json::to_vec(payload)
            .map_err(|e| Attempt::failed(format!("cannot encode the payload: {e}"), started.elapsed()))?;
        Ok(Message {
            url: &case.callback_url,
            webhook_id: &case.webhook_id,
            event,
            body: Bytes::from(body),
            secrets,
            dialect,
            traceparent: None,
        })
    }

    /// `DELIVERY_TIMEOUT`.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `message` once, as `how` says (by default: as it is, signed
    /// now, within `DELIVERY_TIMEOUT`), and says how it went.
    pub async fn transmit(&self, message: &Message<'_>, how: &Sending) -> Attempt {
        let attempt = self.send_once(message, how).await;
        self.screened(message.url, attempt)
    }

    /// Under the strict preset, a failure without an HTTP answer (refused,
    /// timed out, TLS, not HTTP, no such name) from anything but a public
    /// address reads [`UNANSWERED`], taking no time, as a refusal does:
    /// the attempt log is no port scanner. The server's log keeps the cause.
    fn screened(&self, url: &str, attempt: Attempt) -> Attempt {
        match attempt {
            Attempt::Failed {
                status: None, error, ..
            } if self.policy.is_strict() && !self.reaches_public(url) => {
                tracing::info!(%error, "attempt to a non-public callback address failed; the attempt log says only that it did not answer");
                Attempt::failed(UNANSWERED.to_owned(), Duration::ZERO)
            }
            attempt => attempt,
        }
    }

    /// Whether the URL's host is a public address, or a name that last
    /// resolved to public addresses only.
    fn reaches_public(&self, url: &str) -> bool {
        let uri = url.parse::<awc::http::Uri>().ok();
        uri.as_ref()
            .and_then(awc::http::Uri::host)
            .is_some_and(|host| self.resolver.is_public(host))
    }

    async fn send_once(&self, message: &Message<'_>, how: &Sending) -> Attempt {
        let timeout = how.timeout.map_or(self.timeout, |t| t.min(self.timeout));
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + timeout);
        let timed_out = |stage: &str| format!("timed out after {} {stage}", humantime::format_duration(timeout));
        let body = how.body.clone().unwrap_or_else(|| message.body.clone());
        let timestamp = how.timestamp.unwrap_or_else(|| Utc::now().timestamp());
        let mut request = self
            .client
            .post(message.url)
            .timeout(timeout)
            .insert_header(("content-type", "application/json"));
        if let Some(traceparent) = &message.traceparent {
            request = request.insert_header((TRACEPARENT, traceparent.as_str()));
        }
        let secrets = how.forged_with.as_ref().or(message.secrets);
        match message.dialect {
            // The hot path, as it always was.
            Dialect::Standard => {
                request = request
                    .insert_header((headers::WEBHOOK_ID, message.webhook_id))
                    .insert_header((headers::WEBHOOK_TIMESTAMP, timestamp.to_string()));
                if let Some(secrets) = secrets {
                    request = request.insert_header((
                        headers::WEBHOOK_SIGNATURE,
                        secrets.sign(message.webhook_id, timestamp, &body),
                    ));
                }
            }
            dialect => {
                for (name, value) in dialect_headers(dialect, secrets, message, timestamp, &body) {
                    request = request.insert_header((name, value));
                }
            }
        }
        let sending = match how.trickle {
            None => request.send_body(body),
            Some(over) => request.send_stream(trickled(body, over)),
        };
        let sent = match tokio::time::timeout_at(deadline, sending).await {
            Ok(sent) => sent,
            Err(_) => return Attempt::failed(timed_out("waiting for the response"), started.elapsed()),
        };
        match sent {
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
                // Read what the receiver said so the connection can be reused
                // (its content does not matter), within the same deadline.
                if tokio::time::timeout_at(deadline, response.body().limit(DRAIN_LIMIT))
                    .await
                    .is_err()
                {
                    return Attempt::Failed {
                        error: timed_out(&format!("reading the body of an HTTP {} answer", status.as_u16())),
                        status: Some(status.as_u16()),
                        retry_after: None,
                        took: started.elapsed(),
                    };
                }
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
            Err(SendRequestError::Timeout) => Attempt::failed(timed_out("waiting for the response"), started.elapsed()),
            Err(e) => match refused_by_policy(&e) {
                Some(reason) => Attempt::Refused {
                    reason,
                    took: started.elapsed(),
                },
                None => Attempt::failed(describe(&e), started.elapsed()),
            },
        }
    }
}

/// The policy's reason, when the [`GuardedResolver`] refused every address.
fn refused_by_policy(error: &SendRequestError) -> Option<String> {
    match error {
        SendRequestError::Connect(ConnectError::Resolver(e)) => refusal_in(e.as_ref()).map(Refusal::attempt_error),
        _ => None,
    }
}

/// The headers of `message` in a dialect other than Standard Webhooks:
/// signed with `secrets`, or all but the signature when there are none.
fn dialect_headers(
    dialect: Dialect,
    secrets: Option<&SecretSet>,
    message: &Message<'_>,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let delivery = Delivery {
        id: message.webhook_id,
        event: message.event,
        timestamp,
        body,
    };
    match secrets {
        Some(secrets) => dialect.sign_with(secrets, &delivery),
        None => {
            let mut headers = dialect.sign(&[], &delivery);
            headers.retain(|(name, _)| *name != dialect.signature_header());
            headers
        }
    }
}

/// The TLS failure behind a failed send. Most surface in the handshake
/// (connect); with TLS 1.3 a server judges our client certificate only after
/// we have finished our half, so its refusal arrives as we write the request
/// or read the answer.
fn tls_failure(error: &SendRequestError) -> Option<TlsFailure> {
    match error {
        SendRequestError::Connect(ConnectError::Io(e))
        | SendRequestError::Send(e)
        | SendRequestError::Response(ParseError::Io(e)) => tls::failure_in(e),
        _ => None,
    }
}

fn describe(error: &SendRequestError) -> String {
    if let Some(failure) = tls_failure(error) {
        return failure.to_string();
    }
    match error {
        SendRequestError::Timeout => "timed out".to_owned(),
        SendRequestError::Connect(e) => format!("cannot connect: {e}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliverer(deny: &[&str]) -> Deliverer {
        let deny = deny.iter().map(|rule| rule.parse().unwrap()).collect();
        Deliverer::new(
            CallbackSigning::default(),
            Duration::from_secs(2),
            4,
            Arc::new(CallbackPolicy::new(Vec::new(), deny)),
            tls::client_config(None, None).unwrap(),
        )
    }

    #[actix_web::test]
    async fn ip_literal_callbacks_are_checked_before_sending() {
        let deliverer = deliverer(&["127.0.0.0/8"]);
        let refusal = deliverer.check_literal_host("http://127.0.0.1:9/hook").unwrap_err();
        assert_eq!(refusal.to_string(), "127.0.0.1 matches CALLBACK_DENY 127.0.0.0/8");
        assert!(
            deliverer
                .check_literal_host("http://169.254.169.254/latest/meta-data")
                .is_err()
        );
        assert!(deliverer.check_literal_host("http://10.0.0.1/hook").is_ok());
        // Names and bracketed IPv6 hosts go through the guarded resolver.
        assert!(deliverer.check_literal_host("http://localhost:9/").is_ok());
        assert!(deliverer.check_literal_host("http://[fe80::1]/").is_ok());
    }

    #[actix_web::test]
    async fn the_client_resolves_names_through_the_policy() {
        let deliverer = deliverer(&["127.0.0.0/8", "::1/128"]);
        // https goes through the same guarded connector, under TLS.
        for url in [
            "http://localhost:9/hook",
            "http://[fe80::1]:9/hook",
            "https://localhost:9/hook",
            "https://[fe80::1]:9/hook",
        ] {
            let error = deliverer.client.post(url).send().await.unwrap_err();
            let reason = refused_by_policy(&error).unwrap_or_else(|| panic!("{url}: {error}"));
            assert!(
                reason.contains("CALLBACK_DENY") || reason.contains("link-local"),
                "{reason}"
            );
        }
        // A name that does not resolve is an ordinary (retryable) failure.
        let error = deliverer
            .client
            .post("http://no-such-host.invalid/hook")
            .send()
            .await
            .unwrap_err();
        assert_eq!(refused_by_policy(&error), None, "{error}");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
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
