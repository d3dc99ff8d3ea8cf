//! The consumer's background tasks under their supervisor: a task that
//! dies for a real reason says why in the log, and `/readyz` names it.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use diesel_async::RunQueryDsl;
use hookline_tests::process::{binary, free_port};
use hookline_tests::{TestDb, closed_port, get_json, wait_for};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(30);

/// A `consumer` process whose log (JSON lines) goes to a file; killed and
/// its file removed when dropped.
struct Logged {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Logged {
    fn start(db: &TestDb, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("hookline-consumer-{}.log", uuid::Uuid::new_v4().simple()));
        let mut command = Command::new(binary("consumer"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "json")
            .env("DATABASE_URL", &db.url)
            .env("CONSUMER_LISTEN", format!("127.0.0.1:{port}"))
            .env("HELPDESK_URL", format!("http://127.0.0.1:{}", closed_port()))
            .env("WEBHOOK_SECRET", hookline_tests::SECRET)
            .env("HTTP_WORKERS", "1")
            .env("DATABASE_POOL_SIZE", "4");
        for (key, value) in extra {
            command.env(key, value);
        }
        let child = command
            .stdout(File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// The log lines so far, parsed.
    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// `GET /readyz`, once it answers at all.
    async fn readyz(&self) -> (u16, Value) {
        let url = format!("{}/readyz", self.url);
        wait_for(DEADLINE, "the consumer to answer", || async {
            let answer = awc::Client::default()
                .get(&url)
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            answer.is_ok().then_some(())
        })
        .await;
        get_json(&url).await
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

#[actix_web::test]
async fn a_task_the_database_refuses_dies_with_its_cause_logged_and_readyz_naming_it() {
    let db = TestDb::create().await;
    // Retention prunes every second.
    let consumer = Logged::start(&db, &[("RECEIPT_RETENTION", "1s"), ("IDEMPOTENCY_RETENTION", "1s")]);
    let (status, body) = consumer.readyz().await;
    assert_eq!(status, 200, "{body}");

    // The database is no longer what this build expects: a table retention
    // prunes is gone (renamed). Waiting cannot fix that.
    let mut conn = db.connect().await;
    diesel::sql_query("ALTER TABLE idempotency_keys RENAME TO idempotency_keys_elsewhere")
        .execute(&mut conn)
        .await
        .unwrap();

    let body = wait_for(DEADLINE, "/readyz to fail", || async {
        let (status, body) = get_json(&format!("{}/readyz", consumer.url)).await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body["error"], "unavailable", "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("the background task retention failed"), "{detail}");
    assert!(
        !detail.contains("idempotency_keys"),
        "no internals in the answer: {detail}"
    );

    // The log says which task died, and why, with the whole cause chain.
    let death = wait_for(DEADLINE, "the death in the log", || async {
        consumer
            .lines()
            .into_iter()
            .find(|line| line["task"] == "retention" && line["level"] == "ERROR")
    })
    .await;
    let error = death["error"].as_str().unwrap();
    assert!(
        error.starts_with("the database refused to remove old rows: "),
        "{death}"
    );
    assert!(error.contains("idempotency_keys"), "the cause: {death}");

    // Only retention died: the others were not refused anything.
    let deaths: Vec<Value> = consumer
        .lines()
        .into_iter()
        .filter(|line| line["level"] == "ERROR" && line.get("task").is_some())
        .collect();
    assert_eq!(deaths.len(), 1, "{deaths:?}");
}
