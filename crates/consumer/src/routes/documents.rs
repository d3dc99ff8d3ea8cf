//! The reviews: `POST /documents` (created by [`crate::reviews`]),
//! `GET /documents/{id}`, and `GET /documents`, newest first, a page at a time.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::DateTime;
use hookline_contract::headers::IDEMPOTENT_REPLAYED;
use hookline_contract::{CreateReview, DocumentStatus, ErrorBody, HttpUrl, Review, ReviewPage};
use hookline_kit::auth::Authorized;
use hookline_kit::http::ApiError;
use hookline_kit::json::JsonBody;
use hookline_kit::request_id::RequestId;
use hookline_kit::trace::{TraceContext, Tracer};
use serde::Deserialize;
use uuid::Uuid;

use crate::db::{self, IdempotencyKey, PageStart, Pool};
use crate::error::Error;
use crate::reviews::{Created, Reviews};
use crate::routes::Private;

const DEFAULT_PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;

/// Header that makes `POST /documents` safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `POST /documents`: record the review, ask the help desk, store its ids.
///
/// With an `Idempotency-Key`, a retry of the same request gets the first
/// response again (and the help desk is asked only once); the same key with
/// another `documentUrl` is a 422, and while the first request still runs a
/// 409. A failed request frees its key for the next try. Keys belong to the
/// caller (its API key's tenant): another caller's key is a new request.
#[utoipa::path(
    post, path = "/documents", tag = "reviews", security(("api_key" = [])),
    request_body(content = CreateReview, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the same key gets the first response again"),
        ("traceparent" = Option<String>, Header, description = "W3C Trace Context: the review joins the caller's trace (its call to the help desk, the help desk's deliveries and their receipts carry it on). One that does not parse is ignored"),
    ),
    responses(
        (status = 201, description = "The review, PENDING_REVIEW until the webhook lands. Its documentId is null while the help desk has not answered (it is asked again in the background)", body = Review,
            headers(("location" = String, description = "/documents/{id}"))),
        (status = 400, description = "Malformed request (the body names the field)", body = ErrorBody),
        (status = 409, description = "Conflict", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused for another request", body = ErrorBody),
        (status = 502, description = "The help desk refused the review", body = ErrorBody),
        (status = 503, description = "Storage unavailable; retry later", body = ErrorBody),
        Private,
    )
)]
pub async fn create(
    auth: Authorized,
    request: HttpRequest,
    body: JsonBody<CreateReview>,
    reviews: web::Data<Reviews>,
    tracer: web::Data<Tracer>,
) -> Result<HttpResponse, Error> {
    // A server span continuing the caller's `traceparent` (or, exporting, a
    // new trace): the help desk's call is its child.
    let mut span = tracer.server("POST /documents", request.headers());
    let answer = create_review(auth, &request, body, &reviews, span.context()).await;
    span.answer(&answer);
    answer
}

async fn create_review(
    auth: Authorized,
    request: &HttpRequest,
    body: JsonBody<CreateReview>,
    reviews: &Reviews,
    trace: Option<TraceContext>,
) -> Result<HttpResponse, Error> {
    let document_url = HttpUrl::parse(&body.0.document_url).map_err(|e| ApiError::invalid("documentUrl", e))?;
    let key = idempotency_key(request)?;
    let request_id = RequestId::of(request);
    let key = key.as_deref().map(|key| IdempotencyKey {
        caller: auth.tenant(),
        key,
    });
    match reviews.create(&document_url, key, &request_id, trace).await? {
        Created::New(body) => created(201, body),
        Created::Replayed { status, body } => {
            let mut replay = created(status, body)?;
            replay.headers_mut().insert(
                HeaderName::from_static(IDEMPOTENT_REPLAYED),
                HeaderValue::from_static("true"),
            );
            Ok(replay)
        }
    }
}

/// The review as its `Location` and JSON, with `status`.
fn created(status: u16, body: String) -> Result<HttpResponse, Error> {
    let review: Review = serde_json::from_str(&body).map_err(ApiError::internal)?;
    let status = StatusCode::from_u16(status).map_err(ApiError::internal)?;
    Ok(HttpResponse::build(status)
        .insert_header((LOCATION, format!("/documents/{}", review.id)))
        .content_type("application/json")
        .body(body))
}

fn idempotency_key(request: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(raw) = request.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|key| (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| ApiError::invalid("Idempotency-Key", "must be 1-255 visible ASCII characters"))?;
    Ok(Some(key.to_owned()))
}

/// `GET /documents/{id}`.
#[utoipa::path(
    get, path = "/documents/{id}", tag = "reviews", security(("api_key" = [])),
    params(("id" = String, Path, description = "The review's id (a UUID)")),
    responses(
        (status = 200, description = "The review", body = Review),
        (status = 400, description = "Malformed request (the body names the field)", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 503, description = "Storage unavailable; retry later", body = ErrorBody),
        Private,
    )
)]
pub async fn show(_: Authorized, path: web::Path<String>, pool: web::Data<Pool>) -> Result<HttpResponse, Error> {
    let id = Uuid::parse_str(&path).map_err(|_| ApiError::invalid("id", "is not a review id (a UUID)"))?;
    let mut conn = pool.get().await?;
    match db::find(&mut conn, id).await? {
        Some(row) => Ok(HttpResponse::Ok().json(row.into_review())),
        None => Err(ApiError::NotFound("no review has this id").into()),
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
#[utoipa::path(
    get, path = "/documents", tag = "reviews", security(("api_key" = [])),
    params(
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page"),
        ("status" = Option<DocumentStatus>, Query, description = "Only reviews in this status"),
    ),
    responses(
        (status = 200, description = "Reviews, newest first", body = ReviewPage),
        (status = 400, description = "Malformed request (the body names the field)", body = ErrorBody),
        (status = 503, description = "Storage unavailable; retry later", body = ErrorBody),
        Private,
    )
)]
pub async fn list(_: Authorized, query: web::Query<ListQuery>, pool: web::Data<Pool>) -> Result<HttpResponse, Error> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 100").into());
    }
    let start = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let status = query
        .status
        .as_deref()
        .map(str::parse::<DocumentStatus>)
        .transpose()
        .map_err(|e| ApiError::invalid("status", e))?;

    let mut conn = pool.get().await?;
    let mut rows = db::list(&mut conn, start, status, limit + 1).await?;
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
    URL_SAFE_NO_PAD.encode(format!("{}.{}", start.created_at.timestamp_micros(), start.id))
}

fn decode_cursor(raw: &str) -> Result<PageStart, ApiError> {
    let bad = || ApiError::invalid("cursor", "is not a cursor this API handed out");
    let text = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let text = String::from_utf8(text).map_err(|_| bad())?;
    let (micros, id) = text.split_once('.').ok_or_else(bad)?;
    Ok(PageStart {
        created_at: DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad())?).ok_or_else(bad)?,
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
