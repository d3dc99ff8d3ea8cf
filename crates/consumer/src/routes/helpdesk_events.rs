//! `POST /helpdesk/events`: our subscription's events
//! (`HELPDESK_SUBSCRIBE=true`, see [`crate::subscription`]), taken by the
//! [inbox](crate::inbox) exactly as the per-request webhook is: the same
//! steps, limits, error shapes, receipts and metric.

use actix_web::{HttpRequest, HttpResponse, web};
use hookline_contract::{ErrorBody, Event, WebhookAck};

use hookline_kit::trace::Tracer;

use crate::error::Error;
use crate::inbox::{Delivery, Inbox};

#[utoipa::path(
    post, path = "/helpdesk/events", tag = "webhooks", operation_id = "receive_event",
    request_body(content = Event, content_type = "application/json",
        description = "The Standard Webhooks envelope; `data` is a DocumentEvent for `document.*`"),
    params(
        ("webhook-id" = String, Header, description = "Standard Webhooks message id, stable across retries"),
        ("webhook-timestamp" = String, Header, description = "Unix seconds of this attempt"),
        ("webhook-signature" = String, Header, description = "v1,<base64 HMAC-SHA256> under the subscription's secret, space-separated"),
    ),
    responses(
        (status = 200, description = "A decision applied (or a harmless repeat), or a document.received noted (outcome recorded)", body = WebhookAck),
        (status = 204, description = "webhook.test, or an event type this consumer does not act on: acknowledged, nothing done"),
        (status = 400, description = "Malformed request (the body names the field)", body = ErrorBody),
        (status = 401, description = "Unsigned, forged or stale event", body = ErrorBody),
        (status = 404, description = "No review has this documentId (yet), or this consumer does not subscribe (HELPDESK_SUBSCRIBE off)", body = ErrorBody),
        (status = 409, description = "Contradicts the stored decision", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 503, description = "Storage unavailable, or no subscription secret yet; retry later", body = ErrorBody),
    )
)]
pub async fn receive(
    request: HttpRequest,
    body: web::Bytes,
    inbox: web::Data<Inbox>,
    tracer: web::Data<Tracer>,
) -> Result<HttpResponse, Error> {
    let mut span = super::receipt_span(&tracer, "POST /helpdesk/events", &request);
    let delivery = Delivery {
        headers: request.headers(),
        body: &body,
    };
    let answer = inbox.event(delivery).await.respond();
    span.answer(&answer);
    answer
}
