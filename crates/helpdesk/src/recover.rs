//! Recovery after an outage: every dead letter of a window that passes a
//! filter, sent again through the normal queue, in the background, with
//! its progress kept (`GET /recoveries/{id}`).
//!
//! Svix's "recover since" is the model: after a receiver's outage, resend
//! what failed since it began. Here "failed" is "died": a message counts by
//! when it became a dead letter, so one accepted before the outage but
//! killed by it is included, and one that died before the window is not.
//! Each is redelivered as `POST /document/{id}/redeliver` does (the same
//! `webhook-id`, a fresh retry schedule), so endpoint limits, the breaker
//! and chaos apply, and a message sent again is no longer dead: a second
//! recovery of the same window sends only what died again meanwhile.
//! Exactly once per death, then, never twice for one.
//!
//! One recovery takes at most [`RECOVER_MAX`] dead letters, oldest first
//! (`truncated` says there were more: the same recovery again sends the
//! rest). A recovery cut short by the help desk stopping keeps
//! `running` with its last `updatedAt`; starting it again is safe for the
//! same reason.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hookline_contract::{EventType, RecoverRequest, RecoveryState, RecoveryView};
use tracing::{info, warn};

use crate::endpoint::Endpoint;
use crate::store::{CaseRecord, Redelivery, Scope, Store, StoreError};
use crate::worker::Wakeup;

/// The most dead letters one recovery sends again.
pub const RECOVER_MAX: usize = 10_000;
/// Dead letters read and sent per step (and per progress update).
const PAGE: usize = 200;

/// Which dead letters a recovery sends, checked.
#[derive(Debug, Clone)]
pub struct Filter {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub event_type: Option<EventType>,
    pub subscription_id: Option<String>,
    pub endpoint: Option<Endpoint>,
}

impl Filter {
    /// Whether `case` is one this recovery sends.
    fn matches(&self, case: &CaseRecord) -> bool {
        let event = case.event.as_ref();
        self.event_type
            .is_none_or(|wanted| event.is_some_and(|event| event.event_type == wanted))
            && self
                .subscription_id
                .as_ref()
                .is_none_or(|wanted| event.is_some_and(|event| &event.subscription_id == wanted))
            && self
                .endpoint
                .as_ref()
                .is_none_or(|wanted| Endpoint::of_str(&case.callback_url).is_ok_and(|endpoint| &endpoint == wanted))
    }

    /// The filter as the API shows it.
    pub fn to_request(&self) -> RecoverRequest {
        RecoverRequest {
            since: self.since,
            until: Some(self.until),
            event_type: self.event_type.map(|event| event.as_str().to_owned()),
            subscription_id: self.subscription_id.clone(),
            endpoint: self.endpoint.as_ref().map(|endpoint| endpoint.as_str().to_owned()),
        }
    }
}

/// Whose dead letters a recovery reads: every tenant's (the operator's
/// key) or one tenant's. Owned, for the background task.
#[derive(Debug, Clone)]
pub struct Whose {
    pub tenant: String,
    pub all: bool,
}

impl Whose {
    fn scope(&self) -> Scope<'_> {
        if self.all {
            Scope::All
        } else {
            Scope::Tenant(&self.tenant)
        }
    }
}

/// Keeps a new recovery of `filter` and starts it in the background; its
/// first view (state `running`, nothing counted yet).
pub async fn start(
    store: Store,
    wakeup: Arc<Wakeup>,
    whose: Whose,
    filter: Filter,
) -> Result<RecoveryView, StoreError> {
    let now = Utc::now();
    let recovery = RecoveryView {
        id: format!("rcv_{}", uuid::Uuid::new_v4().simple()),
        state: RecoveryState::Running,
        filter: filter.to_request(),
        matched: 0,
        scheduled: 0,
        skipped: 0,
        truncated: false,
        started_at: now,
        updated_at: now,
        error: None,
    };
    store.save_recovery(&whose.tenant, &recovery).await?;
    let first = recovery.clone();
    actix_web::rt::spawn(async move {
        let mut recovery = recovery;
        if let Err(error) = run(&store, &wakeup, &whose, &filter, &mut recovery).await {
            warn!(recovery = %recovery.id, error = %error, "recovery stopped by an error; what it scheduled stays scheduled");
            recovery.state = RecoveryState::Failed;
            recovery.error = Some(format!("the store failed: {error}"));
            recovery.updated_at = Utc::now();
            let _ = store.save_recovery(&whose.tenant, &recovery).await;
        }
    });
    Ok(first)
}

/// Sends the dead letters of `filter` again, a page at a time, keeping
/// `recovery`'s counts.
async fn run(
    store: &Store,
    wakeup: &Wakeup,
    whose: &Whose,
    filter: &Filter,
    recovery: &mut RecoveryView,
) -> Result<(), StoreError> {
    let scope = whose.scope();
    let (letters, more) = store
        .dead_between(scope, filter.since, filter.until, RECOVER_MAX)
        .await?;
    recovery.truncated = more;
    for page in letters.chunks(PAGE) {
        for case in store.dead_letter_cases(page).await? {
            if !scope.sees(&case.tenant) || !filter.matches(&case) {
                continue;
            }
            recovery.matched += 1;
            let id = case.event.as_ref().map_or(&case.document_id, |event| &event.job_id);
            match store.redeliver_in(scope, id).await? {
                Redelivery::Scheduled => {
                    recovery.scheduled += 1;
                    wakeup.job_scheduled(Utc::now());
                }
                _ => recovery.skipped += 1,
            }
        }
        recovery.updated_at = Utc::now();
        store.save_recovery(&whose.tenant, recovery).await?;
    }
    recovery.state = RecoveryState::Done;
    recovery.updated_at = Utc::now();
    store.save_recovery(&whose.tenant, recovery).await?;
    info!(
        recovery = %recovery.id, matched = recovery.matched, scheduled = recovery.scheduled,
        skipped = recovery.skipped, truncated = recovery.truncated, "recovery done"
    );
    Ok(())
}
