//! The wire contract shared by hookline's consumer and help desk.
//!
//! Everything that crosses the network between the two services is defined
//! here exactly once: request and response bodies, the webhook payload, the
//! status values, the header names and the Standard Webhooks signature
//! scheme (and, for the test bench, the other providers' [dialects](dialect)).
//! Field names are camelCase on the wire and statuses are
//! `SCREAMING_SNAKE_CASE`, as in the original tutorial, so either side stays
//! wire-compatible with it.
//!
//! This crate deliberately knows nothing about HTTP frameworks, databases or
//! queues: it depends on serde and a few pure data/crypto crates only, so any
//! client of the help desk can reuse it.

pub mod asymmetric;
pub mod chaos;
pub mod dialect;
mod events;
pub mod headers;
mod payloads;
mod recovery;
pub mod signature;
mod status;
mod validate;

pub use events::{
    DisableReason, Disablement, DocumentEvent, EndpointEvent, Event, EventType, MessageExhaustedEvent, NewSubscription,
    Subscription, SubscriptionPage, SubscriptionStats, SubscriptionUpdate, TestEvent, TestEventQueued, UnknownEvent,
};
pub use payloads::{
    AckOutcome, AttemptView, BreakerState, CasePage, CaseView, CreateReview, DeliveryState, DeliveryView,
    DocumentAccepted, DocumentRequest, DocumentWebhook, EndpointPage, EndpointSettings, EndpointView, ErrorBody,
    Health, HealthStatus, Review, ReviewPage, WebhookAck,
};
pub use recovery::{RecoverRequest, RecoveryState, RecoveryView};
pub use status::{DocumentStatus, UnknownStatus};
pub use validate::{ExternalId, HttpUrl, InvalidInput, MAX_ID_LEN, MAX_URL_LEN};
