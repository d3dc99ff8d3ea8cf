//! HTTP routes of the help desk, one file per resource.

pub mod dead_letters;
pub mod document;
pub mod health;

use actix_web::web;

use crate::config::Role;

/// Registers the routes `role` serves. The server and the tests both use it.
pub fn configure(cfg: &mut web::ServiceConfig, role: Role) {
    hookline_kit::http::configure_extractors(cfg, hookline_kit::http::DEFAULT_BODY_LIMIT);
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz));
    if role.serves_api() {
        cfg.route("/document", web::post().to(document::create))
            .route("/document/{document_id}", web::get().to(document::show))
            .route(
                "/document/{document_id}/redeliver",
                web::post().to(dead_letters::redeliver),
            )
            .route("/dead-letters", web::get().to(dead_letters::list));
    }
}
