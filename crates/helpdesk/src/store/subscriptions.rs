//! Subscriptions: `{p}:sub:<id>` a hash, `{p}:subs:<tenant>` a tenant's ids
//! by creation time. The fan-out in `cases/schedule.lua` reads them, so an
//! event's jobs are queued in the same atomic step as its case. With
//! several partitions each holds a copy (every scheduling script reads its
//! own). Partition 0 is the one the API reads, and the one that counts: a
//! new subscription is stored there first, by `subscriptions/create.lua`,
//! which checks the tenant's cap in the same step, so concurrent requests
//! never store more than the cap (one place must hold the count for one
//! script to check it; the copies elsewhere follow, and are taken back if
//! they cannot be written). Changes and deletions go to partition 0 last.
//!
//! Its `dialect` field says how its events are signed (absent: Standard
//! Webhooks, as every subscription stored before dialects was); the worker
//! reads it with the rest of the hash it already reads for the secret.
//!
//! The secret has to be kept readable (the help desk signs with it); it is
//! shown in full only when it is made (`POST /webhooks`, `rotate-secret`).

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hookline_contract::dialect::Dialect;
use hookline_contract::signature::{SecretSet, WebhookSecret};
use hookline_contract::{DisableReason, Disablement, EventType, Subscription, SubscriptionStats};
use redis::Script;

use super::keys::EVENT_JOB_MARK;
use super::partition::{Partition, script};
use super::{Store, StoreError};
use crate::endpoint::Endpoint;

static UPDATE: LazyLock<Script> = LazyLock::new(|| script(include_str!("subscriptions/update.lua")));
static TEST_EVENT: LazyLock<Script> = LazyLock::new(|| script(include_str!("subscriptions/test_event.lua")));
static CREATE: LazyLock<Script> = LazyLock::new(|| script(include_str!("subscriptions/create.lua")));

/// A subscription to store.
#[derive(Debug, Clone)]
pub struct NewSubscriptionRecord {
    pub tenant: String,
    pub url: String,
    pub endpoint: Endpoint,
    pub events: Vec<EventType>,
    pub description: Option<String>,
    pub dialect: Dialect,
    /// Its events one at a time, in order (see `prelude.lua`'s `fifo_add`).
    pub ordered: bool,
}

/// What `PATCH /webhooks/{id}` changes (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct SubscriptionChange {
    pub url: Option<(String, Endpoint)>,
    pub events: Option<Vec<EventType>>,
    pub disabled: Option<bool>,
    pub description: Option<String>,
    pub dialect: Option<Dialect>,
    pub ordered: Option<bool>,
}

/// A subscription as stored.
#[derive(Debug, Clone)]
pub struct SubscriptionRecord {
    pub id: String,
    pub tenant: String,
    pub url: String,
    pub events: Vec<EventType>,
    pub description: Option<String>,
    /// How its events are signed.
    pub dialect: Dialect,
    /// Its events are delivered one at a time, in order.
    pub ordered: bool,
    secret: WebhookSecret,
    previous: Option<(WebhookSecret, DateTime<Utc>)>,
    pub disabled: bool,
    /// Why and since when, while disabled.
    pub disablement: Option<Disablement>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub stats: SubscriptionStats,
}

impl SubscriptionRecord {
    fn from_hash(id: &str, mut hash: HashMap<String, String>) -> Result<Self, StoreError> {
        let corrupt = |problem: &str| StoreError::Corrupt {
            document_id: format!("subscription {id}"),
            problem: problem.to_owned(),
        };
        let time = |raw: Option<&String>| {
            raw.and_then(|ms| ms.parse().ok())
                .and_then(DateTime::from_timestamp_millis)
        };
        let count = |raw: Option<&String>| raw.and_then(|n| n.parse().ok()).unwrap_or(0);
        let secret: WebhookSecret = hash
            .get("secret")
            .and_then(|raw| raw.parse().ok())
            .ok_or_else(|| corrupt("no readable secret"))?;
        let previous = match (hash.get("previousSecret"), time(hash.get("previousUntil"))) {
            (Some(raw), Some(until)) => raw.parse().ok().map(|old| (old, until)),
            _ => None,
        };
        let created_at = time(hash.get("createdAt")).ok_or_else(|| corrupt("no createdAt"))?;
        let dialect = match hash.get("dialect") {
            None => Dialect::Standard,
            Some(raw) => raw.parse().map_err(|_| corrupt("an unknown dialect"))?,
        };
        let disabled = hash.get("disabled").is_some_and(|d| d == "1");
        // One disabled before reasons were kept was disabled by hand.
        let disablement = disabled.then(|| Disablement {
            at: time(hash.get("disabledAt"))
                .or_else(|| time(hash.get("updatedAt")))
                .unwrap_or(created_at),
            reason: hash
                .get("disabledReason")
                .and_then(|raw| raw.parse().ok())
                .unwrap_or(DisableReason::Manual),
            last_error: hash.remove("disabledError").filter(|e| !e.is_empty()),
        });
        Ok(Self {
            id: id.to_owned(),
            tenant: hash.remove("tenant").ok_or_else(|| corrupt("no tenant"))?,
            url: hash.remove("url").ok_or_else(|| corrupt("no url"))?,
            events: hash
                .get("events")
                .map(|events| events.split_whitespace().filter_map(|e| e.parse().ok()).collect())
                .unwrap_or_default(),
            description: hash.remove("description").filter(|d| !d.is_empty()),
            dialect,
            ordered: hash.get("ordered").is_some_and(|o| o == "1"),
            secret,
            previous,
            disabled,
            disablement,
            created_at,
            updated_at: time(hash.get("updatedAt")).unwrap_or(created_at),
            stats: SubscriptionStats {
                delivered: count(hash.get("delivered")),
                failed_attempts: count(hash.get("failedAttempts")),
                dead: count(hash.get("dead")),
                last_attempt_at: time(hash.get("lastAttemptAt")),
                last_error: hash.remove("lastError").filter(|e| !e.is_empty()),
            },
        })
    }

    /// The view of the API: the secret in full only when `reveal`.
    pub fn to_view(&self, reveal: bool) -> Subscription {
        let now = Utc::now();
        Subscription {
            id: self.id.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            description: self.description.clone(),
            secret: if reveal {
                self.secret.expose()
            } else {
                "whsec_********".to_owned()
            },
            previous_secret_until: self
                .previous
                .as_ref()
                .map(|(_, until)| *until)
                .filter(|until| *until > now),
            dialect: self.dialect,
            ordered: self.ordered,
            disabled: self.disabled,
            disablement: self.disablement.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            stats: self.stats.clone(),
        }
    }

    /// What its events are signed with at `now`: its secret, and the one
    /// before the last rotation while the overlap lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> SecretSet {
        let mut secrets = vec![self.secret.clone()];
        if let Some((old, until)) = &self.previous
            && *until > now
        {
            secrets.push(old.clone());
        }
        SecretSet::new(secrets).unwrap_or_else(|_| unreachable!("one secret at least"))
    }

    /// Adds the delivery counts another partition keeps for it.
    pub(super) fn add_stats(&mut self, other: &SubscriptionRecord) {
        let (mine, theirs) = (&mut self.stats, &other.stats);
        mine.delivered += theirs.delivered;
        mine.failed_attempts += theirs.failed_attempts;
        mine.dead += theirs.dead;
        if theirs.last_attempt_at > mine.last_attempt_at {
            mine.last_attempt_at = theirs.last_attempt_at;
            mine.last_error = theirs.last_error.clone();
        }
    }

    pub fn wants(&self, event: EventType) -> bool {
        self.events.contains(&event)
    }
}

/// The `events` field: space-separated with a space at either end, so the
/// fan-out script finds ` name ` with a plain substring search.
fn events_field(events: &[EventType]) -> String {
    let names: Vec<&str> = events.iter().map(|event| event.as_str()).collect();
    format!(" {} ", names.join(" "))
}

fn new_secret() -> WebhookSecret {
    WebhookSecret::from_array(rand::random())
}

/// A new subscription as stored, the same in every partition.
#[derive(Debug, Clone)]
pub(super) struct StoredSubscription {
    pub(super) id: String,
    fields: Vec<(&'static str, String)>,
    created_at: i64,
}

impl StoredSubscription {
    /// A new subscription's fields, with a new id and secret.
    fn new(new: &NewSubscriptionRecord) -> Self {
        let id = format!("sub_{}", uuid::Uuid::now_v7().simple());
        let now = Utc::now().timestamp_millis();
        let fields = vec![
            ("id", id.clone()),
            ("tenant", new.tenant.clone()),
            ("url", new.url.clone()),
            ("endpoint", new.endpoint.to_string()),
            ("events", events_field(&new.events)),
            ("description", new.description.clone().unwrap_or_default()),
            ("dialect", new.dialect.name().to_owned()),
            ("ordered", if new.ordered { "1" } else { "0" }.to_owned()),
            ("secret", new_secret().expose()),
            ("disabled", "0".to_owned()),
            ("createdAt", now.to_string()),
        ];
        Self {
            id,
            fields,
            created_at: now,
        }
    }
}

impl Partition {
    /// Stores a new subscription here unless the tenant has `max` already
    /// (then false): the count and the write in one script.
    async fn create_subscription(
        &self,
        tenant: &str,
        stored: &StoredSubscription,
        max: u64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.invocation(&CREATE);
        invocation
            .key(self.keys.subscription(&stored.id))
            .key(self.keys.subscriptions(tenant))
            .arg(max)
            .arg(&stored.id)
            .arg(stored.created_at);
        for (field, value) in &stored.fields {
            invocation.arg(*field).arg(value);
        }
        let stored: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(stored == 1)
    }

    /// Writes a new subscription into this partition.
    pub(super) async fn store_subscription(&self, tenant: &str, stored: &StoredSubscription) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .hset_multiple(self.keys.subscription(&stored.id), &stored.fields)
            .zadd(self.keys.subscriptions(tenant), &stored.id, stored.created_at)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// One subscription; with `tenant`, only if it is that tenant's.
    pub(super) async fn subscription(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<SubscriptionRecord>, StoreError> {
        if id.contains(EVENT_JOB_MARK) || id.contains(':') {
            return Ok(None); // never a subscription id; keeps keys unambiguous
        }
        let mut conn = self.conn.clone();
        let hash: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.subscription(id))
            .query_async(&mut conn)
            .await?;
        if hash.is_empty() || tenant.is_some_and(|tenant| hash.get("tenant").map(String::as_str) != Some(tenant)) {
            return Ok(None);
        }
        SubscriptionRecord::from_hash(id, hash).map(Some)
    }

    /// A tenant's subscriptions, oldest first.
    pub(super) async fn subscriptions(&self, tenant: &str) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.subscriptions(tenant))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(self.keys.subscription(id));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        ids.iter()
            .zip(hashes)
            .filter(|(_, hash)| !hash.is_empty())
            .map(|(id, hash)| SubscriptionRecord::from_hash(id, hash))
            .collect()
    }

    /// Whether the tenant has a subscription that receives events.
    pub(super) async fn has_enabled_subscription(&self, tenant: &str) -> Result<bool, StoreError> {
        Ok(self.subscriptions(tenant).await?.iter().any(|sub| !sub.disabled))
    }

    /// Runs `subscriptions/update.lua` for the tenant's subscription `id`; false if
    /// there is none.
    pub(super) async fn change_subscription(
        &self,
        tenant: &str,
        id: &str,
        args: &[String],
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.invocation(&UPDATE);
        invocation
            .key(self.keys.subscription(id))
            .key(self.keys.subscriptions(tenant))
            .arg(tenant);
        for arg in args {
            invocation.arg(arg);
        }
        let done: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(done == 1)
    }

    /// The arguments of `subscriptions/update.lua` that apply `change`.
    pub(super) fn update_args(change: &SubscriptionChange) -> Vec<String> {
        let mut args = vec!["set".to_owned()];
        let mut field = |name: &str, value: String| {
            args.push(name.to_owned());
            args.push(value);
        };
        if let Some((url, endpoint)) = &change.url {
            field("url", url.clone());
            field("endpoint", endpoint.to_string());
        }
        if let Some(events) = &change.events {
            field("events", events_field(events));
        }
        if let Some(disabled) = change.disabled {
            field("disabled", if disabled { "1" } else { "0" }.to_owned());
        }
        if let Some(description) = &change.description {
            field("description", description.clone());
        }
        if let Some(dialect) = change.dialect {
            field("dialect", dialect.name().to_owned());
        }
        if let Some(ordered) = change.ordered {
            field("ordered", if ordered { "1" } else { "0" }.to_owned());
        }
        field("updatedAt", Utc::now().timestamp_millis().to_string());
        args
    }

    /// The arguments of `subscriptions/update.lua` that give a subscription a new
    /// secret, the old one signing beside it for `overlap`.
    pub(super) fn rotate_args(overlap: Duration) -> Vec<String> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(overlap).unwrap_or(chrono::Duration::MAX);
        vec![
            "rotate".to_owned(),
            new_secret().expose(),
            until.timestamp_millis().to_string(),
            now.timestamp_millis().to_string(),
        ]
    }

    /// Queues a `webhook.test` for the subscription; its job's webhook-id,
    /// or `None` if the subscription does not exist.
    pub(super) async fn queue_test_event(&self, id: &str, message: &str) -> Result<Option<String>, StoreError> {
        let webhook_id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let mut conn = self.conn.clone();
        let job: Option<String> = self
            .invocation(&TEST_EVENT)
            .key(self.keys.subscription(id))
            .arg(id)
            .arg(&webhook_id)
            .arg(message)
            .invoke_async(&mut conn)
            .await?;
        Ok(job.map(|_| webhook_id))
    }
}

impl Store {
    /// Stores a subscription with a new secret in every partition, unless
    /// the tenant has `max` already (then `None`): partition 0 counts and
    /// stores in one script, then the others get their copies. If a copy
    /// cannot be written, the subscription is taken back everywhere, so none
    /// is left that only some cases would fan out to.
    pub async fn create_subscription(
        &self,
        new: &NewSubscriptionRecord,
        max: u64,
    ) -> Result<Option<SubscriptionRecord>, StoreError> {
        let stored = StoredSubscription::new(new);
        if !self.parts[0].create_subscription(&new.tenant, &stored, max).await? {
            return Ok(None);
        }
        for part in self.parts.iter().skip(1) {
            if let Err(error) = part.store_subscription(&new.tenant, &stored).await {
                // Best effort: the error that matters is the one answered.
                let _ = self.delete_subscription(&new.tenant, &stored.id).await;
                return Err(error);
            }
        }
        self.subscription(Some(&new.tenant), &stored.id).await
    }

    /// One subscription; with `tenant`, only if it is that tenant's. Its
    /// delivery counts are summed over the partitions.
    pub async fn subscription(&self, tenant: Option<&str>, id: &str) -> Result<Option<SubscriptionRecord>, StoreError> {
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
    pub async fn subscriptions(&self, tenant: &str) -> Result<Vec<SubscriptionRecord>, StoreError> {
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
    pub async fn has_enabled_subscription(&self, tenant: &str) -> Result<bool, StoreError> {
        self.parts[0].has_enabled_subscription(tenant).await
    }

    /// Changes the tenant's subscription `id` in every partition
    /// (partition 0, the one read, last); `None` if there is none.
    pub async fn update_subscription(
        &self,
        tenant: &str,
        id: &str,
        change: &SubscriptionChange,
    ) -> Result<Option<SubscriptionRecord>, StoreError> {
        self.change_everywhere(tenant, id, &Partition::update_args(change))
            .await
    }

    /// Deletes the tenant's subscription `id`; false if there is none.
    pub async fn delete_subscription(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
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
    ) -> Result<Option<SubscriptionRecord>, StoreError> {
        self.change_everywhere(tenant, id, &Partition::rotate_args(overlap))
            .await
    }

    async fn change_everywhere(
        &self,
        tenant: &str,
        id: &str,
        args: &[String],
    ) -> Result<Option<SubscriptionRecord>, StoreError> {
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
    pub async fn queue_test_event(&self, id: &str, message: &str) -> Result<Option<String>, StoreError> {
        self.part_of(id).queue_test_event(id, message).await
    }
}
