//! The consumer's Prometheus metrics, served at `GET /metrics`.
//!
//! | metric | type | labels | what it counts |
//! |---|---|---|---|
//! | `hookline_http_requests_total` | counter | `route`, `method`, `status` | requests answered ([`hookline_kit::metrics`]) |
//! | `hookline_http_request_duration_seconds` | histogram | `route`, `method` | time to the response head |
//! | `hookline_consumer_webhooks_total` | counter | `outcome` | webhooks received at `POST /document/update` and subscription events at `POST /helpdesk/events`, by what became of them: `applied`, `recorded` (a `document.received` noted), `ignored` (`webhook.test`, an event type this consumer does not know), `already_applied`, `duplicate` (a `webhook-id` seen before), `refused_unauthorized` (unsigned, forged or stale), `conflict` (contradicts the stored decision), `unknown_review`, `invalid` (malformed), `error` (storage failed, or an event came before the subscription's secret is known: 5xx, retried by the help desk) |
//! | `hookline_consumer_reviews` | gauge | `status` | reviews stored, per `documentStatus`; counted in PostgreSQL at scrape time |
//! | `hookline_consumer_reconciled_total` | counter | | reviews decided by reconciliation rather than by a webhook |
//! | `hookline_consumer_reconcile_rounds_total` | counter | `result` | the reconciler's looks for stale reviews, `ok` or `failed` (the database did not answer) |
//! | `hookline_consumer_reviews_healed_total` | counter | | reviews whose request's answer was lost, sent again by the reconciler and taken by the help desk |
//! | `hookline_consumer_reviews_lost_total` | counter | | pending reviews the help desk no longer knows (its case expired or was lost): no longer asked about |
//! | `hookline_consumer_pruned_total` | counter | `what` | rows removed by retention: `receipt` (webhook receipts past `RECEIPT_RETENTION`), `idempotency_key` (past `IDEMPOTENCY_RETENTION`) |
//! | `hookline_trace_spans_total` | counter | `outcome` | spans recorded for export ([tracing](hookline_kit::trace), `OTEL_EXPORTER_OTLP_ENDPOINT`): `exported` (the collector took them), `failed` (lost with an export that failed), `dropped` (the exporter's queue was full); all 0 while tracing is off; at scrape time |
//!
//! The metrics live in a registry of this [`ConsumerMetrics`] (no global
//! one), passed to the routes as app data and to the reconciler by value.

use hookline_contract::DocumentStatus;
use hookline_kit::metrics::HttpMetrics;
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// What became of a webhook (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    Applied,
    /// A subscription's `document.received` noted on its review.
    Recorded,
    /// A subscription event taken but not acted on (`webhook.test`, an unknown type).
    Ignored,
    AlreadyApplied,
    Duplicate,
    RefusedUnauthorized,
    Conflict,
    UnknownReview,
    Invalid,
    Error,
}

impl WebhookOutcome {
    pub const ALL: [Self; 10] = [
        Self::Applied,
        Self::Recorded,
        Self::Ignored,
        Self::AlreadyApplied,
        Self::Duplicate,
        Self::RefusedUnauthorized,
        Self::Conflict,
        Self::UnknownReview,
        Self::Invalid,
        Self::Error,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Recorded => "recorded",
            Self::Ignored => "ignored",
            Self::AlreadyApplied => "already_applied",
            Self::Duplicate => "duplicate",
            Self::RefusedUnauthorized => "refused_unauthorized",
            Self::Conflict => "conflict",
            Self::UnknownReview => "unknown_review",
            Self::Invalid => "invalid",
            Self::Error => "error",
        }
    }
}

/// The consumer's registry and typed handles; cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct ConsumerMetrics {
    registry: Registry,
    http: HttpMetrics,
    webhooks: IntCounterVec,
    reconciled: IntCounter,
    reconcile_rounds: IntCounterVec,
    healed: IntCounter,
    lost: IntCounter,
    pruned: IntCounterVec,
}

impl ConsumerMetrics {
    /// A fresh registry with every consumer metric registered.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let http = HttpMetrics::register(&registry)?;
        let webhooks = IntCounterVec::new(
            Opts::new(
                "hookline_consumer_webhooks_total",
                "Webhooks and subscription events received, by outcome (applied, recorded, ignored, already_applied, duplicate, refused_unauthorized, conflict, unknown_review, invalid, error).",
            ),
            &["outcome"],
        )?;
        let reconciled = IntCounter::new(
            "hookline_consumer_reconciled_total",
            "Reviews decided by reconciliation (polling the help desk) rather than by a webhook.",
        )?;
        let reconcile_rounds = IntCounterVec::new(
            Opts::new(
                "hookline_consumer_reconcile_rounds_total",
                "Reconciliation rounds, by result (ok, failed).",
            ),
            &["result"],
        )?;
        let healed = IntCounter::new(
            "hookline_consumer_reviews_healed_total",
            "Reviews whose request's answer was lost, sent again by the reconciler and taken.",
        )?;
        let lost = IntCounter::new(
            "hookline_consumer_reviews_lost_total",
            "Pending reviews the help desk no longer knows; no longer asked about.",
        )?;
        let pruned = IntCounterVec::new(
            Opts::new(
                "hookline_consumer_pruned_total",
                "Rows removed by retention (receipt, idempotency_key).",
            ),
            &["what"],
        )?;
        registry.register(Box::new(healed.clone()))?;
        registry.register(Box::new(lost.clone()))?;
        registry.register(Box::new(pruned.clone()))?;
        registry.register(Box::new(webhooks.clone()))?;
        registry.register(Box::new(reconciled.clone()))?;
        registry.register(Box::new(reconcile_rounds.clone()))?;
        // Every series from the start, at 0: rates and alerts need no "absent" case.
        for outcome in WebhookOutcome::ALL {
            webhooks.with_label_values(&[outcome.as_str()]);
        }
        for result in ["ok", "failed"] {
            reconcile_rounds.with_label_values(&[result]);
        }
        for what in ["receipt", "idempotency_key"] {
            pruned.with_label_values(&[what]);
        }
        Ok(Self {
            registry,
            http,
            webhooks,
            reconciled,
            reconcile_rounds,
            healed,
            lost,
            pruned,
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The handles the HTTP middleware fills.
    pub fn http(&self) -> &HttpMetrics {
        &self.http
    }

    pub fn webhook(&self, outcome: WebhookOutcome) {
        self.webhooks.with_label_values(&[outcome.as_str()]).inc();
    }

    /// A reconciliation round that decided `decided` reviews, or failed.
    /// The reconciler looked for stale reviews (`ok`), or could not.
    pub fn reconcile_round(&self, ok: bool) {
        self.reconcile_rounds
            .with_label_values(&[if ok { "ok" } else { "failed" }])
            .inc();
    }

    /// The reconciler decided a review from the help desk's answer.
    pub fn review_reconciled(&self) {
        self.reconciled.inc();
    }

    /// The reconciler sent a lost request again and the help desk took it.
    pub fn review_healed(&self) {
        self.healed.inc();
    }

    /// The help desk does not know a pending review (any more).
    pub fn review_lost(&self) {
        self.lost.inc();
    }

    /// Retention removed `receipts` webhook receipts and `keys` idempotency keys.
    pub fn pruned(&self, receipts: u64, keys: u64) {
        self.pruned.with_label_values(&["receipt"]).inc_by(receipts);
        self.pruned.with_label_values(&["idempotency_key"]).inc_by(keys);
    }
}

/// `hookline_consumer_reviews{status}` from `(status, count)` rows, with
/// every known status present (0 if it has no reviews).
pub fn reviews_by_status(counts: &[(String, i64)]) -> prometheus::Result<Vec<MetricFamily>> {
    let values: Vec<(&str, i64)> = DocumentStatus::ALL
        .iter()
        .map(|status| {
            let count = counts.iter().find(|(s, _)| s == status.as_str()).map_or(0, |(_, n)| *n);
            (status.as_str(), count)
        })
        .collect();
    hookline_kit::metrics::gauge_family(
        "hookline_consumer_reviews",
        "Reviews stored, by documentStatus (counted at scrape time).",
        "status",
        &values,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(families: &[MetricFamily]) -> String {
        hookline_kit::metrics::render(families).unwrap()
    }

    #[test]
    fn every_webhook_outcome_is_exposed_from_the_start() {
        let metrics = ConsumerMetrics::new().unwrap();
        metrics.webhook(WebhookOutcome::Duplicate);
        let exposed = text(&metrics.registry().gather());
        for outcome in WebhookOutcome::ALL {
            let expected = if outcome == WebhookOutcome::Duplicate { 1 } else { 0 };
            let line = format!(
                "hookline_consumer_webhooks_total{{outcome=\"{}\"}} {expected}\n",
                outcome.as_str()
            );
            assert!(exposed.contains(&line), "{line} in {exposed}");
        }
    }

    #[test]
    fn reconciliation_counts_rounds_and_decisions() {
        let metrics = ConsumerMetrics::new().unwrap();
        metrics.reconcile_round(true);
        for _ in 0..3 {
            metrics.review_reconciled();
        }
        metrics.reconcile_round(true);
        metrics.reconcile_round(false);
        let exposed = text(&metrics.registry().gather());
        assert!(exposed.contains("hookline_consumer_reconciled_total 3\n"), "{exposed}");
        assert!(
            exposed.contains("hookline_consumer_reconcile_rounds_total{result=\"ok\"} 2\n"),
            "{exposed}"
        );
        assert!(
            exposed.contains("hookline_consumer_reconcile_rounds_total{result=\"failed\"} 1\n"),
            "{exposed}"
        );
    }

    #[test]
    fn statuses_without_reviews_are_zero() {
        let exposed = text(&reviews_by_status(&[("ACCEPTED".to_owned(), 4)]).unwrap());
        assert!(
            exposed.contains("hookline_consumer_reviews{status=\"ACCEPTED\"} 4\n"),
            "{exposed}"
        );
        assert!(
            exposed.contains("hookline_consumer_reviews{status=\"DECLINED\"} 0\n"),
            "{exposed}"
        );
        assert!(
            exposed.contains("hookline_consumer_reviews{status=\"PENDING_REVIEW\"} 0\n"),
            "{exposed}"
        );
    }
}
