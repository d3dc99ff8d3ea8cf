use actix_web::{HttpResponse, web};
use chrono::Utc;
use hookline_contract::{CasePage, ExternalId};
use hookline_contract::{CaseView, ErrorBody};
use hookline_kit::auth::Authorized;
use hookline_kit::http::ApiError;
use tracing::info;

use crate::error::Error;
use crate::routes::ListQuery;
use crate::routes::document::Scheduling;
use crate::routes::{Malformed, PrivateErrors};
use crate::store::{CaseRecord, Redelivery, Scope, Store};

/// `GET /dead-letters?limit=50`: cases whose every attempt failed, newest
/// first: the tenant's own (the operator's key: every tenant's).
#[utoipa::path(
    get, path = "/dead-letters", tag = "cases", security(("api_key" = [])),
    params(("limit" = Option<usize>, Query, description = "1 to 500, default 50")),
    responses((status = 200, description = "The tenant's dead letters (the operator's key: everyone's), newest first", body = CasePage), Malformed, PrivateErrors)
)]
pub async fn dead_letters(
    auth: Authorized,
    query: web::Query<ListQuery>,
    store: web::Data<Store>,
) -> Result<HttpResponse, Error> {
    let limit = query.limit()?;
    Ok(page(store.dead_letters_in(Scope::of(&auth), limit).await?))
}

/// `GET /cases?limit=50`: the most recent cases, newest first (the
/// dashboard's list): the tenant's own (the operator's key: every tenant's).
#[utoipa::path(
    get, path = "/cases", tag = "cases", security(("api_key" = [])),
    params(("limit" = Option<usize>, Query, description = "1 to 500, default 50")),
    responses((status = 200, description = "The tenant's most recent cases (the operator's key: everyone's), newest first", body = CasePage), Malformed, PrivateErrors)
)]
pub async fn recent(
    auth: Authorized,
    query: web::Query<ListQuery>,
    store: web::Data<Store>,
) -> Result<HttpResponse, Error> {
    let limit = query.limit()?;
    Ok(page(store.recent_cases_in(Scope::of(&auth), limit).await?))
}

fn page((cases, total): (Vec<CaseRecord>, u64)) -> HttpResponse {
    HttpResponse::Ok().json(CasePage {
        items: cases.iter().map(CaseRecord::to_view).collect(),
        total,
    })
}

/// `POST /document/{documentId}/redeliver`: deliver a dead (or already
/// delivered: a manual replay) case again, now, with a fresh retry schedule
/// and the same `webhook-id`. Another tenant's case is a 404, as if it did
/// not exist.
#[utoipa::path(
    post, path = "/document/{documentId}/redeliver", tag = "cases", security(("api_key" = [])),
    params(("documentId" = String, Path, description = "A dead or delivered case")),
    responses((status = 202, description = "Scheduled now, same webhook-id, fresh retry schedule", body = CaseView),
        (status = 404, description = "No case of this tenant has this documentId (another tenant's is not found either)", body = ErrorBody),
        (status = 409, description = "In flight or not decided yet", body = ErrorBody), Malformed, PrivateErrors)
)]
pub async fn redeliver(
    auth: Authorized,
    path: web::Path<String>,
    store: web::Data<Store>,
    scheduling: web::Data<Scheduling>,
) -> Result<HttpResponse, Error> {
    let document_id = ExternalId::parse(&path).map_err(|e| ApiError::invalid("documentId", e))?;
    let now = Utc::now();
    let scope = Scope::of(&auth);
    match store.redeliver_in(scope, document_id.as_str()).await? {
        Redelivery::Scheduled => {
            scheduling.wakeup.job_scheduled(now);
            info!(document_id = %document_id, "redelivery scheduled");
            let case = store.case_in(scope, document_id.as_str()).await?;
            Ok(HttpResponse::Accepted().json(case.map(|case| case.to_view())))
        }
        Redelivery::NoSuchCase => Err(ApiError::NotFound("no case has this documentId").into()),
        Redelivery::InFlight => Err(ApiError::Conflict(
            "a delivery of this case is in flight; try again when it has finished".to_owned(),
        )
        .into()),
        Redelivery::NoCallback => Err(ApiError::Conflict(
            "this case has no callback: its events go to subscriptions (see GET /dead-letters for theirs)".to_owned(),
        )
        .into()),
        Redelivery::Undecided => {
            Err(ApiError::Conflict("the agent has not decided yet: there is nothing to deliver".to_owned()).into())
        }
    }
}
