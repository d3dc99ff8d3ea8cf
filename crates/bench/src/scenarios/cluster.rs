//! Scenario 9, the queue on a Redis Cluster: the same delivery batch sent
//! to help desks that differ only in their Redis settings, one after the
//! other in one run. `bench.sh` starts them (zero delay, like scenario 3's):
//! on the single Redis (one partition, then three), on a throwaway
//! 3-master/3-replica cluster with `REDIS_PARTITIONS=3`, and the same with
//! `REDIS_MIN_REPLICAS=1`.
//!
//! For each: `POST /document` throughput and latency at the bench's
//! concurrency (the requests share the help desk with the deliveries they
//! cause, as in scenario 3), deliveries/s to the bench's receiver, the CPU
//! every process spent per job (each Redis node from its own `INFO cpu`, the
//! help desk and the bench from `/proc`), how many cores were busy, and
//! where the keys went (`DBSIZE` of each master, before and after). CPU per
//! job is what the scaling arithmetic of docs/BENCHMARKS.md starts from:
//! throughput on 2 shared cores says little about 3 masters on 3 machines.
//!
//! Each help desk's settings are read from its own environment
//! (`/proc/<pid>/environ`), so the report says what the process ran with.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Ctx;
use super::delivery::{Delivered, deliver_batch};
use super::measure::quiet;
use super::report::{Report, Target, load_json, ms, percentiles};
use crate::cpu::{self, TICK_US};
use crate::{BoxError, redis_stats};

const S: &str = "9 cluster";

/// The settings worth reporting (never `REDIS_URL` itself: it may hold a password).
const SETTINGS: [&str; 7] = [
    "REDIS_PARTITIONS",
    "REDIS_MIN_REPLICAS",
    "REVIEW_DELAY_MS",
    "ENDPOINT_CONCURRENCY",
    "WORKER_CONCURRENCY",
    "HTTP_WORKERS",
    "RUST_LOG",
];

/// One help desk of the scenario, as bench.sh started it.
struct Variant {
    name: String,
    url: String,
    pid: u32,
    /// Its [`SETTINGS`] that are set.
    settings: BTreeMap<String, String>,
    /// The Redis URLs of its `REDIS_URL` (several: a cluster).
    redis: Vec<String>,
}

impl Variant {
    fn setting(&self, name: &str) -> u32 {
        self.settings.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    fn is_cluster(&self) -> bool {
        self.redis.len() > 1
    }
}

/// What a Redis node says about itself.
#[derive(Debug, Clone, serde::Serialize)]
struct Node {
    address: String,
    master: bool,
    /// A master's replicas whose link is up (`connected_slaves`).
    replicas: u32,
    keys: u64,
    /// `used_cpu_user + used_cpu_sys`, µs.
    cpu_us: u64,
    /// `INFO commandstats`: calls and µs inside each command, by command.
    commands: redis_stats::Commands,
}

/// `host:port` of a Redis URL, without its scheme, user or password.
fn address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

async fn node(url: &str) -> Result<Node, BoxError> {
    let mut conn = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
    let (replication, cpu, commandstats, keys): (String, String, String, u64) = redis::pipe()
        .cmd("INFO")
        .arg("replication")
        .cmd("INFO")
        .arg("cpu")
        .cmd("INFO")
        .arg("commandstats")
        .cmd("DBSIZE")
        .query_async(&mut conn)
        .await?;
    let commands = redis_stats::parse_commandstats(&commandstats);
    let seconds = |field| -> Result<f64, BoxError> {
        Ok(info_field(&cpu, field)
            .ok_or_else(|| format!("no {field} in INFO cpu of {}", address(url)))?
            .parse::<f64>()?)
    };
    let cpu_s = seconds("used_cpu_user")? + seconds("used_cpu_sys")?;
    Ok(Node {
        address: address(url),
        master: info_field(&replication, "role") == Some("master"),
        replicas: info_field(&replication, "connected_slaves")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        keys,
        cpu_us: (cpu_s * 1e6).round() as u64,
        commands,
    })
}

async fn nodes(urls: &[String]) -> Result<Vec<Node>, BoxError> {
    let mut out = Vec::with_capacity(urls.len());
    for url in urls {
        out.push(node(url).await?);
    }
    Ok(out)
}

/// Everything measured before and after a batch.
struct Snapshot {
    nodes: Vec<Node>,
    helpdesk_ticks: u64,
    bench_ticks: u64,
    machine: (u64, u64),
    at: std::time::Instant,
}

impl Snapshot {
    async fn take(variant: &Variant) -> Result<Self, BoxError> {
        Ok(Self {
            nodes: nodes(&variant.redis).await?,
            helpdesk_ticks: cpu::ticks(variant.pid)
                .ok_or_else(|| format!("help desk {} (pid {}) is gone", variant.name, variant.pid))?,
            bench_ticks: cpu::ticks(std::process::id()).unwrap_or(0),
            machine: cpu::machine().unwrap_or((0, 0)),
            at: std::time::Instant::now(),
        })
    }
}

/// The help desks named in `--cluster-helpdesks`, with their pids and settings.
fn variants(ctx: &Ctx) -> Result<Vec<Variant>, BoxError> {
    let pids: BTreeMap<&str, u32> = ctx
        .args
        .cluster_pids
        .iter()
        .filter_map(|spec| {
            let (name, pid) = spec.split_once('=')?;
            Some((name.trim(), pid.trim().parse().ok()?))
        })
        .collect();
    let mut out = Vec::new();
    for spec in &ctx.args.cluster_helpdesks {
        let (name, url) = spec
            .split_once('=')
            .ok_or_else(|| format!("--cluster-helpdesks: {spec:?} is not NAME=URL"))?;
        let pid = *pids
            .get(name.trim())
            .ok_or_else(|| format!("--cluster-pids has no pid for the help desk {name:?}"))?;
        let environ = std::fs::read(format!("/proc/{pid}/environ"))
            .map_err(|e| format!("cannot read the environment of help desk {name} (pid {pid}): {e}"))?;
        let mut settings = BTreeMap::new();
        let mut redis = Vec::new();
        for var in environ.split(|b| *b == 0) {
            let var = String::from_utf8_lossy(var);
            let Some((key, value)) = var.split_once('=') else {
                continue;
            };
            if key == "REDIS_URL" {
                redis = value.split(',').map(|u| u.trim().to_owned()).collect();
            } else if SETTINGS.contains(&key) {
                settings.insert(key.to_owned(), value.to_owned());
            }
        }
        if redis.is_empty() {
            return Err(format!("help desk {name} (pid {pid}) has no REDIS_URL in its environment").into());
        }
        out.push(Variant {
            name: name.trim().to_owned(),
            url: url.trim().to_owned(),
            pid,
            settings,
            redis,
        });
    }
    Ok(out)
}

/// A cluster as bench.sh starts it: `--cluster-replicas 1`, so half of its
/// nodes are masters, each with a replica whose link is up (without one,
/// `REDIS_MIN_REPLICAS=1` answers 503 and the figures mean nothing).
fn check_shape(variant: &Variant, nodes: &[Node]) -> Result<(), BoxError> {
    let expected = variant.redis.len() / 2;
    let masters = nodes.iter().filter(|n| n.master).count();
    let with_replica = nodes.iter().filter(|n| n.master && n.replicas >= 1).count();
    if variant.redis.len() < 2 || masters != expected || with_replica != expected {
        return Err(format!(
            "the cluster of help desk {} has {} nodes, {masters} masters, {with_replica} of them with a replica \
             whose link is up; expected {expected} masters with a replica each",
            variant.name,
            nodes.len()
        )
        .into());
    }
    Ok(())
}

/// The figures of one help desk, kept for the comparison at the end.
struct Measured {
    name: String,
    settings: BTreeMap<String, String>,
    nodes: usize,
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    helpdesk_us: f64,
    redis_us: f64,
}

pub(super) async fn cluster(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
    if ctx.args.cluster_helpdesks.is_empty() {
        eprintln!("9 cluster: skipped (no --cluster-helpdesks: scripts/bench.sh starts them unless BENCH_CLUSTER=0)");
        return Ok(());
    }
    let variants = variants(ctx)?;
    let mut details = Vec::new();
    let mut measured = Vec::new();
    for variant in &variants {
        match measure(ctx, report, variant).await {
            Ok((detail, figures)) => {
                details.push(detail);
                measured.push(figures);
            }
            Err(e) => report.failed(&format!("{S}: {}", variant.name), &e),
        }
    }
    let wait_cost = wait_cost(report, &measured);
    report.details.insert(
        "cluster".into(),
        json!({
            "jobs_per_help_desk": ctx.sizes.cluster,
            "concurrency": ctx.args.concurrency,
            "help_desks": details,
            "wait_cost": wait_cost,
        }),
    );
    Ok(())
}

async fn measure(ctx: &mut Ctx, report: &mut Report, variant: &Variant) -> Result<(Value, Measured), BoxError> {
    let n = ctx.sizes.cluster;
    let before = Snapshot::take(variant).await?;
    if variant.is_cluster() {
        check_shape(variant, &before.nodes)?;
    }
    let done = deliver_batch(ctx, &variant.url, n, &format!("9 {}", variant.name)).await?;
    quiet(variant.pid).await;
    let after = Snapshot::take(variant).await?;

    let jobs = done.requests.ok.max(1) as f64;
    let helpdesk_us = after.helpdesk_ticks.saturating_sub(before.helpdesk_ticks) as f64 * TICK_US / jobs;
    let bench_us = after.bench_ticks.saturating_sub(before.bench_ticks) as f64 * TICK_US / jobs;
    let cores = cpu::cores_busy(before.machine, after.machine);
    let mut per_node = Vec::new();
    for (b, a) in before.nodes.iter().zip(&after.nodes) {
        // Calls per job and µs per call of each command this batch used.
        let commands = redis_stats::per_job(&b.commands, &a.commands, done.requests.ok);
        per_node.push(json!({
            "commands": commands,
            "address": a.address,
            "role": if a.master { "master" } else { "replica" },
            "cpu_us_per_job": a.cpu_us.saturating_sub(b.cpu_us) as f64 / jobs,
            "keys_added": a.keys.saturating_sub(b.keys),
            "keys_after": a.keys,
        }));
    }
    let node_us = |a: &Node, b: &Node| a.cpu_us.saturating_sub(b.cpu_us) as f64 / jobs;
    let pairs: Vec<(&Node, &Node)> = after.nodes.iter().zip(&before.nodes).collect();
    let redis_us: f64 = pairs.iter().map(|(a, b)| node_us(a, b)).sum();
    let busiest_master_us = pairs
        .iter()
        .filter(|(a, _)| a.master)
        .map(|(a, b)| node_us(a, b))
        .fold(0.0, f64::max);
    let masters: Vec<(&str, u64)> = pairs
        .iter()
        .filter(|(a, _)| a.master)
        .map(|(a, b)| (a.address.as_str(), a.keys.saturating_sub(b.keys)))
        .collect();
    let holding = masters.iter().filter(|(_, keys)| *keys > 0).count();
    // Cores the machine spent on anything else (the other services, other
    // people's work on a shared box): busy minus what these processes used.
    let seconds = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
    let ours = (helpdesk_us + bench_us + redis_us) * jobs / 1e6 / seconds;
    let others = (cores - ours).max(0.0);

    let name = &variant.name;
    let requests = &done.requests;
    let c = ctx.args.concurrency;
    let p50 = ms(requests.latency_us.value_at_quantile(0.5));
    let p99 = ms(requests.latency_us.value_at_quantile(0.99));
    report.row(
        S,
        &format!("{name}: POST /document, c={c}"),
        requests.per_second(),
        "req/s",
        Target::None,
    );
    report.row(S, &format!("{name}: POST /document p50"), p50, "ms", Target::None);
    report.row(S, &format!("{name}: POST /document p99"), p99, "ms", Target::None);
    report.row(
        S,
        &format!("{name}: POST /document errors"),
        requests.errors as f64,
        "",
        Target::AtMost(0.0),
    );
    report.row(
        S,
        &format!("{name}: deliveries/s, request to receipt ({n})"),
        done.per_second,
        "/s",
        Target::None,
    );
    report.row(
        S,
        &format!("{name}: not delivered"),
        done.not_delivered(),
        "",
        Target::AtMost(0.0),
    );
    report.row(
        S,
        &format!("{name}: help desk CPU per job"),
        helpdesk_us,
        "µs",
        Target::None,
    );
    report.row(
        S,
        &format!("{name}: Redis CPU per job, {} node(s)", variant.redis.len()),
        redis_us,
        "µs",
        Target::None,
    );
    if variant.is_cluster() {
        report.row(
            S,
            &format!("{name}: busiest master's CPU per job"),
            busiest_master_us,
            "µs",
            Target::None,
        );
        // With N partitions over M masters, every master holds some when N >= M.
        let partitions = variant.setting("REDIS_PARTITIONS").max(1) as usize;
        let spread = masters
            .iter()
            .map(|(_, keys)| keys.to_string())
            .collect::<Vec<_>>()
            .join(" / ");
        report.row(
            S,
            &format!("{name}: masters holding its keys (+{spread} keys)"),
            holding as f64,
            "",
            if partitions >= masters.len() {
                Target::AtLeast(masters.len() as f64)
            } else {
                Target::None
            },
        );
    }
    report.row(
        S,
        &format!("{name}: cores busy ({others:.2} of them outside the help desk, its Redis and the bench)"),
        cores,
        "",
        Target::None,
    );

    let detail = json!({
        "name": name,
        "settings": variant.settings,
        "redis_nodes": variant.redis.len(),
        "post_document": load_json(requests),
        "delivery": Delivered::json(&done),
        "cpu_us_per_job": {
            "helpdesk": helpdesk_us,
            "redis_all_nodes": redis_us,
            "redis_busiest_master": busiest_master_us,
            "bench": bench_us,
        },
        "cores_busy": cores,
        "cores_busy_elsewhere": others,
        "nodes": per_node,
        "post_document_latency": percentiles(&requests.latency_us),
    });
    let figures = Measured {
        name: name.clone(),
        settings: variant.settings.clone(),
        nodes: variant.redis.len(),
        requests_per_second: requests.per_second(),
        p50_ms: p50,
        p99_ms: p99,
        helpdesk_us,
        redis_us,
    };
    Ok((detail, figures))
}

/// What `REDIS_MIN_REPLICAS` adds: each help desk that waits for replicas
/// against the one on the same Redis with the same partitions that does not.
fn wait_cost(report: &mut Report, measured: &[Measured]) -> Value {
    let same_but_wait = |m: &Measured, base: &Measured| {
        m.nodes == base.nodes
            && m.settings.get("REDIS_PARTITIONS") == base.settings.get("REDIS_PARTITIONS")
            && base.settings.get("REDIS_MIN_REPLICAS").is_none_or(|v| v == "0")
    };
    let mut out = Vec::new();
    for m in measured {
        let replicas = m.settings.get("REDIS_MIN_REPLICAS").map_or("0", String::as_str);
        if replicas == "0" {
            continue;
        }
        let Some(base) = measured.iter().find(|base| same_but_wait(m, base)) else {
            continue;
        };
        let what = format!("REDIS_MIN_REPLICAS={replicas} ({} vs {})", m.name, base.name);
        report.row(
            S,
            &format!("{what}: POST /document p50 added"),
            m.p50_ms - base.p50_ms,
            "ms",
            Target::None,
        );
        report.row(
            S,
            &format!("{what}: POST /document p99 added"),
            m.p99_ms - base.p99_ms,
            "ms",
            Target::None,
        );
        report.row(
            S,
            &format!("{what}: POST /document req/s, share"),
            m.requests_per_second / base.requests_per_second.max(1e-9),
            "",
            Target::None,
        );
        report.row(
            S,
            &format!("{what}: CPU per job added, help desk + Redis"),
            (m.helpdesk_us + m.redis_us) - (base.helpdesk_us + base.redis_us),
            "µs",
            Target::None,
        );
        out.push(json!({
            "with": m.name,
            "without": base.name,
            "p50_ms_added": m.p50_ms - base.p50_ms,
            "p99_ms_added": m.p99_ms - base.p99_ms,
            "requests_per_second_share": m.requests_per_second / base.requests_per_second.max(1e-9),
            "helpdesk_cpu_us_added": m.helpdesk_us - base.helpdesk_us,
            "redis_cpu_us_added": m.redis_us - base.redis_us,
        }));
    }
    Value::Array(out)
}
