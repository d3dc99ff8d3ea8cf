//! HTTP routes of the help desk, one file per resource.

pub mod cases;
pub mod chaos;
pub mod dashboard;
pub mod document;
pub mod endpoints;
pub mod health;
pub mod metrics;
pub mod recover;
pub mod webhooks;

use actix_web::web;
use hookline_contract::ErrorBody;
use hookline_kit::http::ApiError;
use serde::Deserialize;

use crate::config::Role;

/// What every private route may answer besides its own (in its OpenAPI
/// `responses`): no accepted key, the key over its rate, or the store
/// unreachable.
#[derive(utoipa::IntoResponses)]
pub enum PrivateErrors {
    /// HELPDESK_API_KEYS is set and no accepted key was sent
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The key made more than API_RATE requests a second; retry after `Retry-After` seconds
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
    /// Redis unavailable; retry later
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// A signature dialect named in a request (`field`: the body's `dialect` or
/// the `Hookline-Dialect` header): one of ours, case-insensitively, or a 400
/// `unknown_dialect` naming them all.
pub(crate) fn parse_dialect(raw: &str, field: &'static str) -> Result<hookline_contract::dialect::Dialect, ApiError> {
    raw.parse()
        .map_err(|e: hookline_contract::dialect::UnknownDialect| ApiError::BadRequest {
            code: "unknown_dialect",
            field: Some(field),
            detail: format!("{field}: {e}"),
        })
}

/// A request that does not parse, answered 400 (in a route's OpenAPI `responses`).
#[derive(utoipa::IntoResponses)]
#[response(status = 400, description = "Malformed request (the body names the field)")]
pub struct Malformed(pub ErrorBody);

/// `?limit=`, of the listings (`/cases`, `/dead-letters`, `/endpoints`).
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
}

impl ListQuery {
    const DEFAULT: usize = 50;
    const MAX: usize = 500;

    /// The limit asked for, 50 if none; outside 1 to 500 is a 400.
    pub fn limit(&self) -> Result<usize, ApiError> {
        let limit = self.limit.unwrap_or(Self::DEFAULT);
        if !(1..=Self::MAX).contains(&limit) {
            return Err(ApiError::invalid("limit", "must be between 1 and 500"));
        }
        Ok(limit)
    }
}

/// Registers the routes `role` serves. The server and the tests both use it.
pub fn configure(cfg: &mut web::ServiceConfig, role: Role) {
    hookline_kit::http::configure_extractors(cfg, hookline_kit::http::DEFAULT_BODY_LIMIT);
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::serve));
    if role.serves_api() {
        cfg.route("/document", web::post().to(document::create))
            .route("/document/{document_id}", web::get().to(document::show))
            .route("/document/{document_id}/redeliver", web::post().to(cases::redeliver))
            .route("/dead-letters", web::get().to(cases::dead_letters))
            .route("/dead-letters/redeliver", web::post().to(recover::dead_letters))
            .route("/recoveries/{id}", web::get().to(recover::show))
            .route("/cases", web::get().to(cases::recent))
            .route("/chaos", web::get().to(chaos::report))
            .route("/webhooks", web::post().to(webhooks::create))
            .route("/webhooks", web::get().to(webhooks::list))
            .route("/webhooks/{id}", web::get().to(webhooks::show))
            .route("/webhooks/{id}", web::patch().to(webhooks::update))
            .route("/webhooks/{id}", web::delete().to(webhooks::delete))
            .route("/webhooks/{id}/rotate-secret", web::post().to(webhooks::rotate_secret))
            .route("/webhooks/{id}/test", web::post().to(webhooks::test))
            .route("/webhooks/{id}/recover", web::post().to(recover::subscription))
            .route("/webhooks/{id}/enable", web::post().to(webhooks::enable))
            .route(
                "/webhooks/{id}/redeliver/{webhook_id}",
                web::post().to(webhooks::redeliver),
            )
            .route("/endpoints", web::get().to(endpoints::list))
            .route("/endpoints/{endpoint}", web::get().to(endpoints::show))
            .route("/endpoints/{endpoint}", web::put().to(endpoints::update))
            .route("/endpoints/{endpoint}/resume", web::post().to(endpoints::resume))
            .route("/", web::get().to(dashboard::index))
            .route(
                "/assets/dashboard.css",
                web::get().to(hookline_kit::dashboard::stylesheet),
            )
            .route("/assets/helpdesk.js", web::get().to(dashboard::script))
            .route("/openapi.json", web::get().to(crate::openapi::serve));
    }
}
