//! Scenario 3, second part, draining a backlog: the jobs are queued first,
//! held by a rate limit on the bench's endpoint (`PUT /endpoints/{e}` at
//! one delivery per 1,000 s: one goes out, the rest wait), then the limit
//! is lifted and the window covers only the deliveries: claim, HTTP
//! request, finish. Scenario 3's own figures mix that with the
//! `POST /document` that schedule them; these say what delivery alone
//! costs, per job and per process, and how fast a backlog empties.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::Ctx;
use super::delivery::{Delivered, receipts, send_batch};
use super::per_job::{Window, sample_finish, sample_size, sample_start};
use super::report::{Report, Target};
use crate::figures::Figures;
use crate::redis_stats::PerJob;
use crate::{BoxError, cpu, unix_us};

const S: &str = "3 drain a backlog";

/// A rate that holds every job but the first (the bucket starts with one token).
const HOLD_RATE: f64 = 0.001;

pub(super) async fn drain(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
    let Some(fast) = ctx.args.fast_helpdesk_url.clone() else {
        eprintln!("{S}: skipped (no --fast-helpdesk-url)");
        return Ok(());
    };
    let drained = drain_batch(ctx, report, &fast, ctx.sizes.delivery, None).await?;
    report.row(
        S,
        &format!("deliveries/s, limit lifted to last receipt ({} jobs)", drained.jobs),
        drained.per_second,
        "/s",
        Target::None,
    );
    report.row(S, "not delivered", drained.not_delivered, "", Target::AtMost(0.0));
    let mut figures = drained
        .figures
        .ok_or("the measured drain came back without its figures")?;
    let sampled = drain_batch(
        ctx,
        report,
        &fast,
        sample_size(ctx.sizes.delivery),
        Some("script sample"),
    )
    .await?;
    figures.redis_calls_by_script = sampled.by_script;
    report.figures.insert(S.to_owned(), figures);
    Ok(())
}

/// What one drain did.
struct Drained {
    /// Jobs delivered after the limit was lifted.
    jobs: u64,
    per_second: f64,
    not_delivered: f64,
    /// The window's figures (None for a sample, which opens none).
    figures: Option<Figures>,
    /// A sample's calls by script (empty for a window).
    by_script: BTreeMap<String, PerJob>,
}

/// `n` jobs queued behind the limit, then drained; measured in a [`Window`],
/// or, for a `sample`, with the slow log on (which would weigh on a
/// window's figures) from the limit lifted to the last finish.
async fn drain_batch(
    ctx: &mut Ctx,
    report: &mut Report,
    fast: &str,
    n: usize,
    sample: Option<&str>,
) -> Result<Drained, BoxError> {
    let endpoint = origin(&ctx.receiver.url);
    set_rate(fast, &endpoint, Some(HOLD_RATE)).await?;
    ctx.receiver.take();
    let what = sample.map_or_else(|| S.to_owned(), |s| format!("{S} ({s})"));
    let sent = send_batch(&ctx.run, &ctx.args, fast, &ctx.receiver, n, &what).await;
    let sent = match sent {
        Ok(sent) => sent,
        Err(e) => {
            set_rate(fast, &endpoint, None).await?;
            return Err(e);
        }
    };
    // The one job the bucket's first token lets out.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let early = ctx.receiver.received.len() as u64;
    let (window, slowlog) = match sample {
        None => (Some(Window::open(ctx).await?), None),
        Some(_) => (None, sample_start(ctx, S).await),
    };
    let lifted_us = unix_us();
    set_rate(fast, &endpoint, None).await?;
    let done = receipts(&mut ctx.receiver, sent, &what).await?;
    let loaded = cpu::machine().unwrap_or((0, 0));
    let jobs = (done.delivered as u64).saturating_sub(early);
    let per_second = jobs as f64 / ((done.last_receipt_us - lifted_us) as f64 / 1e6).max(1e-9);
    let figures = match window {
        Some(window) => Some(window.close(ctx, report, S, jobs, per_second, loaded).await?),
        None => None,
    };
    let by_script = match sample {
        Some(_) => sample_finish(ctx, report, S, slowlog, jobs).await?,
        None => BTreeMap::new(),
    };
    if sample.is_none() {
        report.details.insert(
            "drain".into(),
            json!({"jobs_held": n, "delivered_before_lifted": early, "drained": jobs, "per_second": per_second,
                   "delivery": Delivered::json(&done)}),
        );
    }
    Ok(Drained {
        jobs,
        per_second,
        not_delivered: done.not_delivered(),
        figures,
        by_script,
    })
}

/// `scheme://host:port` of a URL: the help desk's name for its endpoint.
fn origin(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => url[..after_scheme + i].to_owned(),
        None => url.to_owned(),
    }
}

/// `PUT /endpoints/{endpoint}` with `rate` (None: back to the default).
async fn set_rate(helpdesk: &str, endpoint: &str, rate: Option<f64>) -> Result<(), BoxError> {
    let encoded = endpoint.replace(':', "%3A").replace('/', "%2F");
    let mut response = awc::Client::default()
        .put(format!("{helpdesk}/endpoints/{encoded}"))
        .send_json(&json!({ "rate": rate }))
        .await
        .map_err(|e| format!("PUT /endpoints/{endpoint}: {e}"))?;
    if response.status().is_success() {
        return Ok(());
    }
    let body = response.body().await.unwrap_or_default();
    Err(format!(
        "PUT /endpoints/{endpoint} rate {rate:?}: {} {}",
        response.status(),
        String::from_utf8_lossy(&body)
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::origin;

    #[test]
    fn an_endpoint_is_the_urls_scheme_host_and_port() {
        assert_eq!(origin("http://127.0.0.1:4321/hook"), "http://127.0.0.1:4321");
        assert_eq!(origin("http://127.0.0.1:4321"), "http://127.0.0.1:4321");
    }
}
