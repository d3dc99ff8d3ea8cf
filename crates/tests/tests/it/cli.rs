use std::collections::BTreeSet;
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hookline_cli::check::{self, Case, Report, Signer, Target};
use hookline_contract::asymmetric::SigningKey;
use hookline_contract::dialect::{Delivery, Dialect};
use hookline_contract::headers;
use hookline_tests::{Running, TestDb, closed_port, consumer_settings, secret_set, start_consumer, start_listener};

async fn check(url: &str) -> Report {
    let target = Target {
        url: url.to_owned(),
        signer: Signer::Standard(secret_set()),
        timeout: Duration::from_secs(5),
        payload: None,
    };
    check::run(&target, |_, _| {}).await.unwrap()
}

fn failed(report: &Report) -> BTreeSet<String> {
    report.failed().map(|case| format!("{case:?}")).collect()
}

fn names(cases: &[Case]) -> BTreeSet<String> {
    cases.iter().map(|case| format!("{case:?}")).collect()
}

#[actix_web::test]
async fn our_consumer_passes_every_case_of_hookline_check() {
    let db = TestDb::create().await;
    let helpdesk = format!("http://127.0.0.1:{}", closed_port());
    let consumer = start_consumer(consumer_settings(&db, &helpdesk)).await;

    let report = check(&format!("{}/document/update", consumer.url)).await;

    assert!(report.passed(), "{}", report.table(false));
    assert_eq!(report.outcomes.len(), Case::ALL.len());
    // The valid webhook's made-up documentId is unknown to it: 404 is its
    // accepting answer, and only the refusals tell a wrong URL apart.
    let wrong_path = check(&format!("{}/document/updat", consumer.url)).await;
    assert!(!wrong_path.passed());
    assert!(wrong_path.hint.is_some(), "{}", wrong_path.table(false));
    assert!(report.hint.is_none());
}

#[actix_web::test]
async fn a_receiver_that_verifies_nothing_fails_the_forged_stale_and_missing_header_cases() {
    let naive = Running::serve(|| App::new().default_service(web::to(|| async { HttpResponse::Ok().finish() })));

    let report = check(&naive.url).await;

    assert!(!report.passed());
    let expected = names(&[
        Case::StaleTimestamp,
        Case::FutureTimestamp,
        Case::ForgedSignature,
        Case::OtherSecret,
        Case::TamperedBody,
        Case::MissingWebhookId,
        Case::MissingTimestamp,
        Case::MissingSignature,
        Case::UnknownVersionOnly,
        Case::OversizedBody,
    ]);
    assert_eq!(failed(&report), expected, "{}", report.table(false));
    let table = report.table(false);
    assert!(
        table.contains("forged signature") && table.contains("the signature is not checked"),
        "{table}"
    );
    assert!(
        table.contains("timestamp 10 min old") && table.contains("the timestamp is not checked"),
        "{table}"
    );
}

/// Verifies the signature, but against the message's own timestamp, so it
/// never notices a stale one.
async fn verifies_signatures_only(request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let timestamp = header(headers::WEBHOOK_TIMESTAMP);
    let its_own_clock = timestamp.parse().unwrap_or(0);
    match secret_set().verify(
        header(headers::WEBHOOK_ID),
        timestamp,
        header(headers::WEBHOOK_SIGNATURE),
        &body,
        its_own_clock,
    ) {
        Ok(()) => HttpResponse::Ok().finish(),
        Err(_) => HttpResponse::Unauthorized().finish(),
    }
}

#[actix_web::test]
async fn a_receiver_that_ignores_timestamps_fails_only_the_stale_and_future_cases() {
    let lax = Running::serve(|| {
        App::new()
            .app_data(web::PayloadConfig::new(64 * 1024))
            .default_service(web::post().to(verifies_signatures_only))
    });

    let report = check(&lax.url).await;

    assert_eq!(
        failed(&report),
        names(&[Case::StaleTimestamp, Case::FutureTimestamp]),
        "{}",
        report.table(false)
    );
}

#[actix_web::test]
async fn a_receiver_that_answers_404_to_a_forgery_fails_it_but_passes_the_valid_webhook() {
    let lookup_first = Running::serve(|| {
        App::new()
            .app_data(web::PayloadConfig::new(64 * 1024))
            .default_service(web::post().to(|_: web::Bytes| async { HttpResponse::NotFound().finish() }))
    });

    let report = check(&lookup_first.url).await;

    let failed = failed(&report);
    assert!(
        failed.contains("ForgedSignature") && failed.contains("StaleTimestamp"),
        "{failed:?}"
    );
    assert!(
        !failed.contains("Valid") && !failed.contains("UnknownFields"),
        "{failed:?}"
    );
    assert!(
        report
            .table(false)
            .contains("looked the document up before checking the signature")
    );
}

/// A receiver that verifies `dialect`'s signature under `SECRET_OF_PROVIDER`,
/// as that provider's library does, and caps the body at 64 KiB.
fn provider_receiver(dialect: Dialect) -> Running {
    Running::serve(move || {
        App::new()
            .app_data(web::PayloadConfig::new(64 * 1024))
            .default_service(web::to(move |request: HttpRequest, body: web::Bytes| async move {
                let key = dialect.key(SECRET_OF_PROVIDER).unwrap();
                let header = |name: &str| {
                    request
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                match dialect.verify(&key, header, &body, chrono::Utc::now().timestamp()) {
                    Ok(()) => HttpResponse::NoContent().finish(),
                    Err(why) => HttpResponse::Unauthorized().body(why.to_string()),
                }
            }))
    })
}

const SECRET_OF_PROVIDER: &str = "whsec_a-provider-s-secret";

async fn check_in(dialect: Dialect, url: &str) -> Report {
    let target = Target {
        url: url.to_owned(),
        signer: Signer::new(dialect, SECRET_OF_PROVIDER).unwrap(),
        timeout: Duration::from_secs(5),
        payload: None,
    };
    check::run(&target, |_, _| {}).await.unwrap()
}

#[actix_web::test]
async fn check_speaks_each_provider_s_dialect_and_says_which_cases_do_not_apply() {
    let naive = Running::serve(|| App::new().default_service(web::to(|| async { HttpResponse::Ok().finish() })));
    for dialect in [Dialect::Stripe, Dialect::Github, Dialect::Shopify, Dialect::Slack] {
        let verifying = provider_receiver(dialect);
        let report = check_in(dialect, &verifying.url).await;
        assert!(report.passed(), "{dialect}:\n{}", report.table(false));
        assert_eq!(report.dialect, dialect.to_string());
        let skipped: BTreeSet<String> = report.not_applicable.iter().map(|n| format!("{:?}", n.case)).collect();
        let mut expected = names(&[
            Case::MissingWebhookId,
            Case::UnknownVersionOnly,
            Case::UnknownVersionAndV1,
        ]);
        if !dialect.signs_timestamp() {
            expected.extend(names(&[Case::StaleTimestamp, Case::FutureTimestamp]));
        }
        if dialect != Dialect::Slack {
            expected.extend(names(&[Case::MissingTimestamp]));
        }
        if dialect == Dialect::Stripe {
            expected.extend(names(&[Case::FutureTimestamp]));
        }
        assert_eq!(skipped, expected, "{dialect}");
        assert!(report.table(false).contains("n/a in the"), "{}", report.table(false));

        // A receiver that verifies nothing fails, naming the cases.
        let report = check_in(dialect, &naive.url).await;
        let mut must_fail = names(&[
            Case::ForgedSignature,
            Case::OtherSecret,
            Case::TamperedBody,
            Case::MissingSignature,
            Case::OversizedBody,
        ]);
        if dialect.signs_timestamp() {
            must_fail.extend(names(&[Case::StaleTimestamp]));
        }
        if dialect == Dialect::Slack {
            must_fail.extend(names(&[Case::FutureTimestamp, Case::MissingTimestamp]));
        }
        assert_eq!(failed(&report), must_fail, "{dialect}:\n{}", report.table(false));
    }
}

#[actix_web::test]
async fn listen_verifies_in_a_provider_s_dialect_and_knows_a_stripe_event_again_by_its_id() {
    let secret = "whsec_test_4eC39HqLyjWDarjtT1zdp7dc";
    let listening = start_listener(Some(Signer::new(Dialect::Stripe, secret).unwrap()), Dialect::Stripe);
    let url = format!("{}/stripe", listening.url);
    let key = Dialect::Stripe.key(secret).unwrap();
    let body = br#"{"id":"evt_1","type":"invoice.paid","data":{"object":{}}}"#;
    let send = async |timestamp: i64, body: &[u8]| {
        let delivery = Delivery {
            id: "unused",
            event: "invoice.paid",
            timestamp,
            body,
        };
        let mut request = awc::Client::new().post(&url);
        for (name, value) in Dialect::Stripe.sign(&key, &delivery) {
            request = request.insert_header((name, value));
        }
        request.send_body(body.to_vec()).await.unwrap().status().as_u16()
    };
    let now = chrono::Utc::now().timestamp();
    assert_eq!(send(now, body).await, 200, "signed as Stripe signs");
    assert_eq!(send(now, body).await, 200, "the same request again: a duplicate");
    assert_eq!(send(now + 1, body).await, 200, "signed anew: a replay");
    assert_eq!(send(now - 600, body).await, 401, "too old");
    let mut tampered = body.to_vec();
    tampered[8] = b'2';
    let signed_then_changed = {
        let delivery = Delivery {
            id: "unused",
            event: "invoice.paid",
            timestamp: now,
            body,
        };
        let mut request = awc::Client::new().post(&url);
        for (name, value) in Dialect::Stripe.sign(&key, &delivery) {
            request = request.insert_header((name, value));
        }
        request.send_body(tampered).await.unwrap().status().as_u16()
    };
    assert_eq!(signed_then_changed, 401);
    let _ = listening.stop.send(());
    let totals = listening.totals.await.unwrap();
    assert_eq!(
        (
            totals.received,
            totals.verified,
            totals.refused,
            totals.duplicates,
            totals.replays
        ),
        (5, 3, 2, 1, 1),
        "{totals:?}"
    );
}

#[actix_web::test]
async fn check_signs_with_an_ed25519_key_and_listen_verifies_with_only_its_public_key() {
    let key = SigningKey::from_seed(rand::random());
    let public = Signer::new(Dialect::Standard, &key.public_key()).unwrap();
    let listening = start_listener(Some(public), Dialect::Standard);
    let url = format!("{}/v1a", listening.url);
    let secret = format!("whsk_{}", BASE64.encode(key.seed()));
    let target = Target {
        url: url.clone(),
        signer: Signer::new(Dialect::Standard, &secret).unwrap(),
        timeout: Duration::from_secs(5),
        payload: None,
    };
    let report = check::run(&target, |_, _| {}).await.unwrap();
    let signature_cases = names(&[
        Case::Valid,
        Case::StaleTimestamp,
        Case::FutureTimestamp,
        Case::ForgedSignature,
        Case::OtherSecret,
        Case::TamperedBody,
        Case::MissingSignature,
        Case::UnknownVersionOnly,
        Case::UnknownVersionAndV1,
    ]);
    let failed_there: BTreeSet<String> = failed(&report).intersection(&signature_cases).cloned().collect();
    assert!(failed_there.is_empty(), "{}", report.table(false));
    // Public keys only verify: check refuses to run with one.
    let target = Target {
        url: url.clone(),
        signer: Signer::new(Dialect::Standard, &key.public_key()).unwrap(),
        timeout: Duration::from_secs(5),
        payload: None,
    };
    assert!(matches!(
        check::run(&target, |_, _| {}).await,
        Err(check::CheckError::CannotSign)
    ));
    let _ = listening.stop.send(());
    let totals = listening.totals.await.unwrap();
    assert!(totals.verified >= 3 && totals.refused >= 6, "{totals:?}");
}

/// What CI systems read: `hookline check --junit` through the real binary,
/// read back by a JUnit parser, says what its own `--json` report says,
/// case by case — failures with their explanation, the cases the dialect
/// cannot say as skipped.
#[actix_web::test]
async fn hookline_check_junit_is_read_back_by_a_junit_parser_as_the_report_says() {
    let naive = Running::serve(|| App::new().default_service(web::to(|| async { HttpResponse::Ok().finish() })));
    let junit = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("check-{}.xml", rand::random::<u64>()));

    let url = naive.url.clone();
    let junit_path = junit.clone();
    let output = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new(hookline_tests::process::binary("hookline"))
            .args([
                "check",
                &url,
                "--secret",
                "a provider's secret",
                "--dialect",
                "github",
                "--json",
            ])
            .arg("--junit")
            .arg(&junit_path)
            .env_remove("WEBHOOK_SECRET")
            .output()
            .unwrap()
    })
    .await
    .unwrap();

    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let suites = junit_parser::from_reader(std::io::BufReader::new(std::fs::File::open(&junit).unwrap())).unwrap();
    let suite = &suites.suites[0];
    let outcomes = report["outcomes"].as_array().unwrap();
    let not_applicable = report["not_applicable"].as_array().unwrap();
    let failing: BTreeSet<&str> = outcomes
        .iter()
        .filter(|o| o["passed"] == false)
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(!failing.is_empty() && !not_applicable.is_empty());
    assert_eq!(suite.cases.len(), outcomes.len() + not_applicable.len());
    assert_eq!(suite.tests as usize, suite.cases.len());
    assert_eq!(suite.failures as usize, failing.len());
    assert_eq!(suite.skipped as usize, not_applicable.len());
    for case in &suite.cases {
        let name = case.original_name.as_str();
        assert_eq!(case.classname.as_deref(), Some("hookline.check.github"));
        if failing.contains(name) {
            let failure = case.status.failure_as_ref();
            let explanation = outcomes.iter().find(|o| o["name"] == name).unwrap()["explanation"]
                .as_str()
                .unwrap();
            assert_eq!(failure.message, explanation, "{name}");
        } else if let Some(skipped) = not_applicable.iter().find(|s| s["name"] == name) {
            assert!(case.status.is_skipped(), "{name}: {:?}", case.status);
            assert_eq!(case.status.skipped_as_ref().message, skipped["why"].as_str().unwrap());
        } else {
            assert!(case.status.is_success(), "{name}: {:?}", case.status);
        }
    }
    std::fs::remove_file(&junit).unwrap();
}
