//! Live review updates for the dashboard: every change to a review (created,
//! decided by a webhook, decided by reconciliation) is broadcast in-process
//! and streamed to browsers as server-sent events by `GET /events`.
//!
//! The channel is bounded: a browser that falls behind by more than
//! [`CAPACITY`] updates gets a `resync` event and reloads the list, instead
//! of slowing everyone down. Updates are per process; with several consumer
//! replicas a browser sees the changes made by the one it is connected to
//! (plus everything on reload).

use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::Stream;
use hookline_contract::Review;
use tokio::sync::broadcast;

/// Updates a slow subscriber may fall behind by before it must resync.
pub const CAPACITY: usize = 1024;
/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The broadcast of review changes; cheap to clone.
#[derive(Debug, Clone)]
pub struct ReviewEvents {
    tx: broadcast::Sender<Review>,
}

impl Default for ReviewEvents {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl ReviewEvents {
    /// Tells every connected browser about `review`'s new state.
    pub fn publish(&self, review: &Review) {
        // No subscriber is not an error: nobody is watching.
        let _ = self.tx.send(review.clone());
    }

    /// An endless stream of SSE frames for one browser.
    pub fn stream(&self) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + use<> {
        let rx = self.tx.subscribe();
        futures_util::stream::unfold(rx, |mut rx| async move {
            let frame = tokio::select! {
                update = rx.recv() => match update {
                    Ok(review) => match serde_json::to_string(&review) {
                        Ok(json) => format!("event: review\ndata: {json}\n\n"),
                        Err(_) => return Some((Ok(Bytes::new()), rx)),
                    },
                    Err(broadcast::error::RecvError::Lagged(_)) => "event: resync\ndata: {}\n\n".to_owned(),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                () = tokio::time::sleep(KEEP_ALIVE) => ": keep-alive\n\n".to_owned(),
            };
            Some((Ok(Bytes::from(frame)), rx))
        })
    }
}
