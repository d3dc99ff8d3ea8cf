//! Maps storage failures to API errors, in one place: a missing row is a
//! 404, a lost or exhausted database is a 503 (retry later), anything else
//! an opaque 500 whose cause is logged.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use hookline_kit::http::ApiError;

use crate::db::PoolError;

const DATABASE: &str = "the database";

pub fn db_error(error: DieselError) -> ApiError {
    match error {
        DieselError::NotFound => ApiError::NotFound("no such review"),
        // diesel-async reports an error without an SQLSTATE (the socket
        // closed or failed mid-query) as UnableToSendCommand.
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _)
        | DieselError::BrokenTransactionManager => ApiError::unavailable(DATABASE, error),
        // tokio-postgres reports a connection lost mid-query (server shut
        // down, backend terminated) as an error of unknown kind.
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, ref info)
            if info.message().contains("connection") || info.message().contains("terminating") =>
        {
            ApiError::unavailable(DATABASE, error)
        }
        other => ApiError::internal(other),
    }
}

pub fn pool_error(error: PoolError) -> ApiError {
    ApiError::unavailable(DATABASE, error)
}
