//! Scenario 3, delivery: a zero-delay help desk firing webhooks at the
//! bench's own receiver; deliveries per second from request to receipt,
//! the latency of each, CPU per job. And the batch itself
//! ([`deliver_batch`]), which scenarios 7, 8 and 9 send again beside
//! hostile receivers, over HTTPS, and through other help desks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hookline_contract::{DocumentRequest, headers};
use hookline_testkit::Receiver;
use serde_json::{Value, json};

use super::Ctx;
use super::measure::drive;
use super::per_job::{Window, sample_finish, sample_size, sample_start};
use super::report::{Report, Target, load_json, percentiles};
use crate::cpu;
use crate::load::{self, Call, CallError, LoadResult, MakeCall};
use crate::{Args, BoxError, progress, unix_us};

pub(super) async fn delivery(ctx: &mut Ctx, report: &mut Report) -> Result<(), BoxError> {
    let Some(fast) = ctx.args.fast_helpdesk_url.clone() else {
        eprintln!("3 delivery: skipped (no --fast-helpdesk-url)");
        return Ok(());
    };
    let s = "3 delivery";
    let window = Window::open(ctx).await?;
    let done = deliver_batch(ctx, &fast, ctx.sizes.delivery, s).await?;
    let loaded = cpu::machine().unwrap_or((0, 0));
    report.row(
        s,
        "deliveries/s, request to receipt",
        done.per_second,
        "/s",
        Target::AtLeast(20_000.0),
    );
    report.latency_rows(s, "request→receipt", &done.latency, Target::None);
    report.row(s, "not delivered", done.not_delivered(), "", Target::AtMost(0.0));
    report.details.insert("delivery".into(), done.json());
    let mut figures = window
        .close(ctx, report, s, done.requests.ok, done.per_second, loaded)
        .await?;
    let sample = sample_start(ctx, s).await;
    let sampled = deliver_batch(
        ctx,
        &fast,
        sample_size(ctx.sizes.delivery),
        "3 delivery (script sample)",
    )
    .await;
    let jobs = sampled.as_ref().map_or(0, |d| d.requests.ok);
    figures.redis_calls_by_script = sample_finish(ctx, report, s, sample, jobs).await?;
    sampled?;
    report.figures.insert(s.to_owned(), figures);
    ctx.clean_delivery_per_second = Some(done.per_second);
    report.series.push(("3 delivery request→receipt".into(), done.latency));
    Ok(())
}

/// `POST {endpoint}` (a help desk's `/document`) asking it to call `callback`
/// back; the tag `202`, or what went wrong.
pub(super) async fn post_case(
    client: awc::Client,
    endpoint: String,
    callback: String,
    document_url: String,
    id: String,
) -> Result<String, CallError> {
    let request = DocumentRequest {
        document_url,
        id: Some(id),
    };
    let mut response = client
        .post(endpoint)
        .insert_header((headers::CALLBACK_URL, callback))
        .send_json(&request)
        .await?;
    let body = response.body().await?;
    match response.status().as_u16() {
        202 => Ok("202".to_owned()),
        status => Err(CallError::status(status, &body)),
    }
}

/// `n` reviews through the zero-delay help desk to our receiver, and when
/// each one's webhook arrived.
pub(super) struct Delivered {
    pub(super) requests: LoadResult,
    /// Jobs whose webhook arrived.
    pub(super) delivered: usize,
    pub(super) receipts_incl_repeats: usize,
    pub(super) seconds: f64,
    pub(super) per_second: f64,
    pub(super) latency: Histogram<u64>,
    /// When the last job's first receipt arrived (unix µs).
    pub(super) last_receipt_us: i64,
}

impl Delivered {
    pub(super) fn json(&self) -> Value {
        json!({
            "requests": load_json(&self.requests),
            "delivered": self.delivered,
            "receipts_incl_repeats": self.receipts_incl_repeats,
            "seconds_first_request_to_last_receipt": self.seconds,
            "per_second": self.per_second,
            "request_to_receipt": percentiles(&self.latency),
        })
    }

    pub(super) fn not_delivered(&self) -> f64 {
        self.requests.ok as f64 - self.delivered as f64
    }
}

/// `n` jobs through the zero-delay help desk at `fast` to the bench's receiver.
pub(super) async fn deliver_batch(ctx: &mut Ctx, fast: &str, n: usize, what: &str) -> Result<Delivered, BoxError> {
    deliver_batch_to(&ctx.run, &ctx.args, fast, &mut ctx.receiver, n, what).await
}

/// As [`deliver_batch`], to `receiver`; `run` and `args` as in the [`Ctx`].
pub(super) async fn deliver_batch_to(
    run: &str,
    args: &Args,
    fast: &str,
    receiver: &mut Receiver,
    n: usize,
    what: &str,
) -> Result<Delivered, BoxError> {
    receiver.take();
    let sent = send_batch(run, args, fast, receiver, n, what).await?;
    receipts(receiver, sent, what).await
}

/// A batch whose requests were answered: when each was sent, and the
/// `id` prefix its receipts echo.
pub(super) struct Sent {
    result: LoadResult,
    sent_us: Arc<Vec<AtomicI64>>,
    prefix: String,
}

/// `n` jobs posted to the help desk at `fast`, calling `receiver` back.
pub(super) async fn send_batch(
    run: &str,
    args: &Args,
    fast: &str,
    receiver: &Receiver,
    n: usize,
    what: &str,
) -> Result<Sent, BoxError> {
    let callback = receiver.url.clone();
    let sent_us: Arc<Vec<AtomicI64>> = Arc::new((0..n).map(|_| AtomicI64::new(0)).collect());
    let (endpoint, sent) = (format!("{fast}/document"), sent_us.clone());
    let tag = what.to_owned();
    // The help desk takes `id` as an idempotency key (the same id for another
    // document is a 409), so each batch numbers its jobs under a prefix of its own.
    static BATCHES: AtomicUsize = AtomicUsize::new(0);
    let prefix = format!("{run}.b{}.", BATCHES.fetch_add(1, Ordering::Relaxed));
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
        args.concurrency,
        args.load_threads,
        &format!("{what} (requests)"),
        make,
    )
    .await?;
    Ok(Sent {
        result,
        sent_us,
        prefix,
    })
}

/// Waits (at most 2 minutes) for every receipt of `sent`, and times them.
pub(super) async fn receipts(receiver: &mut Receiver, sent: Sent, what: &str) -> Result<Delivered, BoxError> {
    let Sent {
        result,
        sent_us,
        prefix,
    } = sent;
    let bar = progress(result.ok, &format!("{what} (receipts)"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while (receiver.received.len() as u64) < result.ok && Instant::now() < deadline {
        bar.set_position(receiver.received.len() as u64);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    bar.finish();
    let receipts = receiver.take();
    let mut first: HashMap<usize, i64> = HashMap::new();
    for r in &receipts {
        // The `id` of the original request, echoed back by the help desk.
        if let Some(i) = r.body["id"]
            .as_str()
            .and_then(|id| id.strip_prefix(prefix.as_str()))
            .and_then(|i| i.parse::<usize>().ok())
        {
            let at = first.entry(i).or_insert(r.at_unix_us);
            *at = (*at).min(r.at_unix_us);
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
        last_receipt_us: end,
    })
}
