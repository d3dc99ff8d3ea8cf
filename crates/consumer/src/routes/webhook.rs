//! `POST /document/update`: the per-request webhook, taken by the
//! [inbox](crate::inbox) (signature, ids, decision with its receipt, answer).

use actix_web::{HttpRequest, HttpResponse, web};
use hookline_contract::{DocumentWebhook, ErrorBody, WebhookAck};

use hookline_kit::trace::Tracer;

use crate::error::Error;
use crate::inbox::{Delivery, Inbox};

#[utoipa::path(
    post, path = "/document/update", tag = "webhooks",
    request_body(content = DocumentWebhook, content_type = "application/json"),
    params(
        ("webhook-id" = String, Header, description = "Standard Webhooks message id, stable across retries"),
        ("webhook-timestamp" = String, Header, description = "Unix seconds of this attempt"),
        ("webhook-signature" = String, Header, description = "v1,<base64 HMAC-SHA256>, space-separated"),
    ),
    responses(
        (status = 200, description = "Applied, or a harmless repeat", body = WebhookAck),
        (status = 400, description = "Malformed request (the body names the field)", body = ErrorBody),
        (status = 401, description = "Unsigned, forged or stale webhook", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "Conflict", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 503, description = "Storage unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn receive(
    request: HttpRequest,
    body: web::Bytes,
    inbox: web::Data<Inbox>,
    tracer: web::Data<Tracer>,
) -> Result<HttpResponse, Error> {
    let mut span = super::receipt_span(&tracer, "POST /document/update", &request);
    let delivery = Delivery {
        headers: request.headers(),
        body: &body,
    };
    let answer = inbox.webhook(delivery).await.respond();
    span.answer(&answer);
    answer
}
