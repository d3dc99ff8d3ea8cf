//! The reconciler's queries: reviews still pending long after they were
//! requested, taken so that several consumers never ask about one at once,
//! and the mark on those the help desk no longer knows.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use hookline_contract::DocumentStatus;
use uuid::Uuid;

use crate::schema::document_reviews;

/// A pending review the reconciler should ask the help desk about.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct StaleReview {
    pub id: Uuid,
    pub document_url: String,
    /// `None`: the help desk's answer to our request never came (it may
    /// have the case, or not): the request is sent again.
    pub document_id: Option<String>,
    pub agent_id: Option<String>,
}

/// Takes up to `limit` reviews still PENDING_REVIEW that were created (and
/// last checked) before `cutoff`, and marks them checked now, so that
/// several consumers, or the next round, do not ask about them again at once.
/// Reviews the help desk said it does not know ([`mark_lost`]) are not taken.
pub async fn take_stale(
    conn: &mut AsyncPgConnection,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<StaleReview>> {
    use document_reviews::dsl as r;
    let rows: Vec<StaleReview> = conn
        .transaction(async |conn| {
            let due: Vec<Uuid> = r::document_reviews
                .select(r::id)
                .filter(r::document_status.eq(DocumentStatus::PendingReview.as_str()))
                .filter(r::lost_at.is_null())
                .filter(r::created_at.lt(cutoff))
                .filter(r::checked_at.is_null().or(r::checked_at.lt(cutoff)))
                .order(r::created_at)
                .limit(limit)
                .for_update()
                .skip_locked()
                .load(conn)
                .await?;
            diesel::update(r::document_reviews.filter(r::id.eq_any(due)))
                .set(r::checked_at.eq(diesel::dsl::now))
                .returning((r::id, r::document_url, r::document_id, r::agent_id))
                .get_results(conn)
                .await
        })
        .await?;
    Ok(rows)
}

/// Marks a pending review the help desk does not know (any more): the
/// reconciler stops asking about it. A webhook can still decide it.
pub async fn mark_lost(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    use document_reviews::dsl as r;
    diesel::update(r::document_reviews.find(id).filter(r::lost_at.is_null()))
        .set(r::lost_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
        .map(drop)
}
