use actix_web::{HttpResponse, web};
use hookline_contract::{ErrorBody, Health};
use hookline_kit::http::ApiError;
use serde_json::json;

use crate::db::{self, Pool};
use crate::error::{db_error, pool_error};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: the process answers and PostgreSQL does too.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Alive and PostgreSQL answers", body = Health),
    (status = 503, description = "PostgreSQL unavailable", body = ErrorBody),
))]
pub async fn readyz(pool: web::Data<Pool>) -> Result<HttpResponse, ApiError> {
    let mut conn = pool.get().await.map_err(pool_error)?;
    db::ping(&mut conn).await.map_err(db_error)?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}
