//! Scenario 5, end to end: reviews at the consumer, through the help desk
//! at its default 2–5 s delay, until every one is decided; how long after
//! its due time the last decision landed, and that none was lost.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Ctx;
use super::create_review::review_call;
use super::measure::{drive, settle};
use super::report::{Report, Target, load_json};
use crate::{BoxError, unix_us};

pub(super) async fn end_to_end(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
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
