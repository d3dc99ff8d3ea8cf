//! HTTP routes of the consumer, one file per resource: each parses its
//! request, calls the service (`crate::inbox`, `crate::reviews`, `crate::db`)
//! and turns what it gets into the answer.

pub mod dashboard;
pub mod documents;
pub mod health;
pub mod helpdesk_events;
pub mod metrics;
pub mod webhook;

use actix_web::web;
use hookline_contract::ErrorBody;
use hookline_kit::http::{DEFAULT_BODY_LIMIT, configure_extractors};

/// What every private route may answer besides its own (in its OpenAPI
/// `responses`): no accepted key, or the key over its rate. Private routes
/// take [`hookline_kit::auth::Authorized`].
#[derive(utoipa::IntoResponses)]
pub enum Private {
    /// CONSUMER_API_KEYS is set and no accepted key was sent (Authorization: Bearer <key>)
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The key made more than API_RATE requests a second; retry after `Retry-After` seconds
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
}

/// Registers every route. The server and the tests both use it.
pub fn configure(cfg: &mut web::ServiceConfig) {
    configure_extractors(cfg, DEFAULT_BODY_LIMIT);
    cfg.route("/", web::get().to(dashboard::index))
        .route(
            "/assets/dashboard.css",
            web::get().to(hookline_kit::dashboard::stylesheet),
        )
        .route("/assets/consumer.js", web::get().to(dashboard::script))
        .route("/events", web::get().to(dashboard::events))
        .route("/openapi.json", web::get().to(crate::openapi::serve))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::serve))
        .route("/documents", web::post().to(documents::create))
        .route("/documents", web::get().to(documents::list))
        .route("/documents/{id}", web::get().to(documents::show))
        .route("/document/update", web::post().to(webhook::receive))
        .route(
            crate::subscription::EVENTS_PATH,
            web::post().to(helpdesk_events::receive),
        );
}
