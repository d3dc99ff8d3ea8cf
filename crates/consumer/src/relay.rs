//! Live updates across consumer replicas, with PostgreSQL's own
//! `LISTEN`/`NOTIFY` (no broker of ours).
//!
//! Each replica tells the others which reviews it changed: the ids its
//! [`ReviewEvents`] published are gathered for a few milliseconds and sent
//! as one `NOTIFY hookline_reviews` (`<replica>:<id>,<id>,...`, split below
//! PostgreSQL's 8000-byte payload limit). The notification is sent after
//! the changes committed, from a pooled connection, never inside the
//! request's own transaction: a `NOTIFY` in a transaction takes a lock every
//! committing `NOTIFY` shares, which would serialise the write path.
//!
//! Each replica also `LISTEN`s on a connection of its own; for an id from
//! another replica it reads the review and streams it to its own browsers.
//! If that connection breaks, it reconnects (with a growing pause, at most
//! [`MAX_BACKOFF`]) and tells its browsers to `resync`: what was notified
//! meanwhile was lost, and a reload shows the truth, which is always the
//! database. A replica killed between a commit and its notification loses
//! that notification (the review itself is stored): every second each
//! replica calls the roll of the others' listening connections (named
//! `hookline-relay:<id>` in `pg_stat_activity`), and when one has vanished
//! its browsers reload too.
//!
//! Notifying, the roll call and reading others' changes only ever cost
//! live updates (browsers reload), so their failures are logged and the
//! relay goes on. Only setting up the listening connection can end it: a
//! database that refuses `LISTEN` for another reason than a lost connection
//! would refuse it again, and the relay ends with that error, which its
//! [supervisor](crate::supervisor) reports.

use std::time::Duration;

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use hookline_kit::http::source_chain;
use tokio::sync::watch;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::db::{self, Pool, PoolError};
use crate::events::ReviewEvents;

/// The channel every replica notifies and listens on.
pub const CHANNEL: &str = "hookline_reviews";
/// How long changed ids are gathered before they are notified.
const GATHER: Duration = Duration::from_millis(10);
/// Below PostgreSQL's payload limit (8000 bytes), with room for the origin.
const MAX_PAYLOAD: usize = 7900;
/// How often a replica looks for the others (to notice one that died).
const ROLL_CALL: Duration = Duration::from_secs(1);
/// The `application_name` of a relay's listening connection, then its id.
const APPLICATION: &str = "hookline-relay:";
/// The longest pause before reconnecting the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the relay met.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("no database connection")]
    Pool(#[from] PoolError),
    #[error("cannot connect to the database to listen")]
    Connect(#[from] diesel::ConnectionError),
    #[error("the database refused a statement")]
    Database(#[from] diesel::result::Error),
}

impl RelayError {
    /// Whether trying again may succeed (the database comes back).
    fn is_retryable(&self) -> bool {
        match self {
            Self::Pool(_) => true,
            Self::Connect(e) => !matches!(e, diesel::ConnectionError::InvalidConnectionUrl(_)),
            Self::Database(e) => crate::db::retryable(e),
        }
    }
}

/// Runs the relay of this replica until `stop` turns true; ends with the
/// error that a retry cannot fix.
pub async fn run(
    database_url: String,
    pool: Pool,
    events: ReviewEvents,
    stop: watch::Receiver<bool>,
) -> Result<(), RelayError> {
    let origin = Uuid::new_v4().simple().to_string();
    info!(replica = %origin, channel = CHANNEL, "relaying live updates between replicas");
    // Both end when told to stop; the listener also on an error a retry
    // cannot fix, which ends the relay, its notifier with it.
    tokio::select! {
        listened = listen(&origin, &database_url, &pool, &events, stop.clone()) => listened,
        () = notify(&origin, &pool, &events, stop) => Ok(()),
    }
}

/// Sends this replica's changes to the others.
async fn notify(origin: &str, pool: &Pool, events: &ReviewEvents, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        tokio::select! {
            () = events.outbox().filled.notified() => {}
            _ = stop.changed() => break,
        }
        tokio::time::sleep(GATHER).await;
        let ids = events.outbox().take();
        if ids.is_empty() {
            continue;
        }
        let sent = async {
            let mut conn = pool.get().await?;
            for payload in payloads(origin, &ids) {
                diesel::sql_query("SELECT pg_notify($1, $2)")
                    .bind::<Text, _>(CHANNEL)
                    .bind::<Text, _>(payload)
                    .execute(&mut conn)
                    .await?;
            }
            Ok::<_, RelayError>(())
        }
        .await;
        if let Err(e) = sent {
            warn!(error = %source_chain(&e), changes = ids.len(), "cannot tell the other replicas about changes; their dashboards show them on reload");
        }
    }
}

/// `origin:id,id,...` payloads, each under [`MAX_PAYLOAD`] bytes.
fn payloads(origin: &str, ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = format!("{origin}:");
    let empty = current.len();
    for id in ids {
        if current.len() + id.len() + 1 > MAX_PAYLOAD && current.len() > empty {
            out.push(std::mem::replace(&mut current, format!("{origin}:")));
        }
        if current.len() > empty {
            current.push(',');
        }
        current.push_str(id);
    }
    if current.len() > empty {
        out.push(current);
    }
    out
}

/// The ids of a payload from another replica (`None` for our own or a
/// malformed one).
fn foreign_ids(origin: &str, payload: &str) -> Option<Vec<Uuid>> {
    let (from, ids) = payload.split_once(':')?;
    if from == origin {
        return None;
    }
    Some(ids.split(',').filter_map(|id| id.parse().ok()).collect())
}

/// Streams the other replicas' changes to this replica's browsers, until
/// `stop` turns true or the database refuses to let it listen.
async fn listen(
    origin: &str,
    database_url: &str,
    pool: &Pool,
    events: &ReviewEvents,
    mut stop: watch::Receiver<bool>,
) -> Result<(), RelayError> {
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    while !*stop.borrow() {
        let listening = async {
            let mut conn = AsyncPgConnection::establish(database_url).await?;
            // Named, so that the others see this replica in pg_stat_activity.
            diesel::sql_query(format!("SET application_name = '{APPLICATION}{origin}'"))
                .execute(&mut conn)
                .await?;
            diesel::sql_query(format!("LISTEN {CHANNEL}"))
                .execute(&mut conn)
                .await?;
            Ok::<_, RelayError>(conn)
        };
        let mut conn = tokio::select! {
            conn = listening => match conn {
                Ok(conn) => conn,
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => {
                    warn!(error = %source_chain(&e), retry_in = ?backoff, "cannot listen for the other replicas' changes");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        // Told to stop, or the application is gone.
                        _ = stop.changed() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        if !first {
            info!("listening for the other replicas' changes again; browsers reload");
            events.resync();
        }
        first = false;
        backoff = Duration::from_millis(100);
        let mut notifications = std::pin::pin!(conn.notifications_stream());
        let mut roll_call = tokio::time::interval(ROLL_CALL);
        let mut present: Option<Vec<String>> = None;
        loop {
            let notification = tokio::select! {
                notification = notifications.next() => notification,
                _ = roll_call.tick() => {
                    present = roll_call_of(pool, events, present).await;
                    continue;
                }
                _ = stop.changed() => return Ok(()),
            };
            let payload = match notification {
                Some(Ok(notification)) => notification.payload,
                Some(Err(e)) => {
                    warn!(error = %source_chain(&e), "the listening connection failed; reconnecting");
                    break;
                }
                None => {
                    warn!("the listening connection closed; reconnecting");
                    break;
                }
            };
            let Some(ids) = foreign_ids(origin, &payload) else {
                continue;
            };
            relay(pool, events, &ids).await;
        }
    }
    Ok(())
}

/// The relays listening now (their `application_name`s). One that was
/// there at the last roll call and is gone may have committed changes it
/// never got to notify (it was killed): this replica's browsers reload.
async fn roll_call_of(pool: &Pool, events: &ReviewEvents, before: Option<Vec<String>>) -> Option<Vec<String>> {
    #[derive(diesel::QueryableByName)]
    struct Relay {
        #[diesel(sql_type = Text)]
        application_name: String,
    }
    let now = async {
        let mut conn = pool.get().await?;
        let relays = diesel::sql_query("SELECT application_name FROM pg_stat_activity WHERE application_name LIKE $1")
            .bind::<Text, _>(format!("{APPLICATION}%"))
            .load::<Relay>(&mut conn)
            .await?;
        Ok::<_, RelayError>(relays)
    }
    .await;
    let now: Vec<String> = match now {
        Ok(relays) => relays.into_iter().map(|relay| relay.application_name).collect(),
        Err(e) => {
            debug!(error = %source_chain(&e), "no roll call of the replicas this time");
            return before;
        }
    };
    if let Some(before) = &before
        && let Some(gone) = before.iter().find(|relay| !now.contains(relay))
    {
        info!(
            replica = gone.trim_start_matches(APPLICATION),
            "a replica stopped, maybe before telling its last changes: browsers reload"
        );
        events.resync();
    }
    Some(now)
}

/// Reads the reviews another replica changed and streams them here.
async fn relay(pool: &Pool, events: &ReviewEvents, ids: &[Uuid]) {
    let rows = async {
        let mut conn = pool.get().await?;
        Ok::<_, RelayError>(db::find_many(&mut conn, ids).await?)
    }
    .await;
    match rows {
        Ok(rows) => {
            debug!(changes = rows.len(), "changes from another replica");
            for row in rows {
                events.publish_here(&row.into_review());
            }
        }
        Err(e) => {
            warn!(error = %source_chain(&e), "cannot read another replica's changes; browsers reload");
            events.resync();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_limit_and_carry_every_id_once() {
        let ids: Vec<String> = (0..500).map(|_| Uuid::new_v4().to_string()).collect();
        let sent = payloads("me", &ids);
        assert!(sent.len() > 1, "500 ids do not fit in one payload");
        assert!(
            sent.iter().all(|p| p.len() <= MAX_PAYLOAD),
            "{:?}",
            sent.iter().map(String::len).collect::<Vec<_>>()
        );
        let got: Vec<String> = sent
            .iter()
            .flat_map(|p| foreign_ids("you", p).unwrap())
            .map(|id| id.to_string())
            .collect();
        assert_eq!(got, ids);
        assert_eq!(foreign_ids("me", &sent[0]), None, "our own changes are ours already");
        assert_eq!(payloads("me", &[]), Vec::<String>::new());
        assert_eq!(foreign_ids("me", "garbage"), None);
    }
}
