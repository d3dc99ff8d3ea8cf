use actix_web::{HttpResponse, web};
use hookline_kit::http::ApiError;
use serde_json::json;

use crate::queue::Queue;

/// Liveness: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: the process answers and Redis does too.
pub async fn readyz(queue: web::Data<Queue>) -> Result<HttpResponse, ApiError> {
    queue.ping().await.map_err(|e| ApiError::unavailable("redis", e))?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}
