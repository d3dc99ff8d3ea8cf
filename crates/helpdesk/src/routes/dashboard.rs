//! The help desk's dashboard: `GET /` shows its cases, their attempts and the
//! dead letters (with a redeliver button); it polls `/cases` and `/dead-letters`.

use actix_web::HttpResponse;
use hookline_kit::dashboard::{asset, page};

#[utoipa::path(get, path = "/", tag = "dashboard", responses((status = 200, description = "The dashboard", content_type = "text/html", body = String)))]
pub async fn index() -> HttpResponse {
    page(include_str!("../../assets/index.html"))
}

pub async fn script() -> HttpResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../assets/helpdesk.js"),
    )
}
