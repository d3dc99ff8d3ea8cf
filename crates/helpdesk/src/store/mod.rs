//! The help desk's store, in Redis: cases and their delayed webhook jobs,
//! the endpoints they go to, subscriptions, attempt logs, chaos tallies and
//! request-id records. Every job holds its tenant; each tenant other than
//! the default one has its own listings and request ids beside the shared
//! ones (the operator's view), kept by the same scripts (`prelude.lua`). `docs/store.md` is its design (the key layout, a
//! job's life, the guarantee, what Redis must provide, partitions); this is
//! the map:
//!
//! | module | holds |
//! |---|---|
//! | [`Store`] (here) | the handle callers get: connecting, options, [`StoreError`] |
//! | [`keys`] | the key layout, and [`Scope`]: whose objects a read sees |
//! | [`conn`] | the connection: one Redis, or a Redis Cluster |
//! | `partition` | one partition (one hash tag), routing a case to it, calling its scripts |
//! | `cases` | new cases with their events ([`Store::schedule`]), reading and listing them |
//! | `jobs` | a job's life: [`Store::claim`], [`Store::finish_many`], [`Store::redeliver`] |
//! | `limits` | [`EndpointLimits`]: every endpoint's, and a partition's share of them |
//! | `endpoints` | an endpoint's state as the API shows it (to a tenant: [`redacted`]), rate overrides, the operator's resume, [`QueueDepth`] |
//! | `subscriptions` | subscriptions and test events |
//! | `disable` | [`DisablePolicy`]: disabling a failing subscription, enabling it again, the operational events |
//! | `chaos` | the tally of chaos faults ([`Store::chaos_counts`]) |
//! | `retention` | forgetting finished cases and idle endpoints ([`Store::trim`]) |
//!
//! Each concern's Lua scripts sit in the folder of its name, and every
//! script starts with `prelude.lua`. Anything that moves a job between
//! `due`, `inflight` and `dead` is a script, so it stays atomic; every time
//! the scripts keep is Redis's clock (`TIME`), never a worker's.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;

mod cases;
mod chaos;
pub mod conn;
mod disable;
mod endpoints;
mod jobs;
pub mod keys;
mod limits;
mod partition;
mod recovery;
mod retention;
mod subscriptions;

pub use cases::{About, CaseRecord, EventJob, NewCase, Scheduled};
pub use conn::RedisConnection;
pub use disable::{DisablePolicy, Disabled, Enabled, Finished};
pub use endpoints::{DEPTH_ENDPOINTS, QueueDepth, redacted};
pub use jobs::{Allowance, Claim, ClaimedJob, EndpointSignal, Finish, Health, Recorded, Redelivery};
pub use keys::{EVENT_JOB_MARK, Keys, Scope};
pub use limits::{EndpointLimits, MAX_COOLDOWN};
pub use partition::{DEFAULT_RETENTION, MAX_PARTITIONS, partition_of, partition_tag};
pub use recovery::DeadLetter;
pub use retention::Trimmed;
pub use subscriptions::{NewSubscriptionRecord, SubscriptionChange, SubscriptionRecord};

use partition::Partition;

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis")]
    Redis(#[from] redis::RedisError),
    #[error("case {document_id} is malformed in Redis: {problem}")]
    Corrupt { document_id: String, problem: String },
    /// `REDIS_MIN_REPLICAS` replicas did not confirm the write in time: it
    /// is on the master, but a failover now could lose it.
    #[error("only {acknowledged} of {wanted} replicas confirmed the write")]
    NotReplicated { acknowledged: u32, wanted: u32 },
    /// `REDIS_PARTITIONS` differs from the count the store was made with,
    /// and the store still holds cases that would be looked for elsewhere.
    #[error(
        "REDIS_PARTITIONS is {now}, but this REDIS_PREFIX's queue was made with {before} and still holds {held} \
         cases: keep {before}, use another REDIS_PREFIX, or let the cases finish and expire first"
    )]
    Layout { before: usize, now: usize, held: u64 },
    /// The prefix holds jobs of a help desk from before per-endpoint queues
    /// (one `{prefix}:due`), which this one would never deliver.
    #[error(
        "{key} holds {jobs} jobs of a help desk from before per-endpoint queues: let that version deliver them \
         first (or delete the prefix's keys), or use another REDIS_PREFIX"
    )]
    OldLayout { key: String, jobs: u64 },
}

/// A handle on the store; cheap to clone, safe to share between tasks.
/// Its cases are spread over one or more [partitions](partition_of).
#[derive(Clone)]
pub struct Store {
    parts: Arc<[Partition]>,
    /// The limits of an endpoint over all partitions.
    limits: EndpointLimits,
    /// Where the next claim starts.
    turn: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("partitions", &self.parts.len())
            .field("first", &self.parts.first())
            .finish()
    }
}

impl Store {
    /// Connects (reconnecting by itself later) to `redis_url` — a Redis
    /// Cluster when it lists several nodes, comma-separated
    /// ([`RedisConnection`]) — with one partition, the layout of every help
    /// desk before `REDIS_PARTITIONS`.
    pub async fn connect(redis_url: &str, prefix: &str, limits: EndpointLimits) -> Result<Self, StoreError> {
        Self::connect_partitioned(redis_url, prefix, 1, limits).await
    }

    /// Connects with `partitions` partitions. Refuses
    /// ([`StoreError::Layout`]) when the prefix's store was made with
    /// another count and still holds cases: they would be looked for in the
    /// wrong partitions.
    pub async fn connect_partitioned(
        redis_url: &str,
        prefix: &str,
        partitions: usize,
        limits: EndpointLimits,
    ) -> Result<Self, StoreError> {
        let partitions = partitions.clamp(1, MAX_PARTITIONS);
        let conn = RedisConnection::connect(redis_url).await?;
        partition::check_layout(&conn, prefix, partitions).await?;
        let mut parts = Vec::with_capacity(partitions);
        for k in 0..partitions {
            let tag = partition_tag(prefix, k, partitions);
            parts.push(Partition::open(conn.clone(), k, &tag, limits.share(k, partitions)).await?);
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
        self.parts[0].retention
    }

    /// Answer a new case only once `min_replicas` replicas have it
    /// (`REDIS_MIN_REPLICAS`), waiting at most `timeout` for them.
    pub fn with_min_replicas(self, min_replicas: u32, timeout: Duration) -> Self {
        self.map(|part| part.clone().with_min_replicas(min_replicas, timeout))
    }

    /// The store keeping finished cases (delivered or dead) for `retention`
    /// after they finished (`CASE_RETENTION`).
    pub fn with_retention(self, retention: Duration) -> Self {
        self.map(|part| part.clone().with_retention(retention))
    }

    /// The store disabling a subscription whose messages keep failing as
    /// `policy` says (`DISABLE_AFTER`, `DISABLE_AFTER_DEAD`).
    pub fn with_disable_policy(self, policy: DisablePolicy) -> Self {
        self.map(|part| part.clone().with_disable_policy(policy))
    }

    /// The same store with its clock stopped at `now`: every script reads
    /// that time instead of Redis's (tests step through time with it).
    pub fn at(&self, now: DateTime<Utc>) -> Self {
        self.map(|part| part.at(now))
    }

    /// Is every partition's Redis answering?
    pub async fn ping(&self) -> Result<(), StoreError> {
        try_join_all(self.parts.iter().map(Partition::ping)).await?;
        Ok(())
    }

    /// The partition a documentId (or a subscription id) hashes to.
    fn part_of(&self, id: &str) -> &Partition {
        &self.parts[partition_of(id, self.parts.len())]
    }

    /// The partition of the job `id`: a documentId's, found by its hash; an
    /// event's (`~` and its webhook-id) by looking.
    async fn part_of_job(&self, id: &str) -> Result<&Partition, StoreError> {
        if self.parts.len() == 1 || !id.starts_with(EVENT_JOB_MARK) {
            return Ok(self.part_of(id));
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
        self.new_document_id_in(partition_of(request, n))
    }

    /// A new random documentId that hashes to partition `wanted`.
    fn new_document_id_in(&self, wanted: usize) -> String {
        let n = self.parts.len();
        loop {
            // n tries on average; never many (the hash is uniform).
            let id = uuid::Uuid::new_v4().to_string();
            if partition_of(&id, n) == wanted {
                return id;
            }
        }
    }
}

/// A duration as the whole milliseconds the scripts take.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
