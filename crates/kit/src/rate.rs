//! Per-key request rates (`API_RATE`): each API key may make so many
//! requests a second, with a burst of two seconds' worth; past it the
//! answer is `429 Too Many Requests` with `Retry-After` (whole seconds).
//!
//! Without it one key could make thousands of requests a second, each
//! doing its work in Redis or PostgreSQL for everyone's latency. The check
//! runs in [`crate::auth::Authorized`], after the key is accepted, so only
//! configured keys ever get a bucket: the map is as bounded as the key
//! list, and a stranger's made-up keys cost nothing here (they are `401`s).
//! An open service (no keys) has no one to hold to a rate and is not
//! limited.
//!
//! Every key is limited, the operator's (a key without a tenant) too: a
//! leaked key is the threat whoever it belongs to, and an operator whose
//! own client (the consumer) sends more sets `API_RATE` to its size (or
//! `0`, no limit). The buckets are per process: with several replicas
//! behind a balancer, a key's rate is `API_RATE` at each.
//!
//! The buckets are keyed by a keyed hash of the key (a random SipHash key
//! per process), so this map holds no key.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use hookline_contract::ErrorBody;

use crate::http::error_response;

/// `API_RATE`'s default: far above what a person or a well-behaved client
/// sends, far below what would make one key everyone's problem.
pub const DEFAULT_API_RATE: f64 = 200.0;

/// How many seconds' worth of requests a bucket holds (the burst).
const BURST_SECONDS: f64 = 2.0;

/// Each accepted key's token bucket (app data, shared by every worker of a
/// process).
#[derive(Debug)]
pub struct KeyRates {
    rate: f64,
    burst: f64,
    hasher: RandomState,
    buckets: Mutex<HashMap<u64, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A request over its key's rate: try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests with this API key: try again in {} s", .retry_after.as_secs())]
pub struct RateLimited {
    pub retry_after: Duration,
}

impl KeyRates {
    /// `rate` requests a second per key; `None` for `0` (no limit).
    pub fn new(rate: f64) -> Option<Self> {
        (rate > 0.0).then(|| Self {
            rate,
            burst: (rate * BURST_SECONDS).max(1.0),
            hasher: RandomState::new(),
            buckets: Mutex::default(),
        })
    }

    /// Takes a token from `key`'s bucket, or says when one will be there.
    pub fn admit(&self, key: &str) -> Result<(), RateLimited> {
        self.admit_at(key, Instant::now())
    }

    fn admit_at(&self, key: &str, now: Instant) -> Result<(), RateLimited> {
        let id = self.hasher.hash_one(key);
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(id).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / self.rate;
        Err(RateLimited {
            // Whole seconds, rounded up: Retry-After has no fractions.
            retry_after: Duration::from_secs(wait.ceil().max(1.0) as u64),
        })
    }
}

/// Checks `key` against the [`KeyRates`] in `request`'s app data (none
/// registered: no limit).
pub fn check(request: &HttpRequest, key: &str) -> Result<(), RateLimited> {
    match request.app_data::<web::Data<KeyRates>>() {
        Some(rates) => rates.admit(key),
        None => Ok(()),
    }
}

impl RateLimited {
    /// `429` with the JSON envelope and `Retry-After`.
    pub fn response(&self) -> HttpResponse {
        let body = ErrorBody::new("too_many_requests").with_detail(self.to_string());
        let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, &body);
        if let Ok(value) = HeaderValue::from_str(&self.retry_after.as_secs().to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_waits_while_another_key_is_served() {
        let rates = KeyRates::new(1.0).unwrap();
        let start = Instant::now();
        assert_eq!(rates.admit_at("a", start), Ok(()));
        assert_eq!(rates.admit_at("a", start), Ok(()));
        let refused = rates.admit_at("a", start).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        assert_eq!(rates.admit_at("b", start), Ok(()));
        assert_eq!(rates.admit_at("a", start + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn no_rate_is_no_limit() {
        assert!(KeyRates::new(0.0).is_none());
    }

    #[test]
    fn a_slow_rate_asks_for_whole_seconds() {
        let rates = KeyRates::new(0.25).unwrap();
        let start = Instant::now();
        assert_eq!(rates.admit_at("a", start), Ok(()));
        assert_eq!(
            rates.admit_at("a", start).unwrap_err().retry_after,
            Duration::from_secs(4)
        );
    }
}
