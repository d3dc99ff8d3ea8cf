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
    /// Our own requests carry our review id ([`our_review_id`]); anything
    /// else cannot match a review.
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
            request_id: id.map(our_review_id).transpose()?.flatten(),
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

/// The review id an echoed `id` names, only in the one form we send it:
/// the lowercase, hyphenated UUID. `Uuid::parse_str` also reads
/// `urn:uuid:…`, upper case, braces and the bare 32 digits as the same id,
/// and a help desk compares ids as strings, so another client could open a
/// case of its own under one of those spellings of our id and have its
/// decision applied to our review. Such a spelling is refused (400); an id
/// that is no UUID at all is not ours and matches no review (`None`).
fn our_review_id(id: &str) -> Result<Option<Uuid>, ApiError> {
    let Ok(uuid) = Uuid::parse_str(id) else {
        return Ok(None);
    };
    let mut ours = [0u8; uuid::fmt::Hyphenated::LENGTH];
    if uuid.hyphenated().encode_lower(&mut ours).as_bytes() != id.as_bytes() {
        return Err(ApiError::invalid(
            "id",
            "must be the review id exactly as this consumer sent it: a lowercase, hyphenated UUID",
        ));
    }
    Ok(Some(uuid))
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

    use uuid::Uuid;

    use super::{WebhookSlots, our_review_id};

    #[test]
    fn an_echoed_id_matches_only_in_the_form_we_send() {
        let id = "0190f5a2-7c1e-7b3d-9a4e-5f6a7b8c9d0e";
        assert_eq!(our_review_id(id).unwrap(), Some(Uuid::parse_str(id).unwrap()));
        for alias in [
            "urn:uuid:0190f5a2-7c1e-7b3d-9a4e-5f6a7b8c9d0e",
            "0190F5A2-7C1E-7B3D-9A4E-5F6A7B8C9D0E",
            "{0190f5a2-7c1e-7b3d-9a4e-5f6a7b8c9d0e}",
            "0190f5a27c1e7b3d9a4e5f6a7b8c9d0e",
        ] {
            let refused = our_review_id(alias).unwrap_err();
            assert!(
                refused.to_string().contains("lowercase, hyphenated"),
                "{alias}: {refused}"
            );
        }
        assert_eq!(our_review_id("order-42").unwrap(), None, "not a UUID: not ours");
    }

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
