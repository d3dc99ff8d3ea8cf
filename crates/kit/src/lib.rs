//! Plumbing that both hookline services share, so that neither writes it twice:
//! telemetry set-up, the JSON error envelope for every 4xx/5xx, extractor
//! limits, the self-healthcheck used by container healthchecks, request ids
//! and HTTP metrics, graceful shutdown, and small configuration helpers.

pub mod config;
pub mod dashboard;
pub mod health;
pub mod http;
pub mod json;
pub mod metrics;
pub mod openapi;
pub mod request_id;
pub mod shutdown;
pub mod telemetry;
