//! What a recovery reads and keeps: the dead letters of a scope that died
//! in a window (oldest first, over every partition), and the recovery's
//! progress, one JSON value per recovery under partition 0's tag, kept a
//! day so that any help desk process answers `GET /recoveries/{id}`.

use chrono::{DateTime, Utc};
use hookline_contract::RecoveryView;
use redis::AsyncCommands;

use super::{CaseRecord, Scope, Store, StoreError};

/// How long a recovery's progress is kept after its last change.
const KEPT_SECS: u64 = 24 * 60 * 60;

/// A dead letter found in a window: its partition and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub partition: usize,
    pub id: String,
    /// When it died (ms since the epoch).
    pub died_at: i64,
}

impl Store {
    /// Up to `max` dead letters of `scope` that died in `[since, until]`,
    /// oldest first over every partition, and whether there were more.
    pub async fn dead_between(
        &self,
        scope: Scope<'_>,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        max: usize,
    ) -> Result<(Vec<DeadLetter>, bool), StoreError> {
        let mut found = Vec::new();
        for (partition, part) in self.parts.iter().enumerate() {
            let mut conn = part.conn.clone();
            // One more than asked: whether there were more.
            let listed: Vec<(String, f64)> = conn
                .zrangebyscore_limit_withscores(
                    part.keys.dead_of(scope),
                    since.timestamp_millis(),
                    until.timestamp_millis(),
                    0,
                    isize::try_from(max).unwrap_or(isize::MAX).saturating_add(1),
                )
                .await?;
            found.extend(listed.into_iter().map(|(id, score)| DeadLetter {
                partition,
                id,
                died_at: score as i64,
            }));
        }
        found.sort_by(|a, b| a.died_at.cmp(&b.died_at).then_with(|| a.id.cmp(&b.id)));
        let more = found.len() > max;
        found.truncate(max);
        Ok((found, more))
    }

    /// The cases (or events) of `letters`, as stored now; one that is gone
    /// is left out.
    pub async fn dead_letter_cases(&self, letters: &[DeadLetter]) -> Result<Vec<CaseRecord>, StoreError> {
        let mut found = Vec::with_capacity(letters.len());
        for (partition, part) in self.parts.iter().enumerate() {
            let ids: Vec<String> = letters
                .iter()
                .filter(|letter| letter.partition == partition)
                .map(|letter| letter.id.clone())
                .collect();
            found.extend(part.cases(&ids).await?.into_iter().flatten());
        }
        Ok(found)
    }

    /// Keeps `recovery`'s progress (for a day after its last change).
    pub async fn save_recovery(&self, tenant: &str, recovery: &RecoveryView) -> Result<(), StoreError> {
        let part = &self.parts[0];
        let value = serde_json::json!({"tenant": tenant, "recovery": recovery}).to_string();
        let mut conn = part.conn.clone();
        let () = conn.set_ex(part.keys.recovery(&recovery.id), value, KEPT_SECS).await?;
        Ok(())
    }

    /// A recovery `scope` sees, if it is still kept.
    pub async fn recovery(&self, scope: Scope<'_>, id: &str) -> Result<Option<RecoveryView>, StoreError> {
        let part = &self.parts[0];
        let mut conn = part.conn.clone();
        let raw: Option<String> = conn.get(part.keys.recovery(id)).await?;
        let Some(raw) = raw else { return Ok(None) };
        #[derive(serde::Deserialize)]
        struct Kept {
            tenant: String,
            recovery: RecoveryView,
        }
        let kept: Kept = serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt {
            document_id: format!("recovery {id}"),
            problem: e.to_string(),
        })?;
        Ok(scope.sees(&kept.tenant).then_some(kept.recovery))
    }
}
