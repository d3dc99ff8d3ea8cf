//! Builds the consumer from its settings: migrates the database, opens the
//! pool, binds the listener, starts the background tasks under their
//! [supervisor](crate::supervisor) and the HTTP server.

use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{HttpServer, web};
use hookline_contract::HttpUrl;
use hookline_kit::redact::redact_url;
use hookline_kit::shutdown;
use hookline_kit::tls::{self, PemFile, TlsConfigError};
use hookline_kit::trace::Tracer;
use tracing::{info, warn};

use crate::config::Settings;
use crate::db::{self, DbSetupError};
use crate::events::{ReviewEvents, StreamLimits};
use crate::helpdesk_client::HelpdeskClient;
use crate::inbox::{Inbox, WebhookPolicy, WebhookSlots};
use crate::metrics::ConsumerMetrics;
use crate::retention::{self, Retention};
use crate::reviews::Reviews;
use crate::routes;
use crate::subscription::{self, Callback, SubscriptionState};
use crate::supervisor::Supervisor;
use crate::writer::{self, Writer};
use crate::{reconcile, relay};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("database")]
    Database(#[from] DbSetupError),
    #[error("cannot read the stored subscription")]
    Subscription(#[from] subscription::SetupError),
    #[error("cannot listen")]
    Io(#[from] std::io::Error),
    #[error("cannot register the metrics")]
    Metrics(#[from] prometheus::Error),
    #[error("invalid TLS settings")]
    Tls(#[from] TlsConfigError),
    #[error("cannot start tracing")]
    Trace(#[from] hookline_kit::trace::export::ExporterError),
}

/// A consumer, built and listening, not yet awaited.
pub struct Application {
    port: u16,
    server: Server,
    events: ReviewEvents,
    /// The background tasks; dropped with the application, they stop.
    tasks: Supervisor,
    /// Spans, flushed when it stops.
    tracer: Tracer,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let policy = match (&settings.webhook_secret, settings.allow_unsigned_webhooks) {
            (Some(secrets), _) => WebhookPolicy::Verify(secrets.clone()),
            (None, true) => {
                warn!("ALLOW_UNSIGNED_WEBHOOKS=true: anyone who can reach /document/update can decide reviews");
                WebhookPolicy::AllowUnsigned
            }
            (None, false) => {
                return Err(StartupError::Config(
                    "set WEBHOOK_SECRET to the help desk's secret, or ALLOW_UNSIGNED_WEBHOOKS=true to accept unsigned webhooks"
                        .to_owned(),
                ));
            }
        };
        let database_url = settings
            .database_url
            .as_ref()
            .ok_or_else(|| StartupError::Config("DATABASE_URL is required".to_owned()))?
            .expose();
        let helpdesk_ca = settings.helpdesk_ca_file.as_deref().map(|path| PemFile {
            setting: "HELPDESK_CA_FILE",
            path,
        });
        let helpdesk_tls = tls::client_config(helpdesk_ca, None)?;
        let applied = db::run_migrations(database_url).await?;
        if !applied.is_empty() {
            info!(?applied, "migrations applied");
        }
        let pool = db::pool(database_url, settings.database_pool_size)?;
        let tracer = settings.trace.tracer("hookline-consumer")?;

        let listener = TcpListener::bind(settings.listen)?;
        let port = listener.local_addr()?.port();
        let public_url = settings
            .public_url
            .clone()
            .map_or_else(|| format!("http://127.0.0.1:{port}"), |url| url.to_string());
        let callback_url = HttpUrl::parse(&format!("{}/document/update", public_url.trim_end_matches('/')))
            .map_err(|e| StartupError::Config(format!("CONSUMER_PUBLIC_URL {e}")))?;
        let allowed_hosts = web::Data::new(
            settings
                .allowed_hosts
                .clone()
                .with(callback_url.url().host_str().unwrap_or_default()),
        );
        let api_keys = web::Data::new(settings.api_keys.clone());
        if api_keys.is_open() && !settings.listen.ip().is_loopback() {
            warn!(
                listen = %settings.listen,
                "CONSUMER_API_KEYS is not set: anyone who can reach this port can request reviews and read every one"
            );
        }
        info!(port, callback = %redact_url(callback_url.as_str()), helpdesk = %redact_url(settings.helpdesk_url.as_str()),
            api_keys = api_keys.count(), allowed_hosts = %allowed_hosts.as_ref(), "consumer started");

        let events = ReviewEvents::with_limits(StreamLimits {
            max_streams: settings.events_max_streams,
            max_age: settings.events_max_age,
        });
        let guards = settings.guards.build();
        let guards_on_connect = guards.on_connect();
        let metrics = ConsumerMetrics::new()?;
        let mut tasks = Supervisor::default();
        let helpdesk_client = || {
            HelpdeskClient::new(&settings.helpdesk_url, settings.helpdesk_timeout, helpdesk_tls.clone())
                .with_api_key(settings.helpdesk_api_key.as_ref())
        };
        // Inactive unless the set-up below succeeds: requests keep their callback.
        let subscription = if settings.helpdesk_subscribe {
            SubscriptionState::subscribing()
        } else {
            SubscriptionState::default()
        };
        let callback = Callback::new(callback_url, subscription.clone());
        if settings.helpdesk_subscribe {
            let events_url = HttpUrl::parse(&format!(
                "{}{}",
                public_url.trim_end_matches('/'),
                subscription::EVENTS_PATH
            ))
            .map_err(|e| StartupError::Config(format!("CONSUMER_PUBLIC_URL {e}")))?;
            subscription::load_stored(&pool, &events_url, &subscription).await?;
            info!(url = %redact_url(events_url.as_str()), "HELPDESK_SUBSCRIBE=true: setting up the subscription at the help desk");
            tasks.spawn_until_done(
                "subscription",
                subscription::run(
                    pool.clone(),
                    helpdesk_client(),
                    events_url,
                    subscription.clone(),
                    tasks.stop_signal(),
                ),
            );
        }
        let reconciler_helpdesk = reconcile::Helpdesk {
            client: helpdesk_client(),
            callback: callback.clone(),
        };
        tasks.spawn_until_stopped(
            "reconciler",
            reconcile::run(
                pool.clone(),
                reconciler_helpdesk,
                events.clone(),
                metrics.clone(),
                settings.reconcile_after,
                tasks.stop_signal(),
            ),
        );
        tasks.spawn_until_stopped(
            "relay",
            relay::run(
                database_url.to_owned(),
                pool.clone(),
                events.clone(),
                tasks.stop_signal(),
            ),
        );
        let retention = Retention {
            receipts: settings.receipt_retention,
            idempotency_keys: settings.idempotency_retention,
        };
        tasks.spawn_until_stopped(
            "retention",
            retention::run(pool.clone(), retention, metrics.clone(), tasks.stop_signal()),
        );

        let inbox = web::Data::new(Inbox::new(
            policy,
            subscription,
            pool.clone(),
            WebhookSlots::for_pool(settings.database_pool_size),
            events.clone(),
            metrics.clone(),
        ));
        let pool = web::Data::new(pool);
        let events_data = web::Data::new(events.clone());
        let task_health = web::Data::new(tasks.health());
        let http_metrics = web::Data::new(metrics.http().clone());
        let metrics = web::Data::new(metrics);
        let (helpdesk_url, timeout) = (settings.helpdesk_url.clone(), settings.helpdesk_timeout);
        let api_key = settings.helpdesk_api_key.clone();
        let write_batch = settings.write_batch;
        let tracer_data = web::Data::new(tracer.clone());
        // Batching, a few lanes gather the writes; one write a transaction
        // (WRITE_BATCH=1) runs as many at once as the webhooks' share of the
        // pool.
        let write_lanes = if write_batch == 1 {
            (settings.database_pool_size / 2).max(1)
        } else {
            writer::DEFAULT_LANES
        };
        let mut server = HttpServer::new(move || {
            // The batched writer and the help desk client are bound to this
            // worker's thread (crate::writer, awc), hence one per worker.
            let reviews = Reviews::new(
                pool.get_ref().clone(),
                Writer::new(pool.get_ref().clone(), write_lanes, usize::from(write_batch)),
                HelpdeskClient::new(&helpdesk_url, timeout, helpdesk_tls.clone())
                    .with_api_key(api_key.as_ref())
                    .with_tracer(tracer_data.get_ref().clone()),
                events_data.get_ref().clone(),
                callback.clone(),
            );
            hookline_kit::app::app(http_metrics.clone())
                .app_data(pool.clone())
                .app_data(inbox.clone())
                .app_data(metrics.clone())
                .app_data(events_data.clone())
                .app_data(task_health.clone())
                .app_data(api_keys.clone())
                .app_data(allowed_hosts.clone())
                .app_data(web::Data::new(reviews))
                .app_data(tracer_data.clone())
                .configure(|cfg| guards.configure(cfg))
                .configure(routes::configure)
        })
        .on_connect(guards_on_connect)
        .listen(listener)?
        .shutdown_timeout(shutdown::whole_seconds(settings.shutdown_grace));
        if let Some(workers) = settings.http_workers {
            server = server.workers(workers);
        }
        Ok(Self {
            port,
            server: server.run(),
            events,
            tasks,
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

    /// Serves until stopped (SIGINT/SIGTERM or [`ServerHandle::stop`]),
    /// watching the background tasks meanwhile. On a signal, actix stops the
    /// server and waits up to `SHUTDOWN_GRACE` for requests in progress; the
    /// dashboards' event streams, which would hold it that long, are ended
    /// at once. Then the background tasks are stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Self {
            server,
            events,
            mut tasks,
            tracer,
            ..
        } = self;
        let closer = actix_web::rt::spawn(async move {
            shutdown::signal().await;
            events.close();
        });
        let result = tokio::select! {
            result = server => result,
            never = tasks.watch() => match never {},
        };
        closer.abort();
        tasks.shutdown().await;
        tracer.shutdown().await;
        result
    }
}

impl hookline_kit::service::Service for Application {
    type Settings = Settings;
    type Error = StartupError;
    const NAME: &'static str = "consumer";
    const ABOUT: &'static str = "The client app: asks the Help Desk for document reviews and receives their webhooks";

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
