//! Chaos: the help desk misbehaving as providers do (duplicates, replays,
//! reordered events, delays, forgeries, stale timestamps, broken bodies,
//! trickled sends) against real receivers: our consumer (it survives a
//! thousand reviews of it), `hookline listen` (what `hookline trigger`
//! reports matches what the receiver saw), and a receiver that verifies
//! nothing (caught).

use std::time::Duration;

use futures_util::StreamExt;
use hookline_cli::check::Signer;
use hookline_cli::listen::Totals;
use hookline_cli::trigger::{self, Summary, Trigger};
use hookline_contract::chaos::{ChaosProfile, Fault};
use hookline_contract::dialect::Dialect;
use hookline_contract::{CaseView, Review, headers};
use hookline_tests::{
    Running, Stack, TestRedis, assert_client_error, call, get_text, helpdesk_settings, metric_sum, post_review,
    secret_set, start_helpdesk, start_listener, wait_for,
};
use serde_json::json;

const FAULTS: &str = "hookline_helpdesk_chaos_faults_total";

/// `hookline_helpdesk_chaos_faults_total` for `fault`, over the answers `answers`.
async fn faults(helpdesk: &Running, fault: Fault, answers: &[&str]) -> u64 {
    let mut total = 0;
    for answer in answers {
        total += metric_sum(
            &helpdesk.url,
            &format!("{FAULTS}{{answer=\"{answer}\",fault=\"{fault}\"}}"),
        )
        .await;
    }
    total
}

/// Requests answered with a 5xx, by any route, as `base_url/metrics` counts them.
async fn server_errors(base_url: &str) -> u64 {
    let (status, metrics) = get_text(&format!("{base_url}/metrics")).await;
    assert_eq!(status, 200);
    metrics
        .lines()
        .filter(|line| line.starts_with("hookline_http_requests_total{") && line.contains("status=\"5"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

const ANSWERS: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "none"];

/// What the help desk and the consumer have counted so far.
#[derive(Debug, Clone, PartialEq)]
struct Counts {
    /// Faults injected, by fault and the receiver's answer ([`ANSWERS`]).
    faults: Vec<(Fault, [u64; 5])>,
    /// Real attempts that failed (retried or dead).
    failed: u64,
    /// The consumer's 5xx answers.
    server_errors: u64,
}

impl Counts {
    async fn of(stack: &Stack) -> Self {
        let mut faults_by_answer = Vec::new();
        for fault in Fault::ALL {
            let mut counts = [0; 5];
            for (count, answer) in counts.iter_mut().zip(ANSWERS) {
                *count = faults(&stack.helpdesk, fault, &[answer]).await;
            }
            faults_by_answer.push((fault, counts));
        }
        let outcome = "hookline_helpdesk_delivery_attempts_total{outcome=";
        Self {
            faults: faults_by_answer,
            failed: metric_sum(&stack.helpdesk.url, &format!("{outcome}\"retry\"}}")).await
                + metric_sum(&stack.helpdesk.url, &format!("{outcome}\"dead\"}}")).await,
            server_errors: server_errors(&stack.consumer.url).await,
        }
    }

    /// What was counted since `before`.
    fn since(&self, before: &Self) -> Self {
        Self {
            faults: self
                .faults
                .iter()
                .zip(&before.faults)
                .map(|((fault, now), (_, then))| (*fault, std::array::from_fn(|i| now[i] - then[i])))
                .collect(),
            failed: self.failed - before.failed,
            server_errors: self.server_errors - before.server_errors,
        }
    }
}

/// The help desk's jobs still due or in flight.
async fn jobs_left(helpdesk: &Running) -> u64 {
    let depth = "hookline_helpdesk_queue_depth{state=";
    metric_sum(&helpdesk.url, &format!("{depth}\"due\"}}")).await
        + metric_sum(&helpdesk.url, &format!("{depth}\"in_flight\"}}")).await
}

#[actix_web::test]
async fn a_chaos_run_of_1000_reviews_ends_with_every_decision_at_the_consumer_and_every_forgery_refused() {
    const REVIEWS: usize = 1000;
    let stack = Stack::start_with(
        |helpdesk| {
            helpdesk.chaos = ChaosProfile::every_fault(0.2);
            helpdesk.review_delay_ms = "200-1500".parse().unwrap();
            // Room for the faults' extra requests in every lease, and for
            // many deliveries at once to the one endpoint.
            helpdesk.job_lease = Duration::from_secs(60);
            helpdesk.delivery_timeout = Duration::from_secs(10);
            helpdesk.worker_concurrency = 512;
            helpdesk.endpoint_concurrency = 256;
        },
        // Events for subscriptions too: reorder only happens to them.
        |consumer| {
            consumer.helpdesk_subscribe = true;
            consumer.http_workers = Some(2);
        },
    )
    .await;

    // Once the consumer holds its subscription's secret: before that, an
    // event is rightly answered 503 (it cannot be verified yet) and retried,
    // and this test counts every 5xx.
    let mut warm_up = 0;
    loop {
        let (status, review) = post_review(&stack.consumer.url, "https://example.com/warm-up.pdf").await;
        assert_eq!(status, 201, "{review}");
        let review: Review = serde_json::from_value(review).unwrap();
        let case = stack.case(review.document_id.as_deref().unwrap()).await;
        warm_up += 1;
        if case.callback_url.is_none() {
            break;
        }
        assert!(warm_up < 300, "the consumer never confirmed its subscription");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    // The warm-up's events (some answered 503 before the secret was stored,
    // and retried) are not the run's: count from when they are all out.
    wait_for(Duration::from_secs(60), "the warm-up's events to go out", || async {
        (jobs_left(&stack.helpdesk).await == 0).then_some(())
    })
    .await;
    let before = Counts::of(&stack).await;
    let created: Vec<Review> = futures_util::stream::iter(0..REVIEWS)
        .map(|i| {
            let consumer = stack.consumer.url.clone();
            async move {
                let (status, review) = post_review(&consumer, &format!("https://example.com/chaos/{i}.pdf")).await;
                assert_eq!(status, 201, "{review}");
                serde_json::from_value::<Review>(review).unwrap()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let rows = stack
        .wait_until_all_decided(REVIEWS + warm_up, Duration::from_secs(240))
        .await;
    assert_eq!(rows.len(), created.len() + warm_up);

    // Every review holds the help desk's own decision: nothing a duplicate,
    // a replay or a late document.received did undid or changed it.
    let mismatched: Vec<String> = futures_util::stream::iter(created)
        .map(|review| {
            let helpdesk = stack.helpdesk.url.clone();
            let consumer = stack.consumer.url.clone();
            async move {
                let document_id = review.document_id.clone().unwrap();
                let (status, _, case) = call("GET", &format!("{helpdesk}/document/{document_id}"), &[], None).await;
                assert_eq!(status, 200, "{case}");
                let case: CaseView = serde_json::from_value(case).unwrap();
                let (status, _, now) = call("GET", &format!("{consumer}/documents/{}", review.id), &[], None).await;
                assert_eq!(status, 200, "{now}");
                let now: Review = serde_json::from_value(now).unwrap();
                (now.document_status != case.status).then(|| {
                    format!(
                        "{}: consumer {} help desk {}",
                        review.id, now.document_status, case.status
                    )
                })
            }
        })
        .buffer_unordered(32)
        .filter_map(|mismatch| async move { mismatch })
        .collect()
        .await;
    assert!(
        mismatched.is_empty(),
        "{} reviews differ: {mismatched:?}",
        mismatched.len()
    );

    // Let the last events (and their faults) go out.
    wait_for(Duration::from_secs(120), "the help desk's queue to empty", || async {
        (jobs_left(&stack.helpdesk).await == 0).then_some(())
    })
    .await;
    let run = Counts::of(&stack).await.since(&before);
    eprintln!(
        "faults injected, by the consumer's answer {ANSWERS:?}: {:?}",
        run.faults
    );
    for (fault, answers) in &run.faults {
        assert!(answers.iter().sum::<u64>() > 0, "{fault} was never injected");
        let expected = match fault {
            Fault::ForgedSignature | Fault::StaleTimestamp | Fault::MalformedBody => "4xx",
            Fault::Duplicate | Fault::Replay | Fault::SlowSend => "2xx",
            Fault::Delay | Fault::Reorder => "none",
        };
        assert!(
            ANSWERS
                .iter()
                .zip(answers)
                .all(|(answer, count)| *answer == expected || *count == 0),
            "{fault}: {answers:?}"
        );
    }
    // The real deliveries all got through at the first attempt: none was
    // answered with an error, none timed out; the consumer answered no 5xx.
    assert_eq!((run.failed, run.server_errors), (0, 0));
}

/// `hookline listen` on a free port (verifying our secret if `secret`),
/// run until the returned sender fires.
fn listen(
    secret: bool,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    actix_web::rt::task::JoinHandle<Totals>,
) {
    let listening = start_listener(secret.then(|| Signer::Standard(secret_set())), Dialect::Standard);
    (format!("{}/hook", listening.url), listening.stop, listening.totals)
}

fn trigger_to(helpdesk: &Running, to: &str, count: usize, chaos: &str) -> Trigger {
    Trigger {
        helpdesk: helpdesk.url.clone(),
        to: to.to_owned(),
        count,
        chaos: Some(chaos.parse().unwrap()),
        accept_ratio: Some(0.5),
        api_key: None,
        wait: Duration::from_secs(60),
        dialect: None,
        seed: None,
    }
}

fn injected(summary: &Summary, fault: Fault) -> u64 {
    summary.faults.get(&fault).map_or(0, |tally| tally.injected)
}

#[actix_web::test]
async fn what_hookline_trigger_reports_is_what_hookline_listen_received() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.job_lease = Duration::from_secs(20);
    let helpdesk = start_helpdesk(settings).await;
    let (url, stop, totals) = listen(true);

    let summary = trigger::run(
        &trigger_to(&helpdesk, &url, 40, "duplicate=0.5,replay=0.5,forged_signature=0.5,stale_timestamp=0.5,malformed_body=0.5,slow_send=0.5,delay=0.5"),
        |_, _, _| {},
    )
    .await
    .unwrap();
    stop.send(()).unwrap();
    let totals = totals.await.unwrap();

    assert!(summary.passed(), "{}", summary.text(false));
    assert_eq!((summary.created, summary.delivered), (40, 40));
    assert_eq!(summary.accepted + summary.declined, 40);
    assert_eq!(summary.attempts, 40, "no real delivery failed");
    for fault in [
        Fault::Duplicate,
        Fault::Replay,
        Fault::ForgedSignature,
        Fault::SlowSend,
        Fault::Delay,
    ] {
        assert!(injected(&summary, fault) > 0, "{fault}: {}", summary.text(false));
    }
    // What the receiver saw, fault by fault.
    assert_eq!(totals.duplicates, injected(&summary, Fault::Duplicate));
    assert_eq!(totals.replays, injected(&summary, Fault::Replay));
    let forgeries = [Fault::ForgedSignature, Fault::StaleTimestamp, Fault::MalformedBody]
        .map(|fault| injected(&summary, fault))
        .iter()
        .sum::<u64>();
    assert_eq!(totals.refused, forgeries);
    assert_eq!(totals.received, 40 + totals.duplicates + totals.replays + forgeries);
    assert_eq!(
        totals.verified,
        totals.received - injected(&summary, Fault::ForgedSignature) - injected(&summary, Fault::StaleTimestamp)
    );
}

#[actix_web::test]
async fn a_receiver_that_verifies_nothing_is_caught_by_the_case_s_own_chaos_profile() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    let (url, stop, totals) = listen(false);

    let summary = trigger::run(
        &trigger_to(
            &helpdesk,
            &url,
            5,
            "forged_signature=1,stale_timestamp=1,malformed_body=1",
        ),
        |_, _, _| {},
    )
    .await
    .unwrap();
    stop.send(()).unwrap();
    totals.await.unwrap();

    assert!(!summary.passed(), "{}", summary.text(false));
    assert_eq!(summary.delivered, 5, "the real deliveries still went through");
    for fault in [Fault::ForgedSignature, Fault::StaleTimestamp] {
        let tally = &summary.faults[&fault];
        assert_eq!((tally.injected, tally.unexpected), (5, 5), "{fault}");
    }
    // It does refuse a body that is not JSON.
    assert_eq!(summary.faults[&Fault::MalformedBody].unexpected, 0);
    assert!(
        summary.unexpected[0].contains("accepted it (HTTP 200): a correct receiver refuses it with a 4xx"),
        "{:?}",
        summary.unexpected
    );
    let text = summary.text(false);
    assert!(text.contains("the receiver did not survive everything"), "{text}");
}

#[actix_web::test]
async fn chaos_profiles_are_checked_and_a_case_can_opt_out() {
    // At start-up: a clear error.
    let error = hookline_kit::service::Cli::<helpdesk::Settings>::try_parse_as(
        "helpdesk",
        ["helpdesk", "--chaos", "duplicate=0.3,forged=0.1"],
    )
    .unwrap_err();
    assert!(error.to_string().contains("unknown fault \"forged\""), "{error}");
    let error =
        hookline_kit::service::Cli::<helpdesk::Settings>::try_parse_as("helpdesk", ["helpdesk", "--chaos", "delay=2"])
            .unwrap_err();
    assert!(error.to_string().contains("from 0 to 1"), "{error}");

    // Per case: a 400 with a JSON body, nothing stored.
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.chaos = ChaosProfile::every_fault(1.0);
    let helpdesk = start_helpdesk(settings).await;
    let (url, stop, totals) = listen(true);
    let document = json!({"documentUrl": "https://example.com/a.pdf"});
    for (header, value, field) in [
        (headers::CHAOS, "duplicate=often", "Hookline-Chaos"),
        (headers::CHAOS, "teleport=1", "Hookline-Chaos"),
        (headers::ACCEPT_RATIO, "2", "Hookline-Accept-Ratio"),
        (headers::CHAOS_SEED, "-1", "Hookline-Chaos-Seed"),
        (headers::CHAOS_SEED, "18446744073709551616", "Hookline-Chaos-Seed"),
    ] {
        let (status, _, body) = call(
            "POST",
            &format!("{}/document", helpdesk.url),
            &[(headers::CALLBACK_URL, &url), (header, value)],
            Some(&document),
        )
        .await;
        assert_client_error(status, &body, 400);
        assert_eq!(body["field"], field, "{body}");
    }
    let (status, _, cases) = call("GET", &format!("{}/cases", helpdesk.url), &[], None).await;
    assert_eq!((status, &cases["total"]), (200, &json!(0)), "{cases}");

    // `none` turns the help desk's faults off for one case.
    let calm = trigger_to(&helpdesk, &url, 3, "none");
    let summary = trigger::run(&calm, |_, _, _| {}).await.unwrap();
    assert!(summary.passed(), "{}", summary.text(false));
    assert!(summary.faults.is_empty(), "{:?}", summary.faults);
    assert_eq!(summary.delivered, 3);

    // `hookline replay`: each again, same webhook-id, fresh timestamp.
    let mut ids = summary.document_ids.clone();
    ids.push("7f1c2d9e-0000-4000-8000-000000000000".to_owned());
    let replayed = trigger::replay(&helpdesk.url, None, &ids).await.unwrap();
    let statuses: Vec<_> = replayed.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(202), Some(202), Some(202), Some(404)], "{replayed:?}");
    assert!(
        replayed[0].detail.starts_with("scheduled again, webhook-id msg_"),
        "{replayed:?}"
    );
    for id in &summary.document_ids {
        wait_for(Duration::from_secs(20), "the case delivered again", || async {
            let (_, _, case) = call("GET", &format!("{}/document/{id}", helpdesk.url), &[], None).await;
            (case["delivery"]["state"] == "DELIVERED" && case["delivery"]["attempts"] == 2).then_some(())
        })
        .await;
    }
    stop.send(()).unwrap();
    let totals = totals.await.unwrap();
    // A redelivery within the second of the first delivery carries the same
    // timestamp, hence the same signature: to the receiver it is a duplicate.
    assert_eq!(
        (totals.received, totals.refused, totals.duplicates + totals.replays),
        (6, 0, 3)
    );
}
