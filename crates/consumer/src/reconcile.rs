//! Reconciliation: the safety net under the webhooks.
//!
//! Webhooks can all fail (our endpoint down for longer than the help desk's
//! retry schedule, a misrouted callback URL, a firewall). The reconciler
//! takes the reviews that are still `PENDING_REVIEW` more than
//! `RECONCILE_AFTER` after they were requested (and not checked within that
//! time), asks the help desk for each case (`GET /document/{documentId}`)
//! and, where it has decided, applies the decision through exactly the same
//! [`inbox::apply`] as the webhook, so a late webhook after a
//! reconciliation is an ordinary duplicate. Taking rows uses `FOR UPDATE
//! SKIP LOCKED` and stamps `checked_at`, so several consumers share the work
//! without asking twice.
//!
//! It keeps up to [`CONCURRENCY`] questions in flight, each bounded by
//! `HELPDESK_TIMEOUT` (body included), and takes more stale reviews as soon
//! as one is answered: a case whose answer never comes holds one slot until
//! its deadline, never the others, and a backlog drains at the help desk's
//! pace. With nothing in flight it looks every `RECONCILE_AFTER / 4`. A
//! help desk that knows none of the cases it is asked about (the original
//! tutorial's has no `GET /document/{documentId}`) is reported once, and
//! looked at less and less often, up to once an hour, until it answers.
//!
//! Two more kinds of review need it:
//! - one whose request's answer never came (no `documentId`: the help desk
//!   may have the case, or not) is **healed**: the request is sent again
//!   with the same `id`, which the help desk answers with the case it made
//!   the first time, or a new one if it never got it;
//! - one the help desk no longer knows (404: its case expired after the
//!   help desk's `CASE_RETENTION`, or was lost) is marked **lost**, counted,
//!   logged once, and not asked about again; a webhook can still decide it.
//!
//! A question that fails is logged and asked again at a later look; a look
//! that fails because the database cannot be reached is counted (`failed`)
//! and tried again. A look the database refuses otherwise (a table missing,
//! a permission) ends the reconciler with that error ([`ReconcileError`]),
//! which its [supervisor](crate::supervisor) reports.

use std::time::Duration;

use chrono::Utc;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use hookline_contract::{ExternalId, HttpUrl, InvalidInput};
use hookline_kit::http::source_chain;
use hookline_kit::request_id::RequestId;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::db::{self, Decision, Pool, PoolError, StaleReview};
use crate::events::ReviewEvents;
use crate::helpdesk_client::{HelpdeskClient, HelpdeskError};
use crate::inbox;
use crate::metrics::ConsumerMetrics;
use crate::subscription::Callback;

/// Reviews asked about at once.
pub const CONCURRENCY: usize = 16;
/// Reviews in a row the help desk says it does not know before the
/// reconciler concludes it cannot answer at all, says so once, and backs off.
const UNKNOWN_STREAK: u32 = 3;
/// The longest the reconciler waits between looks while backing off.
const MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);

/// How often to look, for a given `RECONCILE_AFTER`.
pub fn interval(after: Duration) -> Duration {
    (after / 4).clamp(Duration::from_millis(50), Duration::from_secs(60))
}

/// What the reconciler met.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("no database connection")]
    Pool(#[from] PoolError),
    #[error("the database failed")]
    Database(#[from] diesel::result::Error),
    #[error("the help desk did not answer as expected")]
    Helpdesk(#[from] HelpdeskError),
    #[error("the stored document URL of review {review_id} is unusable")]
    StoredUrl {
        review_id: uuid::Uuid,
        #[source]
        reason: InvalidInput,
    },
}

impl ReconcileError {
    /// Whether a look may succeed later: the database comes back; one that
    /// refuses the statement otherwise does not.
    fn is_retryable(&self) -> bool {
        match self {
            Self::Pool(_) | Self::Helpdesk(_) | Self::StoredUrl { .. } => true,
            Self::Database(e) => crate::db::retryable(e),
        }
    }
}

/// The help desk and where its decisions go, as the reconciler asks it.
pub struct Helpdesk {
    pub client: HelpdeskClient,
    /// Where a request sent again asks for its decision.
    pub callback: Callback,
}

/// What a task of the reconciler came back with.
enum Done {
    /// A look for stale reviews.
    Looked(Result<Vec<StaleReview>, ReconcileError>),
    /// A question about one review.
    Asked(StaleReview, Result<Answer, ReconcileError>),
}

/// What the help desk's answer about one review led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Its decision was applied here.
    Decided,
    /// Nothing to do: undecided there, or already decided here.
    Unchanged,
    /// The help desk does not know the case (404): marked lost.
    Unknown,
    /// Its lost request was sent again and taken: the review has its ticket.
    Healed,
}

/// A help desk that answers 404 for every case (the original tutorial's has
/// no `GET /document/{documentId}`) is told once and asked less and less
/// often, instead of filling the log with the same line every round.
#[derive(Debug, Default)]
struct Unknowns {
    streak: u32,
    backoff: Option<Duration>,
    /// Backing off, a look has been made since: its answers count again.
    armed: bool,
}

impl Unknowns {
    /// A look for stale reviews is being made.
    fn looked(&mut self) {
        if self.backoff.is_some() {
            (self.armed, self.streak) = (true, 0);
        }
    }

    /// Notes one answer; returns how long to wait before the next look
    /// when the reconciler should back off (further).
    fn note(&mut self, answer: Answer, review: &StaleReview, after: Duration) -> Option<Duration> {
        if answer != Answer::Unknown {
            if self.backoff.take().is_some() {
                info!("the help desk knows our cases again: reconciliation is back to every RECONCILE_AFTER");
            }
            self.streak = 0;
            return None;
        }
        if self.backoff.is_some() && !self.armed {
            debug!(review_id = %review.id, "unknown to the help desk (backing off)");
            return None;
        }
        self.streak += 1;
        if self.streak < UNKNOWN_STREAK {
            return None;
        }
        let backoff = self
            .backoff
            .map_or(after, |current| current * 2)
            .clamp(Duration::from_secs(1), MAX_BACKOFF);
        if self.backoff.is_none() {
            warn!(
                unknown_in_a_row = self.streak,
                backoff = %humantime::format_duration(backoff),
                "the help desk answers 404 for every review asked about: it may have no GET /document/{{documentId}} \
                 (the original tutorial's has none); reconciliation backs off"
            );
        } else {
            debug!(backoff = %humantime::format_duration(backoff), "the help desk still knows none of our cases");
        }
        (self.backoff, self.streak, self.armed) = (Some(backoff), 0, false);
        Some(backoff)
    }
}

/// Runs until `stop` turns true, or a look meets an error that a retry
/// cannot fix. Must run on an actix runtime (awc).
///
/// The look for stale reviews runs beside the questions already asked, in
/// one set of futures: awaiting it alone would leave the others unpolled,
/// holding the pool connections it waits for.
pub async fn run(
    pool: Pool,
    helpdesk: Helpdesk,
    events: ReviewEvents,
    metrics: ConsumerMetrics,
    after: Duration,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ReconcileError> {
    let every = interval(after);
    let mut next_look = Instant::now() + every;
    let (mut looking, mut asked_for, mut asking) = (false, 0, 0);
    let mut unknowns = Unknowns::default();
    let (pool, helpdesk, events) = (&pool, &helpdesk, &events);
    let mut tasks = FuturesUnordered::new();
    while !*stop.borrow() {
        let free = CONCURRENCY - asking;
        if !looking && free > 0 && Instant::now() >= next_look {
            (looking, asked_for) = (true, free);
            unknowns.looked();
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
                        tasks.push(async move {
                            let answer = reconcile_one(pool, helpdesk, events, &review).await;
                            Done::Asked(review, answer)
                        }.boxed_local());
                    }
                }
                Done::Looked(Err(e)) => {
                    looking = false;
                    metrics.reconcile_round(false);
                    if !e.is_retryable() {
                        return Err(e);
                    }
                    warn!(error = %source_chain(&e), "cannot look for reviews to reconcile; trying again later");
                    next_look = Instant::now() + every;
                }
                Done::Asked(review, answer) => {
                    asking -= 1;
                    match answer {
                        Ok(answer) => {
                            match answer {
                                Answer::Decided => metrics.review_reconciled(),
                                Answer::Healed => metrics.review_healed(),
                                Answer::Unknown => metrics.review_lost(),
                                Answer::Unchanged => {}
                            }
                            if let Some(backoff) = unknowns.note(answer, &review, after) {
                                next_look = next_look.max(Instant::now() + backoff);
                            }
                        }
                        Err(e) => warn!(
                            review_id = %review.id, document_id = review.document_id.as_deref(),
                            error = %source_chain(&e), "cannot reconcile the review"
                        ),
                    }
                }
            },
            () = tokio::time::sleep_until(next_look), if !looking && asking < CONCURRENCY => {}
            // Told to stop, or the application (the sender) is gone.
            _ = stop.changed() => break,
        }
    }
    Ok(())
}

/// Up to `limit` reviews pending since before `now - after`, marked checked.
async fn take_stale(pool: &Pool, after: Duration, limit: usize) -> Result<Vec<StaleReview>, ReconcileError> {
    let cutoff = Utc::now() - after;
    let mut conn = pool.get().await?;
    Ok(db::take_stale(&mut conn, cutoff, i64::try_from(limit).unwrap_or(i64::MAX)).await?)
}

/// Asks the help desk about one review and applies its decision, if any;
/// sends a request whose answer was lost again.
async fn reconcile_one(
    pool: &Pool,
    helpdesk: &Helpdesk,
    events: &ReviewEvents,
    review: &StaleReview,
) -> Result<Answer, ReconcileError> {
    let Some(document_id) = review.document_id.as_deref() else {
        return heal(pool, helpdesk, events, review).await;
    };
    let Some(case) = helpdesk.client.case(document_id).await? else {
        let mut conn = pool.get().await?;
        db::mark_lost(&mut conn, review.id).await?;
        warn!(review_id = %review.id, %document_id,
            "the help desk does not know this review (its case expired or was lost): not asked about again");
        return Ok(Answer::Unknown);
    };
    if !case.status.is_decided() {
        return Ok(Answer::Unchanged);
    }
    let agent_id = ExternalId::parse(&case.agent_id).map_err(|reason| HelpdeskError::BadId {
        field: "agentId",
        reason,
    })?;
    let mut conn = pool.get().await?;
    let incoming = db::IncomingDecision {
        document_id,
        agent_id: agent_id.as_str(),
        request_id: Some(review.id),
        decision: case.status,
        webhook_id: None,
    };
    match inbox::apply(&mut conn, events, incoming).await? {
        Decision::Applied(_) => {
            info!(review_id = %review.id, %document_id, status = %case.status, "decision reconciled from the help desk");
            Ok(Answer::Decided)
        }
        Decision::AlreadyApplied(_) | Decision::UnknownReview | Decision::Duplicate | Decision::OtherDocument(_) => {
            Ok(Answer::Unchanged)
        }
        Decision::Contradicts(row) => {
            warn!(review_id = %row.id, stored = %row.status(), helpdesk = %case.status, "the help desk's decision contradicts ours; ours stands");
            Ok(Answer::Unchanged)
        }
    }
}

/// Sends again the request of a review whose answer never came, with the
/// same `id`: the help desk answers with the case it made for it, if it got
/// it, so a review never gets two cases. A refusal (the help desk's word,
/// not a lost answer) marks it lost.
async fn heal(
    pool: &Pool,
    helpdesk: &Helpdesk,
    events: &ReviewEvents,
    review: &StaleReview,
) -> Result<Answer, ReconcileError> {
    let document_url = HttpUrl::parse(&review.document_url).map_err(|reason| ReconcileError::StoredUrl {
        review_id: review.id,
        reason,
    })?;
    let request_id = RequestId::generate();
    let callback = helpdesk.callback.current();
    match helpdesk
        .client
        .request_review(&document_url, &review.id.to_string(), &request_id, callback, None)
        .await
    {
        Ok(accepted) => {
            let mut conn = pool.get().await?;
            let row = db::attach_ticket(&mut conn, review.id, &accepted.agent_id, &accepted.document_id).await?;
            info!(review_id = %review.id, document_id = %accepted.document_id, "a review whose answer was lost has its ticket");
            events.publish(&row.into_review());
            Ok(Answer::Healed)
        }
        Err(e) if e.is_transient() => Err(e.into()),
        Err(e) => {
            let mut conn = pool.get().await?;
            db::mark_lost(&mut conn, review.id).await?;
            warn!(review_id = %review.id, error = %source_chain(&e),
                "the help desk refuses the request of a review whose answer was lost: not asked again");
            Ok(Answer::Unknown)
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn review() -> StaleReview {
        StaleReview {
            id: Uuid::now_v7(),
            document_url: "https://example.com/a.pdf".to_owned(),
            document_id: Some("d".to_owned()),
            agent_id: None,
        }
    }

    #[test]
    fn a_help_desk_that_knows_no_case_is_backed_off_from_doubling_and_forgiven_on_an_answer() {
        let (mut unknowns, after) = (Unknowns::default(), Duration::from_secs(60));
        let note = |unknowns: &mut Unknowns, answer| unknowns.note(answer, &review(), after);
        assert_eq!(note(&mut unknowns, Answer::Unknown), None);
        assert_eq!(note(&mut unknowns, Answer::Unknown), None);
        assert_eq!(
            note(&mut unknowns, Answer::Unknown),
            Some(after),
            "the third in a row backs off"
        );
        // The rest of that look's answers change nothing...
        for _ in 0..10 {
            assert_eq!(note(&mut unknowns, Answer::Unknown), None);
        }
        // ...the next look's do: twice as long.
        unknowns.looked();
        for _ in 0..2 {
            assert_eq!(note(&mut unknowns, Answer::Unknown), None);
        }
        assert_eq!(note(&mut unknowns, Answer::Unknown), Some(after * 2));
        // One answer it knows, and the back-off is over.
        assert_eq!(note(&mut unknowns, Answer::Unchanged), None);
        assert_eq!(unknowns.backoff, None);
        for _ in 0..2 {
            assert_eq!(note(&mut unknowns, Answer::Unknown), None);
        }
        assert_eq!(
            note(&mut unknowns, Answer::Unknown),
            Some(after),
            "and starts again from RECONCILE_AFTER"
        );
    }
}
