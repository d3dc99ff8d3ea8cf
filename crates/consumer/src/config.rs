//! The consumer's settings: every one a flag with an environment variable
//! behind it (`consumer --help`). This is the only module that reads the
//! environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hookline_contract::signature::SecretSet;
use hookline_kit::auth::ApiKeys;
use hookline_kit::config::{LogFormat, Secret, parse_duration, secret};
use hookline_kit::guards::GuardSettings;
use hookline_kit::host::AllowedHosts;
use hookline_kit::trace::TraceSettings;
use url::Url;

#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// PostgreSQL database of the reviews (migrations run at start-up).
    /// Required to serve; `healthcheck` does without.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret<String>>,

    /// Address to listen on.
    #[arg(long, env = "CONSUMER_LISTEN", default_value = "0.0.0.0:3333")]
    pub listen: SocketAddr,

    /// Base URL of the Help Desk.
    #[arg(long, env = "HELPDESK_URL", default_value = "http://127.0.0.1:8080")]
    pub helpdesk_url: Url,

    /// The key sent to the Help Desk (`Authorization: Bearer`), one of its
    /// `HELPDESK_API_KEYS`. Unset: no key is sent.
    #[arg(long, env = "HELPDESK_API_KEY", hide_env_values = true, value_parser = secret::<Secret<String>>())]
    pub helpdesk_api_key: Option<Secret<String>>,

    /// PEM file of certificate authorities trusted for an `https://`
    /// HELPDESK_URL besides the system's roots (a private CA).
    #[arg(long, env = "HELPDESK_CA_FILE")]
    pub helpdesk_ca_file: Option<PathBuf>,

    /// Base URL at which the Help Desk reaches this consumer; the callback
    /// handed out is `{CONSUMER_PUBLIC_URL}/document/update`, the
    /// subscription's URL `{CONSUMER_PUBLIC_URL}/helpdesk/events`.
    /// [default: http://127.0.0.1:<listen port>]
    #[arg(long, env = "CONSUMER_PUBLIC_URL")]
    pub public_url: Option<Url>,

    /// API keys of the consumer's own API, comma-separated (two while one
    /// is rotated), each at least 16 characters, `tenant:key` to tell
    /// callers apart: when set, `POST /documents`, `GET /documents`,
    /// `GET /documents/{id}` and the dashboard's live updates (`/events`)
    /// need `Authorization: Bearer <key>` (the dashboard asks for one), and
    /// an `Idempotency-Key` belongs to its caller's tenant. The webhook
    /// receivers (signed), `/healthz`, `/readyz`, `/openapi.json` and the
    /// dashboard's page stay open. Unset: every route is open, as the
    /// tutorial's consumer is.
    #[arg(
        long,
        env = "CONSUMER_API_KEYS",
        hide_env_values = true,
        value_parser = secret::<ApiKeys>(),
        default_value = "",
        hide_default_value = true
    )]
    pub api_keys: ApiKeys,

    /// Host names this consumer answers to, comma-separated (ports are
    /// ignored), besides the host of CONSUMER_PUBLIC_URL, which is always
    /// allowed; a request naming another `Host` is a `421` (DNS rebinding
    /// reaches a local service under the attacker's name). `*` answers to
    /// any. The probes (`/healthz`, `/readyz`) answer to any name.
    #[arg(long, env = "ALLOWED_HOSTS", default_value = hookline_kit::host::LOOPBACK)]
    pub allowed_hosts: AllowedHosts,

    /// Receive the Help Desk's events through a subscription
    /// (`{CONSUMER_PUBLIC_URL}/helpdesk/events`, signed with the
    /// subscription's own secret, kept in the database) instead of a
    /// callback URL per request. The subscription is found or made at
    /// start-up, in the background; until it is, and whenever it cannot be
    /// used, requests still carry `X-Callback-Url`.
    #[arg(long, env = "HELPDESK_SUBSCRIBE", default_value_t = false, action = clap::ArgAction::Set)]
    pub helpdesk_subscribe: bool,

    /// Standard Webhooks secret(s) shared with the Help Desk, `whsec_...`,
    /// comma-separated during a rotation (any one verifies).
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true, value_parser = secret::<SecretSet>())]
    pub webhook_secret: Option<SecretSet>,

    /// Accept unsigned webhooks when no WEBHOOK_SECRET is set (to talk to the
    /// original tutorial's help desk). Without either, the consumer refuses to start.
    #[arg(long, env = "ALLOW_UNSIGNED_WEBHOOKS", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_unsigned_webhooks: bool,

    /// Connections in the PostgreSQL pool.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 16)]
    pub database_pool_size: usize,

    /// The most new reviews (and help desk answers) written in one
    /// statement and commit when they arrive together (group commit,
    /// `writer.rs`); 1 writes each on its own (to compare).
    #[arg(long, env = "WRITE_BATCH", default_value_t = 256,
          value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub write_batch: u16,

    /// Time limit of a call to the Help Desk.
    #[arg(long, env = "HELPDESK_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub helpdesk_timeout: Duration,

    /// A review still PENDING_REVIEW this long after it was requested is
    /// polled from the Help Desk (`GET /document/{documentId}`), in case
    /// every webhook was lost.
    #[arg(long, env = "RECONCILE_AFTER", default_value = "10m", value_parser = parse_duration)]
    pub reconcile_after: Duration,

    /// How long a webhook's receipt is kept: a redelivery of it is
    /// recognised by its `webhook-id` until then (after, the decided review
    /// still refuses to change).
    #[arg(long, env = "RECEIPT_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub receipt_retention: Duration,

    /// How long an `Idempotency-Key` of `POST /documents` is kept: a retry
    /// within it gets the first answer.
    #[arg(long, env = "IDEMPOTENCY_RETENTION", default_value = "24h", value_parser = parse_duration)]
    pub idempotency_retention: Duration,

    /// How long a stopping consumer (SIGTERM, SIGINT) waits for requests in
    /// progress before it exits anyway. Keep it below the orchestrator's own
    /// limit (Docker waits 10 s, then kills).
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "8s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "HTTP_WORKERS")]
    pub http_workers: Option<usize>,

    /// `pretty` or `json`.
    #[arg(long, env = "LOG_FORMAT", default_value = "pretty", value_enum)]
    pub log_format: LogFormat,

    /// A hostile client's limits: REQUEST_BODY_TIMEOUT, API_RATE,
    /// METRICS_TOKEN (`hookline_kit::guards`).
    #[command(flatten)]
    pub guards: GuardSettings,

    /// Tracing: OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    /// OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_SERVICE_NAME (`hookline_kit::trace`).
    #[command(flatten)]
    pub trace: TraceSettings,

    /// Dashboard event streams (`GET /events`) open at once; past it the
    /// answer is 503 with Retry-After.
    #[arg(long, env = "EVENTS_MAX_STREAMS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub events_max_streams: u32,

    /// The longest one event stream lasts; then it ends and the browser's
    /// EventSource reconnects (a client that stopped reading is cut sooner,
    /// by SEND_TIMEOUT).
    #[arg(long, env = "EVENTS_MAX_AGE", default_value = "10m", value_parser = parse_duration)]
    pub events_max_age: Duration,
}
