//! Reconciliation: the safety net under the webhooks.
//!
//! Webhooks can all fail (our endpoint down for longer than the help desk's
//! retry schedule, a misrouted callback URL, a firewall). The reconciler
//! takes the reviews that are still `PENDING_REVIEW` more than
//! `RECONCILE_AFTER` after they were requested (and not checked within that
//! time), asks the help desk for each case (`GET /document/{documentId}`)
//! and, where it has decided, applies the decision through exactly the same
//! [`db::apply_decision`] as the webhook, so a late webhook after a
//! reconciliation is an ordinary duplicate. Taking rows uses `FOR UPDATE
//! SKIP LOCKED` and stamps `checked_at`, so several consumers share the work
//! without asking twice.
//!
//! It keeps up to [`CONCURRENCY`] questions in flight, each bounded by
//! `HELPDESK_TIMEOUT` (body included), and takes more stale reviews as soon
//! as one is answered: a case whose answer never comes holds one slot until
//! its deadline, never the others, and a backlog drains at the help desk's
//! pace. With nothing in flight it looks every `RECONCILE_AFTER / 4`.

use std::time::Duration;

use chrono::Utc;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use hookline_contract::ExternalId;
use hookline_kit::http::source_chain;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::db::{self, Decision, Pool, StaleReview};
use crate::events::ReviewEvents;
use crate::helpdesk_client::HelpdeskClient;
use crate::metrics::ConsumerMetrics;

/// Reviews asked about at once.
pub const CONCURRENCY: usize = 16;

/// How often to look, for a given `RECONCILE_AFTER`.
pub fn interval(after: Duration) -> Duration {
    (after / 4).clamp(Duration::from_millis(50), Duration::from_secs(60))
}

/// What a task of the reconciler came back with.
enum Done {
    /// A look for stale reviews.
    Looked(Result<Vec<StaleReview>, String>),
    /// A question about one review; true if that decided it.
    Asked(bool),
}

/// Runs until `stop` turns true. Must run on an actix runtime (awc).
///
/// The look for stale reviews runs beside the questions already asked, in
/// one set of futures: awaiting it alone would leave the others unpolled,
/// holding the pool connections it waits for.
pub async fn run(
    pool: Pool,
    helpdesk: HelpdeskClient,
    events: ReviewEvents,
    metrics: ConsumerMetrics,
    after: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let every = interval(after);
    let mut next_look = Instant::now() + every;
    let (mut looking, mut asked_for, mut asking) = (false, 0, 0);
    let (pool, helpdesk, events) = (&pool, &helpdesk, &events);
    let mut tasks = FuturesUnordered::new();
    while !*stop.borrow() {
        let free = CONCURRENCY - asking;
        if !looking && free > 0 && Instant::now() >= next_look {
            (looking, asked_for) = (true, free);
            tasks.push(async move { Done::Looked(take_stale(pool, after, free).await) }.boxed_local());
        }
        tokio::select! {
            Some(done) = tasks.next(), if !tasks.is_empty() => match done {
                Done::Looked(Ok(stale)) => {
                    looking = false;
                    metrics.reconcile_round(true);
                    // As many as there was room for: there may be more, so
                    // look again as soon as a slot frees.
                    next_look = Instant::now() + if stale.len() == asked_for { Duration::ZERO } else { every };
                    asking += stale.len();
                    for review in stale {
                        tasks.push(async move { Done::Asked(ask(pool, helpdesk, events, review).await) }.boxed_local());
                    }
                }
                Done::Looked(Err(e)) => {
                    looking = false;
                    metrics.reconcile_round(false);
                    warn!(error = %e, "cannot look for reviews to reconcile; trying again later");
                    next_look = Instant::now() + every;
                }
                Done::Asked(decided) => {
                    asking -= 1;
                    if decided {
                        metrics.review_reconciled();
                    }
                }
            },
            () = tokio::time::sleep_until(next_look), if !looking && asking < CONCURRENCY => {}
            // Told to stop, or the application (the sender) is gone.
            _ = stop.changed() => break,
        }
    }
}

/// Up to `limit` reviews pending since before `now - after`, marked checked.
async fn take_stale(pool: &Pool, after: Duration, limit: usize) -> Result<Vec<StaleReview>, String> {
    let cutoff = Utc::now() - after;
    let mut conn = pool.get().await.map_err(|e| source_chain(&e))?;
    db::take_stale(&mut conn, cutoff, i64::try_from(limit).unwrap_or(i64::MAX))
        .await
        .map_err(|e| source_chain(&e))
}

/// Asks about one review; true if that decided it.
async fn ask(pool: &Pool, helpdesk: &HelpdeskClient, events: &ReviewEvents, review: StaleReview) -> bool {
    match reconcile_one(pool, helpdesk, events, &review).await {
        Ok(decided) => decided,
        Err(e) => {
            warn!(review_id = %review.id, document_id = %review.document_id, error = %e, "cannot reconcile the review");
            false
        }
    }
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
