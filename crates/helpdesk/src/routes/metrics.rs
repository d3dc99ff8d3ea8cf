use actix_web::{HttpResponse, web};
use hookline_contract::ErrorBody;
use hookline_kit::guards::Scrape;
use hookline_kit::http::{ApiError, source_chain};
use tracing::warn;

use crate::error::Error;
use crate::metrics::{self, ENDPOINT_SERIES, HelpdeskMetrics};
use crate::routes::document::Scheduling;
use crate::store::Store;

/// `GET /metrics`: the Prometheus text exposition (see [`crate::metrics`]).
/// The queue depth and the endpoints are read from Redis now; if it does
/// not answer, those families are left out and the rest is still served.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
    (status = 401, description = "`METRICS_TOKEN` is set and the request does not send it as `Authorization: Bearer`", body = ErrorBody),
))]
pub async fn serve(
    _: Scrape,
    metrics: web::Data<HelpdeskMetrics>,
    store: web::Data<Store>,
    scheduling: web::Data<Scheduling>,
) -> Result<HttpResponse, Error> {
    let mut extra = match store.depth().await {
        Ok(depth) => metrics::queue_depth(depth).map_err(ApiError::internal)?,
        Err(e) => {
            warn!(error = %source_chain(&e), "cannot read the store depth for /metrics");
            Vec::new()
        }
    };
    match store.disabled_subscriptions().await {
        Ok(disabled) => extra.extend(metrics::disabled_subscriptions(disabled).map_err(ApiError::internal)?),
        Err(e) => warn!(error = %source_chain(&e), "cannot count the disabled subscriptions for /metrics"),
    }
    match store.endpoints(ENDPOINT_SERIES).await {
        Ok((endpoints, _)) => extra.extend(metrics::endpoint_series(&endpoints).map_err(ApiError::internal)?),
        Err(e) => warn!(error = %source_chain(&e), "cannot read the endpoints for /metrics"),
    }
    extra.extend(scheduling.tracer.metrics().map_err(ApiError::internal)?);
    Ok(hookline_kit::metrics::exposition(metrics.registry(), extra)?)
}
