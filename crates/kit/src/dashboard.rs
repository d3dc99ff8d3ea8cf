//! Serving the dashboards: pages and assets compiled into the binary (no
//! build step, no CDN, works offline), sent with a strict
//! Content-Security-Policy — scripts and styles only from this origin, no
//! inline code, no framing — so a review's user-supplied URL can never run
//! as code in an operator's browser.

use actix_web::HttpResponse;
use actix_web::http::header;

/// The stylesheet both dashboards share (`/assets/dashboard.css`).
pub const STYLESHEET: &str = include_str!("../assets/dashboard.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// An HTML page with the security headers.
pub fn page(html: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("content-security-policy", CSP))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(html)
}

/// A static asset (`text/css`, `text/javascript`, ...).
pub fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// `GET /assets/dashboard.css`.
pub async fn stylesheet() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLESHEET)
}
