//! Chaos: the help desk as the provider receivers meet in the wild. A
//! [`ChaosProfile`] — the whole help desk's (`CHAOS`) or one case's (the
//! `Hookline-Chaos` header of `POST /document`) — draws faults for the first
//! attempt of each job, and [`deliver`] sends them around the real delivery:
//!
//! | fault | what is sent | a correct receiver |
//! |---|---|---|
//! | `delay` | nothing: the delivery waits 1–3 s more | — |
//! | `forged_signature` | before it: the message signed with a secret nobody knows, same `webhook-id` | 4xx, and still takes the real one |
//! | `stale_timestamp` | before it: correctly signed, timestamp 10 minutes old (never drawn in `github` and `shopify`: see below) | 4xx |
//! | `malformed_body` | before it: correctly signed, the JSON cut off halfway | 4xx (not 5xx) |
//! | `slow_send` | the real one, its body trickled in 8 pieces | 2xx |
//! | `duplicate` | after it got through: the very same request again | 2xx, nothing changes |
//! | `replay` | 0.5–1.5 s after it got through: the same message, fresh timestamp and signature | 2xx, nothing changes |
//! | `reorder` | (events) `document.received` held back until after the decision; drawn when the case is accepted (`routes/document.rs`), applied by `store/cases/schedule.lua` | 2xx, the decision stays |
//!
//! A case with a seed (`Hookline-Chaos-Seed`) draws its faults from it
//! ([`hookline_contract::chaos::seed`]): the same seed, the same faults.
//!
//! In a signature [dialect](hookline_contract::dialect) other than Standard
//! Webhooks every request is signed in that dialect: a forgery with a
//! random `whsec_…` nobody holds, as that provider would sign with it. A
//! stale timestamp only means something where the dialect signs one
//! (`standard`, `stripe`, `slack`): in `github` and `shopify` the fault is
//! not drawn at all ([`draw`], logged), rather than sent and judged, since
//! a correct receiver there has no time to refuse it by. In those two a
//! `replay` carries the same signature as the delivery (nothing it signs
//! changed), so it reads as a duplicate to a receiver.
//!
//! A fault never replaces the real delivery: the real attempt is made and
//! judged exactly as without chaos (retries, dead letters, breakers), and
//! only it is. Each fault becomes an entry of the attempt log (marked
//! `chaos`, with the receiver's answer, and an `error` when a correct
//! receiver would have answered otherwise), a count in
//! `hookline_helpdesk_chaos_faults_total{fault,answer}`, and a log line.
//!
//! The extra requests share a budget (half of what `JOB_LEASE` leaves after
//! `DELIVERY_TIMEOUT`) so that a job never outlives its lease because of
//! them; each is cut off at `DELIVERY_TIMEOUT` or when the budget runs out,
//! and what no longer fits is not sent.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hookline_contract::AttemptView;
use hookline_contract::chaos::seed::SplitMix64;
use hookline_contract::chaos::{ChaosProfile, Fault};
use hookline_contract::dialect::Dialect;
use hookline_contract::signature::{SecretSet, WebhookSecret};
use rand::Rng;
use tracing::{info, warn};

use crate::delivery::{Attempt, Deliverer, Message, Sending};
use crate::metrics::HelpdeskMetrics;

/// How old a stale timestamp is (Standard Webhooks receivers allow 5 minutes).
const STALE_BY: i64 = 10 * 60;
/// How long a slow send takes at most.
const TRICKLE: Duration = Duration::from_secs(2);

/// What the real attempt and the faults around it came to.
#[derive(Debug)]
pub struct Chaotic {
    /// The real attempt, judged as any other.
    pub attempt: Attempt,
    /// When the real attempt ended.
    pub at: DateTime<Utc>,
    /// Fault entries for the attempt log, before and after the real one.
    pub before: Vec<AttemptView>,
    pub after: Vec<AttemptView>,
}

/// The faults `profile` draws for one attempt signed in `dialect`
/// (`reorder` is not among them: it is drawn when the case is accepted;
/// nor `stale_timestamp` in a dialect that signs no timestamp), from
/// `seeded` if the case has a seed (see [`hookline_contract::chaos::seed`]),
/// else at random.
pub fn draw(profile: &ChaosProfile, dialect: Dialect, seeded: Option<SplitMix64>) -> Vec<Fault> {
    let mut faults = match seeded {
        Some(mut seeded) => profile.draw(|| seeded.uniform()),
        None => {
            let mut rng = rand::rng();
            profile.draw(|| rng.random::<f64>())
        }
    };
    faults.retain(|fault| *fault != Fault::Reorder);
    if !dialect.signs_timestamp() && faults.contains(&Fault::StaleTimestamp) {
        faults.retain(|fault| *fault != Fault::StaleTimestamp);
        info!(%dialect, "chaos: stale_timestamp not applicable: the dialect signs no timestamp; not sent");
    }
    faults
}

/// The budget of the extra requests of one attempt.
pub fn budget(lease: Duration, timeout: Duration) -> Duration {
    lease.saturating_sub(timeout) / 2
}

/// Sends `message` with `faults` around it (see the module's table).
/// `reordered`: the job is an event held back by `reorder`, to be noted.
pub async fn deliver(
    deliverer: &Deliverer,
    message: &Message<'_>,
    faults: &[Fault],
    reordered: bool,
    budget: Duration,
    metrics: &HelpdeskMetrics,
) -> Chaotic {
    let run = Run {
        deliverer,
        message,
        metrics,
        ends: Instant::now() + budget,
    };
    let mut before = Vec::new();
    if reordered {
        before.push(run.note(
            Fault::Reorder,
            "document.received held back until after the decision's event".to_owned(),
            None,
        ));
    }
    if faults.contains(&Fault::Delay) {
        let wanted = Duration::from_millis(rand::rng().random_range(1000..=3000));
        let held = wanted.min(run.left() / 2);
        tokio::time::sleep(held).await;
        before.push(run.note(
            Fault::Delay,
            format!("held back {} more", humantime::format_duration(round(held))),
            None,
        ));
    }
    let timestamp = Utc::now().timestamp();
    for fault in [Fault::ForgedSignature, Fault::StaleTimestamp, Fault::MalformedBody] {
        if !faults.contains(&fault) {
            continue;
        }
        let (how, note) = match fault {
            Fault::ForgedSignature => (
                Sending {
                    forged_with: Some(unknown_secret()),
                    ..Sending::default()
                },
                "signed with a secret the receiver never saw, same webhook-id",
            ),
            Fault::StaleTimestamp => (
                Sending {
                    timestamp: Some(timestamp - STALE_BY),
                    ..Sending::default()
                },
                "correctly signed, timestamp 10 minutes old",
            ),
            _ => (
                Sending {
                    body: Some(message.body.slice(..message.body.len() / 2)),
                    ..Sending::default()
                },
                "correctly signed, the JSON body cut off halfway",
            ),
        };
        if let Some(entry) = run.extra(fault, how, note).await {
            before.push(entry);
        }
    }

    let slow = faults.contains(&Fault::SlowSend);
    let trickle = TRICKLE.min(deliverer.timeout() / 4);
    let real = Sending {
        timestamp: Some(timestamp),
        trickle: slow.then_some(trickle),
        ..Sending::default()
    };
    let attempt = deliverer.transmit(message, &real).await;
    let at = Utc::now();
    let mut after = Vec::new();
    if slow {
        let answered = match &attempt {
            Attempt::Delivered { status, .. } => Some(*status),
            Attempt::Failed { status, .. } => *status,
            _ => None,
        };
        after.push(run.note(
            Fault::SlowSend,
            format!(
                "the delivery's body trickled in over {}",
                humantime::format_duration(trickle)
            ),
            answered,
        ));
    }
    // Duplicates and replays repeat a delivery that got through.
    if matches!(attempt, Attempt::Delivered { .. }) {
        if faults.contains(&Fault::Duplicate) {
            let again = Sending {
                timestamp: Some(timestamp),
                ..Sending::default()
            };
            let note = "the same request again (webhook-id, timestamp, signature, body)";
            after.extend(run.extra(Fault::Duplicate, again, note).await);
        }
        if faults.contains(&Fault::Replay) {
            let wait = Duration::from_millis(rand::rng().random_range(500..=1500)).min(run.left() / 2);
            tokio::time::sleep(wait).await;
            // Fresh: a later second than the delivery's, even if it is still the same one.
            let fresh = Sending {
                timestamp: Some(Utc::now().timestamp().max(timestamp + 1)),
                ..Sending::default()
            };
            let note = "the same message again a little later, fresh timestamp and signature";
            after.extend(run.extra(Fault::Replay, fresh, note).await);
        }
    }
    Chaotic {
        attempt,
        at,
        before,
        after,
    }
}

struct Run<'a> {
    deliverer: &'a Deliverer,
    message: &'a Message<'a>,
    metrics: &'a HelpdeskMetrics,
    ends: Instant,
}

impl Run<'_> {
    fn left(&self) -> Duration {
        self.ends.saturating_duration_since(Instant::now())
    }

    /// A fault that sends nothing of its own.
    fn note(&self, fault: Fault, note: String, status: Option<u16>) -> AttemptView {
        self.metrics.chaos_injected(fault, status);
        info!(fault = %fault, %note, "chaos");
        AttemptView {
            at: Utc::now(),
            status_code: status,
            error: None,
            duration_ms: 0,
            chaos: Some(fault),
            note: Some(note),
        }
    }

    /// Sends one extra request, if the budget still allows one, and judges
    /// the receiver's answer.
    async fn extra(&self, fault: Fault, mut how: Sending, note: &str) -> Option<AttemptView> {
        let timeout = self.deliverer.timeout().min(self.left());
        if timeout < Duration::from_millis(100) {
            info!(fault = %fault, "chaos: no time left in the budget; fault not sent");
            return None;
        }
        how.timeout = Some(timeout);
        let (status, took, failure) = match self.deliverer.transmit(self.message, &how).await {
            Attempt::Delivered { status, took } => (Some(status), took, None),
            Attempt::Failed {
                status, took, error, ..
            } => (status, took, Some(error)),
            Attempt::Refused { reason, took } => (None, took, Some(reason)),
            Attempt::Cancelled { reason } => (None, Duration::ZERO, Some(reason)),
        };
        self.metrics.chaos_injected(fault, status);
        let error = misjudged(fault, status, failure.as_deref());
        match &error {
            Some(error) => warn!(fault = %fault, %error, "chaos: the receiver failed the test"),
            None => info!(fault = %fault, status, "chaos: the receiver passed the test"),
        }
        Some(AttemptView {
            at: Utc::now(),
            status_code: status,
            error,
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            chaos: Some(fault),
            note: Some(format!(
                "{note}; a correct receiver answers {}",
                if fault.must_be_refused() { "4xx" } else { "2xx" }
            )),
        })
    }
}

/// How a receiver's answer to a fault differs from a correct receiver's,
/// if it does.
fn misjudged(fault: Fault, status: Option<u16>, failure: Option<&str>) -> Option<String> {
    match (status, fault.must_be_refused()) {
        (Some(400..=499), true) | (Some(200..=299), false) => None,
        (Some(status @ 200..=299), true) => Some(format!(
            "accepted it (HTTP {status}): a correct receiver refuses it with a 4xx"
        )),
        (Some(status), _) => Some(format!(
            "answered HTTP {status}; a correct receiver answers {}",
            if fault.must_be_refused() { "4xx" } else { "2xx" }
        )),
        (None, _) => Some(format!("no answer: {}", failure.unwrap_or("nothing came back"))),
    }
}

/// A secret nobody has: 32 random bytes.
fn unknown_secret() -> SecretSet {
    SecretSet::single(WebhookSecret::from_array(rand::random()))
}

fn round(duration: Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_judged_as_a_correct_receiver_would_answer() {
        assert_eq!(misjudged(Fault::ForgedSignature, Some(401), None), None);
        assert_eq!(misjudged(Fault::Duplicate, Some(200), None), None);
        assert_eq!(misjudged(Fault::MalformedBody, Some(400), None), None);
        let accepted = misjudged(Fault::ForgedSignature, Some(204), None).unwrap();
        assert!(accepted.starts_with("accepted it (HTTP 204)"), "{accepted}");
        let crashed = misjudged(Fault::MalformedBody, Some(500), None).unwrap();
        assert!(crashed.contains("HTTP 500"), "{crashed}");
        let refused = misjudged(Fault::Replay, Some(409), None).unwrap();
        assert!(refused.contains("answers 2xx"), "{refused}");
        let silent = misjudged(Fault::Duplicate, None, Some("timed out")).unwrap();
        assert_eq!(silent, "no answer: timed out");
    }

    #[test]
    fn reorder_is_never_drawn_per_attempt_nor_a_stale_timestamp_where_none_is_signed_and_the_budget_fits_the_lease() {
        let every = ChaosProfile::every_fault(1.0);
        let drawn = draw(&every, Dialect::Standard, None);
        assert_eq!(drawn.len(), Fault::ALL.len() - 1);
        assert!(!drawn.contains(&Fault::Reorder));
        for dialect in Dialect::ALL {
            let drawn = draw(&every, dialect, None);
            assert_eq!(
                drawn.contains(&Fault::StaleTimestamp),
                dialect.signs_timestamp(),
                "{dialect}"
            );
            assert!(drawn.contains(&Fault::ForgedSignature), "{dialect}");
        }
        assert_eq!(
            budget(Duration::from_secs(30), Duration::from_secs(15)),
            Duration::from_millis(7500)
        );
        assert_eq!(budget(Duration::from_secs(5), Duration::from_secs(15)), Duration::ZERO);
    }

    #[test]
    fn unknown_secrets_differ() {
        let (a, b) = (unknown_secret(), unknown_secret());
        assert_ne!(a.sign("msg_1", 1, b"{}"), b.sign("msg_1", 1, b"{}"));
    }
}
