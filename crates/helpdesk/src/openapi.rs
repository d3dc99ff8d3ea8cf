//! The help desk's OpenAPI 3.1 document, generated from the annotations on
//! the route handlers (utoipa) plus the webhook it sends (an OpenAPI
//! `webhooks` entry), served at `GET /openapi.json`. A copy is committed in
//! `docs/openapi/helpdesk.json`; the test below fails when the code and the
//! copy drift apart (`UPDATE_OPENAPI=1 cargo test -p hookline-helpdesk
//! openapi` rewrites the copy).

use actix_web::HttpResponse;
use hookline_contract::{
    DocumentEvent, DocumentWebhook, EndpointEvent, Event, EventType, MessageExhaustedEvent, TestEvent,
};
use hookline_kit::openapi::ApiKeyScheme;
use serde_json::json;
use utoipa::OpenApi;

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookline help desk",
        description = "A fake third-party Help Desk: accepts document reviews at once, decides them after a delay and POSTs the decision, signed (Standard Webhooks), to the client's callback URL, retrying until it gets through."
    ),
    paths(
        routes::document::create,
        routes::document::show,
        routes::cases::redeliver,
        routes::cases::recent,
        routes::cases::dead_letters,
        routes::recover::dead_letters,
        routes::recover::show,
        routes::chaos::report,
        routes::webhooks::create,
        routes::webhooks::list,
        routes::webhooks::show,
        routes::webhooks::update,
        routes::webhooks::delete,
        routes::webhooks::rotate_secret,
        routes::webhooks::test,
        routes::webhooks::enable,
        routes::webhooks::redeliver,
        routes::recover::subscription,
        routes::endpoints::list,
        routes::endpoints::show,
        routes::endpoints::update,
        routes::endpoints::resume,
        routes::dashboard::index,
        routes::health::healthz,
        routes::health::readyz,
        routes::metrics::serve,
    ),
    components(schemas(DocumentWebhook, Event, DocumentEvent, TestEvent, EndpointEvent, MessageExhaustedEvent, EventType)),
    modifiers(&HELPDESK_KEYS),
    tags(
        (name = "cases", description = "Review requests and their delivery"),
        (name = "subscriptions", description = "Subscriptions: URLs that receive chosen event types in the Standard Webhooks envelope, each signed with a secret of its own"),
        (name = "endpoints", description = "Where webhooks go: limits, pauses and circuit breakers per scheme, host and port"),
        (name = "dashboard", description = "The live page"),
        (name = "operations", description = "Health and metrics"),
    )
)]
struct ApiDoc;

/// The private routes' keys: `HELPDESK_API_KEYS`.
const HELPDESK_KEYS: ApiKeyScheme = ApiKeyScheme {
    setting: "HELPDESK_API_KEYS",
};

/// The document, as JSON, with the webhook the help desk sends.
pub fn document() -> serde_json::Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let header = |name: &str, description: &str| json!({"name": name, "in": "header", "required": true, "description": description, "schema": {"type": "string"}});
    let signed = [
        header(
            "webhook-id",
            "Stable across the attempts of one delivery: deduplicate on it",
        ),
        header("webhook-timestamp", "Unix seconds of this attempt"),
        header(
            "webhook-signature",
            "v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}> under the subscription's secret; during a rotation's overlap one per secret (new and old)",
        ),
    ];
    let event = |name: &str, summary: &str, data: &str| {
        json!({"post": {
            "summary": summary,
            "description": format!("Sent to every enabled subscription of the tenant that lists `{name}`, as its own delivery \
                (its own attempts, retries and dead letter), signed with that subscription's secret. The envelope's \
                `data` is a {data}. Retried as the callback is (2xx ends it, 410 stops it)."),
            "parameters": signed,
            "requestBody": {"required": true, "content": {"application/json": {
                "schema": {"allOf": [
                    {"$ref": "#/components/schemas/Event"},
                    {"type": "object", "properties": {
                        "type": {"const": name},
                        "data": {"$ref": format!("#/components/schemas/{data}")}
                    }}
                ]}
            }}},
            "responses": {
                "2XX": {"description": "Delivered: no more attempts"},
                "410": {"description": "Gone: no more attempts, dead-lettered, and the subscription is disabled"},
                "default": {"description": "Retried later"}
            }
        }})
    };
    document["webhooks"] = json!({
        "document.received": event("document.received", "A document was accepted for review (the 202 of POST /document); sequence 1", "DocumentEvent"),
        "document.accepted": event("document.accepted", "The agent accepted the document; sequence 2", "DocumentEvent"),
        "document.declined": event("document.declined", "The agent declined the document; sequence 2", "DocumentEvent"),
        "webhook.test": event("webhook.test", "A test event asked for with POST /webhooks/{id}/test", "TestEvent"),
        "endpoint.disabled": event("endpoint.disabled", "Operational: another subscription of the tenant was disabled (its receiver answered 410 Gone, or failed for DISABLE_AFTER with DISABLE_AFTER_DEAD dead letters in a row); never sent to that subscription", "EndpointEvent"),
        "endpoint.enabled": event("endpoint.enabled", "Operational: another subscription of the tenant was enabled again (POST /webhooks/{id}/enable)", "EndpointEvent"),
        "message.attempt.exhausted": event("message.attempt.exhausted", "Operational: a message for another subscription of the tenant became a dead letter (retries used up, or 410 Gone); a dead message.attempt.exhausted tells of nothing more", "MessageExhaustedEvent"),
        "documentDecided": {"post": {
            "summary": "The decision, POSTed to the X-Callback-Url given at POST /document",
            "description": "Sent when the simulated agent has decided. Any 2xx ends the delivery; 410 Gone stops it; \
                anything else (or no whole answer within DELIVERY_TIMEOUT, body included) is retried per RETRY_SCHEDULE, \
                then dead-lettered; Retry-After on 429/503 pauses every webhook to the endpoint for that long, at most RETRY_AFTER_MAX (5 minutes unless set). \
                The same webhook-id is used for every attempt.",
            "parameters": [
                header("webhook-id", "Stable across the attempts of one delivery: deduplicate on it"),
                header("webhook-timestamp", "Unix seconds of this attempt"),
                header("webhook-signature", "v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>, one per secret"),
            ],
            "requestBody": {"required": true, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/DocumentWebhook"}
            }}},
            "responses": {
                "2XX": {"description": "Delivered: no more attempts"},
                "410": {"description": "Gone: no more attempts, the case is dead-lettered"},
                "default": {"description": "Retried later"}
            }
        }}
    });
    document
}

/// `GET /openapi.json`.
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_openapi_document_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi/helpdesk.json");
        hookline_kit::openapi::check_committed(&super::document(), path).unwrap();
    }
}
