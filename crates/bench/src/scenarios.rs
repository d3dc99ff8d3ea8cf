//! The nine scenarios and the report they fill (table, JSON, chart).

mod cluster;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hookline_contract::signature::SecretSet;
use hookline_contract::{CreateReview, DocumentRequest, DocumentStatus, DocumentWebhook, headers};
use serde_json::{Value, json};

use crate::cpu;
use crate::hostile;
use crate::load::{self, Call, LoadResult, MakeCall};
use crate::receiver::{self, Receipts};
use crate::rss::RssWatch;
use crate::store::{Pg, Rd};
use crate::{Args, BoxError, Sizes, progress, unix_us};

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
struct Report {
    rows: Vec<Row>,
    /// Scenarios (or parts of one) that could not finish.
    failures: usize,
    details: serde_json::Map<String, Value>,
    series: Vec<(String, Histogram<u64>)>,
}

/// A target on a figure: at least or at most a bound.
#[derive(Clone, Copy)]
enum Target {
    None,
    AtLeast(f64),
    AtMost(f64),
}

impl Report {
    fn row(&mut self, scenario: &str, figure: &str, value: f64, unit: &str, target: Target) {
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
    fn latency_rows(&mut self, scenario: &str, what: &str, hist: &Histogram<u64>, p99_target: Target) {
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
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn num(v: f64) -> String {
    if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn percentiles(hist: &Histogram<u64>) -> Value {
    json!({
        "count": hist.len(),
        "p50_ms": ms(hist.value_at_quantile(0.5)),
        "p90_ms": ms(hist.value_at_quantile(0.9)),
        "p99_ms": ms(hist.value_at_quantile(0.99)),
        "p999_ms": ms(hist.value_at_quantile(0.999)),
        "max_ms": ms(hist.max()),
    })
}

fn load_json(result: &LoadResult) -> Value {
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

async fn drive(
    total: usize,
    concurrency: usize,
    threads: usize,
    what: &str,
    make: MakeCall,
) -> Result<LoadResult, BoxError> {
    let bar = progress(total as u64, what);
    actix_web::rt::task::spawn_blocking(move || load::drive(total, concurrency, threads, &bar, make)).await?
}

/// Everything the scenarios share.
struct Ctx {
    args: Args,
    sizes: Sizes,
    run: String,
    pg: Pg,
    rd: Rd,
    rss: RssWatch,
    receiver_url: String,
    receipts: Arc<Receipts>,
    /// Scenario 3's figure, which scenario 7 is measured against.
    clean_delivery_per_second: Option<f64>,
}

pub(crate) async fn run(args: Args) -> Result<(), BoxError> {
    let sizes = args.sizes();
    let pids = named_pids(&args.pids);
    let (receiver_url, receipts) = receiver::start(None, true)?;
    let mut ctx = Ctx {
        pg: Pg::connect(&args.database_url).await?,
        rd: Rd::connect(&args.redis_url, &args.redis_prefix).await?,
        rss: RssWatch::new(pids),
        run: format!("{:08x}", unix_us() % 0xffff_ffff),
        sizes,
        receiver_url,
        receipts,
        args,
        clean_delivery_per_second: None,
    };
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
        if let Err(e) = create_review(&mut ctx, &mut report).await {
            failed(&mut report, "1 create_review", &e);
        }
        note_peaks(&ctx);
    }
    if ctx.args.runs(2) {
        if let Err(e) = ingestion(&mut ctx, &mut report).await {
            failed(&mut report, "2 ingestion", &e);
        }
        note_peaks(&ctx);
    }
    if ctx.args.runs(3) {
        if let Err(e) = delivery(&mut ctx, &mut report).await {
            failed(&mut report, "3 delivery", &e);
        }
        note_peaks(&ctx);
    }
    if ctx.args.runs(8) {
        if let Err(e) = https_delivery(&mut ctx, &mut report).await {
            failed(&mut report, "8 https delivery", &e);
        }
        note_peaks(&ctx);
    }
    // Before 7, whose hostile jobs would keep the bench's receiver company.
    if ctx.args.runs(9) {
        if let Err(e) = cluster::cluster(&mut ctx, &mut report).await {
            failed(&mut report, "9 cluster", &e);
        }
        note_peaks(&ctx);
    }
    // After 3, which it is compared with; its hostile jobs keep the fast help
    // desk's slots busy afterwards, and no later scenario uses that one.
    if ctx.args.runs(7) {
        if let Err(e) = noisy_neighbours(&mut ctx, &mut report).await {
            failed(&mut report, "7 noisy_neighbours", &e);
        }
        note_peaks(&ctx);
    }
    if ctx.args.runs(5) {
        if let Err(e) = end_to_end(&mut ctx, &mut report).await {
            failed(&mut report, "5 end_to_end", &e);
        }
        note_peaks(&ctx);
    }
    if ctx.args.runs(4)
        && let Err(e) = precision(&mut ctx, &mut report).await
    {
        failed(&mut report, "4 precision", &e);
    }
    if ctx.args.runs(6) && !ctx.rss.is_empty() {
        for (name, bytes) in &idle {
            report.row(
                "6 memory",
                &format!("{name} RSS idle"),
                *bytes as f64 / 1_048_576.0,
                "MB",
                Target::None,
            );
        }
        for (name, bytes) in &loaded {
            report.row(
                "6 memory",
                &format!("{name} RSS peak under load"),
                *bytes as f64 / 1_048_576.0,
                "MB",
                Target::AtMost(50.0),
            );
        }
        report.details.insert(
            "memory".into(),
            json!({"idle_bytes": idle, "peak_under_load_bytes": loaded}),
        );
    }
    finish(&ctx, report, started.elapsed())
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

/// CPU time (µs) each process has used so far: PostgreSQL (the postmaster
/// and its backends, with `--pg-pid`), Redis (its `INFO cpu`), the
/// services of `--pids`, the bench itself; and the machine's busy ticks.
struct CpuUse {
    us: BTreeMap<String, f64>,
    machine: (u64, u64),
}

async fn cpu_use(ctx: &mut Ctx) -> CpuUse {
    let mut us = BTreeMap::new();
    if let Some(ticks) = ctx.args.pg_pid.and_then(cpu::tree_ticks) {
        us.insert("postgres".to_owned(), ticks as f64 * cpu::TICK_US);
    }
    if let Ok(redis) = ctx.rd.cpu_us().await {
        us.insert("redis".to_owned(), redis);
    }
    for (name, pid) in named_pids(&ctx.args.pids) {
        if let Some(ticks) = cpu::ticks(pid) {
            us.insert(name, ticks as f64 * cpu::TICK_US);
        }
    }
    if let Some(ticks) = cpu::ticks(std::process::id()) {
        us.insert("bench".to_owned(), ticks as f64 * cpu::TICK_US);
    }
    CpuUse {
        us,
        machine: cpu::machine().unwrap_or((0, 0)),
    }
}

/// One row: the CPU each process spent per operation between `before` and
/// `after` (µs; the processes that spent under 0.5 µs left out), their sum
/// as the value; the cores busy while the load ran (`busy`), in the figure.
fn cpu_row(report: &mut Report, scenario: &str, what: &str, ops: u64, before: &CpuUse, after: &CpuUse, busy: f64) {
    let per_op: BTreeMap<&str, f64> = after
        .us
        .iter()
        .filter_map(|(name, now)| {
            let used = now - before.us.get(name)?;
            Some((name.as_str(), used / ops.max(1) as f64))
        })
        .filter(|(_, us)| *us >= 0.5)
        .collect();
    let mut parts: Vec<(&str, f64)> = per_op.iter().map(|(name, us)| (*name, *us)).collect();
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
}

/// Waits (at most 3 s) until `pid`'s CPU time stops moving: a help desk
/// records the outcomes of its last deliveries after their receipt.
async fn quiet(pid: u32) {
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

/// A scenario that could not finish: say so, keep the others.
fn failed(report: &mut Report, scenario: &str, error: &BoxError) {
    eprintln!("{scenario}: FAILED: {error}");
    report.failures += 1;
    report.row(scenario, &format!("FAILED: {error}"), 1.0, "", Target::AtMost(0.0));
}

fn review_call(consumer_url: &str, url_prefix: &str) -> MakeCall {
    let (endpoint, url_prefix) = (format!("{consumer_url}/documents"), url_prefix.to_owned());
    Arc::new(move |client: awc::Client, i: usize| -> Call {
        let (endpoint, document_url) = (endpoint.clone(), format!("{url_prefix}{i}.pdf"));
        Box::pin(async move {
            let mut response = client
                .post(endpoint)
                .send_json(&CreateReview { document_url })
                .await
                .map_err(|e| e.to_string())?;
            let body = response.body().await.map_err(|e| e.to_string())?;
            match response.status().as_u16() {
                201 => Ok("201".to_owned()),
                status => Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body))),
            }
        })
    })
}

/// Waits (bounded) until every accepted review of a batch is decided; returns (accepted, decided).
async fn settle(pg: &mut Pg, url_prefix: &str, deadline: Instant, what: &str) -> Result<(i64, i64), BoxError> {
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

async fn create_review(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
    let (n, c) = (ctx.sizes.create, ctx.args.concurrency);
    let url_prefix = format!("https://bench.example/create/{}/", ctx.run);
    let before = cpu_use(ctx).await;
    let result = drive(
        n,
        c,
        ctx.args.load_threads,
        "1 create-review",
        review_call(&ctx.args.consumer_url, &url_prefix),
    )
    .await?;
    let loaded = cpu::machine().unwrap_or((0, 0));
    let s = "1 create-review";
    report.row(
        s,
        &format!("throughput (c={c})"),
        result.per_second(),
        "req/s",
        Target::AtLeast(5000.0),
    );
    report.latency_rows(s, "latency", &result.latency_us, Target::AtMost(50.0));
    report.row(s, "errors", result.errors as f64, "", Target::AtMost(0.0));
    report.details.insert("create_review".into(), load_json(&result));
    report.series.push(("1 create-review".into(), result.latency_us));
    // Let its webhooks land before the next scenario, so they do not disturb it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (_, decided) = settle(&mut ctx.pg, &url_prefix, deadline, "  …its webhooks landing").await?;
    // From the first request to the last decision: a review's whole life.
    let after = cpu_use(ctx).await;
    let busy = cpu::cores_busy(before.machine, loaded);
    cpu_row(
        report,
        s,
        "review, request and decision webhook",
        u64::try_from(decided)?,
        &before,
        &after,
        busy,
    );
    Ok(())
}

async fn ingestion(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
    let n = ctx.sizes.ingest;
    let control = n / 10;
    let prefix = format!("bench-{}-", ctx.run);
    let bar = progress(1, "2 seeding PostgreSQL");
    ctx.pg.seed(&prefix, i64::try_from(n + control)?).await?;
    bar.finish();
    // Each original once, plus a repeat of an earlier one (same webhook-id and
    // body, at least 4× the concurrency behind) after every 9th: 10% duplicates.
    let gap = ctx.args.concurrency * 4;
    let mut order = Vec::with_capacity(n + n / 9);
    for i in 0..n {
        order.push(i);
        if (i + 1) % 9 == 0 && i >= gap {
            order.push(i - gap);
        }
    }
    let duplicates = order.len() - n;
    let secrets: SecretSet = ctx.args.webhook_secret.parse()?;
    let bodies: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let webhook = DocumentWebhook {
                agent_id: "agent-bench".into(),
                document_id: format!("{prefix}{i}"),
                document_status: if i % 2 == 0 {
                    DocumentStatus::Accepted
                } else {
                    DocumentStatus::Declined
                },
                id: None,
            };
            Ok((format!("msg_bench{}{i}", ctx.run), serde_json::to_vec(&webhook)?))
        })
        .collect::<Result<_, BoxError>>()?;
    let (bodies, order) = (Arc::new(bodies), Arc::new(order));
    let endpoint = format!("{}/document/update", ctx.args.consumer_url);
    let total = order.len();
    let make: MakeCall = Arc::new(move |client: awc::Client, k: usize| -> Call {
        let (endpoint, bodies, order, secrets) = (endpoint.clone(), bodies.clone(), order.clone(), secrets.clone());
        Box::pin(async move {
            let (id, body) = order.get(k).and_then(|i| bodies.get(*i)).ok_or("no such webhook")?;
            let timestamp = chrono::Utc::now().timestamp();
            let signature = secrets.sign(id, timestamp, body);
            let mut response = client
                .post(endpoint)
                .insert_header(("content-type", "application/json"))
                .insert_header((headers::WEBHOOK_ID, id.as_str()))
                .insert_header((headers::WEBHOOK_TIMESTAMP, timestamp.to_string()))
                .insert_header((headers::WEBHOOK_SIGNATURE, signature))
                .send_body(body.clone())
                .await
                .map_err(|e| e.to_string())?;
            let answer = response.body().await.map_err(|e| e.to_string())?;
            if response.status().as_u16() != 200 {
                return Err(format!(
                    "HTTP {}: {}",
                    response.status(),
                    String::from_utf8_lossy(&answer)
                ));
            }
            let ack: Value = serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
            Ok(ack.get("outcome").and_then(Value::as_str).unwrap_or("?").to_owned())
        })
    });
    let before = cpu_use(ctx).await;
    let result = drive(total, ctx.args.concurrency, ctx.args.load_threads, "2 ingestion", make).await?;
    let after = cpu_use(ctx).await;
    let check = ctx.pg.check_ingest(&prefix, i64::try_from(n)?).await?;
    let applied = result.tags.get("applied").copied().unwrap_or(0);
    let repeats =
        result.tags.get("duplicate").copied().unwrap_or(0) + result.tags.get("already_applied").copied().unwrap_or(0);
    let exact = check.right == i64::try_from(n)?
        && check.wrong == 0
        && check.untouched == i64::try_from(control)?
        && check.control_changed == 0
        && check.receipts == i64::try_from(n)?
        && applied == n as u64
        && repeats == duplicates as u64;
    let s = "2 ingestion";
    report.row(
        s,
        &format!("throughput ({total} webhooks, {duplicates} dup)"),
        result.per_second(),
        "webhooks/s",
        Target::AtLeast(5000.0),
    );
    report.latency_rows(s, "latency", &result.latency_us, Target::None);
    report.row(s, "errors", result.errors as f64, "", Target::AtMost(0.0));
    report.row(
        s,
        &format!("rows changed exactly ({} of {} seeded)", check.right, n + control),
        f64::from(u8::from(exact)),
        "yes=1",
        Target::AtLeast(1.0),
    );
    let mut detail = load_json(&result);
    if let Value::Object(map) = &mut detail {
        map.insert("sent_originals".into(), json!(n));
        map.insert("sent_duplicates".into(), json!(duplicates));
        map.insert("control_rows".into(), json!(control));
        map.insert("check".into(), serde_json::to_value(check)?);
        map.insert("exact".into(), json!(exact));
        map.insert("seeding".into(), json!("rows inserted directly in PostgreSQL"));
    }
    report.details.insert("ingestion".into(), detail);
    let busy = cpu::cores_busy(before.machine, after.machine);
    cpu_row(report, s, "webhook", total as u64, &before, &after, busy);
    report.series.push(("2 ingestion".into(), result.latency_us));
    Ok(())
}

/// `POST {endpoint}` (a help desk's `/document`) asking it to call `callback`
/// back; the tag `202`, or what went wrong.
async fn post_case(
    client: awc::Client,
    endpoint: String,
    callback: String,
    document_url: String,
    id: String,
) -> Result<String, String> {
    let request = DocumentRequest {
        document_url,
        id: Some(id),
    };
    let mut response = client
        .post(endpoint)
        .insert_header((headers::CALLBACK_URL, callback))
        .send_json(&request)
        .await
        .map_err(|e| e.to_string())?;
    let body = response.body().await.map_err(|e| e.to_string())?;
    match response.status().as_u16() {
        202 => Ok("202".to_owned()),
        status => Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body))),
    }
}

/// `n` reviews through the zero-delay help desk to our receiver, and when
/// each one's webhook arrived.
struct Delivered {
    requests: LoadResult,
    /// Jobs whose webhook arrived.
    delivered: usize,
    receipts_incl_repeats: usize,
    seconds: f64,
    per_second: f64,
    latency: Histogram<u64>,
}

async fn deliver_batch(ctx: &mut Ctx, fast: &str, n: usize, what: &str) -> Result<Delivered, BoxError> {
    let (callback, receipts) = (ctx.receiver_url.clone(), ctx.receipts.clone());
    deliver_batch_to(ctx, fast, callback, &receipts, n, what).await
}

/// As [`deliver_batch`], to the receiver at `callback` that fills `receipts`.
async fn deliver_batch_to(
    ctx: &Ctx,
    fast: &str,
    callback: String,
    receipts: &Receipts,
    n: usize,
    what: &str,
) -> Result<Delivered, BoxError> {
    receipts.take();
    let sent_us: Arc<Vec<AtomicI64>> = Arc::new((0..n).map(|_| AtomicI64::new(0)).collect());
    let (endpoint, sent) = (format!("{fast}/document"), sent_us.clone());
    let tag = what.to_owned();
    // The help desk takes `id` as an idempotency key (the same id for another
    // document is a 409), so each batch numbers its jobs under a prefix of its own.
    static BATCHES: AtomicUsize = AtomicUsize::new(0);
    let prefix = format!("{}.b{}.", ctx.run, BATCHES.fetch_add(1, Ordering::Relaxed));
    let id_prefix = prefix.clone();
    let make: MakeCall = Arc::new(move |client: awc::Client, i: usize| -> Call {
        let (endpoint, callback, sent) = (endpoint.clone(), callback.clone(), sent.clone());
        let document_url = format!("https://bench.example/{tag}/{i}.pdf").replace([' ', ','], "-");
        let id = format!("{id_prefix}{i}");
        Box::pin(async move {
            if let Some(slot) = sent.get(i) {
                slot.store(unix_us(), Ordering::Relaxed);
            }
            post_case(client, endpoint, callback, document_url, id).await
        })
    });
    let result = drive(
        n,
        ctx.args.concurrency,
        ctx.args.load_threads,
        &format!("{what} (requests)"),
        make,
    )
    .await?;
    let bar = progress(result.ok, &format!("{what} (receipts)"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while (receipts.count() as u64) < result.ok && Instant::now() < deadline {
        bar.set_position(receipts.count() as u64);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    bar.finish();
    let receipts = receipts.take();
    let mut first: HashMap<usize, i64> = HashMap::new();
    for r in &receipts {
        if let Some(i) =
            r.id.as_deref()
                .and_then(|id| id.strip_prefix(prefix.as_str()))
                .and_then(|i| i.parse::<usize>().ok())
        {
            let at = first.entry(i).or_insert(r.at_us);
            *at = (*at).min(r.at_us);
        }
    }
    let mut latency = load::histogram()?;
    for (i, at) in &first {
        if let Some(sent) = sent_us.get(*i).map(|s| s.load(Ordering::Relaxed)) {
            latency.saturating_record(u64::try_from(at - sent).unwrap_or(0).max(1));
        }
    }
    let start = sent_us
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .filter(|t| *t > 0)
        .min()
        .unwrap_or(0);
    let end = first.values().copied().max().unwrap_or(start);
    let seconds = ((end - start) as f64 / 1e6).max(1e-9);
    Ok(Delivered {
        requests: result,
        delivered: first.len(),
        receipts_incl_repeats: receipts.len(),
        seconds,
        per_second: first.len() as f64 / seconds,
        latency,
    })
}

impl Delivered {
    fn json(&self) -> Value {
        json!({
            "requests": load_json(&self.requests),
            "delivered": self.delivered,
            "receipts_incl_repeats": self.receipts_incl_repeats,
            "seconds_first_request_to_last_receipt": self.seconds,
            "per_second": self.per_second,
            "request_to_receipt": percentiles(&self.latency),
        })
    }

    fn not_delivered(&self) -> f64 {
        self.requests.ok as f64 - self.delivered as f64
    }
}

async fn delivery(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
    let Some(fast) = ctx.args.fast_helpdesk_url.clone() else {
        eprintln!("3 delivery: skipped (no --fast-helpdesk-url)");
        return Ok(());
    };
    let before = cpu_use(ctx).await;
    let done = deliver_batch(ctx, &fast, ctx.sizes.delivery, "3 delivery").await?;
    let loaded = cpu::machine().unwrap_or((0, 0));
    if let Some((_, pid)) = named_pids(&ctx.args.pids)
        .into_iter()
        .find(|(name, _)| name == "helpdesk-fast")
    {
        quiet(pid).await;
    }
    let after = cpu_use(ctx).await;
    let s = "3 delivery";
    report.row(
        s,
        "deliveries/s, request to receipt",
        done.per_second,
        "/s",
        Target::AtLeast(10_000.0),
    );
    report.latency_rows(s, "request→receipt", &done.latency, Target::None);
    report.row(s, "not delivered", done.not_delivered(), "", Target::AtMost(0.0));
    report.details.insert("delivery".into(), done.json());
    let busy = cpu::cores_busy(before.machine, loaded);
    cpu_row(report, s, "job", done.requests.ok, &before, &after, busy);
    ctx.clean_delivery_per_second = Some(done.per_second);
    report.series.push(("3 delivery request→receipt".into(), done.latency));
    Ok(())
}

/// Scenario 8: what TLS costs a delivery. The zero-delay help desk delivers
/// the same batch to five receivers in turn: plain HTTP and HTTPS keeping
/// their connections alive (a handshake per connection, then reused), and
/// closing each connection after one answer (a connection, and a handshake,
/// per delivery), over HTTPS once with session resumption and once with a
/// full handshake every time. The differences between them, in the help
/// desk's CPU time and in latency, are the cost of TLS.
async fn https_delivery(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
    let (Some(fast), Some(dir)) = (ctx.args.fast_helpdesk_url.clone(), ctx.args.tls_dir.clone()) else {
        eprintln!("8 https delivery: skipped (needs --fast-helpdesk-url and --tls-dir)");
        return Ok(());
    };
    let pid = ctx
        .args
        .pids
        .iter()
        .find_map(|spec| spec.strip_prefix("helpdesk-fast="))
        .and_then(|pid| pid.trim().parse::<u32>().ok());
    let s = "8 https delivery";
    let n = ctx.sizes.tls;
    // (name, TLS: (resumption, host), keep-alive)
    let variants = [
        ("http, kept alive", None, true),
        ("https, kept alive", Some((true, "localhost")), true),
        ("http, new connection each", None, false),
        ("https, new connection each, resumed", Some((true, "localhost")), false),
        // Another host name, so the help desk holds no session for it.
        (
            "https, new connection each, full handshake",
            Some((false, "127.0.0.1")),
            false,
        ),
    ];
    let mut cpu_us = Vec::new();
    let mut p50_ms = Vec::new();
    let mut detail = serde_json::Map::new();
    for (name, tls, keep_alive) in variants {
        let tls = match tls {
            Some((resumption, host)) => Some((crate::tls::server_config(&dir, resumption)?, host)),
            None => None,
        };
        let (url, receipts) = receiver::start(tls, keep_alive)?;
        let before = pid.and_then(crate::cpu::ticks);
        let done = deliver_batch_to(ctx, &fast, url, &receipts, n, &format!("8 {name}")).await?;
        let after = pid.and_then(crate::cpu::ticks);
        let cpu = before
            .zip(after)
            .map(|(before, after)| (after - before) as f64 * crate::cpu::TICK_US / done.delivered.max(1) as f64);
        report.row(s, &format!("{name}: deliveries/s"), done.per_second, "/s", Target::None);
        let p50 = ms(done.latency.value_at_quantile(0.5));
        report.row(s, &format!("{name}: request→receipt p50"), p50, "ms", Target::None);
        if let Some(cpu) = cpu {
            report.row(
                s,
                &format!("{name}: help desk CPU per delivery"),
                cpu,
                "µs",
                Target::None,
            );
        }
        report.row(
            s,
            &format!("{name}: not delivered"),
            done.not_delivered(),
            "",
            Target::AtMost(0.0),
        );
        let mut json = done.json();
        if let Value::Object(map) = &mut json {
            map.insert("helpdesk_cpu_us_per_delivery".into(), json!(cpu));
        }
        detail.insert(name.to_owned(), json);
        cpu_us.push(cpu);
        p50_ms.push(p50);
    }
    // What TLS adds: HTTPS minus HTTP with the same connection handling.
    for (what, https, http) in [
        ("TLS, connections kept alive", 1, 0),
        ("TLS with a resumed handshake per delivery", 3, 2),
        ("TLS with a full handshake per delivery", 4, 2),
    ] {
        if let (Some(https_cpu), Some(http_cpu)) = (cpu_us[https], cpu_us[http]) {
            report.row(
                s,
                &format!("{what}: help desk CPU added per delivery"),
                https_cpu - http_cpu,
                "µs",
                Target::None,
            );
        }
        report.row(
            s,
            &format!("{what}: p50 latency added"),
            p50_ms[https] - p50_ms[http],
            "ms",
            Target::None,
        );
    }
    report.details.insert("https_delivery".into(), Value::Object(detail));
    Ok(())
}

/// Scenario 7: the delivery scenario again, beside receivers that hold
/// every attempt as long as they can. The hostile jobs go first; the
/// healthy receiver's webhooks must not wait behind them.
async fn noisy_neighbours(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
    let Some(fast) = ctx.args.fast_helpdesk_url.clone() else {
        eprintln!("7 noisy neighbours: skipped (no --fast-helpdesk-url)");
        return Ok(());
    };
    let (hostile, healthy) = ctx.sizes.noisy;
    // The same batch alone first: what the neighbours are measured against.
    let alone = deliver_batch(ctx, &fast, healthy, "7 healthy alone").await?;
    let mut callbacks = Vec::new();
    for kind in [
        hostile::Kind::BlackHole,
        hostile::Kind::BlackHole,
        hostile::Kind::SlowLoris,
        hostile::Kind::SlowLoris,
    ] {
        callbacks.push(hostile::start(kind).await?);
    }
    let endpoint = format!("{fast}/document");
    let make: MakeCall = Arc::new(move |client: awc::Client, i: usize| -> Call {
        let (endpoint, callback) = (endpoint.clone(), callbacks[i % callbacks.len()].clone());
        let document_url = format!("https://bench.example/hostile/{i}.pdf");
        Box::pin(post_case(
            client,
            endpoint,
            callback,
            document_url,
            format!("hostile-{i}"),
        ))
    });
    let sent = drive(hostile, 20, 1, "7 hostile jobs", make).await?;
    let done = deliver_batch(ctx, &fast, healthy, "7 noisy neighbours").await?;
    let s = "7 noisy neighbours";
    report.row(
        s,
        &format!("healthy deliveries/s, the batch alone ({healthy})"),
        alone.per_second,
        "/s",
        Target::None,
    );
    report.row(
        s,
        "healthy request→receipt p99, the batch alone",
        ms(alone.latency.value_at_quantile(0.99)),
        "ms",
        Target::None,
    );
    report.row(
        s,
        &format!("healthy deliveries/s beside {} hostile jobs", sent.ok),
        done.per_second,
        "/s",
        Target::None,
    );
    report.row(
        s,
        "share of the same batch alone",
        done.per_second / alone.per_second,
        "",
        Target::None,
    );
    if let Some(clean) = ctx.clean_delivery_per_second {
        report.row(
            s,
            "share of the clean delivery rate (scenario 3)",
            done.per_second / clean,
            "",
            Target::AtLeast(0.8),
        );
    }
    report.latency_rows(s, "healthy request→receipt", &done.latency, Target::AtMost(250.0));
    report.row(
        s,
        "healthy not delivered",
        done.not_delivered(),
        "",
        Target::AtMost(0.0),
    );
    let mut detail = done.json();
    if let Value::Object(map) = &mut detail {
        map.insert("hostile_jobs".into(), json!(sent.ok));
        map.insert(
            "hostile_receivers".into(),
            json!("2 black holes and 2 slow lorises (200, Content-Length: 10, no body), jobs spread evenly"),
        );
        map.insert("clean_per_second".into(), json!(ctx.clean_delivery_per_second));
        map.insert("alone".into(), alone.json());
    }
    report.details.insert("noisy_neighbours".into(), detail);
    report
        .series
        .push(("7 noisy neighbours request→receipt".into(), done.latency));
    Ok(())
}

async fn end_to_end(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
    let n = ctx.sizes.e2e;
    let url_prefix = format!("https://bench.example/e2e/{}/", ctx.run);
    let make = review_call(&ctx.args.consumer_url, &url_prefix);
    let result = drive(
        n,
        ctx.args.concurrency,
        ctx.args.load_threads,
        "5 end-to-end (requests)",
        make,
    )
    .await?;
    let last_request_ms = unix_us() / 1000;
    let ids = ctx.pg.batch_document_ids(&url_prefix).await?;
    let last_due_ms = ctx
        .rd
        .due_at_ms(&ids)
        .await?
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(last_request_ms);
    let wait_ms = u64::try_from(last_due_ms - last_request_ms).unwrap_or(0) + 60_000;
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let (accepted, decided) = settle(&mut ctx.pg, &url_prefix, deadline, "5 end-to-end (decided)").await?;
    let last_decided_ms = ctx.pg.batch_last_decided_ms(&url_prefix).await?;
    let s = "5 end-to-end";
    report.row(
        s,
        &format!("reviews requested ({n}), errors"),
        result.errors as f64,
        "",
        Target::AtMost(0.0),
    );
    report.row(
        s,
        "last decided − last due",
        (last_decided_ms - last_due_ms) as f64,
        "ms",
        Target::AtMost(2000.0),
    );
    report.row(
        s,
        "last request → all decided",
        (last_decided_ms - last_request_ms) as f64,
        "ms",
        Target::None,
    );
    report.row(s, "lost", (accepted - decided) as f64, "", Target::AtMost(0.0));
    let mut detail = load_json(&result);
    if let Value::Object(map) = &mut detail {
        map.insert("accepted".into(), json!(accepted));
        map.insert("decided".into(), json!(decided));
        map.insert("last_request_unix_ms".into(), json!(last_request_ms));
        map.insert("last_due_unix_ms".into(), json!(last_due_ms));
        map.insert("last_decided_unix_ms".into(), json!(last_decided_ms));
    }
    report.details.insert("end_to_end".into(), detail);
    Ok(())
}

async fn precision(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
    let base = ctx.rd.used_memory().await?;
    let mut filled = 0_u64;
    let mut details = Vec::new();
    let outcome = async {
        for pending in ctx.sizes.pending.clone() {
            let bar = progress(pending - filled, &format!("4 filling {pending} pending"));
            ctx.rd.fill(&ctx.receiver_url, filled, pending, &bar).await?;
            bar.finish();
            filled = pending;
            let per_job = ctx.rd.used_memory().await?.saturating_sub(base) as f64 / pending as f64;
            let lateness = probe(ctx, pending).await?;
            let s = "4 schedule precision";
            let label = count_label(pending);
            let target = match pending {
                100_000 => Target::AtMost(20.0),
                1_000_000 => Target::AtMost(50.0),
                _ => Target::None,
            };
            report.latency_rows(s, &format!("lateness @{label} pending"), &lateness, target);
            report.row(
                s,
                &format!("Redis memory per pending job @{label}"),
                per_job,
                "bytes",
                Target::None,
            );
            details
                .push(json!({"pending": pending, "redis_bytes_per_job": per_job, "lateness": percentiles(&lateness)}));
            report.series.push((format!("4 lateness @{label} pending"), lateness));
        }
        Ok::<_, BoxError>(())
    }
    .await;
    let bar = progress(1, "4 removing the filler jobs");
    let callback = ctx.receiver_url.clone();
    ctx.rd.unfill(&callback, filled).await?;
    bar.finish();
    outcome?;
    report.details.insert(
        "schedule_precision".into(),
        json!({"probes_per_level": ctx.sizes.probes, "levels": details}),
    );
    Ok(())
}

fn count_label(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// Schedules the probes through the help desk (its configured delay) and
/// returns their lateness: receipt at our receiver minus the due time in Redis.
async fn probe(ctx: &mut Ctx, pending: u64) -> Result<Histogram<u64>, BoxError> {
    ctx.receipts.take();
    let (endpoint, callback) = (format!("{}/document", ctx.args.helpdesk_url), ctx.receiver_url.clone());
    // The help desk takes `id` as an idempotency key: one of its own per level
    // (the same id for another document is a 409).
    let run = ctx.run.clone();
    let make: MakeCall = Arc::new(move |client: awc::Client, i: usize| -> Call {
        let (endpoint, callback) = (endpoint.clone(), callback.clone());
        let document_url = format!("https://bench.example/probe/{pending}/{i}.pdf");
        Box::pin(post_case(
            client,
            endpoint,
            callback,
            document_url,
            format!("probe-{run}-{pending}-{i}"),
        ))
    });
    // A few at a time, so the probes measure the schedule, not a burst.
    let result = drive(ctx.sizes.probes, 4, 1, "4 scheduling probes", make).await?;
    if let Some(error) = &result.first_error {
        return Err(format!(
            "{} of {} probes were refused, e.g. {error}",
            result.errors, ctx.sizes.probes
        )
        .into());
    }
    let bar = progress(result.ok, "4 probes firing");
    let deadline = Instant::now() + Duration::from_secs(90);
    while (ctx.receipts.count() as u64) < result.ok && Instant::now() < deadline {
        bar.set_position(ctx.receipts.count() as u64);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    bar.finish();
    let receipts = ctx.receipts.take();
    let ids: Vec<String> = receipts.iter().map(|r| r.document_id.clone()).collect();
    let due = ctx.rd.due_at_ms(&ids).await?;
    let mut lateness = load::histogram()?;
    for (receipt, due) in receipts.iter().zip(due) {
        if let Some(due_ms) = due {
            lateness.saturating_record(u64::try_from(receipt.at_us - due_ms * 1000).unwrap_or(0).max(1));
        }
    }
    Ok(lateness)
}

fn machine() -> Value {
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

fn finish(ctx: &Ctx, report: Report, took: Duration) -> Result<(), BoxError> {
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
        "failures": report.failures,
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
    println!(
        "\n{mode} run in {:.0} s; wrote {} and {}",
        took.as_secs_f64(),
        json_path.display(),
        svg.display()
    );
    // A missed target is a finding; a scenario that could not run is a broken bench.
    match report.failures {
        0 => Ok(()),
        n => Err(format!("{n} scenario(s) or part(s) of one FAILED (the table says which)").into()),
    }
}
