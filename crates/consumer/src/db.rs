//! Storage of reviews in PostgreSQL with Diesel (diesel-async on a deadpool
//! pool: no blocking calls on the async threads, no libpq). Queries are
//! plain functions over a connection returning `QueryResult`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use hookline_contract::{DocumentStatus, Review};
use uuid::Uuid;

use crate::schema::{document_reviews, idempotency_keys, webhook_receipts};

diesel::define_sql_function! {
    /// SQL `COALESCE(a, b)` over text.
    fn coalesce(a: diesel::sql_types::Nullable<diesel::sql_types::Text>, b: diesel::sql_types::Text) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

pub type Pool = diesel_async::pooled_connection::deadpool::Pool<AsyncPgConnection>;
pub type PoolError = diesel_async::pooled_connection::deadpool::PoolError;

/// The migrations under `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// How long a request waits for a pooled connection (or for a new one to
/// open) before it is answered 503.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("cannot connect to the database")]
    Connect(#[from] diesel::ConnectionError),
    #[error("cannot run the migrations: {0}")]
    Migrate(String),
    #[error("cannot build the connection pool")]
    Pool(#[from] diesel_async::pooled_connection::deadpool::BuildError),
}

/// Applies pending migrations. Diesel's migration harness is synchronous, so
/// it runs on a thread of its own (with its own small runtime) rather than
/// blocking an async thread.
pub async fn run_migrations(database_url: &str) -> Result<Vec<String>, DbSetupError> {
    let url = database_url.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = (|| {
            type SyncPg = diesel_async::async_connection_wrapper::AsyncConnectionWrapper<AsyncPgConnection>;
            let mut conn = <SyncPg as diesel::Connection>::establish(&url)?;
            conn.run_pending_migrations(MIGRATIONS)
                .map(|versions| versions.iter().map(ToString::to_string).collect())
                .map_err(|e| DbSetupError::Migrate(e.to_string()))
        })();
        let _ = tx.send(result);
    });
    rx.await
        .unwrap_or_else(|_| Err(DbSetupError::Migrate("the migration thread died".to_owned())))
}

/// A pool of `size` connections that gives up after [`POOL_TIMEOUT`].
pub fn pool(database_url: &str, size: usize) -> Result<Pool, DbSetupError> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(database_url);
    Ok(Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .build()?)
}

/// A row of `document_reviews`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = document_reviews, check_for_backend(diesel::pg::Pg))]
pub struct ReviewRow {
    pub id: Uuid,
    pub document_url: String,
    pub agent_id: Option<String>,
    pub document_id: Option<String>,
    pub document_status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
        }
    }
}

/// Records a review before the help desk is asked, so that a webhook racing
/// the help desk's answer finds it (by the `id` the help desk echoes).
pub async fn insert_requested(conn: &mut AsyncPgConnection, id: Uuid, document_url: &str) -> QueryResult<()> {
    diesel::insert_into(document_reviews::table)
        .values((
            document_reviews::id.eq(id),
            document_reviews::document_url.eq(document_url),
            document_reviews::document_status.eq(DocumentStatus::PendingReview.as_str()),
        ))
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
    diesel::update(document_reviews::table.find(id))
        .set((
            document_reviews::agent_id.eq(coalesce(document_reviews::agent_id, agent_id)),
            document_reviews::document_id.eq(coalesce(document_reviews::document_id, document_id)),
        ))
        .returning(ReviewRow::as_returning())
        .get_result(conn)
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

/// What a decision did to the stored review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The review moved from PENDING_REVIEW to the decision.
    Applied(ReviewRow),
    /// The review already had this decision: nothing changed.
    AlreadyApplied(ReviewRow),
    /// The review already had the other decision, which stands.
    Contradicts(ReviewRow),
    /// No review has this document id (nor the echoed id) — yet, perhaps.
    UnknownReview,
    /// This `webhook-id` was applied before: nothing changed.
    Duplicate,
}

/// A decision of the help desk, from a webhook or from reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingDecision<'a> {
    pub document_id: &'a str,
    pub agent_id: &'a str,
    /// The `id` the help desk echoed (our review id), if it parses as one.
    pub request_id: Option<Uuid>,
    pub decision: DocumentStatus,
    /// The Standard Webhooks `webhook-id`; `None` for reconciliation and
    /// unsigned webhooks.
    pub webhook_id: Option<&'a str>,
}

/// Applies the help desk's decision in one transaction: the status change
/// and the record of its `webhook-id` commit together or not at all.
/// The review is found by `document_id`, or else by the echoed `request_id`
/// if the webhook overtook the help desk's answer to our request.
pub async fn apply_decision(conn: &mut AsyncPgConnection, incoming: IncomingDecision<'_>) -> QueryResult<Decision> {
    let IncomingDecision {
        document_id,
        agent_id,
        request_id,
        decision,
        webhook_id,
    } = incoming;
    conn.transaction(async |conn| {
        if let Some(webhook_id) = webhook_id {
            let seen = webhook_receipts::table
                .find(webhook_id)
                .select(webhook_receipts::webhook_id)
                .first::<String>(conn)
                .await
                .optional()?;
            if seen.is_some() {
                return Ok(Decision::Duplicate);
            }
        }
        // One statement, not two lookups: if `attach_ticket` commits while we
        // look, FOR UPDATE waits for it and re-checks the row's new version,
        // which then matches by document_id. Two statements would miss it.
        let by_document_id = document_reviews::document_id.eq(document_id);
        let matches: Box<dyn BoxableExpression<document_reviews::table, Pg, SqlType = Nullable<Bool>>> =
            match request_id {
                Some(request_id) => Box::new(
                    by_document_id.or(document_reviews::id
                        .eq(request_id)
                        .and(document_reviews::document_id.is_null())),
                ),
                None => Box::new(by_document_id),
            };
        let row: Option<ReviewRow> = document_reviews::table
            .filter(matches)
            .select(ReviewRow::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?;
        let Some(row) = row else {
            return Ok(Decision::UnknownReview);
        };
        let current = row.status();
        if current == decision {
            return Ok(Decision::AlreadyApplied(row));
        }
        if current.is_decided() {
            return Ok(Decision::Contradicts(row));
        }
        let updated = diesel::update(document_reviews::table.find(row.id))
            .set((
                document_reviews::document_status.eq(decision.as_str()),
                document_reviews::updated_at.eq(diesel::dsl::now),
                document_reviews::document_id.eq(document_id),
                document_reviews::agent_id.eq(row.agent_id.as_deref().unwrap_or(agent_id)),
            ))
            .returning(ReviewRow::as_returning())
            .get_result(conn)
            .await?;
        if let Some(webhook_id) = webhook_id {
            diesel::insert_into(webhook_receipts::table)
                .values((
                    webhook_receipts::webhook_id.eq(webhook_id),
                    webhook_receipts::review_id.eq(updated.id),
                    webhook_receipts::document_status.eq(decision.as_str()),
                ))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
        }
        Ok(Decision::Applied(updated))
    })
    .await
}

/// A pending review the reconciler should ask the help desk about.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct StaleReview {
    pub id: Uuid,
    pub document_id: String,
    pub agent_id: Option<String>,
}

/// Takes up to `limit` reviews still PENDING_REVIEW that were created (and
/// last checked) before `cutoff`, and marks them checked now, so that
/// several consumers, or the next round, do not ask about them again at once.
pub async fn take_stale(
    conn: &mut AsyncPgConnection,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<StaleReview>> {
    use document_reviews::dsl as r;
    let rows: Vec<(Uuid, Option<String>, Option<String>)> = conn
        .transaction(async |conn| {
            let due: Vec<Uuid> = r::document_reviews
                .select(r::id)
                .filter(r::document_status.eq(DocumentStatus::PendingReview.as_str()))
                .filter(r::document_id.is_not_null())
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
                .returning((r::id, r::document_id, r::agent_id))
                .get_results(conn)
                .await
        })
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, document_id, agent_id)| {
            Some(StaleReview {
                id,
                document_id: document_id?,
                agent_id,
            })
        })
        .collect())
}

/// Is the database answering?
pub async fn ping(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::select(1.into_sql::<diesel::sql_types::Integer>())
        .execute(conn)
        .await
        .map(drop)
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

/// What an `Idempotency-Key` says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyClaim {
    /// First use (or an abandoned earlier one): go ahead, then [`complete_key`].
    Fresh,
    /// Done before: answer exactly this.
    Replay { status: u16, body: String },
    /// The first request with this key is still running.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

/// How long an unfinished key blocks retries before it counts as abandoned
/// (its request died mid-way).
const ABANDONED_AFTER_SECS: i64 = 60;

/// Claims `key` for a request about `document_url`.
pub async fn claim_key(conn: &mut AsyncPgConnection, key: &str, document_url: &str) -> QueryResult<KeyClaim> {
    use idempotency_keys::dsl as k;
    let inserted = diesel::insert_into(k::idempotency_keys)
        .values((k::key.eq(key), k::document_url.eq(document_url)))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if inserted == 1 {
        return Ok(KeyClaim::Fresh);
    }
    let (url, status, body): (String, Option<i16>, Option<String>) = k::idempotency_keys
        .find(key)
        .select((k::document_url, k::response_status, k::response_body))
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
            .find(key)
            .filter(k::response_status.is_null())
            .filter(k::created_at.lt(Utc::now() - chrono::Duration::seconds(ABANDONED_AFTER_SECS))),
    )
    .set(k::created_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    Ok(if abandoned == 1 {
        KeyClaim::Fresh
    } else {
        KeyClaim::InProgress
    })
}

/// Stores the response given to the first request with `key`.
pub async fn complete_key(conn: &mut AsyncPgConnection, key: &str, status: u16, body: &str) -> QueryResult<()> {
    use idempotency_keys::dsl as k;
    diesel::update(k::idempotency_keys.find(key))
        .set((
            k::response_status.eq(i16::try_from(status).unwrap_or(i16::MAX)),
            k::response_body.eq(body),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// Frees `key` after a request that failed, so that a retry can run.
pub async fn release_key(conn: &mut AsyncPgConnection, key: &str) -> QueryResult<()> {
    use idempotency_keys::dsl as k;
    diesel::delete(k::idempotency_keys.find(key).filter(k::response_status.is_null()))
        .execute(conn)
        .await
        .map(drop)
}
