//! Disable and tell: a subscription whose receiver is gone stops being
//! sent to, and its tenant is told.
//!
//! * **Counting** happens where the outcome is recorded (`jobs/finish.lua`),
//!   in the subscription's hash: `failingSince` (the first failed attempt
//!   since its last delivery) and `deadInRow` (dead letters since then). A
//!   delivery resets both in the `HSET` it already made, so a healthy
//!   subscription's hot path costs no Redis call more.
//! * **Disabling**: a `410 Gone` disables at once (Standard Webhooks: "stop
//!   sending"); otherwise a dead letter disables when the streak is at least
//!   [`DisablePolicy::after`] old and [`DisablePolicy::dead_in_row`] long.
//!   Both, because either alone misleads: a slow trickle of events might
//!   take weeks to reach a count, and a burst of dead letters within an
//!   hour is an outage, not a receiver that is gone.
//! * **A disabled subscription** gets nothing: the fan-out skips it (new
//!   events are not queued: kept, they would be a flood on re-enabling, and
//!   the dead letters already say what it missed), and the worker cancels
//!   what was queued before.
//! * **Operational events**, queued by the same scripts for the tenant's
//!   other subscriptions that want them, as any event: `endpoint.disabled`,
//!   `endpoint.enabled` (`subscriptions/enable.lua`) and
//!   `message.attempt.exhausted` (a dead letter). None goes to the
//!   subscription it is about. Loops end: a dead `message.attempt.exhausted`
//!   tells of nothing more (else two failing subscriptions would tell each
//!   other of each other's forever), a disabled subscription is sent
//!   nothing, and a subscription is disabled once.
//! * **Copies**: each partition keeps a copy of a subscription and counts
//!   the streak of the events it holds; the partition that disables one
//!   says so, and [`Store::finish_batch`] disables the other copies.
//!
//! The per-case callback URL of the tutorial (`X-Callback-Url`) has no
//! lasting identity to disable: a 410 there dead-letters that one case.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hookline_contract::{DisableReason, EventType};
use redis::Script;

use super::jobs::Recorded;
use super::partition::{Partition, script};
use super::{Store, StoreError};

static ENABLE: LazyLock<Script> = LazyLock::new(|| script(include_str!("subscriptions/enable.lua")));

/// When the help desk disables a failing subscription (`DISABLE_AFTER`,
/// `DISABLE_AFTER_DEAD`; see their doc comments in `config.rs` for the
/// defaults' reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisablePolicy {
    /// How long its messages must have failed with no delivery in between.
    pub after: Duration,
    /// How many of them must have become dead letters in a row.
    pub dead_in_row: u32,
}

impl Default for DisablePolicy {
    fn default() -> Self {
        Self {
            after: Duration::from_secs(5 * 24 * 3600),
            dead_in_row: 10,
        }
    }
}

/// A subscription a finish disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disabled {
    pub subscription_id: String,
    pub tenant: String,
    pub reason: DisableReason,
    pub error: String,
    pub at: DateTime<Utc>,
    /// The partition whose copy the script disabled.
    pub(super) partition: usize,
}

impl Disabled {
    /// The script's flat list: id, tenant, reason, error, when (unix ms).
    pub(super) fn from_script(flat: &[String]) -> Vec<Self> {
        flat.chunks_exact(5)
            .map(|five| Self {
                subscription_id: five[0].clone(),
                tenant: five[1].clone(),
                reason: five[2].parse().unwrap_or(DisableReason::Failing),
                error: five[3].clone(),
                at: five[4]
                    .parse()
                    .ok()
                    .and_then(DateTime::from_timestamp_millis)
                    .unwrap_or_else(Utc::now),
                partition: 0,
            })
            .collect()
    }
}

/// What recording a batch of outcomes did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// One per job, in order.
    pub recorded: Vec<Recorded>,
    /// The subscriptions it disabled.
    pub disabled: Vec<Disabled>,
    /// The operational events it queued (`endpoint.disabled`,
    /// `message.attempt.exhausted`), by type.
    pub queued: Vec<(EventType, u64)>,
}

impl Finished {
    /// The `queued` list of `finish.lua`'s answer: type, count, ...
    pub(super) fn queued_from_script(flat: &[String]) -> Vec<(EventType, u64)> {
        flat.chunks(2)
            .filter_map(|pair| match pair {
                [event, count] => Some((event.parse().ok()?, count.parse().ok()?)),
                _ => None,
            })
            .collect()
    }
}

/// What `POST /webhooks/{id}/enable` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enabled {
    /// It was disabled; it is enabled now, and the tenant was told: `told`
    /// `endpoint.enabled` events were queued (in partition 0; 0 elsewhere).
    Enabled {
        told: u64,
    },
    /// It was enabled already: nothing changed.
    Already,
    NoSuchSubscription,
}

impl Partition {
    /// Enables the tenant's subscription `id` here; `tell`: queue
    /// `endpoint.enabled` for the tenant's other subscriptions.
    async fn enable(&self, tenant: &str, id: &str, webhook_id: &str, tell: bool) -> Result<Enabled, StoreError> {
        let mut conn = self.conn.clone();
        let (done, told): (i64, u64) = self
            .invocation(&ENABLE)
            .key(self.keys.subscription(id))
            .arg(tenant)
            .arg(webhook_id)
            .arg(if tell { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await?;
        Ok(match done {
            1 => Enabled::Enabled { told },
            2 => Enabled::Already,
            _ => Enabled::NoSuchSubscription,
        })
    }

    /// Disables this partition's copy of a subscription another partition
    /// disabled (through `subscriptions/update.lua`, which checks the tenant,
    /// so a subscription deleted meanwhile is not written back half).
    async fn copy_disablement(&self, disabled: &Disabled) -> Result<(), StoreError> {
        let at = disabled.at.timestamp_millis().to_string();
        let args = [
            "set",
            "disabled",
            "1",
            "disabledAt",
            &at,
            "disabledReason",
            disabled.reason.as_str(),
            "disabledError",
            &disabled.error,
        ]
        .map(str::to_owned);
        self.change_subscription(&disabled.tenant, &disabled.subscription_id, &args)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Disables, in every other partition, the copies of the subscriptions
    /// a finish disabled in one.
    pub(super) async fn copy_disablements(&self, finished: &mut Finished) -> Result<(), StoreError> {
        for disabled in &finished.disabled {
            for (k, part) in self.parts.iter().enumerate() {
                if k != disabled.partition {
                    part.copy_disablement(disabled).await?;
                }
            }
        }
        Ok(())
    }

    /// Enables the tenant's subscription `id` in every partition (partition
    /// 0, the one read, last, and the one that queues `endpoint.enabled`).
    pub async fn enable_subscription(&self, tenant: &str, id: &str) -> Result<Enabled, StoreError> {
        let webhook_id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let mut outcome = Enabled::NoSuchSubscription;
        for (k, part) in self.parts.iter().enumerate().rev() {
            outcome = part.enable(tenant, id, &webhook_id, k == 0).await?;
        }
        // Partition 0 is last: its answer (and its count) is the one kept.
        Ok(outcome)
    }

    /// How many subscriptions are disabled, for the gauge.
    pub async fn disabled_subscriptions(&self) -> Result<u64, StoreError> {
        let mut conn = self.parts[0].conn.clone();
        let count: u64 = redis::cmd("SCARD")
            .arg(self.parts[0].keys.disabled_subscriptions())
            .query_async(&mut conn)
            .await?;
        Ok(count)
    }
}
