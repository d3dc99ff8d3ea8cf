use actix_web::{HttpResponse, web};
use hookline_kit::http::{ApiError, source_chain};
use tracing::warn;

use crate::metrics::{self, HelpdeskMetrics};
use crate::queue::Queue;

/// `GET /metrics`: the Prometheus text exposition (see [`crate::metrics`]).
/// The queue depth is read from Redis now; if it does not answer, that
/// family is left out and the rest is still served.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
))]
pub async fn serve(metrics: web::Data<HelpdeskMetrics>, queue: web::Data<Queue>) -> Result<HttpResponse, ApiError> {
    let extra = match queue.depth().await {
        Ok(depth) => metrics::queue_depth(depth).map_err(ApiError::internal)?,
        Err(e) => {
            warn!(error = %source_chain(&e), "cannot read the queue depth for /metrics");
            Vec::new()
        }
    };
    hookline_kit::metrics::exposition(metrics.registry(), extra)
}
