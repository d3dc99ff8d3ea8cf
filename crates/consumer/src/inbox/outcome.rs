//! What became of one webhook or subscription event ([`Outcome`]): one enum
//! decides the log line, the `hookline_consumer_webhooks_total` label and
//! the answer, so the three cannot disagree. The answer matters to the help
//! desk: a 2xx ends the delivery, a 404 or a 5xx has it retried, anything
//! else is final.

use actix_web::{HttpResponse, ResponseError};
use hookline_contract::signature::VerifyError;
use hookline_contract::{AckOutcome, DocumentStatus, WebhookAck};
use hookline_kit::http::ApiError;
use tracing::{info, warn};

use crate::db::{self, Decision};
use crate::error::Error;
use crate::metrics::WebhookOutcome;

/// What became of one webhook or subscription event.
#[derive(Debug)]
pub enum Outcome {
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
    Refused(VerifyError),
    /// Malformed: 400.
    Invalid(ApiError),
    /// No review has this documentId (yet): 404, so the help desk retries.
    UnknownReview,
    /// It contradicts the stored decision: 409, the stored one stands.
    Contradicts {
        stored: DocumentStatus,
        received: DocumentStatus,
    },
    /// It names our review by its id, but another document than the one
    /// the review is bound to: 409, nothing changed.
    OtherDocument {
        bound: String,
        received: String,
    },
    /// Our storage failed: 503 (the help desk retries) or 500.
    Failed(Error),
}

impl Outcome {
    /// What applying `decision` did, as the answer to its webhook or event.
    pub(crate) fn of_decision(applied: Decision, decision: DocumentStatus, received_document: &str) -> Self {
        match applied {
            Decision::Duplicate => Self::Duplicate(decision),
            Decision::Applied(row) => Self::Applied(row, decision),
            Decision::AlreadyApplied(_) => Self::AlreadyApplied(decision),
            Decision::Contradicts(row) => Self::Contradicts {
                stored: row.status(),
                received: decision,
            },
            Decision::OtherDocument(row) => Self::OtherDocument {
                bound: row.document_id.unwrap_or_default(),
                received: received_document.to_owned(),
            },
            Decision::UnknownReview => Self::UnknownReview,
        }
    }

    /// The `outcome` label it is counted under.
    pub fn metric(&self) -> WebhookOutcome {
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
            Self::Contradicts { .. } | Self::OtherDocument { .. } => WebhookOutcome::Conflict,
            Self::Failed(_) => WebhookOutcome::Error,
        }
    }

    /// Logs it (a failure is logged with its cause when it is answered).
    pub(crate) fn log(&self) {
        match self {
            Self::Applied(row, decision) => info!(review_id = %row.id, status = %decision, "decision applied"),
            Self::Recorded(row) => {
                info!(review_id = %row.id, status = %row.status(), "the help desk's receipt of the document noted");
            }
            Self::Ignored(event_type) => info!(event_type, "event acknowledged and ignored"),
            Self::NotSubscribed => warn!("event refused: no subscription secret yet (the help desk retries)"),
            Self::NotSubscribing => info!("event refused: HELPDESK_SUBSCRIBE is off"),
            Self::AlreadyApplied(decision) => info!(status = %decision, "decision already applied"),
            Self::Duplicate(_) => info!("duplicate webhook acknowledged"),
            Self::Refused(why) => warn!(error = %why, "webhook refused"),
            Self::Contradicts { stored, received } => warn!(%stored, %received, "contradicting decision refused"),
            Self::OtherDocument { bound, received } => {
                warn!(%bound, %received, "decision refused: the review is bound to another document");
            }
            Self::Invalid(_) | Self::UnknownReview | Self::Failed(_) => {}
        }
    }

    /// The answer to the help desk.
    pub fn respond(self) -> Result<HttpResponse, Error> {
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
            Self::Refused(why) => Err(ApiError::Unauthorized(why.to_string()).into()),
            Self::Invalid(error) => Err(error.into()),
            Self::UnknownReview => Err(ApiError::NotFound("no review has this documentId (yet); retry later").into()),
            Self::Contradicts { stored, received } => {
                Err(ApiError::Conflict(format!("the review is already {stored}; {received} does not change it")).into())
            }
            Self::OtherDocument { bound, received } => Err(ApiError::Conflict(format!(
                "the review with this id is bound to documentId {bound}, not {received}; nothing changed"
            ))
            .into()),
            Self::Failed(error) => Err(error),
        }
    }
}

/// The cause of a 503 to an event that came before we hold its secret.
#[derive(Debug, thiserror::Error)]
#[error("no subscription secret is known yet (the set-up at the help desk has not succeeded)")]
struct NoSecretYet;

/// A refusal or failure met on the way, short-circuited with `?`: a
/// malformed request (4xx) is `Invalid`, anything else `Failed`.
impl<E: Into<Error>> From<E> for Outcome {
    fn from(error: E) -> Self {
        match error.into() {
            Error::Request(invalid) if invalid.status_code().is_client_error() => Self::Invalid(invalid),
            failed => Self::Failed(failed),
        }
    }
}
