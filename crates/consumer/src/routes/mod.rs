//! HTTP routes of the consumer, one file per resource: each parses its
//! request, calls the service (`crate::inbox`, `crate::reviews`, `crate::db`)
//! and turns what it gets into the answer.

pub mod dashboard;
pub mod documents;
pub mod health;
pub mod helpdesk_events;
pub mod metrics;
pub mod webhook;

use actix_web::{HttpRequest, web};
use hookline_contract::{ErrorBody, headers};
use hookline_kit::http::{DEFAULT_BODY_LIMIT, configure_extractors};
use hookline_kit::trace::{Span, Tracer};

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

/// The span of a webhook's receipt (`name`: method and route): it continues
/// the delivery attempt's trace, names the message (`webhook-id`), and is
/// answered with the route's answer, so a refused one (a bad signature) is a
/// span with an error status.
fn receipt_span(tracer: &Tracer, name: &'static str, request: &HttpRequest) -> Span {
    let mut span = tracer.server(name, request.headers());
    if let Some(id) = request
        .headers()
        .get(headers::WEBHOOK_ID)
        .and_then(|id| id.to_str().ok())
    {
        span.set("hookline.webhook_id", id.to_owned());
    }
    span
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
