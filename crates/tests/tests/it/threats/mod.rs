//! The security review of issue 23, one module per threat. Each test is the
//! attack as an attacker would run it against real processes (a real Redis,
//! a real PostgreSQL, real HTTP), and each was seen failing with its defence
//! turned off. `docs/security.md` lists every threat, its defence and these
//! tests by name.
//!
//! | finding | module |
//! |---|---|
//! | 1. another client decides the consumer's review | [`forged_decisions`] |
//! | 2. tenants see and steer each other | [`tenant_walls`] |
//! | 3. anyone with a key grows Redis, slows every scrape | [`unbounded_growth`], [`flooding`] |
//! | 4. a slow body holds a connection forever | [`slow_peers`] |
//! | 5. SSRF spellings, a port-scan oracle | [`ssrf`] |
//! | 5. the consumer exposed to the internet | [`exposed_consumer`] |

/// The consumer as an app exposed to the internet.
mod exposed_consumer;
/// Per-key request rates, `/metrics` in O(1) and behind a token.
mod flooding;
/// Callbacks signed per tenant; the consumer matches its own ids exactly.
mod forged_decisions;
/// Deadlines on our own servers: slow bodies, idle and too many event streams.
mod slow_peers;
/// Every spelling of an internal address, and a strict policy that reads alike.
mod ssrf;
/// Every object a tenant can name is its own; the operator alone steers endpoints.
mod tenant_walls;
/// Endpoints only through cases, caps that hold under concurrency.
mod unbounded_growth;
