//! Group commit: the writes of `POST /documents` that arrive together share
//! one statement and one commit.
//!
//! Each review costs two writes on this path: its row before the help desk
//! is asked (so a webhook that overtakes the answer finds it), and the
//! help desk's ids once it answers. Done one by one, each is its own
//! statement, commit and WAL flush, and that overhead, not the rows, is
//! what PostgreSQL spends its time on under load.
//!
//! A [`Writer`] takes each write from its request and gives back the
//! outcome once it is **committed**: the request answers `201` only for what
//! is durably stored. Writes queue while every lane (a connection's worth of
//! work) is busy and go together when one frees: at most [`MAX_BATCH`] rows
//! in one multi-row statement and one commit. Nothing waits on a timer: a
//! lone write goes at once, so a quiet consumer answers without delay, and
//! a busy one gathers as many writes as arrived during the previous batch's
//! round trip.
//!
//! Guarantees:
//! - a batch that fails is tried again write by write, so one bad write
//!   fails alone, with its own error;
//! - the attach updates rows in the order of their ids, so two batches (or a
//!   batch and the reconciler) never wait on each other in a cycle; each
//!   review is attached once, so batches do not even meet;
//! - decisions are not batched: each is one statement with its receipt
//!   ([`db::apply_decision`]) on a connection of its own. In one transaction
//!   they would run one after another on one connection, while concurrent
//!   commits already share WAL flushes: the statement, not its commit, is
//!   the cost;
//! - a batch that takes longer than [`BATCH_DEADLINE`] is given up and its
//!   writes answered `503` (the database is gone or stuck), like a request
//!   that waited that long for a connection.
//!
//! Each kind of write has a loop, on the worker's thread, that gathers the
//! writes and spawns their batches into a `JoinSet` it owns: a batch that
//! panics is logged, and its writes are answered `503`.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use hookline_kit::http::source_chain;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tracing::{error, warn};
use uuid::Uuid;

use crate::db::{self, Pool, PoolError, ReviewRow};

/// The most writes in one statement, by default (`WRITE_BATCH`).
pub const MAX_BATCH: usize = 256;

/// How long a batch may take before its writes are answered `503`.
pub const BATCH_DEADLINE: Duration = Duration::from_secs(10);

/// How many batches of one kind are in flight at once, by default.
pub const DEFAULT_LANES: usize = 2;

/// A new review's row, written before the help desk is asked.
#[derive(Debug, Clone)]
pub struct NewRow {
    pub id: Uuid,
    pub document_url: String,
}

/// The help desk's ids for a review.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub id: Uuid,
    pub agent_id: String,
    pub document_id: String,
}

/// What a batch failed with, for each of its writes (shared by all of
/// them, hence the `Arc`s).
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// No connection, a lost one, or a batch past [`BATCH_DEADLINE`]: a
    /// retry later may succeed.
    #[error("the database is unavailable")]
    Unavailable(#[source] Unavailable),
    /// The statement failed for this write.
    #[error("the write failed")]
    Failed(#[source] Arc<diesel::result::Error>),
    /// The attach found no such review.
    #[error("no such review")]
    NotFound,
}

/// Why the database could not take a write.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    #[error("no database connection")]
    Pool(#[source] Arc<PoolError>),
    #[error("the connection was lost")]
    ConnectionLost(#[source] Arc<diesel::result::Error>),
    #[error("the batch took longer than {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    #[error("the writer has stopped")]
    Stopped,
}

impl WriteError {
    fn pool(error: PoolError) -> Self {
        Self::Unavailable(Unavailable::Pool(Arc::new(error)))
    }
}

type Reply<R> = oneshot::Sender<Result<R, WriteError>>;

/// One kind of write, batched (see the module).
struct Lane<T, R> {
    queue: mpsc::UnboundedSender<(T, Reply<R>)>,
    /// The loop that gathers writes: it ends once the writer (the queue's
    /// sender) is gone and its batches have answered; a write that finds it
    /// gone is answered unavailable.
    _gatherer: JoinHandle<()>,
}

impl<T: 'static, R: 'static> Lane<T, R> {
    /// Starts the loop that gathers writes and runs `run` on each batch,
    /// at most `lanes` batches at once. `run` answers every write, in order.
    fn start<F, Fut>(lanes: usize, most: usize, run: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + 'static,
        Fut: Future<Output = Vec<Result<R, WriteError>>> + 'static,
    {
        let (queue, mut waiting) = mpsc::unbounded_channel::<(T, Reply<R>)>();
        let run = Rc::new(run);
        let lanes = Arc::new(Semaphore::new(lanes.max(1)));
        let gatherer = actix_web::rt::spawn(async move {
            // The batches in flight, owned here: one that panics is logged
            // (its writes are answered unavailable, their replies dropped).
            let mut batches = JoinSet::new();
            loop {
                let first = tokio::select! {
                    next = waiting.recv() => match next {
                        Some(first) => first,
                        None => break,
                    },
                    Some(ended) = batches.join_next() => {
                        batch_ended(ended);
                        continue;
                    }
                };
                let Ok(lane) = lanes.clone().acquire_owned().await else {
                    break;
                };
                // Whatever queued while every lane was busy goes together.
                let mut batch = vec![first];
                while batch.len() < most
                    && let Ok(next) = waiting.try_recv()
                {
                    batch.push(next);
                }
                let run = run.clone();
                batches.spawn_local(async move {
                    let (items, replies): (Vec<T>, Vec<Reply<R>>) = batch.into_iter().unzip();
                    let count = items.len();
                    let results = match tokio::time::timeout(BATCH_DEADLINE, run(items)).await {
                        Ok(results) => results,
                        Err(_) => {
                            warn!(
                                writes = count,
                                "a batch of writes took longer than {BATCH_DEADLINE:?}: answered 503"
                            );
                            (0..count)
                                .map(|_| Err(WriteError::Unavailable(Unavailable::TimedOut(BATCH_DEADLINE))))
                                .collect()
                        }
                    };
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result); // the request may have gone
                    }
                    drop(lane);
                });
            }
            while let Some(ended) = batches.join_next().await {
                batch_ended(ended);
            }
        });
        Self {
            queue,
            _gatherer: gatherer,
        }
    }

    async fn write(&self, item: T) -> Result<R, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((item, reply))
            .map_err(|_| WriteError::Unavailable(Unavailable::Stopped))?;
        answer
            .await
            .unwrap_or(Err(WriteError::Unavailable(Unavailable::Stopped)))
    }
}

/// Logs a batch that panicked (a bug): its writes were answered unavailable.
fn batch_ended(ended: Result<(), JoinError>) {
    if let Err(e) = ended
        && e.is_panic()
    {
        let payload = e.into_panic();
        error!(
            panic = crate::supervisor::panic_message(&*payload),
            "a batch of writes panicked: its writes were answered 503"
        );
    }
}

struct Lanes {
    inserts: Lane<NewRow, ()>,
    attaches: Lane<Ticket, ReviewRow>,
}

/// The batched writes of `POST /documents`, one per HTTP worker thread:
/// its loops start on that thread's runtime at the first write.
pub struct Writer {
    pool: Pool,
    lanes: usize,
    most: usize,
    started: std::cell::OnceCell<Lanes>,
}

impl Writer {
    /// A writer of at most `most` writes a statement, `lanes` statements
    /// of each kind at once.
    pub fn new(pool: Pool, lanes: usize, most: usize) -> Self {
        Self {
            pool,
            lanes,
            most: most.max(1),
            started: std::cell::OnceCell::new(),
        }
    }

    /// The pool it writes through (for what is not batched: decisions).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    fn lanes(&self) -> &Lanes {
        self.started.get_or_init(|| {
            let (inserts, attaches) = (self.pool.clone(), self.pool.clone());
            Lanes {
                inserts: Lane::start(self.lanes, self.most, move |rows| insert_batch(inserts.clone(), rows)),
                attaches: Lane::start(self.lanes, self.most, move |tickets| {
                    attach_batch(attaches.clone(), tickets)
                }),
            }
        })
    }

    /// Records a review before the help desk is asked (committed on return).
    pub async fn insert(&self, row: NewRow) -> Result<(), WriteError> {
        self.lanes().inserts.write(row).await
    }

    /// Stores the help desk's answer (committed on return); a webhook that
    /// came first may have filled the ids already, which stand.
    pub async fn attach(&self, ticket: Ticket) -> Result<ReviewRow, WriteError> {
        self.lanes().attaches.write(ticket).await
    }
}

/// What a failed statement means for a write.
fn classify(e: diesel::result::Error) -> WriteError {
    if crate::db::connection_lost(&e) {
        WriteError::Unavailable(Unavailable::ConnectionLost(Arc::new(e)))
    } else if matches!(e, diesel::result::Error::NotFound) {
        WriteError::NotFound
    } else {
        WriteError::Failed(Arc::new(e))
    }
}

async fn insert_batch(pool: Pool, rows: Vec<NewRow>) -> Vec<Result<(), WriteError>> {
    let mut conn = match pool.get().await {
        Ok(conn) => conn,
        Err(e) => return vec![Err(WriteError::pool(e)); rows.len()],
    };
    let all: Vec<(Uuid, &str)> = rows.iter().map(|row| (row.id, row.document_url.as_str())).collect();
    match db::insert_requested_many(&mut conn, &all).await {
        Ok(()) => vec![Ok(()); rows.len()],
        Err(e) if rows.len() == 1 => vec![Err(classify(e))],
        Err(e) => {
            warn!(error = %source_chain(&e), writes = rows.len(), "a batch of new reviews failed: writing them one by one");
            let mut results = Vec::with_capacity(rows.len());
            for one in &all {
                results.push(
                    db::insert_requested_many(&mut conn, std::slice::from_ref(one))
                        .await
                        .map_err(classify),
                );
            }
            results
        }
    }
}

async fn attach_batch(pool: Pool, tickets: Vec<Ticket>) -> Vec<Result<ReviewRow, WriteError>> {
    let mut conn = match pool.get().await {
        Ok(conn) => conn,
        Err(e) => return vec![Err(WriteError::pool(e)); tickets.len()],
    };
    let all: Vec<(Uuid, &str, &str)> = tickets
        .iter()
        .map(|t| (t.id, t.agent_id.as_str(), t.document_id.as_str()))
        .collect();
    let rows = match db::attach_tickets(&mut conn, &all).await {
        Ok(rows) => rows,
        Err(e) if tickets.len() == 1 => return vec![Err(classify(e))],
        Err(e) => {
            warn!(error = %source_chain(&e), writes = tickets.len(), "a batch of tickets failed: writing them one by one");
            let mut results = Vec::with_capacity(tickets.len());
            for one in &all {
                results.push(match db::attach_tickets(&mut conn, std::slice::from_ref(one)).await {
                    Ok(mut rows) => rows.pop().ok_or(WriteError::NotFound),
                    Err(e) => Err(classify(e)),
                });
            }
            return results;
        }
    };
    let mut by_id: std::collections::HashMap<Uuid, ReviewRow> = rows.into_iter().map(|row| (row.id, row)).collect();
    tickets
        .iter()
        .map(|t| by_id.remove(&t.id).ok_or(WriteError::NotFound))
        .collect()
}
