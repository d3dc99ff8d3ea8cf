use actix_web::{HttpResponse, web};
use hookline_contract::{ErrorBody, Health, HealthStatus};

use crate::db::{self, Pool};
use crate::error::Error;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: HealthStatus::Ok,
    })
}

/// Readiness: the process answers and PostgreSQL does too.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Alive and PostgreSQL answers", body = Health),
    (status = 503, description = "PostgreSQL unavailable", body = ErrorBody),
))]
pub async fn readyz(pool: web::Data<Pool>) -> Result<HttpResponse, Error> {
    let mut conn = pool.get().await?;
    db::ping(&mut conn).await?;
    Ok(HttpResponse::Ok().json(Health {
        status: HealthStatus::Ready,
    }))
}
