//! Test doubles written once for everyone who needs them: the integration
//! tests (`crates/tests`), the benchmarks (`crates/bench`) and `hookline
//! listen` (`crates/cli`).
//!
//! Everything here returns errors instead of panicking, since the bench and
//! the CLI run it outside tests; the tests crate wraps what it uses in
//! helpers that fail the test instead.

/// Peers that misbehave on purpose: black holes, slow lorises, refusals.
pub mod hostile;
/// A stand-in webhook endpoint that records what it gets and answers as told.
pub mod receiver;
/// The HTTP server under every receiver here and under `hookline listen`.
pub mod serve;
/// Throwaway certificates: a CA of one's own, server and client certificates.
pub mod tls;

pub use hostile::{Hostile, Hostility};
pub use receiver::{Behaviour, Received, Receiver};
pub use serve::{Arrival, Serving};
pub use tls::{Issued, TestCa};
