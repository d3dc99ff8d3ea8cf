//! The consumer's subscription at the help desk (`HELPDESK_SUBSCRIBE=true`).
//!
//! Instead of handing the help desk a callback URL with every request, the
//! consumer can subscribe once: `{CONSUMER_PUBLIC_URL}/helpdesk/events`
//! receives `document.received`, `document.accepted` and
//! `document.declined`, each signed with the subscription's own secret.
//!
//! **Set-up**, in the background after start-up ([`run`]): the help desk's
//! list (`GET /webhooks`) is searched for our URL ([`plan`]):
//! - found, and our database holds its secret: used as it is;
//! - found, but we lack its secret (the help desk shows it masked): it is
//!   rotated (`rotate-secret` answers the new one in full; the old one keeps
//!   signing for a while, so events already under way still verify there);
//! - not found: made (`POST /webhooks`).
//!
//! The id and secret are stored (`helpdesk_subscription`) in the same
//! transaction that holds an advisory lock for the whole set-up, so
//! consumers sharing a database and starting together make one subscription,
//! not one each. A help desk that cannot be reached, or refuses, is tried
//! again with a growing pause (up to [`MAX_PAUSE`]); start-up never waits.
//!
//! A database that refuses the set-up's statements for another reason than
//! a lost connection (its table is missing, say) ends the set-up with that
//! error, which its [supervisor](crate::supervisor) reports.
//!
//! **Which flow a request uses** ([`SubscriptionState`], read through
//! [`Callback`]): `POST /document` leaves out `X-Callback-Url` only once the
//! set-up has succeeded and the subscription is enabled and takes both
//! decisions ([`usable`]). Until then
//! (and for good if it is disabled) every request still carries its
//! callback, so no decision depends on a subscription that may not exist.
//! The secret stored from an earlier run verifies events from the start,
//! because events of reviews requested before a restart may still come.
//! Whatever is missed either way, the reconciler still polls.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hookline_contract::signature::{SecretError, SecretSet, WebhookSecret};
use hookline_contract::{EventType, HttpUrl, NewSubscription, Subscription};
use hookline_kit::http::source_chain;
use hookline_kit::redact::redact_url;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::db::{self, Pool, PoolError, StoredSubscription};
use crate::helpdesk_client::{HelpdeskClient, HelpdeskError};

/// The path of the events route; the subscription's URL is
/// `{CONSUMER_PUBLIC_URL}` followed by it.
pub const EVENTS_PATH: &str = "/helpdesk/events";
/// The events the consumer subscribes to.
pub const EVENTS: [EventType; 3] = [
    EventType::DocumentReceived,
    EventType::DocumentAccepted,
    EventType::DocumentDeclined,
];
/// The first pause before trying the set-up again; it doubles each time.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause between two tries of the set-up.
pub const MAX_PAUSE: Duration = Duration::from_secs(5 * 60);

/// What the routes and the help desk client know of the subscription; cheap
/// to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct SubscriptionState(Arc<RwLock<Known>>);

#[derive(Debug, Default)]
struct Known {
    /// `HELPDESK_SUBSCRIBE` is on: events are expected here.
    subscribing: bool,
    /// The secret that verifies events, once we hold one.
    secrets: Option<SecretSet>,
    /// The help desk confirmed the subscription and it is [`usable`].
    active: bool,
}

impl SubscriptionState {
    /// The state of a consumer that subscribes (`HELPDESK_SUBSCRIBE=true`),
    /// before the set-up has given it a secret.
    pub fn subscribing() -> Self {
        let state = Self::default();
        state.0.write().unwrap_or_else(PoisonError::into_inner).subscribing = true;
        state
    }

    /// Whether this consumer subscribes at all.
    pub fn is_subscribing(&self) -> bool {
        self.0.read().unwrap_or_else(PoisonError::into_inner).subscribing
    }

    /// The secret(s) events must be signed with; `None` until we hold one.
    pub fn secrets(&self) -> Option<SecretSet> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).secrets.clone()
    }

    /// Whether the subscription delivers our decisions, so requests can go
    /// without a callback URL.
    pub fn is_active(&self) -> bool {
        self.0.read().unwrap_or_else(PoisonError::into_inner).active
    }

    /// Events are verified with `secret`; requests keep their callback
    /// unless `active`.
    pub fn set(&self, secret: WebhookSecret, active: bool) {
        let mut known = self.0.write().unwrap_or_else(PoisonError::into_inner);
        known.secrets = SecretSet::new(vec![secret]).ok();
        known.active = active && known.secrets.is_some();
    }
}

/// Where a review request asks the help desk to deliver the decision: our
/// callback URL, or nowhere but our subscription once it is active. Cheap to
/// clone (shared).
#[derive(Debug, Clone)]
pub struct Callback {
    url: HttpUrl,
    subscription: SubscriptionState,
}

impl Callback {
    /// `url` (`{CONSUMER_PUBLIC_URL}/document/update`), left out while
    /// `subscription` is active.
    pub fn new(url: HttpUrl, subscription: SubscriptionState) -> Self {
        Self { url, subscription }
    }

    /// The `X-Callback-Url` to send with a review request now: none while
    /// the subscription delivers our decisions.
    pub fn current(&self) -> Option<&HttpUrl> {
        (!self.subscription.is_active()).then_some(&self.url)
    }
}

/// Why the set-up did not succeed (it is tried again, unless the database
/// refuses it: [`SetupError::is_retryable`]).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("the help desk did not answer as expected")]
    Helpdesk(#[from] HelpdeskError),
    #[error("the database failed")]
    Database(#[from] diesel::result::Error),
    #[error("no database connection")]
    Pool(#[from] PoolError),
    #[error("the help desk handed out an unusable secret for subscription {id}")]
    BadSecret {
        id: String,
        #[source]
        reason: SecretError,
    },
}

impl SetupError {
    /// Whether trying again later may succeed: a help desk that cannot be
    /// reached, refuses or answers nonsense may be back or fixed, and a lost
    /// database comes back; a statement the database refuses otherwise stays
    /// refused.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Helpdesk(_) | Self::Pool(_) | Self::BadSecret { .. } => true,
            Self::Database(e) => crate::db::retryable(e),
        }
    }
}

/// What to do, given the help desk's subscriptions and what we hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// It exists and we hold its secret.
    Use {
        subscription: Box<Subscription>,
        secret: String,
    },
    /// It exists, but we lack its secret: rotate it to get one.
    Rotate(String),
    /// There is none for our URL: make it.
    Create,
}

/// Decides what to do about the subscription for `url`: `listed` is the help
/// desk's list, `stored` what our database holds. Several subscriptions for
/// our URL (made by hand, or by an older version): the one we hold the secret
/// of, else the oldest.
pub fn plan(url: &str, listed: &[Subscription], stored: Option<&StoredSubscription>) -> Plan {
    let ours: Vec<&Subscription> = listed.iter().filter(|s| same_url(&s.url, url)).collect();
    if let Some(stored) = stored
        && let Some(found) = ours.iter().find(|s| s.id == stored.id)
    {
        return Plan::Use {
            subscription: Box::new((*found).clone()),
            secret: stored.secret.clone(),
        };
    }
    match ours.first() {
        Some(found) => Plan::Rotate(found.id.clone()),
        None => Plan::Create,
    }
}

/// Whether `subscription` delivers our decisions: enabled, and subscribed
/// to both. Otherwise requests must keep their callback URL.
pub fn usable(subscription: &Subscription) -> bool {
    !subscription.disabled
        && [EventType::DocumentAccepted, EventType::DocumentDeclined]
            .iter()
            .all(|event| subscription.events.contains(event))
}

/// URLs compared as URLs (the help desk may normalise what we sent).
fn same_url(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// How the set-up ended.
#[derive(Debug)]
struct Established {
    subscription: Subscription,
    secret: WebhookSecret,
    how: &'static str,
}

/// Finds, rotates or makes our subscription and stores its secret, all under
/// the set-up lock.
///
/// The lock is a session lock on a connection taken out of the pool for the
/// set-up and closed afterwards, which releases it whatever happens (a
/// transaction cannot hold it: its future must be `Send`, and the help desk
/// client's is not).
async fn establish(pool: &Pool, helpdesk: &HelpdeskClient, url: &HttpUrl) -> Result<Established, SetupError> {
    let mut conn = deadpool::managed::Object::take(pool.get().await?);
    let conn = &mut conn;
    {
        db::lock_subscription_setup(conn).await?;
        let stored = db::find_subscription(conn, url.as_str()).await?;
        let listed = helpdesk.subscriptions().await?;
        if listed.total > listed.items.len() as u64 {
            warn!(
                listed = listed.items.len(),
                total = listed.total,
                "the help desk listed only some of our subscriptions"
            );
        }
        let (subscription, secret, how) = match plan(url.as_str(), &listed.items, stored.as_ref()) {
            Plan::Use { subscription, secret } => (*subscription, secret, "found"),
            Plan::Rotate(id) => {
                let rotated = helpdesk.rotate_secret(&id).await?;
                let secret = rotated.secret.clone();
                (rotated, secret, "found, secret rotated (we did not hold it)")
            }
            Plan::Create => {
                let created = helpdesk
                    .subscribe(&NewSubscription {
                        url: url.to_string(),
                        events: EVENTS.iter().map(|event| event.as_str().to_owned()).collect(),
                        description: Some("hookline consumer".to_owned()),
                        // It verifies Standard Webhooks.
                        dialect: None,
                        // It takes events in any order (a decision never
                        // goes back to PENDING_REVIEW): no need to wait.
                        ordered: None,
                    })
                    .await?;
                let secret = created.secret.clone();
                (created, secret, "created")
            }
        };
        let parsed: WebhookSecret = secret.parse().map_err(|reason| SetupError::BadSecret {
            id: subscription.id.clone(),
            reason,
        })?;
        db::save_subscription(
            conn,
            &StoredSubscription {
                id: subscription.id.clone(),
                url: url.to_string(),
                secret,
            },
        )
        .await?;
        Ok(Established {
            subscription,
            secret: parsed,
            how,
        })
    }
}

/// Loads the secret stored by an earlier run, so events verify from the
/// start (requests keep their callback until [`run`] confirms it).
pub async fn load_stored(pool: &Pool, url: &HttpUrl, state: &SubscriptionState) -> Result<(), SetupError> {
    let mut conn = pool.get().await?;
    if let Some(stored) = db::find_subscription(&mut conn, url.as_str()).await? {
        match stored.secret.parse() {
            Ok(secret) => state.set(secret, false),
            Err(reason) => {
                warn!(error = %source_chain(&reason), subscription_id = %stored.id, "the stored subscription secret is unusable; the set-up replaces it");
            }
        }
    }
    Ok(())
}

/// The pause after `failures` failed tries in a row.
fn pause(failures: u32) -> Duration {
    FIRST_PAUSE
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
        .min(MAX_PAUSE)
}

/// Sets the subscription up, trying again until it succeeds or `stop`
/// turns true; ends with the error that a retry cannot fix. Must run on an
/// actix runtime (awc).
pub async fn run(
    pool: Pool,
    helpdesk: HelpdeskClient,
    url: HttpUrl,
    state: SubscriptionState,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SetupError> {
    let mut failures = 0u32;
    loop {
        match establish(&pool, &helpdesk, &url).await {
            Ok(Established {
                subscription,
                secret,
                how,
            }) => {
                let active = usable(&subscription);
                state.set(secret, active);
                if active {
                    info!(subscription_id = %subscription.id, url = %redact_url(url.as_str()), how,
                        "subscribed at the help desk: reviews are now requested without X-Callback-Url");
                } else {
                    warn!(subscription_id = %subscription.id, url = %redact_url(url.as_str()), how, disabled = subscription.disabled,
                        events = ?subscription.events,
                        "our subscription at the help desk is disabled or lacks a decision event: \
                         reviews keep their X-Callback-Url (enable it, or delete it to have it made again at the next start)");
                }
                return Ok(());
            }
            Err(e) if !e.is_retryable() => return Err(e),
            Err(e) => {
                failures += 1;
                let wait = pause(failures);
                warn!(error = %source_chain(&e), failures, retry_in = %humantime::format_duration(wait), url = %redact_url(url.as_str()),
                    "cannot set up the subscription at the help desk; reviews keep their X-Callback-Url meanwhile");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|stopped| *stopped) => return Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use hookline_contract::SubscriptionStats;

    use super::*;

    const URL: &str = "https://consumer.test/helpdesk/events";

    fn subscription(id: &str, url: &str) -> Subscription {
        Subscription {
            id: id.to_owned(),
            url: url.to_owned(),
            events: EVENTS.to_vec(),
            description: None,
            secret: "whsec_****".to_owned(),
            previous_secret_until: None,
            dialect: Default::default(),
            ordered: false,
            disabled: false,
            disablement: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            stats: SubscriptionStats::default(),
        }
    }

    fn stored(id: &str) -> StoredSubscription {
        StoredSubscription {
            id: id.to_owned(),
            url: URL.to_owned(),
            secret: "whsec_stored".to_owned(),
        }
    }

    #[test]
    fn a_subscription_we_hold_the_secret_of_is_used_as_it_is() {
        let listed = [
            subscription("sub_other", "https://else.test/x"),
            subscription("sub_1", URL),
        ];
        assert_eq!(
            plan(URL, &listed, Some(&stored("sub_1"))),
            Plan::Use {
                subscription: Box::new(listed[1].clone()),
                secret: "whsec_stored".to_owned()
            }
        );
    }

    #[test]
    fn a_subscription_whose_secret_we_lack_is_rotated() {
        let listed = [subscription("sub_1", URL)];
        assert_eq!(plan(URL, &listed, None), Plan::Rotate("sub_1".to_owned()));
        // What we hold is of a subscription that no longer exists.
        assert_eq!(
            plan(URL, &listed, Some(&stored("sub_gone"))),
            Plan::Rotate("sub_1".to_owned())
        );
    }

    #[test]
    fn without_a_subscription_for_our_url_one_is_made() {
        let listed = [subscription("sub_other", "https://else.test/helpdesk/events")];
        assert_eq!(plan(URL, &listed, Some(&stored("sub_other"))), Plan::Create);
        assert_eq!(plan(URL, &[], None), Plan::Create);
    }

    #[test]
    fn of_several_for_our_url_the_one_we_hold_wins_else_the_oldest() {
        let listed = [subscription("sub_old", URL), subscription("sub_new", URL)];
        assert!(
            matches!(plan(URL, &listed, Some(&stored("sub_new"))), Plan::Use { subscription, .. } if subscription.id == "sub_new")
        );
        assert_eq!(plan(URL, &listed, None), Plan::Rotate("sub_old".to_owned()));
    }

    #[test]
    fn urls_match_as_urls() {
        let listed = [subscription("sub_1", "HTTPS://Consumer.test:443/helpdesk/events")];
        assert_eq!(plan(URL, &listed, None), Plan::Rotate("sub_1".to_owned()));
    }

    #[test]
    fn only_an_enabled_subscription_to_both_decisions_replaces_the_callback() {
        let mut sub = subscription("sub_1", URL);
        assert!(usable(&sub));
        sub.disabled = true;
        assert!(!usable(&sub));
        sub.disabled = false;
        sub.events = vec![EventType::DocumentReceived, EventType::DocumentAccepted];
        assert!(!usable(&sub));
    }

    #[test]
    fn the_state_is_active_only_once_confirmed() {
        let state = SubscriptionState::default();
        assert!(!state.is_active() && state.secrets().is_none());
        let secret = WebhookSecret::from_bytes(vec![7; 32]).unwrap();
        state.set(secret.clone(), false);
        assert!(!state.is_active() && state.secrets().is_some());
        state.set(secret, true);
        assert!(state.is_active());
    }

    #[test]
    fn the_pause_doubles_up_to_its_limit() {
        assert_eq!(pause(1), FIRST_PAUSE);
        assert_eq!(pause(2), FIRST_PAUSE * 2);
        assert_eq!(pause(4), FIRST_PAUSE * 8);
        assert_eq!(pause(40), MAX_PAUSE);
    }
}
