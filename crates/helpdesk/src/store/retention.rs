//! Retention: a finished case (delivered or dead) is kept for
//! `CASE_RETENTION`, then forgotten. `jobs/finish.lua` gives it a TTL and a
//! place in `{p}:expiring` when it finishes; [`Store::trim`]
//! (`retention/trim.lua`, run by every worker through
//! [`crate::retention`]) takes it out of the listings (the shared ones and
//! its tenant's), and forgets endpoints idle as long, every one of them in
//! turn (one still in use only waits, and moves out of the way).

use std::sync::LazyLock;

use futures_util::future::try_join_all;
use redis::Script;

use super::partition::{Partition, script};
use super::{Store, StoreError, millis};

static TRIM: LazyLock<Script> = LazyLock::new(|| script(include_str!("retention/trim.lua")));

/// What one [`Store::trim`] forgot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trimmed {
    pub cases: u64,
    pub endpoints: u64,
    /// A batch was full: there may be more to forget right away.
    pub more: bool,
}

impl Partition {
    /// Forgets up to `max` finished cases whose retention is over, and up
    /// to `max` endpoints idle as long (see `retention/trim.lua`).
    pub(super) async fn trim(&self, max: usize) -> Result<Trimmed, StoreError> {
        let mut conn = self.conn.clone();
        let (cases, endpoints, more): (u64, u64, u8) = self
            .invocation(&TRIM)
            .key(self.keys.expiring())
            .key(self.keys.cases())
            .key(self.keys.dead())
            .key(self.keys.endpoints())
            .key(self.keys.ready())
            .arg(max)
            .arg(millis(self.retention))
            .invoke_async(&mut conn)
            .await?;
        Ok(Trimmed {
            cases,
            endpoints,
            more: more == 1,
        })
    }
}

impl Store {
    /// Forgets up to `max` finished cases per partition whose retention is
    /// over, and endpoints idle as long.
    pub async fn trim(&self, max: usize) -> Result<Trimmed, StoreError> {
        let trimmed = try_join_all(self.parts.iter().map(|part| part.trim(max))).await?;
        Ok(trimmed.into_iter().fold(Trimmed::default(), |all, one| Trimmed {
            cases: all.cases + one.cases,
            endpoints: all.endpoints + one.endpoints,
            more: all.more || one.more,
        }))
    }
}
