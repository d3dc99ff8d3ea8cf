use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DocumentStatus;

/// Body of the consumer's `POST /documents`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateReview {
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = "^https?://[^\\s]+$",
            max_length = 2048,
            example = "https://example.com/contract.pdf"
        )
    )]
    pub document_url: String,
}

/// A review as the consumer stores and shows it.
///
/// `agentId` and `documentId` are `null` only for the instant between the
/// consumer recording the request and the help desk answering it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    pub id: String,
    pub document_url: String,
    pub agent_id: Option<String>,
    pub document_id: Option<String>,
    pub document_status: DocumentStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the help desk took the document for review, from its
    /// `document.received` event; absent without a subscription, or until
    /// that event arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<DateTime<Utc>>,
}

/// One page of the consumer's `GET /documents`, newest first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewPage {
    pub items: Vec<Review>,
    /// Pass as `?cursor=` to get the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Body of the help desk's `POST /document` (the callback URL travels in the
/// `X-Callback-Url` header).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = "^https?://[^\\s]+$",
            max_length = 2048,
            example = "https://example.com/contract.pdf"
        )
    )]
    pub document_url: String,
    /// An opaque client reference, echoed back in the webhook. A JSON number
    /// is accepted too (for clients whose ids are integers) and kept as its
    /// decimal string. The original tutorial's consumer sends none.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "string_or_number"
    )]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._:-]{1,128}$"))]
    pub id: Option<String>,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(Option::<Id>::deserialize(de)?.map(|id| match id {
        Id::Text(text) => text,
        Id::Number(number) => number.to_string(),
    }))
}

/// The help desk's `202 Accepted` answer to `POST /document`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentAccepted {
    pub agent_id: String,
    pub document_id: String,
    /// `PENDING_REVIEW`. The original tutorial's help desk answers `200` with
    /// the two ids only; a missing status means the same.
    #[serde(default = "DocumentStatus::pending")]
    pub status: DocumentStatus,
}

/// The webhook the help desk POSTs to the callback URL once a review is decided.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentWebhook {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._:-]{1,128}$"))]
    pub agent_id: String,
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._:-]{1,128}$"))]
    pub document_id: String,
    pub document_status: DocumentStatus,
    /// The `id` given in the original request, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Where the delivery of a case's webhook stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryState {
    /// Waiting for its due time (the review, or the next retry).
    Scheduled,
    /// Claimed by a worker that is attempting delivery.
    InFlight,
    /// A 2xx was received.
    Delivered,
    /// Every attempt failed; the case sits in the dead-letter set.
    Dead,
    /// The case was created without `X-Callback-Url`: its events go to the
    /// client's subscriptions only.
    NoCallback,
}

/// Delivery bookkeeping of one case, as the help desk reports it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub state: DeliveryState,
    /// The Standard Webhooks `webhook-id`, stable across attempts.
    pub webhook_id: String,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Every attempt so far (the most recent 100), oldest first.
    #[serde(default)]
    pub log: Vec<AttemptView>,
}

/// One delivery attempt, as the help desk's attempt log keeps it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Why the attempt failed (`HTTP 500`, `timed out`, `cannot connect: ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
    /// Set on a fault the chaos profile (`CHAOS`, `Hookline-Chaos`)
    /// injected: not an attempt of the delivery, but a message sent besides
    /// it (or a change to how it was sent). `error` then says how the
    /// receiver failed the test, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos: Option<crate::chaos::Fault>,
    /// What was done, for a chaos entry (`signed with a secret the receiver
    /// never saw; expected a 4xx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A list of the help desk's cases, most recent first: `GET /cases` (all
/// cases) and `GET /dead-letters` (those whose every attempt failed).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CasePage {
    pub items: Vec<CaseView>,
    /// How many there are in all.
    pub total: u64,
}

/// The help desk's `GET /document/{documentId}`: the case and its delivery.
/// This is also the polling fallback for a client that missed the webhook.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseView {
    pub document_id: String,
    pub agent_id: String,
    pub document_url: String,
    /// Absent when the case was created without `X-Callback-Url` (its
    /// events go to the client's subscriptions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `PENDING_REVIEW` until the agent has decided.
    pub status: DocumentStatus,
    pub created_at: DateTime<Utc>,
    /// When the simulated agent finishes the review.
    pub due_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    pub delivery: DeliveryView,
    /// Set on the delivery of an event to a subscription (a dead letter of
    /// `GET /dead-letters`, say): which event, for which subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<crate::EventType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// The endpoint the webhook goes to, with its limits and breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointView>,
    /// How its callback is signed, when not in Standard Webhooks (the
    /// request's `Hookline-Dialect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect: Option<crate::dialect::Dialect>,
    /// The seed of its chaos draws (the request's `Hookline-Chaos-Seed`):
    /// send it again to replay the same verdict and faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos_seed: Option<u64>,
    /// The W3C trace id its delivery attempts join (32 hex digits), to find
    /// the review's trace in a tracing UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// The circuit breaker of an endpoint.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BreakerState {
    /// Deliveries flow.
    Closed,
    /// Too many attempts in a row failed: the endpoint's jobs wait, spending
    /// no attempts, until `openUntil`.
    Open,
    /// One probe is out; its outcome closes or reopens the breaker.
    Probing,
}

/// One endpoint (the scheme, host and port of callback URLs) as the help
/// desk's limits see it: `GET /endpoints`, `PUT /endpoints/{endpoint}`, and
/// `endpoint` in `GET /document/{documentId}`.
///
/// An endpoint is shared by every tenant whose webhooks go to it: its
/// limits, its breaker and a pause asked for with `Retry-After` hold for
/// all of them, because the receiver's capacity is one. A tenant's key sees
/// those (they say why its own jobs wait), but not the counts and errors
/// that other tenants' traffic makes (`inFlight`, `due`,
/// `consecutiveFailures`, `lastError`, `nextAttemptAt`): they are absent.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    /// `scheme://host:port`.
    pub endpoint: String,
    /// Attempts in flight now (at most `concurrency`); absent for a
    /// tenant's key, as it counts every tenant's traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<u32>,
    /// Jobs waiting: due now, or later (retries, reviews still in
    /// progress); absent for a tenant's key, as it counts every tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<u64>,
    /// Most attempts in flight at once now: the endpoint's own limit, which
    /// adapts to how it answers (it starts at 16, halves on a failure, grows
    /// with quick answers), at most `ENDPOINT_CONCURRENCY`.
    pub concurrency: u32,
    /// Deliveries per second at most; absent when unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Whether `rate` was set for this endpoint (`PUT /endpoints/{endpoint}`)
    /// rather than taken from `ENDPOINT_RATE`.
    pub rate_overridden: bool,
    pub breaker: BreakerState,
    /// Failed attempts in a row; `CIRCUIT_FAILURES` of them open the
    /// breaker. Absent for a tenant's key (other tenants' outcomes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// While `OPEN`: when the next probe may go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_until: Option<DateTime<Utc>>,
    /// The receiver asked for a pause (`Retry-After` on a 429 or 503) until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<DateTime<Utc>>,
    /// The last attempt's error, whichever tenant's; absent for a tenant's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<DateTime<Utc>>,
    /// When the endpoint may next send, given its due jobs and limits;
    /// absent when nothing is due or every slot is taken, and for a
    /// tenant's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// `GET /endpoints`: the endpoints, most recently active first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPage {
    pub items: Vec<EndpointView>,
    /// How many endpoints the help desk knows.
    pub total: u64,
}

/// `PUT /endpoints/{endpoint}`: the endpoint's own settings, replacing any
/// set before.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSettings {
    /// Deliveries per second at most (greater than 0); absent or null: the
    /// help desk's `ENDPOINT_RATE`.
    #[serde(default)]
    pub rate: Option<f64>,
}

/// The consumer's answer to a webhook it accepted (any 2xx means "stop
/// retrying"; the body says what it did).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAck {
    pub outcome: AckOutcome,
    pub document_status: DocumentStatus,
}

/// What the consumer did with a webhook it accepted.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckOutcome {
    /// The review took the decision.
    Applied,
    /// The review already had this decision (from another webhook, or from
    /// reconciliation): nothing changed.
    AlreadyApplied,
    /// This `webhook-id` was applied before: nothing changed.
    Duplicate,
    /// A subscription's `document.received` was noted on the review (its
    /// `receivedAt`); the status is never changed by it.
    Recorded,
}

/// `GET /healthz` and `GET /readyz`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: HealthStatus,
}

/// How healthy a service says it is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Alive (`/healthz`).
    Ok,
    /// Alive, and its storage answers (`/readyz`).
    Ready,
}

/// The JSON body of every 4xx/5xx answer of both services.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `invalid_json` or `not_found`.
    pub error: String,
    /// The request field at fault, where there is one (`documentUrl`, `X-Callback-Url`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A human-readable explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub detail: Option<serde_json::Value>,
}

impl ErrorBody {
    pub fn new(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            field: None,
            detail: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn with_detail(mut self, detail: impl Into<serde_json::Value>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_webhook_uses_the_tutorial_field_names() {
        let webhook = DocumentWebhook {
            agent_id: "a1".into(),
            document_id: "d1".into(),
            document_status: DocumentStatus::Accepted,
            id: Some("r1".into()),
        };
        assert_eq!(
            serde_json::to_value(&webhook).unwrap(),
            json!({"agentId": "a1", "documentId": "d1", "documentStatus": "ACCEPTED", "id": "r1"})
        );
        let without_id = DocumentWebhook { id: None, ..webhook };
        assert!(serde_json::to_value(&without_id).unwrap().get("id").is_none());
    }

    #[test]
    fn the_help_desk_reply_and_request_use_the_tutorial_field_names() {
        let reply: DocumentAccepted =
            serde_json::from_value(json!({"agentId": "a", "documentId": "d", "status": "PENDING_REVIEW"})).unwrap();
        assert_eq!(reply.status, DocumentStatus::PendingReview);
        // What the tutorial's own help desk answers (200, no status).
        let tutorial: DocumentAccepted = serde_json::from_value(json!({"agentId": "a", "documentId": "d"})).unwrap();
        assert_eq!(
            (
                tutorial.agent_id.as_str(),
                tutorial.document_id.as_str(),
                tutorial.status
            ),
            ("a", "d", DocumentStatus::PendingReview)
        );
        let request: DocumentRequest = serde_json::from_value(json!({"documentUrl": "https://x.test/a.pdf"})).unwrap();
        assert_eq!(request.id, None);
        let numbered: DocumentRequest =
            serde_json::from_value(json!({"documentUrl": "https://x.test/a.pdf", "id": 42})).unwrap();
        assert_eq!(numbered.id.as_deref(), Some("42"));
        assert!(serde_json::from_value::<DocumentRequest>(json!({"documentUrl": "u", "id": [1]})).is_err());
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"documentUrl": "https://x.test/a.pdf"})
        );
    }

    #[test]
    fn an_error_body_omits_what_it_does_not_have() {
        assert_eq!(
            serde_json::to_value(ErrorBody::new("not_found")).unwrap(),
            json!({"error": "not_found"})
        );
        assert_eq!(
            serde_json::to_value(
                ErrorBody::new("invalid_field")
                    .with_field("documentUrl")
                    .with_detail("must be an http(s) URL")
            )
            .unwrap(),
            json!({"error": "invalid_field", "field": "documentUrl", "detail": "must be an http(s) URL"})
        );
    }
}
