//! Retention: webhook receipts are kept for `RECEIPT_RETENTION` (a
//! redelivered webhook is recognised by its `webhook-id` until then; after,
//! the decided review itself refuses to change) and `Idempotency-Key`s for
//! `IDEMPOTENCY_RETENTION` (a retry within it gets the first answer); older
//! rows are removed in small batches, so the tables stop growing.
//!
//! A database that cannot be reached is tried again at the next period; one
//! that refuses the statements otherwise (a table missing, a permission)
//! ends the task with that error, which its [supervisor](crate::supervisor)
//! reports.

use std::time::Duration;

use chrono::Utc;
use hookline_kit::http::source_chain;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::db::{self, Pool, PoolError};
use crate::metrics::ConsumerMetrics;

/// Rows one statement removes at most.
const BATCH: i64 = 1000;

/// How long each kind of row is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub receipts: Duration,
    pub idempotency_keys: Duration,
}

impl Retention {
    /// How often to prune: a tenth of the shorter retention, between a
    /// second and ten minutes.
    pub fn period(&self) -> Duration {
        (self.receipts.min(self.idempotency_keys) / 10).clamp(Duration::from_secs(1), Duration::from_secs(600))
    }
}

/// Why old rows could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("no database connection")]
    Pool(#[from] PoolError),
    #[error("the database refused to remove old rows")]
    Database(#[from] diesel::result::Error),
}

impl RetentionError {
    /// Whether the next period may succeed (the database comes back).
    fn is_retryable(&self) -> bool {
        match self {
            Self::Pool(_) => true,
            Self::Database(e) => crate::db::retryable(e),
        }
    }
}

/// Prunes every [`Retention::period`] until `stop` turns true; ends with
/// the error that a retry cannot fix.
pub async fn run(
    pool: Pool,
    retention: Retention,
    metrics: ConsumerMetrics,
    mut stop: watch::Receiver<bool>,
) -> Result<(), RetentionError> {
    loop {
        match prune(&pool, retention).await {
            Ok((receipts, keys)) => {
                metrics.pruned(receipts, keys);
                if receipts + keys > 0 {
                    debug!(receipts, idempotency_keys = keys, "retention removed old rows");
                }
            }
            Err(e) if !e.is_retryable() => return Err(e),
            Err(e) => {
                warn!(error = %source_chain(&e), "cannot remove old receipts and idempotency keys; trying again later")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(retention.period()) => {}
            _ = stop.changed() => return Ok(()),
        }
    }
}

/// Removes everything past its retention, batch after batch.
async fn prune(pool: &Pool, retention: Retention) -> Result<(u64, u64), RetentionError> {
    let now = Utc::now();
    let receipts_before = now - retention.receipts;
    let keys_before = now - retention.idempotency_keys;
    let (mut receipts, mut keys) = (0, 0);
    let mut conn = pool.get().await?;
    loop {
        let removed = db::prune_receipts(&mut conn, receipts_before, BATCH).await?;
        receipts += removed as u64;
        if (removed as i64) < BATCH {
            break;
        }
    }
    loop {
        let removed = db::prune_idempotency_keys(&mut conn, keys_before, BATCH).await?;
        keys += removed as u64;
        if (removed as i64) < BATCH {
            break;
        }
    }
    Ok((receipts, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_is_a_tenth_of_the_shorter_retention_within_bounds() {
        let days = |n: u64| Duration::from_secs(n * 24 * 3600);
        let retention = |receipts, idempotency_keys| Retention {
            receipts,
            idempotency_keys,
        };
        assert_eq!(retention(days(30), days(1)).period(), Duration::from_secs(600));
        assert_eq!(
            retention(Duration::from_secs(20), days(1)).period(),
            Duration::from_secs(2)
        );
        assert_eq!(
            retention(Duration::from_millis(100), days(1)).period(),
            Duration::from_secs(1)
        );
    }
}
