//! Reviews: recorded before the help desk is asked, attached to its case,
//! read, listed newest first, counted by status.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_contract::{DocumentStatus, Review};
use uuid::Uuid;

use crate::schema::document_reviews;

diesel::define_sql_function! {
    /// SQL `COALESCE(a, b)` over text.
    fn coalesce(a: diesel::sql_types::Nullable<diesel::sql_types::Text>, b: diesel::sql_types::Text) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// A row of `document_reviews`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = document_reviews, check_for_backend(diesel::pg::Pg))]
pub struct ReviewRow {
    pub id: Uuid,
    pub document_url: String,
    pub agent_id: Option<String>,
    pub document_id: Option<String>,
    pub document_status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub received_at: Option<DateTime<Utc>>,
}

impl ReviewRow {
    /// The status column; the table's CHECK constraint keeps it in the enum.
    pub fn status(&self) -> DocumentStatus {
        self.document_status.parse().unwrap_or(DocumentStatus::PendingReview)
    }

    pub fn into_review(self) -> Review {
        Review {
            document_status: self.status(),
            id: self.id.to_string(),
            document_url: self.document_url,
            agent_id: self.agent_id,
            document_id: self.document_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
            received_at: self.received_at,
        }
    }
}

/// Records a review before the help desk is asked, so that a webhook racing
/// the help desk's answer finds it (by the `id` the help desk echoes).
pub async fn insert_requested(conn: &mut AsyncPgConnection, id: Uuid, document_url: &str) -> QueryResult<()> {
    insert_requested_many(conn, &[(id, document_url)]).await
}

/// Records several new reviews in one statement (one commit).
pub async fn insert_requested_many(conn: &mut AsyncPgConnection, rows: &[(Uuid, &str)]) -> QueryResult<()> {
    let pending = DocumentStatus::PendingReview.as_str();
    let values: Vec<_> = rows
        .iter()
        .map(|(id, url)| {
            (
                document_reviews::id.eq(*id),
                document_reviews::document_url.eq(*url),
                document_reviews::document_status.eq(pending),
            )
        })
        .collect();
    diesel::insert_into(document_reviews::table)
        .values(values)
        .execute(conn)
        .await
        .map(drop)
}

/// Stores the help desk's answer. A webhook that arrived first may already
/// have filled the ids (and decided the review); that is left as it is.
pub async fn attach_ticket(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    agent_id: &str,
    document_id: &str,
) -> QueryResult<ReviewRow> {
    attach_tickets(conn, &[(id, agent_id, document_id)])
        .await?
        .pop()
        .ok_or(diesel::result::Error::NotFound)
}

/// Stores several answers in one statement (one commit), as
/// [`attach_ticket`] does each: the reviews found, updated in the order of
/// their ids (so two of these never wait on each other in a cycle).
pub async fn attach_tickets(
    conn: &mut AsyncPgConnection,
    tickets: &[(Uuid, &str, &str)],
) -> QueryResult<Vec<ReviewRow>> {
    use diesel::sql_types::{Array, Text};
    let mut sorted = tickets.to_vec();
    sorted.sort_by_key(|(id, _, _)| *id);
    let ids: Vec<Uuid> = sorted.iter().map(|(id, _, _)| *id).collect();
    let agents: Vec<&str> = sorted.iter().map(|(_, agent, _)| *agent).collect();
    let documents: Vec<&str> = sorted.iter().map(|(_, _, document)| *document).collect();
    diesel::sql_query(
        "WITH ticket AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[]) AS t (id, agent_id, document_id)), \
         locked AS (SELECT r.id FROM document_reviews r JOIN ticket USING (id) ORDER BY r.id FOR UPDATE OF r) \
         UPDATE document_reviews r \
         SET agent_id = COALESCE(r.agent_id, ticket.agent_id), document_id = COALESCE(r.document_id, ticket.document_id) \
         FROM ticket, locked WHERE r.id = ticket.id AND locked.id = r.id \
         RETURNING r.id, r.document_url, r.agent_id, r.document_id, r.document_status, r.created_at, r.updated_at, \
                   r.received_at",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(ids)
    .bind::<Array<Text>, _>(agents)
    .bind::<Array<Text>, _>(documents)
    .load(conn)
    .await
}

/// Forgets a review the help desk never accepted.
pub async fn delete_requested(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::delete(
        document_reviews::table
            .find(id)
            .filter(document_reviews::document_id.is_null()),
    )
    .execute(conn)
    .await
    .map(drop)
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<ReviewRow>> {
    document_reviews::table
        .find(id)
        .select(ReviewRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The reviews with these ids (those that exist), in no particular order.
pub async fn find_many(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<ReviewRow>> {
    document_reviews::table
        .filter(document_reviews::id.eq_any(ids))
        .select(ReviewRow::as_select())
        .load(conn)
        .await
}

/// Where a page of `GET /documents` starts: strictly older than this row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageStart {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// Up to `limit` reviews, newest first, optionally only those in `status`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    start: Option<PageStart>,
    status: Option<DocumentStatus>,
    limit: i64,
) -> QueryResult<Vec<ReviewRow>> {
    let mut query = document_reviews::table
        .select(ReviewRow::as_select())
        .order((document_reviews::created_at.desc(), document_reviews::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(start) = start {
        query = query.filter(
            document_reviews::created_at
                .lt(start.created_at)
                .or(document_reviews::created_at
                    .eq(start.created_at)
                    .and(document_reviews::id.lt(start.id))),
        );
    }
    if let Some(status) = status {
        query = query.filter(document_reviews::document_status.eq(status.as_str()));
    }
    query.load(conn).await
}

/// How many reviews there are in each status (for `/metrics`); statuses
/// without reviews are absent.
pub async fn count_by_status(conn: &mut AsyncPgConnection) -> QueryResult<Vec<(String, i64)>> {
    document_reviews::table
        .group_by(document_reviews::document_status)
        .select((document_reviews::document_status, diesel::dsl::count_star()))
        .load(conn)
        .await
}
