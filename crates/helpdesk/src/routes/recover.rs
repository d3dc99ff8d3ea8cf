//! `POST /webhooks/{id}/recover`, `POST /dead-letters/redeliver` and `GET
//! /recoveries/{id}`: thin adapters over [`crate::recover`].

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use hookline_contract::{ErrorBody, EventType, RecoverRequest, RecoveryView};
use hookline_kit::auth::Authorized;
use hookline_kit::http::ApiError;
use hookline_kit::json::JsonBody;
use tracing::info;

use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::recover::{self, Filter, Whose};
use crate::routes::webhooks::{SubscriptionSettings, checked_id};
use crate::routes::{Malformed, PrivateErrors};
use crate::store::{Scope, Store};

/// The filter of `request`, checked: a window that ends after it starts,
/// known event type and endpoint.
fn filter_of(request: RecoverRequest) -> Result<Filter, ApiError> {
    let until = request.until.unwrap_or_else(Utc::now);
    if request.since > until {
        return Err(ApiError::invalid(
            "since",
            "must be before until (or now, without until)",
        ));
    }
    let event_type = request
        .event_type
        .as_deref()
        .map(|raw| raw.parse::<EventType>().map_err(|e| ApiError::invalid("eventType", e)))
        .transpose()?;
    let endpoint = request
        .endpoint
        .as_deref()
        .map(|raw| {
            Endpoint::of_str(raw)
                .map_err(|_| ApiError::invalid("endpoint", "must be scheme://host:port, as GET /endpoints names it"))
        })
        .transpose()?;
    let subscription_id = request
        .subscription_id
        .as_deref()
        .map(|raw| {
            checked_id(raw).map(str::to_owned).map_err(|_| {
                ApiError::invalid(
                    "subscriptionId",
                    "must be a subscription id as POST /webhooks returned it",
                )
            })
        })
        .transpose()?;
    Ok(Filter {
        since: request.since,
        until,
        event_type,
        subscription_id,
        endpoint,
    })
}

/// Starts a recovery and answers 202 with where to follow it.
async fn started(
    auth: &Authorized,
    store: &Store,
    settings: &SubscriptionSettings,
    filter: Filter,
) -> Result<HttpResponse, Error> {
    let whose = Whose {
        tenant: auth.tenant().to_owned(),
        all: auth.is_operator(),
    };
    let recovery = recover::start(store.clone(), settings.wakeup.clone(), whose, filter).await?;
    info!(recovery = %recovery.id, tenant = %auth.tenant(), filter = ?recovery.filter, "recovery started");
    Ok(HttpResponse::Accepted()
        .insert_header((LOCATION, format!("/recoveries/{}", recovery.id)))
        .json(recovery))
}

/// `POST /webhooks/{id}/recover {"since": …}`: sends again every event of
/// the subscription that died since then (Svix's "recover since"), through
/// the normal queue, in the background. A disabled subscription is a 409:
/// enable it first, or its events would be cancelled again.
#[utoipa::path(
    post, path = "/webhooks/{id}/recover", tag = "subscriptions", security(("api_key" = [])),
    params(("id" = String, Path, description = "The id returned by POST /webhooks")),
    request_body(content = RecoverRequest, content_type = "application/json",
        description = "`since` (required), `until`, `eventType`; `subscriptionId` and `endpoint` are not used here"),
    responses(
        (status = 202, description = "Started; follow it at the Location, GET /recoveries/{id}", body = RecoveryView,
            headers(("location" = String, description = "/recoveries/{id}"))),
        (status = 400, description = "Malformed request (the body names the field): a window that ends before it starts, an unknown event type", body = ErrorBody),
        (status = 404, description = "No subscription of this tenant has this id", body = ErrorBody),
        (status = 409, description = "The subscription is disabled: enable it first", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody), PrivateErrors)
)]
pub async fn subscription(
    auth: Authorized,
    path: web::Path<String>,
    JsonBody(body): JsonBody<RecoverRequest>,
    store: web::Data<Store>,
    settings: web::Data<SubscriptionSettings>,
) -> Result<HttpResponse, Error> {
    let id = checked_id(&path)?;
    let sub = store
        .subscription(Some(auth.tenant()), id)
        .await?
        .ok_or(ApiError::NotFound("no subscription has this id"))?;
    if sub.disabled {
        return Err(ApiError::Conflict(
            "the subscription is disabled: enable it first (POST /webhooks/{id}/enable), then recover".to_owned(),
        )
        .into());
    }
    let mut filter = filter_of(RecoverRequest {
        subscription_id: None,
        endpoint: None,
        ..body
    })?;
    filter.subscription_id = Some(sub.id);
    started(&auth, &store, &settings, filter).await
}

/// `POST /dead-letters/redeliver {"since": …, …}`: sends again every dead
/// letter of the window that passes the filter (event type, subscription,
/// endpoint), the tenant's own (the operator's key: everyone's), through
/// the normal queue, in the background.
#[utoipa::path(
    post, path = "/dead-letters/redeliver", tag = "cases", security(("api_key" = [])),
    request_body(content = RecoverRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Started; follow it at the Location, GET /recoveries/{id}", body = RecoveryView,
            headers(("location" = String, description = "/recoveries/{id}"))),
        (status = 400, description = "Malformed request (the body names the field): a window that ends before it starts, an unknown event type, an endpoint or subscription id that is not one", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody), PrivateErrors)
)]
pub async fn dead_letters(
    auth: Authorized,
    JsonBody(body): JsonBody<RecoverRequest>,
    store: web::Data<Store>,
    settings: web::Data<SubscriptionSettings>,
) -> Result<HttpResponse, Error> {
    let filter = filter_of(body)?;
    started(&auth, &store, &settings, filter).await
}

/// `GET /recoveries/{id}`: how far a recovery got (kept a day).
#[utoipa::path(
    get, path = "/recoveries/{id}", tag = "cases", security(("api_key" = [])),
    params(("id" = String, Path, description = "The id a recovery was started with")),
    responses(
        (status = 200, description = "The recovery and its counts", body = RecoveryView),
        (status = 404, description = "No recovery of this tenant has this id (or it is over a day old)", body = ErrorBody),
        Malformed, PrivateErrors)
)]
pub async fn show(auth: Authorized, path: web::Path<String>, store: web::Data<Store>) -> Result<HttpResponse, Error> {
    let id = path.into_inner();
    let well_formed = id.len() <= 64
        && id
            .strip_prefix("rcv_")
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !well_formed {
        return Err(ApiError::invalid("id", "must be a recovery id (rcv_ and letters or digits)").into());
    }
    let recovery = store
        .recovery(Scope::of(&auth), &id)
        .await?
        .ok_or(ApiError::NotFound("no recovery has this id"))?;
    Ok(HttpResponse::Ok().json(recovery))
}
