//! The retry policy: what one delivery attempt means for its job (delivered,
//! retry after a delay, dead) and for its endpoint (up, down, a pause
//! asked for), as [`judge`] decides it. Pure: no I/O, no clock but the one
//! it is given, so every rule is tested here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hookline_contract::AttemptView;
use rand::Rng;

use crate::config::RetrySchedule;
use crate::delivery::Attempt;
use crate::store::{EndpointSignal, Finish, Health};

/// The retry policy: what an attempt means for the job, and for its endpoint.
///
/// * 2xx: delivered; the endpoint is up.
/// * 410 Gone: the receiver does not want this webhook any more: dead at
///   once (the endpoint answered, so it is up), and an event's
///   subscription is disabled ([`Finish::Gone`]).
/// * refused by the callback policy: nothing was sent, and retries would be
///   refused alike: dead at once.
/// * otherwise the next delay of `RETRY_SCHEDULE` (±10% jitter), stretched
///   to the receiver's `Retry-After` (429/503) up to `RETRY_AFTER_MAX`;
///   dead once the schedule is used up. A `Retry-After` also pauses the
///   whole endpoint for as long (the receiver asked for quiet, not for this
///   one job to wait) and is not counted against it by the circuit
///   breaker; any other failure is.
///
/// The pause is per endpoint (scheme, host and port), so it holds every
/// tenant's webhooks to that receiver: its capacity is one, whoever's paths
/// they go to. That is also why it is capped at `RETRY_AFTER_MAX` (5
/// minutes unless set): one path's `Retry-After: 3600` would otherwise
/// hold every other path and tenant on that host for an hour, and a longer
/// quiet is still had by answering 429 again. The operator lifts a pause
/// at once with `POST /endpoints/{endpoint}/resume`.
pub fn judge(
    attempt: &Attempt,
    policy: &RetryPolicy<'_>,
    attempt_in_round: u32,
    now: DateTime<Utc>,
) -> (AttemptView, Finish, EndpointSignal) {
    let signal = |health| EndpointSignal { health, pause: None };
    match attempt {
        Attempt::Delivered { status, took } => (
            AttemptView {
                at: now,
                status_code: Some(*status),
                error: None,
                duration_ms: millis(*took),
                chaos: None,
                note: None,
            },
            Finish::Delivered,
            signal(Health::Up),
        ),
        Attempt::Failed {
            error,
            status,
            retry_after,
            took,
        } => {
            let record = AttemptView {
                at: now,
                status_code: *status,
                error: Some(error.clone()),
                duration_ms: millis(*took),
                chaos: None,
                note: None,
            };
            let error = error.clone();
            if *status == Some(410) {
                let finish = Finish::Gone {
                    error: format!("{error}: the receiver asked to stop (Gone)"),
                };
                return (record, finish, signal(Health::Up));
            }
            let pause = retry_after.map(|asked| asked.min(policy.retry_after_max));
            let outcome = match policy.schedule.delay_after(attempt_in_round) {
                Some(delay) => Finish::Retry {
                    after: jittered(delay).max(pause.unwrap_or(Duration::ZERO)),
                    error,
                },
                None => Finish::Dead { error },
            };
            let endpoint = match pause {
                Some(pause) => EndpointSignal {
                    health: Health::Unknown,
                    pause: Some(pause),
                },
                None => signal(Health::Down),
            };
            (record, outcome, endpoint)
        }
        Attempt::Cancelled { reason } => (
            AttemptView {
                at: now,
                status_code: None,
                error: Some(reason.clone()),
                duration_ms: 0,
                chaos: None,
                note: None,
            },
            Finish::Dead { error: reason.clone() },
            signal(Health::Unknown),
        ),
        Attempt::Refused { reason, took } => {
            let error = reason.clone();
            (
                AttemptView {
                    at: now,
                    status_code: None,
                    error: Some(error.clone()),
                    duration_ms: millis(*took),
                    chaos: None,
                    note: None,
                },
                Finish::Dead { error },
                signal(Health::Unknown),
            )
        }
    }
}

/// What [`judge`] goes by: the retry delays, and the longest pause a
/// receiver may ask for.
pub struct RetryPolicy<'a> {
    pub schedule: &'a RetrySchedule,
    pub retry_after_max: Duration,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `delay` ±10%, so that retries of many jobs that failed together spread out.
fn jittered(delay: Duration) -> Duration {
    delay.mul_f64(rand::rng().random_range(0.9..=1.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_millis(1000)).as_millis();
            assert!((900..=1100).contains(&d), "{d}");
        }
    }

    const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);

    fn policy(schedule: &RetrySchedule) -> RetryPolicy<'_> {
        RetryPolicy {
            schedule,
            retry_after_max: RETRY_AFTER_MAX,
        }
    }

    fn failed(status: Option<u16>, retry_after: Option<Duration>) -> Attempt {
        Attempt::Failed {
            error: "nope".into(),
            status,
            retry_after,
            took: Duration::from_millis(3),
        }
    }

    #[test]
    fn failures_follow_the_schedule_and_then_die() {
        let schedule: RetrySchedule = "1s,1m".parse().unwrap();
        let now = Utc::now();
        let (record, first, signal) = judge(&failed(Some(500), None), &policy(&schedule), 1, now);
        assert_eq!(signal.health, Health::Down, "a 500 counts against the endpoint");
        assert_eq!(signal.pause, None);
        assert_eq!(record.status_code, Some(500));
        assert_eq!(record.duration_ms, 3);
        let Finish::Retry { after, .. } = first else {
            panic!("{first:?}")
        };
        assert!((900..=1100).contains(&after.as_millis()));
        let (_, second, _) = judge(&failed(None, None), &policy(&schedule), 2, now);
        assert!(matches!(second, Finish::Retry { after, .. } if after.as_secs() >= 54));
        let (_, third, _) = judge(&failed(None, None), &policy(&schedule), 3, now);
        assert!(matches!(third, Finish::Dead { .. }));
    }

    #[test]
    fn gone_stops_retrying_at_once() {
        let schedule: RetrySchedule = "1s,1m".parse().unwrap();
        let (_, outcome, signal) = judge(&failed(Some(410), None), &policy(&schedule), 1, Utc::now());
        assert!(matches!(outcome, Finish::Gone { .. }), "{outcome:?}");
        assert_eq!(
            signal.health,
            Health::Up,
            "a 410 is an answer, not a fault of the endpoint"
        );
    }

    #[test]
    fn a_callback_refused_by_the_policy_is_dead_at_once_with_the_reason() {
        let schedule: RetrySchedule = "1s,1m".parse().unwrap();
        let refused = Attempt::Refused {
            reason:
                "refused by the callback policy: localhost (one of its addresses) matches CALLBACK_DENY 127.0.0.0/8"
                    .into(),
            took: Duration::from_millis(1),
        };
        let (record, outcome, signal) = judge(&refused, &policy(&schedule), 1, Utc::now());
        assert_eq!(signal.health, Health::Unknown, "nothing was sent");
        let expected =
            "refused by the callback policy: localhost (one of its addresses) matches CALLBACK_DENY 127.0.0.0/8";
        assert_eq!(record.error.as_deref(), Some(expected));
        assert_eq!(record.status_code, None);
        assert_eq!(
            outcome,
            Finish::Dead {
                error: expected.to_owned()
            }
        );
    }

    #[test]
    fn retry_after_stretches_the_delay_within_bounds() {
        let schedule: RetrySchedule = "50ms".parse().unwrap();
        let now = Utc::now();
        let (_, asked, signal) = judge(
            &failed(Some(429), Some(Duration::from_secs(2))),
            &policy(&schedule),
            1,
            now,
        );
        assert!(matches!(asked, Finish::Retry { after, .. } if after == Duration::from_secs(2)));
        assert_eq!(
            signal,
            EndpointSignal {
                health: Health::Unknown,
                pause: Some(Duration::from_secs(2)),
            },
            "Retry-After pauses the whole endpoint and is not held against it"
        );
        let (_, greedy, _) = judge(
            &failed(Some(503), Some(Duration::from_secs(10_000_000))),
            &policy(&schedule),
            1,
            now,
        );
        assert!(matches!(greedy, Finish::Retry { after, .. } if after == RETRY_AFTER_MAX));
    }
}
