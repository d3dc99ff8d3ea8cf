//! Endpoints as the API sees them: one endpoint's state (its share of the
//! [limits](super::limits) in use, its breaker, pauses), its own rate
//! (`endpoints/set_rate.lua`), and how many due jobs the limits hold back
//! ([`QueueDepth`], `endpoints/depth.lua`); the operator's resume
//! (`endpoints/resume.lua`). The limits themselves are
//! applied where jobs are claimed and finished (`jobs/claim.lua`,
//! `jobs/finish.lua`, `refresh` in `prelude.lua`); with several partitions
//! each has its [share](EndpointLimits::share) of every endpoint's.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use hookline_contract::{BreakerState, EndpointView};
use redis::Script;

use super::keys::Scope;
use super::partition::{Partition, script};
use super::{Store, StoreError};
use crate::endpoint::Endpoint;

static SET_RATE: LazyLock<Script> = LazyLock::new(|| script(include_str!("endpoints/set_rate.lua")));
static DEPTH: LazyLock<Script> = LazyLock::new(|| script(include_str!("endpoints/depth.lua")));
static RESUME: LazyLock<Script> = LazyLock::new(|| script(include_str!("endpoints/resume.lua")));

/// How many endpoints (the most recently active, per partition) a depth
/// reading counts, so that a scrape's work in Redis is bounded however
/// many endpoints clients have made (`endpoints/depth.lua`).
pub const DEPTH_ENDPOINTS: usize = 200;

/// Jobs per state, and the due ones that the endpoints' limits hold back.
/// `due`, the held counts and the breakers cover the [`DEPTH_ENDPOINTS`]
/// most recently active endpoints of each partition; `inflight` and `dead`
/// are exact.
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
    /// Every endpoint the store knows (summed over partitions).
    pub endpoints_known: u64,
    /// The endpoints the counts above cover (summed over partitions).
    pub endpoints_counted: u64,
}

impl Partition {
    /// Jobs per state, and the due ones held back by the endpoints' limits
    /// (reads at most [`DEPTH_ENDPOINTS`] endpoints: for `/metrics`).
    pub(super) async fn depth(&self) -> Result<QueueDepth, StoreError> {
        let mut conn = self.conn.clone();
        let counts: Vec<u64> = self
            .invocation(&DEPTH)
            .key(self.keys.inflight())
            .key(self.keys.dead())
            .arg(DEPTH_ENDPOINTS)
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
            endpoints_known: count(9),
            endpoints_counted: count(10),
        })
    }

    /// Sets an endpoint's own rate limit here (`None`: back to the default).
    async fn set_rate(&self, endpoint: &Endpoint, rate: Option<f64>) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.invocation(&SET_RATE)
            .key(self.keys.endpoint(endpoint))
            .arg(endpoint.as_str())
            .arg(rate.map(|rate| rate.to_string()).unwrap_or_default())
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }

    /// Lifts the endpoint's pause and closes its breaker here; false if
    /// this partition does not know it.
    async fn resume(&self, endpoint: &Endpoint) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let found: i64 = self
            .invocation(&RESUME)
            .key(self.keys.endpoint(endpoint))
            .arg(endpoint.as_str())
            .invoke_async(&mut conn)
            .await?;
        Ok(found == 1)
    }

    /// Whether `scope`'s jobs use the endpoint here.
    async fn uses(&self, scope: Scope<'_>, endpoint: &Endpoint) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(self.keys.endpoints_of(scope))
            .arg(endpoint.as_str())
            .query_async(&mut conn)
            .await?;
        Ok(score.is_some())
    }

    async fn endpoint_views(&self, endpoints: &[Endpoint]) -> Result<Vec<EndpointView>, StoreError> {
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
            in_flight: Some(number("inFlight").map_or(0, |n| n.max(0.0) as u32)),
            due: Some(due),
            concurrency: self.limits.limit_of(number("limit")),
            rate: own_rate.or(self.limits.rate),
            rate_overridden: own_rate.is_some(),
            breaker,
            consecutive_failures: Some(number("failures").map_or(0, |n| n.max(0.0) as u32)),
            open_until: time("openUntil").filter(|_| breaker == BreakerState::Open),
            paused_until: time("pausedUntil").filter(|at| *at > now),
            last_error: field("lastError").map(str::to_owned),
            last_error_at: time("lastErrorAt"),
            next_attempt_at: ready.and_then(|ms| DateTime::from_timestamp_millis(ms as i64)),
        }
    }
}

impl Store {
    /// Jobs per state over every partition (for `/metrics`, not a hot
    /// path); bounded work, see [`QueueDepth`].
    pub async fn depth(&self) -> Result<QueueDepth, StoreError> {
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
            endpoints_known: all.endpoints_known + one.endpoints_known,
            endpoints_counted: all.endpoints_counted + one.endpoints_counted,
        }))
    }

    /// The `limit` most recently active endpoints and how many there are.
    pub async fn endpoints(&self, limit: usize) -> Result<(Vec<EndpointView>, u64), StoreError> {
        self.endpoints_in(Scope::All, limit).await
    }

    /// The `limit` most recently active endpoints of `scope` (a tenant's:
    /// those its jobs go to, [as it may see them](redacted)) and how many
    /// there are.
    pub async fn endpoints_in(&self, scope: Scope<'_>, limit: usize) -> Result<(Vec<EndpointView>, u64), StoreError> {
        let listed = try_join_all(
            self.parts
                .iter()
                .map(|part| async move { part.newest(&part.keys.endpoints_of(scope), limit).await }),
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
        let views = self.endpoint_views(&endpoints).await?;
        Ok((
            views.into_iter().map(|view| redacted(scope, view)).collect(),
            total.max(endpoints.len() as u64),
        ))
    }

    /// One endpoint's state over every partition (the operator's view).
    pub async fn endpoint(&self, endpoint: &Endpoint) -> Result<EndpointView, StoreError> {
        self.endpoint_in(Scope::All, endpoint).await
    }

    /// One endpoint's state over every partition, as `scope` may see it
    /// ([`redacted`]).
    pub async fn endpoint_in(&self, scope: Scope<'_>, endpoint: &Endpoint) -> Result<EndpointView, StoreError> {
        let mut views = self.endpoint_views(std::slice::from_ref(endpoint)).await?;
        let view = views
            .pop()
            .unwrap_or_else(|| self.parts[0].endpoint_view(endpoint, HashMap::new(), 0, None));
        Ok(redacted(scope, view))
    }

    /// Whether jobs of `scope` go (or went, within `CASE_RETENTION`) to the
    /// endpoint: the operator's scope knows every endpoint.
    pub async fn uses(&self, scope: Scope<'_>, endpoint: &Endpoint) -> Result<bool, StoreError> {
        if scope == Scope::All {
            return Ok(true);
        }
        let used = try_join_all(self.parts.iter().map(|part| part.uses(scope, endpoint))).await?;
        Ok(used.into_iter().any(|used| used))
    }

    /// Lifts the endpoint's pause (`Retry-After`) and closes its breaker in
    /// every partition, so its due jobs go at once; `None` if no partition
    /// knows it.
    pub async fn resume(&self, endpoint: &Endpoint) -> Result<Option<EndpointView>, StoreError> {
        let found = try_join_all(self.parts.iter().map(|part| part.resume(endpoint))).await?;
        if !found.into_iter().any(|found| found) {
            return Ok(None);
        }
        self.endpoint(endpoint).await.map(Some)
    }

    /// Sets an endpoint's own rate limit (`None`: back to `ENDPOINT_RATE`),
    /// each partition its share.
    pub async fn set_rate(&self, endpoint: &Endpoint, rate: Option<f64>) -> Result<EndpointView, StoreError> {
        let share = rate.map(|rate| rate / self.parts.len() as f64);
        try_join_all(self.parts.iter().map(|part| part.set_rate(endpoint, share))).await?;
        self.endpoint(endpoint).await
    }

    async fn endpoint_views(&self, endpoints: &[Endpoint]) -> Result<Vec<EndpointView>, StoreError> {
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
                // The shares' sum, without the float dust of dividing.
                rate: view.rate.map(|rate| (rate * 1e6).round() / 1e6),
                ..view
            })
            .collect())
    }
}

/// An endpoint as `scope` may see it. The endpoint is shared: every tenant
/// whose webhooks go to its scheme, host and port shares its limits, its
/// breaker and a receiver's pause, since the receiver's capacity is one.
/// A tenant sees those, which say why its own jobs wait; the counts and the
/// errors of everyone's traffic (`in_flight`, `due`, failures in a row, the
/// last error, when it next sends) would tell it about other tenants'
/// deliveries, so they are left out. The operator sees all.
pub fn redacted(scope: Scope<'_>, view: EndpointView) -> EndpointView {
    if scope == Scope::All {
        return view;
    }
    EndpointView {
        in_flight: None,
        due: None,
        consecutive_failures: None,
        last_error: None,
        last_error_at: None,
        next_attempt_at: None,
        ..view
    }
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
        in_flight: sum(all.in_flight, one.in_flight),
        due: sum(all.due, one.due),
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

/// Two partitions' counts added up (a count neither has stays absent).
fn sum<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}
