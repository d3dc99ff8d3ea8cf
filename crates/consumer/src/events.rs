//! Live review updates for the dashboard: every change to a review (created,
//! decided by a webhook, decided by reconciliation) is broadcast in-process
//! and streamed to browsers as server-sent events by `GET /events`.
//!
//! The channel is bounded: a browser that falls behind by more than
//! [`CAPACITY`] updates gets a `resync` event and reloads the list, instead
//! of slowing everyone down. With several consumer replicas on one
//! database, the [relay](crate::relay) passes each replica's changes to the
//! others (PostgreSQL `LISTEN`/`NOTIFY`), so a browser sees every change
//! whichever replica made it; when the relay loses the database for a
//! while, browsers get a `resync` once it is back.
//!
//! A stream never ends by itself, so a stopping consumer [closes](ReviewEvents::close)
//! them all; browsers reconnect (EventSource does) to whichever consumer answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::Stream;
use hookline_contract::Review;
use tokio::sync::{Notify, broadcast, watch};

/// Updates a slow subscriber may fall behind by before it must resync.
pub const CAPACITY: usize = 1024;
/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a browser is told.
#[derive(Debug, Clone)]
enum Update {
    Review(Box<Review>),
    /// Updates may have been missed: reload the list.
    Resync,
}

/// The broadcast of review changes; cheap to clone.
#[derive(Debug, Clone)]
pub struct ReviewEvents {
    tx: broadcast::Sender<Update>,
    closed: Arc<watch::Sender<bool>>,
    /// Reviews changed here, for the relay to tell the other replicas.
    outbox: Arc<Outbox>,
}

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    ids: Mutex<Vec<String>>,
    pub(crate) filled: Notify,
}

impl Outbox {
    /// Takes every id waiting.
    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.ids.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl Default for ReviewEvents {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            closed: Arc::new(watch::channel(false).0),
            outbox: Arc::default(),
        }
    }
}

impl ReviewEvents {
    /// Tells every connected browser, here and (through the relay) at the
    /// other replicas, about `review`'s new state.
    pub fn publish(&self, review: &Review) {
        self.publish_here(review);
        self.outbox
            .ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(review.id.clone());
        self.outbox.filled.notify_one();
    }

    /// Tells this replica's browsers only (a change another replica made).
    pub(crate) fn publish_here(&self, review: &Review) {
        // No subscriber is not an error: nobody is watching.
        let _ = self.tx.send(Update::Review(Box::new(review.clone())));
    }

    /// Tells this replica's browsers to reload: changes may have been missed.
    pub(crate) fn resync(&self) {
        let _ = self.tx.send(Update::Resync);
    }

    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Ends every stream, now and to come (the consumer is stopping).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// A stream of SSE frames for one browser, endless until [`close`](Self::close).
    pub fn stream(&self) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + use<> {
        let state = (self.tx.subscribe(), self.closed.subscribe());
        futures_util::stream::unfold(state, |(mut rx, mut closed)| async move {
            let frame = tokio::select! {
                _ = closed.wait_for(|closed| *closed) => None,
                update = rx.recv() => match update {
                    Ok(Update::Review(review)) => Some(match serde_json::to_string(&review) {
                        Ok(json) => format!("event: review\ndata: {json}\n\n"),
                        Err(_) => String::new(),
                    }),
                    Ok(Update::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        Some("event: resync\ndata: {}\n\n".to_owned())
                    }
                    Err(broadcast::error::RecvError::Closed) => None,
                },
                () = tokio::time::sleep(KEEP_ALIVE) => Some(": keep-alive\n\n".to_owned()),
            };
            frame.map(|frame| (Ok(Bytes::from(frame)), (rx, closed)))
        })
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[actix_web::test]
    async fn closing_ends_open_streams_and_new_ones() {
        let events = ReviewEvents::default();
        let mut open = Box::pin(events.stream());
        events.close();
        let ended = tokio::time::timeout(Duration::from_secs(1), open.next()).await;
        assert!(matches!(ended, Ok(None)), "an open stream should end on close");
        let mut late = Box::pin(events.stream());
        let ended = tokio::time::timeout(Duration::from_secs(1), late.next()).await;
        assert!(
            matches!(ended, Ok(None)),
            "a stream opened after close should end at once"
        );
    }
}
