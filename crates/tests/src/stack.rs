//! Our two services in-process on port 0, with their real
//! `Application::build`, alone or wired together ([`Stack`]).

use std::time::Duration;

use actix_web::dev::ServerHandle;
use hookline_kit::config::{LogFormat, Secret};

use crate::db::TestDb;
use crate::http::{get_json, post_review, wait_for, wait_for_delivery};
use crate::redis::TestRedis;
use crate::secret_set;

/// Help desk settings for tests: port 0, no delay, fast retries, signed.
pub fn helpdesk_settings(redis: &TestRedis) -> helpdesk::Settings {
    helpdesk::Settings {
        redis_url: Secret::new(redis.url.clone()),
        listen: "127.0.0.1:0".parse().unwrap(),
        review_delay_ms: "0".parse().unwrap(),
        accept_ratio: 0.5,
        webhook_secret: Some(secret_set()),
        tenant_secrets: Default::default(),
        api_keys: Default::default(),
        redis_prefix: redis.prefix.clone(),
        retry_schedule: "50ms,100ms,200ms".parse().unwrap(),
        delivery_timeout: Duration::from_secs(2),
        job_lease: Duration::from_secs(5),
        case_retention: helpdesk::store::DEFAULT_RETENTION,
        secret_overlap: std::time::Duration::from_secs(24 * 3600),
        chaos: Default::default(),
        redis_min_replicas: 0,
        redis_partitions: 1,
        role: helpdesk::config::Role::All,
        worker_concurrency: 64,
        endpoint_concurrency: 256,
        endpoint_concurrency_start: 16,
        endpoint_rate: None,
        circuit_failures: 10,
        circuit_cooldown: Duration::from_secs(30),
        disable_after: Duration::from_secs(5 * 24 * 3600),
        disable_after_dead: 10,
        shutdown_grace: Duration::from_secs(3),
        http_workers: Some(1),
        callback_preset: Default::default(),
        callback_allow: Vec::new(),
        callback_deny: Vec::new(),
        callback_ca_file: None,
        callback_client_cert: None,
        callback_client_key: None,
        retry_after_max: Duration::from_secs(300),
        log_format: LogFormat::Pretty,
        guards: Default::default(),
        trace: Default::default(),
    }
}

/// Consumer settings for tests: port 0, verifying the test secret.
pub fn consumer_settings(db: &TestDb, helpdesk_url: &str) -> consumer::Settings {
    consumer::Settings {
        database_url: Some(Secret::new(db.url.clone())),
        listen: "127.0.0.1:0".parse().unwrap(),
        helpdesk_url: helpdesk_url.parse().unwrap(),
        helpdesk_api_key: None,
        helpdesk_ca_file: None,
        public_url: None,
        api_keys: Default::default(),
        allowed_hosts: hookline_kit::host::AllowedHosts::loopback(),
        helpdesk_subscribe: false,
        webhook_secret: Some(secret_set()),
        allow_unsigned_webhooks: false,
        database_pool_size: 8,
        write_batch: 256,
        helpdesk_timeout: Duration::from_secs(5),
        reconcile_after: Duration::from_secs(600),
        receipt_retention: Duration::from_secs(30 * 24 * 3600),
        idempotency_retention: Duration::from_secs(24 * 3600),
        shutdown_grace: Duration::from_secs(3),
        http_workers: Some(1),
        log_format: LogFormat::Pretty,
        guards: Default::default(),
        trace: Default::default(),
        events_max_streams: 256,
        events_max_age: Duration::from_secs(600),
    }
}

/// A service running in-process; stopped when dropped.
pub struct Running {
    pub url: String,
    handle: ServerHandle,
}

impl Running {
    /// A server of the test's own on `port`, stopped with `handle` when dropped.
    pub fn new(port: u16, handle: ServerHandle) -> Self {
        Self {
            url: format!("http://127.0.0.1:{port}"),
            handle,
        }
    }
}

impl Running {
    /// Serves the app that `app` builds on a free loopback port, with one
    /// worker: the stand-in help desks and hand-made receivers of the tests.
    pub fn serve<F, T, B>(app: F) -> Self
    where
        F: Fn() -> actix_web::App<T> + Send + Clone + 'static,
        T: actix_web::dev::ServiceFactory<
                actix_web::dev::ServiceRequest,
                Config = (),
                Response = actix_web::dev::ServiceResponse<B>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
        B: actix_web::body::MessageBody + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = actix_web::HttpServer::new(app)
            .workers(1)
            .listen(listener)
            .unwrap()
            .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self::new(port, handle)
    }
}

impl Running {
    /// Stops it now (not gracefully) and waits until it no longer listens,
    /// so another can take its port.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::spawn(async move { handle.stop(false).await });
    }
}

pub async fn start_helpdesk(settings: helpdesk::Settings) -> Running {
    hookline_kit::telemetry::init_for_tests();
    let app = helpdesk::Application::build(settings).await.unwrap();
    let running = Running::new(app.port(), app.handle());
    actix_web::rt::spawn(app.run_until_stopped());
    running
}

pub async fn start_consumer(settings: consumer::Settings) -> Running {
    hookline_kit::telemetry::init_for_tests();
    let app = consumer::Application::build(settings).await.unwrap();
    let running = Running::new(app.port(), app.handle());
    actix_web::rt::spawn(app.run_until_stopped());
    running
}

/// Both services wired together, each with its own storage.
pub struct Stack {
    pub db: TestDb,
    pub redis: TestRedis,
    pub helpdesk: Running,
    pub consumer: Running,
}

impl Stack {
    /// Starts both; `tune` adjusts the help desk's settings first.
    pub async fn start(tune: impl FnOnce(&mut helpdesk::Settings)) -> Self {
        Self::start_with(tune, |_| {}).await
    }

    /// Starts both, tuning each one's settings first.
    pub async fn start_with(
        tune_helpdesk: impl FnOnce(&mut helpdesk::Settings),
        tune_consumer: impl FnOnce(&mut consumer::Settings),
    ) -> Self {
        let (db, redis) = (TestDb::create().await, TestRedis::default());
        let mut settings = helpdesk_settings(&redis);
        tune_helpdesk(&mut settings);
        let helpdesk = start_helpdesk(settings).await;
        let mut settings = consumer_settings(&db, &helpdesk.url);
        tune_consumer(&mut settings);
        let consumer = start_consumer(settings).await;
        Self {
            db,
            redis,
            helpdesk,
            consumer,
        }
    }

    /// `POST /documents` for `document_url`; panics unless 201.
    pub async fn request_review(&self, document_url: &str) -> hookline_contract::Review {
        let (status, body) = post_review(&self.consumer.url, document_url).await;
        assert_eq!(status, 201, "{body}");
        serde_json::from_value(body).unwrap()
    }

    pub async fn review(&self, id: &str) -> hookline_contract::Review {
        let (status, body) = get_json(&format!("{}/documents/{id}", self.consumer.url)).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body).unwrap()
    }

    pub async fn wait_for_delivery(
        &self,
        document_id: &str,
        state: hookline_contract::DeliveryState,
    ) -> hookline_contract::CaseView {
        wait_for_delivery(&self.helpdesk.url, document_id, state).await
    }

    pub async fn case(&self, document_id: &str) -> hookline_contract::CaseView {
        let (status, body) = get_json(&format!("{}/document/{document_id}", self.helpdesk.url)).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// Waits until every row in the database is decided; returns them.
    pub async fn wait_until_all_decided(&self, expected: usize, deadline: Duration) -> Vec<consumer::db::ReviewRow> {
        wait_for(deadline, "every review to be decided", || async {
            let rows = self.db.reviews().await;
            let decided = rows.len() == expected && rows.iter().all(|row| row.status().is_decided());
            decided.then_some(rows)
        })
        .await
    }
}
