//! The OTLP/HTTP exporter, JSON encoding
//! (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>): finished spans
//! wait in a bounded queue ([`QUEUE`]; when it is full a span is dropped
//! and counted, and a line says so at most once per [`WARN_EVERY`]); a task
//! on a thread of its own takes them in batches of up to [`BATCH`], or
//! what came within [`INTERVAL`], and POSTs each as
//! `{"resourceSpans":[{"resource":…,"scopeSpans":[{"scope":{"name":"hookline"},"spans":[…]}]}]}`
//! with ids as hex and times as strings of Unix nanoseconds. An export
//! has one deadline (`OTEL_EXPORTER_OTLP_TIMEOUT`); a collector that is
//! down, slow or refusing loses that batch, with a log line (at most one
//! per [`WARN_EVERY`], counting what was lost), and never holds a request
//! or a delivery: they only ever `try_send` to the queue.
//!
//! A stopping service calls [`Handle::shutdown`]: what is queued is sent,
//! within the same deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::{SpanData, Status, Tracer, Value, to_hex};
use crate::redact::redact_url;
use crate::tls::{self, TlsConfigError};

/// Spans waiting for the exporter at most.
pub const QUEUE: usize = 2048;
/// Spans in one export at most.
pub const BATCH: usize = 512;
/// The longest a span waits before its batch goes.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// `OTEL_EXPORTER_OTLP_TIMEOUT`'s default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one warning this often, about drops or failed exports.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("no TLS configuration for the OTLP collector")]
    Tls(#[from] TlsConfigError),
    #[error("cannot start the span exporter's thread")]
    Thread(#[from] std::io::Error),
}

/// What the exporter is started with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where spans are POSTed.
    pub url: String,
    /// `service.name`.
    pub service: String,
    pub timeout: Duration,
    pub queue: usize,
    pub batch: usize,
    pub interval: Duration,
}

/// The running exporter, as a [`Tracer`] holds it.
#[derive(Debug)]
pub struct Handle {
    spans: mpsc::Sender<SpanData>,
    stop: mpsc::Sender<oneshot::Sender<()>>,
    pub(super) dropped: AtomicU64,
    /// Spans the collector accepted.
    pub(super) exported: AtomicU64,
    /// Spans lost with an export that failed.
    pub(super) failed: AtomicU64,
    timeout: Duration,
}

impl Handle {
    pub(super) fn push(&self, span: SpanData) {
        if self.spans.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends what is queued, then stops the exporter; waits at most its
    /// timeout (and a little) for that.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.stop.try_send(done).is_err() {
            return; // stopped already, or stopping
        }
        if tokio::time::timeout(self.timeout + Duration::from_secs(1), finished)
            .await
            .is_err()
        {
            warn!("the span exporter did not finish in time; spans still queued are lost");
        }
    }
}

/// Starts the exporter on a thread of its own (awc's client lives on one
/// thread; a request's threads only ever hand spans to the queue).
pub fn start(config: Config) -> Result<Tracer, ExporterError> {
    let tls = tls::client_config(None, None)?;
    let (spans, queued) = mpsc::channel(config.queue.max(1));
    let (stop, stopping) = mpsc::channel(1);
    let handle = std::sync::Arc::new(Handle {
        spans,
        stop,
        dropped: AtomicU64::new(0),
        exported: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        timeout: config.timeout,
    });
    let tracer = Tracer {
        inner: Some(handle.clone()),
    };
    info!(url = %redact_url(&config.url), service = %config.service, "exporting spans over OTLP/HTTP");
    std::thread::Builder::new()
        .name("otlp-exporter".to_owned())
        .spawn(move || {
            actix_web::rt::System::new().block_on(run(config, tls, queued, stopping, handle));
        })?;
    Ok(tracer)
}

async fn run(
    config: Config,
    tls: std::sync::Arc<tls::ClientConfig>,
    mut queued: mpsc::Receiver<SpanData>,
    mut stopping: mpsc::Receiver<oneshot::Sender<()>>,
    handle: std::sync::Arc<Handle>,
) {
    // The exporter holds the handle too, for the drop count; it ends on a
    // stop, or when every tracer is gone.
    let handle = std::sync::Arc::downgrade(&handle);
    let client = awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(tls))
        .timeout(config.timeout)
        .disable_redirects()
        .add_default_header(("user-agent", concat!("hookline/", env!("CARGO_PKG_VERSION"))))
        .finish();
    let mut exporter = Exporter {
        config,
        client,
        handle: handle.clone(),
        last_warning: None,
        lost: 0,
        dropped_told: 0,
    };
    let mut batch = Vec::new();
    let mut tick = tokio::time::interval(exporter.config.interval);
    loop {
        tokio::select! {
            span = queued.recv() => match span {
                Some(span) => {
                    batch.push(span);
                    if batch.len() >= exporter.config.batch {
                        exporter.export(&mut batch).await;
                    }
                }
                None => break,
            },
            done = stopping.recv() => {
                while let Ok(span) = queued.try_recv() {
                    batch.push(span);
                    if batch.len() >= exporter.config.batch {
                        exporter.export(&mut batch).await;
                    }
                }
                exporter.export(&mut batch).await;
                if let Some(done) = done {
                    let _ = done.send(());
                }
                return;
            }
            _ = tick.tick() => {
                exporter.export(&mut batch).await;
                let dropped = handle.upgrade().map_or(0, |handle| handle.dropped.load(Ordering::Relaxed));
                exporter.tell_dropped(dropped);
            }
        }
    }
    exporter.export(&mut batch).await;
}

struct Exporter {
    config: Config,
    client: awc::Client,
    /// Where the counts go (gone once every tracer is).
    handle: std::sync::Weak<Handle>,
    last_warning: Option<Instant>,
    /// Spans lost to failed exports since the last warning.
    lost: usize,
    /// The drop count the last warning told.
    dropped_told: u64,
}

impl Exporter {
    async fn export(&mut self, batch: &mut Vec<SpanData>) {
        if batch.is_empty() {
            return;
        }
        let spans = std::mem::take(batch);
        let body = encode(&self.config.service, &spans);
        let sent = async {
            let mut answer = self
                .client
                .post(&self.config.url)
                .insert_header(("content-type", "application/json"))
                .send_body(body.to_string())
                .await
                .map_err(|e| e.to_string())?;
            let status = answer.status();
            let _ = answer.body().limit(64 * 1024).await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("HTTP {}", status.as_u16()))
            }
        };
        let outcome = match tokio::time::timeout(self.config.timeout, sent).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "no answer within {} (OTEL_EXPORTER_OTLP_TIMEOUT)",
                humantime::format_duration(self.config.timeout)
            )),
        };
        if let Some(handle) = self.handle.upgrade() {
            let counter = if outcome.is_ok() {
                &handle.exported
            } else {
                &handle.failed
            };
            counter.fetch_add(spans.len() as u64, Ordering::Relaxed);
        }
        if let Err(error) = outcome {
            self.lost += spans.len();
            if self.may_warn() {
                warn!(url = %redact_url(&self.config.url), %error, lost = self.lost,
                    "cannot export spans to the OTLP collector; they are dropped");
                self.lost = 0;
            }
        }
    }

    fn tell_dropped(&mut self, dropped: u64) {
        if dropped > self.dropped_told && self.may_warn() {
            warn!(
                dropped = dropped - self.dropped_told,
                "spans dropped: the exporter's queue was full"
            );
            self.dropped_told = dropped;
        }
    }

    fn may_warn(&mut self) -> bool {
        let now = Instant::now();
        if self.last_warning.is_some_and(|last| now - last < WARN_EVERY) {
            return false;
        }
        self.last_warning = Some(now);
        true
    }
}

/// The OTLP/JSON `ExportTraceServiceRequest` of `spans`.
pub fn encode(service: &str, spans: &[SpanData]) -> Json {
    let spans: Vec<Json> = spans.iter().map(span_json).collect();
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [attribute("service.name", &Value::Str(service.to_owned().into()))]},
            "scopeSpans": [{"scope": {"name": "hookline"}, "spans": spans}],
        }]
    })
}

fn span_json(span: &SpanData) -> Json {
    let mut out = json!({
        "traceId": to_hex(&span.context.trace_id),
        "spanId": to_hex(&span.context.span_id),
        "name": span.name,
        "kind": span.kind as i64,
        "startTimeUnixNano": span.start.to_string(),
        "endTimeUnixNano": span.end.to_string(),
        "attributes": span.attributes.iter().map(|(key, value)| attribute(key, value)).collect::<Vec<_>>(),
        "flags": span.context.flags,
    });
    if let Some(parent) = &span.parent {
        out["parentSpanId"] = json!(to_hex(parent));
    }
    out["status"] = match &span.status {
        Status::Unset => json!({}),
        Status::Ok => json!({"code": 1}),
        Status::Error(message) => json!({"code": 2, "message": message}),
    };
    out
}

fn attribute(key: &str, value: &Value) -> Json {
    let value = match value {
        Value::Str(text) => json!({"stringValue": text}),
        // int64 is a string in proto3's JSON mapping.
        Value::Int(number) => json!({"intValue": number.to_string()}),
    };
    json!({"key": key, "value": value})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{SpanKind, TraceContext};

    #[test]
    fn spans_are_encoded_as_otlp_json() {
        let context = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let span = SpanData {
            name: "POST /documents".into(),
            kind: SpanKind::Server,
            context,
            parent: Some([1, 2, 3, 4, 5, 6, 7, 8]),
            start: 1_700_000_000_000_000_001,
            end: 1_700_000_000_000_000_002,
            attributes: vec![("http.response.status_code", Value::Int(201)), ("a", "b".into())],
            status: Status::Error("HTTP 401".to_owned()),
        };
        let body = encode("hookline-consumer", &[span]);
        let resource = &body["resourceSpans"][0];
        assert_eq!(
            resource["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "hookline-consumer"}})
        );
        assert_eq!(resource["scopeSpans"][0]["scope"]["name"], "hookline");
        let span = &resource["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span["spanId"], "00f067aa0ba902b7");
        assert_eq!(span["parentSpanId"], "0102030405060708");
        assert_eq!(span["kind"], 2);
        assert_eq!(span["startTimeUnixNano"], "1700000000000000001");
        assert_eq!(span["attributes"][0]["value"], json!({"intValue": "201"}));
        assert_eq!(span["attributes"][1]["value"], json!({"stringValue": "b"}));
        assert_eq!(span["status"], json!({"code": 2, "message": "HTTP 401"}));
    }

    #[actix_web::test]
    async fn a_full_queue_drops_and_counts_and_a_dead_collector_never_blocks() {
        // Nothing listens on port 9 of loopback: every export fails fast.
        let tracer = start(Config {
            url: "http://127.0.0.1:9/v1/traces".to_owned(),
            service: "test".to_owned(),
            timeout: Duration::from_millis(200),
            queue: 4,
            batch: 512,
            interval: Duration::from_secs(60),
        })
        .unwrap();
        let started = Instant::now();
        for _ in 0..1000 {
            drop(tracer.start("x", SpanKind::Internal, None));
        }
        assert!(started.elapsed() < Duration::from_secs(1), "recording never waits");
        // The exporter takes some into its batch meanwhile; the rest of what
        // does not fit the queue of 4 is dropped.
        assert!(tracer.dropped() > 0, "dropped {}", tracer.dropped());
        let stopping = Instant::now();
        tracer.shutdown().await;
        assert!(
            stopping.elapsed() < Duration::from_millis(1500),
            "a shutdown waits its timeout at most"
        );
    }
}
