//! The help desk's word applied to a review: a decision (from a webhook, an
//! event or the reconciler), or a subscription's `document.received`; and
//! the bulkhead that keeps webhooks to their share of the pool.

use std::sync::Arc;

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use hookline_contract::ExternalId;
use hookline_kit::http::ApiError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::db::{self, Decision, IncomingDecision};
use crate::error::Error;
use crate::events::ReviewEvents;

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

    /// `decision` about the review these ids name, with `receipt` (its
    /// `webhook-id`) to record.
    pub(crate) fn decision<'a>(
        &'a self,
        decision: hookline_contract::DocumentStatus,
        receipt: Option<&'a ExternalId>,
    ) -> IncomingDecision<'a> {
        IncomingDecision {
            document_id: self.document_id.as_str(),
            agent_id: self.agent_id.as_str(),
            request_id: self.request_id,
            decision,
            webhook_id: receipt.map(ExternalId::as_str),
        }
    }

    /// A `document.received` noted `at` on the review these ids name.
    pub(crate) fn receipt(&self, at: chrono::DateTime<chrono::Utc>) -> db::IncomingReceipt<'_> {
        db::IncomingReceipt {
            document_id: self.document_id.as_str(),
            agent_id: self.agent_id.as_str(),
            request_id: self.request_id,
            at,
        }
    }
}

/// Applies a decision of the help desk: the status change and its receipt
/// in one statement ([`db::apply_decision`]), and the dashboards told when
/// it changed the review. Webhooks, events and the reconciler all decide
/// through here, so a late webhook after a reconciliation is an ordinary
/// repeat.
pub async fn apply(
    conn: &mut AsyncPgConnection,
    events: &ReviewEvents,
    incoming: IncomingDecision<'_>,
) -> QueryResult<Decision> {
    let decision = db::apply_decision(conn, incoming).await?;
    if let Decision::Applied(row) = &decision {
        events.publish(&row.clone().into_review());
    }
    Ok(decision)
}

/// Notes a `document.received` on its review (never its status), and tells
/// the dashboards; `None` if no review matches.
pub(crate) async fn record_received(
    conn: &mut AsyncPgConnection,
    events: &ReviewEvents,
    incoming: db::IncomingReceipt<'_>,
) -> QueryResult<Option<db::ReviewRow>> {
    let row = db::record_received(conn, incoming).await?;
    if let Some(row) = &row {
        events.publish(&row.clone().into_review());
    }
    Ok(row)
}

/// A bulkhead between webhooks and the API on the database pool: webhooks
/// hold at most half of its connections at once, so a burst of deliveries
/// (a help desk worker fires everything that came due in one claim) cannot
/// make `POST /documents` wait for a connection. A webhook that finds no
/// free slot waits for one, at most as long as for a pooled connection,
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
