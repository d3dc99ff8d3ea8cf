//! hookline's client application.
//!
//! A user asks for a document review (`POST /documents`); the consumer
//! records it in PostgreSQL, asks the Help Desk (`POST /document` with an
//! `X-Callback-Url`), and shows the review as `PENDING_REVIEW` until the
//! Help Desk's signed webhook (`POST /document/update`) says `ACCEPTED` or
//! `DECLINED`. With `HELPDESK_SUBSCRIBE=true` it subscribes instead, and the
//! decisions come as events of its subscription (`POST /helpdesk/events`).

/// Settings: every one a flag with an environment variable (`consumer --help`).
pub mod config;
/// PostgreSQL: the pool and migrations, and the queries by concern.
pub mod db;
/// What the routes answer with when they fail, decided in one place.
pub mod error;
/// Live review updates for the dashboard (server-sent events).
pub mod events;
/// The help desk's API as the consumer calls it, within `HELPDESK_TIMEOUT`.
pub mod helpdesk_client;
/// Webhooks and subscription events taken in: verified, applied with their receipt, answered.
pub mod inbox;
/// The Prometheus metrics, each listed with its labels.
pub mod metrics;
/// The OpenAPI document, generated from the routes.
pub mod openapi;
/// Reconciliation: asking the help desk about reviews whose webhook never came.
pub mod reconcile;
/// Live updates across replicas: PostgreSQL LISTEN/NOTIFY.
pub mod relay;
/// Retention: old webhook receipts and idempotency keys removed in batches.
pub mod retention;
/// Creating a review: the help desk call, its retries, the `Idempotency-Key`.
pub mod reviews;
/// The HTTP routes, one file per resource, thin over the services above.
pub mod routes;
/// The tables, as `diesel print-schema` writes them from the migrations.
pub mod schema;
/// `Application::build`: migrations, the pool, the listener, the tasks, the server.
pub mod startup;
/// The subscription at the help desk, set up in the background; then its events replace the callback.
pub mod subscription;
/// The background tasks' owner: a dead task is logged and fails `/readyz`.
pub mod supervisor;
/// Group commit: the writes of `POST /documents` that arrive together share a statement.
pub mod writer;

pub use config::Settings;
pub use startup::Application;
