use actix_web::{HttpResponse, web};
use hookline_contract::{ErrorBody, Health, HealthStatus};

use crate::error::Error;
use crate::store::Store;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: HealthStatus::Ok,
    })
}

/// Readiness: the process answers and Redis does too.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Alive and Redis answers", body = Health),
    (status = 503, description = "Redis unavailable", body = ErrorBody),
))]
pub async fn readyz(store: web::Data<Store>) -> Result<HttpResponse, Error> {
    store.ping().await?;
    Ok(HttpResponse::Ok().json(Health {
        status: HealthStatus::Ready,
    }))
}
