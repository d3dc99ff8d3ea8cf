//! The help desk's errors, by boundary.
//!
//! [`Error`] is what its routes answer with. A store failure converts into
//! it with `?`, and this file alone decides what it becomes on the wire:
//! Redis unreachable is a 503 (retry later), a case Redis holds in a shape
//! we cannot read an opaque 500 whose cause is logged. A malformed request is
//! the shared [`ApiError`], answered as it is, in the JSON envelope of
//! [`hookline_kit::http::respond`].

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use hookline_contract::ErrorBody;
use hookline_kit::auth::Forbidden;
use hookline_kit::http::{ApiError, internal_body, respond, unavailable_body};

use crate::store::StoreError;

/// What a route of the help desk answers with when it does not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is at fault (or the route refuses it).
    #[error(transparent)]
    Request(#[from] ApiError),
    /// A tenant's key asked for what only the operator's may do.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("the store failed")]
    Store(#[from] StoreError),
}

impl Error {
    fn answer(&self) -> (StatusCode, ErrorBody) {
        match self {
            Self::Request(e) => (e.status_code(), e.body()),
            Self::Forbidden(e) => (
                StatusCode::FORBIDDEN,
                ErrorBody::new("forbidden").with_detail(e.to_string()),
            ),
            Self::Store(StoreError::Redis(_) | StoreError::NotReplicated { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, unavailable_body("the job store"))
            }
            Self::Store(StoreError::Corrupt { .. } | StoreError::Layout { .. } | StoreError::OldLayout { .. }) => {
                (StatusCode::INTERNAL_SERVER_ERROR, internal_body())
            }
        }
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
