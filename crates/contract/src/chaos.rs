//! Chaos profiles: which faults a help desk injects around a delivery, and
//! how often. The same text configures the whole help desk (`CHAOS`) and one
//! case (the `Hookline-Chaos` header of `POST /document`):
//! a comma-separated list of `fault=rate`, each rate from 0 to 1, e.g.
//! `duplicate=0.3,forged_signature=0.1`. `none` (or nothing) is the profile
//! without faults.
//!
//! A fault never replaces the real delivery: the faults a delivery draws are
//! sent *besides* it (forgeries before it, duplicates and replays after it),
//! or change only how it is sent (later, trickled, out of order), so a
//! correct receiver still ends in the correct state.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod seed;

/// The request header that sets one case's chaos profile.
pub const CHAOS_HEADER: &str = "hookline-chaos";
/// The request header that seeds one case's chaos draws ([`seed`]).
pub const CHAOS_SEED_HEADER: &str = "hookline-chaos-seed";

/// One kind of misbehaviour a provider shows in the wild.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The delivery is sent again right after it got through: same
    /// `webhook-id`, same timestamp, same body (a lost acknowledgement).
    Duplicate,
    /// The delivery is sent again a little later with a fresh timestamp and
    /// signature (the provider's retry after a lost answer, or a resend).
    Replay,
    /// An older event arrives after a newer one: `document.received` after
    /// the decision (events of subscriptions only: a callback carries one
    /// message per document).
    Reorder,
    /// The delivery is held back a few seconds more.
    Delay,
    /// A message signed with a secret the receiver never saw, sent before
    /// the real one with the same `webhook-id`.
    ForgedSignature,
    /// A correctly signed message with a timestamp ten minutes old.
    StaleTimestamp,
    /// A correctly signed body that is truncated JSON.
    MalformedBody,
    /// The real delivery's body trickles in, a few bytes at a time.
    SlowSend,
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::Duplicate,
        Fault::Replay,
        Fault::Reorder,
        Fault::Delay,
        Fault::ForgedSignature,
        Fault::StaleTimestamp,
        Fault::MalformedBody,
        Fault::SlowSend,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Duplicate => "duplicate",
            Fault::Replay => "replay",
            Fault::Reorder => "reorder",
            Fault::Delay => "delay",
            Fault::ForgedSignature => "forged_signature",
            Fault::StaleTimestamp => "stale_timestamp",
            Fault::MalformedBody => "malformed_body",
            Fault::SlowSend => "slow_send",
        }
    }

    /// Whether a correct receiver refuses the message this fault sends
    /// (answers 4xx); the others it acknowledges (2xx).
    pub fn must_be_refused(self) -> bool {
        matches!(
            self,
            Fault::ForgedSignature | Fault::StaleTimestamp | Fault::MalformedBody
        )
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Fault {
    type Err = ChaosError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Fault::ALL
            .into_iter()
            .find(|fault| fault.as_str() == raw)
            .ok_or_else(|| ChaosError::UnknownFault(raw.to_owned()))
    }
}

/// `GET /chaos`: the help desk's chaos profile and every fault injected so
/// far (by every worker), with how receivers answered.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChaosReport {
    /// This help desk's `CHAOS` (`none`: off; cases may still bring their own).
    pub profile: String,
    /// One row per fault injected at least once.
    pub faults: Vec<FaultCount>,
}

/// How often one fault was injected, and how receivers answered it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultCount {
    pub fault: Fault,
    pub injected: u64,
    /// By the class of the receiver's answer: `2xx`, `3xx`, `4xx`, `5xx`,
    /// `none` (no answer, or a fault that sends nothing of its own).
    pub answers: std::collections::BTreeMap<String, u64>,
    /// Answered unlike a correct receiver (a forgery accepted, a duplicate
    /// refused, a 5xx, no answer).
    pub unexpected: u64,
}

/// Why a chaos profile does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChaosError {
    #[error(
        "unknown fault {0:?}: the faults are duplicate, replay, reorder, delay, forged_signature, stale_timestamp, malformed_body, slow_send"
    )]
    UnknownFault(String),
    #[error("the rate of {fault} must be a number from 0 to 1, not {rate:?}")]
    BadRate { fault: Fault, rate: String },
    #[error("{0:?} is not fault=rate (e.g. duplicate=0.3)")]
    NotAPair(String),
    #[error("{0} is named twice")]
    Repeated(Fault),
}

/// Faults and their rates (each drawn on its own).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChaosProfile {
    rates: Vec<(Fault, f64)>,
}

impl ChaosProfile {
    /// No faults at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every fault at `rate` (clamped to 0–1).
    pub fn every_fault(rate: f64) -> Self {
        let rate = if rate.is_nan() { 0.0 } else { rate.clamp(0.0, 1.0) };
        Self {
            rates: Fault::ALL.iter().map(|fault| (*fault, rate)).collect(),
        }
    }

    pub fn is_none(&self) -> bool {
        self.rates.iter().all(|(_, rate)| *rate == 0.0)
    }

    /// The rate of `fault` (0 when not named).
    pub fn rate(&self, fault: Fault) -> f64 {
        self.rates
            .iter()
            .find(|(named, _)| *named == fault)
            .map_or(0.0, |(_, rate)| *rate)
    }

    /// Draws each fault on its own, with `uniform` giving numbers in [0, 1).
    pub fn draw(&self, mut uniform: impl FnMut() -> f64) -> Vec<Fault> {
        let mut drawn: Vec<Fault> = self
            .rates
            .iter()
            .filter(|(_, rate)| *rate > 0.0 && uniform() < *rate)
            .map(|(fault, _)| *fault)
            .collect();
        drawn.sort_unstable();
        drawn
    }

    /// Whether `fault` is drawn, with `uniform` as in [`draw`](Self::draw).
    pub fn draws(&self, fault: Fault, uniform: impl FnOnce() -> f64) -> bool {
        let rate = self.rate(fault);
        rate > 0.0 && uniform() < rate
    }
}

impl FromStr for ChaosProfile {
    type Err = ChaosError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        if raw.is_empty() || raw.eq_ignore_ascii_case("none") {
            return Ok(Self::none());
        }
        let mut rates: Vec<(Fault, f64)> = Vec::new();
        for pair in raw.split(',').map(str::trim) {
            let (name, rate) = pair
                .split_once('=')
                .ok_or_else(|| ChaosError::NotAPair(pair.to_owned()))?;
            let fault: Fault = name.trim().parse()?;
            let rate_text = rate.trim();
            let rate: f64 = rate_text
                .parse()
                .ok()
                .filter(|rate: &f64| (0.0..=1.0).contains(rate))
                .ok_or_else(|| ChaosError::BadRate {
                    fault,
                    rate: rate_text.to_owned(),
                })?;
            if rates.iter().any(|(named, _)| *named == fault) {
                return Err(ChaosError::Repeated(fault));
            }
            rates.push((fault, rate));
        }
        Ok(Self { rates })
    }
}

impl fmt::Display for ChaosProfile {
    /// The profile as it parses back; `none` when it has no fault.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let named: Vec<String> = self
            .rates
            .iter()
            .filter(|(_, rate)| *rate > 0.0)
            .map(|(fault, rate)| format!("{fault}={rate}"))
            .collect();
        if named.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&named.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_parses_and_prints_back() {
        let profile: ChaosProfile = " duplicate=0.3, forged_signature = 1,slow_send=0".parse().unwrap();
        assert_eq!(profile.rate(Fault::Duplicate), 0.3);
        assert_eq!(profile.rate(Fault::ForgedSignature), 1.0);
        assert_eq!(profile.rate(Fault::Replay), 0.0);
        assert_eq!(profile.to_string(), "duplicate=0.3,forged_signature=1");
        assert_eq!(profile.to_string().parse::<ChaosProfile>().unwrap(), {
            let mut shown = profile.clone();
            shown.rates.retain(|(_, rate)| *rate > 0.0);
            shown
        });
        for nothing in ["", "none", " NONE "] {
            assert!(nothing.parse::<ChaosProfile>().unwrap().is_none());
        }
        assert_eq!(ChaosProfile::none().to_string(), "none");
        assert_eq!(ChaosProfile::every_fault(0.5).draw(|| 0.1), Fault::ALL.to_vec());
    }

    #[test]
    fn bad_profiles_say_what_is_wrong() {
        let error = |raw: &str| raw.parse::<ChaosProfile>().unwrap_err();
        assert_eq!(error("duplicat=0.3"), ChaosError::UnknownFault("duplicat".into()));
        assert!(error("duplicat=0.3").to_string().contains("forged_signature"));
        for rate in ["1.5", "-0.1", "NaN", "often", ""] {
            assert_eq!(
                error(&format!("delay={rate}")),
                ChaosError::BadRate {
                    fault: Fault::Delay,
                    rate: rate.into()
                },
                "{rate}"
            );
        }
        assert_eq!(error("delay"), ChaosError::NotAPair("delay".into()));
        assert_eq!(error("delay=0.1,"), ChaosError::NotAPair("".into()));
        assert_eq!(error("delay=0.1,delay=0.2"), ChaosError::Repeated(Fault::Delay));
    }

    #[test]
    fn each_fault_is_drawn_at_its_own_rate() {
        let profile: ChaosProfile = "duplicate=1,replay=0.5,delay=0".parse().unwrap();
        let mut numbers = [0.7, 0.2].into_iter().cycle();
        // duplicate: 0.7 < 1 drawn; replay: 0.2 < 0.5 drawn; delay never asks.
        assert_eq!(
            profile.draw(|| numbers.next().unwrap()),
            vec![Fault::Duplicate, Fault::Replay]
        );
        let mut numbers = [0.7, 0.7].into_iter();
        assert_eq!(profile.draw(|| numbers.next().unwrap()), vec![Fault::Duplicate]);
        assert!(profile.draws(Fault::Replay, || 0.49));
        assert!(!profile.draws(Fault::Replay, || 0.5));
        assert!(!profile.draws(Fault::Delay, || unreachable!("a zero rate draws nothing")));
    }
}
