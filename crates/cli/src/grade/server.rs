//! The grader's HTTP side, on the test kit's server
//! ([`hookline_testkit::serve`]): every request is told apart by its body,
//! read (delivery id, signature, timestamp), recorded on its message, and
//! answered as the message's script says.
//!
//! Two answers are held open, and how they end is what is graded: the hang
//! (no answer for `--hang`) and the slow body (a 200 whose body trickles
//! over `--hang`). Each carries a guard that records the end: the hang
//! running out or the trickle's last byte records [`Ended::RanOut`]; a guard
//! dropped before that (actix drops the handler, or the streamed body, when
//! the sender closes the connection: the server is built with
//! [`Serving::dropping_on_hang_up`]) records [`Ended::SenderHungUp`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use actix_web::web::Bytes;
use hookline_testkit::serve::Arrival;
use tokio::sync::Notify;

use super::script::{Answer, Arrived, Ended, Message, Script};
use super::{ELSEWHERE, GradeSettings};

/// How often the slow body sends its next byte.
const TRICKLE_EVERY: Duration = Duration::from_millis(250);

/// What the handler and the grade share.
pub(super) struct Shared {
    pub(super) settings: GradeSettings,
    pub(super) started: Instant,
    pub(super) state: Mutex<State>,
    /// Told whenever a message's script may have ended.
    pub(super) changed: Notify,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) messages: Vec<Message>,
    /// Each message's index, by its body.
    by_body: HashMap<Bytes, usize>,
    /// Distinct messages past the sixth: answered 200, not graded.
    pub(super) extra: usize,
}

impl Shared {
    pub(super) fn new(settings: GradeSettings) -> Self {
        Self {
            settings,
            started: Instant::now(),
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        }
    }

    /// Whether every script has run to its end.
    pub(super) fn all_ended(&self) -> bool {
        self.state
            .lock()
            .is_ok_and(|s| s.messages.len() == Script::ALL.len() && s.messages.iter().all(Message::ended))
    }

    /// Records how attempt `attempt` of message `message` ended.
    fn end(&self, message: usize, attempt: usize, ended: Ended) {
        if let Ok(mut state) = self.state.lock()
            && let Some(a) = state
                .messages
                .get_mut(message)
                .and_then(|m| m.attempts.get_mut(attempt))
        {
            a.ended.get_or_insert(ended);
        }
        self.changed.notify_one();
    }
}

/// Records an attempt's end when dropped: the sender hung up, unless
/// [`EndGuard::ran_out`] came first.
struct EndGuard {
    shared: Arc<Shared>,
    message: usize,
    attempt: usize,
    since: Instant,
}

impl EndGuard {
    fn ran_out(self) {
        self.shared.end(self.message, self.attempt, Ended::RanOut);
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        // After `ran_out` this is a no-op: the first end recorded stays.
        self.shared.end(
            self.message,
            self.attempt,
            Ended::SenderHungUp {
                after: self.since.elapsed(),
            },
        );
    }
}

/// Reads, records and answers one request.
pub(super) async fn receive(arrival: Arrival, shared: Arc<Shared>) -> HttpResponse {
    let Arrival {
        request,
        body,
        at,
        at_unix_us,
    } = arrival;
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let settings = &shared.settings;
    let dialect = settings.dialect;
    let at_unix = at_unix_us / 1_000_000;
    let arrived = Arrived {
        at: at.saturating_duration_since(shared.started),
        at_unix,
        followed_redirect: request.path() == ELSEWHERE,
        delivery_id: match dialect.id_header() {
            Some(name) => header(name),
            None => crate::listen::body_id(&body),
        },
        signature: settings.signer.as_ref().map(|s| s.verify(header, &body, at_unix)),
        timestamp: dialect.signed_timestamp(header),
    };
    let followed = arrived.followed_redirect;
    let placed = {
        let Ok(mut state) = shared.state.lock() else {
            return HttpResponse::InternalServerError().finish();
        };
        let known = state.by_body.get(&body).copied();
        let index = match known {
            Some(index) => Some(index),
            // Only message 4 is redirected: whatever comes to the
            // redirect's Location follows it, whatever body it carries.
            None if followed => state.messages.iter().position(|m| m.script == Script::Redirect),
            None => match Script::ALL.get(state.messages.len()) {
                Some(script) => {
                    state.messages.push(Message::new(*script));
                    let index = state.messages.len() - 1;
                    state.by_body.insert(body.clone(), index);
                    Some(index)
                }
                None => {
                    state.extra += 1;
                    None
                }
            },
        };
        index.and_then(|index| {
            let message = state.messages.get_mut(index)?;
            let answer = message.attempt(arrived);
            Some((index, message.attempts.len() - 1, answer))
        })
    };
    shared.changed.notify_one();
    let Some((message, attempt, answer)) = placed else {
        return HttpResponse::Ok().json(serde_json::json!({"received": true, "graded": false}));
    };
    let guard = |shared: &Arc<Shared>| EndGuard {
        shared: shared.clone(),
        message,
        attempt,
        since: Instant::now(),
    };
    match answer {
        Answer::Ok => HttpResponse::Ok().json(serde_json::json!({"received": true})),
        Answer::ServerError => {
            HttpResponse::InternalServerError().json(serde_json::json!({"message": "failed on purpose (server_error)"}))
        }
        Answer::RateLimited => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", settings.retry_after.as_secs().to_string()))
            .json(serde_json::json!({"message": "slow down (rate_limited)"})),
        Answer::Gone => HttpResponse::Gone().json(serde_json::json!({"message": "gone: send no more"})),
        Answer::Redirect => {
            let location = format!(
                "{}://{}{ELSEWHERE}",
                request.connection_info().scheme(),
                request.connection_info().host()
            );
            HttpResponse::TemporaryRedirect()
                .insert_header(("Location", location))
                .json(serde_json::json!({"message": "moved (redirect): a sender must not follow"}))
        }
        Answer::Hang => {
            let guard = guard(&shared);
            actix_web::rt::time::sleep(settings.hang).await;
            guard.ran_out();
            HttpResponse::Ok().json(serde_json::json!({"received": true, "after": "hang"}))
        }
        Answer::SlowBody => HttpResponse::Ok()
            .content_type("application/json")
            .streaming(trickle(guard(&shared), settings.hang)),
    }
}

/// A JSON body sent a byte every [`TRICKLE_EVERY`] over `over`; its guard
/// records the end.
fn trickle(
    guard: EndGuard,
    over: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    let ticks = (over.as_millis() / TRICKLE_EVERY.as_millis()).max(1);
    let opening = futures_util::stream::once(async { Ok(Bytes::from_static(b"{\"received\":true,\"padding\":\"")) });
    let dots = futures_util::stream::unfold((0u128, Some(guard)), move |(tick, mut guard)| async move {
        if tick > ticks {
            return None;
        }
        actix_web::rt::time::sleep(TRICKLE_EVERY).await;
        if tick == ticks {
            if let Some(guard) = guard.take() {
                guard.ran_out();
            }
            return Some((Ok(Bytes::from_static(b"\"}")), (tick + 1, guard)));
        }
        Some((Ok(Bytes::from_static(b".")), (tick + 1, guard)))
    });
    futures_util::StreamExt::chain(opening, dots)
}
