//! `hookline trigger` made for CI: a seeded chaos run injects the same
//! faults into the same cases again (another seed, others); its books
//! balance, and a run in which a case vanishes is void (exit code 3,
//! through the real binary) with a JUnit report that says so; `hookline
//! check --payload DIR --event TYPE` sends a fixture of the directory.

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, web};
use hookline_cli::check::Signer;
use hookline_cli::trigger::{self, Fate, Summary, Trigger, Verdict};
use hookline_contract::chaos::Fault;
use hookline_contract::chaos::seed::case_seed;
use hookline_contract::dialect::Dialect;
use hookline_tests::process::binary;
use hookline_tests::{Running, TestRedis, helpdesk_settings, secret_set, start_helpdesk, start_listener, wait_for};

/// Runs the `hookline` binary with `args` off the test's thread (the
/// in-process help desk and receivers keep running meanwhile).
async fn hookline(args: Vec<String>) -> Output {
    let path = binary("hookline");
    actix_web::rt::task::spawn_blocking(move || Command::new(path).args(args).output().unwrap())
        .await
        .unwrap()
}

fn seeded(helpdesk: &Running, to: &str, seed: u64) -> Trigger {
    Trigger {
        helpdesk: helpdesk.url.clone(),
        to: to.to_owned(),
        count: 20,
        chaos: Some(hookline_contract::chaos::ChaosProfile::every_fault(0.5)),
        accept_ratio: Some(0.5),
        api_key: None,
        wait: Duration::from_secs(60),
        seed: Some(seed),
        dialect: None,
    }
}

/// Each case's faults, by index.
fn faults_by_case(summary: &Summary) -> Vec<Vec<Fault>> {
    summary.cases.iter().map(|case| case.faults.clone()).collect()
}

#[actix_web::test]
async fn a_seeded_chaos_run_injects_the_same_faults_into_the_same_cases_and_another_seed_others() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    // Room in the chaos budget for every fault drawn (see helpdesk::chaos::budget).
    settings.job_lease = Duration::from_secs(20);
    let helpdesk = start_helpdesk(settings).await;
    let listening = start_listener(Some(Signer::Standard(secret_set())), Dialect::Standard);
    let url = format!("{}/hook", listening.url);

    let mut runs = Vec::new();
    for seed in [42, 42, 43] {
        let summary = trigger::run(&seeded(&helpdesk, &url, seed), |_, _, _| {})
            .await
            .unwrap();
        // A correct receiver: every review delivered, the books balance.
        assert_eq!(summary.verdict, Verdict::Passed, "{}", summary.text(false));
        assert!(summary.books.balanced(), "{:?}", summary.books);
        assert_eq!(
            (summary.books.published, summary.books.delivered, summary.books.lost),
            (20, 20, 0)
        );
        assert!(summary.text(false).starts_with(&format!("seed {seed} ")));
        assert!(summary.cases.iter().all(|case| case.fate == Fate::Delivered));
        runs.push(summary);
    }
    let (first, again, other) = (
        faults_by_case(&runs[0]),
        faults_by_case(&runs[1]),
        faults_by_case(&runs[2]),
    );
    let injected: usize = first.iter().map(Vec::len).sum();
    assert!(injected > 20, "all=0.5 over 20 cases injects faults: {first:?}");
    assert_eq!(
        first, again,
        "the same seed, the same faults in the same cases, in order"
    );
    assert_ne!(first, other, "another seed, other faults");
    // Different cases each time: the seed replays the faults, not the cases.
    assert_ne!(runs[0].document_ids, runs[1].document_ids);
    // The decisions are seeded too.
    let decisions = |summary: &Summary| (summary.accepted, summary.declined);
    assert_eq!(decisions(&runs[0]), decisions(&runs[1]));
    // Each case shows the seed `trigger` derived for it, to replay it by.
    let mut shown = Vec::new();
    for id in &runs[0].document_ids {
        let (_, _, case) = hookline_tests::call("GET", &format!("{}/document/{id}", helpdesk.url), &[], None).await;
        shown.push(
            case["chaosSeed"]
                .as_u64()
                .unwrap_or_else(|| panic!("no chaosSeed: {case}")),
        );
    }
    shown.sort_unstable();
    let mut derived: Vec<u64> = (0..20).map(|i| case_seed(42, i)).collect();
    derived.sort_unstable();
    assert_eq!(shown, derived);
    listening.stop.send(()).unwrap();
}

#[actix_web::test]
async fn a_case_that_vanishes_mid_run_makes_the_run_void_with_exit_code_3_and_a_junit_report_saying_so() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    // Cases stay pending for a while: time to lose one.
    settings.review_delay_ms = "3000".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;
    let listening = start_listener(Some(Signer::Standard(secret_set())), Dialect::Standard);
    let junit = std::env::temp_dir().join(format!("{}-trigger.xml", redis.prefix));
    let args: Vec<String> = [
        "trigger",
        "--to",
        &format!("{}/hook", listening.url),
        "--helpdesk",
        &helpdesk.url,
        "--count",
        "3",
        "--chaos",
        "duplicate=1",
        "--seed",
        "7",
        "--wait",
        "30s",
        "--json",
        "--junit",
        junit.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec();
    binary("hookline"); // built before the clock starts
    let run = actix_web::rt::spawn(hookline(args));

    // The store loses one case (as a flushed or evicting Redis would).
    let mut conn = redis.connection().await;
    let pattern = format!("{{{}}}:case:*", redis.prefix);
    let vanished: String = wait_for(Duration::from_secs(20), "a case stored", || {
        let mut conn = conn.clone();
        let pattern = pattern.clone();
        async move {
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut conn).await.unwrap();
            keys.into_iter().next()
        }
    })
    .await;
    let deleted: u64 = redis::cmd("DEL").arg(&vanished).query_async(&mut conn).await.unwrap();
    assert_eq!(deleted, 1);

    let output = run.await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["verdict"], "void", "{summary}");
    assert_eq!(summary["seed"], 7);
    assert_eq!(summary["books"]["published"], 3);
    assert_eq!(summary["books"]["lost"], 1, "{summary}");
    assert_eq!(
        summary["books"]["delivered"], 2,
        "the others still went through: {summary}"
    );
    let lost: Vec<&serde_json::Value> = summary["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|case| case["fate"] == "lost")
        .collect();
    assert_eq!(lost.len(), 1);
    assert!(
        vanished.ends_with(lost[0]["documentId"].as_str().unwrap()),
        "{vanished}"
    );

    let xml = std::fs::read_to_string(&junit).unwrap();
    std::fs::remove_file(&junit).unwrap();
    // duplicate, every review delivered, books balance.
    assert!(xml.contains("tests=\"3\" failures=\"2\" skipped=\"0\""), "{xml}");
    assert!(
        xml.contains("<testcase classname=\"hookline.trigger\" name=\"duplicate\"/>"),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"the run is void: the books do not balance\">1 of 3 cases lost"),
        "{xml}"
    );
    listening.stop.send(()).unwrap();
}

#[actix_web::test]
async fn a_normal_run_through_the_binary_passes_with_exit_code_0_and_its_seed_first() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    let listening = start_listener(Some(Signer::Standard(secret_set())), Dialect::Standard);
    let to = format!("{}/hook", listening.url);
    let args = [
        "trigger",
        "--to",
        &to,
        "--helpdesk",
        &helpdesk.url,
        "--count",
        "3",
        "--chaos",
        "none",
    ]
    .map(str::to_owned)
    .to_vec();
    let output = hookline(args).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let first = stdout.lines().next().unwrap();
    let seed: u64 = first
        .strip_prefix("seed ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| panic!("{first}"));
    assert!(seed < 1 << 53, "a random seed any JSON reader keeps exact");
    assert!(
        stdout.contains("books: published 3 = delivered 3 + dead 0 + pending 0\n"),
        "{stdout}"
    );
    listening.stop.send(()).unwrap();
}

/// A receiver that keeps every body it is sent and answers 204.
fn recording() -> (Running, Arc<Mutex<Vec<serde_json::Value>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    let receiver = Running::serve(move || {
        let kept = kept.clone();
        App::new().default_service(web::to(move |body: web::Bytes| {
            let kept = kept.clone();
            async move {
                if let Ok(json) = serde_json::from_slice(&body) {
                    kept.lock().unwrap().push(json);
                }
                HttpResponse::NoContent().finish()
            }
        }))
    });
    (receiver, bodies)
}

#[actix_web::test]
async fn check_sends_the_event_s_fixture_and_a_missing_one_exits_2_listing_the_types() {
    let (receiver, bodies) = recording();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/fixtures/stripe");
    let fixtures = fixtures.to_str().unwrap().to_owned();
    let args = |event: &str| {
        [
            "check",
            &receiver.url,
            "--secret",
            "whsec_a-provider-s-secret",
            "--dialect",
            "stripe",
            "--payload",
            &fixtures,
            "--event",
            event,
        ]
        .map(str::to_owned)
        .to_vec()
    };

    // A receiver that verifies nothing fails the battery (exit 1), but it
    // was sent the fixture's event.
    let output = hookline(args("invoice.paid")).await;
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sent = bodies.lock().unwrap().clone();
    assert!(!sent.is_empty());
    assert!(
        sent.iter()
            .any(|body| body["type"] == "invoice.paid" && body["data"]["object"]["id"] == "in_1PqFixture"),
        "{sent:?}"
    );
    assert!(sent.iter().all(|body| body["type"] != "customer.created"));

    let output = hookline(args("charge.refunded")).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("stripe/charge.refunded.json: no fixture for the event \"charge.refunded\""),
        "{stderr}"
    );
    assert!(stderr.contains("has customer.created, invoice.paid"), "{stderr}");
}
