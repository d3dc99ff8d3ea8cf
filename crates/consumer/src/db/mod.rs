//! Storage of reviews in PostgreSQL with Diesel (diesel-async on a deadpool
//! pool: no blocking calls on the async threads, no libpq). Queries are plain
//! functions over a connection returning `QueryResult`, one file per concern;
//! this module holds the pool, the migrations, and re-exports them all.

use std::time::Duration;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// The help desk's decision, applied in one statement.
mod decision;
/// `Idempotency-Key`s of `POST /documents`.
mod idempotency;
/// The reconciler's queries: pending reviews to ask the help desk about.
mod reconcile;
/// Retention: old webhook receipts and idempotency keys, removed in batches.
mod retention;
/// Reviews: created, attached to their help desk case, read, listed, counted.
mod reviews;
/// The subscription at the help desk (its secret) and its `document.received`.
mod subscription;

pub use decision::{Decision, IncomingDecision, apply_decision};
pub use idempotency::{IdempotencyKey, KeyClaim, claim_key, complete_key, release_key};
pub use reconcile::{StaleReview, mark_lost, take_stale};
pub use retention::{prune_idempotency_keys, prune_receipts};
pub use reviews::{
    PageStart, ReviewRow, attach_ticket, attach_tickets, count_by_status, delete_requested, find, find_many,
    insert_requested, insert_requested_many, list,
};
pub use subscription::{
    IncomingReceipt, StoredSubscription, find_subscription, lock_subscription_setup, record_received, save_subscription,
};

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
    #[error("cannot take the migration lock")]
    Lock(#[source] diesel::result::Error),
    #[error("cannot run the migrations")]
    Migrate(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the migration thread died")]
    Thread,
    #[error("cannot build the connection pool")]
    Pool(#[from] diesel_async::pooled_connection::deadpool::BuildError),
}

/// The session advisory lock that serializes migrations: replicas starting
/// together take turns, the later ones finding nothing left to do (without
/// it, two could run the same migration at once, and one fail on the
/// other's table). An arbitrary constant ("hookline" in ASCII).
const MIGRATION_LOCK: i64 = 0x686f_6f6b_6c69_6e65;

/// Applies pending migrations, one replica at a time ([`MIGRATION_LOCK`]).
/// Diesel's migration harness is synchronous, so it runs on a thread of its
/// own (with its own small runtime) rather than blocking an async thread.
pub async fn run_migrations(database_url: &str) -> Result<Vec<String>, DbSetupError> {
    let url = database_url.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = (|| {
            type SyncPg = diesel_async::async_connection_wrapper::AsyncConnectionWrapper<AsyncPgConnection>;
            let mut conn = <SyncPg as diesel::Connection>::establish(&url)?;
            // Released with the session, whatever happens below.
            let lock = diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"));
            diesel::RunQueryDsl::execute(lock, &mut conn).map_err(DbSetupError::Lock)?;
            conn.run_pending_migrations(MIGRATIONS)
                .map(|versions| versions.iter().map(ToString::to_string).collect())
                .map_err(DbSetupError::Migrate)
        })();
        let _ = tx.send(result);
    });
    rx.await.unwrap_or(Err(DbSetupError::Thread))
}

/// A pool of `size` connections that gives up after [`POOL_TIMEOUT`].
///
/// Connections are recycled the fast way: a connection whose socket closed
/// (the server restarted, the backend was terminated) or whose transaction
/// broke is dropped, but there is no `SELECT 1` before each use: that check
/// would be every other round trip of the webhook path, which is one
/// statement. What it would catch (a connection that died since its last use
/// and the client has not noticed yet) fails its query with a connection
/// error instead, which is answered 503 (`error.rs`) so the client retries,
/// and the broken connection is not reused.
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

/// Is the database answering?
pub async fn ping(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::select(1.into_sql::<diesel::sql_types::Integer>())
        .execute(conn)
        .await
        .map(drop)
}

/// A database error that means the connection is gone, not that the
/// statement was wrong.
pub fn connection_lost(error: &DieselError) -> bool {
    match error {
        // diesel-async reports an error without an SQLSTATE (the socket
        // closed or failed mid-query) as UnableToSendCommand.
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _)
        | DieselError::BrokenTransactionManager => true,
        // tokio-postgres reports a connection lost mid-query (server shut
        // down, backend terminated) as an error of unknown kind.
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            info.message().contains("connection") || info.message().contains("terminating")
        }
        _ => false,
    }
}

/// Whether a database error may go away by itself, so a background task
/// tries again rather than dying (`crate::supervisor`): a lost connection, a
/// serialization failure, a read-only database (a failover under way).
pub fn retryable(error: &DieselError) -> bool {
    connection_lost(error)
        || matches!(
            error,
            DieselError::DatabaseError(
                DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::ReadOnlyTransaction,
                _
            )
        )
}
