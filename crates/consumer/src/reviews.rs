//! Creating a review (`POST /documents`): the row, the help desk's ticket,
//! and the `Idempotency-Key` that makes the request safe to retry.
//!
//! The row is written *before* the help desk is called, with our id sent as
//! the request's `id`: if the webhook overtakes the help desk's answer (zero
//! delay), it still finds the review. The write goes through the group
//! commit ([`Writer`]), and no connection is held while the help desk is
//! asked.
//!
//! The call is tried again while the help desk has not had its say (no
//! answer, or "not now": [`HelpdeskError::is_transient`]), after each of
//! [`RETRY_PAUSES`], all tries within one `HELPDESK_TIMEOUT`; the help desk
//! answers a retry with the same `id` with the same case, so a retry never
//! makes a second one. If it still has not answered, the review is kept
//! without its ticket (`documentId` null) and the reconciler sends the
//! request again later, so nothing the client was told exists is ever lost.
//! If it refuses, the row is removed again and the client gets a 502.
//!
//! With an `Idempotency-Key` ([`db::claim_key`]), a retry of the same
//! request gets the first answer again (and the help desk is asked only
//! once); the same key with another `documentUrl` is a 422, and while the
//! first request still runs a 409. A failed request frees its key for the
//! next try. A key whose request died mid-way is taken over after a while,
//! and its review goes on under the same id: its row may exist, and the help
//! desk answers the same `id` with the same case.

use std::time::Duration;

use hookline_contract::{HttpUrl, Review};
use hookline_kit::http::{ApiError, source_chain};
use hookline_kit::request_id::RequestId;
use hookline_kit::trace::TraceContext;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::db::{self, IdempotencyKey, KeyClaim, Pool};
use crate::error::Error;
use crate::events::ReviewEvents;
use crate::helpdesk_client::{HelpdeskClient, HelpdeskError};
use crate::subscription::Callback;
use crate::writer::{NewRow, Ticket, Writer};

/// The pause before each retry of the help desk call within one request.
/// All tries together get one `HELPDESK_TIMEOUT`.
pub const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(400)];

/// What a request to create a review is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The review (its JSON): a `201`.
    New(String),
    /// The first answer to this `Idempotency-Key`, given again.
    Replayed { status: u16, body: String },
}

/// Creates reviews. Holds a batched writer and a help desk client, both
/// bound to the thread that made them, so there is one per HTTP worker.
pub struct Reviews {
    pool: Pool,
    writer: Writer,
    helpdesk: HelpdeskClient,
    events: ReviewEvents,
    callback: Callback,
}

/// The review a request makes: a new id, or, resuming an `Idempotency-Key`
/// whose first request died mid-way, that request's.
#[derive(Debug, Clone, Copy)]
struct Planned {
    id: Uuid,
    resumed: bool,
}

impl Reviews {
    pub fn new(pool: Pool, writer: Writer, helpdesk: HelpdeskClient, events: ReviewEvents, callback: Callback) -> Self {
        Self {
            pool,
            writer,
            helpdesk,
            events,
            callback,
        }
    }

    /// Creates a review of `document_url` (see the module), once per `key`.
    /// `request_id` is the request being served: the help desk logs it too;
    /// `trace` its server span, under which each call to the help desk is a
    /// span.
    pub async fn create(
        &self,
        document_url: &HttpUrl,
        key: Option<IdempotencyKey<'_>>,
        request_id: &RequestId,
        trace: Option<TraceContext>,
    ) -> Result<Created, Error> {
        let mut review = Planned {
            id: Uuid::now_v7(),
            resumed: false,
        };
        if let Some(key) = key {
            let mut conn = self.pool.get().await?;
            match db::claim_key(&mut conn, key, document_url.as_str(), review.id).await? {
                KeyClaim::Fresh { review_id } => review.id = review_id,
                KeyClaim::Resume { review_id } => {
                    info!(review_id = %review_id, "an Idempotency-Key whose request died mid-way: resuming its review");
                    review = Planned {
                        id: review_id,
                        resumed: true,
                    };
                }
                KeyClaim::Replay { status, body } => return Ok(Created::Replayed { status, body }),
                KeyClaim::InProgress => {
                    return Err(ApiError::Conflict(
                        "a request with this Idempotency-Key is still in progress; retry later".to_owned(),
                    )
                    .into());
                }
                KeyClaim::Mismatch => {
                    return Err(ApiError::Unprocessable(
                        "this Idempotency-Key was used for a different request".to_owned(),
                    )
                    .into());
                }
            }
        }

        let outcome = self.request(document_url, review, request_id, trace).await;
        if let Some(key) = key
            && let Err(e) = self.record_key(key, outcome.as_ref().ok()).await
        {
            warn!(error = %source_chain(&e), "cannot record the outcome of an Idempotency-Key");
        }
        outcome.map(Created::New)
    }

    /// Stores the answer to an `Idempotency-Key` (`Some`), or frees the key
    /// for the next try (`None`: the request failed).
    async fn record_key(&self, key: IdempotencyKey<'_>, answer: Option<&String>) -> Result<(), Error> {
        let mut conn = self.pool.get().await?;
        match answer {
            Some(body) => db::complete_key(&mut conn, key, 201, body).await?,
            None => db::release_key(&mut conn, key).await?,
        }
        Ok(())
    }

    /// The review, as the JSON of the first answer: stored, then asked of
    /// the help desk, then given its ticket (see the module).
    async fn request(
        &self,
        document_url: &HttpUrl,
        review: Planned,
        request_id: &RequestId,
        trace: Option<TraceContext>,
    ) -> Result<String, Error> {
        let id = review.id;
        let stored = review.resumed && db::find(&mut *self.pool.get().await?, id).await?.is_some();
        if !stored {
            self.writer
                .insert(NewRow {
                    id,
                    document_url: document_url.to_string(),
                })
                .await?;
        }

        let accepted = match self.ask(document_url, id, request_id, trace).await {
            Ok(accepted) => accepted,
            Err(e) if e.is_transient() => {
                warn!(review_id = %id, error = %source_chain(&e),
                    "no answer from the help desk: the review is kept, and the reconciler sends it again");
                let mut conn = self.pool.get().await?;
                let row = db::find(&mut conn, id).await?.ok_or(Error::Helpdesk(e))?;
                return self.publish(row.into_review());
            }
            Err(e) => {
                self.forget(id).await;
                warn!(review_id = %id, error = %source_chain(&e), "the help desk refused the review");
                return Err(e.into());
            }
        };
        // On the request's span, so a grep for the document id finds this request too.
        tracing::Span::current().record("document_id", accepted.document_id.as_str());

        let row = self
            .writer
            .attach(Ticket {
                id,
                agent_id: accepted.agent_id.clone(),
                document_id: accepted.document_id.clone(),
            })
            .await?;
        info!(review_id = %id, document_id = %accepted.document_id, "review requested");
        self.publish(row.into_review())
    }

    /// Asks the help desk for review `id`, trying again while it has not
    /// had its say, all within one `HELPDESK_TIMEOUT`.
    async fn ask(
        &self,
        document_url: &HttpUrl,
        id: Uuid,
        request_id: &RequestId,
        trace: Option<TraceContext>,
    ) -> Result<hookline_contract::DocumentAccepted, HelpdeskError> {
        let helpdesk = &self.helpdesk;
        let tries = async {
            let mut pauses = RETRY_PAUSES.iter();
            loop {
                let callback = self.callback.current();
                match helpdesk
                    .request_review(document_url, &id.to_string(), request_id, callback, trace)
                    .await
                {
                    Err(e) if e.is_transient() => match pauses.next() {
                        Some(pause) => {
                            debug!(review_id = %id, error = %source_chain(&e), "no answer from the help desk; trying again");
                            tokio::time::sleep(*pause).await;
                        }
                        None => return Err(e),
                    },
                    answer => return answer,
                }
            }
        };
        tokio::time::timeout(helpdesk.timeout(), tries)
            .await
            .unwrap_or(Err(HelpdeskError::TimedOut(helpdesk.timeout())))
    }

    /// Tells the dashboards about `review`; its JSON.
    fn publish(&self, review: Review) -> Result<String, Error> {
        self.events.publish(&review);
        Ok(serde_json::to_string(&review).map_err(ApiError::internal)?)
    }

    /// Removes a review the help desk did not take (logged if that fails too).
    async fn forget(&self, id: Uuid) {
        let delete = async {
            let mut conn = self.pool.get().await?;
            db::delete_requested(&mut conn, id).await?;
            Ok::<_, Error>(())
        };
        if let Err(e) = delete.await {
            warn!(review_id = %id, error = %source_chain(&e), "cannot remove the review the help desk did not take");
        }
    }
}
