//! The review queue: cases, their delayed webhook jobs, and the endpoints
//! they go to, kept in Redis.
//!
//! # Design
//!
//! What follows is one [`Partition`]: every key starts with its tag,
//! `{prefix}` (`REDIS_PREFIX` in braces) when the queue has one partition,
//! `{prefix:k}` (roughly) for partition k of several (`REDIS_PARTITIONS`,
//! see [`Queue`] for how cases, endpoints' limits and workers spread over
//! them). The tag is also the Redis Cluster hash tag, so a partition's keys
//! live in one slot and every script below stays atomic on a cluster too.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p}:case:<documentId>` | hash | the case: request, decision, delivery bookkeeping, its `endpoint` |
//! | `{p}:due:<endpoint>` | sorted set | the endpoint's waiting jobs, scored by due time (unix ms) |
//! | `{p}:ready` | sorted set | the line of endpoints that have something due, scored by when each may send |
//! | `{p}:inflight` | sorted set | claimed jobs, scored by lease expiry (unix ms) |
//! | `{p}:endpoint:<endpoint>` | hash | the endpoint's limits and state: `inFlight`, `rate` (an override), rate tokens, `pausedUntil`, `breaker`, `failures`, `cooldown`, `openUntil`, `lastError` |
//! | `{p}:endpoints` | sorted set | every endpoint, scored by its last new job or return to the line (for listing) |
//! | `{p}:dead` | sorted set | jobs whose every attempt failed, scored by when they died |
//! | `{p}:attempts:<documentId>` | list | the attempt log (JSON, the latest 100) |
//! | `{p}:cases` | sorted set | every case, scored by creation time (for listing) |
//! | `{p}:request:<id>` | string | the `documentId` of the case a request `id` created (idempotent retries) |
//! | `{p}:expiring` | sorted set | finished cases and events, scored by when retention forgets them |
//! | `{p}:event:<webhookId>` | hash | one event for one subscription: a job like a case's callback (its id in the sets is `~<webhookId>`), with `event`, `subscription`, `sequence` |
//! | `{p}:sub:<id>` | hash | a subscription: `tenant`, `url`, `endpoint`, `events`, `secret` (and `previousSecret` until `previousUntil`), `disabled`, delivery stats |
//! | `{p}:subs:<tenant>` | sorted set | a tenant's subscriptions, by creation time |
//! | `{prefix}:partition-count` | string | how many partitions the queue was made with (checked at start-up) |
//! | `{p}:partition` | string | the partition's number; every script names it first, so none runs on a half-migrated cluster slot |
//! | `{p}:chaos` | hash | chaos faults injected, `<fault>:<answer class>` and `<fault>:unexpected` (for `GET /chaos`) |
//!
//! A **job** is either a case's callback (its id is the `documentId`, its
//! hash the case) or one event for one subscription (see
//! [`EventJob`]); both go through the same due sets, claims, leases,
//! retries, endpoint limits and dead letters. `schedule` queues a case's
//! events with the case itself: `document.received` due now and the
//! decision's event due with the callback, one job per enabled subscription
//! of the case's tenant that wants it (the verdict is drawn when the case is
//! accepted, kept hidden in the case until it is due). A case without a
//! callback has no job of its own (`NO_CALLBACK`): it is decided at its due
//! time by the clock alone.
//!
//! An [endpoint](crate::endpoint) is the scheme, host and port of a callback
//! URL. A job is in exactly one of its endpoint's due set, `inflight` and
//! `dead` (or in none once delivered):
//!
//! ```text
//!  schedule ──► due:<e> ──claim──► inflight ──finish(ok)──► (delivered)
//!                  ▲                │  │
//!                  └─finish(retry)──┘  └─finish(last failure)──► dead
//!                  ▲                │
//!                  └──lease expired: claim puts it back (worker died)
//! ```
//!
//! * **schedule** (a Lua script) writes the case hash, adds the job to its
//!   endpoint's due set and puts the endpoint in line at the job's due time,
//!   or moves it up to it (`ZADD LT`): an acknowledged request (the 202) is
//!   a job in Redis. The line may then hold an endpoint that cannot send
//!   yet (every slot taken, paused, breaker open); the claim that meets it
//!   there puts it back where its limits say. A request that carries an
//!   `id` records which case it made (`request:<id>`), in the same script:
//!   a retry of it (same `id`, document and callback) finds that case and
//!   stores nothing; the same `id` for another request is a conflict.
//! * **claim** (a Lua script) first puts jobs whose lease ran out back at the
//!   front of their endpoint's queue, then walks the **ready line** from its
//!   front. Each endpoint in line gives what its limits allow right now: no
//!   more than `ENDPOINT_CONCURRENCY` in flight, a rate-limit token per job
//!   (`ENDPOINT_RATE` or the endpoint's override), nothing while a
//!   `Retry-After` pause runs or its breaker is open, one probe when the
//!   breaker's cooldown is over. Jobs move to `inflight` with a fresh lease
//!   and the claimer's lease token; the agent's decision is recorded the
//!   first time a case is claimed. An endpoint that gave jobs goes to the
//!   back of the line, so a backlog on one endpoint delays another's due job
//!   by one claim at most; an endpoint that may not send is scored with the
//!   time it may (its pause, cooldown or next token), and one that cannot
//!   send at all (every slot taken, nothing due, its probe out) leaves the
//!   line until a finish or a new job brings it back. A worker also names
//!   the endpoints it has given its share of its own slots (a quarter), so
//!   three slow endpoints cannot take every slot of a small worker.
//! * **finish** (a Lua script) only acts if the job still carries the
//!   caller's lease token; it appends the attempt to the log, removes the job
//!   from `inflight` and either forgets it (delivered), puts it back in its
//!   endpoint's queue for the next retry, or moves it to `dead`. Then the
//!   endpoint: its slot frees; a `Retry-After` on a 429 or 503 pauses the
//!   whole endpoint; the circuit breaker counts failed attempts in a row and
//!   opens at `CIRCUIT_FAILURES` for `CIRCUIT_COOLDOWN`; after that one
//!   probe goes out: a success closes the breaker, a failure reopens it for
//!   twice as long, up to 10 minutes. Jobs waiting behind an open breaker
//!   spend no attempts.
//! * **redeliver** (a Lua script) puts a dead or delivered case back in its
//!   endpoint's queue for now and restarts its retry schedule (`retryBase`);
//!   the `webhook-id` stays, so a receiver sees a replay of the same event.
//! * **retention**: finish gives a case that is done (delivered or dead) a
//!   TTL of `CASE_RETENTION` on its hash, attempt log and request id, and a
//!   place in `expiring`; **trim** (a Lua script, run by every worker, see
//!   [`crate::retention`]) then takes it out of `cases` and `dead`, and
//!   forgets endpoints idle as long. A redelivery removes the TTL again:
//!   nothing that can still be claimed or retried ever expires.
//!
//! Every time in the queue (due times, leases, pauses, cooldowns, expiry) is
//! read from Redis's clock inside the scripts (`TIME`), never a worker's:
//! callers pass durations ("retry in 5 s"), so workers whose clocks disagree
//! still agree on whose lease has run out.
//!
//! The limits are in Redis, so every worker process honours them together:
//! two workers never have more than `ENDPOINT_CONCURRENCY` attempts in
//! flight to one endpoint between them, nor send faster than its rate.
//!
//! # Guarantee
//!
//! At-least-once delivery: a job leaves the queue only after its webhook got
//! a 2xx (or it ran out of retries, into `dead`). A worker that dies between
//! claiming and finishing leaves the job in `inflight`, where the next claim
//! after `JOB_LEASE` puts it back in its endpoint's queue (freeing its slot,
//! and letting another probe go if it was one). A delivery can therefore
//! repeat only when a lease expires while its worker is still alive (a stall
//! longer than `JOB_LEASE`, which is kept above `DELIVERY_TIMEOUT`); the
//! stale worker's `finish` is then ignored, and the receiver deduplicates by
//! `webhook-id`.
//!
//! # What Redis must provide
//!
//! A `202` means "the job is in Redis". That survives a Redis *crash* only
//! if the write reached the disk before Redis answered: run Redis with
//! `appendonly yes` and `appendfsync always` (as `docker-compose.yml` does;
//! Redis groups the fsyncs of one event-loop turn, so the cost is one fsync
//! per batch of writes, not per job). With `appendfsync everysec` a crash
//! may lose up to the last second of acknowledged jobs; a clean restart
//! (`SHUTDOWN`) loses nothing either way. Without persistence a restart loses
//! every pending job. `a_redis_crash_and_restart_loses_no_accepted_job`
//! SIGKILLs Redis with accepted jobs and checks all are still delivered.
//!
//! # Upgrading
//!
//! Before per-endpoint queues every waiting job was in one `{p}:due`. A help
//! desk starting on such data moves those jobs into their endpoints' queues
//! ([`Queue::connect`] runs the one-shot, idempotent migration), so pending
//! reviews survive the upgrade. Stop the old workers first: old and new
//! scripts do not share in-flight bookkeeping.
//!
//! # Several workers
//!
//! Workers share nothing but Redis, so any number of processes with
//! `HELPDESK_ROLE=worker` can serve one prefix. A worker sleeps until the
//! first endpoint in line may send (or a lease expires), but at most
//! [`MAX_IDLE`]; the API in the same process wakes it at once when it
//! schedules something sooner, and so does each outcome it records (a slot
//! freed), while a worker in another process notices within [`MAX_IDLE`].
//!
//! [`MAX_IDLE`]: crate::worker::MAX_IDLE

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hookline_contract::chaos::{Fault, FaultCount};
use hookline_contract::{
    AttemptView, BreakerState, CaseView, DeliveryState, DeliveryView, DocumentStatus, EndpointView, EventType,
};
use redis::{AsyncCommands, Script, ScriptInvocation};

use crate::endpoint::Endpoint;

mod conn;
mod partitions;
mod subscriptions;

pub use conn::RedisConnection;
pub use partitions::{MAX_PARTITIONS, Queue, partition_of, partition_tag};
pub use subscriptions::{NewSubscriptionRecord, SubscriptionChange, SubscriptionRecord};

/// The Lua every script starts with: the common arguments, the key names,
/// the token bucket and `refresh`, which keeps an endpoint's place in the
/// ready line right.
const COMMON: &str = include_str!("queue/common.lua");

/// The longest a circuit breaker stays open between probes.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(10 * 60);

/// What starts the id of an event's job (never a documentId's character).
pub const EVENT_JOB_MARK: char = '~';

/// Most jobs a lease takeover or a migration step handles at once.
const MIGRATION_BATCH: isize = 1000;

/// How much of one worker's slots endpoints may take in a claim: a worker
/// gives one endpoint at most `per_endpoint` of them, so a few slow
/// endpoints cannot take every slot of a small worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowance {
    pub per_endpoint: usize,
    /// The endpoints this worker has attempts in flight to, and how many.
    pub in_flight: Vec<(Endpoint, usize)>,
}

impl Allowance {
    /// No share per worker: only the endpoints' own limits apply.
    pub fn unlimited() -> Self {
        Self {
            per_endpoint: usize::MAX >> 12,
            in_flight: Vec::new(),
        }
    }
}

/// What can go wrong talking to the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis")]
    Redis(#[from] redis::RedisError),
    #[error("case {document_id} is malformed in Redis: {problem}")]
    Corrupt { document_id: String, problem: String },
    /// `REDIS_MIN_REPLICAS` replicas did not confirm the write in time: it
    /// is on the master, but a failover now could lose it.
    #[error("only {acknowledged} of {wanted} replicas confirmed the write")]
    NotReplicated { acknowledged: u32, wanted: u32 },
    /// `REDIS_PARTITIONS` differs from the count the queue was made with,
    /// and the queue still holds cases that would be looked for elsewhere.
    #[error(
        "REDIS_PARTITIONS is {now}, but this REDIS_PREFIX's queue was made with {before} and still holds {held} \
         cases: keep {before}, use another REDIS_PREFIX, or let the cases finish and expire first"
    )]
    Layout { before: usize, now: usize, held: u64 },
}

/// How many replicas must confirm a new case before it is answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Durability {
    min_replicas: u32,
    timeout: Duration,
}

/// The limits every endpoint gets unless it has its own (`ENDPOINT_*`,
/// `CIRCUIT_*`). Every help desk process of one prefix must use the same.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointLimits {
    /// Attempts in flight at most, over all workers.
    pub concurrency: u32,
    /// Deliveries per second at most; `None`: unlimited.
    pub rate: Option<f64>,
    /// Failed attempts in a row that open the circuit breaker.
    pub circuit_failures: u32,
    /// How long the breaker first stays open; doubles after each failed
    /// probe, up to [`MAX_COOLDOWN`].
    pub circuit_cooldown: Duration,
}

impl Default for EndpointLimits {
    fn default() -> Self {
        Self {
            concurrency: 16,
            rate: None,
            circuit_failures: 10,
            circuit_cooldown: Duration::from_secs(30),
        }
    }
}

/// The key names of one help desk (one `REDIS_PREFIX`).
#[derive(Debug, Clone)]
pub struct Keys {
    tag: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            tag: format!("{{{prefix}}}"),
        }
    }

    /// `{prefix}`: the start of every key, and their Redis Cluster hash tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn case(&self, document_id: &str) -> String {
        format!("{}:case:{document_id}", self.tag)
    }

    /// The hash of a job: a case (its callback; the id is the documentId)
    /// or one event for one subscription (the id is `~` and its webhook-id).
    pub fn job(&self, id: &str) -> String {
        match id.strip_prefix(EVENT_JOB_MARK) {
            Some(webhook_id) => format!("{}:event:{webhook_id}", self.tag),
            None => self.case(id),
        }
    }

    pub fn subscription(&self, id: &str) -> String {
        format!("{}:sub:{id}", self.tag)
    }

    /// A tenant's subscriptions, scored by creation time.
    pub fn subscriptions(&self, tenant: &str) -> String {
        format!("{}:subs:{tenant}", self.tag)
    }

    /// The waiting jobs of one endpoint.
    pub fn due(&self, endpoint: &Endpoint) -> String {
        format!("{}:due:{endpoint}", self.tag)
    }

    /// The line of endpoints that have something due.
    pub fn ready(&self) -> String {
        format!("{}:ready", self.tag)
    }

    pub fn endpoint(&self, endpoint: &Endpoint) -> String {
        format!("{}:endpoint:{endpoint}", self.tag)
    }

    /// Every endpoint, by last activity.
    pub fn endpoints(&self) -> String {
        format!("{}:endpoints", self.tag)
    }

    pub fn inflight(&self) -> String {
        format!("{}:inflight", self.tag)
    }

    pub fn dead(&self) -> String {
        format!("{}:dead", self.tag)
    }

    pub fn chaos(&self) -> String {
        format!("{}:chaos", self.tag)
    }

    pub fn cases(&self) -> String {
        format!("{}:cases", self.tag)
    }

    pub fn attempts(&self, document_id: &str) -> String {
        format!("{}:attempts:{document_id}", self.tag)
    }

    /// Which case a request `id` created (for idempotent retries).
    pub fn request(&self, id: &str) -> String {
        format!("{}:request:{id}", self.tag)
    }

    /// Finished cases, scored by when they expire (`CASE_RETENTION`).
    pub fn expiring(&self) -> String {
        format!("{}:expiring", self.tag)
    }

    /// The partition's anchor: always there, named first by every script
    /// (see `common.lua`); holds the partition's number.
    pub fn anchor(&self) -> String {
        format!("{}:partition", self.tag)
    }

    /// The single due set of the layout before per-endpoint queues.
    pub fn legacy_due(&self) -> String {
        format!("{}:due", self.tag)
    }
}
/// A case as accepted by `POST /document`, before any decision.
#[derive(Debug, Clone)]
pub struct NewCase {
    pub document_id: String,
    pub agent_id: String,
    pub document_url: String,
    /// Where its decision goes (`X-Callback-Url`); `None`: only to the
    /// tenant's subscriptions.
    pub callback_url: Option<String>,
    /// The `id` of the request (the client's own), which makes a retry of
    /// the same request find the same case.
    pub request_id: Option<String>,
    pub webhook_id: String,
    /// Whose subscriptions receive its events.
    pub tenant: String,
    /// The agent's decision, kept hidden until the case is due (`None`: the
    /// worker draws it when it claims the callback; nothing to tell
    /// subscriptions then, so no decision event is queued).
    pub verdict: Option<DocumentStatus>,
    /// The webhook-id prefix of its events (each adds `_<n>`).
    pub event_prefix: String,
    /// How long the agent takes: the case is due this long after it is
    /// stored (by the queue's clock).
    pub delay: Duration,
    /// Its own chaos profile (`Hookline-Chaos`), for its jobs' attempts
    /// (`None`: the help desk's `CHAOS`).
    pub chaos: Option<String>,
    /// The `reorder` fault: its `document.received` events are held back
    /// until after its decision.
    pub reorder: bool,
}

/// What [`Queue::schedule`] did with a new case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduled {
    /// Stored; due in `due_in` (by the queue's clock), for the worker's
    /// wake-up; `received` and `decided` event jobs queued for the tenant's
    /// subscriptions (`document.received`, the decision's event).
    Created {
        due_in: Duration,
        received: u64,
        decided: u64,
    },
    /// A request with this `id`, document and callback was accepted before:
    /// this is its case, nothing new was stored.
    Replayed { document_id: String, agent_id: String },
    /// A request with this `id` was accepted before for another document or
    /// callback: nothing was stored.
    Conflict { document_id: String },
}

/// What makes a job the delivery of an event to a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventJob {
    pub event_type: EventType,
    pub subscription_id: String,
    /// The job's own id (`~` and its webhook-id).
    pub job_id: String,
    /// The order of its document's events (1 received, 2 decided; 0 test).
    pub sequence: u32,
    /// The text of a `webhook.test`.
    pub message: Option<String>,
}

/// A case as stored, with its delivery bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRecord {
    pub document_id: String,
    pub agent_id: String,
    pub document_url: String,
    pub callback_url: String,
    pub request_id: Option<String>,
    pub webhook_id: String,
    pub status: DocumentStatus,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub delivery: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// `attempts` when the current round of retries began (a redelivery
    /// starts a new round); the schedule is indexed from it.
    pub retry_base: u32,
    /// The attempt log, oldest first (only filled by [`Queue::case`]).
    pub log: Vec<AttemptView>,
    /// The endpoint its webhook goes to (`scheme://host:port`).
    pub endpoint: Option<String>,
    /// Set when the job delivers an event to a subscription.
    pub event: Option<EventJob>,
    /// The case's own chaos profile (`Hookline-Chaos`), as text.
    pub chaos: Option<String>,
    /// The job is a `document.received` event held back by the `reorder` fault.
    pub chaos_reorder: bool,
    lease: Option<String>,
}

impl CaseRecord {
    fn from_hash(mut hash: HashMap<String, String>) -> Result<Self, QueueError> {
        let document_id = hash.remove("documentId").unwrap_or_default();
        let corrupt = |problem: String| QueueError::Corrupt {
            document_id: document_id.clone(),
            problem,
        };
        let mut take = |field: &str| hash.remove(field).ok_or_else(|| corrupt(format!("no {field}")));
        let required_time = |raw: String| parse_millis(&raw).ok_or_else(|| corrupt(format!("bad time {raw:?}")));
        let status = take("status")?;
        let delivery = take("delivery")?;
        let event = match take("event").ok() {
            None => None,
            Some(raw) => Some(EventJob {
                event_type: raw.parse().map_err(|_| corrupt(format!("bad event {raw:?}")))?,
                subscription_id: take("subscription")?,
                job_id: String::new(), // below, from the webhook-id
                sequence: take("sequence").ok().and_then(|raw| raw.parse().ok()).unwrap_or(0),
                message: take("message").ok(),
            }),
        };
        let verdict: Option<DocumentStatus> = take("verdict").ok().and_then(|raw| raw.parse().ok());
        let mut record = Self {
            agent_id: take("agentId")?,
            document_url: take("documentUrl")?,
            callback_url: take("callbackUrl")?,
            webhook_id: take("webhookId")?,
            status: status.parse().map_err(|_| corrupt(format!("bad status {status:?}")))?,
            created_at: required_time(take("createdAt")?)?,
            due_at: required_time(take("dueAt")?)?,
            delivery: parse_delivery(&delivery).ok_or_else(|| corrupt(format!("bad delivery {delivery:?}")))?,
            attempts: take("attempts")
                .ok()
                .map(|raw| raw.parse().map_err(|_| corrupt(format!("bad attempts {raw:?}"))))
                .transpose()?
                .unwrap_or(0),
            request_id: take("id").ok(),
            decided_at: take("decidedAt").ok().and_then(|raw| parse_millis(&raw)),
            next_attempt_at: take("nextAttemptAt").ok().and_then(|raw| parse_millis(&raw)),
            delivered_at: take("deliveredAt").ok().and_then(|raw| parse_millis(&raw)),
            last_error: take("lastError").ok().filter(|error| !error.is_empty()),
            retry_base: take("retryBase").ok().and_then(|raw| raw.parse().ok()).unwrap_or(0),
            log: Vec::new(),
            endpoint: take("endpoint").ok(),
            lease: take("lease").ok(),
            chaos: take("chaos").ok(),
            chaos_reorder: take("chaosReorder").is_ok_and(|flag| flag == "1"),
            event,
            document_id: document_id.clone(),
        };
        if let Some(event) = &mut record.event {
            event.job_id = format!("{EVENT_JOB_MARK}{}", record.webhook_id);
        }
        Ok(record.decided_if_due(verdict))
    }

    /// The agent's decision, drawn when the case was accepted, is in force
    /// from its due time on: for a case without a callback (never claimed),
    /// and for one whose callback is not claimed yet (a backlog, a paused
    /// endpoint, an open breaker). The help desk answers `GET
    /// /document/{id}` with it, so a client's reconciler is not kept waiting
    /// on the delivery it is there to replace.
    fn decided_if_due(mut self, verdict: Option<DocumentStatus>) -> Self {
        if self.event.is_none()
            && self.status == DocumentStatus::PendingReview
            && self.due_at <= Utc::now()
            && let Some(verdict) = verdict.filter(|v| v.is_decided())
        {
            self.status = verdict;
            self.decided_at = Some(self.due_at);
        }
        self
    }

    /// The id of its job: the documentId for a case's callback, `~` and the
    /// webhook-id for an event.
    pub fn job_id(&self) -> &str {
        self.event.as_ref().map_or(&self.document_id, |event| &event.job_id)
    }

    /// The public view of `GET /document/{documentId}`.
    pub fn to_view(&self) -> CaseView {
        CaseView {
            document_id: self.document_id.clone(),
            agent_id: self.agent_id.clone(),
            document_url: self.document_url.clone(),
            callback_url: Some(self.callback_url.clone()).filter(|url| !url.is_empty()),
            event: self.event.as_ref().map(|event| event.event_type),
            subscription_id: self.event.as_ref().map(|event| event.subscription_id.clone()),
            id: self.request_id.clone(),
            status: self.status,
            created_at: self.created_at,
            due_at: self.due_at,
            decided_at: self.decided_at,
            delivery: DeliveryView {
                state: self.delivery,
                webhook_id: self.webhook_id.clone(),
                attempts: self.attempts,
                next_attempt_at: self.next_attempt_at,
                delivered_at: self.delivered_at,
                last_error: self.last_error.clone(),
                log: self.log.clone(),
            },
            endpoint: None,
        }
    }

    /// The number of the next attempt within the current round (1-based),
    /// which picks the delay from `RETRY_SCHEDULE`.
    pub fn attempt_in_round(&self) -> u32 {
        self.attempts.saturating_sub(self.retry_base) + 1
    }
}

fn parse_millis(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(raw.parse().ok()?)
}

fn parse_delivery(raw: &str) -> Option<DeliveryState> {
    Some(match raw {
        "SCHEDULED" => DeliveryState::Scheduled,
        "IN_FLIGHT" => DeliveryState::InFlight,
        "DELIVERED" => DeliveryState::Delivered,
        "DEAD" => DeliveryState::Dead,
        "NO_CALLBACK" => DeliveryState::NoCallback,
        _ => return None,
    })
}

/// A job a worker now holds: the case as claimed, the endpoint it goes to,
/// and the lease token that proves the claim when finishing.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub case: CaseRecord,
    pub endpoint: Endpoint,
    lease: String,
    /// The partition it was claimed from (where its finish goes).
    partition: usize,
}

/// The result of one claim: the jobs, and when the next job may be claimed
/// (or the next lease expire), for the worker to sleep until then (by this
/// process's clock: the queue's answer is a delay, so the clocks need not agree).
#[derive(Debug)]
pub struct Claim {
    pub jobs: Vec<ClaimedJob>,
    pub next_wake: Option<DateTime<Utc>>,
}

/// How one delivery attempt ended, as the worker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Delivered,
    /// Try again this long from now (by the queue's clock).
    Retry {
        after: Duration,
        error: String,
    },
    Dead {
        error: String,
    },
}

/// What an attempt tells about its endpoint's health, for the circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// It answered as a receiver should (a 2xx, or `410 Gone`).
    Up,
    /// It failed: no connection, a timeout, an error status.
    Down,
    /// Nothing either way: nothing was sent (the callback policy refused),
    /// or it asked for a pause (`Retry-After`), which is honoured instead.
    Unknown,
}

/// What a finished attempt does to its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointSignal {
    pub health: Health,
    /// Hold every job of the endpoint this long from now (`Retry-After` on a
    /// 429 or 503).
    pub pause: Option<Duration>,
}

/// What one [`Queue::trim`] forgot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trimmed {
    pub cases: u64,
    pub endpoints: u64,
}

/// What recording an outcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The job's lease had passed to another worker: nothing changed.
    Stale,
    Recorded,
    /// Recorded, and the endpoint's circuit breaker opened (or reopened).
    BreakerOpened,
    /// Recorded, and the endpoint's circuit breaker closed.
    BreakerClosed,
}

impl Recorded {
    pub fn applied(self) -> bool {
        self != Self::Stale
    }
}

/// What `redeliver` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivery {
    Scheduled,
    NoSuchCase,
    /// A worker holds the job right now.
    InFlight,
    /// The agent has not decided yet: there is nothing to deliver.
    Undecided,
    /// The case was created without a callback: nothing of its own to deliver.
    NoCallback,
}

/// Jobs per state, and the due ones that the endpoints' limits hold back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    pub due: u64,
    pub inflight: u64,
    pub dead: u64,
    /// Due now, held by a `Retry-After` pause.
    pub paused: u64,
    /// Due now, held by an open circuit breaker.
    pub circuit_open: u64,
    /// Due now, held by the rate limit.
    pub throttled: u64,
    /// Due now, held because every slot of the endpoint is taken.
    pub saturated: u64,
    /// Endpoints whose breaker is open, or probing.
    pub endpoints_open: u64,
    pub endpoints_probing: u64,
}

#[derive(Debug)]
struct Scripts {
    schedule: Script,
    claim: Script,
    trim: Script,
    finish: Script,
    redeliver: Script,
    set_rate: Script,
    migrate: Script,
    depth: Script,
    test_event: Script,
    sub_update: Script,
}

impl Scripts {
    fn new() -> Self {
        let script = |body: &str| Script::new(&format!("{COMMON}\n{body}"));
        Self {
            schedule: script(include_str!("queue/schedule.lua")),
            claim: script(include_str!("queue/claim.lua")),
            trim: script(include_str!("queue/trim.lua")),
            finish: script(include_str!("queue/finish.lua")),
            redeliver: script(include_str!("queue/redeliver.lua")),
            set_rate: script(include_str!("queue/set_rate.lua")),
            migrate: script(include_str!("queue/migrate.lua")),
            depth: script(include_str!("queue/depth.lua")),
            test_event: script(include_str!("queue/test_event.lua")),
            sub_update: script(include_str!("queue/sub_update.lua")),
        }
    }
}

/// Whose clock the queue's scripts read (see the `common.lua` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Redis's own (`TIME`): one clock for every process. The default.
    Redis,
    /// Always this time: for tests that step through time without sleeping.
    At(DateTime<Utc>),
}

/// How long finished cases are kept unless set otherwise (`CASE_RETENTION`).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// One partition of the queue: every key under one hash tag, so each
/// script is atomic on one Redis (or one cluster slot). [`Queue`] spreads
/// cases over one or more of them.
#[derive(Clone)]
pub struct Partition {
    conn: RedisConnection,
    durability: Durability,
    keys: Keys,
    limits: EndpointLimits,
    retention: Duration,
    clock: Clock,
    scripts: std::sync::Arc<Scripts>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("keys", &self.keys)
            .field("limits", &self.limits)
            .field("retention", &self.retention)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Partition {
    /// The partition whose keys start with `{tag}`, with `limits` as its
    /// share of each endpoint's; moves jobs stored by a help desk from
    /// before per-endpoint queues into them.
    async fn open(
        conn: RedisConnection,
        number: usize,
        tag: &str,
        limits: EndpointLimits,
        scripts: std::sync::Arc<Scripts>,
    ) -> Result<Self, QueueError> {
        let partition = Self {
            conn,
            durability: Durability::default(),
            keys: Keys::new(tag),
            limits,
            retention: DEFAULT_RETENTION,
            clock: Clock::Redis,
            scripts,
        };
        let mut conn = partition.conn.clone();
        let _: () = conn.set(partition.keys.anchor(), number).await?;
        partition.migrate_legacy().await?;
        Ok(partition)
    }

    pub fn limits(&self) -> EndpointLimits {
        self.limits
    }

    /// How long finished cases are kept.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Answer a new case only once `min_replicas` replicas have it
    /// (`REDIS_MIN_REPLICAS`), waiting at most `timeout` for them.
    pub fn with_min_replicas(mut self, min_replicas: u32, timeout: Duration) -> Self {
        self.durability = Durability { min_replicas, timeout };
        self
    }

    /// The partition keeping finished cases (delivered or dead) for
    /// `retention` after they finished (`CASE_RETENTION`).
    pub fn with_retention(self, retention: Duration) -> Self {
        Self { retention, ..self }
    }

    /// The same queue with its clock stopped at `now`: every script reads
    /// that time instead of Redis's (tests step through time with it).
    pub fn at(&self, now: DateTime<Utc>) -> Self {
        Self {
            clock: Clock::At(now),
            ..self.clone()
        }
    }

    /// Now by this process's clock, or the stopped one.
    fn local_now(&self) -> DateTime<Utc> {
        match self.clock {
            Clock::Redis => Utc::now(),
            Clock::At(now) => now,
        }
    }

    /// An invocation of `script` with the arguments every script takes
    /// first: the time (empty: Redis's), the key tag and the default limits.
    fn invocation<'a>(&self, script: &'a Script) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        let now = match self.clock {
            Clock::Redis => String::new(),
            Clock::At(now) => now.timestamp_millis().to_string(),
        };
        invocation
            .key(self.keys.anchor())
            .arg(now)
            .arg(self.keys.tag())
            .arg(self.limits.concurrency)
            .arg(self.limits.rate.unwrap_or(0.0));
        invocation
    }

    /// Runs a script and, with `REDIS_MIN_REPLICAS`, waits in the same
    /// round trip (`WAIT`, pipelined behind it, so a cluster sends both to
    /// the master of their slot) until that many replicas have it.
    async fn invoke_replicated<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, QueueError> {
        let mut conn = self.conn.clone();
        if self.durability.min_replicas == 0 {
            return Ok(invocation.invoke_async(&mut conn).await?);
        }
        let mut pipe = redis::pipe();
        pipe.invoke_script(invocation)
            .cmd("WAIT")
            .arg(self.durability.min_replicas)
            .arg(millis(self.durability.timeout));
        // As in finish_many: a pipelined EVALSHA does not load its script.
        let (value, acknowledged): (T, u32) = match pipe.query_async(&mut conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                script.prepare_invoke().load_async(&mut conn).await?;
                pipe.query_async(&mut conn).await?
            }
            other => other?,
        };
        if acknowledged < self.durability.min_replicas {
            return Err(QueueError::NotReplicated {
                acknowledged,
                wanted: self.durability.min_replicas,
            });
        }
        Ok(value)
    }

    /// Is Redis answering?
    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Stores the case and its job atomically, unless a request with the
    /// same `request_id` was accepted before (see [`Scheduled`]). Once this
    /// returns `Created`, the review will be decided and delivered whatever
    /// happens to this process.
    pub async fn schedule(&self, case: &NewCase) -> Result<Scheduled, QueueError> {
        let endpoint = match &case.callback_url {
            Some(url) => Endpoint::of_str(url)
                .map_err(|e| QueueError::Corrupt {
                    document_id: case.document_id.clone(),
                    problem: e.to_string(),
                })?
                .to_string(),
            None => String::new(),
        };
        let request = case.request_id.as_deref().unwrap_or_default();
        let mut invocation = self.invocation(&self.scripts.schedule);
        invocation
            .key(self.keys.case(&case.document_id))
            .key(self.keys.request(request))
            .arg(&case.document_id)
            .arg(endpoint)
            .arg(millis(case.delay))
            .arg(request)
            .arg(&case.document_url)
            .arg(case.callback_url.as_deref().unwrap_or_default())
            .arg(&case.agent_id)
            .arg(&case.webhook_id)
            .arg(&case.tenant)
            .arg(case.verdict.map_or("", DocumentStatus::as_str))
            .arg(&case.event_prefix)
            .arg(millis(self.retention))
            .arg(case.chaos.as_deref().unwrap_or_default())
            .arg(if case.reorder { "1" } else { "" });
        let (outcome, document_id, agent_id, due_in, received, decided): (String, String, String, u64, u64, u64) =
            self.invoke_replicated(&self.scripts.schedule, &invocation).await?;
        Ok(match outcome.as_str() {
            "replayed" => Scheduled::Replayed { document_id, agent_id },
            "conflict" => Scheduled::Conflict { document_id },
            _ => Scheduled::Created {
                due_in: Duration::from_millis(due_in),
                received,
                decided,
            },
        })
    }

    /// One case with its attempt log, if it exists.
    pub async fn case(&self, document_id: &str) -> Result<Option<CaseRecord>, QueueError> {
        Ok(self.cases(&[document_id.to_owned()]).await?.pop().flatten())
    }

    /// Several cases with their attempt logs, in one round trip.
    pub async fn cases(&self, document_ids: &[String]) -> Result<Vec<Option<CaseRecord>>, QueueError> {
        if document_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in document_ids {
            pipe.hgetall(self.keys.job(id)).lrange(self.keys.attempts(id), 0, -1);
        }
        let mut conn = self.conn.clone();
        let flat: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        flat.chunks(2)
            .map(|pair| {
                let [hash, log] = pair else { return Ok(None) };
                let hash: HashMap<String, String> =
                    redis::from_redis_value(hash.clone()).map_err(redis::RedisError::from)?;
                if hash.is_empty() {
                    return Ok(None);
                }
                let log: Vec<String> = redis::from_redis_value(log.clone()).map_err(redis::RedisError::from)?;
                let mut case = CaseRecord::from_hash(hash)?;
                case.log = log
                    .iter()
                    .filter_map(|entry| serde_json::from_str(entry).ok())
                    .collect();
                Ok(Some(case))
            })
            .collect()
    }

    /// Sends a dead or delivered case again, now (see [`Redelivery`]).
    pub async fn redeliver(&self, document_id: &str) -> Result<Redelivery, QueueError> {
        let mut conn = self.conn.clone();
        let callback: Option<String> = redis::cmd("HGET")
            .arg(self.keys.job(document_id))
            .arg("callbackUrl")
            .query_async(&mut conn)
            .await?;
        let Some(callback) = callback else {
            return Ok(Redelivery::NoSuchCase);
        };
        if callback.is_empty() {
            return Ok(Redelivery::NoCallback);
        }
        let endpoint = Endpoint::of_str(&callback).map_err(|e| QueueError::Corrupt {
            document_id: document_id.to_owned(),
            problem: e.to_string(),
        })?;
        let result: String = self
            .invocation(&self.scripts.redeliver)
            .key(self.keys.job(document_id))
            .key(self.keys.inflight())
            .key(self.keys.dead())
            .arg(document_id)
            .arg(endpoint.as_str())
            .invoke_async(&mut conn)
            .await?;
        Ok(match result.as_str() {
            "scheduled" => Redelivery::Scheduled,
            "in_flight" => Redelivery::InFlight,
            "undecided" => Redelivery::Undecided,
            _ => Redelivery::NoSuchCase,
        })
    }

    /// The members of the `limit` highest scores of the sorted set `key`
    /// with their scores, and its size.
    async fn newest(&self, key: &str, limit: usize) -> Result<(Vec<(String, f64)>, u64), QueueError> {
        let mut conn = self.conn.clone();
        let stop = isize::try_from(limit).unwrap_or(isize::MAX).saturating_sub(1);
        Ok(redis::pipe()
            .zrevrange_withscores(key, 0, stop)
            .zcard(key)
            .query_async(&mut conn)
            .await?)
    }

    /// Claims up to `decisions.len()` jobs that are due, in the order of the
    /// endpoints' line and within their limits and the worker's `allowance`,
    /// holding them for `lease` (jobs whose lease ran out go back to their
    /// queues first). `decisions[i]` is the agent's verdict for the i-th job
    /// should its case still be undecided.
    pub async fn claim(
        &self,
        lease: Duration,
        lease_token: &str,
        decisions: &[DocumentStatus],
        allowance: &Allowance,
    ) -> Result<Claim, QueueError> {
        let verdicts: String = decisions
            .iter()
            .map(|d| if *d == DocumentStatus::Accepted { 'A' } else { 'D' })
            .collect();
        let in_flight: String = allowance
            .in_flight
            .iter()
            .map(|(endpoint, count)| format!("{endpoint}\t{count}\n"))
            .collect();
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let mut conn = self.conn.clone();
        let (hashes, wake_in): (Vec<HashMap<String, String>>, Option<u64>) = self
            .invocation(&self.scripts.claim)
            .key(self.keys.ready())
            .key(self.keys.inflight())
            .arg(lease_ms)
            .arg(decisions.len())
            .arg(lease_token)
            .arg(verdicts)
            .arg(allowance.per_endpoint)
            .arg(in_flight)
            .invoke_async(&mut conn)
            .await?;
        let mut jobs = Vec::with_capacity(hashes.len());
        for hash in hashes {
            let case = CaseRecord::from_hash(hash)?;
            let lease = case.lease.clone().unwrap_or_default();
            let endpoint = endpoint_of(&case)?;
            jobs.push(ClaimedJob {
                case,
                endpoint,
                lease,
                partition: 0,
            });
        }
        Ok(Claim {
            jobs,
            next_wake: wake_in.map(|ms| self.local_now() + chrono::Duration::milliseconds(ms as i64)),
        })
    }

    /// Records an attempt and how the job goes on (see [`finish_many`](Self::finish_many)).
    pub async fn finish(
        &self,
        job: &ClaimedJob,
        attempt: &AttemptView,
        outcome: &Finish,
        signal: EndpointSignal,
    ) -> Result<Recorded, QueueError> {
        let recorded = self
            .finish_many(&[(job, std::slice::from_ref(attempt), outcome, signal)])
            .await?;
        Ok(recorded.first().copied().unwrap_or(Recorded::Stale))
    }

    /// Records attempts and how their jobs go on, in one round trip: one
    /// `EVALSHA` of the finish script per job, pipelined. Each script runs
    /// atomically on its own, exactly as a lone `finish` would; only the
    /// network round trip (and its syscalls, on both sides) is shared. A job
    /// whose lease had already passed to another worker is [`Recorded::Stale`]
    /// and changes nothing. If the batch fails (Redis unreachable, or one
    /// script erring), the error is reported for all of it: the jobs whose
    /// script did run stay finished in Redis, the others are retried once
    /// their lease expires.
    ///
    /// Each job's entries of the attempt log come in order: the attempt,
    /// and the chaos faults sent around it (entries marked `chaos`).
    pub async fn finish_many(
        &self,
        items: &[(&ClaimedJob, &[AttemptView], &Finish, EndpointSignal)],
    ) -> Result<Vec<Recorded>, QueueError> {
        let cooldown = millis(self.limits.circuit_cooldown);
        let retention = millis(self.retention);
        let longest = millis(MAX_COOLDOWN.max(self.limits.circuit_cooldown));
        let mut pipe = redis::pipe();
        for (job, log, outcome, signal) in items {
            let mut entries = log.iter().map(|entry| serde_json::to_string(entry).unwrap_or_default());
            let first = entries.next().unwrap_or_default();
            let attempt_error = log
                .iter()
                .find(|entry| entry.chaos.is_none())
                .and_then(|attempt| attempt.error.as_deref());
            let (kind, next_at, error) = match outcome {
                Finish::Delivered => ("delivered", 0, attempt_error.unwrap_or_default()),
                Finish::Retry { after, error } => ("retry", millis(*after), error.as_str()),
                Finish::Dead { error } => ("dead", 0, error.as_str()),
            };
            let health = match signal.health {
                Health::Up => "up",
                Health::Down => "down",
                Health::Unknown => "unknown",
            };
            let id = job.case.job_id();
            let mut invocation = self.invocation(&self.scripts.finish);
            invocation
                .key(self.keys.job(id))
                .key(self.keys.inflight())
                .key(self.keys.dead())
                .key(self.keys.attempts(id))
                .arg(id)
                .arg(&job.lease)
                .arg(kind)
                .arg(next_at)
                .arg(error)
                .arg(first)
                .arg(health)
                .arg(signal.pause.map_or(0, millis))
                .arg(self.limits.circuit_failures.max(1))
                .arg(cooldown)
                .arg(longest)
                .arg(job.endpoint.as_str())
                .arg(retention);
            for entry in entries {
                invocation.arg(entry);
            }
            pipe.invoke_script(&invocation);
        }
        let mut conn = self.conn.clone();
        // A pipelined EVALSHA does not load its script by itself: on a Redis
        // that does not know it yet (first use, restart, SCRIPT FLUSH), load
        // it and send the batch again. NOSCRIPT means no script of the batch ran.
        let results: Vec<i64> = match pipe.query_async(&mut conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.scripts.finish.prepare_invoke().load_async(&mut conn).await?;
                pipe.query_async(&mut conn).await?
            }
            other => other?,
        };
        Ok(results
            .into_iter()
            .map(|result| match result {
                0 => Recorded::Stale,
                2 => Recorded::BreakerOpened,
                3 => Recorded::BreakerClosed,
                _ => Recorded::Recorded,
            })
            .collect())
    }

    /// The chaos faults injected so far, by fault: `(answer class or
    /// "unexpected", count)` pairs, as the finish script tallies them.
    pub async fn chaos_counts(&self) -> Result<Vec<FaultCount>, QueueError> {
        let mut conn = self.conn.clone();
        let tally: HashMap<String, u64> = conn.hgetall(self.keys.chaos()).await?;
        let mut faults: Vec<FaultCount> = Vec::new();
        for (field, count) in tally {
            let Some((fault, answer)) = field.split_once(':') else {
                continue;
            };
            let Ok(fault) = fault.parse::<Fault>() else { continue };
            let row = match faults.iter_mut().find(|row| row.fault == fault) {
                Some(row) => row,
                None => {
                    faults.push(FaultCount {
                        fault,
                        injected: 0,
                        answers: Default::default(),
                        unexpected: 0,
                    });
                    faults.last_mut().unwrap_or_else(|| unreachable!("just pushed"))
                }
            };
            if answer == "unexpected" {
                row.unexpected += count;
            } else {
                row.injected += count;
                row.answers.insert(answer.to_owned(), count);
            }
        }
        faults.sort_by_key(|row| row.fault);
        Ok(faults)
    }

    /// Forgets up to `max` finished cases whose retention is over, and up
    /// to `max` endpoints idle as long (see `queue/trim.lua`).
    pub async fn trim(&self, max: usize) -> Result<Trimmed, QueueError> {
        let mut conn = self.conn.clone();
        let (cases, endpoints): (u64, u64) = self
            .invocation(&self.scripts.trim)
            .key(self.keys.expiring())
            .key(self.keys.cases())
            .key(self.keys.dead())
            .key(self.keys.endpoints())
            .key(self.keys.ready())
            .arg(max)
            .arg(millis(self.retention))
            .invoke_async(&mut conn)
            .await?;
        Ok(Trimmed { cases, endpoints })
    }

    /// Jobs per state, and the due ones held back by the endpoints' limits
    /// (reads every endpoint: for `/metrics`, not for a hot path).
    pub async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let mut conn = self.conn.clone();
        let counts: Vec<u64> = self
            .invocation(&self.scripts.depth)
            .key(self.keys.inflight())
            .key(self.keys.dead())
            .invoke_async(&mut conn)
            .await?;
        let count = |i: usize| counts.get(i).copied().unwrap_or(0);
        Ok(QueueDepth {
            due: count(0),
            inflight: count(1),
            dead: count(2),
            paused: count(3),
            circuit_open: count(4),
            throttled: count(5),
            saturated: count(6),
            endpoints_open: count(7),
            endpoints_probing: count(8),
        })
    }

    /// Sets an endpoint's own rate limit here (`None`: back to the default).
    async fn set_rate(&self, endpoint: &Endpoint, rate: Option<f64>) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        self.invocation(&self.scripts.set_rate)
            .key(self.keys.endpoint(endpoint))
            .arg(endpoint.as_str())
            .arg(rate.map(|rate| rate.to_string()).unwrap_or_default())
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }

    async fn endpoint_views(&self, endpoints: &[Endpoint]) -> Result<Vec<EndpointView>, QueueError> {
        if endpoints.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for endpoint in endpoints {
            pipe.hgetall(self.keys.endpoint(endpoint))
                .zcard(self.keys.due(endpoint))
                .zscore(self.keys.ready(), endpoint.as_str());
        }
        let mut conn = self.conn.clone();
        let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        let mut views = Vec::with_capacity(endpoints.len());
        for (endpoint, reply) in endpoints.iter().zip(replies.chunks(3)) {
            let [hash, due, ready] = reply else { continue };
            let hash: HashMap<String, String> =
                redis::from_redis_value(hash.clone()).map_err(redis::RedisError::from)?;
            let due: u64 = redis::from_redis_value(due.clone()).map_err(redis::RedisError::from)?;
            let ready: Option<f64> = redis::from_redis_value(ready.clone()).map_err(redis::RedisError::from)?;
            views.push(self.endpoint_view(endpoint, hash, due, ready));
        }
        Ok(views)
    }

    fn endpoint_view(
        &self,
        endpoint: &Endpoint,
        hash: HashMap<String, String>,
        due: u64,
        ready: Option<f64>,
    ) -> EndpointView {
        let field = |name: &str| hash.get(name).map(String::as_str);
        let number = |name: &str| field(name).and_then(|raw| raw.parse::<f64>().ok());
        let time = |name: &str| {
            number(name)
                .filter(|ms| ms.is_finite())
                .and_then(|ms| DateTime::from_timestamp_millis(ms as i64))
        };
        let own_rate = number("rate").filter(|rate| *rate > 0.0);
        let breaker = match field("breaker") {
            Some("open") => BreakerState::Open,
            Some("probing") => BreakerState::Probing,
            _ => BreakerState::Closed,
        };
        let now = Utc::now();
        EndpointView {
            endpoint: endpoint.to_string(),
            in_flight: number("inFlight").map_or(0, |n| n.max(0.0) as u32),
            due,
            concurrency: self.limits.concurrency,
            rate: own_rate.or(self.limits.rate),
            rate_overridden: own_rate.is_some(),
            breaker,
            consecutive_failures: number("failures").map_or(0, |n| n.max(0.0) as u32),
            open_until: time("openUntil").filter(|_| breaker == BreakerState::Open),
            paused_until: time("pausedUntil").filter(|at| *at > now),
            last_error: field("lastError").map(str::to_owned),
            last_error_at: time("lastErrorAt"),
            next_attempt_at: ready.and_then(|ms| DateTime::from_timestamp_millis(ms as i64)),
        }
    }

    /// Moves the jobs of the layout before per-endpoint queues (one
    /// `{p}:due`) into their endpoints' queues, and gives cases in flight
    /// their endpoint; does nothing on data of this layout.
    async fn migrate_legacy(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let legacy = self.keys.legacy_due();
        let kind: String = redis::cmd("TYPE").arg(&legacy).query_async(&mut conn).await?;
        let mut moved = 0;
        if kind == "zset" {
            loop {
                let ids: Vec<String> = redis::cmd("ZRANGE")
                    .arg(&legacy)
                    .arg(0)
                    .arg(MIGRATION_BATCH - 1)
                    .query_async(&mut conn)
                    .await?;
                if ids.is_empty() {
                    break;
                }
                moved += self.migrate_batch(&ids).await?;
            }
        }
        // In flight under the old layout: the case needs its endpoint, and the
        // endpoint must count the slot its finish will free.
        let in_flight: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.inflight())
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        for chunk in in_flight.chunks(usize::try_from(MIGRATION_BATCH).unwrap_or(1000)) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.hget(self.keys.case(id), "endpoint");
            }
            let endpoints: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
            let missing: Vec<String> = chunk
                .iter()
                .zip(endpoints)
                .filter(|(_, endpoint)| endpoint.is_none())
                .map(|(id, _)| id.clone())
                .collect();
            if !missing.is_empty() {
                moved += self.migrate_batch(&missing).await?;
            }
        }
        if moved > 0 {
            tracing::info!(
                jobs = moved,
                "moved jobs into per-endpoint queues (stored by an older help desk)"
            );
        }
        Ok(())
    }

    /// Gives each case its endpoint and moves it out of the legacy due set.
    async fn migrate_batch(&self, ids: &[String]) -> Result<usize, QueueError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hget(self.keys.case(id), "callbackUrl");
        }
        let callbacks: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        let mut invocation = self.invocation(&self.scripts.migrate);
        invocation.key(self.keys.legacy_due()).key(self.keys.inflight());
        for (id, callback) in ids.iter().zip(callbacks) {
            // A case that is gone, or whose callback no longer parses, still
            // leaves the old set (its job could never be delivered anyway).
            let endpoint = callback
                .and_then(|url| Endpoint::of_str(&url).ok())
                .map_or_else(|| "http://invalid:0".to_owned(), |e| e.to_string());
            invocation.arg(id).arg(endpoint);
        }
        invocation.invoke_async::<i64>(&mut conn).await?;
        Ok(ids.len())
    }
}

/// The endpoint a claimed case goes to: the one stored with it.
fn endpoint_of(case: &CaseRecord) -> Result<Endpoint, QueueError> {
    let stored = case.endpoint.as_deref().unwrap_or_default();
    stored
        .parse()
        .map_err(|e: crate::endpoint::EndpointError| QueueError::Corrupt {
            document_id: case.document_id.clone(),
            problem: format!("bad endpoint {stored:?}: {e}"),
        })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
