//! The help desk's Prometheus metrics, served at `GET /metrics` (in every
//! `HELPDESK_ROLE`; each process counts what it does itself).
//!
//! | metric | type | labels | what it measures |
//! |---|---|---|---|
//! | `hookline_http_requests_total` | counter | `route`, `method`, `status` | requests answered ([`hookline_kit::metrics`]) |
//! | `hookline_http_request_duration_seconds` | histogram | `route`, `method` | time to the response head |
//! | `hookline_helpdesk_jobs_scheduled_total` | counter | | reviews accepted by `POST /document` and scheduled in Redis |
//! | `hookline_helpdesk_delivery_attempts_total` | counter | `outcome` | webhook attempts: `delivered` (2xx), `retry` (failed, rescheduled), `dead` (failed, no retries left or 410 Gone), `refused` (the callback policy refused the address; nothing was sent) |
//! | `hookline_helpdesk_delivery_duration_seconds` | histogram | | how long one attempt that was sent took (connect, request, answer), up to `DELIVERY_TIMEOUT` |
//! | `hookline_helpdesk_delivery_lateness_seconds` | histogram | | when an attempt started minus when it was due (the case's due time, or its next-attempt time for retries and redeliveries): worker wake-up delay, backlog, lease take-overs |
//! | `hookline_helpdesk_queue_depth` | gauge | `state` | jobs in the queue by state, `due`, `in_flight`, `dead`; read from Redis at scrape time |
//!
//! The metrics live in a registry of this [`HelpdeskMetrics`] (no global
//! one), passed to the routes as app data and to the worker by value.

use std::time::Duration;

use prometheus::proto::MetricFamily;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

use hookline_kit::metrics::HttpMetrics;

use crate::queue::QueueDepth;

/// How one delivery attempt ended (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    Retry,
    Dead,
    Refused,
}

impl AttemptOutcome {
    pub const ALL: [Self; 4] = [Self::Delivered, Self::Retry, Self::Dead, Self::Refused];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retry => "retry",
            Self::Dead => "dead",
            Self::Refused => "refused",
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
        registry.register(Box::new(jobs_scheduled.clone()))?;
        registry.register(Box::new(attempts.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(lateness.clone()))?;
        // Every series from the start, at 0: rates and alerts need no "absent" case.
        for outcome in AttemptOutcome::ALL {
            attempts.with_label_values(&[outcome.as_str()]);
        }
        Ok(Self {
            registry,
            http,
            jobs_scheduled,
            attempts,
            duration,
            lateness,
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

    /// An attempt ended with `outcome` after `took` (only sent attempts
    /// count towards the duration).
    pub fn attempt_finished(&self, outcome: AttemptOutcome, took: Duration) {
        self.attempts.with_label_values(&[outcome.as_str()]).inc();
        if outcome != AttemptOutcome::Refused {
            self.duration.observe(took.as_secs_f64());
        }
    }
}

/// `hookline_helpdesk_queue_depth{state}` for a [`QueueDepth`] read at scrape time.
pub fn queue_depth(depth: QueueDepth) -> prometheus::Result<Vec<MetricFamily>> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    hookline_kit::metrics::gauge_family(
        "hookline_helpdesk_queue_depth",
        "Jobs in the queue, by state (due, in_flight, dead); read from Redis at scrape time.",
        "state",
        &[
            ("due", count(depth.due)),
            ("in_flight", count(depth.inflight)),
            ("dead", count(depth.dead)),
        ],
    )
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
        metrics.attempt_finished(AttemptOutcome::Delivered, Duration::from_millis(12));
        metrics.attempt_finished(AttemptOutcome::Refused, Duration::from_millis(1));
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
    }
}
