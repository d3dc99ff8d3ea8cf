//! The consumer's dashboard: `GET /` (request a review, watch the list update
//! live) and `GET /events` (the server-sent events behind it).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use hookline_contract::ErrorBody;
use hookline_kit::auth::Authorized;
use hookline_kit::dashboard::{asset, page};
use hookline_kit::http::error_response;

use crate::events::ReviewEvents;
use crate::routes::Private;

#[utoipa::path(get, path = "/", tag = "dashboard", responses((status = 200, description = "The dashboard", content_type = "text/html", body = String)))]
pub async fn index() -> HttpResponse {
    page(include_str!("../../assets/index.html"))
}

pub async fn script() -> HttpResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../assets/consumer.js"),
    )
}

/// `GET /events`: `event: review` with the review's JSON on every change;
/// `event: resync` when this browser fell too far behind. The stream ends
/// after `EVENTS_MAX_AGE` (EventSource reconnects); past
/// `EVENTS_MAX_STREAMS` open ones the answer is 503.
#[utoipa::path(get, path = "/events", tag = "dashboard", security(("api_key" = [])), responses(
    (status = 200, description = "Server-sent events: `event: review` with a Review's JSON, `event: resync`", content_type = "text/event-stream", body = String),
    (status = 503, description = "`EVENTS_MAX_STREAMS` streams are open; retry after `Retry-After` seconds", body = ErrorBody),
    Private,
))]
pub async fn events(_: Authorized, events: web::Data<ReviewEvents>) -> HttpResponse {
    match events.stream() {
        Ok(stream) => HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"))
            .insert_header(("x-accel-buffering", "no"))
            .streaming(stream),
        Err(full) => {
            tracing::info!(reason = %full, "event stream refused");
            let mut response = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &ErrorBody::new("too_many_streams").with_detail(full.to_string()),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(STREAM_RETRY_AFTER));
            response
        }
    }
}

/// `Retry-After` of a refused stream, in seconds: streams end at least
/// every `EVENTS_MAX_AGE`, and a browser retrying every few seconds is no
/// burden.
const STREAM_RETRY_AFTER: &str = "5";
