//! The delivery worker: claims due jobs from the [store](crate::store),
//! sends their webhooks concurrently, and records each outcome (delivered,
//! retry later per `RETRY_SCHEDULE` with ±10% jitter, or dead).
//!
//! It sleeps until the next job may be claimed, at most [`MAX_IDLE`]; the
//! API wakes it early through [`Wakeup`] when it schedules a job due sooner
//! than that, and so does every outcome it records (a slot of an endpoint
//! freed). A Redis outage makes it back off and try again. A receiver that
//! refuses connections, hangs or trickles only costs that job one attempt,
//! cut off at `DELIVERY_TIMEOUT`; its endpoint's limits (see the
//! [store](crate::store)) keep it from taking more than its share: at most
//! `ENDPOINT_CONCURRENCY` attempts in flight over all workers, and at most
//! a quarter of this worker's slots. A callback the
//! [callback policy](crate::ssrf) refuses is dead at once: retrying would
//! only knock on the same forbidden door.
//!
//! Outcomes are recorded by one task per worker ([`record_outcomes`]) that
//! takes every outcome waiting and records them in one pipelined round trip
//! ([`Store::finish_many`]): under load a round trip carries dozens, when
//! idle it carries one, with no added wait either way. A delivery keeps its
//! concurrency permit until its outcome is recorded, so shutdown still waits
//! for every outcome to reach Redis.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hookline_contract::{AttemptView, DocumentStatus};
use hookline_kit::http::source_chain;
use hookline_kit::trace::{Span, SpanKind, TraceContext, Tracer};
use rand::Rng;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tracing::{Instrument, info, info_span, warn};

use hookline_contract::chaos::ChaosProfile;
use hookline_contract::chaos::seed::Stream;

use crate::chaos::{self, Chaotic};
use crate::config::RetrySchedule;
use crate::delivery::{Attempt, Deliverer, Sending};
use crate::endpoint::Endpoint;
use crate::metrics::{AttemptOutcome, HelpdeskMetrics};
use crate::retry::{RetryPolicy, judge};
use crate::store::{Allowance, ClaimedJob, Disabled, EndpointSignal, Finish, Recorded, Store, StoreError};

/// Longest the worker sleeps without looking at the queue (jobs scheduled by
/// another process do not wake it).
pub const MAX_IDLE: Duration = Duration::from_millis(250);
/// Most jobs taken in one claim.
const MAX_BATCH: usize = 128;
/// Most outcomes recorded in one Redis round trip.
const MAX_FINISH_BATCH: usize = 256;
/// Pause after a failed claim (Redis unreachable).
const ERROR_BACKOFF: Duration = Duration::from_millis(500);

/// Lets the API wake a sleeping worker when it schedules a job that is due
/// before the worker means to look again.
#[derive(Debug)]
pub struct Wakeup {
    notify: Notify,
    /// Unix ms the worker sleeps until; `i64::MAX` while it is busy (so every
    /// new job leaves a wake-up permit and none is missed).
    sleeping_until: AtomicI64,
}

impl Default for Wakeup {
    fn default() -> Self {
        Self {
            notify: Notify::new(),
            sleeping_until: AtomicI64::new(i64::MAX),
        }
    }
}

impl Wakeup {
    pub fn job_scheduled(&self, due_at: DateTime<Utc>) {
        if due_at.timestamp_millis() < self.sleeping_until.load(Ordering::Acquire) {
            self.notify.notify_one();
        }
    }

    /// An endpoint's slot was freed: what waited for it may go now.
    fn slot_freed(&self) {
        self.notify.notify_one();
    }
}

/// Attempts in flight from this worker, per endpoint, for the claim's
/// [`Allowance`]: one endpoint gets at most a quarter of the worker's slots.
#[derive(Debug)]
struct Shares {
    share: usize,
    in_flight: RefCell<HashMap<Endpoint, usize>>,
}

impl Shares {
    fn new(concurrency: usize) -> Self {
        Self {
            share: (concurrency / 4).max(1),
            in_flight: RefCell::default(),
        }
    }

    fn taken(&self, endpoint: &Endpoint) {
        *self.in_flight.borrow_mut().entry(endpoint.clone()).or_default() += 1;
    }

    fn released(&self, endpoint: &Endpoint) {
        let mut in_flight = self.in_flight.borrow_mut();
        if let Some(count) = in_flight.get_mut(endpoint) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.remove(endpoint);
            }
        }
    }

    /// What each endpoint may still take of this worker's slots.
    fn allowance(&self) -> Allowance {
        Allowance {
            per_endpoint: self.share,
            in_flight: self
                .in_flight
                .borrow()
                .iter()
                .map(|(endpoint, count)| (endpoint.clone(), *count))
                .collect(),
        }
    }
}

/// What the worker needs to know.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub lease: Duration,
    pub concurrency: usize,
    pub accept_ratio: f64,
    pub retry_schedule: RetrySchedule,
    /// The longest pause a `Retry-After` buys (`RETRY_AFTER_MAX`): see [`judge`].
    pub retry_after_max: Duration,
    /// Longest the worker waits for in-flight deliveries once told to stop
    /// (`SHUTDOWN_GRACE`); a delivery still running then is retried when its
    /// lease expires.
    pub drain_limit: Duration,
    /// The help desk's chaos profile (`CHAOS`), for jobs whose case has
    /// none of its own.
    pub chaos: ChaosProfile,
    /// Records each attempt of a job that carries a trace as a span.
    pub tracer: Tracer,
}

/// Runs until `stop` turns true, then waits (bounded) for in-flight
/// deliveries to finish. Must run on an actix runtime (awc is thread-local).
pub async fn run(
    store: Store,
    deliverer: Deliverer,
    settings: WorkerSettings,
    wakeup: Arc<Wakeup>,
    metrics: HelpdeskMetrics,
    mut stop: watch::Receiver<bool>,
) {
    let deliverer = Rc::new(deliverer);
    let settings = Rc::new(settings);
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let shares = Rc::new(Shares::new(settings.concurrency.max(1)));
    let worker_id = uuid::Uuid::new_v4().simple().to_string();
    let mut claims: u64 = 0;
    let (outcomes, pending_outcomes) = mpsc::channel(settings.concurrency.max(1));
    actix_web::rt::spawn(record_outcomes(
        store.clone(),
        pending_outcomes,
        wakeup.clone(),
        metrics.clone(),
    ));
    info!(worker_id, concurrency = settings.concurrency, "delivery worker started");

    while !*stop.borrow() {
        let free = permits.available_permits().min(MAX_BATCH);
        if free == 0 {
            tokio::select! {
                permit = permits.acquire() => drop(permit),
                _ = stop.changed() => {}
            }
            continue;
        }
        claims += 1;
        let token = format!("{worker_id}:{claims}");
        let decisions = draw_decisions(settings.accept_ratio, free);
        let allowance = shares.allowance();
        match store.claim(settings.lease, &token, &decisions, &allowance).await {
            Ok(claim) => {
                let claimed = claim.jobs.len();
                for job in claim.jobs {
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        return;
                    };
                    shares.taken(&job.endpoint);
                    let span = info_span!(
                        "delivery",
                        document_id = %job.case.document_id,
                        webhook_id = %job.case.webhook_id,
                        attempt = job.case.attempts + 1,
                    );
                    let (store, outcomes, deliverer, settings, metrics, shares) = (
                        store.clone(),
                        outcomes.clone(),
                        deliverer.clone(),
                        settings.clone(),
                        metrics.clone(),
                        shares.clone(),
                    );
                    actix_web::rt::spawn(
                        async move {
                            let endpoint = job.endpoint.clone();
                            let made = attempt(&store, &deliverer, &settings, &metrics, &job).await;
                            record(&outcomes, &settings, &metrics, job, made).await;
                            shares.released(&endpoint);
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                if claimed == free {
                    continue; // there may be more due right now
                }
                let wake_at = claim
                    .next_wake
                    .unwrap_or(DateTime::<Utc>::MAX_UTC)
                    .min(Utc::now() + MAX_IDLE);
                sleep_until(&wakeup, wake_at, &mut stop).await;
            }
            Err(e) => {
                warn!(error = %source_chain(&e), "cannot claim jobs; retrying shortly");
                tokio::select! {
                    () = tokio::time::sleep(ERROR_BACKOFF) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    // Let in-flight deliveries finish (each ends by DELIVERY_TIMEOUT anyway),
    // within the grace the operator gave.
    let all = u32::try_from(settings.concurrency.max(1)).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(settings.drain_limit, permits.acquire_many(all)).await;
    if drained.is_err() {
        warn!("stopped with deliveries still in flight; their leases will expire and they will be retried");
    }
    info!(worker_id, "delivery worker stopped");
}

async fn sleep_until(wakeup: &Wakeup, wake_at: DateTime<Utc>, stop: &mut watch::Receiver<bool>) {
    wakeup
        .sleeping_until
        .store(wake_at.timestamp_millis(), Ordering::Release);
    let pause = (wake_at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::select! {
        () = tokio::time::sleep(pause) => {}
        () = wakeup.notify.notified() => {}
        _ = stop.changed() => {}
    }
    wakeup.sleeping_until.store(i64::MAX, Ordering::Release);
}

fn draw_decisions(accept_ratio: f64, count: usize) -> Vec<DocumentStatus> {
    let mut rng = rand::rng();
    (0..count)
        .map(|_| {
            if rng.random_bool(accept_ratio) {
                DocumentStatus::Accepted
            } else {
                DocumentStatus::Declined
            }
        })
        .collect()
}

/// An attempt's outcome on its way to Redis, and where to say how it was
/// recorded.
struct Outcome {
    job: ClaimedJob,
    /// The attempt's entries of the attempt log, in order: the attempt
    /// itself, and the chaos faults sent around it.
    log: Vec<AttemptView>,
    finish: Finish,
    signal: EndpointSignal,
    /// A failed batch fails every outcome in it: they share its error.
    recorded: oneshot::Sender<Result<Recorded, Arc<StoreError>>>,
}

/// Records outcomes as they come, every waiting one in one round trip, and
/// wakes the worker (slots were freed); ends when the worker and all its
/// deliveries are gone.
async fn record_outcomes(
    store: Store,
    mut pending: mpsc::Receiver<Outcome>,
    wakeup: Arc<Wakeup>,
    metrics: HelpdeskMetrics,
) {
    let mut batch = Vec::with_capacity(MAX_FINISH_BATCH);
    while pending.recv_many(&mut batch, MAX_FINISH_BATCH).await > 0 {
        let items: Vec<_> = batch
            .iter()
            .map(|outcome: &Outcome| (&outcome.job, outcome.log.as_slice(), &outcome.finish, outcome.signal))
            .collect();
        let results = store
            .finish_batch(&items)
            .await
            .map(|finished| {
                note_disabled(&metrics, &finished.disabled);
                for (event, count) in &finished.queued {
                    metrics.events_queued(*event, *count);
                }
                finished.recorded
            })
            .map_err(Arc::new);
        wakeup.slot_freed();
        for (index, outcome) in batch.drain(..).enumerate() {
            let result = match &results {
                Ok(recorded) => Ok(recorded.get(index).copied().unwrap_or(Recorded::Stale)),
                Err(e) => Err(e.clone()),
            };
            if let Ok(recorded) = result {
                note_breaker(&metrics, &outcome.job.endpoint, recorded);
            }
            let _ = outcome.recorded.send(result);
        }
    }
}

/// Logs and counts the subscriptions a batch disabled (their tenants are
/// told by the `endpoint.disabled` events the same script queued).
fn note_disabled(metrics: &HelpdeskMetrics, disabled: &[Disabled]) {
    for sub in disabled {
        metrics.subscription_disabled(sub.reason);
        warn!(subscription = %sub.subscription_id, tenant = %sub.tenant, reason = sub.reason.as_str(), error = %sub.error,
            "subscription disabled: no more events are queued for it until it is enabled again");
    }
}

/// Logs and counts a change of an endpoint's circuit breaker.
fn note_breaker(metrics: &HelpdeskMetrics, endpoint: &Endpoint, recorded: Recorded) {
    match recorded {
        Recorded::BreakerOpened => {
            metrics.breaker_opened();
            warn!(%endpoint, "circuit breaker open: the endpoint's jobs wait, spending no attempts, until a probe gets through");
        }
        Recorded::BreakerClosed => {
            metrics.breaker_closed();
            info!(%endpoint, "circuit breaker closed: the probe got through");
        }
        Recorded::Stale | Recorded::Recorded => {}
    }
}

/// Makes one attempt of `job`: a case's callback as it is, an event after
/// looking up its subscription (its current secrets; not sent at all if it
/// was deleted or disabled since the event was queued). A first attempt
/// draws its [chaos](crate::chaos) faults from the case's profile, or the
/// help desk's.
async fn attempt(
    store: &Store,
    deliverer: &Deliverer,
    settings: &WorkerSettings,
    metrics: &HelpdeskMetrics,
    job: &ClaimedJob,
) -> Chaotic {
    let mut span = attempt_span(&settings.tracer, job);
    let made = attempt_once(store, deliverer, settings, metrics, job, span.traceparent()).await;
    if span.context().is_some() {
        describe(&mut span, &made.attempt);
    }
    made
}

/// A client span for this attempt when its job carries a trace (its case's
/// `POST /document` span as the parent); a retry is another such span in
/// the same trace. Inert otherwise.
fn attempt_span(tracer: &Tracer, job: &ClaimedJob) -> Span {
    let Some(parent) = job.case.traceparent.as_deref().and_then(TraceContext::parse) else {
        return Span::inert();
    };
    let mut span = tracer.start("webhook attempt", SpanKind::Client, Some(parent));
    span.set("http.request.method", "POST");
    span.set("hookline.attempt", job.case.attempts + 1);
    span.set("hookline.endpoint", job.endpoint.to_string());
    span.set("hookline.webhook_id", job.case.webhook_id.clone());
    span.set("hookline.document_id", job.case.document_id.clone());
    span
}

/// How the attempt went, on its span.
fn describe(span: &mut Span, attempt: &Attempt) {
    match attempt {
        Attempt::Delivered { status, .. } => {
            span.set("http.response.status_code", *status);
            span.succeed();
        }
        Attempt::Failed { error, status, .. } => {
            if let Some(status) = status {
                span.set("http.response.status_code", *status);
            }
            span.fail(error.clone());
        }
        Attempt::Refused { reason, .. } | Attempt::Cancelled { reason } => span.fail(reason.clone()),
    }
}

/// The attempt itself; `traceparent` goes with its request(s).
async fn attempt_once(
    store: &Store,
    deliverer: &Deliverer,
    settings: &WorkerSettings,
    metrics: &HelpdeskMetrics,
    job: &ClaimedJob,
    traceparent: Option<String>,
) -> Chaotic {
    // A retry or a redelivery is due at its next-attempt time, a first attempt at the case's due time.
    let due = job.case.next_attempt_at.unwrap_or(job.case.due_at);
    metrics.attempt_started((Utc::now() - due).to_std().unwrap_or(Duration::ZERO));
    let plain = |attempt| Chaotic {
        attempt,
        at: Utc::now(),
        before: Vec::new(),
        after: Vec::new(),
    };
    let secrets;
    let message = match &job.case.event {
        None => deliverer.case_message(&job.case),
        Some(event) => match store.subscription(None, &event.subscription_id).await {
            Ok(Some(sub)) if !sub.disabled => {
                secrets = sub.signing_secrets(Utc::now());
                deliverer.event_message(&job.case, event, &secrets, sub.dialect)
            }
            Ok(Some(_)) => {
                return plain(Attempt::Cancelled {
                    reason: "not sent: the subscription is disabled".to_owned(),
                });
            }
            Ok(None) => {
                return plain(Attempt::Cancelled {
                    reason: "not sent: the subscription was deleted".to_owned(),
                });
            }
            Err(e) => {
                return plain(Attempt::Failed {
                    error: format!("cannot read the subscription: {}", source_chain(&e)),
                    status: None,
                    retry_after: None,
                    took: Duration::ZERO,
                });
            }
        },
    };
    let mut message = match message {
        Ok(message) => message,
        Err(refused) => return plain(refused),
    };
    message.traceparent = traceparent;
    let first = job.case.attempts == 0;
    let faults = if first {
        // Its own profile, as POST /document stored it (checked there).
        let own: Option<ChaosProfile> = job.case.chaos.as_deref().and_then(|raw| raw.parse().ok());
        let stream = match &job.case.event {
            None => Stream::Callback,
            Some(event) => Stream::Event(event.sequence),
        };
        let seeded = job.case.chaos_seed.map(|seed| stream.of(seed));
        chaos::draw(own.as_ref().unwrap_or(&settings.chaos), message.dialect, seeded)
    } else {
        Vec::new()
    };
    let reordered = first && job.case.chaos_reorder;
    if faults.is_empty() && !reordered {
        return plain(deliverer.transmit(&message, &Sending::default()).await);
    }
    let budget = chaos::budget(settings.lease, deliverer.timeout());
    chaos::deliver(deliverer, &message, &faults, reordered, budget, metrics).await
}

/// Judges an attempt and hands its outcome to the recorder.
async fn record(
    outcomes: &mpsc::Sender<Outcome>,
    settings: &WorkerSettings,
    metrics: &HelpdeskMetrics,
    job: ClaimedJob,
    made: Chaotic,
) {
    let Chaotic {
        attempt,
        at,
        before,
        after,
    } = made;
    let took = match &attempt {
        Attempt::Delivered { took, .. } | Attempt::Failed { took, .. } | Attempt::Refused { took, .. } => *took,
        Attempt::Cancelled { .. } => Duration::ZERO,
    };
    let policy = RetryPolicy {
        schedule: &settings.retry_schedule,
        retry_after_max: settings.retry_after_max,
    };
    let (record, outcome, signal) = judge(&attempt, &policy, job.case.attempt_in_round(), at);
    metrics.attempt_finished(
        attempt_outcome(&attempt, &outcome),
        took,
        job.case.event.as_ref().map(|event| event.event_type),
    );
    if let Some(pause) = signal.pause {
        metrics.endpoint_paused();
        info!(endpoint = %job.endpoint, pause = %humantime::format_duration(pause), "the receiver asked for a pause (Retry-After): every job of the endpoint waits");
    }
    match &outcome {
        Finish::Delivered => {
            info!(status = record.status_code, took_ms = record.duration_ms, decision = %job.case.status, "webhook delivered")
        }
        Finish::Retry { after, error } => {
            warn!(%error, took_ms = record.duration_ms, retry_in = %humantime::format_duration(*after), "webhook attempt failed; will retry")
        }
        Finish::Dead { error } if matches!(attempt, Attempt::Refused { .. }) => {
            warn!(%error, "webhook not sent: the callback policy refuses its address; dead-lettered")
        }
        Finish::Dead { error } if matches!(attempt, Attempt::Cancelled { .. }) => {
            info!(%error, "event not sent; dead-lettered (redeliverable)")
        }
        Finish::Dead { error } => {
            warn!(%error, took_ms = record.duration_ms, "webhook attempt failed; no retries left, dead-lettered")
        }
        Finish::Gone { error } => {
            warn!(%error, took_ms = record.duration_ms, "the receiver answered 410 Gone: dead-lettered, and an event's subscription is disabled")
        }
    }
    let (recorded, answer) = oneshot::channel();
    let mut log = before;
    log.push(record);
    log.extend(after);
    let outcome = Outcome {
        job,
        log,
        finish: outcome,
        signal,
        recorded,
    };
    if outcomes.send(outcome).await.is_err() {
        warn!("the outcome recorder has stopped; the job will be retried when its lease expires");
        return;
    }
    match answer.await {
        Ok(Ok(Recorded::Stale)) => warn!("lease had passed to another worker; outcome discarded"),
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            warn!(error = %source_chain(&*error), "cannot record the outcome; the job will be retried when its lease expires")
        }
        Err(_) => warn!("the outcome recorder has stopped; the job will be retried when its lease expires"),
    }
}

/// The `outcome` label of an attempt that ended in `finish`.
fn attempt_outcome(attempt: &Attempt, finish: &Finish) -> AttemptOutcome {
    match (attempt, finish) {
        (Attempt::Refused { .. }, _) => AttemptOutcome::Refused,
        (Attempt::Cancelled { .. }, _) => AttemptOutcome::Cancelled,
        (_, Finish::Delivered) => AttemptOutcome::Delivered,
        (_, Finish::Retry { .. }) => AttemptOutcome::Retry,
        (_, Finish::Dead { .. } | Finish::Gone { .. }) => AttemptOutcome::Dead,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_follow_the_ratio_at_its_extremes() {
        assert!(draw_decisions(1.0, 50).iter().all(|d| *d == DocumentStatus::Accepted));
        assert!(draw_decisions(0.0, 50).iter().all(|d| *d == DocumentStatus::Declined));
    }
}
