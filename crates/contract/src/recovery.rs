//! Recovering after an outage: every message that failed in a window sent
//! again through the normal queue (Svix's "recover since"), and the
//! progress of such a recovery, which runs in the background.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `POST /webhooks/{id}/recover` and `POST /dead-letters/redeliver`: which
/// dead letters to send again. A message counts by when it died (its last
/// attempt failed, or it ran out of retries), so "since the outage began"
/// catches every message the outage killed, however old.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecoverRequest {
    /// Messages that died at or after this time (RFC 3339).
    pub since: DateTime<Utc>,
    /// ... and before this time; default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// Only events of this type (e.g. `document.decided`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Only this subscription's events (`POST /webhooks/{id}/recover` sets it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// Only messages to this endpoint (`scheme://host:port`, as `GET
    /// /endpoints` names it): a tutorial-style callback's receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Where a recovery is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryState {
    Running,
    Done,
    /// Stopped by an error (`error` says which); what was scheduled stays so.
    Failed,
}

/// A recovery and how far it got (`GET /recoveries/{id}`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryView {
    pub id: String,
    pub state: RecoveryState,
    /// What it resends, `until` filled in.
    pub filter: RecoverRequest,
    /// Dead letters of the window that pass the filter.
    pub matched: u64,
    /// Sent back to the queue: each is delivered (or dies) again as any
    /// message does, limits, breaker and chaos included.
    pub scheduled: u64,
    /// Matched but not sent again: no longer dead when their turn came
    /// (redelivered meanwhile, or forgotten by retention).
    pub skipped: u64,
    /// More dead letters matched than one recovery takes: the oldest were
    /// sent; the same recovery again sends the rest (what this one
    /// scheduled is no longer dead).
    pub truncated: bool,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
