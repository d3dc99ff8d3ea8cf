//! What the scenarios measure with: load driven from threads of its own
//! ([`drive`]), the CPU time every process spent per operation
//! ([`cpu_use`], [`cpu_row`]), the database's work over a window
//! ([`db_window_start`], [`db_window_end`]: WAL flushes and the costliest
//! statements), and pgbench's same-run ceilings ([`pgbench_ceiling`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::report::{Report, Target};
use super::{Ctx, named_pids};
use crate::ceiling::{self, Pgbench};
use crate::cpu;
use crate::load::{self, LoadResult, MakeCall};
use crate::store::{Pg, WalCounters};
use crate::{BoxError, progress, unix_us};

/// Runs `total` calls of `make` at `concurrency` from `threads` threads of
/// their own, with a progress bar saying `what`.
pub(super) async fn drive(
    total: usize,
    concurrency: usize,
    threads: usize,
    what: &str,
    make: MakeCall,
) -> Result<LoadResult, BoxError> {
    let bar = progress(total as u64, what);
    actix_web::rt::task::spawn_blocking(move || load::drive(total, concurrency, threads, &bar, make)).await?
}

/// CPU time (µs) each process has used so far: PostgreSQL (the postmaster
/// and its backends, with `--pg-pid`), Redis (its `INFO cpu`), the
/// services of `--pids`, the bench itself; and the machine's busy ticks.
pub(super) struct CpuUse {
    pub(super) us: BTreeMap<String, f64>,
    /// The services' threads (`--pids`), ns each: exact where `us` counts
    /// 10 ms ticks (the bench's own load threads come and go, so it keeps ticks).
    threads: BTreeMap<String, BTreeMap<u32, u64>>,
    pub(super) machine: (u64, u64),
}

pub(super) async fn cpu_use(ctx: &mut Ctx) -> CpuUse {
    let mut us = BTreeMap::new();
    if let Some(ticks) = ctx.args.pg_pid.and_then(cpu::tree_ticks) {
        us.insert("postgres".to_owned(), ticks as f64 * cpu::TICK_US);
    }
    if let Ok(redis) = ctx.rd.cpu_us().await {
        us.insert("redis".to_owned(), redis);
    }
    let mut threads = BTreeMap::new();
    for (name, pid) in named_pids(&ctx.args.pids) {
        if let Some(ns) = cpu::thread_ns(pid) {
            threads.insert(name.clone(), ns);
        }
        if let Some(ticks) = cpu::ticks(pid) {
            us.insert(name, ticks as f64 * cpu::TICK_US);
        }
    }
    if let Some(ticks) = cpu::ticks(std::process::id()) {
        us.insert("bench".to_owned(), ticks as f64 * cpu::TICK_US);
    }
    CpuUse {
        us,
        threads,
        machine: cpu::machine().unwrap_or((0, 0)),
    }
}

/// One row: the CPU each process spent per operation between `before` and
/// `after` (µs; the processes that spent under 0.5 µs left out), their sum
/// as the value; the cores busy while the load ran (`busy`), in the figure.
/// Returns the figure of each process.
pub(super) fn cpu_row(
    report: &mut Report,
    scenario: &str,
    what: &str,
    ops: u64,
    before: &CpuUse,
    after: &CpuUse,
    busy: f64,
) -> BTreeMap<String, f64> {
    let per_op: BTreeMap<String, f64> = after
        .us
        .iter()
        .filter_map(|(name, now)| {
            let used = match (before.threads.get(name), after.threads.get(name)) {
                (Some(b), Some(a)) => cpu::threads_used_us(b, a),
                _ => now - before.us.get(name)?,
            };
            Some((name.clone(), used / ops.max(1) as f64))
        })
        .filter(|(_, us)| *us >= 0.5)
        .collect();
    let mut parts: Vec<(&str, f64)> = per_op.iter().map(|(name, us)| (name.as_str(), *us)).collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    let split = parts
        .iter()
        .map(|(name, us)| format!("{name} {us:.0}"))
        .collect::<Vec<_>>()
        .join(", ");
    report.row(
        scenario,
        &format!("CPU per {what} ({split}; {busy:.2} cores busy)"),
        per_op.values().sum(),
        "µs",
        Target::None,
    );
    let key = format!("cpu_us_per_op {scenario}");
    report.details.insert(
        key,
        json!({"per": what, "ops": ops, "per_process": per_op, "cores_busy_under_load": busy}),
    );
    per_op
}

/// Waits (at most 3 s) until `pid`'s CPU time stops moving: a help desk
/// records the outcomes of its last deliveries after their receipt.
pub(super) async fn quiet(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = cpu::ticks(pid);
    while Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(150)).await;
        let now = cpu::ticks(pid);
        if now == last {
            return;
        }
        last = now;
    }
}

/// Opens a window on the database's work: pg_stat_statements afresh, the WAL
/// counters as they are. None when they cannot be read.
pub(super) async fn db_window_start(ctx: &mut Ctx) -> Option<WalCounters> {
    if ctx.statements {
        ctx.statements = ctx.pg.statements_reset().await;
    }
    ctx.pg.wal().await.ok()
}

/// Closes it: commits and WAL flushes per operation as a row, and the
/// statements that took the most time, into the details (and on stderr).
pub(super) async fn db_window_end(
    ctx: &mut Ctx,
    report: &mut Report,
    scenario: &str,
    who: &str,
    what: &str,
    ops: u64,
    before: Option<WalCounters>,
) -> Value {
    // A backend reports its counters when it exits (pgbench's do), or when
    // idle, at most once a second and, after a burst, up to 10 s later
    // (PGSTAT_IDLE_INTERVAL): the consumer's pooled connections stay open,
    // so its figures wait for that; a quick run leaves them out.
    let lingers = who == "consumer";
    let wait = if lingers && !ctx.args.quick { 10_500 } else { 1_100 };
    actix_web::rt::time::sleep(Duration::from_millis(wait)).await;
    let mut detail = serde_json::Map::new();
    if let (Some(before), Ok(after), false) = (before, ctx.pg.wal().await, lingers && ctx.args.quick) {
        let per = after.per_op(&before, ops);
        let f = |key: &str| per.get(key).and_then(Value::as_f64).unwrap_or(0.0);
        report.row(
            scenario,
            &format!(
                "{who}: WAL flushes per {what} ({:.2} writing transactions, {:.1} WAL records, {:.0} WAL bytes)",
                f("write_transactions"),
                f("wal_records"),
                f("wal_bytes")
            ),
            f("wal_flushes"),
            "",
            Target::None,
        );
        detail.insert("per_op".into(), per);
    }
    if ctx.statements
        && let Ok(top) = ctx.pg.statements_top(10).await
    {
        eprintln!("{scenario}, {who}: pg_stat_statements (calls, total ms, mean ms, query)");
        for st in &top {
            eprintln!(
                "  {:>8} {:>9.0} {:>7.3}  {}",
                st.calls, st.total_exec_time, st.mean_exec_time, st.query
            );
        }
        detail.insert("statements".into(), json!(top));
    }
    let detail = Value::Object(detail);
    report
        .details
        .insert(format!("database {scenario} {who}"), detail.clone());
    detail
}

/// One pgbench ceiling: `script` for `ops` operations (`per_txn` in each
/// transaction), seeded by `seed` first; a row with its rate, the CPU
/// PostgreSQL and pgbench spent per operation, and its database window.
#[allow(clippy::too_many_arguments)]
pub(super) async fn pgbench_ceiling(
    ctx: &mut Ctx,
    report: &mut Report,
    scenario: &str,
    name: &str,
    what: &str,
    script: String,
    per_txn: usize,
    seed: bool,
) -> Result<Option<f64>, BoxError> {
    let Some(pgbench) = &ctx.pgbench else {
        eprintln!("{scenario}: no ceiling (no --pgbench)");
        return Ok(None);
    };
    let (bin, url, dir) = (pgbench.bin.clone(), pgbench.url.clone(), pgbench.dir.clone());
    let clients = ctx.args.concurrency.max(1);
    let ops = match scenario {
        "2 ingestion" => ctx.sizes.ingest,
        _ => ctx.sizes.create,
    };
    let per_client = (ops / clients / per_txn).max(1);
    ctx.pgbench_runs += 1;
    let tag = u32::try_from(unix_us() / 1_000_000 % 0x0fff_ffff)? * 16 + ctx.pgbench_runs % 16;
    if seed {
        ctx.pg.execute(&ceiling::seed_sql(tag, clients, per_client)).await?;
    }
    let db_before = db_window_start(ctx).await;
    let pg_before = ctx.args.pg_pid.and_then(cpu::tree_ticks);
    let bar = progress(1, &format!("{scenario}: pgbench {name}"));
    let (name_owned, script_owned) = (name.to_owned(), script.clone());
    let outcome = actix_web::rt::task::spawn_blocking(move || {
        Pgbench { bin, url, dir }.run(&name_owned, &script_owned, clients, per_client, tag)
    })
    .await??;
    bar.finish();
    let pg_after = ctx.args.pg_pid.and_then(cpu::tree_ticks);
    let done = outcome.transactions * per_txn as u64;
    let rate = outcome.tps * per_txn as f64;
    let per_op = |us: f64| us / done.max(1) as f64;
    let pg_us = pg_before
        .zip(pg_after)
        .map(|(b, a)| per_op(a.saturating_sub(b) as f64 * cpu::TICK_US));
    let cpu_text = match pg_us {
        Some(pg) => format!(
            "postgres {pg:.0} µs + pgbench {:.0} µs CPU per {what}",
            per_op(outcome.client_cpu_us)
        ),
        None => format!("pgbench {:.0} µs CPU per {what}", per_op(outcome.client_cpu_us)),
    };
    report.row(
        scenario,
        &format!(
            "pgbench ceiling, {name}: -M prepared -c {clients} -j {} ({cpu_text})",
            clients.min(2)
        ),
        rate,
        &format!("{what}s/s"),
        Target::None,
    );
    let database = db_window_end(ctx, report, scenario, &format!("pgbench {name}"), what, done, db_before).await;
    report.details.insert(
        format!("ceiling {scenario} {name}"),
        json!({
            "per_second": rate,
            "per_transaction": per_txn,
            "pgbench": outcome.json(),
            "postgres_cpu_us_per_op": pg_us,
            "pgbench_cpu_us_per_op": per_op(outcome.client_cpu_us),
            "database": database,
            "script": script,
        }),
    );
    Ok(Some(rate))
}

/// Our throughput as a share of a ceiling, as a row.
pub(super) fn share_row(
    report: &mut Report,
    scenario: &str,
    ours: Option<f64>,
    ceiling: Option<f64>,
    name: &str,
    target: Target,
) {
    if let (Some(ours), Some(ceiling)) = (ours, ceiling)
        && ceiling > 0.0
    {
        report.row(
            scenario,
            &format!("share of the same-run ceiling, {name} ({ours:.0} / {ceiling:.0})"),
            ours / ceiling,
            "",
            target,
        );
    }
}

/// Waits (bounded) until every accepted review of a batch is decided; returns (accepted, decided).
pub(super) async fn settle(
    pg: &mut Pg,
    url_prefix: &str,
    deadline: Instant,
    what: &str,
) -> Result<(i64, i64), BoxError> {
    let (accepted, mut decided) = pg.batch_counts(url_prefix).await?;
    let bar = progress(u64::try_from(accepted).unwrap_or(0), what);
    while decided < accepted && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        decided = pg.batch_counts(url_prefix).await?.1;
        bar.set_position(u64::try_from(decided).unwrap_or(0));
    }
    bar.finish();
    Ok((accepted, decided))
}
