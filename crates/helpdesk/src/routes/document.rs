use std::sync::Arc;

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use hookline_contract::chaos::seed::Stream;
use hookline_contract::chaos::{ChaosError, ChaosProfile, Fault};
use hookline_contract::dialect::Dialect;
use hookline_contract::{CaseView, ErrorBody, EventType};
use hookline_contract::{DocumentAccepted, DocumentRequest, DocumentStatus, ExternalId, HttpUrl, headers};
use hookline_kit::auth::Authorized;
use hookline_kit::http::ApiError;
use hookline_kit::trace::Tracer;
use rand::Rng;

use crate::error::Error;
use crate::routes::{Malformed, PrivateErrors, parse_dialect};
use hookline_kit::json::JsonBody;
use tracing::info;
use uuid::Uuid;

use crate::config::DelayRange;
use crate::endpoint::Endpoint;
use crate::metrics::HelpdeskMetrics;
use crate::ssrf::CallbackPolicy;
use crate::store::{NewCase, Scheduled, Scope, Store};
use crate::worker::Wakeup;

/// How `POST /document` schedules reviews.
#[derive(Debug)]
pub struct Scheduling {
    pub delay: DelayRange,
    /// How likely the agent accepts (`ACCEPT_RATIO`).
    pub accept_ratio: f64,
    pub wakeup: Arc<Wakeup>,
    /// The help desk's chaos profile (`CHAOS`), for cases without their own.
    pub chaos: ChaosProfile,
    /// Records the span of each `POST /document` (`hookline_kit::trace`).
    pub tracer: Tracer,
}

/// `POST /document`: accept the review at once (202) and schedule the
/// agent's decision as a job due after the review delay. A callback the
/// [callback policy](crate::ssrf) refuses is a 400 `callback_refused`, and
/// nothing is stored. Without `X-Callback-Url` the decision goes only to
/// the caller's subscriptions, so one of them must be enabled.
#[utoipa::path(
    post, path = "/document", tag = "cases", security(("api_key" = [])),
    request_body(content = DocumentRequest, content_type = "application/json"),
    params(
        ("X-Callback-Url" = Option<String>, Header, description = "Where to POST the decision (http/https; checked against the SSRF policy). May be left out when the caller has an enabled subscription (`POST /webhooks`): the events then go to the subscriptions only"),
        ("Hookline-Chaos" = Option<String>, Header, description = "This case's chaos profile, in place of the help desk's CHAOS: `fault=rate,...` with the faults duplicate, replay, reorder, delay, forged_signature, stale_timestamp, malformed_body, slow_send and rates from 0 to 1 (`none`: no faults). Each fault is sent besides the real delivery and recorded in the attempt log"),
        ("Hookline-Dialect" = Option<String>, Header, description = "How this case's callback is signed: `standard` (Standard Webhooks, the default), `stripe`, `github`, `shopify` or `slack`, each as that provider signs, with the tenant's secret (its `whsec_...` string as the key in all but `standard`). During a rotation `standard` and `stripe` carry a signature per secret, the others sign with the first listed. The case's subscription events are signed in each subscription's own dialect"),
        ("Hookline-Chaos-Seed" = Option<u64>, Header, description = "Seeds this case's chaos draws (a decimal u64): its verdict and `reorder` now, the faults of its deliveries' first attempts later come from a generator seeded with it (SplitMix64), so the same seed and profile inject the same faults again. Timing jitter is not seeded. `hookline trigger --seed` sends one per case"),
        ("Hookline-Accept-Ratio" = Option<f64>, Header, description = "The chance this case is ACCEPTED (0 to 1), in place of the help desk's ACCEPT_RATIO"),
        ("traceparent" = Option<String>, Header, description = "W3C Trace Context: the case joins the caller's trace, kept with it; each delivery attempt (retries too) is a span of that trace and sends a `traceparent` naming it. One that does not parse is ignored"),
    ),
    responses(
        (status = 202, description = "Accepted: the review is a job in Redis and will be decided after REVIEW_DELAY_MS. A request with an `id` this tenant used before (same document and callback) gets the same case again, marked `Idempotent-Replayed: true`; each tenant's ids are its own", body = DocumentAccepted,
            headers(("location" = String, description = "/document/{documentId}"),
                ("idempotent-replayed" = String, description = "`true` on the answer to a retried request"))),
        (status = 400, description = "Malformed request (the body names the field), a Hookline-Chaos profile or Hookline-Chaos-Seed that does not parse (`invalid_chaos`), a Hookline-Dialect that is none of ours (`unknown_dialect`), or no X-Callback-Url and no enabled subscription", body = ErrorBody),
        (status = 409, description = "This tenant used the `id` before for another document or callback", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody), PrivateErrors)
)]
pub async fn create(
    auth: Authorized,
    request: HttpRequest,
    JsonBody(body): JsonBody<DocumentRequest>,
    store: web::Data<Store>,
    scheduling: web::Data<Scheduling>,
    policy: web::Data<CallbackPolicy>,
    metrics: web::Data<HelpdeskMetrics>,
) -> Result<HttpResponse, Error> {
    // Continues the caller's trace (or, exporting, starts one); the case
    // keeps this span as the parent of its deliveries.
    let mut span = scheduling.tracer.server("POST /document", request.headers());
    let context = Context {
        request: &request,
        store: &store,
        scheduling: &scheduling,
        policy: &policy,
        metrics: &metrics,
    };
    let answer = schedule(auth, body, context, span.traceparent()).await;
    span.answer(&answer);
    answer
}

/// What `POST /document` works with.
struct Context<'a> {
    request: &'a HttpRequest,
    store: &'a Store,
    scheduling: &'a Scheduling,
    policy: &'a CallbackPolicy,
    metrics: &'a HelpdeskMetrics,
}

async fn schedule(
    auth: Authorized,
    body: DocumentRequest,
    context: Context<'_>,
    traceparent: Option<String>,
) -> Result<HttpResponse, Error> {
    let Context {
        request,
        store,
        scheduling,
        policy,
        metrics,
    } = context;
    let callback = callback_url(request)?;
    let own_chaos = chaos_profile(request)?;
    let dialect = dialect(request)?;
    let chaos_seed = chaos_seed(request)?;
    let accept_ratio = accept_ratio(request)?.unwrap_or(scheduling.accept_ratio);
    let document_url = HttpUrl::parse(&body.document_url).map_err(|e| ApiError::invalid("documentUrl", e))?;
    let request_id = body
        .id
        .as_deref()
        .map(ExternalId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("id", e))?;
    match &callback {
        // Last, as it may wait for DNS: malformed requests are answered without it.
        Some(callback) => policy
            .check_url(callback.url())
            .await
            .map_err(|refusal| ApiError::BadRequest {
                code: "callback_refused",
                field: Some(CALLBACK_FIELD),
                detail: format!("X-Callback-Url is refused: {refusal}"),
            })?,
        None if !store.has_enabled_subscription(auth.tenant()).await? => {
            return Err(ApiError::BadRequest {
                code: "missing_header",
                field: Some(CALLBACK_FIELD),
                detail: "the X-Callback-Url header is required: where to POST the decision (or register a subscription first: POST /webhooks)".to_owned(),
            }
            .into());
        }
        None => {}
    }

    let (delay, verdict, reorder) = {
        let mut rng = rand::rng();
        let profile = own_chaos.as_ref().unwrap_or(&scheduling.chaos);
        // A seeded case draws from its seed, so a replay decides it the same way.
        let (accepted, reorder) = match chaos_seed {
            Some(seed) => {
                let mut seeded = Stream::Acceptance.of(seed);
                let accepted = seeded.uniform() < accept_ratio;
                (accepted, profile.draws(Fault::Reorder, || seeded.uniform()))
            }
            None => (
                rng.random_bool(accept_ratio),
                profile.draws(Fault::Reorder, || rng.random::<f64>()),
            ),
        };
        let verdict = if accepted {
            DocumentStatus::Accepted
        } else {
            DocumentStatus::Declined
        };
        (scheduling.delay.sample(&mut rng), verdict, reorder)
    };
    let case = NewCase {
        document_id: store.new_document_id(request_id.as_ref().map(ExternalId::as_str)),
        agent_id: Uuid::new_v4().to_string(),
        document_url: document_url.to_string(),
        callback_url: callback.as_ref().map(HttpUrl::to_string),
        request_id: request_id.map(ExternalId::into_string),
        webhook_id: format!("msg_{}", Uuid::now_v7().simple()),
        tenant: auth.tenant().to_owned(),
        verdict: Some(verdict),
        event_prefix: format!("msg_{}", Uuid::now_v7().simple()),
        delay,
        chaos: own_chaos.as_ref().map(ChaosProfile::to_string),
        reorder,
        dialect,
        chaos_seed,
        traceparent,
    };
    let (document_id, agent_id, replayed) = match store.schedule(&case).await? {
        Scheduled::Created {
            document_id,
            due_in,
            received,
            decided,
        } => {
            metrics.job_scheduled();
            metrics.events_queued(EventType::DocumentReceived, received);
            if let Some(event) = EventType::of_decision(verdict) {
                metrics.events_queued(event, decided);
            }
            // Now: the document.received events are due at once.
            let first_due = if received > 0 { Utc::now() } else { Utc::now() + due_in };
            scheduling.wakeup.job_scheduled(first_due);
            info!(%document_id, webhook_id = %case.webhook_id, delay_ms = delay.as_millis(), events = received + decided, "review scheduled");
            (document_id, case.agent_id, false)
        }
        // A retry of a request whose answer was lost: the same case again.
        Scheduled::Replayed { document_id, agent_id } => {
            info!(%document_id, request_id = case.request_id, "a retried request: its case is answered again");
            (document_id, agent_id, true)
        }
        Scheduled::Conflict { document_id } => {
            return Err(ApiError::Conflict(format!(
                "id was used before for another document or callback (case {document_id})"
            ))
            .into());
        }
    };
    // On the request's span, so a grep for the document id finds this request too.
    tracing::Span::current().record("document_id", document_id.as_str());
    let mut answer = HttpResponse::Accepted();
    answer.insert_header((LOCATION, format!("/document/{document_id}")));
    if replayed {
        answer.insert_header((headers::IDEMPOTENT_REPLAYED, "true"));
    }
    Ok(answer.json(DocumentAccepted {
        agent_id,
        document_id,
        status: DocumentStatus::PendingReview,
    }))
}

/// `GET /document/{documentId}`: the case, its decision once made, and its
/// delivery state. Another tenant's case is a 404, as if it did not exist;
/// its endpoint is shown [as the tenant may see it](crate::store::redacted).
#[utoipa::path(
    get, path = "/document/{documentId}", tag = "cases", security(("api_key" = [])),
    params(("documentId" = String, Path, description = "The id returned by POST /document")),
    responses(
        (status = 200, description = "The case, its decision once made, its delivery with every attempt, and its endpoint's state", body = CaseView),
        (status = 404, description = "No case of this tenant has this documentId (another tenant's is not found either)", body = ErrorBody), Malformed, PrivateErrors)
)]
pub async fn show(auth: Authorized, path: web::Path<String>, store: web::Data<Store>) -> Result<HttpResponse, Error> {
    let document_id = ExternalId::parse(&path).map_err(|e| ApiError::invalid("documentId", e))?;
    let scope = Scope::of(&auth);
    let Some(case) = store.case_in(scope, document_id.as_str()).await? else {
        return Err(ApiError::NotFound("no case has this documentId").into());
    };
    let mut view = case.to_view();
    if let Some(endpoint) = case.endpoint.as_deref().and_then(|e| e.parse::<Endpoint>().ok()) {
        view.endpoint = Some(store.endpoint_in(scope, &endpoint).await?);
    }
    Ok(HttpResponse::Ok().json(view))
}

const CALLBACK_FIELD: &str = "X-Callback-Url";

/// `Hookline-Chaos`: the case's own chaos profile, if the request has one.
fn chaos_profile(request: &HttpRequest) -> Result<Option<ChaosProfile>, ApiError> {
    let Some(raw) = request.headers().get(headers::CHAOS) else {
        return Ok(None);
    };
    let raw = raw
        .to_str()
        .map_err(|_| ApiError::invalid("Hookline-Chaos", "is not visible ASCII"))?;
    raw.parse().map(Some).map_err(|e: ChaosError| ApiError::BadRequest {
        code: "invalid_chaos",
        field: Some("Hookline-Chaos"),
        detail: format!("Hookline-Chaos: {e}"),
    })
}

/// `Hookline-Dialect`: how the case's callback is signed, if the request says.
fn dialect(request: &HttpRequest) -> Result<Option<Dialect>, ApiError> {
    let Some(raw) = request.headers().get(headers::DIALECT) else {
        return Ok(None);
    };
    let raw = raw
        .to_str()
        .map_err(|_| ApiError::invalid("Hookline-Dialect", "is not visible ASCII"))?;
    parse_dialect(raw, "Hookline-Dialect").map(Some)
}

/// `Hookline-Chaos-Seed`: the seed of the case's chaos draws, if the
/// request has one.
fn chaos_seed(request: &HttpRequest) -> Result<Option<u64>, ApiError> {
    let Some(raw) = request.headers().get(headers::CHAOS_SEED) else {
        return Ok(None);
    };
    raw.to_str()
        .ok()
        .and_then(|raw| raw.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest {
            code: "invalid_chaos",
            field: Some("Hookline-Chaos-Seed"),
            detail: "Hookline-Chaos-Seed must be a whole number from 0 to 18446744073709551615".to_owned(),
        })
}

/// `Hookline-Accept-Ratio`, if the request has one.
fn accept_ratio(request: &HttpRequest) -> Result<Option<f64>, ApiError> {
    let Some(raw) = request.headers().get(headers::ACCEPT_RATIO) else {
        return Ok(None);
    };
    raw.to_str()
        .ok()
        .and_then(|raw| raw.trim().parse::<f64>().ok())
        .filter(|ratio| (0.0..=1.0).contains(ratio))
        .map(Some)
        .ok_or_else(|| ApiError::invalid("Hookline-Accept-Ratio", "must be a number from 0 to 1"))
}

/// `X-Callback-Url`, if the request has one.
fn callback_url(request: &HttpRequest) -> Result<Option<HttpUrl>, ApiError> {
    let Some(raw) = request.headers().get(headers::CALLBACK_URL) else {
        return Ok(None);
    };
    let raw = raw
        .to_str()
        .map_err(|_| ApiError::invalid(CALLBACK_FIELD, "is not visible ASCII"))?;
    HttpUrl::parse(raw)
        .map(Some)
        .map_err(|e| ApiError::invalid(CALLBACK_FIELD, e))
}
