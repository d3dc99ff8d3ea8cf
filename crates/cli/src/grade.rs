//! `hookline grade`: a receiver that grades whoever sends to it.
//!
//! Webhook tools test receivers; this one tests a **sender** against the
//! Standard Webhooks recommendations. It listens, and answers each message
//! (told apart by its body: a retry carries the same payload) with a
//! script of its own ([`Script`]): the first distinct message gets the
//! first script, and so on.
//!
//! 1. `server_error`: 500, 500, 500, then 200;
//! 2. `rate_limited`: 429 with `Retry-After`, then 200;
//! 3. `gone`: 410 Gone, every time;
//! 4. `redirect`: 307 to [`ELSEWHERE`] on the grader, then 200;
//! 5. `hang`: no answer for `--hang` (35 s by default: past the 30 s a
//!    sender should wait), then 200; the next attempt 200;
//! 6. `slow_body`: 200 at once, its body trickled over `--hang`; the next
//!    attempt (if any) 200.
//!
//! It ends once every script has (or `--wait` runs out), watches a quiet
//! window more for message 3 coming back, and grades the sender, one
//! verdict per [`Check`] ([`judge`] holds the rules and their numbers).
//!
//! The slow body is passed when the sender closes the connection before
//! the trickle ends (it took the status and went, or its deadline covers
//! reading the body too) and failed when it stays to the last byte: the
//! trickle lasts as long as the hang, past any sensible deadline, so
//! "reading it within a bounded time" cannot happen without closing early.
//! A sender that stops reading yet keeps the connection open is failed too:
//! it still ties up a connection for the whole trickle.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use hookline_contract::dialect::Dialect;
use hookline_testkit::serve::{Served, Serving, serve};
use serde::Serialize;

use crate::check::Signer;

pub mod judge;
mod report;
pub mod script;
mod server;

pub use judge::{Check, Mark, Rules, Verdict};
pub use script::{Answer, Attempt, Ended, Message, Script};

/// The path the redirect points at: a request there is a followed redirect.
pub const ELSEWHERE: &str = "/grade/elsewhere";
/// The path the grader's URL names (any path but [`ELSEWHERE`] is taken).
pub const PATH: &str = "/grade";
/// How long the grader watches for message 3 after every script ended.
pub const QUIET: Duration = Duration::from_secs(5);

/// How the grader answers and grades.
#[derive(Debug, Clone)]
pub struct GradeSettings {
    /// Verify every attempt with this (`--secret`); `None`: signatures are
    /// not graded.
    pub signer: Option<Signer>,
    /// The dialect the sender signs in: its delivery id header and timestamp.
    pub dialect: Dialect,
    /// How long the hang holds, and the slow body trickles.
    pub hang: Duration,
    /// The `Retry-After` of the 429 (whole seconds).
    pub retry_after: Duration,
    /// How long to wait for every script to end.
    pub wait: Duration,
    /// How long to watch for message 3 after they have.
    pub quiet: Duration,
}

/// The grade.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub url: String,
    pub dialect: String,
    /// Distinct messages that came (six are graded).
    pub messages_seen: usize,
    /// `--wait` ran out before every script ended.
    pub wait_ran_out: bool,
    pub checks: Vec<Verdict>,
    /// What came, message by message.
    pub messages: Vec<Message>,
}

impl Report {
    /// Full marks: no check failed or unseen (a check not graded does not
    /// count against the sender).
    pub fn passed(&self) -> bool {
        !self.checks.iter().any(|v| v.result.lost())
    }

    /// The checks that cost marks.
    pub fn lost(&self) -> impl Iterator<Item = Check> + '_ {
        self.checks.iter().filter(|v| v.result.lost()).map(|v| v.check)
    }
}

/// A grader, bound and ready to run.
pub struct Grader {
    /// The URL to send to.
    pub url: String,
    server: Server,
    shared: Arc<server::Shared>,
}

impl Grader {
    /// Binds `listener` and prepares the server (it runs in [`Grader::run`]).
    pub fn build(listener: TcpListener, settings: GradeSettings) -> std::io::Result<Self> {
        let shared = Arc::new(server::Shared::new(settings));
        let handler_shared = shared.clone();
        let Served { url, server } = serve(Serving::on(listener).dropping_on_hang_up(), move |arrival| {
            server::receive(arrival, handler_shared.clone())
        })?;
        Ok(Self {
            url: format!("{url}{PATH}"),
            server,
            shared,
        })
    }

    /// Serves until every script has ended (or `wait` runs out), watches
    /// the quiet window, stops, and grades.
    pub async fn run(self) -> Report {
        let handle = self.server.handle();
        let server = actix_web::rt::spawn(self.server);
        let shared = self.shared;
        let settings = &shared.settings;
        let deadline = tokio::time::Instant::from_std(shared.started + settings.wait);
        while !shared.all_ended() {
            if tokio::time::timeout_at(deadline, shared.changed.notified())
                .await
                .is_err()
            {
                break;
            }
        }
        let wait_ran_out = !shared.all_ended();
        if !wait_ran_out {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            actix_web::rt::time::sleep(settings.quiet.min(left)).await;
        }
        // Taken before the server stops: stopping drops the attempts still
        // held open, which must not read as the sender hanging up.
        let (messages, extra) = shared
            .state
            .lock()
            .map(|s| (s.messages.clone(), s.extra))
            .unwrap_or_default();
        handle.stop(false).await;
        let _ = server.await;
        let rules = Rules {
            dialect: settings.dialect,
            verifying: settings.signer.is_some(),
            retry_after: settings.retry_after,
            hang: settings.hang,
        };
        Report {
            url: self.url,
            dialect: settings.dialect.to_string(),
            messages_seen: messages.len() + extra,
            wait_ran_out,
            checks: judge::grade(&messages, &rules),
            messages,
        }
    }
}
