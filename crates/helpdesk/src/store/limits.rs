//! The limits every endpoint gets unless it has its own: at most
//! `ENDPOINT_CONCURRENCY` attempts in flight over all workers, `ENDPOINT_RATE`
//! deliveries a second, and a circuit breaker that opens after
//! `CIRCUIT_FAILURES` failures in a row. Every partition applies its
//! [share](EndpointLimits::share) of them, in its scripts.

use std::time::Duration;

/// The longest a circuit breaker stays open between probes.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(10 * 60);

/// The limits every endpoint gets unless it has its own (`ENDPOINT_*`,
/// `CIRCUIT_*`). Every help desk process of one prefix must use the same.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointLimits {
    /// Attempts in flight at most, over all workers.
    pub concurrency: u32,
    /// The limit a new endpoint starts at, from where it adapts (at most
    /// `concurrency`): like a new TCP connection's initial window, it grows
    /// for a receiver that answers well.
    pub start: u32,
    /// Deliveries per second at most; `None`: unlimited.
    pub rate: Option<f64>,
    /// Failed attempts in a row that open the circuit breaker.
    pub circuit_failures: u32,
    /// How long the breaker first stays open; doubles after each failed
    /// probe, up to [`MAX_COOLDOWN`].
    pub circuit_cooldown: Duration,
}

impl Default for EndpointLimits {
    fn default() -> Self {
        Self {
            concurrency: 256,
            start: 16,
            rate: None,
            circuit_failures: 10,
            circuit_cooldown: Duration::from_secs(30),
        }
    }
}

impl EndpointLimits {
    /// An endpoint's concurrency limit now, from its stored `limit` (absent:
    /// it has not adapted yet), as the scripts read it.
    pub(super) fn limit_of(&self, stored: Option<f64>) -> u32 {
        let cap = self.concurrency.max(1);
        stored.map_or(self.start, |limit| limit as u32).clamp(1, cap)
    }

    /// Partition `k`'s share of these limits among `partitions`: of the
    /// concurrency, shares that add up to the whole (the first ones take the
    /// remainder) and are never below one; of the rate, an equal part.
    pub(super) fn share(&self, k: usize, partitions: usize) -> Self {
        let n = u32::try_from(partitions).unwrap_or(u32::MAX);
        let k = u32::try_from(k).unwrap_or(u32::MAX);
        Self {
            concurrency: (self.concurrency / n + u32::from(k < self.concurrency % n)).max(1),
            start: (self.start / n + u32::from(k < self.start % n)).max(1),
            rate: self.rate.map(|rate| rate / partitions as f64),
            ..*self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_shares_add_up_to_the_whole_and_are_never_zero() {
        let limits = |concurrency| EndpointLimits {
            concurrency,
            ..EndpointLimits::default()
        };
        let shares = |total, n| {
            (0..n)
                .map(|k| limits(total).share(k, n).concurrency)
                .collect::<Vec<_>>()
        };
        assert_eq!(shares(16, 3), [6, 5, 5]);
        assert_eq!(shares(16, 3).iter().sum::<u32>(), 16);
        assert_eq!(shares(2, 4), [1, 1, 1, 1]);
    }
}
