use actix_web::{HttpResponse, web};
use hookline_contract::ErrorBody;
use hookline_kit::guards::Scrape;
use hookline_kit::http::{ApiError, source_chain};
use hookline_kit::trace::Tracer;
use tracing::warn;

use crate::db::{self, Pool};
use crate::error::Error;
use crate::metrics::{self, ConsumerMetrics};

/// `GET /metrics`: the Prometheus text exposition (see [`crate::metrics`]).
/// Reviews by status are counted in PostgreSQL now; if it does not answer,
/// that family is left out and the rest is still served.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
    (status = 401, description = "`METRICS_TOKEN` is set and the request does not send it as `Authorization: Bearer`", body = ErrorBody),
))]
pub async fn serve(
    _: Scrape,
    metrics: web::Data<ConsumerMetrics>,
    pool: web::Data<Pool>,
    tracer: web::Data<Tracer>,
) -> Result<HttpResponse, Error> {
    let mut extra = match count_by_status(&pool).await {
        Ok(counts) => metrics::reviews_by_status(&counts).map_err(ApiError::internal)?,
        Err(e) => {
            warn!(error = %source_chain(&e), "cannot count reviews for /metrics");
            Vec::new()
        }
    };
    extra.extend(tracer.metrics().map_err(ApiError::internal)?);
    Ok(hookline_kit::metrics::exposition(metrics.registry(), extra)?)
}

async fn count_by_status(pool: &Pool) -> Result<Vec<(String, i64)>, Error> {
    let mut conn = pool.get().await?;
    Ok(db::count_by_status(&mut conn).await?)
}
