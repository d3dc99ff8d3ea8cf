//! Retention: webhook receipts and `Idempotency-Key`s are only needed for a
//! while; old rows are removed in small batches (each its own short
//! statement, so nothing else waits on a long delete).

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use diesel::sql_types::{BigInt, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Removes up to `batch` webhook receipts received before `before`; returns
/// how many. A webhook redelivered after its receipt is gone still changes
/// nothing: the review it decided is decided (see `decision.rs`).
pub async fn prune_receipts(conn: &mut AsyncPgConnection, before: DateTime<Utc>, batch: i64) -> QueryResult<usize> {
    // Diesel's DSL cannot put a LIMIT in a DELETE's subquery.
    diesel::sql_query(
        "DELETE FROM webhook_receipts WHERE webhook_id IN \
         (SELECT webhook_id FROM webhook_receipts WHERE received_at < $1 LIMIT $2)",
    )
    .bind::<Timestamptz, _>(before)
    .bind::<BigInt, _>(batch)
    .execute(conn)
    .await
}

/// Removes up to `batch` `Idempotency-Key`s first used before `before`;
/// returns how many. A retry with such a key is then a new request.
pub async fn prune_idempotency_keys(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    batch: i64,
) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM idempotency_keys WHERE (caller, key) IN \
         (SELECT caller, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)",
    )
    .bind::<Timestamptz, _>(before)
    .bind::<BigInt, _>(batch)
    .execute(conn)
    .await
}
