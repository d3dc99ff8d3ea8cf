//! A stand-in for a client's webhook endpoint: records what it gets and
//! answers as the test says, over plain HTTP or TLS.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, web};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::http::parse_body;
use crate::stack::Running;

/// A webhook as a test receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    /// The body as sent (signatures are over these bytes).
    pub raw: Vec<u8>,
    pub at: Instant,
}

impl Received {
    /// Checks the Standard Webhooks signature with the scheme's reference
    /// library (`standardwebhooks`), under `secret` (`whsec_...`).
    pub fn verify_with(&self, secret: &str) -> Result<(), String> {
        let mut headers = http::HeaderMap::new();
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            if let Some(value) = self.headers.get(name) {
                headers.insert(name, http::HeaderValue::from_str(value).map_err(|e| e.to_string())?);
            }
        }
        standardwebhooks::Webhook::new(secret)
            .map_err(|e| format!("{e:?}"))?
            .verify(&self.raw, &headers)
            .map_err(|e| format!("{e:?}"))
    }
}

/// How a [`Receiver`] answers; change it while the test runs.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// The status to answer with (0 means 200).
    pub status: std::sync::atomic::AtomicU16,
    /// Wait this long before answering, to keep deliveries in flight.
    pub delay_ms: std::sync::atomic::AtomicU64,
    /// Answers to give first, in order, before falling back to `status`:
    /// `(status, Retry-After)`.
    pub script: std::sync::Mutex<std::collections::VecDeque<(u16, Option<String>)>>,
}

impl Behaviour {
    pub fn answer(&self, status: u16) {
        self.status.store(status, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn delay(&self, delay: Duration) {
        self.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap(),
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    fn current_delay(&self) -> Duration {
        Duration::from_millis(std::sync::atomic::AtomicU64::load(
            &self.delay_ms,
            std::sync::atomic::Ordering::SeqCst,
        ))
    }

    fn next(&self) -> (u16, Option<String>) {
        if let Some(scripted) = self.script.lock().unwrap().pop_front() {
            return scripted;
        }
        match std::sync::atomic::AtomicU16::load(&self.status, std::sync::atomic::Ordering::SeqCst) {
            0 => (200, None),
            status => (status, None),
        }
    }
}

/// A stand-in for a client's webhook endpoint (not one of our services):
/// records what it receives and answers as its [`Behaviour`] says.
pub struct Receiver {
    pub url: String,
    pub received: mpsc::UnboundedReceiver<Received>,
    pub behaviour: std::sync::Arc<Behaviour>,
    _server: Running,
}

impl Receiver {
    pub async fn start(status: u16) -> Self {
        Self::start_with(status, None)
    }

    /// A receiver served over TLS with `config` (its certificate, and
    /// whether it demands one of the client) at `https://localhost:<port>/hook`.
    pub async fn start_tls(status: u16, config: rustls::ServerConfig) -> Self {
        Self::start_with(status, Some(config))
    }

    fn start_with(status: u16, tls: Option<rustls::ServerConfig>) -> Self {
        let behaviour = std::sync::Arc::new(Behaviour::default());
        behaviour.answer(status);
        let (tx, received) = mpsc::unbounded_channel();
        let shared = behaviour.clone();
        let app = move || {
            let (tx, behaviour) = (tx.clone(), shared.clone());
            App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
                let (tx, behaviour) = (tx.clone(), behaviour.clone());
                async move {
                    let headers = request
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                        .collect();
                    let _ = tx.send(Received {
                        headers,
                        body: parse_body(&body),
                        raw: body.to_vec(),
                        at: Instant::now(),
                    });
                    let delay = behaviour.current_delay();
                    if !delay.is_zero() {
                        actix_web::rt::time::sleep(delay).await;
                    }
                    let (status, retry_after) = behaviour.next();
                    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
                    if let Some(retry_after) = retry_after {
                        response.insert_header(("retry-after", retry_after));
                    }
                    response.finish()
                }
            }))
        };
        let server = Running::serve_with(app, tls);
        Self {
            url: format!("{}/hook", server.url),
            received,
            behaviour,
            _server: server,
        }
    }

    /// The next webhook, or panics after `deadline`.
    pub async fn next(&mut self, deadline: Duration) -> Received {
        tokio::time::timeout(deadline, self.received.recv())
            .await
            .expect("no webhook arrived in time")
            .expect("the receiver stopped")
    }

    /// Collects webhooks until `done` says the collection is complete, or
    /// panics after `deadline`.
    pub async fn collect_until(
        &mut self,
        deadline: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        let started = Instant::now();
        let mut all = Vec::new();
        while !done(&all) {
            let left = deadline.checked_sub(started.elapsed()).unwrap_or_default();
            match tokio::time::timeout(left, self.received.recv()).await {
                Ok(Some(received)) => all.push(received),
                _ => panic!("timed out after {deadline:?} with {} webhooks received", all.len()),
            }
        }
        all
    }
}
