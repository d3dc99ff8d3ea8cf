//! `POST /document/update`: the webhook receiver.
//!
//! Order matters: the signature is checked over the raw bytes before the
//! body is even parsed, so nothing forged reaches the database; then the
//! decision is applied in one statement (one transaction, see
//! [`db::apply_decision`](crate::db::apply_decision)) that only ever moves a
//! review out of PENDING_REVIEW. A repeat of the same decision is acknowledged (2xx)
//! and changes nothing; a contradicting one is refused (409) and the stored
//! decision stands; a webhook for a review we do not know (yet) gets a 404,
//! so the help desk retries it.
//!
//! The subscription's events (`POST /helpdesk/events`,
//! [`helpdesk_events`](super::helpdesk_events)) go through the same steps
//! here — [`verify`], [`Ids::parse`], [`apply`], [`finish`] — so both ways
//! in decide a review alike, answer alike and count alike.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::Utc;
use hookline_contract::signature::SecretSet;
use hookline_contract::{AckOutcome, DocumentStatus, DocumentWebhook, ExternalId, headers};
use hookline_contract::{ErrorBody, WebhookAck};
use hookline_kit::http::ApiError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};
use uuid::Uuid;

use crate::db::{self, Decision};
use crate::error::Error;
use crate::events::ReviewEvents;
use crate::metrics::{ConsumerMetrics, WebhookOutcome};
use crate::writer::Writer;

/// Which webhooks the receiver believes.
#[derive(Debug, Clone)]
pub enum WebhookPolicy {
    /// Only those signed with one of these secrets (Standard Webhooks).
    Verify(SecretSet),
    /// Any (for the tutorial's help desk, which does not sign).
    AllowUnsigned,
}

impl WebhookPolicy {
    /// Why the webhook is not believed, if it is not.
    fn check(&self, request: &HttpRequest, body: &[u8]) -> Result<(), String> {
        match self {
            Self::Verify(secrets) => verify(secrets, request, body),
            Self::AllowUnsigned => Ok(()),
        }
    }
}

/// Why a Standard Webhooks message is not signed with one of `secrets`, if
/// it is not (the reason is safe to answer with).
pub(crate) fn verify(secrets: &SecretSet, request: &HttpRequest, body: &[u8]) -> Result<(), String> {
    let header = |name: &'static str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| format!("the {name} header is missing"))
    };
    let id = header(headers::WEBHOOK_ID)?;
    let timestamp = header(headers::WEBHOOK_TIMESTAMP)?;
    let signature = header(headers::WEBHOOK_SIGNATURE)?;
    secrets
        .verify(id, timestamp, signature, body, Utc::now().timestamp())
        .map_err(|e| e.to_string())
}

/// A bulkhead between webhooks and the API on the database pool: webhooks
/// hold at most half of its connections at once, so a burst of deliveries
/// (a help desk worker fires everything that came due in one claim) cannot
/// make `POST /documents` wait for a connection; create-review's tail under
/// load was set by those bursts (docs/BENCHMARKS.md). A webhook that finds
/// no free slot waits for one, at most as long as for a pooled connection,
/// then gets a 503 (the help desk retries).
#[derive(Debug, Clone)]
pub struct WebhookSlots(Arc<Semaphore>);

impl WebhookSlots {
    /// Half of a pool of `pool_size` connections, at least one.
    pub fn for_pool(pool_size: usize) -> Self {
        Self(Arc::new(Semaphore::new((pool_size / 2).max(1))))
    }

    pub(crate) async fn take(&self) -> Result<OwnedSemaphorePermit, Error> {
        match tokio::time::timeout(db::POOL_TIMEOUT, self.0.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(closed)) => Err(ApiError::unavailable("the database", closed).into()),
            Err(elapsed) => Err(ApiError::unavailable("the database", elapsed).into()),
        }
    }
}

/// What became of one webhook or subscription event. It decides both the
/// answer and the `hookline_consumer_webhooks_total` label, so the two
/// cannot disagree.
pub(crate) enum Received {
    Applied(db::ReviewRow, DocumentStatus),
    /// A `document.received` was noted on the review (never its status).
    Recorded(db::ReviewRow),
    /// An event we take but do not act on (`webhook.test`, or a type newer
    /// than this consumer): a 204.
    Ignored(String),
    /// No subscription secret to verify an event with (yet): 503, so the
    /// help desk retries once the set-up has stored one.
    NotSubscribed,
    /// This consumer does not subscribe (`HELPDESK_SUBSCRIBE` is off): 404.
    NotSubscribing,
    /// The review already had this decision: a 2xx, nothing changed.
    AlreadyApplied(DocumentStatus),
    /// This `webhook-id` was applied before: a 2xx, nothing changed.
    Duplicate(DocumentStatus),
    /// Unsigned, forged or stale: 401.
    Refused(String),
    /// Malformed: 400.
    Invalid(ApiError),
    /// No review has this documentId (yet): 404, so the help desk retries.
    UnknownReview,
    /// It contradicts the stored decision: 409, the stored one stands.
    Contradicts {
        stored: DocumentStatus,
        received: DocumentStatus,
    },
    /// Our storage failed: 503 (the help desk retries) or 500.
    Failed(Error),
}

impl Received {
    fn outcome(&self) -> WebhookOutcome {
        match self {
            Self::Applied(..) => WebhookOutcome::Applied,
            Self::Recorded(_) => WebhookOutcome::Recorded,
            Self::Ignored(_) => WebhookOutcome::Ignored,
            Self::NotSubscribed => WebhookOutcome::Error,
            Self::NotSubscribing => WebhookOutcome::Invalid,
            Self::AlreadyApplied(_) => WebhookOutcome::AlreadyApplied,
            Self::Duplicate(_) => WebhookOutcome::Duplicate,
            Self::Refused(_) => WebhookOutcome::RefusedUnauthorized,
            Self::Invalid(_) => WebhookOutcome::Invalid,
            Self::UnknownReview => WebhookOutcome::UnknownReview,
            Self::Contradicts { .. } => WebhookOutcome::Conflict,
            Self::Failed(_) => WebhookOutcome::Error,
        }
    }

    fn answer(self) -> Result<HttpResponse, Error> {
        let ack = |outcome, document_status| {
            Ok(HttpResponse::Ok().json(WebhookAck {
                outcome,
                document_status,
            }))
        };
        match self {
            Self::Applied(_, decision) => ack(AckOutcome::Applied, decision),
            Self::Recorded(row) => ack(AckOutcome::Recorded, row.status()),
            Self::Ignored(_) => Ok(HttpResponse::NoContent().finish()),
            Self::NotSubscribed => Err(ApiError::unavailable("the subscription's secret", NoSecretYet).into()),
            Self::NotSubscribing => Err(ApiError::NotFound(
                "this consumer does not subscribe to help desk events (HELPDESK_SUBSCRIBE is off)",
            )
            .into()),
            Self::AlreadyApplied(decision) => ack(AckOutcome::AlreadyApplied, decision),
            Self::Duplicate(decision) => ack(AckOutcome::Duplicate, decision),
            Self::Refused(why) => Err(ApiError::Unauthorized(why).into()),
            Self::Invalid(error) => Err(error.into()),
            Self::UnknownReview => Err(ApiError::NotFound("no review has this documentId (yet); retry later").into()),
            Self::Contradicts { stored, received } => {
                Err(ApiError::Conflict(format!("the review is already {stored}; {received} does not change it")).into())
            }
            Self::Failed(error) => Err(error),
        }
    }
}

/// The cause of a 503 to an event that came before we hold its secret.
#[derive(Debug, thiserror::Error)]
#[error("no subscription secret is known yet (the set-up at the help desk has not succeeded)")]
struct NoSecretYet;

impl<E: Into<Error>> From<E> for Received {
    fn from(error: E) -> Self {
        match error.into() {
            Error::Request(invalid) if invalid.status_code().is_client_error() => Self::Invalid(invalid),
            failed => Self::Failed(failed),
        }
    }
}

#[tracing::instrument(name = "webhook", skip_all, fields(document_id = tracing::field::Empty, webhook_id = tracing::field::Empty))]
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
    policy: web::Data<WebhookPolicy>,
    writer: web::Data<Writer>,
    slots: web::Data<WebhookSlots>,
    events: web::Data<ReviewEvents>,
    metrics: web::Data<ConsumerMetrics>,
) -> Result<HttpResponse, Error> {
    let received = match decide(&request, &body, &policy, &writer, &slots).await {
        Ok(received) | Err(received) => received,
    };
    finish(received, &events, &metrics)
}

/// Logs what became of a webhook or event, tells the dashboard, counts it,
/// and answers it.
pub(crate) fn finish(
    received: Received,
    events: &ReviewEvents,
    metrics: &ConsumerMetrics,
) -> Result<HttpResponse, Error> {
    match &received {
        Received::Applied(row, decision) => {
            info!(review_id = %row.id, status = %decision, "decision applied");
            events.publish(&row.clone().into_review());
        }
        Received::Recorded(row) => {
            info!(review_id = %row.id, status = %row.status(), "the help desk's receipt of the document noted");
            events.publish(&row.clone().into_review());
        }
        Received::Ignored(event_type) => info!(event_type, "event acknowledged and ignored"),
        Received::NotSubscribed => warn!("event refused: no subscription secret yet (the help desk retries)"),
        Received::NotSubscribing => info!("event refused: HELPDESK_SUBSCRIBE is off"),
        Received::AlreadyApplied(decision) => info!(status = %decision, "decision already applied"),
        Received::Duplicate(_) => info!("duplicate webhook acknowledged"),
        Received::Refused(why) => warn!(error = %why, "webhook refused"),
        Received::Contradicts { stored, received } => {
            warn!(%stored, %received, "contradicting decision refused")
        }
        Received::Invalid(_) | Received::UnknownReview | Received::Failed(_) => {}
    }
    metrics.webhook(received.outcome());
    received.answer()
}

/// The ids of a webhook or event, checked.
pub(crate) struct Ids {
    pub(crate) document_id: ExternalId,
    pub(crate) agent_id: ExternalId,
    /// Our own requests carry our review id; anything else cannot match a review.
    pub(crate) request_id: Option<Uuid>,
}

impl Ids {
    /// Checks the ids and puts the document id on the current span.
    pub(crate) fn parse(document_id: &str, agent_id: &str, id: Option<&str>) -> Result<Self, ApiError> {
        let document_id = ExternalId::parse(document_id).map_err(|e| ApiError::invalid("documentId", e))?;
        let agent_id = ExternalId::parse(agent_id).map_err(|e| ApiError::invalid("agentId", e))?;
        tracing::Span::current().record("document_id", document_id.as_str());
        Ok(Self {
            document_id,
            agent_id,
            request_id: id.and_then(|id| Uuid::parse_str(id).ok()),
        })
    }
}

/// The `webhook-id` header, checked (absent only on unsigned webhooks), and
/// put on the current span.
pub(crate) fn webhook_id(request: &HttpRequest) -> Result<Option<ExternalId>, ApiError> {
    let Some(raw) = request.headers().get(headers::WEBHOOK_ID) else {
        return Ok(None);
    };
    let webhook_id = raw
        .to_str()
        .ok()
        .and_then(|raw| ExternalId::parse(raw).ok())
        .ok_or_else(|| ApiError::invalid("webhook-id", "must be 1-128 letters, digits or - _ . :"))?;
    tracing::Span::current().record("webhook_id", webhook_id.as_str());
    Ok(Some(webhook_id))
}

/// Applies a decision (in one statement with its receipt,
/// [`db::apply_decision`]) within the webhooks' share of the pool.
pub(crate) async fn apply(
    writer: &Writer,
    slots: &WebhookSlots,
    ids: &Ids,
    decision: DocumentStatus,
    webhook_id: Option<&ExternalId>,
) -> Result<Received, Received> {
    let _slot = slots.take().await?;
    // Not through the group commit: decisions batched into one transaction
    // run one after another on one connection, and measured slower than
    // each on a connection of its own (docs/BENCHMARKS.md, issue 16).
    let mut conn = writer.pool().get().await?;
    let incoming = db::IncomingDecision {
        document_id: ids.document_id.as_str(),
        agent_id: ids.agent_id.as_str(),
        request_id: ids.request_id,
        decision,
        webhook_id: webhook_id.map(ExternalId::as_str),
    };
    Ok(match db::apply_decision(&mut conn, incoming).await? {
        Decision::Duplicate => Received::Duplicate(decision),
        Decision::Applied(row) => Received::Applied(row, decision),
        Decision::AlreadyApplied(_) => Received::AlreadyApplied(decision),
        Decision::Contradicts(row) => Received::Contradicts {
            stored: row.status(),
            received: decision,
        },
        Decision::UnknownReview => Received::UnknownReview,
    })
}

/// Checks, parses and applies one webhook (an `Err` is a refusal or a
/// failure, short-circuited with `?`).
async fn decide(
    request: &HttpRequest,
    body: &[u8],
    policy: &WebhookPolicy,
    writer: &Writer,
    slots: &WebhookSlots,
) -> Result<Received, Received> {
    policy.check(request, body).map_err(Received::Refused)?;
    let webhook: DocumentWebhook = hookline_kit::json::parse(body)?;
    let ids = Ids::parse(&webhook.document_id, &webhook.agent_id, webhook.id.as_deref())?;
    if !webhook.document_status.is_decided() {
        return Err(ApiError::invalid("documentStatus", "must be ACCEPTED or DECLINED").into());
    }
    let webhook_id = webhook_id(request)?;
    apply(writer, slots, &ids, webhook.document_status, webhook_id.as_ref()).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::WebhookSlots;

    #[test]
    fn webhooks_get_half_the_pool_and_never_none() {
        assert_eq!(WebhookSlots::for_pool(16).0.available_permits(), 8);
        assert_eq!(WebhookSlots::for_pool(3).0.available_permits(), 1);
        assert_eq!(WebhookSlots::for_pool(1).0.available_permits(), 1);
    }

    #[actix_web::test]
    async fn a_webhook_beyond_its_share_waits_until_a_slot_is_free() {
        let slots = WebhookSlots::for_pool(4);
        let first = slots.take().await.unwrap();
        let _second = slots.take().await.unwrap();
        let third = slots.take();
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut third)
                .await
                .is_err(),
            "the third webhook must wait while two hold both slots"
        );
        drop(first);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), third)
                .await
                .unwrap()
                .is_ok()
        );
    }
}
