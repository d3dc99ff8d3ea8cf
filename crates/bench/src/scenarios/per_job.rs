//! What a delivery scenario's jobs cost, per job, over a window: the CPU of
//! every process and what Redis ran (`INFO commandstats`), as rows and as
//! the [`Figures`] held against the baseline; and the calls split by
//! script, from a sample batch of their own ([`script_sample`]).

use std::collections::BTreeMap;

use super::measure::{CpuUse, cpu_row, cpu_use, quiet};
use super::report::{Report, Target};
use super::{Ctx, named_pid};
use crate::BoxError;
use crate::cpu;
use crate::figures::Figures;
use crate::redis_stats::{self, Commands, PerJob, Sample};

/// A window opened before the jobs run.
pub(super) struct Window {
    cpu: CpuUse,
    commands: Commands,
}

impl Window {
    pub(super) async fn open(ctx: &mut Ctx) -> Result<Self, BoxError> {
        let cpu = cpu_use(ctx).await;
        let commands = redis_stats::commandstats(ctx.rd.conn()).await?;
        Ok(Self { cpu, commands })
    }

    /// Closes it once the fast help desk is quiet: the CPU row, the Redis
    /// rows, and the scenario's [`Figures`] (`loaded`: the machine's ticks
    /// when the load ended, for the cores busy under it).
    pub(super) async fn close(
        self,
        ctx: &mut Ctx,
        report: &mut Report,
        scenario: &str,
        jobs: u64,
        per_second: f64,
        loaded: (u64, u64),
    ) -> Result<Figures, BoxError> {
        if let Some(pid) = named_pid(&ctx.args.pids, "helpdesk-fast") {
            quiet(pid).await;
        }
        let after = cpu_use(ctx).await;
        let commands_after = redis_stats::commandstats(ctx.rd.conn()).await?;
        let busy = cpu::cores_busy(self.cpu.machine, loaded);
        let cpu_us_per_job = cpu_row(report, scenario, "job", jobs, &self.cpu, &after, busy);
        let commands = redis_stats::per_job(&self.commands, &commands_after, jobs);
        commands_row(report, scenario, &commands);
        let scripts = ["evalsha", "evalsha_ro", "eval", "eval_ro", "fcall", "fcall_ro"];
        Ok(Figures {
            jobs,
            per_second,
            cpu_us_per_job,
            redis_commands_per_job: redis_stats::total_calls(&commands),
            redis_script_calls_per_job: scripts
                .iter()
                .filter_map(|s| commands.get(*s))
                .map(|c| c.calls_per_job)
                .sum(),
            redis_commands: commands,
            redis_calls_by_script: BTreeMap::new(),
        })
    }
}

/// `what` per job, the most frequent first (at most `top` of them).
fn split(per: &BTreeMap<String, PerJob>, top: usize) -> String {
    let mut parts: Vec<(&String, &PerJob)> = per.iter().collect();
    parts.sort_by(|a, b| b.1.calls_per_job.total_cmp(&a.1.calls_per_job));
    parts
        .iter()
        .take(top)
        .map(|(name, c)| {
            let inside = c
                .inside_per_call
                .map_or(String::new(), |n| format!(", {n:.1} commands inside"));
            format!("{name} {:.2} × {:.0} µs{inside}", c.calls_per_job, c.usec_per_call)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn commands_row(report: &mut Report, scenario: &str, commands: &BTreeMap<String, PerJob>) {
    report.row(
        scenario,
        &format!("Redis commands per job, inside scripts too ({})", split(commands, 6)),
        redis_stats::total_calls(commands),
        "",
        Target::None,
    );
}

/// The slow log recording every call (see [`Sample`]) and the names of the
/// help desk's scripts; None (and said why) when the slow log cannot be
/// set (a managed Redis, say).
pub(super) async fn sample_start(ctx: &mut Ctx, scenario: &str) -> Option<(Sample, BTreeMap<String, String>)> {
    let names = redis_stats::script_names(&ctx.args.helpdesk_store).unwrap_or_else(|e| {
        eprintln!("{scenario}: scripts left unnamed ({e})");
        BTreeMap::new()
    });
    match Sample::start(ctx.rd.conn()).await {
        Ok(sample) => Some((sample, names)),
        Err(e) => {
            eprintln!("{scenario}: no calls by script (the slow log cannot be set: {e})");
            None
        }
    }
}

/// Ends a sample of `jobs` jobs: the calls per job clients sent to Redis,
/// `evalsha` by script, as a row.
pub(super) async fn sample_finish(
    ctx: &mut Ctx,
    report: &mut Report,
    scenario: &str,
    started: Option<(Sample, BTreeMap<String, String>)>,
    jobs: u64,
) -> Result<BTreeMap<String, PerJob>, BoxError> {
    let Some((sample, names)) = started else {
        return Ok(BTreeMap::new());
    };
    if let Some(pid) = named_pid(&ctx.args.pids, "helpdesk-fast") {
        quiet(pid).await;
    }
    let by_script = sample.finish(ctx.rd.conn(), jobs, &names).await?;
    report.row(
        scenario,
        &format!(
            "Redis script calls per job, by script ({jobs} sample jobs: {})",
            split(&by_script, 6)
        ),
        redis_stats::total_calls(&by_script),
        "",
        Target::None,
    );
    Ok(by_script)
}

/// Jobs in a script sample: a quarter of the batch, within 100..=2,000
/// (enough that a worker's idle claims, 4 a second, stay under 1% of the calls).
pub(super) fn sample_size(batch: usize) -> usize {
    (batch / 4).clamp(100, 2_000)
}
