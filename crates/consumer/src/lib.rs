//! hookline's client application.
//!
//! A user asks for a document review (`POST /documents`); the consumer
//! records it in PostgreSQL, asks the Help Desk (`POST /document` with an
//! `X-Callback-Url`), and shows the review as `PENDING_REVIEW` until the
//! Help Desk's signed webhook (`POST /document/update`) says `ACCEPTED` or
//! `DECLINED`.

pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod helpdesk_client;
pub mod metrics;
pub mod openapi;
pub mod reconcile;
pub mod routes;
pub mod schema;
pub mod startup;

pub use config::Settings;
pub use startup::Application;
