//! `bench`: load and precision benchmarks of a running hookline (consumer,
//! help desk, their PostgreSQL and Redis). `scripts/bench.sh` starts
//! everything in release mode and runs it; see docs/BENCHMARKS.md.
//!
//! Scenarios, in the order they run (each one alone on the machine):
//! 1. create-review: `POST /documents` at concurrency 50; then pgbench doing
//!    only its database writes on the same server, the ceiling it is a
//!    share of (one review per transaction, then 16).
//! 2. ingestion: signed webhooks straight at the consumer, 10% duplicates,
//!    for reviews seeded in PostgreSQL; then checks exactly those rows
//!    changed; then pgbench running decide.sql alone, its ceiling.
//! 3. delivery: a zero-delay help desk firing webhooks at our own receiver.
//! 7. noisy neighbours: 3 again, beside black holes and slow lorises.
//! 5. end to end: reviews at the default 2–5 s delay until all are decided.
//! 4. schedule precision: lateness of probe jobs with 1k/100k/1M pending.
//! 8. HTTPS delivery: 3 over TLS and not, connections kept or one per
//!    delivery: what the handshake costs (run before 7, whose hostile jobs
//!    would share the help desk).
//! 9. cluster: 3 again through help desks on the single Redis and on a
//!    3-master Redis Cluster (partitioned, then also waiting for a replica):
//!    throughput, latency, CPU per job of each process, keys per master
//!    (before 7, like 8).
//! 6. memory: RSS of the services idle and at their peak under load.
//!
//! Scenario 3's figures (CPU per job per process, Redis calls per job) are
//! compared with the committed baseline ([`figures`]); `bench
//! write-baseline` makes a run the baseline, `bench compare` sets runs of
//! two builds side by side (`scripts/bench.sh --against REF`).

mod ceiling;
mod chart;
mod cpu;
mod figures;
mod load;
mod redis_stats;
mod rss;
mod scenarios;
mod store;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use hookline_testkit::TestCa;
use hookline_testkit::tls::SERVER_NAMES;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Load and precision benchmarks of a running hookline.
#[derive(Debug, Clone, Parser)]
#[command(name = "bench", version)]
pub(crate) struct Args {
    /// The consumer.
    #[arg(long, env = "BENCH_CONSUMER_URL", default_value = "http://127.0.0.1:3333")]
    pub(crate) consumer_url: String,
    /// The help desk the consumer talks to (default 2–5 s delay).
    #[arg(long, env = "BENCH_HELPDESK_URL", default_value = "http://127.0.0.1:8080")]
    pub(crate) helpdesk_url: String,
    /// A help desk with REVIEW_DELAY_MS=0 for the delivery scenario (skipped without one).
    #[arg(long, env = "BENCH_FAST_HELPDESK_URL")]
    pub(crate) fast_helpdesk_url: Option<String>,
    /// The consumer's PostgreSQL (seeding and checking rows).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: String,
    /// The help desk's Redis (filler jobs, due times, memory).
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub(crate) redis_url: String,
    /// REDIS_PREFIX of the help desk at --helpdesk-url.
    #[arg(long, env = "BENCH_REDIS_PREFIX", default_value = "helpdesk")]
    pub(crate) redis_prefix: String,
    /// The WEBHOOK_SECRET the consumer verifies with.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub(crate) webhook_secret: String,
    /// The PostgreSQL postmaster's pid: its CPU time and its backends' say
    /// what PostgreSQL spends per operation (left out without it).
    #[arg(long, env = "BENCH_PG_PID")]
    pub(crate) pg_pid: Option<u32>,
    /// pgbench, for the same-run ceilings of scenarios 1 and 2 (pgbench
    /// doing only their database writes); left out without it.
    #[arg(long, env = "BENCH_PGBENCH")]
    pub(crate) pgbench: Option<PathBuf>,
    /// Pids whose RSS (and CPU time) to watch, `name=pid`, comma-separated.
    #[arg(long, env = "BENCH_PIDS", value_delimiter = ',')]
    pub(crate) pids: Vec<String>,
    /// Where results.json and latency.svg go.
    #[arg(long, env = "BENCH_OUT", default_value = "docs/bench")]
    pub(crate) out: PathBuf,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 50)]
    pub(crate) concurrency: usize,
    /// Threads generating load (each its own runtime).
    #[arg(long, default_value_t = 1)]
    pub(crate) load_threads: usize,
    /// A short smoke run with small counts (well under a minute).
    #[arg(long)]
    pub(crate) quick: bool,
    /// Only these scenarios (1-9), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) only: Vec<u8>,
    /// The command line to record in results.json.
    #[arg(long, env = "BENCH_COMMAND", default_value = "bench")]
    pub(crate) command: String,
    /// Certificates of the HTTPS receivers (`bench make-tls DIR` wrote them;
    /// the fast help desk trusts its `ca.pem` by CALLBACK_CA_FILE). Without
    /// it, scenario 8 is skipped.
    #[arg(long, env = "BENCH_TLS_DIR")]
    pub(crate) tls_dir: Option<PathBuf>,
    /// The help desks of scenario 9, `name=url`, comma-separated, measured
    /// in this order: zero delay, each on its own Redis settings (bench.sh
    /// starts them). Without them, scenario 9 is skipped.
    #[arg(long, env = "BENCH_CLUSTER_HELPDESKS", value_delimiter = ',')]
    pub(crate) cluster_helpdesks: Vec<String>,
    /// Their pids, `name=pid`, comma-separated: their settings and Redis
    /// nodes are read from their environment, their CPU time from /proc.
    #[arg(long, env = "BENCH_CLUSTER_PIDS", value_delimiter = ',')]
    pub(crate) cluster_pids: Vec<String>,
    /// The help desk's `store` folder, whose Lua scripts name the SHA1s its
    /// `EVALSHA` calls carry (the sources the help desk was built from).
    #[arg(long, env = "BENCH_HELPDESK_STORE", default_value = "crates/helpdesk/src/store")]
    pub(crate) helpdesk_store: PathBuf,
    /// The committed baseline every run's delivery figures are compared with.
    #[arg(long, env = "BENCH_BASELINE", default_value = "docs/bench/baseline.json")]
    pub(crate) baseline: PathBuf,
    /// Fail when a figure grows past its margin over the baseline (CI).
    #[arg(long)]
    pub(crate) check_baseline: bool,
    /// How much Redis commands or script calls per job may grow (×).
    #[arg(long, env = "BENCH_CALLS_MARGIN", default_value_t = 1.10)]
    pub(crate) calls_margin: f64,
    /// How much CPU per job of a process may grow (×): quick runs are short
    /// and CI machines vary, so it is generous.
    #[arg(long, env = "BENCH_CPU_MARGIN", default_value_t = 1.5)]
    pub(crate) cpu_margin: f64,
}

/// `bench make-tls DIR`, apart from [`Args`], whose required settings it
/// does without.
#[derive(Debug, Parser)]
#[command(name = "bench make-tls", version)]
struct MakeTls {
    /// Where to write a CA (`ca.pem`) and a receiver certificate for
    /// localhost and 127.0.0.1 (`server.pem`, `server.key`).
    dir: PathBuf,
}

impl Args {
    pub(crate) fn runs(&self, scenario: u8) -> bool {
        self.only.is_empty() || self.only.contains(&scenario)
    }

    pub(crate) fn sizes(&self) -> Sizes {
        if self.quick {
            Sizes {
                create: 2_000,
                ingest: 2_000,
                delivery: 5_000,
                noisy: (100, 1_000),
                e2e: 1_000,
                probes: 200,
                pending: vec![1_000, 10_000],
                tls: 500,
                cluster: 2_000,
            }
        } else {
            Sizes {
                create: 20_000,
                ingest: 20_000,
                delivery: 20_000,
                noisy: (1_000, 10_000),
                e2e: 10_000,
                probes: 1_000,
                pending: vec![1_000, 100_000, 1_000_000],
                tls: 5_000,
                cluster: 20_000,
            }
        }
    }
}

/// How much each scenario does.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Sizes {
    pub(crate) create: usize,
    pub(crate) ingest: usize,
    pub(crate) delivery: usize,
    /// Hostile jobs, then healthy ones (scenario 7).
    pub(crate) noisy: (usize, usize),
    pub(crate) e2e: usize,
    pub(crate) probes: usize,
    pub(crate) pending: Vec<u64>,
    /// Deliveries per receiver of scenario 8.
    pub(crate) tls: usize,
    /// Jobs per help desk of scenario 9.
    pub(crate) cluster: usize,
}

pub(crate) fn unix_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub(crate) fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:28} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec}")
    {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// `error` and every error under it, `: `-separated.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some("make-tls") {
        let MakeTls { dir } = MakeTls::parse_from(std::env::args().skip(1));
        let made = TestCa::in_dir("hookline bench CA", &dir).and_then(|ca| ca.server_certificate(SERVER_NAMES));
        return match made {
            Ok(_) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench make-tls: {}", causes(&e));
                std::process::ExitCode::FAILURE
            }
        };
    }
    let tool = match std::env::args().nth(1).as_deref() {
        Some("write-baseline") => Some(figures::WriteBaseline::parse_from(std::env::args().skip(1)).run()),
        Some("compare") => Some(figures::Compare::parse_from(std::env::args().skip(1)).run()),
        _ => None,
    };
    if let Some(done) = tool {
        return exit(done);
    }
    let args = Args::parse();
    exit(actix_web::rt::System::new().block_on(scenarios::run(args)))
}

fn exit(done: Result<(), BoxError>) -> std::process::ExitCode {
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {}", causes(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}
