//! HTTP routes of the help desk, one file per resource.

pub mod cases;
pub mod dashboard;
pub mod document;
pub mod endpoints;
pub mod health;
pub mod metrics;

use actix_web::web;

use crate::config::Role;

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
            .route("/cases", web::get().to(cases::recent))
            .route("/endpoints", web::get().to(endpoints::list))
            .route("/endpoints/{endpoint}", web::get().to(endpoints::show))
            .route("/endpoints/{endpoint}", web::put().to(endpoints::update))
            .route("/", web::get().to(dashboard::index))
            .route(
                "/assets/dashboard.css",
                web::get().to(hookline_kit::dashboard::stylesheet),
            )
            .route("/assets/helpdesk.js", web::get().to(dashboard::script))
            .route("/openapi.json", web::get().to(crate::openapi::serve));
    }
}
