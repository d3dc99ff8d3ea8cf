//! `GET /endpoints` and `PUT /endpoints/{endpoint}`: where webhooks go, with
//! each endpoint's limits and circuit breaker (see [`crate::endpoint`]).

use actix_web::{HttpResponse, web};
use hookline_contract::{EndpointPage, EndpointSettings, EndpointView, ErrorBody};
use hookline_kit::auth::Authorized;
use hookline_kit::http::ApiError;
use hookline_kit::json::JsonBody;
use tracing::info;

use crate::config::MAX_RATE;
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::routes::ListQuery;
use crate::routes::{Malformed, PrivateErrors};
use crate::store::Store;

/// `GET /endpoints?limit=50`: the endpoints, most recently active first.
#[utoipa::path(
    get, path = "/endpoints", tag = "endpoints", security(("api_key" = [])),
    params(("limit" = Option<usize>, Query, description = "1 to 500, default 50")),
    responses((status = 200, description = "Endpoints with their limits and breakers, most recently active first", body = EndpointPage), Malformed, PrivateErrors)
)]
pub async fn list(_: Authorized, query: web::Query<ListQuery>, store: web::Data<Store>) -> Result<HttpResponse, Error> {
    let limit = query.limit()?;
    let (items, total) = store.endpoints(limit).await?;
    Ok(HttpResponse::Ok().json(EndpointPage { items, total }))
}

/// `GET /endpoints/{endpoint}`: one endpoint (`scheme://host:port`, URL-encoded).
#[utoipa::path(
    get, path = "/endpoints/{endpoint}", tag = "endpoints", security(("api_key" = [])),
    params(("endpoint" = String, Path, description = "scheme://host:port, URL-encoded, e.g. http%3A%2F%2F127.0.0.1%3A3333")),
    responses((status = 200, description = "The endpoint (with the defaults if no webhook went there yet)", body = EndpointView),
        (status = 400, description = "Not an endpoint", body = ErrorBody), PrivateErrors)
)]
pub async fn show(_: Authorized, path: web::Path<String>, store: web::Data<Store>) -> Result<HttpResponse, Error> {
    let endpoint = parse_endpoint(&path)?;
    let view = store.endpoint(&endpoint).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `PUT /endpoints/{endpoint}`: the endpoint's own settings (its rate limit),
/// replacing what was set before; `{}` or `{"rate": null}` goes back to
/// `ENDPOINT_RATE`. Every worker applies it from its next claim on.
#[utoipa::path(
    put, path = "/endpoints/{endpoint}", tag = "endpoints", security(("api_key" = [])),
    params(("endpoint" = String, Path, description = "scheme://host:port, URL-encoded, e.g. http%3A%2F%2F127.0.0.1%3A3333")),
    request_body(content = EndpointSettings, content_type = "application/json"),
    responses((status = 200, description = "The endpoint with its new settings", body = EndpointView),
        (status = 400, description = "Not an endpoint, or not a rate (the body names the field)", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody), PrivateErrors)
)]
pub async fn update(
    _: Authorized,
    path: web::Path<String>,
    JsonBody(settings): JsonBody<EndpointSettings>,
    store: web::Data<Store>,
) -> Result<HttpResponse, Error> {
    let endpoint = parse_endpoint(&path)?;
    if let Some(rate) = settings.rate
        && !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE)
    {
        return Err(ApiError::invalid(
            "rate",
            format!("must be deliveries per second, above 0 and at most {MAX_RATE}, or null"),
        )
        .into());
    }
    let view = store.set_rate(&endpoint, settings.rate).await?;
    info!(%endpoint, rate = ?settings.rate, "endpoint rate limit set");
    Ok(HttpResponse::Ok().json(view))
}

fn parse_endpoint(raw: &str) -> Result<Endpoint, ApiError> {
    raw.parse()
        .map_err(|e: crate::endpoint::EndpointError| ApiError::invalid("endpoint", e))
}
