//! `GET /healthz` (the process answers) and `GET /readyz` (it can do its
//! work: PostgreSQL answers and no background task has died).

use actix_web::{HttpResponse, web};
use hookline_contract::{ErrorBody, Health, HealthStatus};

use crate::db::{self, Pool};
use crate::error::Error;
use crate::supervisor::TaskHealth;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: HealthStatus::Ok,
    })
}

/// Readiness: the process answers, PostgreSQL too, and no background task died.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Alive and PostgreSQL answers", body = Health),
    (status = 503, description = "PostgreSQL unavailable, or a background task died (the body names it)", body = ErrorBody),
))]
pub async fn readyz(pool: web::Data<Pool>, tasks: web::Data<TaskHealth>) -> Result<HttpResponse, Error> {
    tasks.check()?;
    let mut conn = pool.get().await?;
    db::ping(&mut conn).await?;
    Ok(HttpResponse::Ok().json(Health {
        status: HealthStatus::Ready,
    }))
}
