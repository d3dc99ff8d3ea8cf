//! `Idempotency-Key`s of `POST /documents`: the first request with a key
//! runs, a retry gets its answer again, a reuse for another request is
//! refused, and a key whose request died mid-way frees itself after a while.
//!
//! A key belongs to its caller ([`IdempotencyKey::caller`]): two callers
//! who pick the same key make two reviews, and neither learns the other's
//! answer, nor (by a 422) that the key was taken.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::idempotency_keys;

/// What an `Idempotency-Key` says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyClaim {
    /// First use: go ahead with review `review_id` (the one claimed with
    /// the key), then [`complete_key`].
    Fresh { review_id: Uuid },
    /// An earlier request with this key died mid-way: go on with its review,
    /// `review_id` (which may or may not have been stored yet), then
    /// [`complete_key`].
    Resume { review_id: Uuid },
    /// Done before: answer exactly this.
    Replay { status: u16, body: String },
    /// The first request with this key is still running.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

/// An `Idempotency-Key` as stored: the caller's own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyKey<'a> {
    /// Who sent it: the tenant of its API key
    /// ([`hookline_kit::auth::DEFAULT_TENANT`] on an open consumer).
    pub caller: &'a str,
    /// The header's value.
    pub key: &'a str,
}

/// How long an unfinished key blocks retries before it counts as abandoned
/// (its request died mid-way).
const ABANDONED_AFTER_SECS: i64 = 60;

/// Claims `key` for a request about `document_url` that would make review
/// `review_id`.
pub async fn claim_key(
    conn: &mut AsyncPgConnection,
    key: IdempotencyKey<'_>,
    document_url: &str,
    review_id: Uuid,
) -> QueryResult<KeyClaim> {
    use idempotency_keys::dsl as k;
    let inserted = diesel::insert_into(k::idempotency_keys)
        .values((
            k::caller.eq(key.caller),
            k::key.eq(key.key),
            k::document_url.eq(document_url),
            k::review_id.eq(review_id),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if inserted == 1 {
        return Ok(KeyClaim::Fresh { review_id });
    }
    let (url, status, body, earlier): (String, Option<i16>, Option<String>, Option<Uuid>) = k::idempotency_keys
        .find((key.caller, key.key))
        .select((k::document_url, k::response_status, k::response_body, k::review_id))
        .first(conn)
        .await?;
    if url != document_url {
        return Ok(KeyClaim::Mismatch);
    }
    if let (Some(status), Some(body)) = (status, body) {
        return Ok(KeyClaim::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body,
        });
    }
    let abandoned = diesel::update(
        k::idempotency_keys
            .find((key.caller, key.key))
            .filter(k::response_status.is_null())
            .filter(k::created_at.lt(Utc::now() - chrono::Duration::seconds(ABANDONED_AFTER_SECS))),
    )
    .set((
        k::created_at.eq(diesel::dsl::now),
        k::review_id.eq(earlier.unwrap_or(review_id)),
    ))
    .execute(conn)
    .await?;
    Ok(match (abandoned, earlier) {
        // Its request died after claiming: its review (if it got that far)
        // goes on under the same id; a key from before review ids were kept
        // starts afresh.
        (1, Some(earlier)) => KeyClaim::Resume { review_id: earlier },
        (1, None) => KeyClaim::Fresh { review_id },
        _ => KeyClaim::InProgress,
    })
}

/// Stores the response given to the first request with `key`.
pub async fn complete_key(
    conn: &mut AsyncPgConnection,
    key: IdempotencyKey<'_>,
    status: u16,
    body: &str,
) -> QueryResult<()> {
    use idempotency_keys::dsl as k;
    diesel::update(k::idempotency_keys.find((key.caller, key.key)))
        .set((
            k::response_status.eq(i16::try_from(status).unwrap_or(i16::MAX)),
            k::response_body.eq(body),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// Frees `key` after a request that failed, so that a retry can run.
pub async fn release_key(conn: &mut AsyncPgConnection, key: IdempotencyKey<'_>) -> QueryResult<()> {
    use idempotency_keys::dsl as k;
    diesel::delete(
        k::idempotency_keys
            .find((key.caller, key.key))
            .filter(k::response_status.is_null()),
    )
    .execute(conn)
    .await
    .map(drop)
}
