//! The integration tests, one binary (one link instead of thirteen; a
//! module per concern). Run one concern with its module path:
//! `scripts/test.sh -p hookline-tests --test it trust::`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// API keys: private routes need one, open ones stay open.
mod access;
/// The shipped Prometheus rules and Grafana dashboard, against promtool and a real Prometheus.
mod alerting;
/// Every malformed request: a 4xx with a JSON body, nothing stored changed.
mod bad_input;
/// The consumer's group commit: writes that arrive together share a commit.
mod batched_writes;
/// The dashboards in a real headless browser.
mod browser;
/// Chaos: the help desk's faults against our consumer, `hookline listen`, a naive receiver.
mod chaos;
/// `hookline check` against our consumer and against receivers that cut corners.
mod cli;
/// The help desk on a real Redis Cluster.
mod cluster;
/// Signature dialects at the help desk: callbacks and subscriptions signed as Stripe, GitHub, Shopify, Slack sign.
mod dialects;
/// Disable and tell: a gone or failing subscription is disabled, its tenant told, and enabled again.
mod disable;
/// The consumer when the help desk or its database fail.
mod failures;
/// Delivery that survives killed processes, crashes and failing receivers.
mod fault_tolerance;
/// A fresh service answers every documented GET route as documented.
mod first_minute;
/// Property-based fuzzing of both services over real HTTP.
mod fuzz;
/// `hookline grade`: our help desk gets full marks, a naive sender does not.
mod grade;
/// Metrics and request ids, seen from outside.
mod observability;
/// Ordered subscriptions: one at a time, in order, through retries, a worker kill, partitions.
mod ordered;
/// `REDIS_PARTITIONS`: one store spread over several hash tags.
mod partitions;
/// Receivers cannot break the help desk: deadlines, limits, breakers.
mod receivers;
/// Recovery after an outage: dead letters of a window sent again, once.
mod recover;
/// Several consumer processes on one database behave as one.
mod replicas;
/// Retention: finished cases forgotten, live ones kept, tables pruned.
mod retention;
/// The whole flow through both real services.
mod review_flow;
/// Safe to retry: repeated requests make one case, lost answers are asked again.
mod safe_retries;
/// `hookline check --dialect` against receivers built on each provider's own library.
mod sdk_receivers;
/// Secrets never appear in help, logs or errors.
mod secrets;
/// The callback policy: which addresses the help desk calls.
mod ssrf;
/// The help desk's store on a real Redis, below HTTP.
mod store;
/// HELPDESK_SUBSCRIBE: the consumer subscribes at the help desk and takes its events.
mod subscriber;
/// Subscriptions: event types, a secret per subscription, fan-out, tenants.
mod subscriptions;
/// The consumer's background tasks: one that dies is logged and fails `/readyz`.
mod supervision;
/// The security review (issue 23): a module per threat, each attack run for real.
mod threats;
/// HTTPS: trusted, untrusted and mutual-TLS callbacks, an https help desk.
mod tls;
/// One trace per review: traceparent through both services, spans exported over OTLP.
mod trace;
/// `hookline trigger` for CI: seeded chaos replays, books that balance (or a void run), JUnit; `check --event`.
mod trigger;
/// Forged webhooks refused, repeated ones absorbed, idempotent requests.
mod trust;
/// Both ways with the original tutorial's code, through stand-ins.
mod tutorial;
