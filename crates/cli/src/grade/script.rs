//! The grader's six scripts and its record of what came: which message got
//! which script, what each attempt of it was answered, and how the attempts
//! held open (the hang, the slow body) ended. Pure: the HTTP side
//! ([`super::server`]) feeds it arrivals, the judge reads it.

use std::time::Duration;

use serde::{Serialize, Serializer};

/// A script: how the grader answers the attempts of one message. The
/// first distinct message to arrive gets the first, and so on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Script {
    /// 500, 500, 500, then 200.
    ServerError,
    /// 429 with `Retry-After`, then 200.
    RateLimited,
    /// 410 Gone, every time.
    Gone,
    /// 307 to [`super::ELSEWHERE`], then 200.
    Redirect,
    /// Held open for `--hang`, then 200; the next attempt 200.
    Hang,
    /// 200 at once, its body trickled over `--hang`; the next attempt 200.
    SlowBody,
}

impl Script {
    pub const ALL: [Script; 6] = [
        Script::ServerError,
        Script::RateLimited,
        Script::Gone,
        Script::Redirect,
        Script::Hang,
        Script::SlowBody,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Script::ServerError => "server_error",
            Script::RateLimited => "rate_limited",
            Script::Gone => "gone",
            Script::Redirect => "redirect",
            Script::Hang => "hang",
            Script::SlowBody => "slow_body",
        }
    }

    /// Its place, from 1: the message it is given.
    pub fn number(self) -> usize {
        Script::ALL.iter().position(|s| *s == self).map_or(0, |i| i + 1)
    }

    /// What the attempt after `before` earlier ones (at the message's own
    /// URL) is answered.
    fn answer(self, before: usize) -> Answer {
        match (self, before) {
            (Script::ServerError, 0..=2) => Answer::ServerError,
            (Script::RateLimited, 0) => Answer::RateLimited,
            (Script::Gone, _) => Answer::Gone,
            (Script::Redirect, 0) => Answer::Redirect,
            (Script::Hang, 0) => Answer::Hang,
            (Script::SlowBody, 0) => Answer::SlowBody,
            _ => Answer::Ok,
        }
    }
}

/// What one attempt is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// 200 at once.
    Ok,
    /// 500.
    ServerError,
    /// 429 with `Retry-After`.
    RateLimited,
    /// 410.
    Gone,
    /// 307 with a `Location` elsewhere on the grader.
    Redirect,
    /// Nothing for `--hang`, then 200.
    Hang,
    /// 200 at once, the body trickled over `--hang`.
    SlowBody,
}

impl Answer {
    /// The script's word for it.
    pub fn label(self) -> &'static str {
        match self {
            Answer::Ok => "ok",
            Answer::ServerError => "server error",
            Answer::RateLimited => "rate limited",
            Answer::Gone => "gone",
            Answer::Redirect => "redirect",
            Answer::Hang => "hang",
            Answer::SlowBody => "slow body",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Answer::Ok | Answer::Hang | Answer::SlowBody => 200,
            Answer::ServerError => 500,
            Answer::RateLimited => 429,
            Answer::Gone => 410,
            Answer::Redirect => 307,
        }
    }
}

/// How an attempt held open (the hang, the slow body) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum Ended {
    /// The sender closed the connection this long after the attempt came.
    SenderHungUp {
        #[serde(rename = "after_ms", serialize_with = "millis")]
        after: Duration,
    },
    /// The grader held on (or trickled) for the whole `--hang`: the sender
    /// waited it out.
    RanOut,
}

/// One request of a message, as it came and as it was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// When it came, from the start of the grade.
    #[serde(rename = "at_ms", serialize_with = "millis")]
    pub at: Duration,
    /// When it came, unix seconds: what its signature's timestamp is judged by.
    pub at_unix: i64,
    /// Sent to the redirect's `Location`: the sender followed the 307.
    pub followed_redirect: bool,
    /// The dialect's delivery id header, else the body's `id`.
    pub delivery_id: Option<String>,
    /// `None`: nothing verified (no `--secret`); why it failed otherwise.
    /// In JSON: `null`, `"valid"`, or the reason.
    #[serde(serialize_with = "signature")]
    pub signature: Option<Result<(), String>>,
    /// The signed timestamp, in a dialect that signs one.
    pub timestamp: Option<i64>,
    pub answer: Answer,
    /// How a held-open attempt ended; `None` while it is open, or when it
    /// was answered at once.
    pub ended: Option<Ended>,
}

/// What an attempt brought, before the grader answers it.
#[derive(Debug, Clone)]
pub struct Arrived {
    pub at: Duration,
    pub at_unix: i64,
    pub followed_redirect: bool,
    pub delivery_id: Option<String>,
    pub signature: Option<Result<(), String>>,
    pub timestamp: Option<i64>,
}

/// One message (one body) and its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub script: Script,
    pub attempts: Vec<Attempt>,
}

impl Message {
    pub fn new(script: Script) -> Self {
        Self {
            script,
            attempts: Vec::new(),
        }
    }

    /// The attempts at the message's own URL (not the redirect's).
    pub fn own_attempts(&self) -> impl Iterator<Item = &Attempt> {
        self.attempts.iter().filter(|a| !a.followed_redirect)
    }

    /// Whether its script has run to its end: the 410 given, the trickle
    /// over or cut off, otherwise a 200 answered (a hang that ran out ends
    /// in one).
    pub fn ended(&self) -> bool {
        match self.script {
            Script::Gone => !self.attempts.is_empty(),
            Script::SlowBody => self.attempts.first().is_some_and(|a| a.ended.is_some()),
            _ => self.attempts.iter().any(|a| match a.answer {
                Answer::Ok => true,
                Answer::Hang => a.ended == Some(Ended::RanOut),
                _ => false,
            }),
        }
    }

    /// Records `arrived` and says how to answer it.
    pub fn attempt(&mut self, arrived: Arrived) -> Answer {
        let answer = if arrived.followed_redirect {
            Answer::Ok
        } else {
            self.script.answer(self.own_attempts().count())
        };
        self.attempts.push(Attempt {
            at: arrived.at,
            at_unix: arrived.at_unix,
            followed_redirect: arrived.followed_redirect,
            delivery_id: arrived.delivery_id,
            signature: arrived.signature,
            timestamp: arrived.timestamp,
            answer,
            ended: None,
        });
        answer
    }
}

/// A verification as `null`, `"valid"` or why it failed.
fn signature<S: Serializer>(verdict: &Option<Result<(), String>>, serializer: S) -> Result<S::Ok, S::Error> {
    match verdict {
        None => serializer.serialize_none(),
        Some(Ok(())) => serializer.serialize_str("valid"),
        Some(Err(why)) => serializer.serialize_str(why),
    }
}

/// `duration` as whole milliseconds.
pub(super) fn millis<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrived(at_secs: u64) -> Arrived {
        Arrived {
            at: Duration::from_secs(at_secs),
            at_unix: 0,
            followed_redirect: false,
            delivery_id: None,
            signature: None,
            timestamp: None,
        }
    }

    #[test]
    fn each_script_answers_its_attempts_in_turn_and_ends_on_its_200() {
        let mut message = Message::new(Script::ServerError);
        let answers: Vec<u16> = (0..5).map(|i| message.attempt(arrived(i)).status()).collect();
        assert_eq!(answers, [500, 500, 500, 200, 200]);
        assert!(message.ended());

        let mut redirect = Message::new(Script::Redirect);
        assert_eq!(redirect.attempt(arrived(0)), Answer::Redirect);
        assert!(!redirect.ended());
        let followed = Arrived {
            followed_redirect: true,
            ..arrived(0)
        };
        assert_eq!(redirect.attempt(followed), Answer::Ok);
        assert!(redirect.ended(), "a followed redirect was answered 200");

        let mut hang = Message::new(Script::Hang);
        assert_eq!(hang.attempt(arrived(0)), Answer::Hang);
        assert!(!hang.ended());
        hang.attempts[0].ended = Some(Ended::SenderHungUp {
            after: Duration::from_secs(3),
        });
        assert!(!hang.ended(), "hung up on: the next attempt ends it");
        assert_eq!(hang.attempt(arrived(4)), Answer::Ok);
        assert!(hang.ended());

        let mut gone = Message::new(Script::Gone);
        assert_eq!(gone.attempt(arrived(0)).status(), 410);
        assert!(gone.ended());
        assert_eq!(gone.attempt(arrived(1)).status(), 410);
    }
}
