//! The consumer's OpenAPI 3.1 document, generated from the annotations on
//! the route handlers (utoipa) and served at `GET /openapi.json`. A copy is
//! committed in `docs/openapi/consumer.json`; the test below fails when the
//! code and the copy drift apart (`UPDATE_OPENAPI=1 cargo test -p
//! hookline-consumer openapi` rewrites the copy).

use actix_web::HttpResponse;
use hookline_kit::openapi::ApiKeyScheme;
use utoipa::OpenApi;

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookline consumer",
        description = "The client app of hookline: asks the Help Desk to review documents and receives the decisions by webhook."
    ),
    paths(
        routes::documents::create,
        routes::documents::list,
        routes::documents::show,
        routes::webhook::receive,
        routes::helpdesk_events::receive,
        routes::dashboard::index,
        routes::dashboard::events,
        routes::health::healthz,
        routes::health::readyz,
        routes::metrics::serve,
    ),
    modifiers(&CONSUMER_KEYS),
    tags(
        (name = "reviews", description = "Ask for reviews and read them"),
        (name = "webhooks", description = "Where the Help Desk delivers its decisions (Standard Webhooks, signed)"),
        (name = "dashboard", description = "The live page and its server-sent events"),
        (name = "operations", description = "Health and metrics"),
    )
)]
struct ApiDoc;

/// The private routes' keys: `CONSUMER_API_KEYS`.
const CONSUMER_KEYS: ApiKeyScheme = ApiKeyScheme {
    setting: "CONSUMER_API_KEYS",
};

/// The document, as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}

/// `GET /openapi.json`.
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_openapi_document_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi/consumer.json");
        hookline_kit::openapi::check_committed(&super::document(), path).unwrap();
    }
}
