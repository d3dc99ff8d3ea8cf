//! The nine scenarios, a file each, run in the order of `main.rs`'s list;
//! what they share to measure with ([`measure`]), the delivery batch that
//! several of them send ([`delivery`]), and the report they fill
//! ([`report`]: table, JSON, chart). A scenario that fails is a FAILED row;
//! the others still run.

mod cluster;
mod create_review;
mod delivery;
mod drain;
mod end_to_end;
mod https_delivery;
mod ingestion;
mod measure;
mod memory;
mod noisy_neighbours;
mod per_job;
mod precision;
mod report;

use std::collections::BTreeMap;
use std::time::Instant;

use hookline_testkit::{Hostile, Receiver, Serving};

use crate::ceiling::{self, Pgbench};
use crate::rss::RssWatch;
use crate::store::{Pg, PgSettings, Rd};
use crate::{Args, BoxError, Sizes, unix_us};
use report::Report;

/// Everything the scenarios share.
struct Ctx {
    args: Args,
    sizes: Sizes,
    run: String,
    pg: Pg,
    rd: Rd,
    rss: RssWatch,
    /// The bench's own receiver (answers 204 at once), in a thread of its
    /// own: where the delivery scenarios' webhooks land.
    receiver: Receiver,
    /// Scenario 7's misbehaving receivers, kept to the end of the run: the
    /// attempts they hold keep the fast help desk's slots busy afterwards
    /// too, as a real neighbourhood would (no later scenario uses that one).
    hostile: Vec<Hostile>,
    /// Scenario 3's figure, which scenario 7 is measured against.
    clean_delivery_per_second: Option<f64>,
    /// Scenarios 1's and 2's figures, which their ceilings are measured against.
    create_per_second: Option<f64>,
    ingest_per_second: Option<f64>,
    /// The consumer's PostgreSQL: what a commit costs there.
    pg_settings: Option<PgSettings>,
    /// pg_stat_statements is there to read.
    statements: bool,
    pgbench: Option<Pgbench>,
    /// pgbench invocations so far (each gets its own ids).
    pgbench_runs: u32,
    /// The consumer's WRITE_BATCH, from its environment.
    write_batch: String,
}

pub(crate) async fn run(args: Args) -> Result<(), BoxError> {
    let sizes = args.sizes();
    let pids = named_pids(&args.pids);
    let mut ctx = Ctx {
        pg: Pg::connect(&args.database_url).await?,
        rd: Rd::connect(&args.redis_url, &args.redis_prefix).await?,
        rss: RssWatch::new(pids),
        run: format!("{:08x}", unix_us() % 0xffff_ffff),
        sizes,
        receiver: Receiver::start_in_thread(Serving::default(), 204)?,
        hostile: Vec::new(),
        pgbench: args.pgbench.clone().map(|bin| Pgbench {
            bin,
            url: args.database_url.clone(),
            dir: ceiling::script_dir(&format!("{}", std::process::id())),
        }),
        write_batch: consumer_write_batch(&named_pids(&args.pids)),
        args,
        clean_delivery_per_second: None,
        create_per_second: None,
        ingest_per_second: None,
        pg_settings: None,
        statements: false,
        pgbench_runs: 0,
    };
    ctx.pg_settings = ctx.pg.settings().await.ok();
    ctx.statements = ctx.pg.statements_reset().await;
    if let Some(pg) = &ctx.pg_settings {
        eprintln!(
            "PostgreSQL {}: fsync={}, synchronous_commit={}, wal_sync_method={}; pg_stat_statements {}; \
             consumer WRITE_BATCH={}",
            pg.server_version,
            pg.fsync,
            pg.synchronous_commit,
            pg.wal_sync_method,
            if ctx.statements { "on" } else { "not loaded" },
            ctx.write_batch
        );
    }
    let mut report = Report::default();
    let started = Instant::now();
    let idle = ctx.rss.now();
    let mut loaded: BTreeMap<String, u64> = BTreeMap::new();
    let mut note_peaks = |ctx: &Ctx| {
        for (name, bytes) in ctx.rss.take_peaks() {
            let peak = loaded.entry(name).or_default();
            *peak = (*peak).max(bytes);
        }
    };

    if ctx.args.runs(1) {
        if let Err(e) = create_review::create_review(&mut ctx, &mut report).await {
            report.failed("1 create_review", &e);
        }
        note_peaks(&ctx);
        if let Err(e) = create_review::ceilings(&mut ctx, &mut report).await {
            report.failed("1 create_review ceiling", &e);
        }
    }
    if ctx.args.runs(2) {
        if let Err(e) = ingestion::ingestion(&mut ctx, &mut report).await {
            report.failed("2 ingestion", &e);
        }
        note_peaks(&ctx);
        if let Err(e) = ingestion::ceiling(&mut ctx, &mut report).await {
            report.failed("2 ingestion ceiling", &e);
        }
    }
    if ctx.args.runs(3) {
        if let Err(e) = delivery::delivery(&mut ctx, &mut report).await {
            report.failed("3 delivery", &e);
        }
        note_peaks(&ctx);
        if let Err(e) = drain::drain(&mut ctx, &mut report).await {
            report.failed("3 drain a backlog", &e);
        }
    }
    if ctx.args.runs(8) {
        if let Err(e) = https_delivery::https_delivery(&mut ctx, &mut report).await {
            report.failed("8 https delivery", &e);
        }
        note_peaks(&ctx);
    }
    // Before 7, whose hostile jobs would keep the bench's receiver company.
    if ctx.args.runs(9) {
        if let Err(e) = cluster::cluster(&mut ctx, &mut report).await {
            report.failed("9 cluster", &e);
        }
        note_peaks(&ctx);
    }
    // After 3, which it is compared with; its hostile jobs keep the fast help
    // desk's slots busy afterwards, and no later scenario uses that one.
    if ctx.args.runs(7) {
        if let Err(e) = noisy_neighbours::noisy_neighbours(&mut ctx, &mut report).await {
            report.failed("7 noisy_neighbours", &e);
        }
        note_peaks(&ctx);
    }
    if ctx.args.runs(5) {
        if let Err(e) = end_to_end::end_to_end(&mut ctx, &mut report).await {
            report.failed("5 end_to_end", &e);
        }
        note_peaks(&ctx);
    }
    if ctx.args.runs(4)
        && let Err(e) = precision::precision(&mut ctx, &mut report).await
    {
        report.failed("4 precision", &e);
    }
    if ctx.args.runs(6) && !ctx.rss.is_empty() {
        memory::memory(&mut report, &idle, &loaded);
    }
    report::finish(&ctx, report, started.elapsed())
}

/// `name=pid` specs (`--pids`), the malformed ones left out.
fn named_pids(specs: &[String]) -> Vec<(String, u32)> {
    specs
        .iter()
        .filter_map(|spec| {
            let (name, pid) = spec.split_once('=')?;
            Some((name.trim().to_owned(), pid.trim().parse().ok()?))
        })
        .collect()
}

/// The pid named `name` in `--pids`.
fn named_pid(specs: &[String], name: &str) -> Option<u32> {
    named_pids(specs)
        .into_iter()
        .find_map(|(n, pid)| (n == name).then_some(pid))
}

/// The consumer's `WRITE_BATCH` (its environment), or `default`.
fn consumer_write_batch(pids: &[(String, u32)]) -> String {
    let Some((_, pid)) = pids.iter().find(|(name, _)| name == "consumer") else {
        return "unknown".to_owned();
    };
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return "unknown".to_owned();
    };
    environ
        .split(|b| *b == 0)
        .find_map(|var| {
            var.strip_prefix(b"WRITE_BATCH=")
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
        .unwrap_or_else(|| "default".to_owned())
}
