//! hookline's fake third-party Help Desk.
//!
//! `POST /document` accepts a review at once and schedules it as a job in
//! Redis ([`queue`]); after the review delay a [`worker`] claims the job,
//! the simulated agent decides (ACCEPTED with probability `ACCEPT_RATIO`),
//! and the decision is POSTed as a signed webhook to the client's callback
//! URL ([`delivery`]), retried until it gets through or runs out of retries.
//! Each [`endpoint`] a webhook goes to has limits of its own (in flight,
//! rate, a pause on `Retry-After`, a circuit breaker), so one bad receiver
//! never delays the others.
//! Callback addresses pass the [`ssrf`] policy when the case is created and
//! again when each webhook goes out.

pub mod config;
pub mod delivery;
pub mod endpoint;
pub mod metrics;
pub mod openapi;
pub mod queue;
pub mod routes;
pub mod ssrf;
pub mod startup;
pub mod worker;

pub use config::Settings;
pub use startup::Application;
