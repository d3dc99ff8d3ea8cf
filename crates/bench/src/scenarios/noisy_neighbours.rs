//! Scenario 7, noisy neighbours: the delivery scenario again, beside
//! receivers that hold every attempt as long as they can. The hostile jobs
//! go first; the healthy receiver's webhooks must not wait behind them.
//!
//! The hostile receivers are two black holes (they accept and never
//! answer) and two slow lorises (they answer `200` with `Content-Length: 10`
//! and never send the body); they stay up to the end of the run.

use std::sync::Arc;

use hookline_testkit::{Hostile, Hostility};
use serde_json::{Value, json};

use super::Ctx;
use super::delivery::{deliver_batch, post_case};
use super::measure::drive;
use super::report::{Report, Target, ms};
use crate::BoxError;
use crate::load::{Call, MakeCall};

pub(super) async fn noisy_neighbours(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
    let Some(fast) = ctx.args.fast_helpdesk_url.clone() else {
        eprintln!("7 noisy neighbours: skipped (no --fast-helpdesk-url)");
        return Ok(());
    };
    let (hostile, healthy) = ctx.sizes.noisy;
    // The same batch alone first: what the neighbours are measured against.
    let alone = deliver_batch(ctx, &fast, healthy, "7 healthy alone").await?;
    let mut callbacks = Vec::new();
    for hostility in [
        Hostility::BlackHole,
        Hostility::BlackHole,
        Hostility::HeadThenSilence,
        Hostility::HeadThenSilence,
    ] {
        let peer = Hostile::start(hostility).await?;
        callbacks.push(peer.url.clone());
        ctx.hostile.push(peer);
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
