//! Cases: a new one stored with its jobs in one script
//! (`cases/schedule.lua`, see "Jobs" in `docs/store.md`), one read with its
//! attempt log, the latest ones listed over every partition.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use hookline_contract::dialect::Dialect;
use hookline_contract::{AttemptView, CaseView, DeliveryState, DeliveryView, DocumentStatus, EventType};
use hookline_kit::auth::DEFAULT_TENANT;
use hookline_kit::trace::{TraceContext, to_hex};
use redis::Script;

use super::keys::{EVENT_JOB_MARK, Scope};
use super::partition::{Partition, partition_of, script};
use super::{Store, StoreError, millis};
use crate::endpoint::Endpoint;

static SCHEDULE: LazyLock<Script> = LazyLock::new(|| script(include_str!("cases/schedule.lua")));

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
    /// stored (by the store's clock).
    pub delay: Duration,
    /// Its own chaos profile (`Hookline-Chaos`), for its jobs' attempts
    /// (`None`: the help desk's `CHAOS`).
    pub chaos: Option<String>,
    /// The `reorder` fault: its `document.received` events are held back
    /// until after its decision.
    pub reorder: bool,
    /// How its callback is signed (`Hookline-Dialect`; `None`: Standard
    /// Webhooks, and nothing is stored). Its events are signed in their
    /// subscriptions' own.
    pub dialect: Option<Dialect>,
    /// The seed of its chaos draws (`Hookline-Chaos-Seed`), kept with each
    /// of its jobs; `None`: drawn at random.
    pub chaos_seed: Option<u64>,
    /// The W3C `traceparent` of the request's span at the help desk, kept
    /// with the case and its events so that every delivery attempt joins
    /// that trace (`None`: no trace, nothing stored).
    pub traceparent: Option<String>,
}

/// What [`Store::schedule`] did with a new case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduled {
    /// Stored; due in `due_in` (by the store's clock), for the worker's
    /// wake-up; `received` and `decided` event jobs queued for the tenant's
    /// subscriptions (`document.received`, the decision's event).
    Created {
        /// The case's documentId: the one asked for, or, for a tenant with an
        /// ordered subscription, one drawn in its home partition.
        document_id: String,
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
    /// What an operational event (`endpoint.*`, `message.attempt.exhausted`) is about.
    pub about: Option<About>,
}

/// What an operational event is about, as `disable.rs`'s scripts store it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct About {
    /// The subscription disabled, enabled, or whose message died.
    pub subscription_id: String,
    pub url: Option<String>,
    pub reason: Option<hookline_contract::DisableReason>,
    pub error: Option<String>,
    /// The dead message's webhook-id and event type (`message.attempt.exhausted`).
    pub message: Option<String>,
    pub event: Option<EventType>,
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
    /// Whose key created it: only that tenant's keys (and the operator's)
    /// see it, and its callback is signed with that tenant's secrets
    /// ([`crate::signing`]).
    pub tenant: String,
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
    /// The attempt log, oldest first (only filled by [`Store::case`]).
    pub log: Vec<AttemptView>,
    /// The endpoint its webhook goes to (`scheme://host:port`).
    pub endpoint: Option<String>,
    /// Set when the job delivers an event to a subscription.
    pub event: Option<EventJob>,
    /// The case's own chaos profile (`Hookline-Chaos`), as text.
    pub chaos: Option<String>,
    /// The job is a `document.received` event held back by the `reorder` fault.
    pub chaos_reorder: bool,
    /// How its callback is signed (`Hookline-Dialect`), read with the rest
    /// of the hash; Standard Webhooks when the case has none (and for event
    /// jobs, signed in their subscription's dialect).
    pub dialect: Dialect,
    /// The seed of its case's chaos draws (`Hookline-Chaos-Seed`).
    pub chaos_seed: Option<u64>,
    /// The trace its attempts join (`traceparent` of `POST /document`'s span).
    pub traceparent: Option<String>,
    pub(super) lease: Option<String>,
}

impl CaseRecord {
    pub(super) fn from_hash(mut hash: HashMap<String, String>) -> Result<Self, StoreError> {
        let document_id = hash.remove("documentId").unwrap_or_default();
        let corrupt = |problem: String| StoreError::Corrupt {
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
                about: take("about").ok().map(|subscription_id| About {
                    subscription_id,
                    url: take("aboutUrl").ok(),
                    reason: take("aboutReason").ok().and_then(|raw| raw.parse().ok()),
                    error: take("aboutError").ok().filter(|error| !error.is_empty()),
                    message: take("aboutMessage").ok(),
                    event: take("aboutEvent").ok().and_then(|raw| raw.parse().ok()),
                }),
            }),
        };
        let verdict: Option<DocumentStatus> = take("verdict").ok().and_then(|raw| raw.parse().ok());
        let mut record = Self {
            agent_id: take("agentId")?,
            document_url: take("documentUrl")?,
            callback_url: take("callbackUrl")?,
            webhook_id: take("webhookId")?,
            // Every job stores it; one without is the default tenant's, so
            // it never borrows a named tenant's secrets.
            tenant: take("tenant").unwrap_or_else(|_| DEFAULT_TENANT.to_owned()),
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
            dialect: match take("dialect").ok() {
                None => Dialect::Standard,
                Some(raw) => raw.parse().map_err(|_| corrupt(format!("bad dialect {raw:?}")))?,
            },
            chaos_seed: take("chaosSeed").ok().and_then(|raw| raw.parse().ok()),
            traceparent: take("traceparent").ok(),
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
            dialect: (self.event.is_none() && self.dialect != Dialect::Standard).then_some(self.dialect),
            chaos_seed: self.chaos_seed,
            trace_id: self
                .traceparent
                .as_deref()
                .and_then(TraceContext::parse)
                .map(|context| to_hex(&context.trace_id)),
        }
    }

    /// The number of the next attempt within the current round (1-based),
    /// which picks the delay from `RETRY_SCHEDULE`.
    pub fn attempt_in_round(&self) -> u32 {
        self.attempts.saturating_sub(self.retry_base) + 1
    }
}

/// The home partition answered `elsewhere`: never (it compares its own tag).
fn unreachable_elsewhere(case: &NewCase) -> StoreError {
    StoreError::Corrupt {
        document_id: case.document_id.clone(),
        problem: "the home partition sent the case elsewhere".to_owned(),
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

impl Partition {
    /// Stores the case and its job atomically, unless a request with the
    /// same `request_id` was accepted before (see [`Scheduled`]). Once this
    /// returns `Created`, the review will be decided and delivered whatever
    /// happens to this process.
    /// `None`: the tenant has an ordered subscription and `home` (its home
    /// partition's tag, `""` with one partition) is another partition.
    pub(super) async fn schedule(&self, case: &NewCase, home: &str) -> Result<Option<Scheduled>, StoreError> {
        let endpoint = match &case.callback_url {
            Some(url) => Endpoint::of_str(url)
                .map_err(|e| StoreError::Corrupt {
                    document_id: case.document_id.clone(),
                    problem: e.to_string(),
                })?
                .to_string(),
            None => String::new(),
        };
        let request = case.request_id.as_deref().unwrap_or_default();
        let mut invocation = self.invocation(&SCHEDULE);
        invocation
            .key(self.keys.case(&case.document_id))
            .key(self.keys.request(&case.tenant, request))
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
            .arg(if case.reorder { "1" } else { "" })
            .arg(case.dialect.map_or("", Dialect::name))
            .arg(case.chaos_seed.map(|seed| seed.to_string()).unwrap_or_default())
            .arg(case.traceparent.as_deref().unwrap_or_default())
            .arg(home);
        let (outcome, document_id, agent_id, due_in, received, decided): (String, String, String, u64, u64, u64) =
            self.invoke_replicated(&SCHEDULE, &invocation).await?;
        Ok(Some(match outcome.as_str() {
            "replayed" => Scheduled::Replayed { document_id, agent_id },
            "conflict" => Scheduled::Conflict { document_id },
            "elsewhere" => return Ok(None),
            _ => Scheduled::Created {
                document_id: case.document_id.clone(),
                due_in: Duration::from_millis(due_in),
                received,
                decided,
            },
        }))
    }

    /// One case with its attempt log, if it exists.
    pub(super) async fn case(&self, document_id: &str) -> Result<Option<CaseRecord>, StoreError> {
        Ok(self.cases(&[document_id.to_owned()]).await?.pop().flatten())
    }

    /// Several cases with their attempt logs, in one round trip.
    pub(super) async fn cases(&self, document_ids: &[String]) -> Result<Vec<Option<CaseRecord>>, StoreError> {
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
                // The log of a case stored before it moved into the hash
                // (a list of its own), then the hash's: one is empty.
                let old: Vec<String> = redis::from_redis_value(log.clone()).map_err(redis::RedisError::from)?;
                let mut hash = hash;
                let log = hash.remove("log");
                let mut case = CaseRecord::from_hash(hash)?;
                case.log = old
                    .iter()
                    .filter_map(|entry| serde_json::from_str(entry).ok())
                    .collect();
                if let Some(log) = log.filter(|log| !log.is_empty()) {
                    let entries: Vec<serde_json::Value> = serde_json::from_str(&log).unwrap_or_default();
                    case.log.extend(
                        entries
                            .into_iter()
                            .filter_map(|entry| serde_json::from_value(entry).ok()),
                    );
                }
                Ok(Some(case))
            })
            .collect()
    }
}

impl Store {
    /// Stores the case and its jobs atomically, in its partition (see
    /// `Partition::schedule`). The documentId must come from
    /// [`new_document_id`](Self::new_document_id) when the request has an `id`.
    ///
    /// With several partitions, the cases of a tenant with an ordered
    /// subscription live in its home partition (`partition_of(tenant)`), so
    /// that one script queues, and orders, all their events: a case drawn
    /// elsewhere is told so by the script (nothing stored) and is stored
    /// there under a documentId drawn to hash there. A retried request finds
    /// its `id` in either (the script looks for it before it answers
    /// `elsewhere`). Other tenants' cases spread as before, at no cost.
    pub async fn schedule(&self, case: &NewCase) -> Result<Scheduled, StoreError> {
        if self.parts.len() == 1 {
            let scheduled = self.parts[0].schedule(case, "").await?;
            return scheduled.ok_or_else(|| unreachable_elsewhere(case));
        }
        let home_index = partition_of(&case.tenant, self.parts.len());
        let home = &self.parts[home_index];
        if let Some(scheduled) = self.part_of(&case.document_id).schedule(case, home.keys.tag()).await? {
            return Ok(scheduled);
        }
        let moved = NewCase {
            document_id: self.new_document_id_in(home_index),
            ..case.clone()
        };
        home.schedule(&moved, home.keys.tag())
            .await?
            .ok_or_else(|| unreachable_elsewhere(case))
    }

    /// One case (or event job) with its attempt log, if it exists (any
    /// tenant's: for the worker; the API reads [`case_in`](Self::case_in)).
    pub async fn case(&self, id: &str) -> Result<Option<CaseRecord>, StoreError> {
        self.part_of_job(id).await?.case(id).await
    }

    /// One case (or event job) with its attempt log, if it exists and is in
    /// `scope`: another tenant's is `None`, as if it did not exist.
    pub async fn case_in(&self, scope: Scope<'_>, id: &str) -> Result<Option<CaseRecord>, StoreError> {
        Ok(self.case(id).await?.filter(|case| scope.sees(&case.tenant)))
    }

    /// The most recent `limit` cases (every tenant's), newest first, and how
    /// many there are in all.
    pub async fn recent_cases(&self, limit: usize) -> Result<(Vec<CaseRecord>, u64), StoreError> {
        self.recent_cases_in(Scope::All, limit).await
    }

    /// The most recent `limit` cases of `scope`, newest first, and how many
    /// there are in all.
    pub async fn recent_cases_in(&self, scope: Scope<'_>, limit: usize) -> Result<(Vec<CaseRecord>, u64), StoreError> {
        self.merged(limit, |part| part.keys.cases_of(scope)).await
    }

    /// The most recent `limit` dead letters (every tenant's) and how many
    /// there are in all.
    pub async fn dead_letters(&self, limit: usize) -> Result<(Vec<CaseRecord>, u64), StoreError> {
        self.dead_letters_in(Scope::All, limit).await
    }

    /// The most recent `limit` dead letters of `scope` and how many there are in all.
    pub async fn dead_letters_in(&self, scope: Scope<'_>, limit: usize) -> Result<(Vec<CaseRecord>, u64), StoreError> {
        self.merged(limit, |part| part.keys.dead_of(scope)).await
    }

    /// The `limit` highest-scored members over every partition's sorted set
    /// `key`, as cases, and how many there are in all.
    async fn merged(
        &self,
        limit: usize,
        key: impl Fn(&Partition) -> String,
    ) -> Result<(Vec<CaseRecord>, u64), StoreError> {
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
}
