//! A subscription event's envelope (`{"type", "timestamp", "data"}`), read
//! into what it asks of us ([`classify`]). The type is read first, on its
//! own: the help desk may add event types, and a receiver that refused them
//! would only make it retry each one until it gives up, counting us as
//! failing; so an unknown type is taken and ignored (a subscription only
//! gets the types it asked for, so this is rare, and it is logged).

use chrono::{DateTime, Utc};
use hookline_contract::{DocumentEvent, DocumentStatus, Event, EventType};
use hookline_kit::http::ApiError;

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
        // The help desk's operational events say nothing about a document:
        // acknowledged and ignored (this consumer subscribes to none of them).
        operational @ (EventType::EndpointDisabled
        | EventType::EndpointEnabled
        | EventType::MessageAttemptExhausted) => Action::Unknown(operational.as_str().to_owned()),
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
