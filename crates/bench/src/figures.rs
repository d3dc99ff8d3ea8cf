//! The figures a regression shows in, per delivery scenario: CPU per job of
//! each process, Redis commands and script calls per job, and throughput;
//! the committed baseline they are held against (`docs/bench/baseline.json`,
//! one per mode: quick and standard sizes differ), and the paired
//! comparison of two builds (`scripts/bench.sh --against REF`).
//!
//! CPU per job and call counts are what the check trusts: they stay put
//! from run to run where throughput on a shared machine does not, so
//! throughput is printed beside them, never checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::BoxError;
use crate::redis_stats::PerJob;

/// One scenario's figures, as results.json's `figures` holds them.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Figures {
    pub(crate) jobs: u64,
    /// Jobs delivered per second over the scenario's window.
    pub(crate) per_second: f64,
    /// CPU µs per job of each process (the bench holds the load and the receiver).
    pub(crate) cpu_us_per_job: BTreeMap<String, f64>,
    /// Every command Redis ran per job, those scripts run inside included.
    pub(crate) redis_commands_per_job: f64,
    /// `evalsha`/`eval` calls per job: the scripts' round trips.
    pub(crate) redis_script_calls_per_job: f64,
    /// `INFO commandstats` per job, by command.
    pub(crate) redis_commands: BTreeMap<String, PerJob>,
    /// The calls clients sent, by script, from a sample batch (see `redis_stats`).
    #[serde(default)]
    pub(crate) redis_calls_by_script: BTreeMap<String, PerJob>,
}

/// How much a figure may grow over the baseline before the check fails.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Margins {
    pub(crate) calls: f64,
    pub(crate) cpu: f64,
}

/// CPU figures below this many µs per job are left out of the check (a
/// process that barely takes part), and so is the bench's own: its load
/// threads are counted in 10 ms ticks, and it is not what is measured.
const CPU_FLOOR_US: f64 = 10.0;

/// Call counts per job may also grow by this much before the check
/// fails, whatever the ratio: finishes are batched, so script calls per job
/// are a small fraction that moves with how many outcomes a batch happened
/// to gather (docs/BENCHMARKS.md, "The CI check"); un-batching them would
/// add a whole call per job.
const CALLS_SLACK_PER_JOB: f64 = 0.05;

/// A figure of one scenario: its name, the old value, the new one, the
/// most it may grow by (None: printed, not checked), and by how much it
/// may grow whatever the ratio.
struct Pair {
    figure: String,
    old: f64,
    new: f64,
    limit: Option<f64>,
    slack: f64,
}

impl Pair {
    fn grown(&self) -> bool {
        self.limit
            .is_some_and(|limit| ratio(self.new, self.old) > limit && self.new - self.old > self.slack)
    }
}

fn pairs(old: &Figures, new: &Figures, margins: Margins) -> Vec<Pair> {
    let mut out = vec![Pair {
        figure: "deliveries/s".into(),
        old: old.per_second,
        new: new.per_second,
        limit: None,
        slack: 0.0,
    }];
    for (process, old_us) in &old.cpu_us_per_job {
        let Some(new_us) = new.cpu_us_per_job.get(process) else {
            continue;
        };
        out.push(Pair {
            figure: format!("CPU µs per job, {process}"),
            old: *old_us,
            new: *new_us,
            limit: (*old_us >= CPU_FLOOR_US && process != "bench").then_some(margins.cpu),
            slack: 0.0,
        });
    }
    out.push(Pair {
        figure: "Redis commands per job".into(),
        old: old.redis_commands_per_job,
        new: new.redis_commands_per_job,
        limit: Some(margins.calls),
        slack: CALLS_SLACK_PER_JOB,
    });
    out.push(Pair {
        figure: "Redis script calls per job".into(),
        old: old.redis_script_calls_per_job,
        new: new.redis_script_calls_per_job,
        limit: Some(margins.calls),
        slack: CALLS_SLACK_PER_JOB,
    });
    out
}

fn ratio(new: f64, old: f64) -> f64 {
    if old > 0.0 { new / old } else { f64::NAN }
}

/// The committed baseline of one mode.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Baseline {
    pub(crate) commit: String,
    pub(crate) date: String,
    pub(crate) command: String,
    pub(crate) machine: Value,
    pub(crate) sizes: Value,
    pub(crate) concurrency: Value,
    /// What else ran on the machine, as the one who took it says.
    pub(crate) load: String,
    pub(crate) figures: BTreeMap<String, Figures>,
}

/// The baseline file: a [`Baseline`] per mode (`quick`, `standard`).
type BaselineFile = BTreeMap<String, Baseline>;

fn read_baselines(path: &Path) -> Result<BaselineFile, BoxError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// The figures grew past their margins over the baseline.
#[derive(Debug, thiserror::Error)]
#[error("over the baseline ({path}): {0}", path = .1.display())]
pub(crate) struct OverBaseline(String, PathBuf);

/// Prints each figure against the baseline of `mode` in `path`; with
/// `check`, a figure grown past its margin (or no baseline to check
/// against) is an error naming it — on the machine the baseline was taken
/// on. On another CPU model or core count the check only warns: CPU per job
/// differs by machine (the same commit spent 1.6× the CPU per job on one
/// VM as on another), and so do claim batches and with them the calls per
/// job; a figure from another machine proves nothing.
pub(crate) fn against_baseline(
    path: &Path,
    mode: &str,
    figures: &BTreeMap<String, Figures>,
    margins: Margins,
    check: bool,
    machine: &Value,
) -> Result<(), BoxError> {
    if check && figures.is_empty() {
        return Err("--check-baseline: no delivery figures to check (scenario 3 did not run)".into());
    }
    let baseline = match read_baselines(path).map(|mut file| file.remove(mode)) {
        Ok(Some(baseline)) => baseline,
        Ok(None) | Err(_) if !check => {
            println!("\nno {mode} baseline in {} to compare with", path.display());
            return Ok(());
        }
        Ok(None) => return Err(format!("{} holds no {mode} baseline to check against", path.display()).into()),
        Err(e) => return Err(e),
    };
    println!(
        "\nagainst the {mode} baseline of {} ({}, {}; {}):",
        baseline.commit, baseline.date, baseline.command, baseline.load
    );
    let mut over = Vec::new();
    for (scenario, new) in figures {
        let Some(old) = baseline.figures.get(scenario) else {
            println!("  {scenario}: not in the baseline");
            continue;
        };
        for pair in pairs(old, new, margins) {
            let r = ratio(pair.new, pair.old);
            let grown = pair.grown();
            let limit = pair.limit.map_or(String::new(), |l| format!(" (at most ×{l:.2})"));
            println!(
                "  {scenario}: {:<32} {:>10.2} vs {:>10.2}  ×{r:.3}{limit}{}",
                pair.figure,
                pair.new,
                pair.old,
                if grown { "  OVER" } else { "" }
            );
            if grown {
                over.push(format!(
                    "{scenario}: {} {:.2} is ×{r:.2} of the baseline's {:.2} (at most ×{:.2})",
                    pair.figure,
                    pair.new,
                    pair.old,
                    pair.limit.unwrap_or(f64::NAN)
                ));
            }
        }
    }
    if check && !over.is_empty() {
        if !same_machine(&baseline.machine, machine) {
            for line in &over {
                eprintln!("BASELINE CHECK (advisory): {line}");
            }
            eprintln!(
                "BASELINE CHECK (advisory): the baseline was taken on {}, this is {}: not failing on figures \
                 from another machine; take a baseline here with scripts/bench.sh --write-baseline",
                describe(&baseline.machine),
                describe(machine)
            );
            return Ok(());
        }
        for line in &over {
            eprintln!("BASELINE CHECK FAILED: {line}");
        }
        return Err(OverBaseline(over.join("; "), path.to_owned()).into());
    }
    Ok(())
}

/// Whether two runs' `machine` records name the same CPU model and core count.
fn same_machine(a: &Value, b: &Value) -> bool {
    a.get("cpu") == b.get("cpu") && a.get("nproc") == b.get("nproc")
}

fn describe(machine: &Value) -> String {
    format!(
        "{} ×{}",
        machine.get("cpu").and_then(Value::as_str).unwrap_or("an unknown CPU"),
        machine.get("nproc").map_or_else(|| "?".to_owned(), Value::to_string)
    )
}

/// `bench write-baseline`: a run's figures become the baseline of its mode.
#[derive(Debug, clap::Parser)]
#[command(name = "bench write-baseline", version)]
pub(crate) struct WriteBaseline {
    /// The run's results.json.
    #[arg(long)]
    results: PathBuf,
    /// The baseline file; the other mode's baseline in it is kept.
    #[arg(long, default_value = "docs/bench/baseline.json")]
    baseline: PathBuf,
    /// The commit the run measured.
    #[arg(long)]
    commit: String,
    /// What else ran on the machine meanwhile.
    #[arg(long, default_value = "not stated")]
    load: String,
}

impl WriteBaseline {
    pub(crate) fn run(self) -> Result<(), BoxError> {
        let results: Value = serde_json::from_str(&std::fs::read_to_string(&self.results)?)?;
        let field = |key: &str| results.get(key).cloned().unwrap_or(Value::Null);
        let figures: BTreeMap<String, Figures> = serde_json::from_value(field("figures"))?;
        if figures.is_empty() {
            return Err(format!("{} has no delivery figures (run scenario 3)", self.results.display()).into());
        }
        let mode = field("mode").as_str().unwrap_or("standard").to_owned();
        let mut file = if self.baseline.exists() {
            read_baselines(&self.baseline)?
        } else {
            BaselineFile::new()
        };
        file.insert(
            mode.clone(),
            Baseline {
                commit: self.commit,
                date: field("date").as_str().unwrap_or("").to_owned(),
                command: field("command").as_str().unwrap_or("").to_owned(),
                machine: field("machine"),
                sizes: field("sizes"),
                concurrency: field("concurrency"),
                load: self.load,
                figures,
            },
        );
        std::fs::write(&self.baseline, serde_json::to_string_pretty(&file)? + "\n")?;
        println!("wrote the {mode} baseline to {}", self.baseline.display());
        Ok(())
    }
}

/// `bench compare`: paired runs of two builds, round by round.
#[derive(Debug, clap::Parser)]
#[command(name = "bench compare", version)]
pub(crate) struct Compare {
    /// results.json of the old build, one per round.
    #[arg(long, required = true)]
    old: Vec<PathBuf>,
    /// results.json of the new build, in the same rounds' order.
    #[arg(long, required = true)]
    new: Vec<PathBuf>,
}

fn figures_of(path: &Path) -> Result<BTreeMap<String, Figures>, BoxError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let results: Value = serde_json::from_str(&text)?;
    Ok(serde_json::from_value(
        results.get("figures").cloned().unwrap_or(Value::Null),
    )?)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

impl Compare {
    /// Prints new ÷ old of every figure, each round and their median.
    pub(crate) fn run(self) -> Result<(), BoxError> {
        if self.old.len() != self.new.len() {
            return Err(format!("{} old runs but {} new ones", self.old.len(), self.new.len()).into());
        }
        let no_margins = Margins { calls: 0.0, cpu: 0.0 };
        let mut ratios: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        for (old_path, new_path) in self.old.iter().zip(&self.new) {
            let (old, new) = (figures_of(old_path)?, figures_of(new_path)?);
            for (scenario, new) in &new {
                let Some(old) = old.get(scenario) else { continue };
                for pair in pairs(old, new, no_margins) {
                    ratios
                        .entry((scenario.clone(), pair.figure))
                        .or_default()
                        .push(ratio(pair.new, pair.old));
                }
            }
        }
        println!(
            "\nnew ÷ old, round by round ({} rounds), and the median:",
            self.new.len()
        );
        for ((scenario, figure), mut values) in ratios {
            let rounds = values.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(" ");
            println!("  {scenario}: {figure:<32} {rounds}  median {:.3}", median(&mut values));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(cpu: f64, commands: f64) -> BTreeMap<String, Figures> {
        let mut f = Figures {
            jobs: 100,
            per_second: 1000.0,
            redis_commands_per_job: commands,
            redis_script_calls_per_job: 3.0,
            ..Figures::default()
        };
        f.cpu_us_per_job.insert("helpdesk-fast".into(), cpu);
        f.cpu_us_per_job.insert("consumer".into(), 1.0);
        BTreeMap::from([("3 delivery".to_owned(), f)])
    }

    fn baseline_file(dir: &Path) -> PathBuf {
        baseline_with(dir, "baseline.json", figures(100.0, 20.0))
    }

    fn baseline_with(dir: &Path, name: &str, figures: BTreeMap<String, Figures>) -> PathBuf {
        let path = dir.join(name);
        let baseline = Baseline {
            commit: "abc".into(),
            date: "today".into(),
            command: "scripts/bench.sh --quick".into(),
            machine: Value::Null,
            sizes: Value::Null,
            concurrency: Value::Null,
            load: "quiet".into(),
            figures,
        };
        let file = BaselineFile::from([("quick".to_owned(), baseline)]);
        std::fs::write(&path, serde_json::to_string(&file).expect("json")).expect("write");
        path
    }

    const MARGINS: Margins = Margins { calls: 1.10, cpu: 1.5 };

    #[test]
    fn figures_within_their_margins_pass_and_grown_ones_fail_by_name() {
        let dir = std::env::temp_dir().join(format!("bench-baseline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = baseline_file(&dir);
        // The consumer's 1 µs may triple: it is under the floor.
        let mut fine = figures(140.0, 21.0);
        if let Some(f) = fine.get_mut("3 delivery") {
            f.cpu_us_per_job.insert("consumer".into(), 3.0);
        }
        assert!(against_baseline(&path, "quick", &fine, MARGINS, true, &Value::Null).is_ok());
        let calls = against_baseline(&path, "quick", &figures(100.0, 23.0), MARGINS, true, &Value::Null);
        assert!(format!("{:?}", calls.err()).contains("Redis commands per job"));
        // A fraction of a call per job that moves by a hundredth is timing
        // (×1.11, +0.01); a whole call more is not.
        let script_calls = |calls: f64| {
            let mut f = figures(140.0, 21.0);
            if let Some(f) = f.get_mut("3 delivery") {
                f.redis_script_calls_per_job = calls;
            }
            f
        };
        let small = baseline_with(&dir, "small.json", script_calls(0.09));
        assert!(against_baseline(&small, "quick", &script_calls(0.10), MARGINS, true, &Value::Null).is_ok());
        let unbatched = against_baseline(&small, "quick", &script_calls(1.10), MARGINS, true, &Value::Null);
        assert!(format!("{:?}", unbatched.err()).contains("Redis script calls per job"));
        let cpu = against_baseline(&path, "quick", &figures(160.0, 20.0), MARGINS, true, &Value::Null);
        assert!(format!("{:?}", cpu.err()).contains("CPU µs per job, helpdesk-fast"));
        // On another machine the same growth only warns.
        let elsewhere = serde_json::json!({"cpu": "another CPU", "nproc": 2});
        assert!(against_baseline(&path, "quick", &figures(160.0, 23.0), MARGINS, true, &elsewhere).is_ok());
        // Nothing to check, or no baseline of the mode: a check fails, a plain run only says so.
        assert!(against_baseline(&path, "quick", &BTreeMap::new(), MARGINS, true, &Value::Null).is_err());
        assert!(against_baseline(&path, "standard", &fine, MARGINS, true, &Value::Null).is_err());
        assert!(against_baseline(&path, "standard", &fine, MARGINS, false, &Value::Null).is_ok());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn the_median_of_an_even_count_is_the_middle_twos_mean() {
        assert!((median(&mut [3.0, 1.0, 2.0, 10.0]) - 2.5).abs() < 1e-9);
        assert!((median(&mut [3.0, 1.0, 2.0]) - 2.0).abs() < 1e-9);
    }
}
