//! `GET /endpoints`, `PUT /endpoints/{endpoint}` and `POST
//! /endpoints/{endpoint}/resume`: where webhooks go, with each endpoint's
//! limits and circuit breaker (see [`crate::endpoint`]).
//!
//! An endpoint is shared by every tenant whose webhooks go to it, so what
//! changes it for all of them (its rate, lifting a pause) is the operator's
//! alone: a tenant's key gets a `403 forbidden` there (a privilege it lacks,
//! not an object it could name). A tenant's key lists and reads only the
//! endpoints its own jobs go to, without the counts of everyone's traffic
//! ([`redacted`](crate::store::redacted)); another endpoint is a `404`.

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
use crate::store::{Scope, Store};

/// `GET /endpoints?limit=50`: the endpoints, most recently active first (a
/// tenant's key: those its jobs go to).
#[utoipa::path(
    get, path = "/endpoints", tag = "endpoints", security(("api_key" = [])),
    params(("limit" = Option<usize>, Query, description = "1 to 500, default 50")),
    responses((status = 200, description = "Endpoints with their limits and breakers, most recently active first; a tenant's key sees those its own jobs go to, without the counts of everyone's traffic", body = EndpointPage), Malformed, PrivateErrors)
)]
pub async fn list(
    auth: Authorized,
    query: web::Query<ListQuery>,
    store: web::Data<Store>,
) -> Result<HttpResponse, Error> {
    let limit = query.limit()?;
    let (items, total) = store.endpoints_in(Scope::of(&auth), limit).await?;
    Ok(HttpResponse::Ok().json(EndpointPage { items, total }))
}

/// `GET /endpoints/{endpoint}`: one endpoint (`scheme://host:port`, URL-encoded).
#[utoipa::path(
    get, path = "/endpoints/{endpoint}", tag = "endpoints", security(("api_key" = [])),
    params(("endpoint" = String, Path, description = "scheme://host:port, URL-encoded, e.g. http%3A%2F%2F127.0.0.1%3A3333")),
    responses((status = 200, description = "The endpoint (to the operator's key, with the defaults if no webhook went there yet; to a tenant's, without the counts of everyone's traffic)", body = EndpointView),
        (status = 400, description = "Not an endpoint", body = ErrorBody),
        (status = 404, description = "A tenant's key: none of its jobs goes to this endpoint", body = ErrorBody), PrivateErrors)
)]
pub async fn show(auth: Authorized, path: web::Path<String>, store: web::Data<Store>) -> Result<HttpResponse, Error> {
    let endpoint = parse_endpoint(&path)?;
    let scope = Scope::of(&auth);
    if !store.uses(scope, &endpoint).await? {
        return Err(ApiError::NotFound(NOT_USED).into());
    }
    let view = store.endpoint_in(scope, &endpoint).await?;
    Ok(HttpResponse::Ok().json(view))
}

const NOT_USED: &str = "none of this tenant's webhooks goes to this endpoint";

/// `PUT /endpoints/{endpoint}`: the endpoint's own settings (its rate limit),
/// replacing what was set before; `{}` or `{"rate": null}` goes back to
/// `ENDPOINT_RATE`. Every worker applies it from its next claim on. The
/// operator's key only: the limit holds for every tenant's webhooks. An
/// endpoint set up before any webhook went there is forgotten, rate and
/// all, once idle for `CASE_RETENTION`, like any other.
#[utoipa::path(
    put, path = "/endpoints/{endpoint}", tag = "endpoints", security(("api_key" = [])),
    params(("endpoint" = String, Path, description = "scheme://host:port, URL-encoded, e.g. http%3A%2F%2F127.0.0.1%3A3333")),
    request_body(content = EndpointSettings, content_type = "application/json"),
    responses((status = 200, description = "The endpoint with its new settings", body = EndpointView),
        (status = 400, description = "Not an endpoint, or not a rate (the body names the field)", body = ErrorBody),
        (status = 403, description = "A tenant's key: only the operator's (a key without a tenant name) sets an endpoint's limits", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody), PrivateErrors)
)]
pub async fn update(
    auth: Authorized,
    path: web::Path<String>,
    JsonBody(settings): JsonBody<EndpointSettings>,
    store: web::Data<Store>,
) -> Result<HttpResponse, Error> {
    auth.require_operator("set an endpoint's limits")?;
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

/// `POST /endpoints/{endpoint}/resume`: lift a pause a receiver asked for
/// (`Retry-After`) and close the circuit breaker, so the endpoint's due
/// webhooks go at once. The operator's key only: the pause holds every
/// tenant's webhooks to that receiver (see `RETRY_AFTER_MAX`).
#[utoipa::path(
    post, path = "/endpoints/{endpoint}/resume", tag = "endpoints", security(("api_key" = [])),
    params(("endpoint" = String, Path, description = "scheme://host:port, URL-encoded, e.g. http%3A%2F%2F127.0.0.1%3A3333")),
    responses((status = 200, description = "The endpoint, no longer paused, its breaker closed", body = EndpointView),
        (status = 400, description = "Not an endpoint", body = ErrorBody),
        (status = 403, description = "A tenant's key: only the operator's (a key without a tenant name) resumes an endpoint", body = ErrorBody),
        (status = 404, description = "The help desk knows no such endpoint", body = ErrorBody), PrivateErrors)
)]
pub async fn resume(auth: Authorized, path: web::Path<String>, store: web::Data<Store>) -> Result<HttpResponse, Error> {
    auth.require_operator("resume an endpoint")?;
    let endpoint = parse_endpoint(&path)?;
    let view = store
        .resume(&endpoint)
        .await?
        .ok_or(ApiError::NotFound("no webhook went to this endpoint"))?;
    info!(%endpoint, "endpoint resumed by the operator: pause lifted, breaker closed");
    Ok(HttpResponse::Ok().json(view))
}

fn parse_endpoint(raw: &str) -> Result<Endpoint, ApiError> {
    raw.parse()
        .map_err(|e: crate::endpoint::EndpointError| ApiError::invalid("endpoint", e))
}
