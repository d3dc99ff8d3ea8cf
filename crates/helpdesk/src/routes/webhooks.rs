//! `/webhooks`: subscriptions to events (see [`hookline_contract::EventType`]).
//!
//! A subscription belongs to the tenant of the API key that made it (see
//! [`hookline_kit::auth`]); another tenant's subscription is a `404` here,
//! as if it did not exist. Its URL passes the [callback policy](crate::ssrf)
//! when it is registered or changed, and again at every delivery. Its
//! events are signed with its secret in its `dialect` (default `standard`;
//! `stripe`, `github`, `shopify`, `slack`: see
//! [`hookline_contract::dialect`]), so a receiver written against one of
//! those providers' SDKs verifies them as it is. An `ordered` one gets its
//! events one at a time, in the order they happened (docs/store.md,
//! "Ordered subscriptions").

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use hookline_contract::{
    CaseView, ErrorBody, EventType, ExternalId, HttpUrl, NewSubscription, Subscription, SubscriptionPage,
    SubscriptionUpdate, TestEventQueued,
};
use hookline_kit::auth::Authorized;
use hookline_kit::http::ApiError;
use hookline_kit::json::JsonBody;
use tracing::info;

use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::metrics::HelpdeskMetrics;
use crate::routes::{PrivateErrors, parse_dialect};
use crate::ssrf::CallbackPolicy;
use crate::store::{EVENT_JOB_MARK, Enabled, NewSubscriptionRecord, Redelivery, Scope, Store, SubscriptionChange};
use crate::worker::Wakeup;

/// Most subscriptions one tenant may have.
pub const MAX_SUBSCRIPTIONS: u64 = 100;
/// Longest description kept.
const MAX_DESCRIPTION: usize = 256;

/// What the subscription routes need besides the queue.
#[derive(Debug)]
pub struct SubscriptionSettings {
    /// How long the old secret keeps signing after a rotation (`SECRET_OVERLAP`).
    pub overlap: Duration,
    pub wakeup: Arc<Wakeup>,
}

/// The event types asked for: at least one, each known; duplicates dropped.
fn parse_events(raw: &[String]) -> Result<Vec<EventType>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::invalid("events", "must name at least one event type"));
    }
    let mut events = Vec::with_capacity(raw.len());
    for name in raw {
        let event: EventType = name
            .parse()
            .map_err(|e: hookline_contract::UnknownEvent| ApiError::BadRequest {
                code: "unknown_event",
                field: Some("events"),
                detail: e.to_string(),
            })?;
        events.push(event);
    }
    events.sort_unstable();
    events.dedup();
    Ok(events)
}

/// A URL to send events to: well-formed, and allowed by the callback policy.
async fn checked_url(raw: &str, policy: &CallbackPolicy) -> Result<(String, Endpoint), ApiError> {
    let url = HttpUrl::parse(raw).map_err(|e| ApiError::invalid("url", e))?;
    let endpoint = Endpoint::of_str(url.as_str()).map_err(|e| ApiError::invalid("url", e.to_string()))?;
    policy
        .check_url(url.url())
        .await
        .map_err(|refusal| ApiError::BadRequest {
            code: "url_refused",
            field: Some("url"),
            detail: format!("url is refused: {refusal}"),
        })?;
    Ok((url.to_string(), endpoint))
}

fn checked_description(raw: &str) -> Result<String, ApiError> {
    if raw.chars().count() > MAX_DESCRIPTION || raw.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "description",
            "must be at most 256 characters, without control characters",
        ));
    }
    Ok(raw.to_owned())
}

const NOT_FOUND: &str = "no subscription has this id";

/// `POST /webhooks`: subscribe a URL to event types.
#[utoipa::path(
    post, path = "/webhooks", tag = "subscriptions", security(("api_key" = [])),
    request_body(content = NewSubscription, content_type = "application/json"),
    responses(
        (status = 201, description = "Subscribed. The answer holds the signing secret in full: keep it, it is not shown again (rotate-secret makes a new one)", body = Subscription,
            headers(("location" = String, description = "/webhooks/{id}"))),
        (status = 400, description = "Malformed request, an unknown event type, an unknown dialect (`unknown_dialect`), or a URL the callback policy refuses (the body names the field); nothing is stored", body = ErrorBody),
        (status = 409, description = "The tenant has 100 subscriptions already (counted in the same atomic step that stores one, so concurrent requests never exceed it)", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody), PrivateErrors)
)]
pub async fn create(
    auth: Authorized,
    JsonBody(body): JsonBody<NewSubscription>,
    store: web::Data<Store>,
    policy: web::Data<CallbackPolicy>,
) -> Result<HttpResponse, Error> {
    let events = parse_events(&body.events)?;
    let description = body.description.as_deref().map(checked_description).transpose()?;
    let dialect = body
        .dialect
        .as_deref()
        .map(|raw| parse_dialect(raw, "dialect"))
        .transpose()?
        .unwrap_or_default();
    let (url, endpoint) = checked_url(&body.url, &policy).await?;
    let new = NewSubscriptionRecord {
        tenant: auth.tenant().to_owned(),
        url,
        endpoint,
        events,
        description,
        dialect,
        ordered: body.ordered.unwrap_or(false),
    };
    let Some(sub) = store.create_subscription(&new, MAX_SUBSCRIPTIONS).await? else {
        return Err(ApiError::Conflict(format!(
            "this tenant has {MAX_SUBSCRIPTIONS} subscriptions already: delete one first"
        ))
        .into());
    };
    info!(subscription = %sub.id, tenant = %sub.tenant, url = %hookline_kit::redact::redact_url(sub.url.as_str()), events = ?sub.events, dialect = %sub.dialect, ordered = sub.ordered, "subscription created");
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, format!("/webhooks/{}", sub.id)))
        .json(sub.to_view(true)))
}

/// `GET /webhooks`: the caller's subscriptions, oldest first, secrets masked.
#[utoipa::path(
    get, path = "/webhooks", tag = "subscriptions", security(("api_key" = [])),
    responses(
        (status = 200, description = "The tenant's subscriptions with their delivery stats, oldest first", body = SubscriptionPage), PrivateErrors)
)]
pub async fn list(auth: Authorized, store: web::Data<Store>) -> Result<HttpResponse, Error> {
    let items: Vec<Subscription> = store
        .subscriptions(auth.tenant())
        .await?
        .iter()
        .map(|sub| sub.to_view(false))
        .collect();
    let total = items.len() as u64;
    Ok(HttpResponse::Ok().json(SubscriptionPage { items, total }))
}

/// `GET /webhooks/{id}`: one subscription, secret masked.
#[utoipa::path(
    get, path = "/webhooks/{id}", tag = "subscriptions", security(("api_key" = [])),
    params(("id" = String, Path, description = "The id returned by POST /webhooks")),
    responses(
        (status = 200, description = "The subscription with its delivery stats", body = Subscription),
        (status = 404, description = "No subscription of this tenant has this id", body = ErrorBody), PrivateErrors)
)]
pub async fn show(auth: Authorized, path: web::Path<String>, store: web::Data<Store>) -> Result<HttpResponse, Error> {
    let sub = store
        .subscription(Some(auth.tenant()), &path)
        .await?
        .ok_or(ApiError::NotFound(NOT_FOUND))?;
    Ok(HttpResponse::Ok().json(sub.to_view(false)))
}

/// `PATCH /webhooks/{id}`: change the URL, the event types, the
/// description, or disable it. Events already queued keep the URL they were
/// queued for; a disabled subscription receives none of them. This is the
/// tenant's own switch: it tells nobody (`POST /webhooks/{id}/enable`
/// sends `endpoint.enabled`; `disabled: false` here enables silently).
#[utoipa::path(
    patch, path = "/webhooks/{id}", tag = "subscriptions", security(("api_key" = [])),
    params(("id" = String, Path, description = "The id returned by POST /webhooks")),
    request_body(content = SubscriptionUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "The subscription as changed", body = Subscription),
        (status = 400, description = "Malformed request, an unknown event type, an unknown dialect (`unknown_dialect`), or a URL the callback policy refuses (the body names the field); nothing is stored", body = ErrorBody),
        (status = 404, description = "No subscription of this tenant has this id", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody), PrivateErrors)
)]
pub async fn update(
    auth: Authorized,
    path: web::Path<String>,
    JsonBody(body): JsonBody<SubscriptionUpdate>,
    store: web::Data<Store>,
    policy: web::Data<CallbackPolicy>,
) -> Result<HttpResponse, Error> {
    let change = SubscriptionChange {
        events: body.events.as_deref().map(parse_events).transpose()?,
        description: body.description.as_deref().map(checked_description).transpose()?,
        disabled: body.disabled,
        ordered: body.ordered,
        dialect: body
            .dialect
            .as_deref()
            .map(|raw| parse_dialect(raw, "dialect"))
            .transpose()?,
        url: match &body.url {
            Some(raw) => Some(checked_url(raw, &policy).await?),
            None => None,
        },
    };
    let sub = store
        .update_subscription(auth.tenant(), &path, &change)
        .await?
        .ok_or(ApiError::NotFound(NOT_FOUND))?;
    info!(subscription = %sub.id, url = %hookline_kit::redact::redact_url(sub.url.as_str()), events = ?sub.events, disabled = sub.disabled, dialect = %sub.dialect, ordered = sub.ordered, "subscription changed");
    Ok(HttpResponse::Ok().json(sub.to_view(false)))
}

/// `DELETE /webhooks/{id}`: no more events, including those queued.
#[utoipa::path(
    delete, path = "/webhooks/{id}", tag = "subscriptions", security(("api_key" = [])),
    params(("id" = String, Path, description = "The id returned by POST /webhooks")),
    responses(
        (status = 204, description = "Deleted; events queued for it are not sent"),
        (status = 404, description = "No subscription of this tenant has this id", body = ErrorBody), PrivateErrors)
)]
pub async fn delete(auth: Authorized, path: web::Path<String>, store: web::Data<Store>) -> Result<HttpResponse, Error> {
    if !store.delete_subscription(auth.tenant(), &path).await? {
        return Err(ApiError::NotFound(NOT_FOUND).into());
    }
    info!(subscription = %path, "subscription deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /webhooks/{id}/rotate-secret`: a new secret, shown once; the old
/// one keeps signing beside it for `SECRET_OVERLAP`, so the receiver can
/// switch without losing a message.
#[utoipa::path(
    post, path = "/webhooks/{id}/rotate-secret", tag = "subscriptions", security(("api_key" = [])),
    params(("id" = String, Path, description = "The id returned by POST /webhooks")),
    responses(
        (status = 200, description = "The subscription with its new secret in full; `previousSecretUntil` says until when the old one signs too", body = Subscription),
        (status = 404, description = "No subscription of this tenant has this id", body = ErrorBody), PrivateErrors)
)]
pub async fn rotate_secret(
    auth: Authorized,
    path: web::Path<String>,
    store: web::Data<Store>,
    settings: web::Data<SubscriptionSettings>,
) -> Result<HttpResponse, Error> {
    let sub = store
        .rotate_secret(auth.tenant(), &path, settings.overlap)
        .await?
        .ok_or(ApiError::NotFound(NOT_FOUND))?;
    info!(subscription = %sub.id, overlap = %humantime::format_duration(settings.overlap), "subscription secret rotated");
    Ok(HttpResponse::Ok().json(sub.to_view(true)))
}

/// `POST /webhooks/{id}/test`: queue a `webhook.test` event for it now.
#[utoipa::path(
    post, path = "/webhooks/{id}/test", tag = "subscriptions", security(("api_key" = [])),
    params(("id" = String, Path, description = "The id returned by POST /webhooks")),
    responses(
        (status = 202, description = "The test event is queued; it is delivered (and retried) like any event", body = TestEventQueued),
        (status = 404, description = "No subscription of this tenant has this id", body = ErrorBody),
        (status = 409, description = "The subscription is disabled", body = ErrorBody), PrivateErrors)
)]
pub async fn test(
    auth: Authorized,
    path: web::Path<String>,
    store: web::Data<Store>,
    settings: web::Data<SubscriptionSettings>,
    metrics: web::Data<HelpdeskMetrics>,
) -> Result<HttpResponse, Error> {
    let sub = store
        .subscription(Some(auth.tenant()), &path)
        .await?
        .ok_or(ApiError::NotFound(NOT_FOUND))?;
    if sub.disabled {
        return Err(ApiError::Conflict(
            "the subscription is disabled: enable it first (POST /webhooks/{id}/enable)".to_owned(),
        )
        .into());
    }
    let webhook_id = store
        .queue_test_event(&sub.id, "a test event from the hookline help desk")
        .await?
        .ok_or(ApiError::NotFound(NOT_FOUND))?;
    metrics.events_queued(EventType::WebhookTest, 1);
    settings.wakeup.job_scheduled(Utc::now());
    info!(subscription = %sub.id, %webhook_id, "test event queued");
    Ok(HttpResponse::Accepted().json(TestEventQueued {
        webhook_id,
        event_type: EventType::WebhookTest,
    }))
}

/// A subscription id as the help desk makes them (`sub_` and letters or
/// digits): anything else is a mistake of the caller's, said as such.
pub(super) fn checked_id(raw: &str) -> Result<&str, ApiError> {
    let ok = raw.len() <= 64
        && raw
            .strip_prefix("sub_")
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !ok {
        return Err(ApiError::invalid(
            "id",
            "must be a subscription id as POST /webhooks returned it (sub_ and letters or digits)",
        ));
    }
    Ok(raw)
}

/// `POST /webhooks/{id}/enable`: enable a disabled subscription again
/// (the help desk disabled it after a `410 Gone` or `DISABLE_AFTER` of
/// failures, or its tenant did). Its streak of failures starts afresh;
/// events are queued for it again from now on (those it missed while
/// disabled were never queued: its dead letters can be redelivered). The
/// tenant's other subscriptions that want `endpoint.enabled` are told.
#[utoipa::path(
    post, path = "/webhooks/{id}/enable", tag = "subscriptions", security(("api_key" = [])),
    params(("id" = String, Path, description = "The id returned by POST /webhooks")),
    responses(
        (status = 200, description = "The subscription, enabled (it may have been already: then nothing changed and nobody is told)", body = Subscription),
        (status = 400, description = "The id is not a subscription id (`invalid`, field `id`)", body = ErrorBody),
        (status = 404, description = "No subscription of this tenant has this id", body = ErrorBody), PrivateErrors)
)]
pub async fn enable(
    auth: Authorized,
    path: web::Path<String>,
    store: web::Data<Store>,
    settings: web::Data<SubscriptionSettings>,
    metrics: web::Data<HelpdeskMetrics>,
) -> Result<HttpResponse, Error> {
    let id = checked_id(&path)?;
    match store.enable_subscription(auth.tenant(), id).await? {
        Enabled::NoSuchSubscription => return Err(ApiError::NotFound(NOT_FOUND).into()),
        Enabled::Already => {}
        Enabled::Enabled { told } => {
            metrics.events_queued(EventType::EndpointEnabled, told);
            settings.wakeup.job_scheduled(Utc::now());
            info!(subscription = %id, tenant = %auth.tenant(), "subscription enabled again");
        }
    }
    let sub = store
        .subscription(Some(auth.tenant()), id)
        .await?
        .ok_or(ApiError::NotFound(NOT_FOUND))?;
    Ok(HttpResponse::Ok().json(sub.to_view(false)))
}

/// `POST /webhooks/{id}/redeliver/{webhookId}`: send one of the
/// subscription's events again, now (a dead letter, say), with a fresh
/// retry schedule and the same `webhook-id`.
#[utoipa::path(
    post, path = "/webhooks/{id}/redeliver/{webhookId}", tag = "subscriptions", security(("api_key" = [])),
    params(("id" = String, Path, description = "The id returned by POST /webhooks"),
        ("webhookId" = String, Path, description = "The event's webhook-id (as in GET /dead-letters)")),
    responses(
        (status = 202, description = "Redelivery scheduled; the event's delivery as it stands now", body = CaseView),
        (status = 404, description = "No such subscription of this tenant, or no such event of it", body = ErrorBody),
        (status = 409, description = "The event is being delivered right now, or the subscription is disabled", body = ErrorBody), PrivateErrors)
)]
pub async fn redeliver(
    auth: Authorized,
    path: web::Path<(String, String)>,
    store: web::Data<Store>,
    settings: web::Data<SubscriptionSettings>,
) -> Result<HttpResponse, Error> {
    let (id, webhook_id) = path.into_inner();
    let sub = store
        .subscription(Some(auth.tenant()), &id)
        .await?
        .ok_or(ApiError::NotFound(NOT_FOUND))?;
    let no_event = || ApiError::NotFound("this subscription has no event with this webhook-id");
    let webhook_id = ExternalId::parse(&webhook_id).map_err(|_| no_event())?;
    let job_id = format!("{EVENT_JOB_MARK}{}", webhook_id.as_str());
    let job = store.case(&job_id).await?.ok_or_else(no_event)?;
    if job.event.as_ref().is_none_or(|event| event.subscription_id != sub.id) {
        return Err(no_event().into());
    }
    if sub.disabled {
        return Err(ApiError::Conflict(
            "the subscription is disabled: enable it first (POST /webhooks/{id}/enable)".to_owned(),
        )
        .into());
    }
    match store.redeliver_in(Scope::of(&auth), &job_id).await? {
        Redelivery::Scheduled => {
            settings.wakeup.job_scheduled(Utc::now());
            info!(subscription = %sub.id, %webhook_id, "event redelivery scheduled");
            let job = store.case(&job_id).await?;
            Ok(HttpResponse::Accepted().json(job.map(|job| job.to_view())))
        }
        Redelivery::InFlight => Err(ApiError::Conflict(
            "a delivery of this event is in flight; try again when it has finished".to_owned(),
        )
        .into()),
        Redelivery::NoSuchCase | Redelivery::Undecided | Redelivery::NoCallback => Err(no_event().into()),
    }
}
