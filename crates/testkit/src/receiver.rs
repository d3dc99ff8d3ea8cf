//! A stand-in for a client's webhook endpoint (not one of our services): it
//! records every webhook it gets, with when it arrived, its headers and its
//! body, and answers as its [`Behaviour`] says (a status, a delay, a script
//! of answers to give first). The tests use it to see what the help desk
//! sent and to make an endpoint fail or hang on cue; the bench uses it as
//! the fast receiver whose receipts time its delivery scenarios.
//!
//! What arrives goes into an unbounded channel, read in order through
//! [`Receiver::received`] (or [`Receiver::next`], [`Receiver::collect_until`],
//! [`Receiver::take`]). The server runs on the caller's runtime
//! ([`Receiver::start`]) or on a thread of its own ([`Receiver::start_in_thread`],
//! so a load generator's runtime does not share it), and stops when the
//! receiver drops.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::serve::{Arrival, Served, Serving, serve};

/// A webhook as a [`Receiver`] got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header names in lower case; a header sent twice keeps its last value.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON ([`json_or_text`]).
    pub body: Value,
    /// The body as sent (signatures are over these bytes).
    pub raw: Vec<u8>,
    pub at: Instant,
    /// `at` as unix microseconds.
    pub at_unix_us: i64,
}

/// Why [`Received::verify_with`] refused a webhook.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("a webhook header cannot be passed on")]
    Header(#[from] http::header::InvalidHeaderValue),
    #[error("the Standard Webhooks reference library refused it")]
    Refused(#[from] standardwebhooks::WebhookError),
}

impl Received {
    fn of(arrival: &Arrival) -> Self {
        let headers = arrival
            .request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        Self {
            path: arrival.request.path().to_owned(),
            headers,
            body: json_or_text(&arrival.body),
            raw: arrival.body.to_vec(),
            at: arrival.at,
            at_unix_us: arrival.at_unix_us,
        }
    }

    /// Checks the Standard Webhooks signature with the scheme's reference
    /// library (`standardwebhooks`), under `secret` (`whsec_...`): a check
    /// that does not share our own signing code.
    pub fn verify_with(&self, secret: &str) -> Result<(), VerifyError> {
        let mut headers = http::HeaderMap::new();
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            if let Some(value) = self.headers.get(name) {
                headers.insert(name, http::HeaderValue::from_str(value)?);
            }
        }
        standardwebhooks::Webhook::new(secret)?.verify(&self.raw, &headers)?;
        Ok(())
    }
}

/// `bytes` as JSON; a body that is not JSON as a string, an empty one as null.
pub fn json_or_text(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
    }
}

/// How a [`Receiver`] answers; change it while it runs.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// The status to answer with (0 means 200).
    status: AtomicU16,
    /// Milliseconds to wait before answering, to keep deliveries in flight.
    delay_ms: AtomicU64,
    /// Answers to give first, in order, before falling back to the status:
    /// `(status, Retry-After)`.
    pub script: Mutex<VecDeque<(u16, Option<String>)>>,
}

impl Behaviour {
    /// Answer `status` from now on (after the script).
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Wait `delay` before answering, from now on.
    pub fn delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms.store(millis, Ordering::SeqCst);
    }

    fn current_delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))
    }

    fn next(&self) -> (u16, Option<String>) {
        let scripted = self.script.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
        if let Some(scripted) = scripted {
            return scripted;
        }
        match self.status.load(Ordering::SeqCst) {
            0 => (200, None),
            status => (status, None),
        }
    }

    /// Records `arrival` on `tx`, then answers it.
    async fn respond(&self, arrival: Arrival, tx: &mpsc::UnboundedSender<Received>) -> HttpResponse {
        let _ = tx.send(Received::of(&arrival));
        let delay = self.current_delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let (status, retry_after) = self.next();
        let mut response =
            HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
        if let Some(retry_after) = retry_after {
            response.insert_header(("retry-after", retry_after));
        }
        response.finish()
    }
}

/// Why a wait for webhooks ended without them.
#[derive(Debug, thiserror::Error)]
pub enum Waited {
    #[error("timed out after {deadline:?} with {got} webhooks received")]
    TimedOut { deadline: Duration, got: usize },
    #[error("the receiver stopped")]
    Stopped,
}

/// A recording webhook receiver at [`Receiver::url`] (`.../hook`; any path
/// is answered alike).
pub struct Receiver {
    pub url: String,
    /// Every webhook received and not yet taken, in order of arrival.
    pub received: mpsc::UnboundedReceiver<Received>,
    pub behaviour: Arc<Behaviour>,
    handle: ServerHandle,
    /// The server's task when it runs on the caller's runtime. It carries
    /// out the stop that dropping the receiver sends, then ends (as does a
    /// thread of its own).
    _task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Receiver {
    /// Starts one on the current actix runtime, answering `status`.
    pub fn start(serving: Serving, status: u16) -> std::io::Result<Self> {
        let (behaviour, tx, received) = Self::parts(status);
        let Served { url, server } = serve(serving, handler(&behaviour, tx))?;
        let handle = server.handle();
        Ok(Self {
            url: format!("{url}/hook"),
            received,
            behaviour,
            handle,
            _task: Some(actix_web::rt::spawn(server)),
        })
    }

    /// Starts one in a thread of its own, with its own runtime, answering `status`.
    pub fn start_in_thread(serving: Serving, status: u16) -> std::io::Result<Self> {
        let (behaviour, tx, received) = Self::parts(status);
        let handler = handler(&behaviour, tx);
        let (ready, listening) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("receiver".to_owned()).spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match serve(serving, handler) {
                    Ok(Served { url, server }) => {
                        let _ = ready.send(Ok((url, server.handle())));
                        let _ = server.await;
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            });
        })?;
        let (url, handle) = listening
            .recv()
            .map_err(|_| std::io::Error::other("the receiver's thread ended before it listened"))??;
        Ok(Self {
            url: format!("{url}/hook"),
            received,
            behaviour,
            handle,
            _task: None,
        })
    }

    fn parts(
        status: u16,
    ) -> (
        Arc<Behaviour>,
        mpsc::UnboundedSender<Received>,
        mpsc::UnboundedReceiver<Received>,
    ) {
        let behaviour = Arc::new(Behaviour::default());
        behaviour.answer(status);
        let (tx, received) = mpsc::unbounded_channel();
        (behaviour, tx, received)
    }

    /// The next webhook, waiting at most `deadline`.
    pub async fn next(&mut self, deadline: Duration) -> Result<Received, Waited> {
        match tokio::time::timeout(deadline, self.received.recv()).await {
            Ok(Some(received)) => Ok(received),
            Ok(None) => Err(Waited::Stopped),
            Err(_) => Err(Waited::TimedOut { deadline, got: 0 }),
        }
    }

    /// Collects webhooks until `done` says the collection is complete,
    /// waiting at most `deadline` in all.
    pub async fn collect_until(
        &mut self,
        deadline: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Result<Vec<Received>, Waited> {
        let started = Instant::now();
        let mut all = Vec::new();
        while !done(&all) {
            let left = deadline.checked_sub(started.elapsed()).unwrap_or_default();
            match tokio::time::timeout(left, self.received.recv()).await {
                Ok(Some(received)) => all.push(received),
                Ok(None) => return Err(Waited::Stopped),
                Err(_) => {
                    return Err(Waited::TimedOut {
                        deadline,
                        got: all.len(),
                    });
                }
            }
        }
        Ok(all)
    }

    /// Every webhook received and not yet taken, without waiting.
    pub fn take(&mut self) -> Vec<Received> {
        let mut all = Vec::with_capacity(self.received.len());
        while let Ok(received) = self.received.try_recv() {
            all.push(received);
        }
        all
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // The command is sent at once; the server's task or thread stops it.
        drop(self.handle.stop(false));
    }
}

/// An answer on its way (boxed, so that [`handler`] can name its type).
type Answering = Pin<Box<dyn Future<Output = HttpResponse>>>;

/// What a receiver's server does with each request: records it, then
/// answers as `behaviour` says.
fn handler(
    behaviour: &Arc<Behaviour>,
    tx: mpsc::UnboundedSender<Received>,
) -> impl Fn(Arrival) -> Answering + Clone + Send + 'static {
    let behaviour = behaviour.clone();
    move |arrival| {
        let (behaviour, tx) = (behaviour.clone(), tx.clone());
        Box::pin(async move { behaviour.respond(arrival, &tx).await })
    }
}
