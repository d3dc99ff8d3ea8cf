//! Subscriptions and the events they receive.
//!
//! Besides the per-request callback of the tutorial (`X-Callback-Url`, the
//! flat [`DocumentWebhook`](crate::DocumentWebhook), signed with the help
//! desk's `WEBHOOK_SECRET`), a client can register **subscriptions**: a URL,
//! the [event types](EventType) it wants, and a secret of its own that the
//! help desk generates. Each event then reaches every matching subscription
//! in the Standard Webhooks envelope ([`Event`]): `{"type", "timestamp",
//! "data"}`, signed with that subscription's secret, so a valid signature
//! proves "meant for you", not only "from the help desk".
//!
//! The events of one document carry a `sequence` (received 1, decided 2): a
//! receiver that sees them out of order can tell which is newer.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DocumentStatus;

/// What happened. The wire spelling is `document.received` and so on.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    /// The help desk accepted a document for review (its `202`).
    #[serde(rename = "document.received")]
    DocumentReceived,
    /// The agent accepted the document.
    #[serde(rename = "document.accepted")]
    DocumentAccepted,
    /// The agent declined the document.
    #[serde(rename = "document.declined")]
    DocumentDeclined,
    /// Sent on request (`POST /webhooks/{id}/test`) to check a receiver.
    #[serde(rename = "webhook.test")]
    WebhookTest,
    /// Operational: one of the tenant's subscriptions was disabled by the
    /// help desk (its receiver answered `410 Gone`, or kept failing for
    /// `DISABLE_AFTER`). Never sent to the subscription it is about.
    #[serde(rename = "endpoint.disabled")]
    EndpointDisabled,
    /// Operational: a disabled subscription was enabled again
    /// (`POST /webhooks/{id}/enable`). Never sent to the subscription it is about.
    #[serde(rename = "endpoint.enabled")]
    EndpointEnabled,
    /// Operational: a message for one of the tenant's subscriptions used up
    /// its retries (or was answered `410 Gone`) and became a dead letter.
    /// Never sent to the subscription it is about.
    #[serde(rename = "message.attempt.exhausted")]
    MessageAttemptExhausted,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        Self::DocumentReceived,
        Self::DocumentAccepted,
        Self::DocumentDeclined,
        Self::WebhookTest,
        Self::EndpointDisabled,
        Self::EndpointEnabled,
        Self::MessageAttemptExhausted,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DocumentReceived => "document.received",
            Self::DocumentAccepted => "document.accepted",
            Self::DocumentDeclined => "document.declined",
            Self::WebhookTest => "webhook.test",
            Self::EndpointDisabled => "endpoint.disabled",
            Self::EndpointEnabled => "endpoint.enabled",
            Self::MessageAttemptExhausted => "message.attempt.exhausted",
        }
    }

    /// An operational event: about the help desk's delivery to one of the
    /// tenant's subscriptions, not about a document.
    pub const fn is_operational(self) -> bool {
        matches!(
            self,
            Self::EndpointDisabled | Self::EndpointEnabled | Self::MessageAttemptExhausted
        )
    }

    /// The event of a decision (`None` while the review is pending).
    pub const fn of_decision(status: DocumentStatus) -> Option<Self> {
        match status {
            DocumentStatus::Accepted => Some(Self::DocumentAccepted),
            DocumentStatus::Declined => Some(Self::DocumentDeclined),
            DocumentStatus::PendingReview => None,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event name that is not one of [`EventType::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown event type {0:?} (expected document.received, document.accepted, document.declined, webhook.test, \
     endpoint.disabled, endpoint.enabled or message.attempt.exhausted)"
)]
pub struct UnknownEvent(pub String);

impl FromStr for EventType {
    type Err = UnknownEvent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|event| event.as_str() == s)
            .ok_or_else(|| UnknownEvent(s.to_owned()))
    }
}

/// Body of `POST /webhooks`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSubscription {
    /// Where the events go (http/https; checked against the SSRF policy).
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 2048, example = "https://example.com/hooks")
    )]
    pub url: String,
    /// The event types to receive (at least one).
    #[cfg_attr(feature = "openapi", schema(example = json!(["document.accepted", "document.declined"])))]
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    pub description: Option<String>,
    /// How its events are signed with its secret, as that provider signs:
    /// `standard`, `stripe`, `github`, `shopify` or `slack` (any case).
    /// Default: `standard` (Standard Webhooks). In all but `standard` the
    /// key is the `whsec_...` string itself, as those providers hand out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::dialect::Dialect>))]
    pub dialect: Option<String>,
    /// Deliver its events one at a time, in the order they happened: the
    /// next waits until the one before is delivered or dead (a failing
    /// event blocks the rest meanwhile). Default: `false` (several in
    /// flight, in any order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered: Option<bool>,
}

/// Body of `PATCH /webhooks/{id}`: what is present changes, the rest stays.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// A disabled subscription receives nothing, not even what was queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Sign its events in another dialect from now on (events already
    /// queued included: each attempt is signed as it is sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::dialect::Dialect>))]
    pub dialect: Option<String>,
    /// Deliver its events in order from now on (`true`), or no longer
    /// (`false`: what waited its turn goes at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered: Option<bool>,
}

/// A subscription as the help desk shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    #[cfg_attr(feature = "openapi", schema(example = "sub_0193c1d2e3f47a8b9c0d1e2f3a4b5c6d"))]
    pub id: String,
    pub url: String,
    pub events: Vec<EventType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The signing secret: in full (`whsec_...`) only in the answers to
    /// `POST /webhooks` and to `rotate-secret`; masked everywhere else.
    pub secret: String,
    /// Until when the secret before the last rotation still signs too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// How its events are signed.
    #[serde(default)]
    pub dialect: crate::dialect::Dialect,
    /// Its events are delivered one at a time, in the order they happened.
    #[serde(default)]
    pub ordered: bool,
    /// It receives nothing, and no new events are queued for it.
    pub disabled: bool,
    /// Why and since when it is disabled (`null` while enabled). `disabled`
    /// stays the boolean it always was, so a client that reads it (or sets
    /// it with `PATCH`) is not broken by the detail.
    #[serde(default)]
    pub disablement: Option<Disablement>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub stats: SubscriptionStats,
}

/// Why a subscription is disabled.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisableReason {
    /// Its receiver answered `410 Gone`: "stop sending" (Standard Webhooks).
    Gone,
    /// Its messages kept failing, with no delivery in between, for
    /// `DISABLE_AFTER` and at least `DISABLE_AFTER_DEAD` dead letters.
    Failing,
    /// Its tenant disabled it (`PATCH {"disabled": true}`).
    Manual,
}

impl DisableReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Gone => "gone",
            Self::Failing => "failing",
            Self::Manual => "manual",
        }
    }
}

impl FromStr for DisableReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gone" => Ok(Self::Gone),
            "failing" => Ok(Self::Failing),
            "manual" => Ok(Self::Manual),
            other => Err(format!("unknown disable reason {other:?}")),
        }
    }
}

/// Why and since when a subscription is disabled.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disablement {
    pub at: DateTime<Utc>,
    pub reason: DisableReason,
    /// The error of the attempt that disabled it (none when disabled by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// What the help desk has sent to a subscription so far.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionStats {
    /// Events that got a 2xx.
    pub delivered: u64,
    /// Attempts that failed (each retry counts).
    pub failed_attempts: u64,
    /// Events whose every attempt failed (dead letters).
    pub dead: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// `GET /webhooks`: the caller's subscriptions, oldest first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionPage {
    pub items: Vec<Subscription>,
    pub total: u64,
}

/// The answer to `POST /webhooks/{id}/test`: the event is queued.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestEventQueued {
    /// The `webhook-id` the test event will carry.
    pub webhook_id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
}

/// The Standard Webhooks envelope every subscription receives.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it happened (not when it was sent: that is `webhook-timestamp`).
    pub timestamp: DateTime<Utc>,
    /// [`DocumentEvent`] for `document.*`, [`TestEvent`] for `webhook.test`.
    pub data: serde_json::Value,
}

/// The `data` of `document.received`, `document.accepted` and `document.declined`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentEvent {
    pub document_id: String,
    pub agent_id: String,
    /// `PENDING_REVIEW` in `document.received`, the decision afterwards.
    pub document_status: DocumentStatus,
    pub document_url: String,
    /// The `id` given in the original request, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The order of this document's events: 1 received, 2 decided.
    pub sequence: u32,
}

/// The `data` of `webhook.test`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestEvent {
    pub subscription_id: String,
    pub message: String,
}

/// The `data` of `endpoint.disabled` and `endpoint.enabled`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointEvent {
    /// The subscription disabled (or enabled).
    pub subscription_id: String,
    pub url: String,
    /// Why it was disabled (`endpoint.disabled` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<DisableReason>,
    /// The error of the attempt that disabled it (`endpoint.disabled` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub at: DateTime<Utc>,
}

/// The `data` of `message.attempt.exhausted`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageExhaustedEvent {
    /// The subscription the message was for.
    pub subscription_id: String,
    /// The dead message's `webhook-id` (redeliver it with
    /// `POST /webhooks/{subscriptionId}/redeliver/{webhookId}`).
    pub webhook_id: String,
    #[serde(rename = "eventType")]
    pub event_type: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_have_their_wire_names_both_ways() {
        for event in EventType::ALL {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(json, format!("\"{}\"", event.as_str()));
            assert_eq!(event.as_str().parse::<EventType>().unwrap(), event);
        }
        assert!("document.reviewed".parse::<EventType>().is_err());
        assert!("DOCUMENT.RECEIVED".parse::<EventType>().is_err());
    }

    #[test]
    fn the_envelope_is_type_timestamp_data() {
        let event = Event {
            event_type: EventType::DocumentAccepted,
            timestamp: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            data: serde_json::json!({"documentId": "d1"}),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "document.accepted", "timestamp": "2023-11-14T22:13:20Z", "data": {"documentId": "d1"}})
        );
    }
}
