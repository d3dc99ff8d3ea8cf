//! The consumer's dashboard: `GET /` (request a review, watch the list update
//! live) and `GET /events` (the server-sent events behind it).

use actix_web::{HttpResponse, web};
use hookline_kit::auth::Authorized;
use hookline_kit::dashboard::{asset, page};

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
/// `event: resync` when this browser fell too far behind.
#[utoipa::path(get, path = "/events", tag = "dashboard", security(("api_key" = [])), responses(
    (status = 200, description = "Server-sent events: `event: review` with a Review's JSON, `event: resync`", content_type = "text/event-stream", body = String),
    Private,
))]
pub async fn events(_: Authorized, events: web::Data<ReviewEvents>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(events.stream())
}
