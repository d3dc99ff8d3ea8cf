//! Scenario 1, create-review: `POST /documents` at the bench's concurrency
//! until `sizes.create` reviews are in, then their decision webhooks landing;
//! throughput, latency, CPU and WAL flushes per review. Then its same-run
//! ceilings: pgbench doing only its database writes on the same server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline_contract::CreateReview;

use super::Ctx;
use super::measure::{cpu_row, cpu_use, db_window_end, db_window_start, drive, pgbench_ceiling, settle, share_row};
use super::report::{Report, Target, load_json};
use crate::BoxError;
use crate::ceiling;
use crate::cpu;
use crate::load::{Call, CallError, MakeCall};

pub(super) async fn create_review(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
    let (n, c) = (ctx.sizes.create, ctx.args.concurrency);
    let url_prefix = format!("https://bench.example/create/{}/", ctx.run);
    let db_before = db_window_start(ctx).await;
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
    ctx.create_per_second = Some(result.per_second());
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
    db_window_end(
        ctx,
        report,
        s,
        "consumer",
        "review (request and decision webhook)",
        u64::try_from(decided)?,
        db_before,
    )
    .await;
    Ok(())
}

/// Scenario 1's ceilings: its two writes one review per transaction (the
/// issue's yardstick: at least 0.7 of it), then [`ceiling::BATCH`] at once.
pub(super) async fn ceilings(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
    let s = "1 create-review";
    let one = pgbench_ceiling(
        ctx,
        report,
        s,
        "INSERT + UPDATE per review",
        "review",
        ceiling::create_review_script(),
        1,
        false,
    )
    .await?;
    share_row(
        report,
        s,
        ctx.create_per_second,
        one,
        "1 review per commit",
        Target::AtLeast(0.7),
    );
    let batched = pgbench_ceiling(
        ctx,
        report,
        s,
        &format!("{} reviews per INSERT and UPDATE", ceiling::BATCH),
        "review",
        ceiling::create_review_batched_script(),
        ceiling::BATCH,
        false,
    )
    .await?;
    share_row(
        report,
        s,
        ctx.create_per_second,
        batched,
        &format!("{} reviews per commit", ceiling::BATCH),
        Target::None,
    );
    Ok(())
}

/// `POST /documents` at the consumer, the `i`th call for `{url_prefix}{i}.pdf`.
pub(super) fn review_call(consumer_url: &str, url_prefix: &str) -> MakeCall {
    let (endpoint, url_prefix) = (format!("{consumer_url}/documents"), url_prefix.to_owned());
    Arc::new(move |client: awc::Client, i: usize| -> Call {
        let (endpoint, document_url) = (endpoint.clone(), format!("{url_prefix}{i}.pdf"));
        Box::pin(async move {
            let mut response = client.post(endpoint).send_json(&CreateReview { document_url }).await?;
            let body = response.body().await?;
            match response.status().as_u16() {
                201 => Ok("201".to_owned()),
                status => Err(CallError::status(status, &body)),
            }
        })
    })
}
