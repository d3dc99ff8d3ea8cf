//! The queue spread over partitions (`REDIS_PARTITIONS`).
//!
//! # Design
//!
//! A [`Partition`] is the whole queue of the module above under one hash
//! tag: its cases, jobs, endpoints' limits and ready line, every script
//! atomic inside it. With one partition (the default) the tag is
//! `{prefix}`, exactly the layout of a help desk before partitions; with
//! `N` they are `{prefix:0}` … `{prefix:N-1}`, which Redis Cluster places in
//! N slots, so on a cluster the queue's keys and work spread over the
//! masters instead of living on one.
//!
//! * **Which partition**: a case lives in the partition its `documentId`
//!   hashes to ([`partition_of`]), so `GET /document/{id}` asks one
//!   partition. The help desk draws the (random) documentId; a request that
//!   carries an `id` gets one that hashes where the `id` does
//!   ([`Queue::new_document_id`]), so a retry of it meets its `request:<id>`
//!   record in the same partition and stays idempotent. A case's events are
//!   queued with it, in its partition, in the same script.
//! * **Endpoint limits** are shared out: each partition lets an endpoint
//!   have its share of `ENDPOINT_CONCURRENCY` in flight (the shares add up to
//!   the whole, at least one each) and send at `ENDPOINT_RATE / N`; its
//!   circuit breaker and `Retry-After` pauses are per partition, each
//!   learning from the attempts it made. Exact limits over all partitions
//!   would need every endpoint's state in one slot — the one-slot bottleneck
//!   partitions are there to remove. Since documentIds are random, an
//!   endpoint's jobs spread evenly and so does its share.
//! * **Workers** claim from every partition, starting each claim at the
//!   next one in turn, so a backlog in one partition cannot starve another;
//!   any number of workers claim from the same partitions and each claim is
//!   atomic in its partition, so no job is handed out twice.
//! * **Subscriptions** are written to every partition (partition 0 last: it
//!   is the one read, so a change is visible once it is everywhere), since
//!   each partition's scheduling script reads them; their delivery counts
//!   are kept where the deliveries happen and summed when read.
//! * **Listings** (cases, dead letters, endpoints, depth, chaos) merge the
//!   partitions.
//!
//! Changing `REDIS_PARTITIONS` moves cases to other partitions, so the help
//! desk refuses to start with a count other than the one its queue was made
//! with while that queue still holds cases (see [`Queue::connect_partitioned`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use hookline_contract::chaos::FaultCount;
use hookline_contract::{AttemptView, BreakerState, DocumentStatus, EndpointView};
use redis::AsyncCommands;

use super::{
    Allowance, CaseRecord, Claim, ClaimedJob, EVENT_JOB_MARK, EndpointLimits, EndpointSignal, Finish, Keys, NewCase,
    NewSubscriptionRecord, Partition, QueueDepth, QueueError, Recorded, Redelivery, RedisConnection, Scheduled,
    Scripts, SubscriptionChange, SubscriptionRecord, Trimmed,
};
use crate::endpoint::Endpoint;

/// The most partitions a queue may have.
pub const MAX_PARTITIONS: usize = 1024;

/// The partition of `id` among `partitions`: FNV-1a of its bytes, modulo.
/// Stable across processes and versions: it decides where a case is stored.
pub fn partition_of(id: &str, partitions: usize) -> usize {
    if partitions <= 1 {
        return 0;
    }
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % partitions as u64) as usize
}

/// A handle on the queue; cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct Queue {
    parts: Arc<[Partition]>,
    /// The limits of an endpoint over all partitions.
    limits: EndpointLimits,
    /// Where the next claim starts.
    turn: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("partitions", &self.parts.len())
            .field("first", &self.parts.first())
            .finish()
    }
}

impl Queue {
    /// Connects (reconnecting by itself later) to `redis_url` — a Redis
    /// Cluster when it lists several nodes, comma-separated
    /// ([`RedisConnection`]) — with one partition, the layout of every help
    /// desk before `REDIS_PARTITIONS`.
    pub async fn connect(redis_url: &str, prefix: &str, limits: EndpointLimits) -> Result<Self, QueueError> {
        Self::connect_partitioned(redis_url, prefix, 1, limits).await
    }

    /// Connects with `partitions` partitions. Refuses (`QueueError::Layout`)
    /// when the prefix's queue was made with another count and still holds
    /// cases: they would be looked for in the wrong partitions.
    pub async fn connect_partitioned(
        redis_url: &str,
        prefix: &str,
        partitions: usize,
        limits: EndpointLimits,
    ) -> Result<Self, QueueError> {
        let partitions = partitions.clamp(1, MAX_PARTITIONS);
        let conn = RedisConnection::connect(redis_url).await?;
        check_layout(&conn, prefix, partitions).await?;
        let scripts = Arc::new(Scripts::new());
        let mut parts = Vec::with_capacity(partitions);
        for k in 0..partitions {
            let share = EndpointLimits {
                concurrency: share_of(limits.concurrency, k, partitions),
                rate: limits.rate.map(|rate| rate / partitions as f64),
                ..limits
            };
            parts.push(
                Partition::open(
                    conn.clone(),
                    k,
                    &partition_tag(prefix, k, partitions),
                    share,
                    scripts.clone(),
                )
                .await?,
            );
        }
        Ok(Self {
            parts: parts.into(),
            limits,
            turn: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn map(&self, change: impl Fn(&Partition) -> Partition) -> Self {
        Self {
            parts: self.parts.iter().map(change).collect(),
            ..self.clone()
        }
    }

    /// How many partitions the cases are spread over.
    pub fn partitions(&self) -> usize {
        self.parts.len()
    }

    /// An endpoint's limits over all partitions.
    pub fn limits(&self) -> EndpointLimits {
        self.limits
    }

    /// How long finished cases are kept.
    pub fn retention(&self) -> Duration {
        self.parts[0].retention()
    }

    /// Answer a new case only once `min_replicas` replicas have it
    /// (`REDIS_MIN_REPLICAS`), waiting at most `timeout` for them.
    pub fn with_min_replicas(self, min_replicas: u32, timeout: Duration) -> Self {
        self.map(|part| part.clone().with_min_replicas(min_replicas, timeout))
    }

    /// The queue keeping finished cases (delivered or dead) for `retention`
    /// after they finished (`CASE_RETENTION`).
    pub fn with_retention(self, retention: Duration) -> Self {
        self.map(|part| part.clone().with_retention(retention))
    }

    /// The same queue with its clock stopped at `now`: every script reads
    /// that time instead of Redis's (tests step through time with it).
    pub fn at(&self, now: DateTime<Utc>) -> Self {
        self.map(|part| part.at(now))
    }

    /// The partition of the job `id`: a documentId's, found by its hash; an
    /// event's (`~` and its webhook-id) by looking.
    async fn part_of_job(&self, id: &str) -> Result<&Partition, QueueError> {
        if self.parts.len() == 1 || !id.starts_with(EVENT_JOB_MARK) {
            return Ok(&self.parts[partition_of(id, self.parts.len())]);
        }
        for part in self.parts.iter() {
            if part.case(id).await?.is_some() {
                return Ok(part);
            }
        }
        Ok(&self.parts[0])
    }

    /// A new documentId: random, and in the partition of the request's `id`
    /// if it has one (so a retry of the request finds its case).
    pub fn new_document_id(&self, request_id: Option<&str>) -> String {
        let n = self.parts.len();
        let Some(request) = request_id.filter(|_| n > 1) else {
            return uuid::Uuid::new_v4().to_string();
        };
        let wanted = partition_of(request, n);
        loop {
            // n tries on average; never many (the hash is uniform).
            let id = uuid::Uuid::new_v4().to_string();
            if partition_of(&id, n) == wanted {
                return id;
            }
        }
    }

    /// Is every partition's Redis answering?
    pub async fn ping(&self) -> Result<(), QueueError> {
        try_join_all(self.parts.iter().map(Partition::ping)).await?;
        Ok(())
    }

    /// Stores the case and its jobs atomically, in its partition (see
    /// [`Partition::schedule`]). The documentId must come from
    /// [`new_document_id`](Self::new_document_id) when the request has an `id`.
    pub async fn schedule(&self, case: &NewCase) -> Result<Scheduled, QueueError> {
        self.parts[partition_of(&case.document_id, self.parts.len())]
            .schedule(case)
            .await
    }

    /// One case (or event job) with its attempt log, if it exists.
    pub async fn case(&self, id: &str) -> Result<Option<CaseRecord>, QueueError> {
        self.part_of_job(id).await?.case(id).await
    }

    /// Sends a dead or delivered case (or event) again, now (see [`Redelivery`]).
    pub async fn redeliver(&self, id: &str) -> Result<Redelivery, QueueError> {
        self.part_of_job(id).await?.redeliver(id).await
    }

    /// The most recent `limit` cases, newest first, and how many there are in all.
    pub async fn recent_cases(&self, limit: usize) -> Result<(Vec<CaseRecord>, u64), QueueError> {
        self.merged(limit, |part| part.keys.cases()).await
    }

    /// The most recent `limit` dead letters and how many there are in all.
    pub async fn dead_letters(&self, limit: usize) -> Result<(Vec<CaseRecord>, u64), QueueError> {
        self.merged(limit, |part| part.keys.dead()).await
    }

    /// The `limit` highest-scored members over every partition's sorted set
    /// `key`, as cases, and how many there are in all.
    async fn merged(
        &self,
        limit: usize,
        key: impl Fn(&Partition) -> String,
    ) -> Result<(Vec<CaseRecord>, u64), QueueError> {
        let listed = try_join_all(self.parts.iter().map(|part| {
            let key = key(part);
            async move { part.newest(&key, limit).await }
        }))
        .await?;
        let total = listed.iter().map(|(_, total)| total).sum();
        let mut scored: Vec<(f64, usize, String)> = listed
            .into_iter()
            .enumerate()
            .flat_map(|(k, (members, _))| members.into_iter().map(move |(id, score)| (score, k, id)))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.truncate(limit);
        let mut by_part: Vec<Vec<String>> = vec![Vec::new(); self.parts.len()];
        for (_, k, id) in &scored {
            by_part[*k].push(id.clone());
        }
        let found = try_join_all(self.parts.iter().zip(&by_part).map(|(part, ids)| part.cases(ids))).await?;
        let mut cases: HashMap<(usize, String), CaseRecord> = HashMap::new();
        for (k, (ids, records)) in by_part.into_iter().zip(found).enumerate() {
            for (id, record) in ids.into_iter().zip(records) {
                if let Some(record) = record {
                    cases.insert((k, id), record);
                }
            }
        }
        let ordered = scored
            .into_iter()
            .filter_map(|(_, k, id)| cases.remove(&(k, id)))
            .collect();
        Ok((ordered, total))
    }

    /// Claims up to `decisions.len()` due jobs (see [`Partition::claim`]),
    /// from the partitions in turn: each claim starts at the next one and
    /// goes on to the others while it has room.
    pub async fn claim(
        &self,
        lease: Duration,
        lease_token: &str,
        decisions: &[DocumentStatus],
        allowance: &Allowance,
    ) -> Result<Claim, QueueError> {
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
    ) -> Result<Recorded, QueueError> {
        self.parts[job.partition].finish(job, attempt, outcome, signal).await
    }

    /// Records attempts (see [`Partition::finish_many`]): one round trip
    /// per partition the jobs came from.
    pub async fn finish_many(
        &self,
        items: &[(&ClaimedJob, &[AttemptView], &Finish, EndpointSignal)],
    ) -> Result<Vec<Recorded>, QueueError> {
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
                    async move { self.parts[k].finish_many(&mine).await.map(|recorded| (at, recorded)) }
                }),
        )
        .await?;
        let mut recorded = vec![Recorded::Stale; items.len()];
        for (at, results) in done {
            for (&i, result) in at.iter().zip(results) {
                recorded[i] = result;
            }
        }
        Ok(recorded)
    }

    /// The chaos faults injected so far, by fault, over every partition.
    pub async fn chaos_counts(&self) -> Result<Vec<FaultCount>, QueueError> {
        let counted = try_join_all(self.parts.iter().map(Partition::chaos_counts)).await?;
        let mut faults: Vec<FaultCount> = Vec::new();
        for row in counted.into_iter().flatten() {
            match faults.iter_mut().find(|seen| seen.fault == row.fault) {
                Some(seen) => {
                    seen.injected += row.injected;
                    seen.unexpected += row.unexpected;
                    for (answer, count) in row.answers {
                        *seen.answers.entry(answer).or_default() += count;
                    }
                }
                None => faults.push(row),
            }
        }
        faults.sort_by_key(|row| row.fault);
        Ok(faults)
    }

    /// Forgets up to `max` finished cases per partition whose retention is
    /// over, and endpoints idle as long.
    pub async fn trim(&self, max: usize) -> Result<Trimmed, QueueError> {
        let trimmed = try_join_all(self.parts.iter().map(|part| part.trim(max))).await?;
        Ok(trimmed.into_iter().fold(Trimmed::default(), |all, one| Trimmed {
            cases: all.cases + one.cases,
            endpoints: all.endpoints + one.endpoints,
        }))
    }

    /// Jobs per state over every partition (for `/metrics`, not a hot path).
    pub async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let depths = try_join_all(self.parts.iter().map(Partition::depth)).await?;
        Ok(depths.into_iter().fold(QueueDepth::default(), |all, one| QueueDepth {
            due: all.due + one.due,
            inflight: all.inflight + one.inflight,
            dead: all.dead + one.dead,
            paused: all.paused + one.paused,
            circuit_open: all.circuit_open + one.circuit_open,
            throttled: all.throttled + one.throttled,
            saturated: all.saturated + one.saturated,
            endpoints_open: all.endpoints_open + one.endpoints_open,
            endpoints_probing: all.endpoints_probing + one.endpoints_probing,
        }))
    }

    /// The `limit` most recently active endpoints and how many there are.
    pub async fn endpoints(&self, limit: usize) -> Result<(Vec<EndpointView>, u64), QueueError> {
        let listed = try_join_all(
            self.parts
                .iter()
                .map(|part| async move { part.newest(&part.keys.endpoints(), limit).await }),
        )
        .await?;
        let mut last: HashMap<String, f64> = HashMap::new();
        let mut total = 0;
        for (members, count) in listed {
            total = total.max(count); // at least; an endpoint is usually in every partition
            for (name, score) in members {
                let seen = last.entry(name).or_insert(score);
                *seen = seen.max(score);
            }
        }
        let mut newest: Vec<(String, f64)> = last.into_iter().collect();
        newest.sort_by(|a, b| b.1.total_cmp(&a.1));
        newest.truncate(limit);
        let endpoints: Vec<Endpoint> = newest.iter().filter_map(|(name, _)| name.parse().ok()).collect();
        Ok((
            self.endpoint_views(&endpoints).await?,
            total.max(endpoints.len() as u64),
        ))
    }

    /// One endpoint's state over every partition.
    pub async fn endpoint(&self, endpoint: &Endpoint) -> Result<EndpointView, QueueError> {
        let mut views = self.endpoint_views(std::slice::from_ref(endpoint)).await?;
        Ok(views
            .pop()
            .unwrap_or_else(|| self.parts[0].endpoint_view(endpoint, HashMap::new(), 0, None)))
    }

    /// Sets an endpoint's own rate limit (`None`: back to `ENDPOINT_RATE`),
    /// each partition its share.
    pub async fn set_rate(&self, endpoint: &Endpoint, rate: Option<f64>) -> Result<EndpointView, QueueError> {
        let share = rate.map(|rate| rate / self.parts.len() as f64);
        try_join_all(self.parts.iter().map(|part| part.set_rate(endpoint, share))).await?;
        self.endpoint(endpoint).await
    }

    async fn endpoint_views(&self, endpoints: &[Endpoint]) -> Result<Vec<EndpointView>, QueueError> {
        let per_part = try_join_all(self.parts.iter().map(|part| part.endpoint_views(endpoints))).await?;
        let mut merged: Vec<Option<EndpointView>> = vec![None; endpoints.len()];
        for views in per_part {
            for (slot, view) in merged.iter_mut().zip(views) {
                *slot = Some(match slot.take() {
                    None => view,
                    Some(all) => merge_views(all, view),
                });
            }
        }
        Ok(merged
            .into_iter()
            .flatten()
            .map(|view| EndpointView {
                concurrency: self.limits.concurrency,
                // The shares' sum, without the float dust of dividing.
                rate: view.rate.map(|rate| (rate * 1e6).round() / 1e6),
                ..view
            })
            .collect())
    }

    /// Stores a subscription with a new secret in every partition, unless
    /// the tenant has `max` already (then `None`).
    pub async fn create_subscription(
        &self,
        new: &NewSubscriptionRecord,
        max: u64,
    ) -> Result<Option<SubscriptionRecord>, QueueError> {
        let Some(stored) = self.parts[0].new_subscription_fields(new, max).await? else {
            return Ok(None);
        };
        for part in self.parts.iter().rev() {
            part.store_subscription(&new.tenant, &stored).await?;
        }
        self.subscription(Some(&new.tenant), &stored.id).await
    }

    /// One subscription; with `tenant`, only if it is that tenant's. Its
    /// delivery counts are summed over the partitions.
    pub async fn subscription(&self, tenant: Option<&str>, id: &str) -> Result<Option<SubscriptionRecord>, QueueError> {
        let Some(mut record) = self.parts[0].subscription(tenant, id).await? else {
            return Ok(None);
        };
        for part in self.parts.iter().skip(1) {
            if let Some(other) = part.subscription(tenant, id).await? {
                record.add_stats(&other);
            }
        }
        Ok(Some(record))
    }

    /// A tenant's subscriptions, oldest first, their counts summed.
    pub async fn subscriptions(&self, tenant: &str) -> Result<Vec<SubscriptionRecord>, QueueError> {
        let mut records = self.parts[0].subscriptions(tenant).await?;
        for part in self.parts.iter().skip(1) {
            let others = part.subscriptions(tenant).await?;
            for record in &mut records {
                if let Some(other) = others.iter().find(|other| other.id == record.id) {
                    record.add_stats(other);
                }
            }
        }
        Ok(records)
    }

    /// Whether the tenant has a subscription that receives events.
    pub async fn has_enabled_subscription(&self, tenant: &str) -> Result<bool, QueueError> {
        self.parts[0].has_enabled_subscription(tenant).await
    }

    /// Changes the tenant's subscription `id` in every partition
    /// (partition 0, the one read, last); `None` if there is none.
    pub async fn update_subscription(
        &self,
        tenant: &str,
        id: &str,
        change: &SubscriptionChange,
    ) -> Result<Option<SubscriptionRecord>, QueueError> {
        self.change_everywhere(tenant, id, &Partition::update_args(change))
            .await
    }

    /// Deletes the tenant's subscription `id`; false if there is none.
    pub async fn delete_subscription(&self, tenant: &str, id: &str) -> Result<bool, QueueError> {
        let mut found = false;
        for part in self.parts.iter().rev() {
            found = part.change_subscription(tenant, id, &["delete".to_owned()]).await?;
        }
        Ok(found)
    }

    /// Gives the subscription a new secret (the same in every partition);
    /// the old one keeps signing beside it for `overlap`.
    pub async fn rotate_secret(
        &self,
        tenant: &str,
        id: &str,
        overlap: Duration,
    ) -> Result<Option<SubscriptionRecord>, QueueError> {
        self.change_everywhere(tenant, id, &Partition::rotate_args(overlap))
            .await
    }

    async fn change_everywhere(
        &self,
        tenant: &str,
        id: &str,
        args: &[String],
    ) -> Result<Option<SubscriptionRecord>, QueueError> {
        let mut found = false;
        for part in self.parts.iter().rev() {
            found = part.change_subscription(tenant, id, args).await?;
        }
        if !found {
            return Ok(None);
        }
        self.subscription(Some(tenant), id).await
    }

    /// Queues a `webhook.test` for the subscription (in the partition of its
    /// id); its job's webhook-id, or `None` if the subscription does not exist.
    pub async fn queue_test_event(&self, id: &str, message: &str) -> Result<Option<String>, QueueError> {
        self.parts[partition_of(id, self.parts.len())]
            .queue_test_event(id, message)
            .await
    }
}

/// The hash tag of partition `k` of `partitions`: `{prefix}` when there is
/// one (the layout of every help desk before partitions), else `{prefix:k}`
/// or, when that is not in the k-th of `partitions` equal ranges of Redis
/// Cluster's 16384 slots, the first `{prefix:k.s}` (s = 1, 2, …) that is.
/// `redis-cli --cluster create` gives each master one such range, so N
/// partitions on N masters (or on a divisor of N) put the same share on
/// each, where N plain names would often share a master.
pub fn partition_tag(prefix: &str, k: usize, partitions: usize) -> String {
    if partitions == 1 {
        return prefix.to_owned();
    }
    let range = |slot: usize| slot * CLUSTER_SLOTS / partitions;
    let (low, high) = (range(k), range(k + 1));
    let plain = format!("{prefix}:{k}");
    std::iter::once(plain.clone())
        .chain((1..).map(|s| format!("{plain}.{s}")))
        .find(|tag| (low..high).contains(&usize::from(cluster_slot(tag))))
        .unwrap_or(plain)
}

/// The slots of a Redis Cluster.
const CLUSTER_SLOTS: usize = 16384;

/// The Redis Cluster slot of keys whose hash tag is `tag`: CRC16 (XMODEM)
/// of it, modulo 16384 (the cluster specification's `HASH_SLOT`).
fn cluster_slot(tag: &str) -> u16 {
    let crc = tag.bytes().fold(0_u16, |crc, byte| {
        (0..8).fold(crc ^ (u16::from(byte) << 8), |crc, _| {
            if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            }
        })
    });
    crc % CLUSTER_SLOTS as u16
}

/// Partition `k`'s share of `total` slots: the shares add up to `total`
/// (the first ones take the remainder), and none is below one.
fn share_of(total: u32, k: usize, partitions: usize) -> u32 {
    let n = u32::try_from(partitions).unwrap_or(u32::MAX);
    let k = u32::try_from(k).unwrap_or(u32::MAX);
    (total / n + u32::from(k < total % n)).max(1)
}

/// Where the partition count of a prefix is kept (`{prefix}:partition-count`).
fn layout_key(prefix: &str) -> String {
    format!("{}:partition-count", Keys::new(prefix).tag())
}

/// Checks that the prefix's queue was made with `partitions`, or holds no
/// case of another count, and records the count.
async fn check_layout(conn: &RedisConnection, prefix: &str, partitions: usize) -> Result<(), QueueError> {
    let mut conn = conn.clone();
    let key = layout_key(prefix);
    let recorded: Option<usize> = conn.get(&key).await?;
    let before = recorded.unwrap_or(1);
    if before != partitions {
        let mut held = 0;
        for k in 0..before {
            let cases: u64 = conn.zcard(Keys::new(&partition_tag(prefix, k, before)).cases()).await?;
            held += cases;
        }
        if held > 0 {
            return Err(QueueError::Layout {
                before,
                now: partitions,
                held,
            });
        }
    }
    if recorded != Some(partitions) {
        let _: () = conn.set(&key, partitions).await?;
    }
    Ok(())
}

/// One endpoint's views from two partitions as one: counts add up, the
/// breaker shows the worst state, times the latest (the next attempt: the
/// soonest).
fn merge_views(all: EndpointView, one: EndpointView) -> EndpointView {
    let worst = |a: BreakerState, b: BreakerState| {
        let rank = |state| match state {
            BreakerState::Closed => 0,
            BreakerState::Probing => 1,
            BreakerState::Open => 2,
        };
        if rank(b) > rank(a) { b } else { a }
    };
    let later = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| a.max(b);
    let (last_error, last_error_at) = if one.last_error_at > all.last_error_at {
        (one.last_error, one.last_error_at)
    } else {
        (all.last_error, all.last_error_at)
    };
    EndpointView {
        endpoint: all.endpoint,
        in_flight: all.in_flight + one.in_flight,
        due: all.due + one.due,
        concurrency: all.concurrency + one.concurrency,
        rate: all.rate.zip(one.rate).map(|(a, b)| a + b),
        rate_overridden: all.rate_overridden || one.rate_overridden,
        breaker: worst(all.breaker, one.breaker),
        consecutive_failures: all.consecutive_failures.max(one.consecutive_failures),
        open_until: later(all.open_until, one.open_until),
        paused_until: later(all.paused_until, one.paused_until),
        last_error,
        last_error_at,
        next_attempt_at: match (all.next_attempt_at, one.next_attempt_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_partition_is_the_layout_before_partitions() {
        assert_eq!(partition_of("anything", 1), 0);
        assert_eq!(partition_tag("hookline", 0, 1), "hookline");
    }

    #[test]
    fn partitions_take_equal_ranges_of_the_cluster_s_slots() {
        // The specification's own example: CRC16("123456789") = 0x31C3.
        assert_eq!(cluster_slot("123456789"), 0x31c3);
        for n in [2, 3, 6, 16] {
            for k in 0..n {
                let slot = usize::from(cluster_slot(&partition_tag("hookline", k, n)));
                assert!((k * CLUSTER_SLOTS / n..(k + 1) * CLUSTER_SLOTS / n).contains(&slot));
            }
        }
        assert!(partition_tag("hookline", 2, 3).starts_with("hookline:2"));
    }

    #[test]
    fn documents_spread_evenly_and_stay_where_they_hash() {
        let mut counts = [0_u32; 3];
        for _ in 0..3000 {
            counts[partition_of(&uuid::Uuid::new_v4().to_string(), 3)] += 1;
        }
        assert!(counts.iter().all(|&count| (850..1150).contains(&count)), "{counts:?}");
        // FNV-1a of "a" is 0xaf63dc4c8601ec8c: stable, whatever the process.
        assert_eq!(partition_of("a", 7), (0xaf63_dc4c_8601_ec8c_u64 % 7) as usize);
    }

    #[test]
    fn endpoint_shares_add_up_to_the_whole_and_are_never_zero() {
        assert_eq!((0..3).map(|k| share_of(16, k, 3)).collect::<Vec<_>>(), [6, 5, 5]);
        assert_eq!((0..3).map(|k| share_of(16, k, 3)).sum::<u32>(), 16);
        assert_eq!((0..4).map(|k| share_of(2, k, 4)).collect::<Vec<_>>(), [1, 1, 1, 1]);
    }
}
