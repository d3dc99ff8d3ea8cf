//! What ships to look at hookline and be woken by it (`deploy/prometheus`,
//! `deploy/grafana`), proven against the real thing: promtool passes the
//! config, the rules and their unit tests; every metric the rules and the
//! dashboard name is served by the two services; and a real `prometheus`
//! scraping a help desk whose receiver went away fires the alerts.
//!
//! Needs `prometheus` and `promtool` (`apt-get install prometheus`; `.ci/run`
//! installs it and sets `REQUIRE_PROMETHEUS=1`). Without them the tests that
//! run them say SKIPPED and pass, unless `REQUIRE_PROMETHEUS` is set.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hookline_tests::process::free_port;
use hookline_tests::{Receiver, Stack, closed_port, get_json, get_text, post_json};
use serde_json::{Value, json};

/// How long the live alerts may take to fire (about 10 s here).
const ALERT_DEADLINE: Duration = Duration::from_secs(60);

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Whether `prometheus` and `promtool` are installed; if not, says SKIPPED
/// (or fails, with `REQUIRE_PROMETHEUS` set).
fn prometheus_installed() -> bool {
    if on_path("prometheus") && on_path("promtool") {
        return true;
    }
    assert!(
        std::env::var_os("REQUIRE_PROMETHEUS").is_none(),
        "REQUIRE_PROMETHEUS is set but prometheus/promtool are not installed"
    );
    eprintln!("SKIPPED: the alerting tests need `apt-get install prometheus` (prometheus and promtool)");
    false
}

/// Runs `promtool args` in `deploy/prometheus`; panics with its output unless it succeeds.
fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(deploy().join("prometheus"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {} failed:\n{text}", args.join(" "));
    text
}

#[test]
fn promtool_passes_the_shipped_config_rules_and_their_unit_tests() {
    if !prometheus_installed() {
        return;
    }
    promtool(&["check", "config", "prometheus.yml"]);
    let checked = promtool(&["check", "rules", "rules.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", "rules_test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert has a unit test.
    let tests = read(&deploy().join("prometheus/rules_test.yml"));
    for alert in alert_names(&read(&deploy().join("prometheus/rules.yml"))) {
        assert!(
            tests.contains(&format!(
                "alertname: {alert}\n        exp_alerts:\n          - exp_labels:"
            )),
            "no unit test in rules_test.yml expects {alert} to fire"
        );
    }
}

/// The alerts a rules file defines (commented-out ones excluded).
fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("- alert: "))
        .map(str::to_owned)
        .collect()
}

/// The metric names (`hookline_…`) and recording rule names (`hookline:…`)
/// in `text`.
fn names_in(text: &str) -> Vec<String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("hookline") {
        let before = rest[..start].chars().next_back();
        let tail = &rest[start..];
        let end = tail.find(|c: char| !word(c)).unwrap_or(tail.len());
        let name = &tail[..end];
        if !before.is_some_and(word) && (name.starts_with("hookline_") || name.starts_with("hookline:")) {
            names.push(name.to_owned());
        }
        rest = &tail[end.max(1)..];
    }
    names
}

/// Every `expr` in a Grafana dashboard, its panels and rows included.
fn exprs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => found.push(expr.clone()),
                    _ => exprs(value, found),
                }
            }
        }
        Value::Array(values) => values.iter().for_each(|value| exprs(value, found)),
        _ => {}
    }
}

#[actix_web::test]
async fn the_rules_and_the_dashboard_name_only_metrics_the_services_serve() {
    let stack = Stack::start(|_| {}).await;
    let review = stack.request_review("https://example.com/contract.pdf").await;
    stack
        .wait_for_delivery(
            &review.document_id.unwrap(),
            hookline_contract::DeliveryState::Delivered,
        )
        .await;
    let mut served = String::new();
    for base in [&stack.helpdesk.url, &stack.consumer.url] {
        let (status, text) = get_text(&format!("{base}/metrics")).await;
        assert_eq!(status, 200, "{text}");
        served.push_str(&text);
    }
    let exposed = |name: &str| {
        served
            .lines()
            .any(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
    };

    let rules = read(&deploy().join("prometheus/rules.yml"));
    let uncommented: String = rules
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect();
    let recorded: Vec<&str> = rules
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("- record: "))
        .collect();
    assert!(recorded.len() >= 3, "recording rules: {recorded:?}");

    let dashboard: Value = serde_json::from_str(&read(&deploy().join("grafana/hookline.json"))).unwrap();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["name"] == "datasource" && v["query"] == "prometheus"),
        "a Prometheus datasource variable: {variables:?}"
    );
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids: Vec<i64> = panels.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
        assert!(!panel["targets"].as_array().unwrap().is_empty(), "{}", panel["title"]);
    }
    let mut dashboard_exprs = Vec::new();
    exprs(&dashboard, &mut dashboard_exprs);
    assert!(dashboard_exprs.len() >= 15, "{dashboard_exprs:?}");

    let mut checked = 0;
    for (source, text) in [
        ("rules.yml", uncommented),
        ("hookline.json", dashboard_exprs.join("\n")),
    ] {
        for name in names_in(&text) {
            if name.contains(':') {
                assert!(
                    recorded.contains(&name.as_str()),
                    "{source} uses {name}, which no rule records"
                );
            } else {
                assert!(exposed(&name), "{source} uses {name}, which neither service serves");
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} names found: is the extraction broken?");
}

/// A `prometheus` this test started, on its own port and data dir; killed
/// (by its pid, through its handle) and its dir removed on drop.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Prometheus {
    /// Starts one on `config` and `rules` (written into a temp dir), and
    /// waits until it is ready.
    async fn start(config: &str, rules: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hookline-prometheus-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        std::fs::write(dir.join("rules.yml"), rules).unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let prometheus = Self {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while !prometheus.ready().await {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "prometheus not ready after 20 s:\n{}",
                prometheus.log()
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
        prometheus
    }

    async fn ready(&self) -> bool {
        let request = awc::Client::default()
            .get(format!("{}/-/ready", self.url))
            .timeout(Duration::from_secs(1));
        request.send().await.is_ok_and(|r| r.status().is_success())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/{path}`'s data.
    async fn api(&self, path: &str) -> Value {
        let (status, body) = get_json(&format!("{}/api/v1/{path}", self.url)).await;
        assert_eq!(status, 200, "{body}");
        body["data"].clone()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shipped prometheus.yml with 1 s intervals and each job's DNS lookup
/// (`names: [service]`) or static `service:port` target swapped for a
/// static target on the test's port.
fn pointed_config(shipped: &str, targets: &[(&str, u16, u16)]) -> String {
    let intervals = "  scrape_interval: 15s\n  evaluation_interval: 15s\n";
    assert!(
        shipped.contains(intervals),
        "prometheus.yml's global intervals changed shape"
    );
    let mut config = shipped.replace(intervals, "  scrape_interval: 1s\n  evaluation_interval: 1s\n");
    for (service, port, test_port) in targets {
        let lookup =
            format!("    dns_sd_configs:\n      - names: [{service}]\n        type: A\n        port: {port}\n");
        let named = format!("    static_configs:\n      - targets: [\"{service}:{port}\"]\n");
        let target = format!("    static_configs:\n      - targets: [\"127.0.0.1:{test_port}\"]\n");
        assert!(
            config.contains(&lookup) || config.contains(&named),
            "prometheus.yml has no job for {service}:{port} in a shape this test can point elsewhere:\n{lookup}\nor\n{named}"
        );
        config = config.replace(&lookup, &target).replace(&named, &target);
    }
    config
}

/// The shipped rules with every `for:` shortened to 1 s, so alerts fire
/// within seconds; nothing else is changed (the expressions, their windows
/// and labels are the shipped ones; the real durations are unit-tested by
/// rules_test.yml).
fn shortened_rules(shipped: &str) -> String {
    let mut shortened = 0;
    let rules: String = shipped
        .lines()
        .map(|line| {
            let indent = line.len() - line.trim_start().len();
            if line.trim_start().starts_with("for: ") {
                shortened += 1;
                format!("{}for: 1s\n", &line[..indent])
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert_eq!(shortened, alert_names(shipped).len(), "one `for:` per alert");
    rules
}

/// The firing alerts' labels.
async fn firing(prometheus: &Prometheus) -> Vec<Value> {
    let data = prometheus.api("alerts").await;
    data["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|alert| alert["state"] == "firing")
        .map(|alert| alert["labels"].clone())
        .collect()
}

#[actix_web::test]
async fn a_real_prometheus_fires_the_alerts_when_a_receiver_goes_away_and_a_worker_is_gone() {
    if !prometheus_installed() {
        return;
    }
    let stack = Stack::start(|hd| {
        // One retry, and a breaker that opens after three failures and
        // probes soon: the retries it holds are dead-lettered within seconds.
        hd.retry_schedule = "50ms".parse().unwrap();
        hd.circuit_failures = 3;
        hd.circuit_cooldown = Duration::from_secs(1);
    })
    .await;
    let port = |url: &str| url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let config = pointed_config(
        &read(&deploy().join("prometheus/prometheus.yml")),
        &[
            ("helpdesk", 8080, port(&stack.helpdesk.url)),
            // No worker process here: its job points at a closed port, as
            // for a worker that died.
            ("worker", 8080, closed_port()),
            ("consumer", 3333, port(&stack.consumer.url)),
        ],
    );
    let rules = shortened_rules(&read(&deploy().join("prometheus/rules.yml")));
    let prometheus = Prometheus::start(&config, &rules).await;

    // A receiver takes one webhook, then goes away.
    let mut receiver = Receiver::start(200).await;
    let schedule = |callback: String, n: usize| {
        let helpdesk = stack.helpdesk.url.clone();
        async move {
            let (status, body) = post_json(
                &format!("{helpdesk}/document"),
                &json!({"documentUrl": format!("https://example.com/{n}.pdf")}),
                &[("x-callback-url", &callback)],
            )
            .await;
            assert_eq!(status, 202, "{body}");
        }
    };
    schedule(receiver.url.clone(), 0).await;
    receiver.next(Duration::from_secs(10)).await;
    let callback = receiver.url.clone();
    let endpoint = helpdesk::endpoint::Endpoint::of_str(&callback).unwrap();
    drop(receiver);
    let address = callback
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    hookline_tests::wait_for(Duration::from_secs(5), "the receiver to stop", || {
        let address = address.clone();
        async move { std::net::TcpStream::connect(&address).is_err().then_some(()) }
    })
    .await;
    for n in 1..=4 {
        schedule(callback.clone(), n).await;
    }

    let expected = [
        json!({"alertname": "HooklineDeadLettersGrowing", "severity": "warning"}),
        json!({"alertname": "HooklineEndpointCircuitOpen", "severity": "warning", "endpoint": endpoint.as_str()}),
        json!({"alertname": "HooklineHelpdeskDown", "severity": "critical", "job": "hookline-worker"}),
    ];
    let matches = |labels: &Value, want: &Value| {
        want.as_object()
            .unwrap()
            .iter()
            .all(|(key, value)| &labels[key] == value)
    };
    let started = Instant::now();
    let fired = loop {
        let fired = firing(&prometheus).await;
        if expected
            .iter()
            .all(|want| fired.iter().any(|labels| matches(labels, want)))
        {
            break fired;
        }
        if started.elapsed() > ALERT_DEADLINE {
            panic!(
                "after {ALERT_DEADLINE:?} the firing alerts are {fired:#?}, not all of {expected:#?}\n\
                 targets: {:#}\nprometheus log:\n{}",
                prometheus.api("targets").await,
                prometheus.log()
            );
        }
        actix_web::rt::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!("alerts fired after {:?}", started.elapsed());
    // The help desk and the consumer this test started are up and scraped.
    for quiet in ["HooklineConsumerDown", "HooklineTargetsMissing"] {
        assert!(
            !fired.iter().any(|labels| labels["alertname"] == quiet),
            "{quiet} fired: {fired:#?}"
        );
    }
    assert!(
        !fired
            .iter()
            .any(|labels| labels["alertname"] == "HooklineHelpdeskDown" && labels["job"] == "hookline-helpdesk"),
        "the help desk the test started is up: {fired:#?}"
    );
}
