//! The report the scenarios fill: rows of the results table (a figure, its
//! unit, a target and whether it was met), details for results.json, and
//! latency distributions for latency.svg; [`finish`] writes and prints them.
//! A missed target is a finding; a scenario that could not run is a FAILED
//! row, and makes the whole run fail.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::Ctx;
use crate::BoxError;
use crate::figures::{self, Figures, Margins};
use crate::load::LoadResult;

/// Scenarios (or parts of one) could not run: the bench is broken.
#[derive(Debug, thiserror::Error)]
#[error("{0} scenario(s) or part(s) of one FAILED (the table says which)")]
pub(super) struct ScenariosFailed(usize);

/// One line of the results table.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    scenario: String,
    figure: String,
    value: f64,
    unit: String,
    target: Option<String>,
    met: Option<bool>,
}

#[derive(Default)]
pub(super) struct Report {
    rows: Vec<Row>,
    /// Scenarios (or parts of one) that could not finish.
    failures: usize,
    pub(super) details: serde_json::Map<String, Value>,
    pub(super) series: Vec<(String, Histogram<u64>)>,
    /// The delivery scenarios' figures, held against the baseline.
    pub(super) figures: BTreeMap<String, Figures>,
}

/// A target on a figure: at least or at most a bound.
#[derive(Clone, Copy)]
pub(super) enum Target {
    None,
    AtLeast(f64),
    AtMost(f64),
}

impl Report {
    pub(super) fn row(&mut self, scenario: &str, figure: &str, value: f64, unit: &str, target: Target) {
        let (target, met) = match target {
            Target::None => (None, None),
            Target::AtLeast(bound) => (Some(format!(">= {} {unit}", num(bound))), Some(value >= bound)),
            Target::AtMost(bound) => (Some(format!("<= {} {unit}", num(bound))), Some(value <= bound)),
        };
        self.rows.push(Row {
            scenario: scenario.to_owned(),
            figure: figure.to_owned(),
            value,
            unit: unit.to_owned(),
            target,
            met,
        });
    }

    /// p50, p99 and max of a latency histogram (µs) as rows in ms.
    pub(super) fn latency_rows(&mut self, scenario: &str, what: &str, hist: &Histogram<u64>, p99_target: Target) {
        self.row(
            scenario,
            &format!("{what} p50"),
            ms(hist.value_at_quantile(0.5)),
            "ms",
            Target::None,
        );
        self.row(
            scenario,
            &format!("{what} p99"),
            ms(hist.value_at_quantile(0.99)),
            "ms",
            p99_target,
        );
        self.row(scenario, &format!("{what} max"), ms(hist.max()), "ms", Target::None);
    }

    /// A scenario that could not finish: say so, keep the others.
    pub(super) fn failed(&mut self, scenario: &str, error: &BoxError) {
        eprintln!("{scenario}: FAILED: {error}");
        self.failures += 1;
        self.row(scenario, &format!("FAILED: {error}"), 1.0, "", Target::AtMost(0.0));
    }
}

pub(super) fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn num(v: f64) -> String {
    if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

pub(super) fn percentiles(hist: &Histogram<u64>) -> Value {
    json!({
        "count": hist.len(),
        "p50_ms": ms(hist.value_at_quantile(0.5)),
        "p90_ms": ms(hist.value_at_quantile(0.9)),
        "p99_ms": ms(hist.value_at_quantile(0.99)),
        "p999_ms": ms(hist.value_at_quantile(0.999)),
        "max_ms": ms(hist.max()),
    })
}

pub(super) fn load_json(result: &LoadResult) -> Value {
    json!({
        "requests": result.ok + result.errors,
        "ok": result.ok,
        "errors": result.errors,
        "first_error": result.first_error,
        "outcomes": result.tags,
        "seconds": result.elapsed.as_secs_f64(),
        "per_second": result.per_second(),
        "latency": percentiles(&result.latency_us),
    })
}

pub(crate) fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo.lines().find_map(|l| {
        l.strip_prefix("model name")
            .and_then(|r| r.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
    });
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .map(|m| m.trim().to_owned());
    json!({
        "nproc": std::thread::available_parallelism().map_or(0, usize::from),
        "cpu": cpu,
        "mem_total": mem,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_owned()),
    })
}

pub(super) fn finish(ctx: &Ctx, report: Report, took: Duration) -> Result<(), BoxError> {
    std::fs::create_dir_all(&ctx.args.out)?;
    let svg = ctx.args.out.join("latency.svg");
    let series: Vec<(String, &Histogram<u64>)> = report.series.iter().map(|(n, h)| (n.clone(), h)).collect();
    crate::chart::draw(&svg, &series)?;
    let mode = if ctx.args.quick { "quick" } else { "standard" };
    let results = json!({
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "command": ctx.args.command,
        "mode": mode,
        "seconds": took.as_secs_f64(),
        "machine": machine(),
        "sizes": ctx.sizes,
        "concurrency": ctx.args.concurrency,
        "postgres": ctx.pg_settings,
        "pg_stat_statements": ctx.statements,
        "consumer_write_batch": ctx.write_batch,
        "failures": report.failures,
        "figures": report.figures,
        "rows": report.rows,
        "details": report.details,
        "distributions": report.series.iter().map(|(n, h)| (n.clone(), percentiles(h))).collect::<serde_json::Map<_, _>>(),
    });
    let json_path = ctx.args.out.join("results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)? + "\n")?;

    let mut table = vec![[
        "scenario".to_owned(),
        "figure".to_owned(),
        "value".to_owned(),
        "target".to_owned(),
        "".to_owned(),
    ]];
    for row in &report.rows {
        table.push([
            row.scenario.clone(),
            row.figure.clone(),
            format!("{} {}", num(row.value), row.unit).trim().to_owned(),
            row.target.clone().unwrap_or_default(),
            match row.met {
                Some(true) => "met".to_owned(),
                Some(false) => "MISSED".to_owned(),
                None => String::new(),
            },
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| table.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    println!();
    for (i, r) in table.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<width$}", width = *w))
            .collect();
        println!("{}", line.join("  ").trim_end());
        if i == 0 {
            println!(
                "{}",
                widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  ")
            );
        }
    }
    if let Some(pg) = &ctx.pg_settings {
        println!(
            "PostgreSQL {}: fsync={}, synchronous_commit={}; consumer WRITE_BATCH={}",
            pg.server_version, pg.fsync, pg.synchronous_commit, ctx.write_batch
        );
    }
    println!(
        "\n{mode} run in {:.0} s; wrote {} and {}",
        took.as_secs_f64(),
        json_path.display(),
        svg.display()
    );
    let margins = Margins {
        calls: ctx.args.calls_margin,
        cpu: ctx.args.cpu_margin,
    };
    let checked = figures::against_baseline(
        &ctx.args.baseline,
        mode,
        &report.figures,
        margins,
        ctx.args.check_baseline,
        &machine(),
    );
    // A missed target is a finding; a scenario that could not run is a broken bench.
    match report.failures {
        0 => checked,
        n => Err(ScenariosFailed(n).into()),
    }
}
