//! One trace per review: W3C `traceparent` in and out ([`TraceContext`]),
//! spans recorded by a [`Tracer`], exported over OTLP/HTTP with JSON
//! ([`export`]) when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//!
//! Off (no endpoint), a [`Tracer`] is `None` inside: no exporter, no queue,
//! and a [`Span`] is only made where a request brought a `traceparent`, so
//! that the calls it makes can carry the trace on (a new span id, nothing
//! recorded). Without an incoming header nothing is made and no header is
//! sent: the tutorial's wire stays as it was.
//!
//! On, a request without a `traceparent` starts a trace; a span is recorded
//! when it ends (dropped) if its trace is sampled (the `sampled` flag: a
//! caller's decision is kept, as OpenTelemetry's parent-based sampler does),
//! by handing it to the exporter's bounded queue: never a wait, and a full
//! queue drops the span and counts it.
//!
//! The exporter is written here rather than taken from the
//! `opentelemetry-otlp` crate: its HTTP transports bring reqwest or hyper
//! and a second TLS stack, where this project's client is awc over rustls
//! with ring; OTLP/HTTP with JSON is a small, stable specification.

mod context;
pub mod export;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::HeaderMap;
pub use context::{SAMPLED, TRACEPARENT, TraceContext, to_hex};

use crate::config::{InvalidValue, parse_duration};

/// The settings of tracing, flattened into each service's. Their names are
/// the OpenTelemetry SDK's.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TraceSettings {
    /// Base URL of an OTLP/HTTP collector (e.g. Jaeger's
    /// `http://jaeger:4318`): spans are POSTed as JSON to
    /// `{OTEL_EXPORTER_OTLP_ENDPOINT}/v1/traces`. Unset (with
    /// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): no spans are recorded, and only
    /// a request's own `traceparent` is carried on.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<url::Url>,

    /// The full URL spans are POSTed to, used as it is (in place of
    /// `{OTEL_EXPORTER_OTLP_ENDPOINT}/v1/traces`).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")]
    pub otlp_traces_endpoint: Option<url::Url>,

    /// The longest one export may take (milliseconds, as OpenTelemetry
    /// has it, or a duration like `5s`); a collector that is slower loses
    /// that batch, logged.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub otlp_timeout: Option<Duration>,

    /// The `service.name` of this service's spans.
    /// [default: hookline-consumer / hookline-helpdesk]
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub service_name: Option<String>,
}

/// `OTEL_EXPORTER_OTLP_TIMEOUT`: whole milliseconds (the OpenTelemetry
/// convention) or a duration with its unit.
fn parse_timeout(raw: &str) -> Result<Duration, InvalidValue> {
    match raw.trim().parse::<u64>() {
        Ok(millis) => Ok(Duration::from_millis(millis)),
        Err(_) => parse_duration(raw),
    }
}

impl TraceSettings {
    /// Where spans go, if anywhere.
    pub fn traces_url(&self) -> Option<String> {
        if let Some(url) = &self.otlp_traces_endpoint {
            return Some(url.to_string());
        }
        self.otlp_endpoint
            .as_ref()
            .map(|base| format!("{}/v1/traces", base.as_str().trim_end_matches('/')))
    }

    /// The tracer these settings ask for: off without an endpoint, else
    /// with its exporter running (on a thread of its own).
    pub fn tracer(&self, default_service: &str) -> Result<Tracer, export::ExporterError> {
        let Some(url) = self.traces_url() else {
            return Ok(Tracer::off());
        };
        let service = self.service_name.clone().unwrap_or_else(|| default_service.to_owned());
        let timeout = self.otlp_timeout.unwrap_or(export::DEFAULT_TIMEOUT);
        export::start(export::Config {
            url,
            service,
            timeout,
            queue: export::QUEUE,
            batch: export::BATCH,
            interval: export::INTERVAL,
        })
    }
}

/// What a span is to its trace (OTLP's `SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// A span attribute's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(Cow<'static, str>),
    Int(i64),
}

impl From<&'static str> for Value {
    fn from(value: &'static str) -> Self {
        Self::Str(Cow::Borrowed(value))
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Self::Str(Cow::Owned(value))
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<u32> for Value {
    fn from(value: u32) -> Self {
        Self::Int(i64::from(value))
    }
}

impl From<u16> for Value {
    fn from(value: u16) -> Self {
        Self::Int(i64::from(value))
    }
}

/// How a span ended (OTLP's `Status`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Status {
    #[default]
    Unset,
    Ok,
    Error(String),
}

/// A finished span, as the exporter sends it.
#[derive(Debug, Clone)]
pub struct SpanData {
    pub name: Cow<'static, str>,
    pub kind: SpanKind,
    pub context: TraceContext,
    pub parent: Option<[u8; 8]>,
    /// Unix nanoseconds.
    pub start: u64,
    pub end: u64,
    pub attributes: Vec<(&'static str, Value)>,
    pub status: Status,
}

/// Records spans (when exporting) and makes trace contexts. Cheap to
/// clone; [`Tracer::off`] costs nothing.
#[derive(Debug, Clone, Default)]
pub struct Tracer {
    inner: Option<Arc<export::Handle>>,
}

impl Tracer {
    /// No exporter: spans are never recorded.
    pub fn off() -> Self {
        Self::default()
    }

    /// Whether spans are exported.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// Spans dropped so far because the exporter's queue was full.
    pub fn dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |inner| inner.dropped.load(Ordering::Relaxed))
    }

    /// `hookline_trace_spans_total{outcome}` for `/metrics`, computed at
    /// scrape time: spans `exported` (the collector accepted them),
    /// `failed` (lost with an export that failed: down, slow, refusing),
    /// `dropped` (the queue was full). All 0 while tracing is off.
    pub fn metrics(&self) -> prometheus::Result<Vec<prometheus::proto::MetricFamily>> {
        let spans = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "hookline_trace_spans_total",
                "Spans recorded for export (OTEL_EXPORTER_OTLP_ENDPOINT), by what became of them.",
            ),
            &["outcome"],
        )?;
        let count = |pick: fn(&export::Handle) -> &std::sync::atomic::AtomicU64| {
            self.inner
                .as_ref()
                .map_or(0, |inner| pick(inner).load(Ordering::Relaxed))
        };
        spans.with_label_values(&["exported"]).inc_by(count(|h| &h.exported));
        spans.with_label_values(&["failed"]).inc_by(count(|h| &h.failed));
        spans.with_label_values(&["dropped"]).inc_by(count(|h| &h.dropped));
        Ok(prometheus::core::Collector::collect(&spans))
    }

    /// A span under `parent`, or the root of a new trace when exporting.
    /// Without either it is inert: no context, nothing recorded.
    pub fn start(&self, name: impl Into<Cow<'static, str>>, kind: SpanKind, parent: Option<TraceContext>) -> Span {
        let context = match parent {
            Some(parent) => parent.child(),
            None if self.is_on() => TraceContext::new_root(),
            None => return Span::inert(),
        };
        Span {
            live: Some(Box::new(Live {
                tracer: self.clone(),
                data: SpanData {
                    name: name.into(),
                    kind,
                    context,
                    parent: parent.map(|parent| parent.span_id),
                    start: unix_nanos(),
                    end: 0,
                    attributes: Vec::new(),
                    status: Status::Unset,
                },
            })),
        }
    }

    /// The server span of a request: under its `traceparent` if it brought
    /// a valid one (an invalid one is ignored), else a new trace (when
    /// exporting).
    pub fn server(&self, name: &'static str, headers: &HeaderMap) -> Span {
        let parent = incoming(headers);
        let mut span = self.start(name, SpanKind::Server, parent);
        if let Some((method, route)) = name.split_once(' ') {
            span.set("http.request.method", method);
            span.set("http.route", route);
        }
        span
    }

    /// Sends what is queued and stops the exporter, within its timeout:
    /// for a stopping service.
    pub async fn shutdown(&self) {
        if let Some(inner) = &self.inner {
            inner.shutdown().await;
        }
    }

    fn record(&self, data: SpanData) {
        if let Some(inner) = &self.inner
            && data.context.is_sampled()
        {
            inner.push(data);
        }
    }
}

/// The `traceparent` of a request, if it has a valid one.
pub fn incoming(headers: &HeaderMap) -> Option<TraceContext> {
    headers
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .and_then(TraceContext::parse)
}

/// A span being timed; recorded when dropped. Inert when tracing has
/// nothing to carry (every method is then a no-op).
#[derive(Debug, Default)]
pub struct Span {
    live: Option<Box<Live>>,
}

#[derive(Debug)]
struct Live {
    tracer: Tracer,
    data: SpanData,
}

impl Span {
    /// A span that is nothing.
    pub fn inert() -> Self {
        Self::default()
    }

    /// Its place in the trace (what a call made under it carries).
    pub fn context(&self) -> Option<TraceContext> {
        self.live.as_ref().map(|live| live.data.context)
    }

    /// The `traceparent` header value that names this span as the parent.
    pub fn traceparent(&self) -> Option<String> {
        self.context().map(|context| context.to_string())
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(live) = &mut self.live {
            live.data.attributes.push((key, value.into()));
        }
    }

    /// Marks it failed, saying why.
    pub fn fail(&mut self, message: impl Into<String>) {
        if let Some(live) = &mut self.live {
            live.data.status = Status::Error(message.into());
        }
    }

    /// Marks it succeeded.
    pub fn succeed(&mut self) {
        if let Some(live) = &mut self.live {
            live.data.status = Status::Ok;
        }
    }

    /// A server span's answer: its status code, and an error from 400 on
    /// (the request did not do what it asked).
    pub fn answered(&mut self, status: u16) {
        if self.live.is_none() {
            return;
        }
        self.set("http.response.status_code", status);
        if status >= 400 {
            self.fail(format!("HTTP {status}"));
        } else {
            self.succeed();
        }
    }
}

impl Span {
    /// A server span's answer, from what its handler returned.
    pub fn answer<E: actix_web::ResponseError>(&mut self, answer: &Result<actix_web::HttpResponse, E>) {
        let status = match answer {
            Ok(response) => response.status(),
            Err(e) => e.status_code(),
        };
        self.answered(status.as_u16());
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            let Live { tracer, mut data } = *live;
            data.end = unix_nanos().max(data.start);
            tracer.record(data);
        }
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_off_tracer_makes_nothing_without_a_parent_and_carries_one_on() {
        let tracer = Tracer::off();
        let span = tracer.start("x", SpanKind::Server, None);
        assert_eq!(span.context(), None);
        let parent = TraceContext::new_root();
        let span = tracer.start("x", SpanKind::Server, Some(parent));
        let context = span.context().unwrap();
        assert_eq!(context.trace_id, parent.trace_id);
        assert_ne!(context.span_id, parent.span_id);
    }

    #[test]
    fn the_traces_url_is_the_endpoint_plus_v1_traces_or_the_traces_endpoint_as_is() {
        let mut settings = TraceSettings::default();
        assert_eq!(settings.traces_url(), None);
        settings.otlp_endpoint = Some("http://collector:4318/".parse().unwrap());
        assert_eq!(settings.traces_url().unwrap(), "http://collector:4318/v1/traces");
        settings.otlp_traces_endpoint = Some("http://other:4318/custom".parse().unwrap());
        assert_eq!(settings.traces_url().unwrap(), "http://other:4318/custom");
    }

    #[test]
    fn the_timeout_is_milliseconds_or_a_duration() {
        assert_eq!(parse_timeout("2500").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_timeout("3s").unwrap(), Duration::from_secs(3));
        assert!(parse_timeout("soon").is_err());
    }
}
