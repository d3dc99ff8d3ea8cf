//! Support for hookline's cross-service tests (the one test binary is
//! `tests/it`).
//!
//! Every test gets its own PostgreSQL database (created from the admin
//! `DATABASE_URL`, dropped afterwards) and its own Redis key prefix (its keys
//! deleted afterwards), so the suite runs in parallel against one server of
//! each. The services run in-process on port 0 with their real
//! `Application::build`, and talk to each other over real HTTP.
//! `scripts/test.sh` provides throwaway servers when the variables are unset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unreachable_pub)]

use hookline_contract::signature::{SecretSet, WebhookSecret};

/// The help desk's subscription API as a tenant: subscribe, post a document.
pub mod api;
/// A real Redis Cluster (three masters, three replicas) on loopback.
pub mod cluster;
/// A PostgreSQL database per test.
pub mod db;
/// Peers that misbehave on purpose (the test kit's), started as a test wants.
pub mod hostile;
/// Requests to the services, polls with deadlines, assertions on answers.
pub mod http;
/// `hookline listen` inside a test.
pub mod listen;
/// A webhook sender that cuts corners, for `hookline grade` to fail.
pub mod naive_sender;
/// Real processes (our binaries, redis-server), stopped by pid.
pub mod process;
/// A TCP proxy that loses the answers to the first few requests.
pub mod proxy;
/// A stand-in webhook receiver (the test kit's) with waits that fail the test.
pub mod receiver;
/// A Redis key prefix per test.
pub mod redis;
/// Our services in-process, alone or wired together.
pub mod stack;
/// Certificates made on the spot (the test kit's) and a TLS-terminating proxy.
pub mod tls;
/// Stand-ins for the original tutorial's help desk and consumer.
pub mod tutorial;

pub use db::TestDb;
pub use http::{
    assert_client_error, call, closed_port, get_json, get_text, metric_sum, post_json, post_json_with_headers,
    post_raw, post_review, post_signed_webhook, request_json, send_json, wait_for, wait_for_delivery,
};
pub use listen::{Listening, start_listener};
pub use receiver::{Behaviour, Received, Receiver};
pub use redis::{Footprint, TestRedis};
pub use stack::{Running, Stack, consumer_settings, helpdesk_settings, start_consumer, start_helpdesk};

/// The secret both services share in tests.
pub const SECRET: &str = "whsec_aG9va2xpbmUtdGVzdC1zZWNyZXQtZm9yLWhvb2tsaW5l";

pub fn secret_set() -> SecretSet {
    SECRET.parse().unwrap()
}

/// A tenant's own callback secret in tests, the same for every test: what
/// its receivers hold when its callbacks are signed per tenant.
pub fn tenant_secret(tenant: &str) -> WebhookSecret {
    WebhookSecret::from_bytes(format!("{tenant}-tenant-secret-of-hookline-tests").into_bytes()).unwrap()
}

/// `TENANT_SECRETS` giving each of `tenants` its [`tenant_secret`]: a help
/// desk that signs refuses to start with a named tenant that has none.
pub fn tenant_secrets(tenants: &[&str]) -> helpdesk::signing::TenantSecrets {
    let entries: Vec<String> = tenants
        .iter()
        .map(|tenant| format!("{tenant}={}", tenant_secret(tenant).expose()))
        .collect();
    entries.join(",").parse().unwrap()
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test.sh, which starts throwaway PostgreSQL and Redis")
    })
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}
