//! `POST /helpdesk/events`: the receiver of our subscription's events
//! (`HELPDESK_SUBSCRIBE=true`, see [`crate::subscription`]).
//!
//! Each event is a Standard Webhooks message signed with the
//! subscription's own secret (not `WEBHOOK_SECRET`), its body the envelope
//! `{"type", "timestamp", "data"}`. It goes through the same steps as the
//! per-request webhook ([`webhook`]): the signature over the raw bytes first,
//! then the body, then one statement; the same limits, error shapes,
//! receipts and metric.
//!
//! By type ([`classify`]):
//! - `document.accepted` / `document.declined`: the decision, applied exactly
//!   as the webhook's ([`webhook::apply`]: with its receipt in one
//!   statement, found by the echoed id if it overtook the help desk's answer);
//! - `document.received`: `receivedAt` is noted on the review, never its
//!   status, so one that arrives after the decision (events can come out of
//!   order; its `sequence` 1 is older than the decision's 2) changes nothing
//!   that matters;
//! - `webhook.test`: acknowledged (204) and logged;
//! - any other type: acknowledged (204) and ignored. The help desk may add
//!   event types, and a receiver that refused them would only make it retry
//!   each one until it gives up, counting us as failing; a subscription only
//!   gets the types it asked for, so this is rare, and it is logged.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use hookline_contract::{DocumentEvent, DocumentStatus, ErrorBody, Event, EventType, WebhookAck};
use hookline_kit::http::ApiError;

use crate::db;
use crate::error::Error;
use crate::events::ReviewEvents;
use crate::metrics::ConsumerMetrics;
use crate::routes::webhook::{self, Ids, Received, WebhookSlots};
use crate::subscription::SubscriptionState;
use crate::writer::Writer;

/// What an event asks of us.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `document.received`: note when the help desk took the document.
    Received(DocumentEvent, DateTime<Utc>),
    /// `document.accepted` / `document.declined`.
    Decided(DocumentEvent, DocumentStatus),
    /// `webhook.test`.
    Test,
    /// A type this consumer does not know.
    Unknown(String),
}

/// Reads an event's envelope: what it asks of us, or why it is malformed.
/// The type is read first, on its own, so that an unknown one is tolerated
/// rather than failing the envelope's parse.
pub fn classify(envelope: serde_json::Value) -> Result<Action, ApiError> {
    let name = envelope
        .get("type")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| ApiError::invalid("type", "must be a string"))?;
    if name.parse::<EventType>().is_err() {
        return Ok(Action::Unknown(name.to_owned()));
    }
    let event: Event =
        serde_json::from_value(envelope).map_err(|e| ApiError::bad_body("invalid_body", None, e.to_string()))?;
    let document = || -> Result<DocumentEvent, ApiError> {
        serde_json::from_value(event.data.clone())
            .map_err(|e| ApiError::bad_body("invalid_body", Some("data".to_owned()), e.to_string()))
    };
    Ok(match event.event_type {
        EventType::WebhookTest => Action::Test,
        EventType::DocumentReceived => Action::Received(document()?, event.timestamp),
        decided @ (EventType::DocumentAccepted | EventType::DocumentDeclined) => {
            let data = document()?;
            let decision = data.document_status;
            // The type and the status must say the same thing: an event that
            // contradicts itself decides nothing.
            if EventType::of_decision(decision) != Some(decided) {
                return Err(ApiError::invalid(
                    "data.documentStatus",
                    format!("must match the event type {decided}"),
                ));
            }
            Action::Decided(data, decision)
        }
    })
}

#[tracing::instrument(name = "event", skip_all, fields(event_type = tracing::field::Empty, document_id = tracing::field::Empty, webhook_id = tracing::field::Empty))]
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
    subscription: web::Data<SubscriptionState>,
    writer: web::Data<Writer>,
    slots: web::Data<WebhookSlots>,
    events: web::Data<ReviewEvents>,
    metrics: web::Data<ConsumerMetrics>,
) -> Result<HttpResponse, Error> {
    let received = match handle(&request, &body, &subscription, &writer, &slots).await {
        Ok(received) | Err(received) => received,
    };
    webhook::finish(received, &events, &metrics)
}

/// Checks, parses and acts on one event (an `Err` is a refusal or a
/// failure, short-circuited with `?`).
async fn handle(
    request: &HttpRequest,
    body: &[u8],
    subscription: &SubscriptionState,
    writer: &Writer,
    slots: &WebhookSlots,
) -> Result<Received, Received> {
    let pool = writer.pool();
    if !subscription.is_subscribing() {
        return Err(Received::NotSubscribing);
    }
    let secrets = subscription.secrets().ok_or(Received::NotSubscribed)?;
    webhook::verify(&secrets, request, body).map_err(Received::Refused)?;
    let webhook_id = webhook::webhook_id(request)?;
    let action = classify(hookline_kit::json::parse(body)?)?;
    let span = tracing::Span::current();
    match action {
        Action::Test => {
            span.record("event_type", EventType::WebhookTest.as_str());
            Ok(Received::Ignored(EventType::WebhookTest.as_str().to_owned()))
        }
        Action::Unknown(name) => {
            span.record("event_type", name.as_str());
            Ok(Received::Ignored(name))
        }
        Action::Decided(data, decision) => {
            span.record(
                "event_type",
                EventType::of_decision(decision).map_or("?", EventType::as_str),
            );
            let ids = Ids::parse(&data.document_id, &data.agent_id, data.id.as_deref())?;
            webhook::apply(writer, slots, &ids, decision, webhook_id.as_ref()).await
        }
        Action::Received(data, at) => {
            span.record("event_type", EventType::DocumentReceived.as_str());
            let ids = Ids::parse(&data.document_id, &data.agent_id, data.id.as_deref())?;
            let _slot = slots.take().await?;
            let mut conn = pool.get().await?;
            let incoming = db::IncomingReceipt {
                document_id: ids.document_id.as_str(),
                agent_id: ids.agent_id.as_str(),
                request_id: ids.request_id,
                at,
            };
            Ok(match db::record_received(&mut conn, incoming).await? {
                Some(row) => Received::Recorded(row),
                None => Received::UnknownReview,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data(status: &str, sequence: u32) -> serde_json::Value {
        json!({"documentId": "d1", "agentId": "a1", "documentStatus": status,
               "documentUrl": "https://x.test/a.pdf", "id": "r1", "sequence": sequence})
    }

    fn envelope(event_type: &str, data: serde_json::Value) -> serde_json::Value {
        json!({"type": event_type, "timestamp": "2026-12-01T10:00:00Z", "data": data})
    }

    #[test]
    fn decisions_are_read_from_their_events() {
        for (event_type, status, decision) in [
            ("document.accepted", "ACCEPTED", DocumentStatus::Accepted),
            ("document.declined", "DECLINED", DocumentStatus::Declined),
        ] {
            match classify(envelope(event_type, data(status, 2))).unwrap() {
                Action::Decided(event, got) => {
                    assert_eq!(got, decision);
                    assert_eq!((event.document_id.as_str(), event.id.as_deref()), ("d1", Some("r1")));
                }
                other => panic!("{event_type}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_received_event_carries_when_it_happened() {
        let Action::Received(event, at) = classify(envelope("document.received", data("PENDING_REVIEW", 1))).unwrap()
        else {
            panic!("not a received event");
        };
        assert_eq!(event.sequence, 1);
        assert_eq!(at, DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap());
    }

    #[test]
    fn a_decision_event_that_contradicts_its_own_type_is_refused() {
        for (event_type, status) in [
            ("document.accepted", "DECLINED"),
            ("document.declined", "ACCEPTED"),
            ("document.accepted", "PENDING_REVIEW"),
        ] {
            let error = classify(envelope(event_type, data(status, 2))).unwrap_err();
            assert_eq!(
                error.body().field.as_deref(),
                Some("data.documentStatus"),
                "{event_type} {status}"
            );
        }
    }

    #[test]
    fn test_and_unknown_events_are_taken_without_reading_their_data() {
        assert_eq!(
            classify(envelope(
                "webhook.test",
                json!({"subscriptionId": "s", "message": "hi"})
            ))
            .unwrap(),
            Action::Test
        );
        assert_eq!(
            classify(json!({"type": "document.archived", "data": 42})).unwrap(),
            Action::Unknown("document.archived".to_owned())
        );
    }

    #[test]
    fn an_envelope_without_a_type_or_with_bad_data_is_malformed() {
        assert!(classify(json!({"timestamp": "2026-12-01T10:00:00Z", "data": {}})).is_err());
        assert!(classify(json!({"type": 7})).is_err());
        assert!(classify(envelope("document.accepted", json!({"documentId": "d1"}))).is_err());
        assert!(
            classify(json!({"type": "document.accepted", "data": data("ACCEPTED", 2)})).is_err(),
            "no timestamp"
        );
    }
}
