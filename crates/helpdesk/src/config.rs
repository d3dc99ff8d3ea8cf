//! The help desk's settings: every one a flag with an environment variable
//! behind it (`helpdesk --help`). This is the only module that reads the
//! environment.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hookline_contract::chaos::ChaosProfile;
use hookline_contract::signature::SecretSet;
use hookline_kit::auth::ApiKeys;
use hookline_kit::config::{InvalidValue, LogFormat, Secret, parse_duration, secret};
use hookline_kit::guards::GuardSettings;
use hookline_kit::tls;
use hookline_kit::trace::TraceSettings;

use crate::signing::{CallbackSigning, MissingSecret, TenantSecrets};
use crate::ssrf::{CallbackPolicy, Preset, Rule};
use crate::store::{DisablePolicy, EndpointLimits, MAX_PARTITIONS};

#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Redis holding the cases and the job queue.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub redis_url: Secret<String>,

    /// Address to listen on.
    #[arg(long, env = "HELPDESK_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// How long the simulated agent takes, in milliseconds: `MIN-MAX`
    /// (uniform) or a single value; `0` for no delay.
    #[arg(long, env = "REVIEW_DELAY_MS", default_value = "2000-5000")]
    pub review_delay_ms: DelayRange,

    /// Probability that a review is ACCEPTED (otherwise DECLINED), 0 to 1.
    #[arg(long, env = "ACCEPT_RATIO", default_value = "0.7", value_parser = parse_ratio)]
    pub accept_ratio: f64,

    /// Standard Webhooks secret(s), `whsec_...`, comma-separated to rotate:
    /// the default tenant's (keys without a tenant, an open help desk);
    /// its callbacks are signed with each. Unset, and TENANT_SECRETS unset
    /// too: callbacks go out unsigned.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true, value_parser = secret::<SecretSet>())]
    pub webhook_secret: Option<SecretSet>,

    /// Each named tenant's own Standard Webhooks secret(s) for its
    /// callbacks: `tenant=whsec_...`, comma-separated (e.g.
    /// `acme=whsec_...,globex=whsec_...`); a tenant listed twice signs with
    /// both, to rotate. A case's callback is signed with the secrets of the
    /// tenant whose key (HELPDESK_API_KEYS `tenant:key`) created it; keys
    /// without a tenant, and an open help desk, sign with WEBHOOK_SECRET.
    /// While either is set, a tenant the keys name without a secret here
    /// stops the start.
    #[arg(
        long,
        env = "TENANT_SECRETS",
        hide_env_values = true,
        value_parser = secret::<TenantSecrets>(),
        default_value = "",
        hide_default_value = true
    )]
    pub tenant_secrets: TenantSecrets,

    /// API keys, comma-separated (two while one is rotated), each at least
    /// 16 characters: when set, `POST /document`, `GET /document/{id}`,
    /// redelivery, `/cases`, `/dead-letters` and `/endpoints` need
    /// `Authorization: Bearer <key>`; `/healthz`, `/readyz`, `/metrics` and
    /// the dashboard's page stay open. Unset: every route is open, as the
    /// tutorial's help desk is.
    #[arg(
        long,
        env = "HELPDESK_API_KEYS",
        hide_env_values = true,
        value_parser = secret::<ApiKeys>(),
        default_value = "",
        hide_default_value = true
    )]
    pub api_keys: ApiKeys,

    /// Replicas that must hold a new case before `POST /document` answers
    /// `202` (Redis `WAIT`, at most 1 s; otherwise a `503`, and a retry
    /// with the same `id` finds the case): a master's failover then cannot
    /// lose an accepted review. 0: answer once the master has it.
    #[arg(long, env = "REDIS_MIN_REPLICAS", default_value_t = 0)]
    pub redis_min_replicas: u32,

    /// Prefix of every Redis key (also their Redis Cluster hash tag).
    #[arg(long, env = "REDIS_PREFIX", default_value = "helpdesk")]
    pub redis_prefix: String,

    /// Partitions the queue is spread over, each under its own hash tag
    /// (`{prefix:k}`), so a Redis Cluster spreads its keys and work over its
    /// masters; an endpoint's limits are shared out among them. 1: every
    /// key under `{prefix}` (the layout before partitions). Every help desk
    /// process of one prefix must use the same count; the help desk refuses
    /// to start with another while the queue still holds cases.
    #[arg(long, env = "REDIS_PARTITIONS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=MAX_PARTITIONS as i64))]
    pub redis_partitions: u16,

    /// Faults injected around deliveries, to see whether receivers survive
    /// the real world: `fault=rate,...` with the faults duplicate, replay,
    /// reorder, delay, forged_signature, stale_timestamp, malformed_body,
    /// slow_send and rates from 0 to 1 (e.g. `duplicate=0.3,delay=0.1`).
    /// A case can set its own with the `Hookline-Chaos` header of `POST
    /// /document`. Each fault is sent besides the real delivery, never
    /// instead of it.
    #[arg(long, env = "CHAOS", default_value = "none")]
    pub chaos: ChaosProfile,

    /// Delays before each retry of a failed delivery; after the last one the
    /// case is dead-lettered.
    #[arg(long, env = "RETRY_SCHEDULE", default_value = "5s,5m,30m,2h,5h,10h,10h")]
    pub retry_schedule: RetrySchedule,

    /// Time limit of one delivery attempt.
    #[arg(long, env = "DELIVERY_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub delivery_timeout: Duration,

    /// How long a claimed job stays with its worker; a job whose worker died
    /// is taken over by another after this.
    #[arg(long, env = "JOB_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub job_lease: Duration,

    /// How long a finished case (delivered or dead) and its attempt log are
    /// kept: it can be looked at and redelivered until then, and is then
    /// forgotten. A case that can still be claimed or retried is never.
    #[arg(long, env = "CASE_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub case_retention: Duration,

    /// How long a subscription's old secret keeps signing beside the new one
    /// after `POST /webhooks/{id}/rotate-secret`: receivers switch within it
    /// without losing a message.
    #[arg(long, env = "SECRET_OVERLAP", default_value = "24h", value_parser = parse_duration)]
    pub secret_overlap: Duration,

    /// `all`: API and worker; `api`: API only; `worker`: delivery only (and /healthz).
    #[arg(long, env = "HELPDESK_ROLE", default_value = "all", value_enum)]
    pub role: Role,

    /// Deliveries one worker keeps in flight at most. One endpoint gets at
    /// most a quarter of them, so a few slow receivers never take them all.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 256)]
    pub worker_concurrency: usize,

    /// Attempts in flight to one endpoint (scheme, host and port of a
    /// callback URL) at most, over every worker. Within it, each endpoint's
    /// own limit adapts: it starts at `ENDPOINT_CONCURRENCY_START`, halves when an
    /// attempt fails and grows by one slot per limit's worth of quick
    /// answers (under a second) while every slot is taken: a healthy, fast
    /// receiver earns up to this many, a failing one falls to 1.
    #[arg(long, env = "ENDPOINT_CONCURRENCY", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub endpoint_concurrency: u32,

    /// The concurrency limit a new endpoint starts at, from where it adapts
    /// (see `ENDPOINT_CONCURRENCY`). Set it to `ENDPOINT_CONCURRENCY` to give
    /// every endpoint its whole limit at once (it still halves on failures).
    #[arg(long, env = "ENDPOINT_CONCURRENCY_START", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub endpoint_concurrency_start: u32,

    /// Deliveries per second to one endpoint at most, over every worker
    /// (e.g. `50`, `0.5`); an endpoint's own limit (`PUT /endpoints/{endpoint}`)
    /// wins. Unset: unlimited.
    #[arg(long, env = "ENDPOINT_RATE", value_parser = parse_rate)]
    pub endpoint_rate: Option<f64>,

    /// Failed attempts in a row that open an endpoint's circuit breaker: its
    /// jobs then wait, spending no attempts, until a probe gets through.
    #[arg(long, env = "CIRCUIT_FAILURES", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub circuit_failures: u32,

    /// How long a subscription's messages must have failed, with no delivery
    /// in between, before it is disabled (and its tenant told with an
    /// `endpoint.disabled` event); `DISABLE_AFTER_DEAD` dead letters in a row
    /// are needed too. 5 days, as Svix: longer than a long weekend's outage
    /// (a receiver fixed on Monday keeps its events), short enough that a
    /// receiver that is gone stops filling the dead letters within a week.
    /// A `410 Gone` disables at once.
    #[arg(long, env = "DISABLE_AFTER", default_value = "5d", value_parser = parse_duration)]
    pub disable_after: Duration,

    /// Messages of a subscription that must have become dead letters in a
    /// row (no delivery in between) before `DISABLE_AFTER` disables it. 10:
    /// with the default `RETRY_SCHEDULE` (8 attempts each) that is about 80
    /// failed attempts, near Hookdeck Outpost's 100 failures in a row, and a
    /// subscription that gets one event a week is not disabled for two
    /// unlucky ones.
    #[arg(long, env = "DISABLE_AFTER_DEAD", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub disable_after_dead: u32,

    /// How long an open breaker waits before its first probe; each failed
    /// probe doubles it, up to 10 minutes.
    #[arg(long, env = "CIRCUIT_COOLDOWN", default_value = "30s", value_parser = parse_duration)]
    pub circuit_cooldown: Duration,

    /// How long a stopping help desk (SIGTERM, SIGINT) waits for requests in
    /// progress and deliveries in flight before it exits anyway; a delivery
    /// cut off is retried when its lease expires. Keep it below the
    /// orchestrator's own limit (Docker waits 10 s, then kills).
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "8s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "HTTP_WORKERS")]
    pub http_workers: Option<usize>,

    /// `permissive`: callbacks may reach public, private and loopback
    /// addresses (the tutorial's help desk calls localhost). `strict`: public
    /// addresses only (CALLBACK_ALLOW opens exceptions), and every refused or
    /// unreachable internal address reads the same to a client, in the 400
    /// and in the attempt log. Use `strict` anywhere beyond a laptop.
    #[arg(
        long = "callback-policy",
        env = "CALLBACK_POLICY",
        default_value = "permissive",
        value_enum
    )]
    pub callback_preset: Preset,

    /// Addresses and host names callbacks may always reach, comma-separated:
    /// CIDRs (`10.0.0.0/8`, `::1/128`; a bare address is one host) or names
    /// (`hooks.example.com`, `*.example.com` for its subdomains). It wins
    /// over CALLBACK_DENY; when set under the permissive policy, everything
    /// else is refused. Link-local and cloud metadata addresses are refused
    /// regardless.
    #[arg(long, env = "CALLBACK_ALLOW", value_delimiter = ',')]
    pub callback_allow: Vec<Rule>,

    /// Addresses and host names callbacks may not reach, same syntax as
    /// CALLBACK_ALLOW; a network also matches the IPv6 forms of its
    /// addresses. Under the permissive policy, loopback and private networks
    /// are allowed unless denied here (a mock runs beside its client);
    /// facing the internet, prefer `CALLBACK_POLICY=strict`.
    #[arg(long, env = "CALLBACK_DENY", value_delimiter = ',')]
    pub callback_deny: Vec<Rule>,

    /// PEM file of certificate authorities trusted for `https://` callbacks
    /// besides the system's roots (a private CA).
    #[arg(long, env = "CALLBACK_CA_FILE")]
    pub callback_ca_file: Option<PathBuf>,

    /// PEM certificate (chain) presented to callbacks that ask for a client
    /// certificate (mutual TLS). Needs CALLBACK_CLIENT_KEY.
    #[arg(long, env = "CALLBACK_CLIENT_CERT", requires = "callback_client_key")]
    pub callback_client_cert: Option<PathBuf>,

    /// PEM private key of CALLBACK_CLIENT_CERT.
    #[arg(long, env = "CALLBACK_CLIENT_KEY", requires = "callback_client_cert")]
    pub callback_client_key: Option<PathBuf>,

    /// The longest pause of an endpoint (scheme, host and port) that a
    /// receiver's `Retry-After` (on a 429 or 503) buys, and the longest its
    /// job waits for it. The pause holds every tenant's webhooks to that
    /// receiver, so one path cannot hold the others for longer than this;
    /// `POST /endpoints/{endpoint}/resume` (the operator's key) lifts it.
    #[arg(long, env = "RETRY_AFTER_MAX", default_value = "5m", value_parser = parse_duration)]
    pub retry_after_max: Duration,

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
}

impl Settings {
    /// Where callbacks may go, from `CALLBACK_POLICY`, `CALLBACK_ALLOW` and `CALLBACK_DENY`.
    pub fn callback_policy(&self) -> CallbackPolicy {
        CallbackPolicy::new(self.callback_allow.clone(), self.callback_deny.clone()).with_preset(self.callback_preset)
    }

    /// The TLS of deliveries to `https://` callbacks, from `CALLBACK_CA_FILE`,
    /// `CALLBACK_CLIENT_CERT` and `CALLBACK_CLIENT_KEY` (files read now).
    pub fn callback_tls(&self) -> Result<Arc<tls::ClientConfig>, tls::TlsConfigError> {
        fn file<'a>(setting: &'static str, path: &'a Option<PathBuf>) -> Option<tls::PemFile<'a>> {
            path.as_deref().map(|path| tls::PemFile { setting, path })
        }
        let identity = tls::client_identity(
            file("CALLBACK_CLIENT_CERT", &self.callback_client_cert),
            file("CALLBACK_CLIENT_KEY", &self.callback_client_key),
            ("CALLBACK_CLIENT_CERT", "CALLBACK_CLIENT_KEY"),
        )?;
        tls::client_config(file("CALLBACK_CA_FILE", &self.callback_ca_file), identity)
    }

    /// Who signs each case's callback, from `WEBHOOK_SECRET` and
    /// `TENANT_SECRETS`, checked against the tenants of `HELPDESK_API_KEYS`.
    pub fn callback_signing(&self) -> Result<CallbackSigning, MissingSecret> {
        CallbackSigning::new(self.webhook_secret.clone(), self.tenant_secrets.clone(), &self.api_keys)
    }

    /// When a failing subscription is disabled, from `DISABLE_AFTER*`.
    pub fn disable_policy(&self) -> DisablePolicy {
        DisablePolicy {
            after: self.disable_after,
            dead_in_row: self.disable_after_dead,
        }
    }

    /// What every endpoint may take, from `ENDPOINT_*` and `CIRCUIT_*`.
    pub fn endpoint_limits(&self) -> EndpointLimits {
        EndpointLimits {
            concurrency: self.endpoint_concurrency,
            start: self.endpoint_concurrency_start,
            rate: self.endpoint_rate,
            circuit_failures: self.circuit_failures,
            circuit_cooldown: self.circuit_cooldown,
        }
    }
}

/// A rate limit: deliveries per second, positive and finite.
pub fn parse_rate(raw: &str) -> Result<f64, InvalidValue> {
    match raw.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= MAX_RATE => Ok(rate),
        _ => Err(InvalidValue(format!(
            "{raw:?} is not a rate: deliveries per second, above 0 and at most {MAX_RATE}"
        ))),
    }
}

/// The highest rate limit one can set; above it, leave the rate unlimited.
pub const MAX_RATE: f64 = 1_000_000.0;

/// What this process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    All,
    Api,
    Worker,
}

impl Role {
    pub fn serves_api(self) -> bool {
        matches!(self, Self::All | Self::Api)
    }

    pub fn runs_worker(self) -> bool {
        matches!(self, Self::All | Self::Worker)
    }
}

fn parse_ratio(raw: &str) -> Result<f64, InvalidValue> {
    match raw.trim().parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(InvalidValue(format!("{raw:?} is not a probability between 0 and 1"))),
    }
}

/// `REVIEW_DELAY_MS`: the agent's think time, drawn uniformly from `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayRange {
    pub min_ms: u64,
    pub max_ms: u64,
}

impl DelayRange {
    pub fn sample(&self, rng: &mut impl rand::Rng) -> Duration {
        Duration::from_millis(rng.random_range(self.min_ms..=self.max_ms))
    }
}

impl FromStr for DelayRange {
    type Err = InvalidValue;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidValue(format!("{raw:?} is not a delay in milliseconds like 2000-5000 or 0"));
        let (min, max) = match raw.trim().split_once('-') {
            Some((min, max)) => (min.trim(), max.trim()),
            None => (raw.trim(), raw.trim()),
        };
        let min_ms: u64 = min.parse().map_err(|_| bad())?;
        let max_ms: u64 = max.parse().map_err(|_| bad())?;
        if min_ms > max_ms {
            return Err(InvalidValue(format!("{raw:?}: the minimum is above the maximum")));
        }
        Ok(Self { min_ms, max_ms })
    }
}

impl fmt::Display for DelayRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.min_ms, self.max_ms)
    }
}

/// `RETRY_SCHEDULE`: the delay before retry 1, 2, ...; its length is the
/// number of retries after the first attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl RetrySchedule {
    /// The delay before the retry that follows failed attempt number
    /// `attempt` (1-based), or `None` when attempts are exhausted.
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
        self.0.get(index).copied()
    }
}

impl FromStr for RetrySchedule {
    type Err = InvalidValue;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw.trim().is_empty() || raw.trim() == "none" {
            return Ok(Self(Vec::new()));
        }
        raw.split(',').map(parse_duration).collect::<Result<_, _>>().map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_kit::service::Cli;

    #[test]
    fn delay_ranges_read_like_the_design_says() {
        assert_eq!(
            "2000-5000".parse(),
            Ok(DelayRange {
                min_ms: 2000,
                max_ms: 5000
            })
        );
        assert_eq!("0".parse(), Ok(DelayRange { min_ms: 0, max_ms: 0 }));
        assert_eq!("0-0".parse(), Ok(DelayRange { min_ms: 0, max_ms: 0 }));
        assert_eq!(
            " 150 ".parse(),
            Ok(DelayRange {
                min_ms: 150,
                max_ms: 150
            })
        );
        assert!("5000-2000".parse::<DelayRange>().is_err());
        assert!("soon".parse::<DelayRange>().is_err());
        assert!("-5".parse::<DelayRange>().is_err());
    }

    #[test]
    fn samples_stay_inside_the_range() {
        let range = DelayRange { min_ms: 20, max_ms: 30 };
        let mut rng = rand::rng();
        for _ in 0..1000 {
            let d = range.sample(&mut rng);
            assert!((20..=30).contains(&d.as_millis()), "{d:?}");
        }
    }

    #[test]
    fn the_retry_schedule_lists_the_delays_before_each_retry() {
        let schedule: RetrySchedule = "50ms,100ms,5m".parse().unwrap();
        assert_eq!(schedule.delay_after(1), Some(Duration::from_millis(50)));
        assert_eq!(schedule.delay_after(3), Some(Duration::from_secs(300)));
        assert_eq!(schedule.delay_after(4), None);
        assert_eq!(schedule.delay_after(0), None);
        assert_eq!("none".parse::<RetrySchedule>().unwrap().delay_after(1), None);
        assert!("5s,often".parse::<RetrySchedule>().is_err());
    }

    #[test]
    fn callback_rules_are_comma_separated_lists_checked_at_startup() {
        let cli = Cli::<Settings>::try_parse_as(
            "helpdesk",
            [
                "helpdesk",
                "--callback-deny",
                "127.0.0.0/8, ::1/128",
                "--callback-allow",
                "127.0.0.1,*.example.com",
            ],
        )
        .unwrap();
        let policy = cli.settings.callback_policy();
        assert_eq!(
            policy.to_string(),
            "allow [127.0.0.1/32,*.example.com], deny [127.0.0.0/8,::1/128]"
        );
        let error = Cli::<Settings>::try_parse_as("helpdesk", ["helpdesk", "--callback-deny", "10.0.0.1/8"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("did you mean 10.0.0.0/8"), "{error}");
    }

    #[test]
    fn the_callback_policy_is_permissive_unless_set_to_strict() {
        let parse = |args: &[&str]| Cli::<Settings>::try_parse_as("helpdesk", args.iter().copied());
        let default = parse(&["helpdesk"]).unwrap().settings;
        assert_eq!(default.callback_preset, Preset::Permissive);
        let public = parse(&["helpdesk", "--callback-policy", "public"]).unwrap().settings;
        assert_eq!(
            public.callback_preset,
            Preset::Strict,
            "public names the strict preset too"
        );
        let strict = parse(&[
            "helpdesk",
            "--callback-policy",
            "strict",
            "--callback-allow",
            "10.0.0.5",
        ])
        .unwrap()
        .settings
        .callback_policy();
        assert!(strict.is_strict());
        assert_eq!(
            strict.to_string(),
            "strict (public addresses only), allow [10.0.0.5/32], deny []"
        );
        let error = parse(&["helpdesk", "--callback-policy", "paranoid"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("strict"), "{error}");
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let error = Cli::<Settings>::try_parse_as("helpdesk", ["helpdesk", "--callback-client-cert", "/c.pem"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--callback-client-key"), "{error}");
        let mut settings = Cli::<Settings>::try_parse_as("helpdesk", ["helpdesk"])
            .unwrap()
            .settings;
        settings.callback_client_key = Some("/k.pem".into());
        let error = settings.callback_tls().unwrap_err().to_string();
        assert_eq!(
            error,
            "CALLBACK_CLIENT_CERT and CALLBACK_CLIENT_KEY must be given together (mutual TLS needs both)"
        );
    }

    #[test]
    fn ratios_outside_zero_to_one_are_refused() {
        assert_eq!(parse_ratio("0.7"), Ok(0.7));
        assert!(parse_ratio("1.5").is_err());
        assert!(parse_ratio("-0.1").is_err());
        assert!(parse_ratio("NaN").is_err());
    }
}
