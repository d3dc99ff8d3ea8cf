//! A job's life after it is scheduled: claimed with a lease
//! (`jobs/claim.lua`), finished with its outcome (`jobs/finish.lua`),
//! redelivered on request (`jobs/redeliver.lua`). "Jobs" and "Guarantee" in
//! `docs/store.md` say what each does and why the lease makes delivery
//! at-least-once.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use hookline_contract::{AttemptView, DocumentStatus};
use redis::Script;

use super::cases::CaseRecord;
use super::disable::{Disabled, Finished};
use super::keys::Scope;
use super::limits::MAX_COOLDOWN;
use super::partition::{Partition, script};
use super::{Store, StoreError, millis};
use crate::endpoint::Endpoint;

static CLAIM: LazyLock<Script> = LazyLock::new(|| script(include_str!("jobs/claim.lua")));
static FINISH: LazyLock<Script> = LazyLock::new(|| script(include_str!("jobs/finish.lua")));
static REDELIVER: LazyLock<Script> = LazyLock::new(|| script(include_str!("jobs/redeliver.lua")));

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
/// process's clock: the store's answer is a delay, so the clocks need not agree).
#[derive(Debug)]
pub struct Claim {
    pub jobs: Vec<ClaimedJob>,
    pub next_wake: Option<DateTime<Utc>>,
}

/// How one delivery attempt ended, as the worker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Delivered,
    /// Try again this long from now (by the store's clock).
    Retry {
        after: Duration,
        error: String,
    },
    Dead {
        error: String,
    },
    /// Dead because the receiver answered `410 Gone`: an event's
    /// subscription is disabled at once (a case's callback is only dead).
    Gone {
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

impl Partition {
    /// Sends a dead or delivered case of `scope` again, now (see [`Redelivery`]).
    pub(super) async fn redeliver(&self, scope: Scope<'_>, document_id: &str) -> Result<Redelivery, StoreError> {
        let mut conn = self.conn.clone();
        let (callback, tenant): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.job(document_id))
            .arg("callbackUrl")
            .arg("tenant")
            .query_async(&mut conn)
            .await?;
        let tenant = tenant.unwrap_or_else(|| hookline_kit::auth::DEFAULT_TENANT.to_owned());
        // A job's tenant never changes: checking it before the script is as good as in it.
        let Some(callback) = callback.filter(|_| scope.sees(&tenant)) else {
            return Ok(Redelivery::NoSuchCase);
        };
        if callback.is_empty() {
            return Ok(Redelivery::NoCallback);
        }
        let endpoint = Endpoint::of_str(&callback).map_err(|e| StoreError::Corrupt {
            document_id: document_id.to_owned(),
            problem: e.to_string(),
        })?;
        let result: String = self
            .invocation(&REDELIVER)
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

    /// Claims up to `decisions.len()` jobs that are due, in the order of the
    /// endpoints' line and within their limits and the worker's `allowance`,
    /// holding them for `lease` (jobs whose lease ran out go back to their
    /// queues first). `decisions[i]` is the agent's verdict for the i-th job
    /// should its case still be undecided.
    pub(super) async fn claim(
        &self,
        lease: Duration,
        lease_token: &str,
        decisions: &[DocumentStatus],
        allowance: &Allowance,
    ) -> Result<Claim, StoreError> {
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
            .invocation(&CLAIM)
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

    /// Records attempts and how their jobs go on: one call of the finish
    /// script for the whole batch, atomic as a whole, which reads and
    /// writes each endpoint of the batch once. A job whose lease had
    /// already passed to another worker is [`Recorded::Stale`] and changes
    /// nothing. If the call fails (Redis unreachable, or the script erring),
    /// the error is reported for all of it: the jobs it had recorded stay
    /// finished in Redis, the others are retried once their lease expires.
    ///
    /// Each job's entries of the attempt log come in order: the attempt,
    /// and the chaos faults sent around it (entries marked `chaos`).
    pub(super) async fn finish_many(
        &self,
        items: &[(&ClaimedJob, &[AttemptView], &Finish, EndpointSignal)],
    ) -> Result<Finished, StoreError> {
        let longest = millis(MAX_COOLDOWN.max(self.limits.circuit_cooldown));
        let mut invocation = self.invocation(&FINISH);
        invocation
            .key(self.keys.inflight())
            .key(self.keys.dead())
            .arg(self.limits.circuit_failures.max(1))
            .arg(millis(self.limits.circuit_cooldown))
            .arg(longest)
            .arg(millis(self.retention))
            .arg(millis(self.disable.after))
            .arg(self.disable.dead_in_row.max(1));
        for (job, log, outcome, signal) in items {
            let attempt = log.iter().find(|entry| entry.chaos.is_none());
            let attempt_error = attempt.and_then(|attempt| attempt.error.as_deref());
            let (kind, next_in, error) = match outcome {
                Finish::Delivered => ("delivered", 0, attempt_error.unwrap_or_default()),
                Finish::Retry { after, error } => ("retry", millis(*after), error.as_str()),
                Finish::Dead { error } => ("dead", 0, error.as_str()),
                Finish::Gone { error } => ("gone", 0, error.as_str()),
            };
            let health = match signal.health {
                Health::Up => "up",
                Health::Down => "down",
                Health::Unknown => "unknown",
            };
            invocation
                .arg(job.case.job_id())
                .arg(&job.lease)
                .arg(kind)
                .arg(next_in)
                .arg(error)
                .arg(health)
                .arg(signal.pause.map_or(0, millis))
                .arg(attempt.map_or(0, |attempt| attempt.duration_ms))
                .arg(job.endpoint.as_str())
                .arg(log.len());
            for entry in log.iter() {
                invocation.arg(serde_json::to_string(entry).unwrap_or_default());
            }
        }
        let mut conn = self.conn.clone();
        let (results, disabled, queued): (Vec<i64>, Vec<String>, Vec<String>) =
            invocation.invoke_async(&mut conn).await?;
        let recorded = results
            .into_iter()
            .map(|result| match result {
                0 => Recorded::Stale,
                2 => Recorded::BreakerOpened,
                3 => Recorded::BreakerClosed,
                _ => Recorded::Recorded,
            })
            .collect();
        Ok(Finished {
            recorded,
            disabled: Disabled::from_script(&disabled),
            queued: Finished::queued_from_script(&queued),
        })
    }
}

impl Store {
    /// Sends a dead or delivered case (or event), whoever's, again, now
    /// (see [`Redelivery`]).
    pub async fn redeliver(&self, id: &str) -> Result<Redelivery, StoreError> {
        self.redeliver_in(Scope::All, id).await
    }

    /// Sends a dead or delivered case (or event) of `scope` again, now
    /// (see [`Redelivery`]); another tenant's is [`Redelivery::NoSuchCase`].
    pub async fn redeliver_in(&self, scope: Scope<'_>, id: &str) -> Result<Redelivery, StoreError> {
        self.part_of_job(id).await?.redeliver(scope, id).await
    }

    /// Claims up to `decisions.len()` due jobs (see `Partition::claim`),
    /// from the partitions in turn: each claim starts at the next one and
    /// goes on to the others while it has room.
    pub async fn claim(
        &self,
        lease: Duration,
        lease_token: &str,
        decisions: &[DocumentStatus],
        allowance: &Allowance,
    ) -> Result<Claim, StoreError> {
        let n = self.parts.len();
        let start = self.turn.fetch_add(1, Ordering::Relaxed) % n;
        let mut claim = Claim {
            jobs: Vec::new(),
            next_wake: None,
        };
        for k in (start..n).chain(0..start) {
            let room = decisions.len() - claim.jobs.len();
            if room == 0 {
                break;
            }
            let got = self.parts[k]
                .claim(lease, lease_token, &decisions[claim.jobs.len()..], allowance)
                .await?;
            claim
                .jobs
                .extend(got.jobs.into_iter().map(|job| ClaimedJob { partition: k, ..job }));
            claim.next_wake = match (claim.next_wake, got.next_wake) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(claim)
    }

    /// Records an attempt and how the job goes on (see [`finish_many`](Self::finish_many)).
    pub async fn finish(
        &self,
        job: &ClaimedJob,
        attempt: &AttemptView,
        outcome: &Finish,
        signal: EndpointSignal,
    ) -> Result<Recorded, StoreError> {
        let recorded = self
            .finish_many(&[(job, std::slice::from_ref(attempt), outcome, signal)])
            .await?;
        Ok(recorded.first().copied().unwrap_or(Recorded::Stale))
    }

    /// Records attempts (see `Partition::finish_many`): one round trip
    /// per partition the jobs came from.
    pub async fn finish_many(
        &self,
        items: &[(&ClaimedJob, &[AttemptView], &Finish, EndpointSignal)],
    ) -> Result<Vec<Recorded>, StoreError> {
        Ok(self.finish_batch(items).await?.recorded)
    }

    /// Records attempts as [`finish_many`](Self::finish_many) does, and
    /// says which subscriptions they disabled: those are disabled in every
    /// partition's copy before this returns (a round trip more per other
    /// partition, only when one was).
    pub async fn finish_batch(
        &self,
        items: &[(&ClaimedJob, &[AttemptView], &Finish, EndpointSignal)],
    ) -> Result<Finished, StoreError> {
        let mut finished = self.record_batch(items).await?;
        if !finished.disabled.is_empty() && self.parts.len() > 1 {
            self.copy_disablements(&mut finished).await?;
        }
        Ok(finished)
    }

    async fn record_batch(
        &self,
        items: &[(&ClaimedJob, &[AttemptView], &Finish, EndpointSignal)],
    ) -> Result<Finished, StoreError> {
        if self.parts.len() == 1 {
            return self.parts[0].finish_many(items).await;
        }
        let mut by_part: Vec<Vec<usize>> = vec![Vec::new(); self.parts.len()];
        for (i, item) in items.iter().enumerate() {
            by_part[item.0.partition].push(i);
        }
        let done = try_join_all(
            by_part
                .iter()
                .enumerate()
                .filter(|(_, at)| !at.is_empty())
                .map(|(k, at)| {
                    let mine: Vec<_> = at.iter().map(|&i| items[i]).collect();
                    async move {
                        let mut finished = self.parts[k].finish_many(&mine).await?;
                        for disabled in &mut finished.disabled {
                            disabled.partition = k;
                        }
                        Ok::<_, StoreError>((at, finished))
                    }
                }),
        )
        .await?;
        let mut finished = Finished {
            recorded: vec![Recorded::Stale; items.len()],
            disabled: Vec::new(),
            queued: Vec::new(),
        };
        for (at, results) in done {
            for (&i, result) in at.iter().zip(results.recorded) {
                finished.recorded[i] = result;
            }
            finished.disabled.extend(results.disabled);
            finished.queued.extend(results.queued);
        }
        Ok(finished)
    }
}

/// The endpoint a claimed case goes to: the one stored with it.
fn endpoint_of(case: &CaseRecord) -> Result<Endpoint, StoreError> {
    let stored = case.endpoint.as_deref().unwrap_or_default();
    stored
        .parse()
        .map_err(|e: crate::endpoint::EndpointError| StoreError::Corrupt {
            document_id: case.document_id.clone(),
            problem: format!("bad endpoint {stored:?}: {e}"),
        })
}
