//! The test kit's recording receiver ([`hookline_testkit::receiver`]), with
//! the waits a test wants: they fail the test when the webhooks do not come.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use hookline_testkit::Serving;
pub use hookline_testkit::receiver::{Behaviour, Received};

/// A stand-in for a client's webhook endpoint on a free loopback port,
/// stopped when dropped; everything else is the kit's
/// [`Receiver`](hookline_testkit::Receiver), reached through it.
pub struct Receiver(hookline_testkit::Receiver);

impl Receiver {
    /// Answering `status` over plain HTTP.
    pub async fn start(status: u16) -> Self {
        Self(hookline_testkit::Receiver::start(Serving::default(), status).unwrap())
    }

    /// Answering `status` over TLS with `config` (its certificate, and
    /// whether it demands one of the client), at `https://localhost:<port>/hook`.
    pub async fn start_tls(status: u16, config: rustls::ServerConfig) -> Self {
        let serving = Serving::default().tls(config, "localhost");
        Self(hookline_testkit::Receiver::start(serving, status).unwrap())
    }

    /// The next webhook, or panics after `deadline`.
    pub async fn next(&mut self, deadline: Duration) -> Received {
        self.0
            .next(deadline)
            .await
            .unwrap_or_else(|e| panic!("no webhook: {e}"))
    }

    /// Collects webhooks until `done` says the collection is complete, or
    /// panics after `deadline`.
    pub async fn collect_until(&mut self, deadline: Duration, done: impl FnMut(&[Received]) -> bool) -> Vec<Received> {
        self.0
            .collect_until(deadline, done)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Deref for Receiver {
    type Target = hookline_testkit::Receiver;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Receiver {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}
