//! The consumer's errors, by boundary.
//!
//! [`Error`] is what its routes answer with. A storage or help desk failure
//! converts into it with `?` (the `#[from]`s below, as crates.io converts
//! Diesel's errors), and this file alone decides what each becomes on the
//! wire: a missing row is a 404; a lost or exhausted database a 503 (retry
//! later); a help desk that is unreachable, slow or refusing a 502; a dead
//! background task a 503 at `/readyz`, naming it; anything else an opaque
//! 500 whose whole cause chain is logged. A malformed request
//! is the shared [`ApiError`] of `hookline-kit`, answered as it is. Every
//! answer goes out in the JSON envelope through [`hookline_kit::http::respond`].

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use diesel::result::Error as DieselError;
use hookline_contract::ErrorBody;
use hookline_kit::http::{ApiError, internal_body, respond, unavailable_body};

use crate::db::{PoolError, connection_lost};
use crate::helpdesk_client::HelpdeskError;
use crate::supervisor::TasksDied;
use crate::writer::WriteError;

const DATABASE: &str = "the database";

/// What a route of the consumer answers with when it does not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is at fault (or the route refuses it).
    #[error(transparent)]
    Request(#[from] ApiError),
    #[error("the database failed")]
    Database(#[from] DieselError),
    #[error("no database connection")]
    Pool(#[from] PoolError),
    #[error("the help desk did not take the review")]
    Helpdesk(#[from] HelpdeskError),
    /// A batched write failed (`crate::writer`).
    #[error("a batched write failed")]
    Write(#[from] WriteError),
    /// A background task died (`crate::supervisor`): not ready.
    #[error("not ready")]
    TasksDied(#[from] TasksDied),
}

impl Error {
    /// The status and envelope this error is answered with.
    fn answer(&self) -> (StatusCode, ErrorBody) {
        match self {
            Self::Request(e) => (e.status_code(), e.body()),
            Self::Database(DieselError::NotFound) => (
                StatusCode::NOT_FOUND,
                ErrorBody::new("not_found").with_detail("no such review"),
            ),
            Self::Database(e) if connection_lost(e) => (StatusCode::SERVICE_UNAVAILABLE, unavailable_body(DATABASE)),
            Self::Pool(_) | Self::Write(WriteError::Unavailable(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, unavailable_body(DATABASE))
            }
            Self::Write(WriteError::NotFound) => (
                StatusCode::NOT_FOUND,
                ErrorBody::new("not_found").with_detail("no such review"),
            ),
            Self::Write(WriteError::Failed(_)) => (StatusCode::INTERNAL_SERVER_ERROR, internal_body()),
            Self::TasksDied(died) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorBody::new("unavailable").with_detail(format!(
                    "{died}: the consumer must be restarted (the cause is in its log)"
                )),
            ),
            Self::Database(_) => (StatusCode::INTERNAL_SERVER_ERROR, internal_body()),
            Self::Helpdesk(e) => (
                StatusCode::BAD_GATEWAY,
                ErrorBody::new("bad_gateway").with_detail(match e {
                    HelpdeskError::Unreachable(_) => "the help desk is unreachable, try again later".to_owned(),
                    other => other.to_string(),
                }),
            ),
        }
    }

    /// True when the database, not the request, is at fault and a retry
    /// later may succeed (the help desk retries webhooks answered so).
    pub fn is_unavailable(&self) -> bool {
        self.answer().0 == StatusCode::SERVICE_UNAVAILABLE
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.answer().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, body) = self.answer();
        respond(status, &body, self)
    }
}
