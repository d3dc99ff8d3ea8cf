//! Closed-loop load: `concurrency` tasks, spread over `threads` OS threads
//! (each its own actix runtime and awc client, since awc is thread-local),
//! take the next request number from a shared counter until `total` are
//! done. Every call's latency (microseconds) goes into an HdrHistogram.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;

use crate::BoxError;

/// What one call ended as: `Ok(tag)` counts under `tag`, `Err` as an error.
pub(crate) type Outcome = Result<String, CallError>;
pub(crate) type Call = Pin<Box<dyn Future<Output = Outcome>>>;
pub(crate) type MakeCall = Arc<dyn Fn(awc::Client, usize) -> Call + Send + Sync>;

/// Why one call failed (the first one's text goes into the results).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error(transparent)]
    Send(#[from] awc::error::SendRequestError),
    #[error(transparent)]
    Body(#[from] awc::error::PayloadError),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("call {0} has nothing to send")]
    NothingToSend(usize),
}

impl CallError {
    /// An answer with an unexpected `status`, and its body.
    pub(crate) fn status(status: u16, body: &[u8]) -> Self {
        Self::Status {
            status,
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }
}

/// Why a load run could not be driven to its end.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("cannot make a latency histogram")]
    Histogram(#[from] hdrhistogram::CreationError),
    #[error("a load task failed")]
    Task(#[from] actix_web::rt::task::JoinError),
    #[error("a load thread panicked")]
    ThreadPanicked,
}

/// The figures of one load run.
#[derive(Debug)]
pub(crate) struct LoadResult {
    pub(crate) latency_us: Histogram<u64>,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) tags: BTreeMap<String, u64>,
    pub(crate) first_error: Option<String>,
    pub(crate) elapsed: Duration,
}

impl LoadResult {
    pub(crate) fn per_second(&self) -> f64 {
        (self.ok + self.errors) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The longest latency a histogram holds: an hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;

pub(crate) fn histogram() -> Result<Histogram<u64>, BoxError> {
    Ok(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?)
}

/// The awc client of one load thread: a connection pool as large as its share of the load.
pub(crate) fn client(pool: usize) -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().limit(pool.max(1)))
        .timeout(Duration::from_secs(60))
        .finish()
}

struct Part {
    latency_us: Histogram<u64>,
    ok: u64,
    errors: u64,
    tags: BTreeMap<String, u64>,
    first_error: Option<String>,
}

/// Runs `total` calls of `make` at `concurrency`, blocking the calling thread.
pub(crate) fn drive(
    total: usize,
    concurrency: usize,
    threads: usize,
    progress: &ProgressBar,
    make: MakeCall,
) -> Result<LoadResult, BoxError> {
    let next = Arc::new(AtomicUsize::new(0));
    let threads = threads.clamp(1, concurrency.max(1));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let share = concurrency / threads + usize::from(t < concurrency % threads);
        let (next, make, progress) = (next.clone(), make.clone(), progress.clone());
        handles.push(std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(run_thread(total, share, next, make, progress))
        }));
    }
    let mut result = LoadResult {
        latency_us: histogram()?,
        ok: 0,
        errors: 0,
        tags: BTreeMap::new(),
        first_error: None,
        elapsed: Duration::ZERO,
    };
    for handle in handles {
        let parts = handle.join().map_err(|_| LoadError::ThreadPanicked)??;
        for part in parts {
            result.latency_us.add(&part.latency_us)?;
            result.ok += part.ok;
            result.errors += part.errors;
            for (tag, n) in part.tags {
                *result.tags.entry(tag).or_default() += n;
            }
            result.first_error = result.first_error.or(part.first_error);
        }
    }
    result.elapsed = started.elapsed();
    progress.finish();
    Ok(result)
}

async fn run_thread(
    total: usize,
    share: usize,
    next: Arc<AtomicUsize>,
    make: MakeCall,
    progress: ProgressBar,
) -> Result<Vec<Part>, LoadError> {
    let client = client(share);
    let mut tasks = Vec::with_capacity(share);
    for _ in 0..share {
        let (client, next, make, progress) = (client.clone(), next.clone(), make.clone(), progress.clone());
        tasks.push(actix_web::rt::spawn(async move {
            let mut part = Part {
                latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
                ok: 0,
                errors: 0,
                tags: BTreeMap::new(),
                first_error: None,
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                let outcome = make(client.clone(), i).await;
                let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
                part.latency_us.saturating_record(us);
                match outcome {
                    Ok(tag) => {
                        part.ok += 1;
                        *part.tags.entry(tag).or_default() += 1;
                    }
                    Err(e) => {
                        part.errors += 1;
                        part.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
                progress.inc(1);
            }
            Ok::<_, LoadError>(part)
        }));
    }
    let mut parts = Vec::with_capacity(share);
    for task in tasks {
        parts.push(task.await??);
    }
    Ok(parts)
}
