//! Reconciliation: the safety net under the webhooks.
//!
//! Webhooks can all fail (our endpoint down for longer than the help desk's
//! retry schedule, a misrouted callback URL, a firewall). Every
//! `RECONCILE_AFTER / 4` the reconciler takes the reviews that are still
//! `PENDING_REVIEW` more than `RECONCILE_AFTER` after they were requested
//! (and not checked within that time), asks the help desk for each case
//! (`GET /document/{documentId}`) and, where it has decided, applies the
//! decision through exactly the same [`db::apply_decision`] as the webhook,
//! so a late webhook after a reconciliation is an ordinary duplicate.
//! Taking rows uses `FOR UPDATE SKIP LOCKED` and stamps `checked_at`, so
//! several consumers share the work without asking twice.

use std::time::Duration;

use chrono::Utc;
use hookline_contract::ExternalId;
use hookline_kit::http::source_chain;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::db::{self, Decision, Pool, StaleReview};
use crate::events::ReviewEvents;
use crate::helpdesk_client::HelpdeskClient;
use crate::metrics::ConsumerMetrics;

/// Reviews taken per round.
const BATCH: i64 = 100;

/// How often to look, for a given `RECONCILE_AFTER`.
pub fn interval(after: Duration) -> Duration {
    (after / 4).clamp(Duration::from_millis(50), Duration::from_secs(60))
}

/// Runs until `stop` turns true. Must run on an actix runtime (awc).
pub async fn run(
    pool: Pool,
    helpdesk: HelpdeskClient,
    events: ReviewEvents,
    metrics: ConsumerMetrics,
    after: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let every = interval(after);
    while !*stop.borrow() {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => break,
        }
        match round(&pool, &helpdesk, &events, after).await {
            Ok(decided) => metrics.reconcile_round(Some(decided)),
            Err(e) => {
                metrics.reconcile_round(None);
                warn!(error = %e, "reconciliation round failed; trying again later");
            }
        }
    }
}

/// One round; returns how many reviews it decided.
pub async fn round(
    pool: &Pool,
    helpdesk: &HelpdeskClient,
    events: &ReviewEvents,
    after: Duration,
) -> Result<usize, String> {
    let cutoff = Utc::now() - after;
    let stale = {
        let mut conn = pool.get().await.map_err(|e| source_chain(&e))?;
        db::take_stale(&mut conn, cutoff, BATCH)
            .await
            .map_err(|e| source_chain(&e))?
    };
    let mut decided = 0;
    for review in stale {
        match reconcile_one(pool, helpdesk, events, &review).await {
            Ok(true) => decided += 1,
            Ok(false) => {}
            Err(e) => {
                warn!(review_id = %review.id, document_id = %review.document_id, error = %e, "cannot reconcile the review")
            }
        }
    }
    Ok(decided)
}

async fn reconcile_one(
    pool: &Pool,
    helpdesk: &HelpdeskClient,
    events: &ReviewEvents,
    review: &StaleReview,
) -> Result<bool, String> {
    let Some(case) = helpdesk.case(&review.document_id).await.map_err(|e| e.to_string())? else {
        warn!(review_id = %review.id, document_id = %review.document_id, "the help desk does not know this review");
        return Ok(false);
    };
    if !case.status.is_decided() {
        return Ok(false);
    }
    let agent_id = ExternalId::parse(&case.agent_id).map_err(|e| format!("agentId {e}"))?;
    let mut conn = pool.get().await.map_err(|e| source_chain(&e))?;
    let incoming = db::IncomingDecision {
        document_id: &review.document_id,
        agent_id: agent_id.as_str(),
        request_id: Some(review.id),
        decision: case.status,
        webhook_id: None,
    };
    let outcome = db::apply_decision(&mut conn, incoming)
        .await
        .map_err(|e| source_chain(&e))?;
    match outcome {
        Decision::Applied(row) => {
            events.publish(&row.into_review());
            info!(review_id = %review.id, document_id = %review.document_id, status = %case.status, "decision reconciled from the help desk");
            Ok(true)
        }
        Decision::AlreadyApplied(_) | Decision::UnknownReview | Decision::Duplicate => Ok(false),
        Decision::Contradicts(row) => {
            warn!(review_id = %row.id, stored = %row.status(), helpdesk = %case.status, "the help desk's decision contradicts ours; ours stands");
            Ok(false)
        }
    }
}
