use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::DateTime;
use hookline_contract::{CreateReview, DocumentStatus, HttpUrl, ReviewPage};
use hookline_kit::http::ApiError;
use serde::Deserialize;
use tracing::{info, warn};
use uuid::Uuid;

use crate::db::{self, PageStart, Pool};
use crate::error::{db_error, pool_error};
use crate::helpdesk_client::{HelpdeskClient, HelpdeskError};

const DEFAULT_PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;

/// `POST /documents`: record the review, ask the help desk, store its ids.
///
/// The row is written *before* the help desk is called, with our id sent as
/// the request's `id`: if the webhook overtakes the help desk's answer (zero
/// delay), it still finds the review. If the help desk refuses or cannot be
/// reached, the row is removed again and the client gets a 502.
pub async fn create(
    body: web::Json<CreateReview>,
    pool: web::Data<Pool>,
    helpdesk: web::Data<HelpdeskClient>,
) -> Result<HttpResponse, ApiError> {
    let document_url =
        HttpUrl::parse(&body.document_url).map_err(|e| ApiError::invalid("documentUrl", e))?;
    let id = Uuid::now_v7();
    {
        let mut conn = pool.get().await.map_err(pool_error)?;
        db::insert_requested(&mut conn, id, document_url.as_str())
            .await
            .map_err(db_error)?;
    } // the connection goes back to the pool while we wait on the help desk

    let accepted = match helpdesk
        .request_review(&document_url, &id.to_string())
        .await
    {
        Ok(accepted) => accepted,
        Err(e) => {
            forget(&pool, id).await;
            warn!(review_id = %id, error = %e, "the help desk did not take the review");
            return Err(ApiError::BadGateway {
                detail: match e {
                    HelpdeskError::Unreachable(_) => {
                        "the help desk is unreachable, try again later".to_owned()
                    }
                    other => other.to_string(),
                },
            });
        }
    };

    let mut conn = pool.get().await.map_err(pool_error)?;
    let row = db::attach_ticket(&mut conn, id, &accepted.agent_id, &accepted.document_id)
        .await
        .map_err(db_error)?;
    info!(review_id = %id, document_id = %accepted.document_id, "review requested");
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, format!("/documents/{id}")))
        .json(row.into_review()))
}

async fn forget(pool: &Pool, id: Uuid) {
    let result = match pool.get().await {
        Ok(mut conn) => db::delete_requested(&mut conn, id)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        warn!(review_id = %id, error = %e, "cannot remove the review the help desk did not take");
    }
}

/// `GET /documents/{id}`.
pub async fn show(
    path: web::Path<String>,
    pool: web::Data<Pool>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(&path)
        .map_err(|_| ApiError::invalid("id", "is not a review id (a UUID)"))?;
    let mut conn = pool.get().await.map_err(pool_error)?;
    match db::find(&mut conn, id).await.map_err(db_error)? {
        Some(row) => Ok(HttpResponse::Ok().json(row.into_review())),
        None => Err(ApiError::NotFound("no review has this id")),
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    status: Option<String>,
}

/// `GET /documents?limit=&cursor=&status=`: newest first, keyset-paginated
/// (stable while new reviews arrive).
pub async fn list(
    query: web::Query<ListQuery>,
    pool: web::Data<Pool>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 100"));
    }
    let start = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let status = query
        .status
        .as_deref()
        .map(str::parse::<DocumentStatus>)
        .transpose()
        .map_err(|e| ApiError::invalid("status", e))?;

    let mut conn = pool.get().await.map_err(pool_error)?;
    let mut rows = db::list(&mut conn, start, status, limit + 1)
        .await
        .map_err(db_error)?;
    let next_cursor = if rows.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
        rows.truncate(rows.len() - 1);
        rows.last().map(|row| {
            encode_cursor(PageStart {
                created_at: row.created_at,
                id: row.id,
            })
        })
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(ReviewPage {
        items: rows.into_iter().map(db::ReviewRow::into_review).collect(),
        next_cursor,
    }))
}

fn encode_cursor(start: PageStart) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}.{}",
        start.created_at.timestamp_micros(),
        start.id
    ))
}

fn decode_cursor(raw: &str) -> Result<PageStart, ApiError> {
    let bad = || ApiError::invalid("cursor", "is not a cursor this API handed out");
    let text = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let text = String::from_utf8(text).map_err(|_| bad())?;
    let (micros, id) = text.split_once('.').ok_or_else(bad)?;
    Ok(PageStart {
        created_at: DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad())?)
            .ok_or_else(bad)?,
        id: Uuid::parse_str(id).map_err(|_| bad())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let start = PageStart {
            created_at: DateTime::from_timestamp_micros(1_763_800_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(decode_cursor(&encode_cursor(start)).unwrap(), start);
        for bad in ["", "!!", "bm9wZQ", &URL_SAFE_NO_PAD.encode("12.not-a-uuid")] {
            assert!(decode_cursor(bad).is_err(), "{bad:?}");
        }
    }
}
