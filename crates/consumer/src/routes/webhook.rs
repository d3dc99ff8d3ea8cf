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

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use hookline_contract::signature::SecretSet;
use hookline_contract::{DocumentWebhook, ExternalId, headers};
use hookline_contract::{ErrorBody, WebhookAck};
use hookline_kit::http::ApiError;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};
use uuid::Uuid;

use crate::db::{self, Decision, Pool};
use crate::error::{db_error, pool_error};
use crate::events::ReviewEvents;
use crate::metrics::{ConsumerMetrics, WebhookOutcome};

/// Which webhooks the receiver believes.
#[derive(Debug, Clone)]
pub enum WebhookPolicy {
    /// Only those signed with one of these secrets (Standard Webhooks).
    Verify(SecretSet),
    /// Any (for the tutorial's help desk, which does not sign).
    AllowUnsigned,
}

impl WebhookPolicy {
    fn check(&self, request: &HttpRequest, body: &[u8]) -> Result<(), ApiError> {
        let Self::Verify(secrets) = self else {
            return Ok(());
        };
        let header = |name: &'static str| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .ok_or_else(|| ApiError::Unauthorized(format!("the {name} header is missing")))
        };
        let id = header(headers::WEBHOOK_ID)?;
        let timestamp = header(headers::WEBHOOK_TIMESTAMP)?;
        let signature = header(headers::WEBHOOK_SIGNATURE)?;
        secrets
            .verify(id, timestamp, signature, body, Utc::now().timestamp())
            .map_err(|e| ApiError::Unauthorized(e.to_string()))
    }
}

/// A bulkhead between webhooks and the API on the database pool: webhooks
/// hold at most half of its connections at once, so a burst of deliveries
/// (a help desk worker fires everything that came due in one claim, up to
/// 128 at once) cannot make `POST /documents` wait for a connection.
/// A webhook that finds no free slot waits for one, at most as long as
/// for a pooled connection, then gets a 503 (the help desk retries).
///
/// Measured (docs/BENCHMARKS.md): create-review's p99 under load is set by
/// those bursts; the help desk at `WORKER_CONCURRENCY=32` instead of 256
/// brought it from 75-103 ms to 52-53 ms.
#[derive(Debug, Clone)]
pub struct WebhookSlots(Arc<Semaphore>);

impl WebhookSlots {
    /// Half of a pool of `pool_size` connections, at least one.
    pub fn for_pool(pool_size: usize) -> Self {
        Self(Arc::new(Semaphore::new((pool_size / 2).max(1))))
    }

    async fn take(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        match tokio::time::timeout(db::POOL_TIMEOUT, self.0.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(closed)) => Err(ApiError::unavailable("the database", closed)),
            Err(elapsed) => Err(ApiError::unavailable("the database", elapsed)),
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
    pool: web::Data<Pool>,
    slots: web::Data<WebhookSlots>,
    events: web::Data<ReviewEvents>,
    metrics: web::Data<ConsumerMetrics>,
) -> Result<HttpResponse, ApiError> {
    let answer = decide(request, body, policy, pool, &slots, events, &metrics).await;
    if let Err(error) = &answer {
        metrics.webhook(WebhookOutcome::of_error(error));
    }
    answer
}

/// Checks, parses and applies one webhook. Outcomes answered 2xx are
/// counted here, refusals by [`receive`] from the error.
async fn decide(
    request: HttpRequest,
    body: web::Bytes,
    policy: web::Data<WebhookPolicy>,
    pool: web::Data<Pool>,
    slots: &WebhookSlots,
    events: web::Data<ReviewEvents>,
    metrics: &ConsumerMetrics,
) -> Result<HttpResponse, ApiError> {
    if let Err(refusal) = policy.check(&request, &body) {
        warn!(error = %refusal, "webhook refused");
        return Err(refusal);
    }
    let webhook: DocumentWebhook = hookline_kit::json::parse(&body)?;
    let document_id = ExternalId::parse(&webhook.document_id).map_err(|e| ApiError::invalid("documentId", e))?;
    let agent_id = ExternalId::parse(&webhook.agent_id).map_err(|e| ApiError::invalid("agentId", e))?;
    if !webhook.document_status.is_decided() {
        return Err(ApiError::invalid("documentStatus", "must be ACCEPTED or DECLINED"));
    }
    // Our own requests carry our review id; anything else cannot match a review.
    let request_id = webhook.id.as_deref().and_then(|id| Uuid::parse_str(id).ok());

    let webhook_id = match request.headers().get(headers::WEBHOOK_ID) {
        None => None,
        Some(raw) => Some(
            raw.to_str()
                .ok()
                .and_then(|raw| ExternalId::parse(raw).ok())
                .ok_or_else(|| ApiError::invalid("webhook-id", "must be 1-128 letters, digits or - _ . :"))?,
        ),
    };
    let span = tracing::Span::current();
    span.record("document_id", document_id.as_str());
    if let Some(webhook_id) = &webhook_id {
        span.record("webhook_id", webhook_id.as_str());
    }

    let _slot = slots.take().await?;
    let mut conn = pool.get().await.map_err(pool_error)?;
    let decision = webhook.document_status;
    let incoming = db::IncomingDecision {
        document_id: document_id.as_str(),
        agent_id: agent_id.as_str(),
        request_id,
        decision,
        webhook_id: webhook_id.as_ref().map(ExternalId::as_str),
    };
    match db::apply_decision(&mut conn, incoming).await.map_err(db_error)? {
        Decision::Duplicate => {
            info!(document_id = %document_id, "duplicate webhook acknowledged");
            metrics.webhook(WebhookOutcome::Duplicate);
            Ok(HttpResponse::Ok().json(json!({"outcome": "duplicate", "documentStatus": decision})))
        }
        Decision::Applied(row) => {
            info!(review_id = %row.id, document_id = %document_id, status = %decision, "decision applied");
            metrics.webhook(WebhookOutcome::Applied);
            events.publish(&row.into_review());
            Ok(HttpResponse::Ok().json(json!({"outcome": "applied", "documentStatus": decision})))
        }
        Decision::AlreadyApplied(row) => {
            info!(review_id = %row.id, document_id = %document_id, status = %decision, "decision already applied");
            metrics.webhook(WebhookOutcome::AlreadyApplied);
            Ok(HttpResponse::Ok().json(json!({"outcome": "already_applied", "documentStatus": decision})))
        }
        Decision::Contradicts(row) => {
            let stored = row.status();
            warn!(review_id = %row.id, document_id = %document_id, %stored, received = %decision, "contradicting decision refused");
            Err(ApiError::Conflict(format!(
                "the review is already {stored}; {decision} does not change it"
            )))
        }
        Decision::UnknownReview => Err(ApiError::NotFound("no review has this documentId (yet); retry later")),
    }
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
