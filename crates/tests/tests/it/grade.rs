//! `hookline grade` against real senders: our help desk (on a real Redis,
//! sending six reviews through `hookline trigger`) must get full marks; a
//! naive sender (redirects followed, a fixed 1 s retry that ignores
//! `Retry-After`) must lose exactly the marks for what it does wrong.

use std::collections::BTreeSet;
use std::time::Duration;

use hookline_cli::check::Signer;
use hookline_cli::grade::{Check, GradeSettings, Grader, Report};
use hookline_cli::trigger::{self, Trigger};
use hookline_contract::dialect::Dialect;
use hookline_tests::{TestRedis, helpdesk_settings, naive_sender, secret_set, start_helpdesk};

/// The hang and the slow body: longer than both senders' deadlines (the
/// help desk's 3 s `DELIVERY_TIMEOUT` below, awc's default 5 s), short
/// enough to keep the test short.
const HANG: Duration = Duration::from_secs(8);

fn grader(retry_after: u64) -> Grader {
    let settings = GradeSettings {
        signer: Some(Signer::Standard(secret_set())),
        dialect: Dialect::Standard,
        hang: HANG,
        retry_after: Duration::from_secs(retry_after),
        wait: Duration::from_secs(90),
        quiet: Duration::from_secs(3),
    };
    Grader::build(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), settings).unwrap()
}

fn lost(report: &Report) -> BTreeSet<&'static str> {
    report.lost().map(Check::name).collect()
}

#[actix_web::test]
async fn our_help_desk_gets_full_marks() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.retry_schedule = "1s,2s,4s,8s".parse().unwrap();
    settings.delivery_timeout = Duration::from_secs(3);
    let helpdesk = start_helpdesk(settings).await;
    let grader = grader(2);
    let to = grader.url.clone();
    let graded = actix_web::rt::spawn(grader.run());

    let trigger = Trigger {
        helpdesk: helpdesk.url.clone(),
        to,
        count: 6,
        chaos: Some("none".parse().unwrap()),
        accept_ratio: None,
        api_key: None,
        dialect: None,
        wait: Duration::from_secs(90),
    };
    let summary = trigger::run(&trigger, |_, _, _| {}).await.unwrap();
    let report = graded.await.unwrap();

    assert_eq!(summary.created, 6, "{}", summary.text(false));
    assert_eq!(report.messages_seen, 6, "{}", report.table(false));
    assert!(!report.wait_ran_out, "{}", report.table(false));
    assert!(report.passed(), "{}", report.table(false));
    // What trigger saw agrees: message 3 dead on its 410, the rest delivered.
    assert_eq!((summary.delivered, summary.dead), (5, 1), "{}", summary.text(false));
}

#[actix_web::test]
async fn a_sender_that_follows_redirects_and_ignores_retry_after_loses_those_marks() {
    let grader = grader(3);
    let url = grader.url.clone();
    let graded = actix_web::rt::spawn(grader.run());

    let got = naive_sender::send_many(&url, &secret_set(), 6).await;
    let report = graded.await.unwrap();

    assert_eq!(report.messages_seen, 6, "{}", report.table(false));
    assert!(
        got.iter().all(|statuses| statuses.len() <= naive_sender::ATTEMPTS),
        "{got:?}"
    );
    assert_eq!(
        lost(&report),
        BTreeSet::from([
            Check::NoRedirects.name(),
            Check::HonoursRetryAfter.name(),
            // Its fixed 1 s retry is no back-off either.
            Check::BacksOff.name(),
        ]),
        "{}",
        report.table(false)
    );
}
