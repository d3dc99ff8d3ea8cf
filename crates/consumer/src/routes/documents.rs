use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::time::Duration;

use chrono::DateTime;
use hookline_contract::ErrorBody;
use hookline_contract::{CreateReview, DocumentStatus, HttpUrl, Review, ReviewPage};
use hookline_kit::http::{ApiError, source_chain};
use hookline_kit::json::JsonBody;
use hookline_kit::request_id::RequestId;
use serde::Deserialize;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::db::{self, KeyClaim, PageStart, Pool};
use crate::error::Error;
use crate::events::ReviewEvents;
use crate::helpdesk_client::{HelpdeskClient, HelpdeskError};
use crate::writer::{NewRow, Ticket, Writer};

const DEFAULT_PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;

/// Header that makes `POST /documents` safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a response that replays the first answer to an `Idempotency-Key`.
pub const REPLAYED: &str = "idempotent-replayed";

/// `POST /documents`: record the review, ask the help desk, store its ids.
///
/// With an `Idempotency-Key`, a retry of the same request gets the first
/// response again (and the help desk is asked only once); the same key with
/// another `documentUrl` is a 422, and while the first request still runs a
/// 409. A failed request frees its key for the next try.
#[utoipa::path(
    post, path = "/documents", tag = "reviews",
    request_body(content = CreateReview, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the same key gets the first response again")),
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
    )
)]
pub async fn create(
    request: HttpRequest,
    body: JsonBody<CreateReview>,
    pool: web::Data<Pool>,
    helpdesk: web::Data<HelpdeskClient>,
    events: web::Data<ReviewEvents>,
    writer: web::Data<Writer>,
) -> Result<HttpResponse, Error> {
    let document_url = HttpUrl::parse(&body.0.document_url).map_err(|e| ApiError::invalid("documentUrl", e))?;
    let key = idempotency_key(&request)?;
    let mut review = Planned {
        id: Uuid::now_v7(),
        resumed: false,
    };
    if let Some(key) = &key {
        let mut conn = pool.get().await?;
        match db::claim_key(&mut conn, key, document_url.as_str(), review.id).await? {
            KeyClaim::Fresh { review_id } => review.id = review_id,
            KeyClaim::Resume { review_id } => {
                info!(review_id = %review_id, "an Idempotency-Key whose request died mid-way: resuming its review");
                review = Planned {
                    id: review_id,
                    resumed: true,
                };
            }
            KeyClaim::Replay { status, body } => {
                let mut replay = created(status, body)?;
                replay
                    .headers_mut()
                    .insert(HeaderName::from_static(REPLAYED), HeaderValue::from_static("true"));
                return Ok(replay);
            }
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

    let request_id = RequestId::of(&request);
    let outcome = request_review(&pool, &writer, &helpdesk, &events, &document_url, review, &request_id).await;
    if let Some(key) = &key
        && let Err(e) = record_key(&pool, key, outcome.as_ref().ok()).await
    {
        warn!(error = %source_chain(&e), "cannot record the outcome of an Idempotency-Key");
    }
    created(201, outcome?)
}

/// Stores the answer to an `Idempotency-Key` (`Some`), or frees the key for
/// the next try (`None`: the request failed).
async fn record_key(pool: &Pool, key: &str, answer: Option<&String>) -> Result<(), Error> {
    let mut conn = pool.get().await?;
    match answer {
        Some(body) => db::complete_key(&mut conn, key, 201, body).await?,
        None => db::release_key(&mut conn, key).await?,
    }
    Ok(())
}

/// The review as a `201` with its `Location`, from its JSON.
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

/// The review a request makes: a new id, or, resuming an `Idempotency-Key`
/// whose first request died mid-way, that request's (its row may exist; the
/// help desk answers the same `id` with the same case).
#[derive(Debug, Clone, Copy)]
struct Planned {
    id: Uuid,
    resumed: bool,
}

/// The pause before each retry of the help desk call within one request
/// (the help desk answers a retry with the same `id` with the same case, so
/// a retry never makes a second one). All tries together get one
/// `HELPDESK_TIMEOUT`.
const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(400)];

/// The review, as the JSON of the first answer.
///
/// The row is written *before* the help desk is called, with our id sent as
/// the request's `id`: if the webhook overtakes the help desk's answer (zero
/// delay), it still finds the review. A call whose answer is lost or says
/// "not now" is tried again; if the help desk still has not answered, the
/// review is kept without its ticket (`documentId` null) and the reconciler
/// sends the request again later, so nothing the client was told exists is
/// ever lost. If the help desk refuses it, the row is removed again and the
/// client gets a 502.
async fn request_review(
    pool: &Pool,
    writer: &Writer,
    helpdesk: &HelpdeskClient,
    events: &ReviewEvents,
    document_url: &HttpUrl,
    review: Planned,
    request_id: &RequestId,
) -> Result<String, Error> {
    let id = review.id;
    let stored = review.resumed && db::find(&mut *pool.get().await?, id).await?.is_some();
    // Committed (with whatever other new reviews arrived meanwhile) before
    // the help desk is asked; no connection is held while we wait on it.
    if !stored {
        writer
            .insert(NewRow {
                id,
                document_url: document_url.to_string(),
            })
            .await?;
    }

    let tries = async {
        let mut pauses = RETRY_PAUSES.iter();
        loop {
            match helpdesk.request_review(document_url, &id.to_string(), request_id).await {
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
    let answer = tokio::time::timeout(helpdesk.timeout(), tries)
        .await
        .unwrap_or(Err(HelpdeskError::TimedOut(helpdesk.timeout())));
    let accepted = match answer {
        Ok(accepted) => accepted,
        Err(e) if e.is_transient() => {
            warn!(review_id = %id, error = %source_chain(&e),
                "no answer from the help desk: the review is kept, and the reconciler sends it again");
            let mut conn = pool.get().await?;
            let row = db::find(&mut conn, id).await?.ok_or(Error::Helpdesk(e))?;
            let review = row.into_review();
            events.publish(&review);
            return Ok(serde_json::to_string(&review).map_err(ApiError::internal)?);
        }
        Err(e) => {
            forget(pool, id).await;
            warn!(review_id = %id, error = %source_chain(&e), "the help desk refused the review");
            return Err(e.into());
        }
    };
    // On the request's span, so a grep for the document id finds this request too.
    tracing::Span::current().record("document_id", accepted.document_id.as_str());

    let row = writer
        .attach(Ticket {
            id,
            agent_id: accepted.agent_id.clone(),
            document_id: accepted.document_id.clone(),
        })
        .await?;
    info!(review_id = %id, document_id = %accepted.document_id, "review requested");
    let review = row.into_review();
    events.publish(&review);
    Ok(serde_json::to_string(&review).map_err(ApiError::internal)?)
}

/// Removes a review the help desk did not take (logged if that fails too).
async fn forget(pool: &Pool, id: Uuid) {
    async fn delete(pool: &Pool, id: Uuid) -> Result<(), Error> {
        let mut conn = pool.get().await?;
        db::delete_requested(&mut conn, id).await?;
        Ok(())
    }
    if let Err(e) = delete(pool, id).await {
        warn!(review_id = %id, error = %source_chain(&e), "cannot remove the review the help desk did not take");
    }
}

/// `GET /documents/{id}`.
#[utoipa::path(
    get, path = "/documents/{id}", tag = "reviews",
    params(("id" = String, Path, description = "The review's id (a UUID)")),
    responses(
        (status = 200, description = "The review", body = Review),
        (status = 400, description = "Malformed request (the body names the field)", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 503, description = "Storage unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn show(path: web::Path<String>, pool: web::Data<Pool>) -> Result<HttpResponse, Error> {
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
    get, path = "/documents", tag = "reviews",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page"),
        ("status" = Option<DocumentStatus>, Query, description = "Only reviews in this status"),
    ),
    responses(
        (status = 200, description = "Reviews, newest first", body = ReviewPage),
        (status = 400, description = "Malformed request (the body names the field)", body = ErrorBody),
        (status = 503, description = "Storage unavailable; retry later", body = ErrorBody),
    )
)]
pub async fn list(query: web::Query<ListQuery>, pool: web::Data<Pool>) -> Result<HttpResponse, Error> {
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
