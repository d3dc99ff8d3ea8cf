//! Support for hookline's cross-service tests.
//!
//! Every test gets its own PostgreSQL database (created from the admin
//! `DATABASE_URL`, dropped afterwards) and its own Redis key prefix (its keys
//! deleted afterwards), so the suite runs in parallel against one server of
//! each. The services run in-process on port 0 with their real
//! `Application::build`, and talk to each other over real HTTP.
//! `scripts/test.sh` provides throwaway servers when the variables are unset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unreachable_pub)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use hookline_contract::signature::SecretSet;
use hookline_kit::config::{LogFormat, Secret};
use serde_json::Value;
use tokio::sync::mpsc;

pub mod hostile;
pub mod process;
pub mod tutorial;

/// The secret both services share in tests.
pub const SECRET: &str = "whsec_aG9va2xpbmUtdGVzdC1zZWNyZXQtZm9yLWhvb2tsaW5l";

pub fn secret_set() -> SecretSet {
    SECRET.parse().unwrap()
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test.sh, which starts throwaway PostgreSQL and Redis")
    })
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A database of its own, dropped when this goes out of scope.
pub struct TestDb {
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let admin_url = env("DATABASE_URL");
        let name = unique("hookline_test");
        let mut admin = AsyncPgConnection::establish(&admin_url).await.unwrap();
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        Self {
            url: url.to_string(),
            admin_url,
            name,
        }
    }

    pub async fn connect(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url).await.unwrap()
    }

    /// Makes the database unreachable: no new connections, existing ones cut.
    pub async fn cut(&self) {
        let mut admin = AsyncPgConnection::establish(&self.admin_url).await.unwrap();
        diesel::sql_query(format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", self.name))
            .execute(&mut admin)
            .await
            .unwrap();
        diesel::sql_query(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
            self.name
        ))
        .execute(&mut admin)
        .await
        .unwrap();
    }

    /// Undoes [`TestDb::cut`].
    pub async fn restore(&self) {
        let mut admin = AsyncPgConnection::establish(&self.admin_url).await.unwrap();
        diesel::sql_query(format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.name))
            .execute(&mut admin)
            .await
            .unwrap();
    }

    /// Every review row, ordered by id: compare two snapshots to prove that
    /// a request changed nothing.
    pub async fn reviews(&self) -> Vec<consumer::db::ReviewRow> {
        use consumer::schema::document_reviews::dsl::*;
        let mut conn = self.connect().await;
        document_reviews
            .select(consumer::db::ReviewRow::as_select())
            .order(id)
            .load(&mut conn)
            .await
            .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut admin) = AsyncPgConnection::establish(&admin_url).await {
                    let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A Redis key prefix of its own, whose keys are deleted when this goes out of scope.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl Default for TestRedis {
    fn default() -> Self {
        Self {
            url: env("REDIS_URL"),
            prefix: unique("test"),
        }
    }
}

impl TestRedis {
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    async fn keys(&self, conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
        let pattern = format!("{{{}}}:*", self.prefix);
        let mut keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(conn).await.unwrap();
        keys.sort();
        keys
    }

    /// Jobs per state under this prefix, as the help desk counts them.
    pub async fn queue_depth(&self) -> helpdesk::queue::QueueDepth {
        let limits = helpdesk::queue::EndpointLimits::default();
        let queue = helpdesk::queue::Queue::connect(&self.url, &self.prefix, limits)
            .await
            .unwrap();
        queue.depth().await.unwrap()
    }

    /// Every key of this prefix with its content, to prove a request changed nothing.
    pub async fn snapshot(&self) -> BTreeMap<String, Vec<String>> {
        let mut conn = self.connection().await;
        let mut snapshot = BTreeMap::new();
        for key in self.keys(&mut conn).await {
            let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.unwrap();
            let mut content: Vec<String> = match kind.as_str() {
                "hash" => redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await.unwrap(),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
                other => vec![other.to_owned()],
            };
            content.insert(0, kind);
            snapshot.insert(key, content);
        }
        snapshot
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let (url, pattern) = (self.url.clone(), format!("{{{}}}:*", self.prefix));
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(url.as_str()) else {
                return;
            };
            let Ok(mut conn) = client.get_connection() else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(&mut conn).unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        })
        .join();
    }
}

/// Help desk settings for tests: port 0, no delay, fast retries, signed.
pub fn helpdesk_settings(redis: &TestRedis) -> helpdesk::Settings {
    helpdesk::Settings {
        redis_url: Secret::new(redis.url.clone()),
        listen: "127.0.0.1:0".parse().unwrap(),
        review_delay_ms: "0".parse().unwrap(),
        accept_ratio: 0.5,
        webhook_secret: Some(secret_set()),
        redis_prefix: redis.prefix.clone(),
        retry_schedule: "50ms,100ms,200ms".parse().unwrap(),
        delivery_timeout: Duration::from_secs(2),
        job_lease: Duration::from_secs(5),
        role: helpdesk::config::Role::All,
        worker_concurrency: 64,
        endpoint_concurrency: 16,
        endpoint_rate: None,
        circuit_failures: 10,
        circuit_cooldown: Duration::from_secs(30),
        shutdown_grace: Duration::from_secs(3),
        http_workers: Some(1),
        callback_allow: Vec::new(),
        callback_deny: Vec::new(),
        log_format: LogFormat::Pretty,
    }
}

/// Consumer settings for tests: port 0, verifying the test secret.
pub fn consumer_settings(db: &TestDb, helpdesk_url: &str) -> consumer::Settings {
    consumer::Settings {
        database_url: Some(Secret::new(db.url.clone())),
        listen: "127.0.0.1:0".parse().unwrap(),
        helpdesk_url: helpdesk_url.parse().unwrap(),
        public_url: None,
        webhook_secret: Some(secret_set()),
        allow_unsigned_webhooks: false,
        database_pool_size: 8,
        helpdesk_timeout: Duration::from_secs(5),
        reconcile_after: Duration::from_secs(600),
        shutdown_grace: Duration::from_secs(3),
        http_workers: Some(1),
        log_format: LogFormat::Pretty,
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
        let (status, body) = post_json(
            &format!("{}/documents", self.consumer.url),
            &serde_json::json!({ "documentUrl": document_url }),
            &[],
        )
        .await;
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

fn client() -> awc::Client {
    awc::Client::builder().timeout(Duration::from_secs(30)).finish()
}

fn parse_body(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
    }
}

/// POSTs `body` as JSON with extra `headers`; returns the status and the
/// JSON answer (a string if it was not JSON, null if empty).
pub async fn post_json(url: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    post_raw(url, serde_json::to_vec(body).unwrap(), "application/json", headers).await
}

/// Sends `body` as JSON with any method (`PUT`, `PATCH`, ...).
pub async fn send_json(method: &str, url: &str, body: &Value) -> (u16, Value) {
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut response = client().request(method, url).send_json(body).await.unwrap();
    let bytes = response.body().limit(1 << 20).await.unwrap();
    (response.status().as_u16(), parse_body(&bytes))
}

/// POSTs raw bytes with a content type (`""` for none) and extra headers.
pub async fn post_raw(url: &str, body: Vec<u8>, content_type: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = client().post(url);
    if !content_type.is_empty() {
        request = request.insert_header(("content-type", content_type));
    }
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let mut response = request.send_body(body).await.unwrap();
    let bytes = response.body().limit(1 << 20).await.unwrap();
    (response.status().as_u16(), parse_body(&bytes))
}

pub async fn get_json(url: &str) -> (u16, Value) {
    request_json("GET", url).await
}

/// Any method without a body.
pub async fn request_json(method: &str, url: &str) -> (u16, Value) {
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut response = client().request(method, url).send().await.unwrap();
    let bytes = response.body().limit(1 << 20).await.unwrap();
    (response.status().as_u16(), parse_body(&bytes))
}

/// Signs `body` as the help desk would and POSTs it to `url`.
pub async fn post_signed_webhook(url: &str, body: &[u8], msg_id: &str) -> (u16, Value) {
    let timestamp = chrono::Utc::now().timestamp();
    let signature = secret_set().sign(msg_id, timestamp, body);
    let timestamp = timestamp.to_string();
    post_raw(
        url,
        body.to_vec(),
        "application/json",
        &[
            ("webhook-id", msg_id),
            ("webhook-timestamp", &timestamp),
            ("webhook-signature", &signature),
        ],
    )
    .await
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `deadline`.
pub async fn wait_for<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the help desk at `helpdesk_url` until the case's delivery is in
/// `state`; returns the case.
pub async fn wait_for_delivery(
    helpdesk_url: &str,
    document_id: &str,
    state: hookline_contract::DeliveryState,
) -> hookline_contract::CaseView {
    let url = format!("{helpdesk_url}/document/{document_id}");
    wait_for(
        Duration::from_secs(60),
        &format!("delivery state {state:?}"),
        || async {
            let (status, case) = get_json(&url).await;
            assert_eq!(status, 200, "{case}");
            let case: hookline_contract::CaseView = serde_json::from_value(case).unwrap();
            (case.delivery.state == state).then_some(case)
        },
    )
    .await
}

/// A webhook as a test receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    pub at: Instant,
}

/// How a [`Receiver`] answers; change it while the test runs.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// The status to answer with (0 means 200).
    pub status: std::sync::atomic::AtomicU16,
    /// Wait this long before answering, to keep deliveries in flight.
    pub delay_ms: std::sync::atomic::AtomicU64,
    /// Answers to give first, in order, before falling back to `status`:
    /// `(status, Retry-After)`.
    pub script: std::sync::Mutex<std::collections::VecDeque<(u16, Option<String>)>>,
}

impl Behaviour {
    pub fn answer(&self, status: u16) {
        self.status.store(status, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn delay(&self, delay: Duration) {
        self.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap(),
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    fn current_delay(&self) -> Duration {
        Duration::from_millis(std::sync::atomic::AtomicU64::load(
            &self.delay_ms,
            std::sync::atomic::Ordering::SeqCst,
        ))
    }

    fn next(&self) -> (u16, Option<String>) {
        if let Some(scripted) = self.script.lock().unwrap().pop_front() {
            return scripted;
        }
        match std::sync::atomic::AtomicU16::load(&self.status, std::sync::atomic::Ordering::SeqCst) {
            0 => (200, None),
            status => (status, None),
        }
    }
}

/// A stand-in for a client's webhook endpoint (not one of our services):
/// records what it receives and answers as its [`Behaviour`] says.
pub struct Receiver {
    pub url: String,
    pub received: mpsc::UnboundedReceiver<Received>,
    pub behaviour: std::sync::Arc<Behaviour>,
    _server: Running,
}

impl Receiver {
    pub async fn start(status: u16) -> Self {
        let behaviour = std::sync::Arc::new(Behaviour::default());
        behaviour.answer(status);
        let (tx, received) = mpsc::unbounded_channel();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = behaviour.clone();
        let server = HttpServer::new(move || {
            let (tx, behaviour) = (tx.clone(), shared.clone());
            App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
                let (tx, behaviour) = (tx.clone(), behaviour.clone());
                async move {
                    let headers = request
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                        .collect();
                    let _ = tx.send(Received {
                        headers,
                        body: parse_body(&body),
                        at: Instant::now(),
                    });
                    let delay = behaviour.current_delay();
                    if !delay.is_zero() {
                        actix_web::rt::time::sleep(delay).await;
                    }
                    let (status, retry_after) = behaviour.next();
                    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
                    if let Some(retry_after) = retry_after {
                        response.insert_header(("retry-after", retry_after));
                    }
                    response.finish()
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            received,
            behaviour,
            _server: Running::new(port, handle),
        }
    }

    /// The next webhook, or panics after `deadline`.
    pub async fn next(&mut self, deadline: Duration) -> Received {
        tokio::time::timeout(deadline, self.received.recv())
            .await
            .expect("no webhook arrived in time")
            .expect("the receiver stopped")
    }

    /// Collects webhooks until `done` says the collection is complete, or
    /// panics after `deadline`.
    pub async fn collect_until(
        &mut self,
        deadline: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        let started = Instant::now();
        let mut all = Vec::new();
        while !done(&all) {
            let left = deadline.checked_sub(started.elapsed()).unwrap_or_default();
            match tokio::time::timeout(left, self.received.recv()).await {
                Ok(Some(received)) => all.push(received),
                _ => panic!("timed out after {deadline:?} with {} webhooks received", all.len()),
            }
        }
        all
    }
}

/// A loopback port nothing listens on (connections are refused).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Asserts a 4xx with the JSON error envelope; returns its `error` code.
#[track_caller]
pub fn assert_client_error(status: u16, body: &Value, expected_status: u16) -> String {
    assert_eq!(status, expected_status, "unexpected status, body: {body}");
    let code = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no JSON error envelope: {body}"));
    code.to_owned()
}
