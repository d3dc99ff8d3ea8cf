//! The HTTP half of both services' Prometheus metrics, and the `/metrics`
//! exposition.
//!
//! Each service keeps its own [`Registry`] (no process-global one, so two
//! services in one test process never mix their numbers) and registers
//! [`HttpMetrics`] in it, which the [`track`] middleware fills for every
//! request:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `hookline_http_requests_total` | counter | `route`, `method`, `status` |
//! | `hookline_http_request_duration_seconds` | histogram | `route`, `method` |
//!
//! `route` is the matched route pattern (`/documents/{id}`), never the raw
//! path, and `unmatched` for requests no route matched; `method` is one of
//! the standard methods or `other`. Both keep the number of series bounded
//! whatever clients send. The duration runs until the response head is
//! ready (a streamed body, such as server-sent events, is not waited for).
//!
//! [`exposition`] renders a registry, plus families computed at scrape time
//! (queue depth, reviews by status), in the Prometheus text format.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, web};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

use crate::http::ApiError;

/// The `route` label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Request counts and latencies by route; cheap to clone (the handles are
/// shared).
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl HttpMetrics {
    /// Creates the HTTP metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "hookline_http_requests_total",
                "HTTP requests answered, by route pattern, method and status.",
            ),
            &["route", "method", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "hookline_http_request_duration_seconds",
                "Time from receiving an HTTP request to its response head, by route pattern and method.",
            ),
            &["route", "method"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self { requests, duration })
    }

    /// Records one answered request.
    pub fn observe(&self, route: &str, method: &Method, status: u16, seconds: f64) {
        let method = method_label(method);
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.duration.with_label_values(&[route, method]).observe(seconds);
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware (`from_fn(metrics::track)`) that records every request in the
/// app's `web::Data<HttpMetrics>`. Without that app data every request
/// fails with a 500, so a miswiring cannot go unnoticed.
pub async fn track(
    metrics: web::Data<HttpMetrics>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().clone();
    // Looked up in the app's route map now (as tracing-actix-web does for
    // `http.route`): the request cannot be kept for later, as routing needs
    // it unshared.
    let route = req.match_pattern();
    let outcome = next.call(req).await;
    let status = match &outcome {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    metrics.observe(
        route.as_deref().unwrap_or(UNMATCHED),
        &method,
        status.as_u16(),
        started.elapsed().as_secs_f64(),
    );
    outcome
}

/// `GET /metrics`: `registry`'s metrics and `extra` (families computed at
/// scrape time) in the Prometheus text format.
pub fn exposition(registry: &Registry, extra: Vec<MetricFamily>) -> Result<HttpResponse, ApiError> {
    let mut families = registry.gather();
    families.extend(extra);
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let body = render(&families).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(TextEncoder::new().format_type())
        .body(body))
}

/// A gauge family computed at scrape time (from PostgreSQL or Redis): one
/// label, one value per label value, in the order given.
pub fn gauge_family(
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, i64)],
) -> prometheus::Result<Vec<MetricFamily>> {
    let gauge = prometheus::IntGaugeVec::new(prometheus::Opts::new(name, help), &[label])?;
    for (value, count) in values {
        gauge.with_label_values(&[*value]).set(*count);
    }
    Ok(prometheus::core::Collector::collect(&gauge))
}

/// `families` in the Prometheus text format. A family without a series (a
/// per-endpoint gauge before any endpoint exists) is left out: the encoder
/// refuses one, and the registry's own gathering leaves such families out too.
pub fn render(families: &[MetricFamily]) -> Result<String, prometheus::Error> {
    let families: Vec<MetricFamily> = families
        .iter()
        .filter(|family| !family.get_metric().is_empty())
        .cloned()
        .collect();
    let mut out = Vec::new();
    TextEncoder::new().encode(&families, &mut out)?;
    String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(registry: &Registry, extra: Vec<MetricFamily>) -> String {
        let response = exposition(registry, extra).unwrap();
        let bytes = match response.into_body().try_into_bytes() {
            Ok(bytes) => bytes,
            Err(_) => panic!("the body is not in memory"),
        };
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn a_scrape_time_family_without_series_is_left_out_not_an_error() {
        let registry = Registry::new();
        HttpMetrics::register(&registry).unwrap();
        let empty = gauge_family("hookline_test_per_endpoint", "Nothing yet.", "endpoint", &[]).unwrap();
        let text = render(&registry, empty);
        assert!(!text.contains("hookline_test_per_endpoint"), "{text}");
    }

    #[test]
    fn requests_are_counted_by_route_method_and_status() {
        let registry = Registry::new();
        let http = HttpMetrics::register(&registry).unwrap();
        http.observe("/documents/{id}", &Method::GET, 200, 0.01);
        http.observe("/documents/{id}", &Method::GET, 200, 0.02);
        http.observe(UNMATCHED, &Method::from_bytes(b"BREW").unwrap(), 404, 0.001);
        let text = render(&registry, Vec::new());
        assert!(
            text.contains(r#"hookline_http_requests_total{method="GET",route="/documents/{id}",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"hookline_http_requests_total{method="other",route="unmatched",status="404"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"hookline_http_request_duration_seconds_count{method="GET",route="/documents/{id}"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn extra_families_are_rendered_beside_the_registry() {
        use prometheus::core::Collector;
        let registry = Registry::new();
        HttpMetrics::register(&registry)
            .unwrap()
            .observe("/metrics", &Method::GET, 200, 0.001);
        let depth = prometheus::IntGaugeVec::new(Opts::new("hookline_test_depth", "test"), &["state"]).unwrap();
        depth.with_label_values(&["due"]).set(3);
        let text = render(&registry, depth.collect());
        assert!(text.contains(r#"hookline_test_depth{state="due"} 3"#), "{text}");
        assert!(text.contains("# TYPE hookline_http_requests_total counter"), "{text}");
    }

    #[test]
    fn registering_twice_in_one_registry_is_an_error() {
        let registry = Registry::new();
        HttpMetrics::register(&registry).unwrap();
        assert!(HttpMetrics::register(&registry).is_err());
    }
}
