//! Builds the help desk from its settings: connects to Redis, binds the
//! listener, starts the HTTP server and, per `HELPDESK_ROLE`, the delivery
//! worker on a thread of its own.

use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{HttpServer, web};
use hookline_kit::shutdown;
use hookline_kit::tls::TlsConfigError;
use hookline_kit::trace::Tracer;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::Settings;
use crate::delivery::Deliverer;
use crate::metrics::HelpdeskMetrics;
use crate::retention;
use crate::routes::{self, document::Scheduling, webhooks::SubscriptionSettings};
use crate::signing::MissingSecret;
use crate::store::{Store, StoreError};
use crate::worker::{self, Wakeup, WorkerSettings};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot reach Redis")]
    Redis(#[from] StoreError),
    #[error("cannot listen")]
    Io(#[from] std::io::Error),
    #[error("cannot register the metrics")]
    Metrics(#[from] prometheus::Error),
    #[error("invalid TLS settings")]
    Tls(#[from] TlsConfigError),
    #[error("invalid configuration: {0}")]
    Signing(#[from] MissingSecret),
    #[error("cannot start tracing")]
    Trace(#[from] hookline_kit::trace::export::ExporterError),
}

/// The longest a new case waits for `REDIS_MIN_REPLICAS` replicas.
const REPLICA_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A help desk, built and listening, not yet awaited.
pub struct Application {
    port: u16,
    server: Server,
    worker: Option<WorkerHandle>,
    /// Spans, flushed when it stops.
    tracer: Tracer,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        if settings.role.runs_worker() && settings.job_lease <= settings.delivery_timeout {
            return Err(StartupError::Config(
                "JOB_LEASE must be longer than DELIVERY_TIMEOUT, or live deliveries would be taken over".to_owned(),
            ));
        }
        let callback_tls = settings.callback_tls()?;
        let signing = settings.callback_signing()?;
        let store = Store::connect_partitioned(
            settings.redis_url.expose(),
            &settings.redis_prefix,
            usize::from(settings.redis_partitions),
            settings.endpoint_limits(),
        )
        .await
        .map_err(|e| match e {
            StoreError::Layout { .. } | StoreError::OldLayout { .. } => StartupError::Config(e.to_string()),
            other => other.into(),
        })?
        .with_retention(settings.case_retention)
        .with_disable_policy(settings.disable_policy())
        .with_min_replicas(settings.redis_min_replicas, REPLICA_WAIT);
        store.ping().await?;

        let tracer = settings.trace.tracer("hookline-helpdesk")?;
        let wakeup = Arc::new(Wakeup::default());
        let metrics = HelpdeskMetrics::new()?;
        let metrics_data = web::Data::new(metrics.clone());
        let http_metrics = web::Data::new(metrics.http().clone());
        let policy = Arc::new(settings.callback_policy());
        let listener = TcpListener::bind(settings.listen)?;
        let port = listener.local_addr()?.port();
        let role = settings.role;
        let queue_data = web::Data::new(store.clone());
        let policy_data = web::Data::from(policy.clone());
        let api_keys = web::Data::new(settings.api_keys.clone());
        if settings.role.serves_api() && api_keys.is_open() && !settings.listen.ip().is_loopback() {
            warn!(
                listen = %settings.listen,
                "HELPDESK_API_KEYS is not set: anyone who can reach this port can create cases, redeliver them and read every callback URL"
            );
        }
        let scheduling = web::Data::new(Scheduling {
            delay: settings.review_delay_ms,
            accept_ratio: settings.accept_ratio,
            wakeup: wakeup.clone(),
            chaos: settings.chaos.clone(),
            tracer: tracer.clone(),
        });
        let subscription_settings = web::Data::new(SubscriptionSettings {
            overlap: settings.secret_overlap,
            wakeup: wakeup.clone(),
        });
        let guards = settings.guards.build();
        let guards_on_connect = guards.on_connect();
        let mut server = HttpServer::new(move || {
            hookline_kit::app::app(http_metrics.clone())
                .configure(|cfg| guards.configure(cfg))
                .app_data(queue_data.clone())
                .app_data(scheduling.clone())
                .app_data(subscription_settings.clone())
                .app_data(policy_data.clone())
                .app_data(metrics_data.clone())
                .app_data(api_keys.clone())
                .configure(|cfg| routes::configure(cfg, role))
        })
        .on_connect(guards_on_connect)
        .listen(listener)?
        .shutdown_timeout(shutdown::whole_seconds(settings.shutdown_grace));
        if let Some(workers) = settings.http_workers {
            server = server.workers(workers);
        }
        let server = server.run();
        let worker = if role.runs_worker() {
            let (signing, policy, timeout) = (signing.clone(), policy.clone(), settings.delivery_timeout);
            let concurrency = settings.worker_concurrency;
            let deliverer = move || Deliverer::new(signing, timeout, concurrency, policy, callback_tls);
            Some(WorkerHandle::spawn(
                store,
                &settings,
                wakeup,
                deliverer,
                metrics,
                tracer.clone(),
            )?)
        } else {
            None
        };
        info!(port, ?role, delay = %settings.review_delay_ms, callback_policy = %policy, api_keys = settings.api_keys.count(), tenant_secrets = ?signing.tenants(), "help desk started");
        if !settings.chaos.is_none() {
            warn!(chaos = %settings.chaos, "CHAOS is on: faults are sent besides every delivery's first attempt (forgeries, duplicates, ...), to test receivers");
        }
        Ok(Self {
            port,
            server,
            worker,
            tracer,
        })
    }

    /// The port it listens on (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the HTTP server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server stops (SIGINT/SIGTERM or [`ServerHandle::stop`]),
    /// then stops the worker, letting in-flight deliveries finish. On a signal
    /// the worker starts draining at once, beside the server, so the whole
    /// stop fits in one `SHUTDOWN_GRACE`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let early_stop = self.worker.as_ref().map(|worker| {
            let stop = worker.stop.clone();
            actix_web::rt::spawn(async move {
                shutdown::signal().await;
                stop.send_replace(true);
            })
        });
        let result = self.server.await;
        if let Some(task) = early_stop {
            task.abort();
        }
        if let Some(worker) = self.worker {
            worker.shutdown().await;
        }
        self.tracer.shutdown().await;
        result
    }
}

/// The delivery worker's thread. Dropping it tells the worker to stop.
struct WorkerHandle {
    stop: Arc<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// `deliverer` makes the worker's [`Deliverer`] on its own thread.
    fn spawn(
        store: Store,
        settings: &Settings,
        wakeup: Arc<Wakeup>,
        deliverer: impl FnOnce() -> Deliverer + Send + 'static,
        metrics: HelpdeskMetrics,
        tracer: Tracer,
    ) -> std::io::Result<Self> {
        let (stop, stop_rx) = watch::channel(false);
        let worker_settings = WorkerSettings {
            lease: settings.job_lease,
            concurrency: settings.worker_concurrency,
            accept_ratio: settings.accept_ratio,
            retry_schedule: settings.retry_schedule.clone(),
            retry_after_max: settings.retry_after_max,
            drain_limit: settings.shutdown_grace,
            chaos: settings.chaos.clone(),
            tracer,
        };
        // awc clients are thread-local, so the worker gets an actix runtime
        // of its own instead of borrowing an HTTP worker's.
        let thread = std::thread::Builder::new()
            .name("delivery-worker".to_owned())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let deliverer = deliverer();
                    let trimmer = retention::run(store.clone(), metrics.clone(), stop_rx.clone());
                    let worker = worker::run(store, deliverer, worker_settings, wakeup, metrics, stop_rx);
                    tokio::join!(worker, trimmer);
                });
            })?;
        Ok(Self {
            stop: Arc::new(stop),
            thread: Some(thread),
        })
    }

    async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take()
            && let Ok(Err(_)) | Err(_) = tokio::task::spawn_blocking(move || thread.join()).await
        {
            error!("the delivery worker panicked");
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl hookline_kit::service::Service for Application {
    type Settings = Settings;
    type Error = StartupError;
    const NAME: &'static str = "helpdesk";
    const ABOUT: &'static str = "A fake third-party Help Desk that reviews documents and answers by webhook";

    fn listen(settings: &Settings) -> std::net::SocketAddr {
        settings.listen
    }

    fn log_format(settings: &Settings) -> hookline_kit::config::LogFormat {
        settings.log_format
    }

    async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build(settings).await
    }

    async fn run_until_stopped(self) -> std::io::Result<()> {
        Self::run_until_stopped(self).await
    }
}
