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
//! A stopping consumer [closes](ReviewEvents::close) every stream; browsers
//! reconnect (EventSource does) to whichever consumer answers.
//!
//! Streams are bounded, as anything a stranger can open: at most
//! `EVENTS_MAX_STREAMS` at once (past it [`ReviewEvents::stream`] refuses,
//! and the route answers 503), each for at most `EVENTS_MAX_AGE`, after
//! which it ends and the browser reconnects. A client that opens streams and
//! never reads them (or a closed laptop's) is cut once what was sent has
//! waited `SEND_TIMEOUT` for it (`hookline_kit::guards`; actix would wait
//! forever on its full socket, never polling the stream again), and at
//! `EVENTS_MAX_AGE` at most otherwise; the others are served meanwhile.

use std::sync::atomic::{AtomicU32, Ordering};
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
    limits: StreamLimits,
    /// Streams open now.
    open: Arc<AtomicU32>,
}

/// How many streams may be open at once, and for how long each
/// (`EVENTS_MAX_STREAMS`, `EVENTS_MAX_AGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    pub max_streams: u32,
    pub max_age: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            max_streams: 256,
            max_age: Duration::from_secs(600),
        }
    }
}

/// Every stream is taken: try again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} event streams are open, the most EVENTS_MAX_STREAMS allows")]
pub struct TooManyStreams(pub u32);

/// One open stream's slot, given back when the stream is dropped.
#[derive(Debug)]
struct Slot(Arc<AtomicU32>);

impl Slot {
    fn take(open: &Arc<AtomicU32>, max: u32) -> Result<Self, TooManyStreams> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .map(|_| Self(open.clone()))
            .map_err(TooManyStreams)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
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
            limits: StreamLimits::default(),
            open: Arc::default(),
        }
    }
}

impl ReviewEvents {
    /// No streams yet, at most `limits`.
    pub fn with_limits(limits: StreamLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

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

    /// A stream of SSE frames for one browser, until [`close`](Self::close)
    /// or its `max_age`; refused when `max_streams` are open.
    pub fn stream(
        &self,
    ) -> Result<impl Stream<Item = Result<Bytes, std::convert::Infallible>> + use<>, TooManyStreams> {
        let slot = Slot::take(&self.open, self.limits.max_streams)?;
        let end = tokio::time::Instant::now() + self.limits.max_age;
        let state = (self.tx.subscribe(), self.closed.subscribe(), slot);
        Ok(futures_util::stream::unfold(
            state,
            move |(mut rx, mut closed, slot)| async move {
                let frame = tokio::select! {
                    _ = closed.wait_for(|closed| *closed) => None,
                    () = tokio::time::sleep_until(end) => None,
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
                frame.map(|frame| (Ok(Bytes::from(frame)), (rx, closed, slot)))
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[actix_web::test]
    async fn closing_ends_open_streams_and_new_ones() {
        let events = ReviewEvents::default();
        let mut open = Box::pin(events.stream().unwrap());
        events.close();
        let ended = tokio::time::timeout(Duration::from_secs(1), open.next()).await;
        assert!(matches!(ended, Ok(None)), "an open stream should end on close");
        let mut late = Box::pin(events.stream().unwrap());
        let ended = tokio::time::timeout(Duration::from_secs(1), late.next()).await;
        assert!(
            matches!(ended, Ok(None)),
            "a stream opened after close should end at once"
        );
    }

    #[actix_web::test]
    async fn streams_past_the_limit_are_refused_until_one_ends() {
        let events = ReviewEvents::with_limits(StreamLimits {
            max_streams: 2,
            max_age: Duration::from_secs(600),
        });
        let first = events.stream().unwrap();
        let _second = events.stream().unwrap();
        assert_eq!(events.stream().err(), Some(TooManyStreams(2)));
        drop(first);
        assert!(events.stream().is_ok());
    }

    #[actix_web::test]
    async fn a_stream_ends_at_its_max_age() {
        let events = ReviewEvents::with_limits(StreamLimits {
            max_streams: 1,
            max_age: Duration::from_millis(50),
        });
        let mut stream = Box::pin(events.stream().unwrap());
        let ended = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        assert!(matches!(ended, Ok(None)), "a stream should end at its max age");
        drop(stream);
        assert!(events.stream().is_ok(), "its slot is given back");
    }
}
