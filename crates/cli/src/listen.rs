//! `hookline listen`: a local webhook receiver for trying a sender, like
//! `stripe listen`.
//!
//! Every POST, on any path, is verified (when a secret is given) in the
//! [`Signer`]'s dialect — Standard Webhooks with the contract crate's
//! [`SecretSet`](hookline_contract::signature::SecretSet), or Stripe's,
//! GitHub's, Shopify's or Slack's — read as JSON, noted as a duplicate (the
//! same delivery id and signature: `webhook-id` and timestamp in Standard
//! Webhooks) or a replay (the same delivery id, signed anew) of a message
//! acknowledged before (a dialect without a delivery id header is known by
//! the body's `id`, as Stripe's events are), held for a
//! random delay, and answered: 401 when verification fails, 400 when the
//! body is not JSON, otherwise 500 with probability `fail_rate` (to
//! exercise the sender's retries), otherwise 200. One line per request is
//! printed; the totals when the server stops.
//!
//! The HTTP server under it is the test kit's ([`hookline_testkit::serve`]),
//! the one the tests' and the bench's receivers run on; what is verified,
//! counted, printed and answered is decided here.

use std::collections::HashMap;
use std::net::TcpListener;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::dev::Server;
use chrono::Utc;
use hookline_contract::dialect::Dialect;
use hookline_contract::headers;

use crate::check::Signer;
use hookline_testkit::serve::{Arrival, Served, Serving, serve};
use serde::Serialize;

/// How the receiver behaves.
#[derive(Debug, Clone)]
pub struct ListenSettings {
    /// How to verify (`--secret`, `--dialect`); `None`: nothing is verified.
    pub signer: Option<Signer>,
    /// The dialect deliveries are told apart in when nothing is verified.
    pub dialect: Dialect,
    /// Probability (0–1) of a 500 to a verified request.
    pub fail_rate: f64,
    /// Milliseconds to wait before answering, drawn uniformly.
    pub delay: DelayRange,
    /// Print JSON lines instead of text.
    pub json: bool,
    /// Colour the text lines.
    pub colour: bool,
}

/// `A-B` milliseconds (or a single `A`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayRange(pub RangeInclusive<u64>);

/// Why a `--delay` is not a [`DelayRange`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadDelay {
    #[error("{0:?} is not a whole number of milliseconds")]
    NotANumber(String),
    #[error("the delay range {0}-{1} is backwards")]
    Backwards(u64, u64),
}

impl FromStr for DelayRange {
    type Err = BadDelay;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let number = |part: &str| {
            part.trim()
                .parse::<u64>()
                .map_err(|_| BadDelay::NotANumber(part.to_owned()))
        };
        let (low, high) = match s.split_once('-') {
            Some((low, high)) => (number(low)?, number(high)?),
            None => (number(s)?, number(s)?),
        };
        if low > high {
            return Err(BadDelay::Backwards(low, high));
        }
        Ok(Self(low..=high))
    }
}

/// The totals printed on Ctrl-C.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub received: u64,
    pub verified: u64,
    pub refused: u64,
    pub duplicates: u64,
    pub replays: u64,
    pub failed_on_purpose: u64,
}

/// One received request, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub time: String,
    pub path: String,
    pub webhook_id: Option<String>,
    /// The envelope's `type`, else the body's `documentStatus`.
    pub kind: Option<String>,
    /// `None` when no secret was given.
    pub verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_because: Option<String>,
    /// The very same request as one acknowledged before.
    pub duplicate: bool,
    /// A message acknowledged before, re-sent with a new timestamp.
    pub replay: bool,
    pub status: u16,
}

impl Line {
    fn text(&self, colour: bool) -> String {
        let paint = |text: &str, code: &str| crate::paint(text, code, colour);
        let verdict = match (self.verified, &self.refused_because) {
            (Some(true), Some(why)) => paint(&format!("signature verified, refused: {why}"), "31"),
            (_, Some(why)) => paint(&format!("refused: {why}"), "31"),
            (None, None) => paint("unverified (no secret)", "33"),
            (Some(_), None) => paint("verified", "32"),
        };
        let mut line = format!(
            "{}  {}  {}  {}  {}  {verdict}",
            self.time,
            self.status,
            self.path,
            self.webhook_id.as_deref().unwrap_or("-"),
            self.kind.as_deref().unwrap_or("-"),
        );
        if self.duplicate {
            line.push_str(&format!("  {}", paint("duplicate", "35")));
        }
        if self.replay {
            line.push_str(&format!("  {}", paint("replay", "35")));
        }
        if self.status == 500 {
            line.push_str(&format!("  {}", paint("failed on purpose", "33")));
        }
        line
    }
}

#[derive(Debug, Default)]
struct State {
    /// Acknowledged webhook-ids, with the timestamp they first came with.
    seen: HashMap<String, String>,
    totals: Totals,
}

/// A running receiver.
pub struct Listener {
    pub url: String,
    server: Server,
    state: Arc<Mutex<State>>,
}

impl Listener {
    /// Binds `listener` and prepares the server (it runs once awaited).
    pub fn build(listener: TcpListener, settings: ListenSettings) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::new((settings, state.clone()));
        let Served { url, server } = serve(Serving::on(listener), move |arrival| {
            let shared = shared.clone();
            async move { receive(arrival, &shared.0, &shared.1).await }
        })?;
        Ok(Self { url, server, state })
    }

    /// Runs until Ctrl-C, then returns the totals.
    pub async fn run_until_ctrl_c(self) -> std::io::Result<Totals> {
        self.run_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    }

    /// Runs until `stop` completes, then returns the totals.
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()>) -> std::io::Result<Totals> {
        let handle = self.server.handle();
        let server = actix_web::rt::spawn(self.server);
        stop.await;
        handle.stop(true).await;
        let _ = server.await;
        Ok(self.state.lock().map(|s| s.totals.clone()).unwrap_or_default())
    }
}

async fn receive(arrival: Arrival, settings: &ListenSettings, state: &Mutex<State>) -> HttpResponse {
    let Arrival { request, body, .. } = arrival;
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let dialect = settings.signer.as_ref().map_or(settings.dialect, Signer::dialect);
    // The delivery's id, and what a replay changes: the timestamp in
    // Standard Webhooks, the signature (which covers it) in the others.
    let webhook_id = match dialect.id_header() {
        Some(name) => header(name).map(str::to_owned),
        None => body_id(&body),
    };
    let timestamp = match dialect {
        Dialect::Standard => header(headers::WEBHOOK_TIMESTAMP),
        other => header(other.signature_header()),
    }
    .unwrap_or_default()
    .to_owned();
    let now = Utc::now().timestamp();
    let verdict = settings
        .signer
        .as_ref()
        .map(|signer| signer.verify(|name| header(name).map(str::to_owned), &body, now));
    // A body that is not JSON is refused, signed or not: a receiver that
    // cannot read it must not acknowledge it.
    let malformed = serde_json::from_slice::<serde_json::Value>(&body)
        .err()
        .map(|e| format!("the body is not JSON ({e})"));
    let verified = verdict.as_ref().map(Result::is_ok);
    let refused_because = match verdict {
        Some(Err(why)) => Some(why),
        _ => malformed.clone(),
    };
    let fail = refused_because.is_none() && settings.fail_rate > 0.0 && rand::random_bool(settings.fail_rate.min(1.0));
    let status = match (verified, &malformed) {
        (Some(false), _) => 401,
        (_, Some(_)) => 400,
        _ if fail => 500,
        _ => 200,
    };
    let repeat = {
        let Ok(mut state) = state.lock() else {
            return HttpResponse::InternalServerError().finish();
        };
        // Only what was acknowledged counts as seen: a retry after a 500
        // is the sender doing its job, not a duplicate.
        let repeat = match (&webhook_id, status) {
            (Some(id), 200) => match state.seen.get(id) {
                Some(first) if *first == timestamp => Some(Repeat::Duplicate),
                Some(_) => Some(Repeat::Replay),
                None => {
                    state.seen.insert(id.clone(), timestamp.clone());
                    None
                }
            },
            _ => None,
        };
        let totals = &mut state.totals;
        totals.received += 1;
        totals.verified += u64::from(verified == Some(true));
        totals.refused += u64::from(status == 401 || status == 400);
        totals.duplicates += u64::from(repeat == Some(Repeat::Duplicate));
        totals.replays += u64::from(repeat == Some(Repeat::Replay));
        totals.failed_on_purpose += u64::from(fail);
        repeat
    };
    let line = Line {
        time: Utc::now().format("%H:%M:%S%.3f").to_string(),
        path: request.path().to_owned(),
        webhook_id,
        kind: kind_of(&body),
        verified,
        refused_because,
        duplicate: repeat == Some(Repeat::Duplicate),
        replay: repeat == Some(Repeat::Replay),
        status,
    };
    if settings.json {
        println!("{}", serde_json::to_string(&line).unwrap_or_default());
    } else {
        println!("{}", line.text(settings.colour));
    }
    let range = settings.delay.0.clone();
    if *range.end() > 0 {
        let millis = rand::random_range(range);
        actix_web::rt::time::sleep(Duration::from_millis(millis)).await;
    }
    match status {
        401 => HttpResponse::Unauthorized().json(serde_json::json!({"message": line.refused_because})),
        400 => HttpResponse::BadRequest().json(serde_json::json!({"message": line.refused_because})),
        500 => {
            HttpResponse::InternalServerError().json(serde_json::json!({"message": "failed on purpose (--fail-rate)"}))
        }
        _ => HttpResponse::Ok().json(serde_json::json!({"received": true, "duplicate": repeat.is_some()})),
    }
}

/// A message acknowledged before, again: the very same request
/// (`webhook-id` and timestamp), or the message re-sent with a new timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    Duplicate,
    Replay,
}

/// A JSON body's top-level `id` (a Stripe event's `evt_…`).
pub(crate) fn body_id(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("id").and_then(|v| v.as_str()).map(str::to_owned)
}

/// An envelope's `type`, else a flat payload's `documentStatus`.
fn kind_of(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    if value.get("data").is_some() {
        field("type")
    } else {
        field("documentStatus")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_read_as_a_range_or_one_number() {
        assert_eq!("100-500".parse(), Ok(DelayRange(100..=500)));
        assert_eq!("0".parse(), Ok(DelayRange(0..=0)));
        assert!("500-100".parse::<DelayRange>().is_err());
        assert!("soon".parse::<DelayRange>().is_err());
    }

    #[test]
    fn the_kind_is_the_event_type_or_the_document_status() {
        assert_eq!(
            kind_of(br#"{"type":"document.accepted","data":{}}"#).as_deref(),
            Some("document.accepted")
        );
        assert_eq!(
            kind_of(br#"{"documentStatus":"DECLINED"}"#).as_deref(),
            Some("DECLINED")
        );
        assert_eq!(kind_of(b"not json"), None);
    }
}
