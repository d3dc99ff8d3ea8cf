//! Scenario 4, schedule precision: how late probe jobs fire with 1k, 100k
//! and 1M others pending in Redis (filler jobs for the bench's receiver,
//! due far ahead and removed afterwards), measured from each job's due
//! time in Redis to its receipt at the bench's receiver; and Redis memory
//! per pending job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;

use super::Ctx;
use super::delivery::post_case;
use super::measure::drive;
use super::report::{Report, Target, percentiles};
use crate::load::{self, Call, MakeCall};
use crate::{BoxError, progress};

/// Probes the help desk refused: the scenario measures nothing.
#[derive(Debug, thiserror::Error)]
#[error("{refused} of {sent} probes were refused, e.g. {first}")]
struct ProbesRefused {
    refused: u64,
    sent: usize,
    first: String,
}

pub(super) async fn precision(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
    let base = ctx.rd.used_memory().await?;
    let mut filled = 0_u64;
    let mut details = Vec::new();
    let outcome = async {
        for pending in ctx.sizes.pending.clone() {
            let bar = progress(pending - filled, &format!("4 filling {pending} pending"));
            ctx.rd.fill(&ctx.receiver.url, filled, pending, &bar).await?;
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
    let callback = ctx.receiver.url.clone();
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
    ctx.receiver.take();
    let (endpoint, callback) = (format!("{}/document", ctx.args.helpdesk_url), ctx.receiver.url.clone());
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
        return Err(ProbesRefused {
            refused: result.errors,
            sent: ctx.sizes.probes,
            first: error.clone(),
        }
        .into());
    }
    let bar = progress(result.ok, "4 probes firing");
    let deadline = Instant::now() + Duration::from_secs(90);
    while (ctx.receiver.received.len() as u64) < result.ok && Instant::now() < deadline {
        bar.set_position(ctx.receiver.received.len() as u64);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    bar.finish();
    let receipts: Vec<(String, i64)> = ctx
        .receiver
        .take()
        .into_iter()
        .filter_map(|r| Some((r.body["documentId"].as_str()?.to_owned(), r.at_unix_us)))
        .collect();
    let ids: Vec<String> = receipts.iter().map(|(id, _)| id.clone()).collect();
    let due = ctx.rd.due_at_ms(&ids).await?;
    let mut lateness = load::histogram()?;
    for ((_, at_us), due) in receipts.iter().zip(due) {
        if let Some(due_ms) = due {
            lateness.saturating_record(u64::try_from(at_us - due_ms * 1000).unwrap_or(0).max(1));
        }
    }
    Ok(lateness)
}
