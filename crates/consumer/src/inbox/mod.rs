//! The inbox: the help desk's word about our reviews, as it comes in.
//!
//! Two ways in share one pipeline, so they decide a review alike, answer
//! alike and count alike:
//! - `POST /document/update`, the per-request webhook ([`Inbox::webhook`]),
//!   signed with `WEBHOOK_SECRET` (or unsigned if `ALLOW_UNSIGNED_WEBHOOKS`),
//!   its body a `DocumentWebhook`;
//! - `POST /helpdesk/events`, our subscription's events ([`Inbox::event`],
//!   `HELPDESK_SUBSCRIBE=true`, see [`crate::subscription`]), signed with the
//!   subscription's own secret, its body the envelope `{"type", "timestamp",
//!   "data"}`.
//!
//! The steps, in this order:
//! 1. **verify** ([`signature`]): the signature over the raw bytes, before
//!    the body is even parsed, so nothing forged reaches the database;
//! 2. **identify** ([`Ids`](decision::Ids)): the review's ids, checked, and
//!    the `webhook-id` that keys the receipt;
//! 3. **apply with the receipt** ([`apply`]): one statement (one
//!    transaction, [`db::apply_decision`](crate::db::apply_decision)) that
//!    only ever moves a review out of PENDING_REVIEW and records the
//!    `webhook-id` with it; within the webhooks' share of the pool
//!    ([`WebhookSlots`]); not through the group commit (`crate::writer`):
//!    each decision is one statement on a connection of its own;
//! 4. **answer** ([`Outcome`]): a repeat of the same decision is
//!    acknowledged (2xx) and changes nothing; a contradicting one is refused
//!    (409) and the stored decision stands; one for a review we do not know
//!    (yet) gets a 404, so the help desk retries it.
//!
//! By event type ([`event::classify`]):
//! - `document.accepted` / `document.declined`: the decision, applied exactly
//!   as the webhook's (found by the echoed id if it overtook the help desk's
//!   answer);
//! - `document.received`: `receivedAt` is noted on the review, never its
//!   status, so one that arrives after the decision (events can come out of
//!   order; its `sequence` 1 is older than the decision's 2) changes nothing
//!   that matters;
//! - `webhook.test` and any type this consumer does not know: acknowledged
//!   (204), logged, nothing done.
//!
//! The reconciler decides through the same [`apply`], so a webhook after a
//! reconciliation is an ordinary repeat.

pub mod decision;
pub mod event;
pub mod outcome;
pub mod signature;

use actix_web::http::header::HeaderMap;
use hookline_contract::{DocumentStatus, DocumentWebhook, EventType, ExternalId};
use hookline_kit::http::ApiError;

pub use decision::{WebhookSlots, apply};
pub use outcome::Outcome;
pub use signature::WebhookPolicy;

use crate::db::Pool;
use crate::events::ReviewEvents;
use crate::metrics::ConsumerMetrics;
use crate::subscription::SubscriptionState;
use decision::Ids;
use event::Action;

/// A webhook or event as it came: its headers and its raw body.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// What the pipeline needs; one for the whole server, shared by its workers.
#[derive(Clone)]
pub struct Inbox {
    policy: WebhookPolicy,
    subscription: SubscriptionState,
    pool: Pool,
    slots: WebhookSlots,
    events: ReviewEvents,
    metrics: ConsumerMetrics,
}

impl Inbox {
    /// An inbox that believes webhooks per `policy` and events per
    /// `subscription`, writing through `pool` within `slots`.
    pub fn new(
        policy: WebhookPolicy,
        subscription: SubscriptionState,
        pool: Pool,
        slots: WebhookSlots,
        events: ReviewEvents,
        metrics: ConsumerMetrics,
    ) -> Self {
        Self {
            policy,
            subscription,
            pool,
            slots,
            events,
            metrics,
        }
    }

    /// Takes one webhook (`POST /document/update`): what became of it,
    /// logged and counted.
    #[tracing::instrument(name = "webhook", skip_all, fields(document_id = tracing::field::Empty, webhook_id = tracing::field::Empty))]
    pub async fn webhook(&self, delivery: Delivery<'_>) -> Outcome {
        let outcome = match self.take_webhook(delivery).await {
            Ok(outcome) | Err(outcome) => outcome,
        };
        self.settle(outcome)
    }

    /// Takes one subscription event (`POST /helpdesk/events`): what became
    /// of it, logged and counted.
    #[tracing::instrument(name = "event", skip_all, fields(event_type = tracing::field::Empty, document_id = tracing::field::Empty, webhook_id = tracing::field::Empty))]
    pub async fn event(&self, delivery: Delivery<'_>) -> Outcome {
        let outcome = match self.take_event(delivery).await {
            Ok(outcome) | Err(outcome) => outcome,
        };
        self.settle(outcome)
    }

    fn settle(&self, outcome: Outcome) -> Outcome {
        outcome.log();
        self.metrics.webhook(outcome.metric());
        outcome
    }

    /// Checks, parses and applies one webhook (an `Err` is a refusal or a
    /// failure, short-circuited with `?`).
    async fn take_webhook(&self, Delivery { headers, body }: Delivery<'_>) -> Result<Outcome, Outcome> {
        self.policy.check(headers, body).map_err(Outcome::Refused)?;
        let webhook: DocumentWebhook = hookline_kit::json::parse(body)?;
        let ids = Ids::parse(&webhook.document_id, &webhook.agent_id, webhook.id.as_deref())?;
        if !webhook.document_status.is_decided() {
            return Err(ApiError::invalid("documentStatus", "must be ACCEPTED or DECLINED").into());
        }
        let webhook_id = signature::webhook_id(headers)?;
        self.apply_decision(&ids, webhook.document_status, webhook_id.as_ref())
            .await
    }

    /// Checks, parses and acts on one event (an `Err` is a refusal or a
    /// failure, short-circuited with `?`).
    async fn take_event(&self, Delivery { headers, body }: Delivery<'_>) -> Result<Outcome, Outcome> {
        if !self.subscription.is_subscribing() {
            return Err(Outcome::NotSubscribing);
        }
        let secrets = self.subscription.secrets().ok_or(Outcome::NotSubscribed)?;
        signature::verify(&secrets, headers, body).map_err(Outcome::Refused)?;
        let webhook_id = signature::webhook_id(headers)?;
        let action = event::classify(hookline_kit::json::parse(body)?)?;
        let span = tracing::Span::current();
        match action {
            Action::Test => {
                span.record("event_type", EventType::WebhookTest.as_str());
                Ok(Outcome::Ignored(EventType::WebhookTest.as_str().to_owned()))
            }
            Action::Unknown(name) => {
                span.record("event_type", name.as_str());
                Ok(Outcome::Ignored(name))
            }
            Action::Decided(data, decision) => {
                span.record(
                    "event_type",
                    EventType::of_decision(decision).map_or("?", EventType::as_str),
                );
                let ids = Ids::parse(&data.document_id, &data.agent_id, data.id.as_deref())?;
                self.apply_decision(&ids, decision, webhook_id.as_ref()).await
            }
            Action::Received(data, at) => {
                span.record("event_type", EventType::DocumentReceived.as_str());
                let ids = Ids::parse(&data.document_id, &data.agent_id, data.id.as_deref())?;
                let _slot = self.slots.take().await?;
                let mut conn = self.pool.get().await?;
                Ok(
                    match decision::record_received(&mut conn, &self.events, ids.receipt(at)).await? {
                        Some(row) => Outcome::Recorded(row),
                        None => Outcome::UnknownReview,
                    },
                )
            }
        }
    }

    /// Applies a decision with its receipt ([`apply`]) within the webhooks'
    /// share of the pool.
    async fn apply_decision(
        &self,
        ids: &Ids,
        decision: DocumentStatus,
        receipt: Option<&ExternalId>,
    ) -> Result<Outcome, Outcome> {
        let _slot = self.slots.take().await?;
        let mut conn = self.pool.get().await?;
        let applied = apply(&mut conn, &self.events, ids.decision(decision, receipt)).await?;
        Ok(Outcome::of_decision(applied, decision, ids.document_id.as_str()))
    }
}
