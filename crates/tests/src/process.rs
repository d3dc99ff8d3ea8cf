//! Real processes for fault tests: the `consumer`, `helpdesk` and `hookline` binaries
//! and a private `redis-server`, started on loopback, stopped by pid (SIGKILL
//! or SIGTERM) — never by name — and always reaped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{TestDb, TestRedis, wait_for};

/// The path of a workspace binary (`consumer`, `helpdesk`, `hookline`),
/// built (once per test run) if needed.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    // target/<profile>/deps/<test binary> → target/<profile>/<name>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap().to_path_buf();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut build = Command::new(cargo);
        build.args([
            "build",
            "--quiet",
            "-p",
            "hookline-consumer",
            "-p",
            "hookline-helpdesk",
            "-p",
            "hookline-cli",
            "--bins",
        ]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("cannot run cargo build");
        assert!(status.success(), "cargo build of the binaries failed");
    });
    profile_dir.join(name)
}

/// A free loopback port for a process we start and may restart on the same port.
///
/// Not a kernel-chosen port: those come from the ephemeral range, where the
/// kernel also places the local end of outgoing connections, so the port can
/// be taken between this check and the child's bind (seen as "Address already
/// in use"). We pick below that range, skip ports something holds, and hand
/// each port out once per test process.
pub fn free_port() -> u16 {
    use rand::Rng;
    use std::collections::HashSet;
    use std::sync::{LazyLock, Mutex};
    static GIVEN: LazyLock<Mutex<HashSet<u16>>> = LazyLock::new(Mutex::default);
    let high = ephemeral_low().clamp(12_000, 32_768);
    let mut given = GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..1000 {
        let port = rand::rng().random_range(10_000..high);
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in 10000..{high}");
}

/// Where the kernel's ephemeral port range starts (Linux), or the IANA
/// default elsewhere.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(49_152)
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// A child process that dies with this handle.
pub struct Process {
    child: Child,
    pub port: u16,
    pub url: String,
}

/// A file that takes a process's stdout and stderr, for tests that read
/// what it logged; removed on drop.
pub struct LogCapture {
    path: PathBuf,
}

impl Default for LogCapture {
    fn default() -> Self {
        Self {
            path: std::env::temp_dir().join(format!("hookline-log-{}.txt", uuid::Uuid::new_v4().simple())),
        }
    }
}

impl LogCapture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    fn stdio(&self) -> (Stdio, Stdio) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .unwrap();
        (Stdio::from(file.try_clone().unwrap()), Stdio::from(file))
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Process {
    pub(crate) fn spawn(program: PathBuf, args: &[&str], env: &[(&str, String)], port: u16) -> Self {
        Self::spawn_logging(program, args, env, port, None)
    }

    /// As [`Process::spawn`], its output into `log` if given.
    fn spawn_logging(
        program: PathBuf,
        args: &[&str],
        env: &[(&str, String)],
        port: u16,
        log: Option<&LogCapture>,
    ) -> Self {
        let quiet = std::env::var_os("TEST_LOG").is_none();
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        command.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
        );
        for (key, value) in env {
            command.env(key, value);
        }
        if let Some(log) = log {
            let (stdout, stderr) = log.stdio();
            command.stdout(stdout).stderr(stderr);
        } else if quiet {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        Self {
            child: command.spawn().unwrap(),
            port,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no goodbye, no cleanup.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: ask it to stop gracefully.
    pub fn terminate(&self) {
        signal(self.pid(), "TERM");
    }

    /// Waits for the process to exit, up to `deadline`.
    pub async fn exited(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    async fn ready(self, deadline: Duration) -> Self {
        let url = format!("{}/readyz", self.url);
        wait_for(deadline, "the process to be ready", || {
            let url = url.clone();
            async move { (client_get_ok(&url).await).then_some(()) }
        })
        .await;
        self
    }
}

async fn client_get_ok(url: &str) -> bool {
    awc::Client::default()
        .get(url)
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Replaces or adds `extra` in `env`.
fn override_env<'a>(env: &mut Vec<(&'a str, String)>, extra: &[(&'a str, &str)]) {
    for (key, value) in extra {
        env.retain(|(k, _)| k != key);
        env.push((key, (*value).to_owned()));
    }
}

/// Environment for a `helpdesk` process on `port`: like
/// [`crate::helpdesk_settings`], with `extra` on top.
pub async fn helpdesk_process(redis: &TestRedis, port: u16, extra: &[(&str, &str)]) -> Process {
    helpdesk_process_logged(redis, port, extra, None).await
}

/// As [`helpdesk_process`], its output into `log` if given.
pub async fn helpdesk_process_logged(
    redis: &TestRedis,
    port: u16,
    extra: &[(&str, &str)],
    log: Option<&LogCapture>,
) -> Process {
    let mut env: Vec<(&str, String)> = vec![
        ("REDIS_URL", redis.url.clone()),
        ("REDIS_PREFIX", redis.prefix.clone()),
        ("HELPDESK_LISTEN", format!("127.0.0.1:{port}")),
        ("REVIEW_DELAY_MS", "0".to_owned()),
        ("RETRY_SCHEDULE", "50ms,100ms,200ms".to_owned()),
        ("DELIVERY_TIMEOUT", "2s".to_owned()),
        ("JOB_LEASE", "5s".to_owned()),
        ("HTTP_WORKERS", "1".to_owned()),
        ("WEBHOOK_SECRET", crate::SECRET.to_owned()),
    ];
    override_env(&mut env, extra);
    Process::spawn_logging(binary("helpdesk"), &[], &env, port, log)
        .ready(Duration::from_secs(30))
        .await
}

/// A `consumer` process on `port` talking to `helpdesk_url`.
pub async fn consumer_process(db: &TestDb, port: u16, helpdesk_url: &str, extra: &[(&str, &str)]) -> Process {
    consumer_process_logged(db, port, helpdesk_url, extra, None).await
}

/// As [`consumer_process`], its output into `log` if given.
pub async fn consumer_process_logged(
    db: &TestDb,
    port: u16,
    helpdesk_url: &str,
    extra: &[(&str, &str)],
    log: Option<&LogCapture>,
) -> Process {
    let mut env: Vec<(&str, String)> = vec![
        ("DATABASE_URL", db.url.clone()),
        ("CONSUMER_LISTEN", format!("127.0.0.1:{port}")),
        ("HELPDESK_URL", helpdesk_url.to_owned()),
        ("WEBHOOK_SECRET", crate::SECRET.to_owned()),
        ("HTTP_WORKERS", "1".to_owned()),
        ("DATABASE_POOL_SIZE", "4".to_owned()),
    ];
    override_env(&mut env, extra);
    Process::spawn_logging(binary("consumer"), &[], &env, port, log)
        .ready(Duration::from_secs(30))
        .await
}

/// A `redis-server` of its own (for tests that crash Redis), with AOF
/// fsynced on every write, keeping its data in a temp dir across restarts.
pub struct PrivateRedis {
    pub port: u16,
    dir: PathBuf,
    process: Option<Process>,
}

impl PrivateRedis {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("hookline-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Self {
            port: free_port(),
            dir,
            process: None,
        };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: a crash, with whatever the AOF holds.
    pub fn crash(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts (again) on the same port and data directory.
    pub async fn restart(&mut self) {
        let port = self.port.to_string();
        let dir = self.dir.to_string_lossy().into_owned();
        let args = [
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--dir",
            &dir,
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ];
        let process = Process::spawn(PathBuf::from("redis-server"), &args, &[], self.port);
        let url = self.url();
        wait_for(Duration::from_secs(20), "redis-server to answer", || {
            let url = url.clone();
            async move {
                let client = redis::Client::open(url.as_str()).ok()?;
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING").query_async::<String>(&mut conn).await.ok().map(drop)
            }
        })
        .await;
        self.process = Some(process);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
