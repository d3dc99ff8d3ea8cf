//! Retention: a finished case (delivered or dead) is kept for
//! `CASE_RETENTION`, to be looked at and redelivered, and then forgotten —
//! its hash, attempt log and request id, and its places in the listings and
//! the dead set — so months of traffic do not fill Redis.
//!
//! The keys of a finished case carry a TTL from the moment it finishes
//! (`finish.lua`), so Redis frees them even with no worker running; this
//! task takes what expired out of the sorted sets, which have no TTL per
//! member, and forgets endpoints idle for as long. A redelivery takes the
//! TTL off again (`redeliver.lua`): a case that can still be claimed or
//! retried is never forgotten. Every worker runs this; the trim is one
//! script, so several at once only share the work.

use std::time::Duration;

use hookline_kit::http::source_chain;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::metrics::HelpdeskMetrics;
use crate::store::Store;

/// The most cases (and endpoints, and each tenant's list entries) one trim
/// looks at: a short script, so Redis keeps answering everyone else in
/// between; the next batch follows at once while one was full.
const BATCH: usize = 500;

/// How often to look, for a queue keeping finished cases for `retention`:
/// a tenth of it, between 100 ms and a minute.
pub fn period(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_millis(100), Duration::from_secs(60))
}

/// Trims every [`period`] until `stop` says so.
pub async fn run(store: Store, metrics: HelpdeskMetrics, mut stop: watch::Receiver<bool>) {
    let every = period(store.retention());
    loop {
        // Batch after batch while there is a backlog (a help desk that was
        // down, or a retention just shortened), then wait.
        loop {
            match store.trim(BATCH).await {
                Ok(trimmed) => {
                    metrics.forgotten(trimmed.cases, trimmed.endpoints);
                    if trimmed.cases > 0 || trimmed.endpoints > 0 {
                        debug!(cases = trimmed.cases, endpoints = trimmed.endpoints, "retention forgot");
                    }
                    if !trimmed.more || *stop.borrow() {
                        break;
                    }
                }
                Err(error) => {
                    warn!(error = %source_chain(&error), "cannot trim expired cases; trying again later");
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_is_a_tenth_of_the_retention_within_bounds() {
        assert_eq!(period(Duration::from_secs(7 * 24 * 3600)), Duration::from_secs(60));
        assert_eq!(period(Duration::from_secs(5)), Duration::from_millis(500));
        assert_eq!(period(Duration::from_millis(10)), Duration::from_millis(100));
    }
}
