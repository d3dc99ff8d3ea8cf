//! The review queue: cases and their delayed webhook jobs, kept in Redis.
//!
//! # Design
//!
//! Every key starts with `{prefix}` (`REDIS_PREFIX` in braces), which is
//! also the Redis Cluster hash tag, so all keys of one help desk live in one
//! slot and every script below stays atomic on a cluster too.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p}:case:<documentId>` | hash | the case: request, decision, delivery bookkeeping |
//! | `{p}:due` | sorted set | jobs waiting, scored by due time (unix ms) |
//! | `{p}:inflight` | sorted set | claimed jobs, scored by lease expiry (unix ms) |
//! | `{p}:dead` | sorted set | jobs whose every attempt failed, scored by when they died |
//! | `{p}:attempts:<documentId>` | list | the attempt log (JSON, the latest 100) |
//! | `{p}:cases` | sorted set | every case, scored by creation time (for listing) |
//!
//! A job is in exactly one of the three sets (or in none once delivered):
//!
//! ```text
//!  schedule ──► due ──claim──► inflight ──finish(ok)──► (delivered)
//!                ▲                │  │
//!                └─finish(retry)──┘  └─finish(last failure)──► dead
//!                ▲                │
//!                └──lease expired: claim takes it over (worker died)
//! ```
//!
//! * **schedule** writes the case hash and adds the job to `due` in one
//!   `MULTI`: an acknowledged request (the 202) is a job in Redis.
//! * **claim** is one Lua script: it takes jobs whose lease ran out and jobs
//!   that are due, moves them to `inflight` with a fresh lease, stamps them
//!   with the claimer's lease token, records the agent's decision the first
//!   time a case is claimed, and returns the cases. Two workers can never
//!   claim the same job while its lease runs, and a decision, once made, is
//!   never drawn again.
//! * **finish** is one Lua script that only acts if the job still carries
//!   the caller's lease token; it appends the attempt to the log, removes
//!   the job from `inflight` and either forgets it (delivered), puts it back
//!   in `due` for the next retry, or moves it to `dead`.
//! * **redeliver** (one Lua script) puts a dead or delivered case back in
//!   `due` for now and restarts its retry schedule (`retryBase`); the
//!   `webhook-id` stays, so a receiver sees a replay of the same event.
//!
//! # Guarantee
//!
//! At-least-once delivery: a job leaves the queue only after its webhook got
//! a 2xx (or it ran out of retries, into `dead`). A worker that dies between
//! claiming and finishing leaves the job in `inflight`, where the next claim
//! after `JOB_LEASE` takes it over. A delivery can therefore repeat only when
//! a lease expires while its worker is still alive (a stall longer than
//! `JOB_LEASE`, which is kept above `DELIVERY_TIMEOUT`); the stale worker's
//! `finish` is then ignored, and the receiver deduplicates by `webhook-id`.
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
//! # Several workers
//!
//! Workers share nothing but Redis, so any number of processes with
//! `HELPDESK_ROLE=worker` can serve one prefix. A worker sleeps until the
//! next due job (or lease expiry) it saw, but at most [`MAX_IDLE`]; the API
//! in the same process wakes it at once when it schedules something sooner,
//! while a worker in another process notices within [`MAX_IDLE`].
//!
//! [`MAX_IDLE`]: crate::worker::MAX_IDLE

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hookline_contract::{AttemptView, CaseView, DeliveryState, DeliveryView, DocumentStatus};
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Takes over expired leases, then due jobs, up to ARGV[3] in all.
const CLAIM: &str = r"
local now = tonumber(ARGV[1])
local lease_until = now + tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local case_prefix = ARGV[4]
local token = ARGV[5]
local decisions = ARGV[6]
-- One call per job is what costs in a script, so: one HGETALL and one HSET
-- per job, and the set moves as variadic calls for the whole batch.
local function each_chunk(list, command, key, with_score)
  local args = {}
  for _, item in ipairs(list) do
    if with_score then table.insert(args, with_score) end
    table.insert(args, item)
    if #args >= 1000 then redis.call(command, key, unpack(args)); args = {} end
  end
  if #args > 0 then redis.call(command, key, unpack(args)) end
end
local function set(hash, field, value)
  for j = 1, #hash, 2 do
    if hash[j] == field then hash[j + 1] = value; return end
  end
  table.insert(hash, field); table.insert(hash, value)
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, max)
if #ids < max then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, max - #ids)
  for _, id in ipairs(due) do table.insert(ids, id) end
end
local cases, live, gone = {}, {}, {}
for i, id in ipairs(ids) do
  local key = case_prefix .. id
  local hash = redis.call('HGETALL', key)
  if #hash == 0 then
    table.insert(gone, id)
  else
    table.insert(live, id)
    local status
    for j = 1, #hash, 2 do
      if hash[j] == 'status' then status = hash[j + 1]; break end
    end
    set(hash, 'delivery', 'IN_FLIGHT')
    set(hash, 'lease', token)
    if status == 'PENDING_REVIEW' then
      local d = string.sub(decisions, i, i) == 'A' and 'ACCEPTED' or 'DECLINED'
      set(hash, 'status', d)
      set(hash, 'decidedAt', ARGV[1])
      redis.call('HSET', key, 'delivery', 'IN_FLIGHT', 'lease', token, 'status', d, 'decidedAt', ARGV[1])
    else
      redis.call('HSET', key, 'delivery', 'IN_FLIGHT', 'lease', token)
    end
    table.insert(cases, hash)
  end
end
each_chunk(ids, 'ZREM', KEYS[1])
each_chunk(gone, 'ZREM', KEYS[2])
each_chunk(live, 'ZADD', KEYS[2], lease_until)
local wake = false
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if head[2] then wake = tonumber(head[2]) end
local lease_head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if lease_head[2] and (not wake or tonumber(lease_head[2]) < wake) then wake = tonumber(lease_head[2]) end
return {cases, wake}
";

/// KEYS: case, inflight, due, dead, attempts. ARGV: id, token, outcome,
/// now, next_at, error, attempt (JSON).
const FINISH: &str = r"
local current = redis.call('HMGET', KEYS[1], 'lease', 'attempts')
if current[1] ~= ARGV[2] then return 0 end
local attempts = (tonumber(current[2]) or 0) + 1
if redis.call('RPUSH', KEYS[5], ARGV[7]) > 100 then redis.call('LTRIM', KEYS[5], -100, -1) end
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[3] == 'delivered' then
  redis.call('HDEL', KEYS[1], 'lease', 'nextAttemptAt')
  redis.call('HSET', KEYS[1], 'attempts', attempts, 'delivery', 'DELIVERED', 'deliveredAt', ARGV[4])
elseif ARGV[3] == 'retry' then
  redis.call('HDEL', KEYS[1], 'lease')
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
  redis.call('HSET', KEYS[1], 'attempts', attempts, 'delivery', 'SCHEDULED', 'nextAttemptAt', ARGV[5],
    'lastError', ARGV[6])
else
  redis.call('HDEL', KEYS[1], 'lease', 'nextAttemptAt')
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
  redis.call('HSET', KEYS[1], 'attempts', attempts, 'delivery', 'DEAD', 'lastError', ARGV[6])
end
return 1
";

/// KEYS: case, due, inflight, dead. ARGV: id, now.
const REDELIVER: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
if redis.call('ZSCORE', KEYS[3], ARGV[1]) then return 'in_flight' end
if redis.call('HGET', KEYS[1], 'status') == 'PENDING_REVIEW' then return 'undecided' end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
local attempts = redis.call('HGET', KEYS[1], 'attempts') or '0'
redis.call('HSET', KEYS[1], 'delivery', 'SCHEDULED', 'nextAttemptAt', ARGV[2], 'retryBase', attempts)
return 'scheduled'
";

/// What can go wrong talking to the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis")]
    Redis(#[from] redis::RedisError),
    #[error("case {document_id} is malformed in Redis: {problem}")]
    Corrupt { document_id: String, problem: String },
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

    pub fn case_prefix(&self) -> String {
        format!("{}:case:", self.tag)
    }

    pub fn case(&self, document_id: &str) -> String {
        format!("{}:case:{document_id}", self.tag)
    }

    pub fn due(&self) -> String {
        format!("{}:due", self.tag)
    }

    pub fn inflight(&self) -> String {
        format!("{}:inflight", self.tag)
    }

    pub fn dead(&self) -> String {
        format!("{}:dead", self.tag)
    }

    pub fn cases(&self) -> String {
        format!("{}:cases", self.tag)
    }

    pub fn attempts(&self, document_id: &str) -> String {
        format!("{}:attempts:{document_id}", self.tag)
    }
}

/// A case as accepted by `POST /document`, before any decision.
#[derive(Debug, Clone)]
pub struct NewCase {
    pub document_id: String,
    pub agent_id: String,
    pub document_url: String,
    pub callback_url: String,
    pub request_id: Option<String>,
    pub webhook_id: String,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
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
        let record = Self {
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
            last_error: take("lastError").ok(),
            retry_base: take("retryBase").ok().and_then(|raw| raw.parse().ok()).unwrap_or(0),
            log: Vec::new(),
            lease: take("lease").ok(),
            document_id: document_id.clone(),
        };
        Ok(record)
    }

    /// The public view of `GET /document/{documentId}`.
    pub fn to_view(&self) -> CaseView {
        CaseView {
            document_id: self.document_id.clone(),
            agent_id: self.agent_id.clone(),
            document_url: self.document_url.clone(),
            callback_url: self.callback_url.clone(),
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
        _ => return None,
    })
}

/// A job a worker now holds: the case as claimed and the lease token that
/// proves the claim when finishing.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub case: CaseRecord,
    lease: String,
}

/// The result of one claim: the jobs, and when the next job will be due (or
/// the next lease expire), for the worker to sleep until then.
#[derive(Debug)]
pub struct Claim {
    pub jobs: Vec<ClaimedJob>,
    pub next_wake: Option<DateTime<Utc>>,
}

/// How one delivery attempt ended, as the worker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Delivered,
    Retry { at: DateTime<Utc>, error: String },
    Dead { error: String },
}

/// A handle on the queue; cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct Queue {
    conn: ConnectionManager,
    keys: Keys,
    claim: Script,
    finish: Script,
    redeliver: Script,
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
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// Connects (reconnecting by itself later) to `redis_url`.
    pub async fn connect(redis_url: &str, prefix: &str) -> Result<Self, QueueError> {
        let client = redis::Client::open(redis_url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            conn,
            keys: Keys::new(prefix),
            claim: Script::new(CLAIM),
            finish: Script::new(FINISH),
            redeliver: Script::new(REDELIVER),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Is Redis answering?
    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Stores the case and its job atomically. Once this returns `Ok`, the
    /// review will be decided and delivered whatever happens to this process.
    pub async fn schedule(&self, case: &NewCase) -> Result<(), QueueError> {
        let mut fields: Vec<(&str, String)> = vec![
            ("documentId", case.document_id.clone()),
            ("agentId", case.agent_id.clone()),
            ("documentUrl", case.document_url.clone()),
            ("callbackUrl", case.callback_url.clone()),
            ("webhookId", case.webhook_id.clone()),
            ("status", DocumentStatus::PendingReview.as_str().to_owned()),
            ("delivery", "SCHEDULED".to_owned()),
            ("attempts", "0".to_owned()),
            ("createdAt", case.created_at.timestamp_millis().to_string()),
            ("dueAt", case.due_at.timestamp_millis().to_string()),
        ];
        if let Some(id) = &case.request_id {
            fields.push(("id", id.clone()));
        }
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .hset_multiple(self.keys.case(&case.document_id), &fields)
            .ignore()
            .zadd(self.keys.due(), &case.document_id, case.due_at.timestamp_millis())
            .ignore()
            .zadd(self.keys.cases(), &case.document_id, case.created_at.timestamp_millis())
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// One case with its attempt log, if it exists.
    pub async fn case(&self, document_id: &str) -> Result<Option<CaseRecord>, QueueError> {
        Ok(self.cases(&[document_id.to_owned()]).await?.pop().flatten())
    }

    /// Several cases with their attempt logs, in one round trip.
    pub async fn cases(&self, document_ids: &[String]) -> Result<Vec<Option<CaseRecord>>, QueueError> {
        let mut pipe = redis::pipe();
        for id in document_ids {
            pipe.hgetall(self.keys.case(id)).lrange(self.keys.attempts(id), 0, -1);
        }
        let mut conn = self.conn.clone();
        let replies: Vec<(HashMap<String, String>, Vec<String>)> = if document_ids.is_empty() {
            Vec::new()
        } else {
            let flat: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
            flat.chunks(2)
                .map(|pair| match pair {
                    [hash, log] => Ok((
                        redis::from_redis_value(hash.clone()).map_err(redis::RedisError::from)?,
                        redis::from_redis_value(log.clone()).map_err(redis::RedisError::from)?,
                    )),
                    _ => Ok((HashMap::new(), Vec::new())),
                })
                .collect::<Result<_, redis::RedisError>>()?
        };
        replies
            .into_iter()
            .map(|(hash, log)| {
                if hash.is_empty() {
                    return Ok(None);
                }
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
    pub async fn redeliver(&self, document_id: &str, now: DateTime<Utc>) -> Result<Redelivery, QueueError> {
        let mut conn = self.conn.clone();
        let result: String = self
            .redeliver
            .key(self.keys.case(document_id))
            .key(self.keys.due())
            .key(self.keys.inflight())
            .key(self.keys.dead())
            .arg(document_id)
            .arg(now.timestamp_millis())
            .invoke_async(&mut conn)
            .await?;
        Ok(match result.as_str() {
            "scheduled" => Redelivery::Scheduled,
            "in_flight" => Redelivery::InFlight,
            "undecided" => Redelivery::Undecided,
            _ => Redelivery::NoSuchCase,
        })
    }

    /// The most recent `limit` cases, newest first, and how many there are in all.
    pub async fn recent_cases(&self, limit: usize) -> Result<(Vec<CaseRecord>, u64), QueueError> {
        self.newest(&self.keys.cases(), limit).await
    }

    /// The most recent `limit` dead letters and how many there are in all.
    pub async fn dead_letters(&self, limit: usize) -> Result<(Vec<CaseRecord>, u64), QueueError> {
        self.newest(&self.keys.dead(), limit).await
    }

    /// The cases of the `limit` highest scores of the sorted set `key`.
    async fn newest(&self, key: &str, limit: usize) -> Result<(Vec<CaseRecord>, u64), QueueError> {
        let mut conn = self.conn.clone();
        let stop = isize::try_from(limit).unwrap_or(isize::MAX).saturating_sub(1);
        let (ids, total): (Vec<String>, u64) = redis::pipe()
            .zrevrange(key, 0, stop)
            .zcard(key)
            .query_async(&mut conn)
            .await?;
        let cases = self.cases(&ids).await?.into_iter().flatten().collect();
        Ok((cases, total))
    }

    /// Claims up to `decisions.len()` jobs that are due or whose lease ran
    /// out, holding them for `lease`. `decisions[i]` is the agent's verdict
    /// for the i-th job should its case still be undecided.
    pub async fn claim(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        lease_token: &str,
        decisions: &[DocumentStatus],
    ) -> Result<Claim, QueueError> {
        let verdicts: String = decisions
            .iter()
            .map(|d| if *d == DocumentStatus::Accepted { 'A' } else { 'D' })
            .collect();
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let mut conn = self.conn.clone();
        let (hashes, wake): (Vec<HashMap<String, String>>, Option<i64>) = self
            .claim
            .key(self.keys.due())
            .key(self.keys.inflight())
            .arg(now.timestamp_millis())
            .arg(lease_ms)
            .arg(decisions.len())
            .arg(self.keys.case_prefix())
            .arg(lease_token)
            .arg(verdicts)
            .invoke_async(&mut conn)
            .await?;
        let mut jobs = Vec::with_capacity(hashes.len());
        for hash in hashes {
            let case = CaseRecord::from_hash(hash)?;
            let lease = case.lease.clone().unwrap_or_default();
            jobs.push(ClaimedJob { case, lease });
        }
        Ok(Claim {
            jobs,
            next_wake: wake.and_then(DateTime::from_timestamp_millis),
        })
    }

    /// Records an attempt and how the job goes on. Returns `false` when the
    /// job's lease had already passed to another worker, in which case
    /// nothing changes.
    pub async fn finish(&self, job: &ClaimedJob, attempt: &AttemptView, outcome: &Finish) -> Result<bool, QueueError> {
        let applied = self.finish_many(&[(job, attempt, outcome)]).await?;
        Ok(applied.first().copied().unwrap_or(false))
    }

    /// [`finish`](Self::finish) for several jobs in one round trip: one
    /// `EVALSHA` of the finish script per job, pipelined. Each script runs
    /// atomically on its own, exactly as a lone `finish` would; only the
    /// network round trip (and its syscalls, on both sides) is shared. If
    /// the batch fails (Redis unreachable, or one script erring), the error
    /// is reported for all of it: the jobs whose script did run stay
    /// finished in Redis, the others are retried once their lease expires.
    pub async fn finish_many(&self, items: &[(&ClaimedJob, &AttemptView, &Finish)]) -> Result<Vec<bool>, QueueError> {
        let mut pipe = redis::pipe();
        for (job, attempt, outcome) in items {
            let entry = serde_json::to_string(attempt).unwrap_or_default();
            let (kind, next_at, error) = match outcome {
                Finish::Delivered => ("delivered", 0, ""),
                Finish::Retry { at, error } => ("retry", at.timestamp_millis(), error.as_str()),
                Finish::Dead { error } => ("dead", 0, error.as_str()),
            };
            let id = &job.case.document_id;
            pipe.invoke_script(
                self.finish
                    .key(self.keys.case(id))
                    .key(self.keys.inflight())
                    .key(self.keys.due())
                    .key(self.keys.dead())
                    .key(self.keys.attempts(id))
                    .arg(id)
                    .arg(&job.lease)
                    .arg(kind)
                    .arg(attempt.at.timestamp_millis())
                    .arg(next_at)
                    .arg(error)
                    .arg(entry),
            );
        }
        let mut conn = self.conn.clone();
        // A pipelined EVALSHA does not load its script by itself: on a Redis
        // that does not know it yet (first use, restart, SCRIPT FLUSH), load
        // it and send the batch again. NOSCRIPT means no script of the batch ran.
        let applied: Vec<i64> = match pipe.query_async(&mut conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.finish.prepare_invoke().load_async(&mut conn).await?;
                pipe.query_async(&mut conn).await?
            }
            other => other?,
        };
        Ok(applied.into_iter().map(|applied| applied == 1).collect())
    }

    /// How many jobs are in each state (for health and tests).
    pub async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let mut conn = self.conn.clone();
        let (due, inflight, dead): (u64, u64, u64) = redis::pipe()
            .zcard(self.keys.due())
            .zcard(self.keys.inflight())
            .zcard(self.keys.dead())
            .query_async(&mut conn)
            .await?;
        Ok(QueueDepth { due, inflight, dead })
    }
}

/// Jobs per state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepth {
    pub due: u64,
    pub inflight: u64,
    pub dead: u64,
}
