//! The key layout: every key of one partition starts with its tag
//! (`{prefix}` or `{prefix:k}`), which is also its Redis Cluster hash tag.
//! `docs/store.md` has the table of what each key holds; the Lua side names
//! the same keys in `prelude.lua`.

use crate::endpoint::Endpoint;

/// What starts the id of an event's job (never a documentId's character).
pub const EVENT_JOB_MARK: char = '~';

/// The key names of one partition.
#[derive(Debug, Clone)]
pub struct Keys {
    tag: String,
}

impl Keys {
    /// The keys under the tag `{tag}`.
    pub fn new(tag: &str) -> Self {
        Self {
            tag: format!("{{{tag}}}"),
        }
    }

    /// `{prefix}`: the start of every key, and their Redis Cluster hash tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn case(&self, document_id: &str) -> String {
        format!("{}:case:{document_id}", self.tag)
    }

    /// The hash of a job: a case (its callback; the id is the documentId)
    /// or one event for one subscription (the id is `~` and its webhook-id).
    pub fn job(&self, id: &str) -> String {
        match id.strip_prefix(EVENT_JOB_MARK) {
            Some(webhook_id) => format!("{}:event:{webhook_id}", self.tag),
            None => self.case(id),
        }
    }

    pub fn subscription(&self, id: &str) -> String {
        format!("{}:sub:{id}", self.tag)
    }

    /// A tenant's subscriptions, scored by creation time.
    pub fn subscriptions(&self, tenant: &str) -> String {
        format!("{}:subs:{tenant}", self.tag)
    }

    /// The waiting jobs of one endpoint.
    pub fn due(&self, endpoint: &Endpoint) -> String {
        format!("{}:due:{endpoint}", self.tag)
    }

    /// The line of endpoints that have something due.
    pub fn ready(&self) -> String {
        format!("{}:ready", self.tag)
    }

    pub fn endpoint(&self, endpoint: &Endpoint) -> String {
        format!("{}:endpoint:{endpoint}", self.tag)
    }

    /// Every endpoint, by last activity.
    pub fn endpoints(&self) -> String {
        format!("{}:endpoints", self.tag)
    }

    pub fn inflight(&self) -> String {
        format!("{}:inflight", self.tag)
    }

    pub fn dead(&self) -> String {
        format!("{}:dead", self.tag)
    }

    pub fn chaos(&self) -> String {
        format!("{}:chaos", self.tag)
    }

    pub fn cases(&self) -> String {
        format!("{}:cases", self.tag)
    }

    pub fn attempts(&self, document_id: &str) -> String {
        format!("{}:attempts:{document_id}", self.tag)
    }

    /// Which case a request `id` created (for idempotent retries).
    pub fn request(&self, id: &str) -> String {
        format!("{}:request:{id}", self.tag)
    }

    /// Finished cases, scored by when they expire (`CASE_RETENTION`).
    pub fn expiring(&self) -> String {
        format!("{}:expiring", self.tag)
    }

    /// The partition's anchor: always there, named first by every script
    /// (see `prelude.lua`); holds the partition's number.
    pub fn anchor(&self) -> String {
        format!("{}:partition", self.tag)
    }

    /// The single due set of the layout before per-endpoint queues (see
    /// [`StoreError::OldLayout`](super::StoreError::OldLayout)).
    pub fn legacy_due(&self) -> String {
        format!("{}:due", self.tag)
    }
}
