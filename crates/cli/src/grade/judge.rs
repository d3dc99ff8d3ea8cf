//! The grading: the messages' attempts (timings, ids, signatures) in, one
//! verdict per [`Check`] out. Pure, so every rule is tested here with
//! made-up timings.
//!
//! Where a rule needs a number it is this:
//!
//! * backing off: message 1's last gap is compared with the shortest gap
//!   before it (not each with the one before, nor with the first alone: a
//!   sender may stretch any one gap that is not its own back-off — our help
//!   desk pauses a whole endpoint on a `Retry-After`, and holds retries
//!   while a failing endpoint's few slots are taken by slow attempts, as
//!   the hang and the slow body take them), and must be at least
//!   [`GROWTH`] times as long, so that jitter on a fixed interval does not
//!   read as growth;
//! * `Retry-After`: the next attempt may come [`RETRY_AFTER_SLACK`] early
//!   (clocks and rounding);
//! * a fresh timestamp: a retry more than [`FRESH_AFTER`] after the first
//!   attempt must carry a newer timestamp (timestamps are whole seconds);
//!   each attempt's own timestamp is judged by the signature check, within
//!   the dialect's tolerance of its arrival.

use std::time::Duration;

use hookline_contract::dialect::Dialect;
use serde::Serialize;

use super::script::{Ended, Message, Script};

/// How much longer message 1's last gap must be than the shortest before it.
pub const GROWTH: f64 = 1.25;
/// How early an attempt after a 429 may come.
pub const RETRY_AFTER_SLACK: Duration = Duration::from_millis(100);
/// A retry later than this after the first attempt must be signed anew.
pub const FRESH_AFTER: Duration = Duration::from_secs(2);

/// What a sender is graded on: the Standard Webhooks recommendations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    RetriesServerErrors,
    BacksOff,
    HonoursRetryAfter,
    StopsOnGone,
    NoRedirects,
    TimesOut,
    NotHeldBySlowBody,
    KeepsDeliveryId,
    SignsFreshly,
}

impl Check {
    pub const ALL: [Check; 9] = [
        Check::RetriesServerErrors,
        Check::BacksOff,
        Check::HonoursRetryAfter,
        Check::StopsOnGone,
        Check::NoRedirects,
        Check::TimesOut,
        Check::NotHeldBySlowBody,
        Check::KeepsDeliveryId,
        Check::SignsFreshly,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Check::RetriesServerErrors => "retries a 5xx",
            Check::BacksOff => "backs off more and more",
            Check::HonoursRetryAfter => "honours Retry-After",
            Check::StopsOnGone => "stops on 410",
            Check::NoRedirects => "does not follow redirects",
            Check::TimesOut => "times out",
            Check::NotHeldBySlowBody => "is not held by a slow body",
            Check::KeepsDeliveryId => "keeps the delivery id across retries",
            Check::SignsFreshly => "signs every attempt validly with a fresh timestamp",
        }
    }

    /// The script whose message the check watches; `None`: every message.
    fn script(self) -> Option<Script> {
        match self {
            Check::RetriesServerErrors | Check::BacksOff => Some(Script::ServerError),
            Check::HonoursRetryAfter => Some(Script::RateLimited),
            Check::StopsOnGone => Some(Script::Gone),
            Check::NoRedirects => Some(Script::Redirect),
            Check::TimesOut => Some(Script::Hang),
            Check::NotHeldBySlowBody => Some(Script::SlowBody),
            Check::KeepsDeliveryId | Check::SignsFreshly => None,
        }
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    Pass,
    Fail,
    /// What the check watches never came: counts as a failure.
    NotSeen,
    /// The check cannot be made here (no `--secret`, no delivery id): does
    /// not count against the sender.
    NotGraded,
}

impl Mark {
    pub fn label(self) -> &'static str {
        match self {
            Mark::Pass => "pass",
            Mark::Fail => "FAIL",
            Mark::NotSeen => "not seen",
            Mark::NotGraded => "not graded",
        }
    }

    /// Whether it keeps the sender from full marks.
    pub fn lost(self) -> bool {
        matches!(self, Mark::Fail | Mark::NotSeen)
    }
}

/// One check's verdict and the sentence that says why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub check: Check,
    pub name: &'static str,
    pub result: Mark,
    pub why: String,
}

/// What the grade goes by besides the attempts.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub dialect: Dialect,
    /// Signatures were verified (`--secret`).
    pub verifying: bool,
    pub retry_after: Duration,
    pub hang: Duration,
}

/// Grades the messages (in the order they came, one per script).
pub fn grade(messages: &[Message], rules: &Rules) -> Vec<Verdict> {
    Check::ALL
        .into_iter()
        .map(|check| {
            let (result, why) = match check.script() {
                Some(script) => match messages.iter().find(|m| m.script == script) {
                    Some(message) => judge(check, message, rules),
                    None => (
                        Mark::NotSeen,
                        format!(
                            "the sender sent only {} of {} messages",
                            messages.len(),
                            Script::ALL.len()
                        ),
                    ),
                },
                None => judge_all(check, messages, rules),
            };
            Verdict {
                check,
                name: check.name(),
                result,
                why,
            }
        })
        .collect()
}

fn secs(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

/// The gaps between a message's attempts at its own URL.
fn gaps(message: &Message) -> Vec<Duration> {
    let at: Vec<Duration> = message.own_attempts().map(|a| a.at).collect();
    at.windows(2).map(|w| w[1].saturating_sub(w[0])).collect()
}

fn judge(check: Check, message: &Message, rules: &Rules) -> (Mark, String) {
    let n = message.script.number();
    let attempts = message.own_attempts().count();
    let gaps = gaps(message);
    match check {
        Check::RetriesServerErrors if attempts >= 2 => (
            Mark::Pass,
            format!("message {n} came again {} after the 500", secs(gaps[0])),
        ),
        Check::RetriesServerErrors => (
            Mark::Fail,
            format!("message {n} got a 500 and never came again: a 5xx is worth retrying"),
        ),
        Check::BacksOff => match gaps.split_last() {
            Some((last, before)) if !before.is_empty() => {
                let shown = gaps.iter().map(|g| secs(*g)).collect::<Vec<_>>().join(", ");
                let shortest = before.iter().min().copied().unwrap_or_default();
                if last.as_secs_f64() >= shortest.as_secs_f64() * GROWTH {
                    (Mark::Pass, format!("message {n}'s gaps grew: {shown}"))
                } else {
                    (
                        Mark::Fail,
                        format!(
                            "message {n}'s gaps did not grow ({shown}): retries must back off, or they pile onto a receiver that is down"
                        ),
                    )
                }
            }
            _ => (
                Mark::NotSeen,
                format!("message {n} came {attempts} time(s): three attempts are needed to see two gaps"),
            ),
        },
        Check::HonoursRetryAfter => match gaps.first() {
            Some(gap) if *gap + RETRY_AFTER_SLACK >= rules.retry_after => (
                Mark::Pass,
                format!(
                    "message {n} came again {} after a 429 that asked for {}",
                    secs(*gap),
                    secs(rules.retry_after)
                ),
            ),
            Some(gap) => (
                Mark::Fail,
                format!(
                    "message {n} came again {} after a 429 that asked for {}",
                    secs(*gap),
                    secs(rules.retry_after)
                ),
            ),
            None => (
                Mark::Fail,
                format!("message {n} got a 429 and never came again: a 429 asks for later, not never"),
            ),
        },
        Check::StopsOnGone => match message.attempts.get(1) {
            None => (Mark::Pass, format!("message {n} never came again after the 410")),
            Some(again) => (
                Mark::Fail,
                format!(
                    "message {n} came {} times; again {} after the 410 (Gone: the receiver wants no more)",
                    message.attempts.len(),
                    secs(again.at.saturating_sub(message.attempts[0].at))
                ),
            ),
        },
        Check::NoRedirects => match message.attempts.iter().find(|a| a.followed_redirect) {
            None => (Mark::Pass, format!("message {n}'s 307 was not followed")),
            Some(_) => (
                Mark::Fail,
                format!(
                    "message {n} followed the 307 to {}: a webhook goes only to the registered URL",
                    super::ELSEWHERE
                ),
            ),
        },
        Check::TimesOut => match message.attempts.first().and_then(|a| a.ended) {
            Some(Ended::SenderHungUp { after }) if after < rules.hang => (
                Mark::Pass,
                format!("message {n}'s sender hung up after {}", secs(after)),
            ),
            Some(_) => (
                Mark::Fail,
                format!(
                    "message {n}'s sender waited out the whole {} hang: it must give up on a silent receiver (after about 30 s)",
                    secs(rules.hang)
                ),
            ),
            None => (
                Mark::Fail,
                format!("message {n}'s sender was still waiting when the grade ended"),
            ),
        },
        Check::NotHeldBySlowBody => match message.attempts.first().and_then(|a| a.ended) {
            Some(Ended::SenderHungUp { after }) if after < rules.hang => (
                Mark::Pass,
                format!(
                    "message {n}'s connection was closed {} into a {} trickle",
                    secs(after),
                    secs(rules.hang)
                ),
            ),
            Some(_) => (
                Mark::Fail,
                format!(
                    "message {n}'s sender read the trickled body for the whole {}: its deadline must cover the body too",
                    secs(rules.hang)
                ),
            ),
            None => (
                Mark::Fail,
                format!("message {n}'s body was still trickling when the grade ended"),
            ),
        },
        Check::KeepsDeliveryId | Check::SignsFreshly => judge_all(check, std::slice::from_ref(message), rules),
    }
}

/// The checks over every attempt of every message.
fn judge_all(check: Check, messages: &[Message], rules: &Rules) -> (Mark, String) {
    if messages.is_empty() {
        return (
            Mark::NotSeen,
            format!("the sender sent only 0 of {} messages", Script::ALL.len()),
        );
    }
    let attempt_name = |m: &Message, i: usize| format!("message {}'s attempt {}", m.script.number(), i + 1);
    match check {
        Check::KeepsDeliveryId => {
            let label = rules.dialect.id_header().unwrap_or("body's id");
            let every = messages.iter().flat_map(|m| &m.attempts);
            if rules.dialect.id_header().is_none() && every.clone().all(|a| a.delivery_id.is_none()) {
                return (
                    Mark::NotGraded,
                    format!(
                        "the {} dialect sends no delivery id header, and no body had an id",
                        rules.dialect
                    ),
                );
            }
            let retried: Vec<&Message> = messages.iter().filter(|m| m.attempts.len() >= 2).collect();
            if retried.is_empty() {
                return (Mark::NotSeen, "no message was attempted twice".to_owned());
            }
            for m in &retried {
                let first = &m.attempts[0].delivery_id;
                for (i, a) in m.attempts.iter().enumerate() {
                    match (&a.delivery_id, first) {
                        (None, _) => return (Mark::Fail, format!("{} carried no {label}", attempt_name(m, i))),
                        (Some(id), Some(first)) if id != first => {
                            return (
                                Mark::Fail,
                                format!(
                                    "{} changed the {label} from {first} to {id}: a receiver tells retries apart from new messages by it",
                                    attempt_name(m, i)
                                ),
                            );
                        }
                        _ => {}
                    }
                }
            }
            (
                Mark::Pass,
                format!("{} retried message(s) kept their {label}", retried.len()),
            )
        }
        Check::SignsFreshly => {
            if !rules.verifying {
                return (Mark::NotGraded, "no --secret: nothing was verified".to_owned());
            }
            let mut count = 0;
            for m in messages {
                let first = &m.attempts[0];
                for (i, a) in m.attempts.iter().enumerate() {
                    count += 1;
                    if let Some(Err(why)) = &a.signature {
                        return (Mark::Fail, format!("{} did not verify: {why}", attempt_name(m, i)));
                    }
                    let later = a.at.saturating_sub(first.at);
                    if rules.dialect.signs_timestamp() && i > 0 && later > FRESH_AFTER && a.timestamp <= first.timestamp
                    {
                        return (
                            Mark::Fail,
                            format!(
                                "{}, {} after the first, carried no newer timestamp than the first: sign every attempt anew",
                                attempt_name(m, i),
                                secs(later)
                            ),
                        );
                    }
                }
            }
            (
                Mark::Pass,
                format!("all {count} attempts verified in the {} dialect", rules.dialect),
            )
        }
        other => (Mark::NotGraded, format!("{} watches one message", other.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::script::{Answer, Attempt};
    use super::*;

    const RULES: Rules = Rules {
        dialect: Dialect::Standard,
        verifying: true,
        retry_after: Duration::from_secs(3),
        hang: Duration::from_secs(35),
    };

    /// A message whose attempts came at `at` seconds, id and timestamp
    /// kept, each signed afresh at its arrival.
    fn message(script: Script, at: &[f64]) -> Message {
        Message {
            script,
            attempts: at
                .iter()
                .map(|secs| Attempt {
                    at: Duration::from_secs_f64(*secs),
                    at_unix: 1_700_000_000 + *secs as i64,
                    followed_redirect: false,
                    delivery_id: Some(format!("msg_{}", script.number())),
                    signature: Some(Ok(())),
                    timestamp: Some(1_700_000_000 + *secs as i64),
                    answer: Answer::Ok,
                    ended: None,
                })
                .collect(),
        }
    }

    fn hung_up(mut message: Message, after: u64) -> Message {
        message.attempts[0].ended = Some(Ended::SenderHungUp {
            after: Duration::from_secs(after),
        });
        message
    }

    /// What a good sender leaves behind.
    fn good() -> Vec<Message> {
        vec![
            message(Script::ServerError, &[0.0, 1.0, 3.0, 7.0]),
            message(Script::RateLimited, &[0.0, 3.05]),
            message(Script::Gone, &[0.0]),
            message(Script::Redirect, &[0.0, 1.0]),
            hung_up(message(Script::Hang, &[0.0, 31.0]), 30),
            hung_up(message(Script::SlowBody, &[0.0, 31.0]), 30),
        ]
    }

    fn result(verdicts: &[Verdict], check: Check) -> Mark {
        verdicts.iter().find(|v| v.check == check).map(|v| v.result).unwrap()
    }

    #[test]
    fn a_good_sender_gets_full_marks() {
        let verdicts = grade(&good(), &RULES);
        assert!(verdicts.iter().all(|v| v.result == Mark::Pass), "{verdicts:#?}");
    }

    #[test]
    fn backing_off_compares_the_last_gap_with_the_shortest_before_it() {
        // One gap stretched by a pause (3 s) still grows overall.
        let stretched = message(Script::ServerError, &[0.0, 3.0, 5.0, 9.0]);
        assert_eq!(judge(Check::BacksOff, &stretched, &RULES).0, Mark::Pass);
        // The first retry held 18 s behind slow attempts, then 5 s and 10 s.
        let queued = message(Script::ServerError, &[0.0, 18.1, 23.2, 32.7]);
        assert_eq!(judge(Check::BacksOff, &queued, &RULES).0, Mark::Pass);
        // A fixed interval with jitter is no back-off.
        let fixed = message(Script::ServerError, &[0.0, 1.0, 2.02, 3.08]);
        assert_eq!(judge(Check::BacksOff, &fixed, &RULES).0, Mark::Fail);
        let twice = message(Script::ServerError, &[0.0, 1.0]);
        assert_eq!(judge(Check::BacksOff, &twice, &RULES).0, Mark::NotSeen);
        let once = message(Script::ServerError, &[0.0]);
        assert_eq!(judge(Check::RetriesServerErrors, &once, &RULES).0, Mark::Fail);
    }

    #[test]
    fn retry_after_allows_a_little_slack_and_no_more() {
        let just = message(Script::RateLimited, &[0.0, 2.95]);
        assert_eq!(judge(Check::HonoursRetryAfter, &just, &RULES).0, Mark::Pass);
        let early = message(Script::RateLimited, &[0.0, 2.8]);
        let (mark, why) = judge(Check::HonoursRetryAfter, &early, &RULES);
        assert_eq!(mark, Mark::Fail);
        assert!(why.contains("2.8 s") && why.contains("3.0 s"), "{why}");
    }

    #[test]
    fn a_sender_that_waits_out_the_hang_or_the_trickle_fails_and_one_that_follows_or_repeats_fails() {
        let mut messages = good();
        messages[4].attempts[0].ended = Some(Ended::RanOut);
        messages[5].attempts[0].ended = Some(Ended::RanOut);
        messages[2] = message(Script::Gone, &[0.0, 1.0]);
        messages[3].attempts[1].followed_redirect = true;
        let verdicts = grade(&messages, &RULES);
        for check in [
            Check::TimesOut,
            Check::NotHeldBySlowBody,
            Check::StopsOnGone,
            Check::NoRedirects,
        ] {
            assert_eq!(result(&verdicts, check), Mark::Fail, "{check:?}");
        }
        assert_eq!(result(&verdicts, Check::BacksOff), Mark::Pass);
    }

    #[test]
    fn ids_and_signatures_are_judged_on_every_attempt() {
        let mut messages = good();
        messages[0].attempts[2].delivery_id = Some("msg_other".into());
        // A retry 7 s later with the first attempt's timestamp: a replay of it.
        messages[0].attempts[3].timestamp = messages[0].attempts[0].timestamp;
        let verdicts = grade(&messages, &RULES);
        assert_eq!(result(&verdicts, Check::KeepsDeliveryId), Mark::Fail);
        assert_eq!(result(&verdicts, Check::SignsFreshly), Mark::Fail);
        // A quick retry may keep its second-resolution timestamp.
        let mut quick = good();
        quick[3].attempts[1].timestamp = quick[3].attempts[0].timestamp;
        assert_eq!(result(&grade(&quick, &RULES), Check::SignsFreshly), Mark::Pass);
        let mut forged = good();
        forged[1].attempts[1].signature = Some(Err("no signature matches".into()));
        assert_eq!(result(&grade(&forged, &RULES), Check::SignsFreshly), Mark::Fail);
        let unverified = Rules {
            verifying: false,
            ..RULES
        };
        assert_eq!(
            result(&grade(&good(), &unverified), Check::SignsFreshly),
            Mark::NotGraded
        );
    }

    #[test]
    fn messages_that_never_came_are_not_seen_and_say_how_many_did() {
        let mut messages = good();
        messages.truncate(4);
        let verdicts = grade(&messages, &RULES);
        let hang = verdicts.iter().find(|v| v.check == Check::TimesOut).unwrap();
        assert_eq!(hang.result, Mark::NotSeen);
        assert_eq!(hang.why, "the sender sent only 4 of 6 messages");
        assert!(hang.result.lost());
        assert!(!Mark::NotGraded.lost());
    }
}
