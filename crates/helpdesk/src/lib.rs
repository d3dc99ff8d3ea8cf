//! hookline's fake third-party Help Desk.
//!
//! `POST /document` accepts a review at once and schedules it as a job in
//! Redis ([`store`]); after the review delay a [`worker`] claims the job,
//! the simulated agent decides (ACCEPTED with probability `ACCEPT_RATIO`),
//! and the decision is POSTed as a signed webhook to the client's callback
//! URL ([`delivery`]), retried until it gets through or runs out of retries.
//! Each [`endpoint`] a webhook goes to has limits of its own (in flight,
//! rate, a pause on `Retry-After`, a circuit breaker), so one bad receiver
//! never delays the others.
//! Callback addresses pass the [`ssrf`] policy when the case is created and
//! again when each webhook goes out. With a [`chaos`] profile it also
//! misbehaves on purpose, as providers do, to test receivers.

/// Chaos: faults sent around the real delivery (duplicates, forgeries, ...).
pub mod chaos;
/// Settings: every one a flag with an environment variable (`helpdesk --help`).
pub mod config;
/// One webhook attempt: sign, POST, judge the answer, all within one deadline.
pub mod delivery;
/// Endpoints: the scheme, host and port a webhook goes to, as the limits see it.
pub mod endpoint;
/// What the routes answer with when they fail, decided in one place.
pub mod error;
/// The Prometheus metrics, each listed with its labels.
pub mod metrics;
/// The OpenAPI document, generated from the routes.
pub mod openapi;
/// Recovery after an outage: dead letters of a window sent again.
pub mod recover;
/// Retention: finished cases forgotten after CASE_RETENTION.
pub mod retention;
/// The retry policy: what an attempt means for its job and its endpoint.
pub mod retry;
/// The HTTP routes, one file per resource.
pub mod routes;
/// Who signs a case's callback: its tenant's secrets (TENANT_SECRETS) or WEBHOOK_SECRET.
pub mod signing;
/// Where callbacks may go: the SSRF guard, at `POST /document` and at delivery.
pub mod ssrf;
/// `Application::build`: Redis, the listener, the server and the worker.
pub mod startup;
/// The store in Redis: cases and their jobs, endpoints, subscriptions, the Lua scripts.
pub mod store;
/// The delivery worker: claims due jobs, delivers them, records each outcome.
pub mod worker;

pub use config::Settings;
pub use startup::Application;
