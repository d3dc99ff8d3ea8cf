//! Plumbing that both hookline services share, so that neither writes it twice:
//! telemetry set-up, the JSON error envelope for every 4xx/5xx, API keys,
//! extractor limits, the self-healthcheck used by container healthchecks,
//! request ids and HTTP metrics, graceful shutdown, the TLS of outgoing
//! calls, and small configuration helpers.

/// The App both services start from: middleware in order, the JSON 404.
pub mod app;
/// API keys: `Authorization: Bearer`, several at once for rotation.
pub mod auth;
/// Settings helpers: durations, secrets that never print, LOG_FORMAT.
pub mod config;
/// The stylesheet and page shell the dashboards share.
pub mod dashboard;
/// Request bodies that must arrive within `REQUEST_BODY_TIMEOUT` (408).
pub mod deadline;
/// `REQUEST_BODY_TIMEOUT`, `API_RATE`, `METRICS_TOKEN`: settings and app data.
pub mod guards;
/// `<binary> healthcheck`: the container healthcheck without curl.
pub mod health;
/// The `Host` allow-list: a 421 for a name the service is not known by.
pub mod host;
/// The JSON error envelope for every 4xx/5xx, extractor limits.
pub mod http;
/// Strict JSON bodies: objects only, errors that name the field.
pub mod json;
/// HTTP metrics by route, Prometheus rendering.
pub mod metrics;
/// The committed OpenAPI documents and their drift check.
pub mod openapi;
/// Per-key request rates: a token bucket per API key, 429 past it.
pub mod rate;
/// URLs fit for a log line: no userinfo, no query.
pub mod redact;
/// `x-request-id`: kept, made, echoed, on every span.
pub mod request_id;
/// A service binary's whole `main`: command line, telemetry, build, serve.
pub mod service;
/// Stopping inside an orchestrator's grace period.
pub mod shutdown;
/// Tracing set-up: pretty or JSON, quiet in tests.
pub mod telemetry;
/// TLS of outgoing calls: system roots plus a CA file, mutual TLS, ring.
pub mod tls;
/// One trace per review: `traceparent`, spans, the OTLP/HTTP JSON exporter.
pub mod trace;
