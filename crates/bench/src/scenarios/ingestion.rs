//! Scenario 2, ingestion: signed webhooks straight at the consumer for
//! reviews seeded in PostgreSQL, 10% of them duplicates; throughput,
//! latency, CPU and WAL flushes per webhook, and a check that exactly the
//! rows meant to change did. Then its same-run ceiling: pgbench running
//! decide.sql alone.

use std::sync::Arc;

use hookline_contract::signature::SecretSet;
use hookline_contract::{DocumentStatus, DocumentWebhook, headers};
use serde_json::{Value, json};

use super::Ctx;
use super::measure::{cpu_row, cpu_use, db_window_end, db_window_start, drive, pgbench_ceiling, share_row};
use super::report::{Report, Target, load_json};
use crate::ceiling;
use crate::cpu;
use crate::load::{Call, CallError, MakeCall};
use crate::{BoxError, progress};

pub(super) async fn ingestion(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
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
            let (id, body) = order
                .get(k)
                .and_then(|i| bodies.get(*i))
                .ok_or(CallError::NothingToSend(k))?;
            let timestamp = chrono::Utc::now().timestamp();
            let signature = secrets.sign(id, timestamp, body);
            let mut response = client
                .post(endpoint)
                .insert_header(("content-type", "application/json"))
                .insert_header((headers::WEBHOOK_ID, id.as_str()))
                .insert_header((headers::WEBHOOK_TIMESTAMP, timestamp.to_string()))
                .insert_header((headers::WEBHOOK_SIGNATURE, signature))
                .send_body(body.clone())
                .await?;
            let answer = response.body().await?;
            if response.status().as_u16() != 200 {
                return Err(CallError::status(response.status().as_u16(), &answer));
            }
            let ack: Value = serde_json::from_slice(&answer)?;
            Ok(ack.get("outcome").and_then(Value::as_str).unwrap_or("?").to_owned())
        })
    });
    let db_before = db_window_start(ctx).await;
    let before = cpu_use(ctx).await;
    let result = drive(total, ctx.args.concurrency, ctx.args.load_threads, "2 ingestion", make).await?;
    let after = cpu_use(ctx).await;
    ctx.ingest_per_second = Some(result.per_second());
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
        Target::AtLeast(10_000.0),
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
    db_window_end(ctx, report, s, "consumer", "webhook", total as u64, db_before).await;
    Ok(())
}

/// Scenario 2's ceiling: decide.sql alone, one decision per transaction.
pub(super) async fn ceiling(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
    let s = "2 ingestion";
    let one = pgbench_ceiling(
        ctx,
        report,
        s,
        "decide.sql per decision",
        "decision",
        ceiling::ingestion_script(),
        1,
        true,
    )
    .await?;
    share_row(report, s, ctx.ingest_per_second, one, "decide.sql", Target::None);
    Ok(())
}
