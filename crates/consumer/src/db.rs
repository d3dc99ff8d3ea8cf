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

use crate::schema::{document_reviews, idempotency_keys};

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
pub(crate) const POOL_TIMEOUT: Duration = Duration::from_secs(5);

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
///
/// Connections are recycled the fast way: a connection whose socket closed
/// (the server restarted, the backend was terminated) or whose transaction
/// broke is dropped, but there is no `SELECT 1` before each use. That check
/// would be every other round trip of the webhook path (which is one
/// statement) and 82,000 of them in one benchmark run; what it would catch (a connection that died since its last use and the client
/// has not noticed yet) fails its query with a connection error instead,
/// which is answered 503 (see `error.rs`) so the client retries — and the
/// broken connection is not reused.
pub fn pool(database_url: &str, size: usize) -> Result<Pool, DbSetupError> {
    let mut config = diesel_async::pooled_connection::ManagerConfig::default();
    config.recycling_method = diesel_async::pooled_connection::RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, config);
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

/// Applies the help desk's decision: the status change and the record of its
/// `webhook-id` commit together or not at all. The review is found by
/// `document_id`, or else by the echoed `request_id` if the webhook overtook
/// the help desk's answer to our request.
///
/// It is one statement ([`DecideStatement`]), so one round trip on a cached
/// prepared statement; the same logic as a transaction of separate queries
/// took seven (BEGIN, receipt lookup, locking SELECT, UPDATE, receipt INSERT,
/// COMMIT, and the pool's check) and was the largest share of the
/// consumer's database time under load (docs/BENCHMARKS.md).
pub async fn apply_decision(conn: &mut AsyncPgConnection, incoming: IncomingDecision<'_>) -> QueryResult<Decision> {
    let (duplicate, applied, row): (bool, Option<bool>, Option<ReviewRow>) =
        DecideStatement(incoming).get_result(conn).await?;
    let decision = incoming.decision;
    Ok(match (duplicate, applied, row) {
        (true, _, _) => Decision::Duplicate,
        (false, Some(true), Some(row)) => Decision::Applied(row),
        (false, _, Some(row)) if row.status() == decision => Decision::AlreadyApplied(row),
        // Not applied although found: the review holds the other decision
        // (the statement only changes a PENDING_REVIEW row).
        (false, _, Some(row)) => Decision::Contradicts(row),
        (false, _, None) => Decision::UnknownReview,
    })
}

/// The statement behind [`apply_decision`], written by hand because Diesel's
/// query builder has no data-modifying CTEs; its binds are typed and its
/// [`QueryId`] is static, so diesel-async prepares it once per connection.
///
/// ```sql
/// WITH seen AS (                -- this webhook-id was applied before
///     SELECT 1 FROM webhook_receipts WHERE webhook_id = $webhook_id
/// ), target AS (                -- else the review, locked
///     SELECT <review> FROM document_reviews
///     WHERE id = COALESCE((SELECT id FROM document_reviews WHERE document_id = $document_id), $request_id)
///       AND (document_id = $document_id OR document_id IS NULL)
///       AND NOT EXISTS (SELECT 1 FROM seen)
///     LIMIT 1 FOR UPDATE
/// ), applied AS (               -- moved only from PENDING_REVIEW
///     UPDATE document_reviews r SET document_status = $decision, ...
///     FROM target t WHERE r.id = t.id AND t.document_status = 'PENDING_REVIEW'
///     RETURNING <review>
/// ), receipt AS (               -- recorded with the change, in the same statement
///     INSERT INTO webhook_receipts ... SELECT ... FROM applied WHERE $webhook_id IS NOT NULL
///     ON CONFLICT DO NOTHING
/// )
/// SELECT EXISTS (SELECT 1 FROM seen), o.applied, o.<review>
/// FROM (VALUES (1)) one LEFT JOIN (applied rows UNION ALL target rows if none applied) o ON true
/// ```
///
/// Why it is correct under concurrency (READ COMMITTED): `FOR UPDATE` waits
/// for a transaction holding the row and then re-checks the row's *newest*
/// version against the `WHERE`, so
/// - a copy of the same webhook racing this one finds the review decided,
///   and this one answers "already applied" (2xx) without a second receipt;
/// - a contradicting webhook racing this one finds the first decision and is
///   refused;
/// - if `attach_ticket` stores the document id while this runs, the newest
///   version matches by `document_id` (a lookup in two statements would miss
///   the review in between: a webhook lost, which happened in an early
///   version).
///
/// The lookup is written so that its plan is two unique-index probes (by
/// `document_id`, then the primary key) whatever the parameters: the plain
/// `document_id = $1 OR (id = $2 AND document_id IS NULL)` gets a generic
/// plan (prepared statements switch to one after five runs) that scans the
/// `document_id IS NULL` entries of the unique index, and every review ever
/// created leaves a dead one there until vacuum: 2.85 ms per webhook after
/// 40,000 reviews instead of 0.21 ms (measured with pg_stat_statements).
///
/// `tests/trust.rs` and `tests/review_flow.rs` race these cases on purpose.
#[derive(Debug, Clone, Copy)]
struct DecideStatement<'a>(IncomingDecision<'a>);

/// The review's columns, in [`ReviewRow`]'s order.
const REVIEW_COLUMNS: &str = "id, document_url, agent_id, document_id, document_status, created_at, updated_at";

impl diesel::query_builder::QueryId for DecideStatement<'_> {
    type QueryId = DecideStatement<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::Query for DecideStatement<'_> {
    type SqlType = (
        Bool,
        Nullable<Bool>,
        // ReviewRow's columns
        Nullable<(
            diesel::sql_types::Uuid,
            diesel::sql_types::Text,
            Nullable<diesel::sql_types::Text>,
            Nullable<diesel::sql_types::Text>,
            diesel::sql_types::Text,
            diesel::sql_types::Timestamptz,
            diesel::sql_types::Timestamptz,
        )>,
    );
}

impl diesel::query_builder::QueryFragment<Pg> for DecideStatement<'_> {
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        use diesel::sql_types::{Text, Uuid as SqlUuid};
        let IncomingDecision {
            document_id,
            agent_id,
            request_id,
            decision,
            webhook_id,
        } = &self.0;
        out.push_sql("WITH seen AS (SELECT 1 FROM webhook_receipts WHERE webhook_id = ");
        out.push_bind_param::<Nullable<Text>, _>(webhook_id)?;
        out.push_sql("), target AS (SELECT ");
        out.push_sql(REVIEW_COLUMNS);
        out.push_sql(
            " FROM document_reviews WHERE id = COALESCE((SELECT id FROM document_reviews WHERE document_id = ",
        );
        out.push_bind_param::<Text, _>(document_id)?;
        out.push_sql("), ");
        out.push_bind_param::<Nullable<SqlUuid>, _>(request_id)?;
        out.push_sql(") AND (document_id = ");
        out.push_bind_param::<Text, _>(document_id)?;
        out.push_sql(" OR document_id IS NULL) AND NOT EXISTS (SELECT 1 FROM seen) LIMIT 1 FOR UPDATE), ");
        out.push_sql("applied AS (UPDATE document_reviews r SET document_status = ");
        out.push_bind_param::<Text, _>(decision.as_str())?;
        out.push_sql(", updated_at = CURRENT_TIMESTAMP, document_id = ");
        out.push_bind_param::<Text, _>(document_id)?;
        out.push_sql(", agent_id = COALESCE(r.agent_id, ");
        out.push_bind_param::<Text, _>(agent_id)?;
        out.push_sql(") FROM target t WHERE r.id = t.id AND t.document_status = ");
        out.push_bind_param::<Text, _>(DocumentStatus::PendingReview.as_str())?;
        out.push_sql(" RETURNING r.id, r.document_url, r.agent_id, r.document_id, r.document_status, ");
        out.push_sql("r.created_at, r.updated_at), receipt AS (INSERT INTO webhook_receipts ");
        out.push_sql("(webhook_id, review_id, document_status) SELECT ");
        out.push_bind_param::<Nullable<Text>, _>(webhook_id)?;
        out.push_sql("::text, id, document_status FROM applied WHERE ");
        out.push_bind_param::<Nullable<Text>, _>(webhook_id)?;
        out.push_sql("::text IS NOT NULL ON CONFLICT DO NOTHING) SELECT EXISTS (SELECT 1 FROM seen), o.applied, ");
        out.push_sql("o.id, o.document_url, o.agent_id, o.document_id, o.document_status, o.created_at, o.updated_at ");
        out.push_sql("FROM (VALUES (1)) AS one (x) LEFT JOIN (SELECT true AS applied, * FROM applied UNION ALL ");
        out.push_sql("SELECT false, * FROM target WHERE NOT EXISTS (SELECT 1 FROM applied)) AS o ON true");
        Ok(())
    }
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
