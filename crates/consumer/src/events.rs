//! Live review updates for the dashboard: every change to a review (created,
//! decided by a webhook, decided by reconciliation) is broadcast in-process
//! and streamed to browsers as server-sent events by `GET /events`.
//!
//! The channel is bounded: a browser that falls behind by more than
//! [`CAPACITY`] updates gets a `resync` event and reloads the list, instead
//! of slowing everyone down. Updates are per process; with several consumer
//! replicas a browser sees the changes made by the one it is connected to
//! (plus everything on reload).
//!
//! A stream never ends by itself, so a stopping consumer [closes](ReviewEvents::close)
//! them all; browsers reconnect (EventSource does) to whichever consumer answers.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::Stream;
use hookline_contract::Review;
use tokio::sync::{broadcast, watch};

/// Updates a slow subscriber may fall behind by before it must resync.
pub const CAPACITY: usize = 1024;
/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The broadcast of review changes; cheap to clone.
#[derive(Debug, Clone)]
pub struct ReviewEvents {
    tx: broadcast::Sender<Review>,
    closed: Arc<watch::Sender<bool>>,
}

impl Default for ReviewEvents {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            closed: Arc::new(watch::channel(false).0),
        }
    }
}

impl ReviewEvents {
    /// Tells every connected browser about `review`'s new state.
    pub fn publish(&self, review: &Review) {
        // No subscriber is not an error: nobody is watching.
        let _ = self.tx.send(review.clone());
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
                    Ok(review) => Some(match serde_json::to_string(&review) {
                        Ok(json) => format!("event: review\ndata: {json}\n\n"),
                        Err(_) => String::new(),
                    }),
                    Err(broadcast::error::RecvError::Lagged(_)) => Some("event: resync\ndata: {}\n\n".to_owned()),
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
