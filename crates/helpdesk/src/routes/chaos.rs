use actix_web::{HttpResponse, web};
use hookline_contract::chaos::ChaosReport;
use hookline_kit::auth::Authorized;

use crate::error::Error;
use crate::routes::PrivateErrors;
use crate::routes::document::Scheduling;
use crate::store::{Scope, Store};

/// `GET /chaos`: the help desk's chaos profile (`CHAOS`) and every fault
/// injected so far by every worker sharing its Redis around the tenant's
/// deliveries (the operator's key: everyone's), with how the receivers
/// answered (the dashboard's Chaos panel).
#[utoipa::path(
    get, path = "/chaos", tag = "cases", security(("api_key" = [])),
    responses((status = 200, description = "The profile, and the faults injected so far around the tenant's deliveries (the operator's key: everyone's)", body = ChaosReport), PrivateErrors)
)]
pub async fn report(
    auth: Authorized,
    store: web::Data<Store>,
    scheduling: web::Data<Scheduling>,
) -> Result<HttpResponse, Error> {
    Ok(HttpResponse::Ok().json(ChaosReport {
        profile: scheduling.chaos.to_string(),
        faults: store.chaos_counts(Scope::of(&auth)).await?,
    }))
}
