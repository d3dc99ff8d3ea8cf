//! The owner of the consumer's background tasks (the subscription set-up,
//! the reconciler, the relay, retention).
//!
//! Each task is spawned into one [`JoinSet`] that the [`Supervisor`] holds,
//! with a name, and returns a typed error. The application watches the set
//! for as long as it serves ([`Supervisor::watch`]) and learns of every end:
//! - a task that returns its error, or panics, or (one meant to run until
//!   stopped) returns at all, has **died**: its whole cause chain (or panic
//!   message) is logged, and from then on `GET /readyz` answers 503 with a
//!   JSON body naming it ([`TaskHealth`]);
//! - a task meant to run until done (the subscription set-up) that returns
//!   `Ok` has simply finished.
//!
//! A dead task is **not restarted**. Every task already retries, with its
//! own growing pause, what waiting can fix: a database or a help desk that
//! is down, slow or refusing. What ends one is what waiting cannot fix: a
//! statement the database refuses for another reason than a lost connection
//! (a missing table or permission: the database is not what this build
//! expects), or a bug (a panic). Restarted in-process, the task would meet
//! the same fault again, and a loop of restarts would turn one clear failure
//! into a `/readyz` that flaps and a log of repeats. So the death is final
//! for this process: said once, with its cause, and kept visible at
//! `/readyz` until the consumer is fixed and restarted (the orchestrator's
//! health check sees it; the process keeps serving meanwhile).
//!
//! On shutdown ([`Supervisor::shutdown`]), after the HTTP server has
//! stopped, every task is told to stop and given a moment to finish; what
//! is still running then is aborted. Dropping the supervisor aborts them
//! all.

use std::any::Any;
use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hookline_kit::http::source_chain;
use tokio::sync::watch;
use tokio::task::{Id, JoinError, JoinSet};
use tracing::{debug, error, warn};

/// How long stopped tasks get to finish before they are aborted.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// A task's error, boxed with its whole source chain.
type TaskError = Box<dyn std::error::Error>;

/// Whether a task ending is its job done or its death.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifetime {
    /// It runs until told to stop: returning before that is a death.
    UntilStopped,
    /// It has a job to finish (`Ok` when done).
    UntilDone,
}

/// Owns the background tasks (see the module).
#[derive(Debug)]
pub struct Supervisor {
    tasks: JoinSet<Result<(), TaskError>>,
    names: HashMap<Id, (&'static str, Lifetime)>,
    stop: watch::Sender<bool>,
    health: TaskHealth,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            stop: watch::channel(false).0,
            health: TaskHealth::default(),
        }
    }
}

impl Supervisor {
    /// What a task watches to know it must stop: it turns `true` (or its
    /// sender goes, with the supervisor).
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// The deaths so far, for `/readyz`.
    pub fn health(&self) -> TaskHealth {
        self.health.clone()
    }

    /// Spawns `task`, which runs until [`stop_signal`](Self::stop_signal)
    /// says so. Must be called on the application's (actix) runtime.
    pub fn spawn_until_stopped<E>(&mut self, name: &'static str, task: impl Future<Output = Result<(), E>> + 'static)
    where
        E: std::error::Error + 'static,
    {
        self.spawn(name, Lifetime::UntilStopped, task);
    }

    /// Spawns `task`, which returns `Ok` once its job is done.
    pub fn spawn_until_done<E>(&mut self, name: &'static str, task: impl Future<Output = Result<(), E>> + 'static)
    where
        E: std::error::Error + 'static,
    {
        self.spawn(name, Lifetime::UntilDone, task);
    }

    fn spawn<E>(&mut self, name: &'static str, lifetime: Lifetime, task: impl Future<Output = Result<(), E>> + 'static)
    where
        E: std::error::Error + 'static,
    {
        // Local: the tasks hold awc clients, which stay on their thread.
        let handle = self
            .tasks
            .spawn_local(async move { task.await.map_err(|e| Box::new(e) as TaskError) });
        self.names.insert(handle.id(), (name, lifetime));
    }

    /// Learns of each task's end as it comes, for as long as it is polled
    /// (the application polls it beside the HTTP server).
    pub async fn watch(&mut self) -> Infallible {
        loop {
            if !self.reap().await {
                return std::future::pending().await;
            }
        }
    }

    /// Waits for the next task to end and takes note; `false` when none is
    /// left.
    async fn reap(&mut self) -> bool {
        match self.tasks.join_next_with_id().await {
            Some(ended) => {
                self.note(ended);
                true
            }
            None => false,
        }
    }

    /// Tells every task to stop, waits up to [`STOP_GRACE`] for them, then
    /// aborts the rest.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        let drained = tokio::time::timeout(STOP_GRACE, async { while self.reap().await {} }).await;
        if drained.is_err() {
            warn!(
                tasks = ?self.names.values().map(|(name, _)| *name).collect::<Vec<_>>(),
                "background tasks still running {STOP_GRACE:?} after being told to stop: aborted"
            );
            self.tasks.shutdown().await;
        }
    }

    fn note(&mut self, ended: Result<(Id, Result<(), TaskError>), JoinError>) {
        let id = match &ended {
            Ok((id, _)) => *id,
            Err(join_error) => join_error.id(),
        };
        let (task, lifetime) = self.names.remove(&id).unwrap_or(("unnamed", Lifetime::UntilStopped));
        let stopping = *self.stop.borrow();
        let how = match ended {
            Ok((_, Ok(()))) if stopping || lifetime == Lifetime::UntilDone => {
                debug!(task, "background task ended");
                return;
            }
            Ok((_, Ok(()))) => {
                error!(
                    task,
                    "a background task returned before it was stopped: /readyz answers 503 until the consumer is restarted"
                );
                How::Returned
            }
            Ok((_, Err(e))) => {
                error!(task, error = %source_chain(&*e),
                    "a background task failed: /readyz answers 503 until the consumer is restarted");
                How::Failed
            }
            Err(join_error) if join_error.is_panic() => {
                let payload = join_error.into_panic();
                error!(
                    task,
                    panic = panic_message(&*payload),
                    "a background task panicked: /readyz answers 503 until the consumer is restarted"
                );
                How::Panicked
            }
            Err(_) => {
                debug!(task, "background task aborted");
                return;
            }
        };
        if !stopping {
            self.health.died(Death { task, how });
        }
    }
}

/// The text of a panic, where it has one.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// How a task died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Failed,
    Panicked,
    Returned,
}

impl fmt::Display for How {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Failed => "failed",
            Self::Panicked => "panicked",
            Self::Returned => "returned before it was stopped",
        })
    }
}

/// One dead task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    pub task: &'static str,
    pub how: How,
}

/// The background tasks that died, as `/readyz` sees them; cheap to clone
/// (shared).
#[derive(Debug, Clone, Default)]
pub struct TaskHealth(Arc<Mutex<Vec<Death>>>);

impl TaskHealth {
    fn died(&self, death: Death) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(death);
    }

    /// `Err` naming every task that died, if one did.
    pub fn check(&self) -> Result<(), TasksDied> {
        let deaths = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if deaths.is_empty() {
            Ok(())
        } else {
            Err(TasksDied(deaths.clone()))
        }
    }
}

/// Background tasks died: the consumer is not ready, and will not be until
/// it is restarted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TasksDied(pub Vec<Death>);

impl fmt::Display for TasksDied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, death) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}the background task {} {}", death.task, death.how)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the round failed")]
    struct Round(#[source] std::io::Error);

    async fn until_stopped(mut stop: watch::Receiver<bool>) -> Result<(), Round> {
        let _ = stop.wait_for(|stopped| *stopped).await;
        Ok(())
    }

    #[actix_web::test]
    async fn a_task_that_fails_panics_or_returns_early_is_named_and_a_finished_job_is_not() {
        let mut supervisor = Supervisor::default();
        let health = supervisor.health();
        supervisor.spawn_until_done("job", async { Ok::<_, Round>(()) });
        supervisor.spawn_until_stopped("failing", async {
            Err::<(), _>(Round(std::io::Error::other("the table is gone")))
        });
        supervisor.spawn_until_stopped("panicking", async {
            panic!("a bug");
            #[allow(unreachable_code)]
            Ok::<_, Round>(())
        });
        supervisor.spawn_until_stopped("returning", async { Ok::<_, Round>(()) });
        supervisor.spawn_until_stopped("running", until_stopped(supervisor.stop_signal()));
        for _ in 0..4 {
            assert!(supervisor.reap().await);
        }
        let mut died = health.check().unwrap_err().0;
        died.sort_by_key(|death| death.task);
        assert_eq!(
            died,
            [
                Death {
                    task: "failing",
                    how: How::Failed
                },
                Death {
                    task: "panicking",
                    how: How::Panicked
                },
                Death {
                    task: "returning",
                    how: How::Returned
                },
            ]
        );
        supervisor.shutdown().await;
        assert_eq!(health.check().unwrap_err().0.len(), 3, "stopping is no death");
    }

    #[actix_web::test]
    async fn shutdown_stops_the_tasks_that_listen_and_aborts_the_others() {
        use std::cell::Cell;
        use std::rc::Rc;

        /// Sets its flag when dropped (with the task that holds it).
        struct Dropped(Rc<Cell<bool>>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }

        let mut supervisor = Supervisor::default();
        let health = supervisor.health();
        let (stopped, aborted) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
        let (flag, stop) = (stopped.clone(), supervisor.stop_signal());
        supervisor.spawn_until_stopped("listening", async move {
            until_stopped(stop).await?;
            flag.set(true);
            Ok::<_, Round>(())
        });
        let guard = Dropped(aborted.clone());
        supervisor.spawn_until_stopped("deaf", async move {
            let _guard = guard;
            std::future::pending::<Result<(), Round>>().await
        });
        supervisor.shutdown().await;
        assert!(stopped.get(), "the listening task ends by itself");
        assert!(aborted.get(), "the deaf one is aborted");
        assert!(health.check().is_ok(), "stopping is no death");
    }

    #[test]
    fn the_body_names_every_dead_task() {
        let died = TasksDied(vec![
            Death {
                task: "reconciler",
                how: How::Panicked,
            },
            Death {
                task: "retention",
                how: How::Failed,
            },
        ]);
        assert_eq!(
            died.to_string(),
            "the background task reconciler panicked; the background task retention failed"
        );
    }
}
