//! The help desk's Prometheus metrics, served at `GET /metrics` (in every
//! `HELPDESK_ROLE`; each process counts what it does itself).
//!
//! | metric | type | labels | what it measures |
//! |---|---|---|---|
//! | `hookline_http_requests_total` | counter | `route`, `method`, `status` | requests answered ([`hookline_kit::metrics`]) |
//! | `hookline_http_request_duration_seconds` | histogram | `route`, `method` | time to the response head |
//! | `hookline_helpdesk_jobs_scheduled_total` | counter | | reviews accepted by `POST /document` and scheduled in Redis |
//! | `hookline_helpdesk_delivery_attempts_total` | counter | `outcome` | webhook attempts: `delivered` (2xx), `retry` (failed, rescheduled), `dead` (failed, no retries left or 410 Gone), `refused` (the callback policy refused the address; nothing was sent), `cancelled` (an event whose subscription was deleted or disabled; nothing was sent) |
//! | `hookline_helpdesk_events_queued_total` | counter | `type` | events queued for subscriptions, one per matching subscription (`document.received`, `document.accepted`, `document.declined`, `webhook.test`, and the operational `endpoint.disabled`, `message.attempt.exhausted`, counted by the worker whose finish queued them, and `endpoint.enabled`) |
//! | `hookline_helpdesk_event_attempts_total` | counter | `type`, `outcome` | attempts to deliver events to subscriptions, as `hookline_helpdesk_delivery_attempts_total` (which counts them too, with the callbacks) |
//! | `hookline_helpdesk_chaos_faults_total` | counter | `fault`, `answer` | faults the [chaos profile](crate::chaos) injected, by fault and the receiver's answer to what it sent: `2xx`, `3xx`, `4xx`, `5xx`, or `none` (no answer, or a fault that sends nothing of its own: `delay`, `reorder`, `slow_send`) |
//! | `hookline_helpdesk_delivery_duration_seconds` | histogram | | how long one attempt that was sent took (connect, request, answer), up to `DELIVERY_TIMEOUT` |
//! | `hookline_helpdesk_delivery_lateness_seconds` | histogram | | when an attempt started minus when it was due (the case's due time, or its next-attempt time for retries and redeliveries): worker wake-up delay, backlog, lease take-overs |
//! | `hookline_helpdesk_breaker_transitions_total` | counter | `to` | endpoints' circuit breakers that `open`ed (or reopened after a failed probe) or `closed` (a probe got through), as this worker recorded them |
//! | `hookline_helpdesk_endpoint_pauses_total` | counter | | pauses of a whole endpoint asked for with `Retry-After` (on a 429 or 503) |
//! | `hookline_helpdesk_forgotten_total` | counter | `what` | what retention forgot: `case` (finished cases past `CASE_RETENTION`, with their attempt logs), `endpoint` (endpoints idle as long) |
//! | `hookline_helpdesk_queue_depth` | gauge | `state` | jobs in the queue by state, `due`, `in_flight`, `dead`; read from Redis at scrape time (`due` over the counted endpoints, see below) |
//! | `hookline_helpdesk_jobs_held` | gauge | `reason` | jobs due now that their endpoint's limits hold back: `paused` (`Retry-After`), `circuit_open`, `throttled` (the rate limit), `saturated` (every slot in flight); at scrape time, over the counted endpoints |
//! | `hookline_helpdesk_endpoints_breaker` | gauge | `state` | endpoints whose breaker is `open` or `probing`; at scrape time, among the counted endpoints |
//! | `hookline_helpdesk_endpoints` | gauge | `set` | endpoints the store `known`s, and how many the three above `counted` (the [`DEPTH_ENDPOINTS`](crate::store::DEPTH_ENDPOINTS) most recently active of each partition); at scrape time |
//! | `hookline_helpdesk_endpoint_in_flight` | gauge | `endpoint` | attempts in flight per endpoint, for the [`ENDPOINT_SERIES`] most recently active endpoints (the label's values stay bounded); at scrape time |
//! | `hookline_helpdesk_endpoint_due` | gauge | `endpoint` | jobs waiting per endpoint, same endpoints |
//! | `hookline_helpdesk_subscription_disablements_total` | counter | `reason` | subscriptions the help desk disabled, `gone` (a 410) or `failing` (`DISABLE_AFTER`), as this worker recorded them |
//! | `hookline_helpdesk_subscriptions_disabled` | gauge | | subscriptions disabled now (by the help desk or by their tenant), over all tenants; at scrape time (one `SCARD`) |
//! | `hookline_helpdesk_endpoint_breaker_open` | gauge | `endpoint` | 1 while the endpoint's breaker is open or probing, else 0, same endpoints |
//! | `hookline_trace_spans_total` | counter | `outcome` | spans recorded for export ([tracing](hookline_kit::trace), `OTEL_EXPORTER_OTLP_ENDPOINT`): `exported` (the collector took them), `failed` (lost with an export that failed), `dropped` (the exporter's queue was full); all 0 while tracing is off; at scrape time |
//!
//! A scrape's work in Redis is bounded whatever the number of endpoints
//! (anyone who can create a case names one): the queue depth reads at most
//! `DEPTH_ENDPOINTS` endpoints a partition, the per-endpoint series
//! [`ENDPOINT_SERIES`], and the rest are `ZCARD`s. With more endpoints than
//! that, `due` and the held counts cover the most recently active ones, and
//! `hookline_helpdesk_endpoints{set="counted"}` below `{set="known"}` says so.
//!
//! The metrics live in a registry of this [`HelpdeskMetrics`] (no global
//! one), passed to the routes as app data and to the worker by value.

use std::time::Duration;

use prometheus::proto::MetricFamily;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

use hookline_kit::metrics::HttpMetrics;

use hookline_contract::{BreakerState, DisableReason, EndpointView, EventType};

use crate::store::QueueDepth;

/// Endpoints that get per-endpoint series: the most recently active. The
/// endpoint label takes values from the callback URLs clients send, so it
/// is bounded here rather than by trust.
pub const ENDPOINT_SERIES: usize = 50;

/// How one delivery attempt ended (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    Retry,
    Dead,
    Refused,
    /// Not sent: the event's subscription was deleted or disabled.
    Cancelled,
}

impl AttemptOutcome {
    pub const ALL: [Self; 5] = [Self::Delivered, Self::Retry, Self::Dead, Self::Refused, Self::Cancelled];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retry => "retry",
            Self::Dead => "dead",
            Self::Refused => "refused",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Attempts take from a millisecond to `DELIVERY_TIMEOUT` (15 s by default).
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0,
];
/// Lateness runs from the worker's wake-up delay (milliseconds, at most
/// `MAX_IDLE` across processes) to a lease take-over (`JOB_LEASE`) or a
/// backlog (minutes).
const LATENESS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// The help desk's registry and typed handles; cheap to clone (shared), and
/// safe to use from the worker's thread.
#[derive(Clone, Debug)]
pub struct HelpdeskMetrics {
    registry: Registry,
    http: HttpMetrics,
    jobs_scheduled: IntCounter,
    attempts: IntCounterVec,
    duration: Histogram,
    lateness: Histogram,
    breaker: IntCounterVec,
    pauses: IntCounter,
    forgotten: IntCounterVec,
    events_queued: IntCounterVec,
    event_attempts: IntCounterVec,
    chaos: IntCounterVec,
    disablements: IntCounterVec,
}

/// The `answer` label of a chaos fault: the class of the receiver's status.
pub fn answer_class(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "none",
    }
}

impl HelpdeskMetrics {
    /// A fresh registry with every help desk metric registered.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let http = HttpMetrics::register(&registry)?;
        let jobs_scheduled = IntCounter::new(
            "hookline_helpdesk_jobs_scheduled_total",
            "Reviews accepted by POST /document and scheduled as jobs in Redis.",
        )?;
        let attempts = IntCounterVec::new(
            Opts::new(
                "hookline_helpdesk_delivery_attempts_total",
                "Webhook delivery attempts, by outcome (delivered, retry, dead, refused).",
            ),
            &["outcome"],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "hookline_helpdesk_delivery_duration_seconds",
                "Duration of one webhook attempt that was sent.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
        )?;
        let lateness = Histogram::with_opts(
            HistogramOpts::new(
                "hookline_helpdesk_delivery_lateness_seconds",
                "Start of a webhook attempt minus the time it was due.",
            )
            .buckets(LATENESS_BUCKETS.to_vec()),
        )?;
        let breaker = IntCounterVec::new(
            Opts::new(
                "hookline_helpdesk_breaker_transitions_total",
                "Endpoints' circuit breakers that opened (or reopened) or closed.",
            ),
            &["to"],
        )?;
        let pauses = IntCounter::new(
            "hookline_helpdesk_endpoint_pauses_total",
            "Pauses of a whole endpoint asked for with Retry-After on a 429 or 503.",
        )?;
        let forgotten = IntCounterVec::new(
            Opts::new(
                "hookline_helpdesk_forgotten_total",
                "What retention forgot: finished cases past CASE_RETENTION, idle endpoints.",
            ),
            &["what"],
        )?;
        let events_queued = IntCounterVec::new(
            Opts::new(
                "hookline_helpdesk_events_queued_total",
                "Events queued for subscriptions, one per matching subscription, by event type.",
            ),
            &["type"],
        )?;
        let event_attempts = IntCounterVec::new(
            Opts::new(
                "hookline_helpdesk_event_attempts_total",
                "Attempts to deliver events to subscriptions, by event type and outcome.",
            ),
            &["type", "outcome"],
        )?;
        let chaos = IntCounterVec::new(
            Opts::new(
                "hookline_helpdesk_chaos_faults_total",
                "Faults injected by the chaos profile, by fault and the receiver's answer (2xx, 3xx, 4xx, 5xx, none).",
            ),
            &["fault", "answer"],
        )?;
        let disablements = IntCounterVec::new(
            Opts::new(
                "hookline_helpdesk_subscription_disablements_total",
                "Subscriptions the help desk disabled, by reason (gone: a 410; failing: DISABLE_AFTER).",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(disablements.clone()))?;
        for reason in [DisableReason::Gone, DisableReason::Failing] {
            disablements.with_label_values(&[reason.as_str()]);
        }
        registry.register(Box::new(chaos.clone()))?;
        registry.register(Box::new(events_queued.clone()))?;
        registry.register(Box::new(event_attempts.clone()))?;
        for event in EventType::ALL {
            events_queued.with_label_values(&[event.as_str()]);
            for outcome in AttemptOutcome::ALL {
                event_attempts.with_label_values(&[event.as_str(), outcome.as_str()]);
            }
        }
        registry.register(Box::new(forgotten.clone()))?;
        registry.register(Box::new(breaker.clone()))?;
        registry.register(Box::new(pauses.clone()))?;
        registry.register(Box::new(jobs_scheduled.clone()))?;
        registry.register(Box::new(attempts.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(lateness.clone()))?;
        // Every series from the start, at 0: rates and alerts need no "absent" case.
        for outcome in AttemptOutcome::ALL {
            attempts.with_label_values(&[outcome.as_str()]);
        }
        for to in ["open", "closed"] {
            breaker.with_label_values(&[to]);
        }
        for what in ["case", "endpoint"] {
            forgotten.with_label_values(&[what]);
        }
        Ok(Self {
            registry,
            http,
            jobs_scheduled,
            attempts,
            duration,
            lateness,
            breaker,
            pauses,
            forgotten,
            events_queued,
            event_attempts,
            chaos,
            disablements,
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The handles the HTTP middleware fills.
    pub fn http(&self) -> &HttpMetrics {
        &self.http
    }

    pub fn job_scheduled(&self) {
        self.jobs_scheduled.inc();
    }

    /// An attempt is starting `late` after it was due.
    pub fn attempt_started(&self, late: Duration) {
        self.lateness.observe(late.as_secs_f64());
    }

    pub fn breaker_opened(&self) {
        self.breaker.with_label_values(&["open"]).inc();
    }

    pub fn breaker_closed(&self) {
        self.breaker.with_label_values(&["closed"]).inc();
    }

    pub fn endpoint_paused(&self) {
        self.pauses.inc();
    }

    /// Retention forgot `cases` finished cases and `endpoints` idle endpoints.
    pub fn forgotten(&self, cases: u64, endpoints: u64) {
        self.forgotten.with_label_values(&["case"]).inc_by(cases);
        self.forgotten.with_label_values(&["endpoint"]).inc_by(endpoints);
    }

    /// The chaos profile injected `fault`; the receiver answered `status`
    /// to what it sent (if it sent anything and got an answer).
    pub fn chaos_injected(&self, fault: hookline_contract::chaos::Fault, status: Option<u16>) {
        self.chaos
            .with_label_values(&[fault.as_str(), answer_class(status)])
            .inc();
    }

    /// The help desk disabled a subscription.
    pub fn subscription_disabled(&self, reason: DisableReason) {
        self.disablements.with_label_values(&[reason.as_str()]).inc();
    }

    /// `count` events of `event` were queued for subscriptions.
    pub fn events_queued(&self, event: EventType, count: u64) {
        self.events_queued.with_label_values(&[event.as_str()]).inc_by(count);
    }

    /// An attempt ended with `outcome` after `took` (only sent attempts
    /// count towards the duration); `event` if it carried one to a subscription.
    pub fn attempt_finished(&self, outcome: AttemptOutcome, took: Duration, event: Option<EventType>) {
        if let Some(event) = event {
            self.event_attempts
                .with_label_values(&[event.as_str(), outcome.as_str()])
                .inc();
        }
        self.attempts.with_label_values(&[outcome.as_str()]).inc();
        if !matches!(outcome, AttemptOutcome::Refused | AttemptOutcome::Cancelled) {
            self.duration.observe(took.as_secs_f64());
        }
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The scrape-time families of a [`QueueDepth`]: jobs by state, the due
/// ones held back and by what, endpoints by breaker state.
pub fn queue_depth(depth: QueueDepth) -> prometheus::Result<Vec<MetricFamily>> {
    let mut families = hookline_kit::metrics::gauge_family(
        "hookline_helpdesk_queue_depth",
        "Jobs in the store, by state (due, in_flight, dead); read from Redis at scrape time.",
        "state",
        &[
            ("due", count(depth.due)),
            ("in_flight", count(depth.inflight)),
            ("dead", count(depth.dead)),
        ],
    )?;
    families.extend(hookline_kit::metrics::gauge_family(
        "hookline_helpdesk_jobs_held",
        "Jobs due now that their endpoint's limits hold back, by reason; read at scrape time.",
        "reason",
        &[
            ("paused", count(depth.paused)),
            ("circuit_open", count(depth.circuit_open)),
            ("throttled", count(depth.throttled)),
            ("saturated", count(depth.saturated)),
        ],
    )?);
    families.extend(hookline_kit::metrics::gauge_family(
        "hookline_helpdesk_endpoints_breaker",
        "Endpoints whose circuit breaker is open or probing; read at scrape time.",
        "state",
        &[
            ("open", count(depth.endpoints_open)),
            ("probing", count(depth.endpoints_probing)),
        ],
    )?);
    families.extend(hookline_kit::metrics::gauge_family(
        "hookline_helpdesk_endpoints",
        "Endpoints the store knows, and how many of them (the most recently active) the queue depth counts; read at scrape time.",
        "set",
        &[
            ("known", count(depth.endpoints_known)),
            ("counted", count(depth.endpoints_counted)),
        ],
    )?);
    Ok(families)
}

/// The scrape-time gauge of disabled subscriptions.
pub fn disabled_subscriptions(disabled: u64) -> prometheus::Result<Vec<MetricFamily>> {
    use prometheus::core::Collector;
    let gauge = prometheus::IntGauge::new(
        "hookline_helpdesk_subscriptions_disabled",
        "Subscriptions disabled now, by the help desk or their tenant; read from Redis at scrape time.",
    )?;
    gauge.set(count(disabled));
    Ok(gauge.collect())
}

/// Per-endpoint families for `endpoints` (the most recently active).
pub fn endpoint_series(endpoints: &[EndpointView]) -> prometheus::Result<Vec<MetricFamily>> {
    let series = |value: fn(&EndpointView) -> i64| -> Vec<(&str, i64)> {
        endpoints
            .iter()
            .map(|endpoint| (endpoint.endpoint.as_str(), value(endpoint)))
            .collect()
    };
    let mut families = hookline_kit::metrics::gauge_family(
        "hookline_helpdesk_endpoint_in_flight",
        "Attempts in flight per endpoint (the most recently active endpoints).",
        "endpoint",
        &series(|e| i64::from(e.in_flight.unwrap_or(0))),
    )?;
    families.extend(hookline_kit::metrics::gauge_family(
        "hookline_helpdesk_endpoint_due",
        "Jobs waiting per endpoint (the most recently active endpoints).",
        "endpoint",
        &series(|e| count(e.due.unwrap_or(0))),
    )?);
    families.extend(hookline_kit::metrics::gauge_family(
        "hookline_helpdesk_endpoint_breaker_open",
        "1 while the endpoint's circuit breaker is open or probing (the most recently active endpoints).",
        "endpoint",
        &series(|e| i64::from(e.breaker != BreakerState::Closed)),
    )?);
    Ok(families)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(families: &[MetricFamily]) -> String {
        hookline_kit::metrics::render(families).unwrap()
    }

    #[test]
    fn attempts_are_counted_by_outcome_and_refusals_take_no_time() {
        let metrics = HelpdeskMetrics::new().unwrap();
        metrics.attempt_started(Duration::from_millis(30));
        metrics.attempt_finished(AttemptOutcome::Delivered, Duration::from_millis(12), None);
        metrics.attempt_finished(AttemptOutcome::Refused, Duration::from_millis(1), None);
        metrics.job_scheduled();
        let exposed = text(&metrics.registry().gather());
        for (outcome, count) in [("delivered", 1), ("retry", 0), ("dead", 0), ("refused", 1)] {
            let line = format!("hookline_helpdesk_delivery_attempts_total{{outcome=\"{outcome}\"}} {count}\n");
            assert!(exposed.contains(&line), "{line} in {exposed}");
        }
        assert!(
            exposed.contains("hookline_helpdesk_delivery_duration_seconds_count 1\n"),
            "{exposed}"
        );
        assert!(
            exposed.contains("hookline_helpdesk_delivery_lateness_seconds_count 1\n"),
            "{exposed}"
        );
        assert!(
            exposed.contains("hookline_helpdesk_jobs_scheduled_total 1\n"),
            "{exposed}"
        );
    }

    #[test]
    fn queue_depth_is_exposed_by_state() {
        let exposed = text(
            &queue_depth(QueueDepth {
                due: 2,
                inflight: 1,
                dead: 0,
                throttled: 3,
                endpoints_open: 1,
                ..QueueDepth::default()
            })
            .unwrap(),
        );
        assert!(
            exposed.contains("hookline_helpdesk_queue_depth{state=\"due\"} 2\n"),
            "{exposed}"
        );
        assert!(
            exposed.contains("hookline_helpdesk_queue_depth{state=\"in_flight\"} 1\n"),
            "{exposed}"
        );
        assert!(
            exposed.contains("hookline_helpdesk_queue_depth{state=\"dead\"} 0\n"),
            "{exposed}"
        );
        for line in [
            "hookline_helpdesk_jobs_held{reason=\"throttled\"} 3\n",
            "hookline_helpdesk_jobs_held{reason=\"paused\"} 0\n",
            "hookline_helpdesk_endpoints_breaker{state=\"open\"} 1\n",
        ] {
            assert!(exposed.contains(line), "{line} in {exposed}");
        }
    }
}
