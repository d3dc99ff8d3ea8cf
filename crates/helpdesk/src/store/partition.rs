//! One partition of the store, and which partition holds what.
//!
//! A [`Partition`] is the whole store under one hash tag: its cases, jobs,
//! endpoints' limits and ready line, every script atomic inside it. With one
//! partition (the default) the tag is `{prefix}`; with `N`
//! (`REDIS_PARTITIONS`) a case lives in the partition its `documentId`
//! hashes to ([`partition_of`]), and the tags ([`partition_tag`]) are chosen
//! so that Redis Cluster spreads the partitions evenly over its masters.
//! `docs/store.md` ("Partitions") says how limits, workers, subscriptions
//! and listings work across them.
//!
//! Every script is called the same way ([`Partition::invocation`]): the
//! partition's anchor key first, then the arguments `prelude.lua` reads.

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::{AsyncCommands, Script, ScriptInvocation};

use super::disable::DisablePolicy;
use super::keys::Keys;
use super::limits::EndpointLimits;
use super::{RedisConnection, StoreError, millis};

/// The most partitions a store may have.
pub const MAX_PARTITIONS: usize = 1024;

/// How long finished cases are kept unless set otherwise (`CASE_RETENTION`).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The Lua every script starts with: the common arguments, the key names,
/// the token bucket and `refresh`, which keeps an endpoint's place in the
/// ready line right.
const PRELUDE: &str = include_str!("prelude.lua");

/// A script of the store: `body` after the prelude.
pub(super) fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

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

/// Where the partition count of a prefix is kept (`{prefix}:partition-count`).
fn layout_key(prefix: &str) -> String {
    format!("{}:partition-count", Keys::new(prefix).tag())
}

/// Checks that the prefix's store was made with `partitions`, or holds no
/// case of another count, and records the count. Refuses data of the
/// layout before per-endpoint queues, and changes nothing then.
pub(super) async fn check_layout(conn: &RedisConnection, prefix: &str, partitions: usize) -> Result<(), StoreError> {
    let mut conn = conn.clone();
    let old = Keys::new(prefix).legacy_due();
    let kind: String = redis::cmd("TYPE").arg(&old).query_async(&mut conn).await?;
    if kind == "zset" {
        let jobs: u64 = conn.zcard(&old).await?;
        return Err(StoreError::OldLayout { key: old, jobs });
    }
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
            return Err(StoreError::Layout {
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

/// How many replicas must confirm a new case before it is answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Durability {
    min_replicas: u32,
    timeout: Duration,
}

/// Whose clock the scripts read (see the `prelude.lua` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    /// Redis's own (`TIME`): one clock for every process. The default.
    Redis,
    /// Always this time: for tests that step through time without sleeping.
    At(DateTime<Utc>),
}

/// One partition: every key under one hash tag, so each script is atomic
/// on one Redis (or one cluster slot).
#[derive(Clone)]
pub(super) struct Partition {
    pub(super) conn: RedisConnection,
    durability: Durability,
    pub(super) keys: Keys,
    /// This partition's share of each endpoint's limits.
    pub(super) limits: EndpointLimits,
    /// How long finished cases are kept (`CASE_RETENTION`).
    pub(super) retention: Duration,
    /// When a failing subscription is disabled (`DISABLE_AFTER`, `DISABLE_AFTER_DEAD`).
    pub(super) disable: DisablePolicy,
    clock: Clock,
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
    /// Partition `number`, whose keys start with `{tag}`, with `limits` as
    /// its share of each endpoint's.
    pub(super) async fn open(
        conn: RedisConnection,
        number: usize,
        tag: &str,
        limits: EndpointLimits,
    ) -> Result<Self, StoreError> {
        let partition = Self {
            conn,
            durability: Durability::default(),
            keys: Keys::new(tag),
            limits,
            retention: DEFAULT_RETENTION,
            disable: DisablePolicy::default(),
            clock: Clock::Redis,
        };
        let mut conn = partition.conn.clone();
        let _: () = conn.set(partition.keys.anchor(), number).await?;
        Ok(partition)
    }

    /// Answer a new case only once `min_replicas` replicas have it.
    pub(super) fn with_min_replicas(self, min_replicas: u32, timeout: Duration) -> Self {
        Self {
            durability: Durability { min_replicas, timeout },
            ..self
        }
    }

    /// Keeping finished cases for `retention`.
    pub(super) fn with_retention(self, retention: Duration) -> Self {
        Self { retention, ..self }
    }

    /// Disabling failing subscriptions as `disable` says.
    pub(super) fn with_disable_policy(self, disable: DisablePolicy) -> Self {
        Self { disable, ..self }
    }

    /// The same partition with its clock stopped at `now`.
    pub(super) fn at(&self, now: DateTime<Utc>) -> Self {
        Self {
            clock: Clock::At(now),
            ..self.clone()
        }
    }

    /// Now by this process's clock, or the stopped one.
    pub(super) fn local_now(&self) -> DateTime<Utc> {
        match self.clock {
            Clock::Redis => Utc::now(),
            Clock::At(now) => now,
        }
    }

    /// An invocation of `script` with the arguments every script takes
    /// first: the time (empty: Redis's), the key tag and the default limits.
    pub(super) fn invocation<'a>(&self, script: &'a Script) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        let now = match self.clock {
            Clock::Redis => String::new(),
            Clock::At(now) => now.timestamp_millis().to_string(),
        };
        invocation
            .key(self.keys.anchor())
            .arg(now)
            .arg(self.keys.tag())
            .arg(format!("{}/{}", self.limits.concurrency, self.limits.start))
            .arg(self.limits.rate.unwrap_or(0.0));
        invocation
    }

    /// Runs a script and, with `REDIS_MIN_REPLICAS`, waits in the same
    /// round trip (`WAIT`, pipelined behind it, so a cluster sends both to
    /// the master of their slot) until that many replicas have it.
    pub(super) async fn invoke_replicated<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        if self.durability.min_replicas == 0 {
            return Ok(invocation.invoke_async(&mut conn).await?);
        }
        let mut pipe = redis::pipe();
        pipe.invoke_script(invocation)
            .cmd("WAIT")
            .arg(self.durability.min_replicas)
            .arg(millis(self.durability.timeout));
        let (value, acknowledged): (T, u32) = query_loading(&pipe, script, &mut conn).await?;
        if acknowledged < self.durability.min_replicas {
            return Err(StoreError::NotReplicated {
                acknowledged,
                wanted: self.durability.min_replicas,
            });
        }
        Ok(value)
    }

    /// Is Redis answering?
    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// The members of the `limit` highest scores of the sorted set `key`
    /// with their scores, and its size.
    pub(super) async fn newest(&self, key: &str, limit: usize) -> Result<(Vec<(String, f64)>, u64), StoreError> {
        let mut conn = self.conn.clone();
        let stop = isize::try_from(limit).unwrap_or(isize::MAX).saturating_sub(1);
        Ok(redis::pipe()
            .zrevrange_withscores(key, 0, stop)
            .zcard(key)
            .query_async(&mut conn)
            .await?)
    }
}

/// Sends a pipeline of `script` calls. A pipelined `EVALSHA` does not load
/// its script by itself: on a Redis that does not know it yet (first use,
/// restart, `SCRIPT FLUSH`), this loads it and sends the pipeline again.
/// `NOSCRIPT` means no script of the pipeline ran, so nothing runs twice.
pub(super) async fn query_loading<T: redis::FromRedisValue>(
    pipe: &redis::Pipeline,
    script: &Script,
    conn: &mut RedisConnection,
) -> Result<T, StoreError> {
    Ok(match pipe.query_async(conn).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            script.prepare_invoke().load_async(conn).await?;
            pipe.query_async(conn).await?
        }
        other => other?,
    })
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
}
