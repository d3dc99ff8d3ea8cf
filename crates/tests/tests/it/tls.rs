//! HTTPS (issue 12): the help desk delivers to `https://` callbacks whose
//! certificate it trusts (the system's roots or CALLBACK_CA_FILE), presents
//! CALLBACK_CLIENT_CERT to receivers that demand one, and logs a certificate
//! it does not trust as a failed attempt that is retried; the consumer
//! reaches an `https://` HELPDESK_URL. Every certificate is made by the test.

use std::time::Duration;

use hookline_contract::{CaseView, DeliveryState};
use hookline_kit::http::source_chain;
use hookline_tests::tls::{SERVER_NAMES, TestCa, TlsProxy, server_config};
use hookline_tests::{
    Receiver, TestDb, TestRedis, consumer_settings, helpdesk_settings, post_json, post_review, start_consumer,
    start_helpdesk, wait_for, wait_for_delivery,
};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(20);

/// `POST /document` with `callback` as X-Callback-Url; returns the documentId.
async fn request_review(helpdesk_url: &str, callback: &str) -> String {
    let (status, answer) = post_json(
        &format!("{helpdesk_url}/document"),
        &json!({"documentUrl": "https://example.com/a.pdf"}),
        &[("x-callback-url", callback)],
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    answer["documentId"].as_str().unwrap().to_owned()
}

/// The error of every attempt in the case's log.
fn attempt_errors(case: &CaseView) -> Vec<String> {
    case.delivery
        .log
        .iter()
        .map(|attempt| attempt.error.clone().unwrap_or_default())
        .collect()
}

#[actix_web::test]
async fn an_https_callback_whose_certificate_callback_ca_file_trusts_is_delivered() {
    let ca = TestCa::new("receiver CA");
    let mut receiver = Receiver::start_tls(200, ca.server_config(None)).await;
    assert!(receiver.url.starts_with("https://localhost:"), "{}", receiver.url);
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.callback_ca_file = Some(ca.ca_file.clone());
    let helpdesk = start_helpdesk(settings).await;

    let document_id = request_review(&helpdesk.url, &receiver.url).await;
    let webhook = receiver.next(DEADLINE).await;
    assert_eq!(webhook.body["documentId"], document_id.as_str());
    assert!(
        webhook.headers.contains_key("webhook-signature"),
        "{:?}",
        webhook.headers
    );
    let case = wait_for_delivery(&helpdesk.url, &document_id, DeliveryState::Delivered).await;
    assert_eq!(case.delivery.attempts, 1, "{case:?}");
    assert_eq!(attempt_errors(&case), vec![String::new()]);
}

#[actix_web::test]
async fn an_https_callback_whose_certificate_is_not_trusted_fails_as_such_and_is_retried() {
    // The same receiver, but the help desk was not told about its CA.
    let ca = TestCa::new("unknown CA");
    let mut receiver = Receiver::start_tls(200, ca.server_config(None)).await;
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;

    let document_id = request_review(&helpdesk.url, &receiver.url).await;
    let case = wait_for_delivery(&helpdesk.url, &document_id, DeliveryState::Dead).await;
    // A failed attempt, not a refusal: the whole RETRY_SCHEDULE of the
    // test settings (three retries) was tried.
    assert_eq!(case.delivery.attempts, 4, "{case:?}");
    for error in attempt_errors(&case) {
        assert_eq!(
            error,
            "certificate not trusted: issued by a certificate authority that is not trusted (UnknownIssuer)"
        );
    }
    assert!(
        receiver.received.try_recv().is_err(),
        "nothing may reach an untrusted receiver"
    );
}

#[actix_web::test]
async fn a_trusted_certificate_issued_for_another_name_is_not_trusted() {
    // The host of the URL is what the certificate must name (and the SNI).
    let ca = TestCa::new("receiver CA");
    let elsewhere = server_config(ca.server_certificate(&["hooks.example.com"]), None);
    let receiver = Receiver::start_tls(200, elsewhere).await;
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.callback_ca_file = Some(ca.ca_file.clone());
    settings.retry_schedule = "none".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;

    let document_id = request_review(&helpdesk.url, &receiver.url).await;
    let case = wait_for_delivery(&helpdesk.url, &document_id, DeliveryState::Dead).await;
    assert_eq!(
        attempt_errors(&case),
        vec![
            "certificate not trusted: certificate not valid for name \"localhost\"; certificate is only valid for DnsName(\"hooks.example.com\")"
                .to_owned()
        ]
    );
}

#[actix_web::test]
async fn a_callback_that_demands_a_client_certificate_gets_callback_client_cert_and_refuses_us_without() {
    let server_ca = TestCa::new("receiver CA");
    let client_ca = TestCa::new("client CA");
    let client = client_ca.client_certificate("helpdesk-client");
    let mut receiver = Receiver::start_tls(200, server_ca.server_config(Some(&client_ca))).await;

    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.callback_ca_file = Some(server_ca.ca_file.clone());
    settings.retry_schedule = "none".parse().unwrap();
    let anonymous = start_helpdesk(settings.clone()).await;
    let document_id = request_review(&anonymous.url, &receiver.url).await;
    let case = wait_for_delivery(&anonymous.url, &document_id, DeliveryState::Dead).await;
    let errors = attempt_errors(&case);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("TLS handshake failed: received fatal alert: CertificateRequired"),
        "{errors:?}"
    );

    let redis = TestRedis::default();
    settings.redis_prefix = redis.prefix.clone();
    settings.callback_client_cert = Some(client.cert_file.clone());
    settings.callback_client_key = Some(client.key_file.clone());
    let identified = start_helpdesk(settings).await;
    let document_id = request_review(&identified.url, &receiver.url).await;
    let webhook = receiver.next(DEADLINE).await;
    assert_eq!(webhook.body["documentId"], document_id.as_str());
    wait_for_delivery(&identified.url, &document_id, DeliveryState::Delivered).await;
}

#[actix_web::test]
async fn the_help_desk_refuses_to_start_with_half_a_client_identity_or_an_unusable_ca_file() {
    let ca = TestCa::new("some CA");
    let client = ca.client_certificate("client");
    let redis = TestRedis::default();
    let refusal = |settings: helpdesk::Settings| async move {
        let error = helpdesk::Application::build(settings).await.err().expect("must refuse");
        source_chain(&error)
    };

    let mut settings = helpdesk_settings(&redis);
    settings.callback_client_cert = Some(client.cert_file.clone());
    assert_eq!(
        refusal(settings).await,
        "invalid TLS settings: CALLBACK_CLIENT_CERT and CALLBACK_CLIENT_KEY must be given together (mutual TLS needs both)"
    );

    let mut settings = helpdesk_settings(&redis);
    settings.callback_ca_file = Some(ca.dir().join("missing.pem"));
    let error = refusal(settings).await;
    assert!(
        error.starts_with("invalid TLS settings: CALLBACK_CA_FILE: cannot read ") && error.contains("missing.pem"),
        "{error}"
    );

    // A key where the certificate belongs.
    let mut settings = helpdesk_settings(&redis);
    settings.callback_client_cert = Some(client.key_file.clone());
    settings.callback_client_key = Some(client.key_file.clone());
    let error = refusal(settings).await;
    assert!(
        error.starts_with("invalid TLS settings: CALLBACK_CLIENT_CERT: ")
            && error.ends_with("holds no certificate in PEM form"),
        "{error}"
    );
}

/// A help desk behind a TLS-terminating proxy whose certificate comes from `ca`.
async fn helpdesk_behind_tls(redis: &TestRedis, ca: &TestCa) -> (hookline_tests::Running, TlsProxy) {
    let helpdesk = start_helpdesk(helpdesk_settings(redis)).await;
    let upstream = helpdesk.url.trim_start_matches("http://").to_owned();
    let proxy = TlsProxy::start(upstream, server_config(ca.server_certificate(SERVER_NAMES), None)).await;
    (helpdesk, proxy)
}

#[actix_web::test]
async fn the_consumer_reaches_an_https_help_desk_that_helpdesk_ca_file_trusts() {
    let ca = TestCa::new("help desk CA");
    let (db, redis) = (TestDb::create().await, TestRedis::default());
    let (_helpdesk, proxy) = helpdesk_behind_tls(&redis, &ca).await;
    let mut settings = consumer_settings(&db, &proxy.url);
    settings.helpdesk_ca_file = Some(ca.ca_file.clone());
    let consumer = start_consumer(settings).await;

    let (status, review) = post_review(&consumer.url, "https://example.com/a.pdf").await;
    assert_eq!(status, 201, "{review}");
    assert!(review["documentId"].is_string(), "the help desk answered: {review}");
    assert!(proxy.handshakes() >= 1, "the call went past the proxy's TLS");
    // The webhook comes back (over plain HTTP) and decides the review.
    wait_for(DEADLINE, "the review to be decided", || async {
        let rows = db.reviews().await;
        (!rows.is_empty() && rows.iter().all(|row| row.status().is_decided())).then_some(())
    })
    .await;
}

#[actix_web::test]
async fn the_consumer_does_not_talk_to_an_https_help_desk_it_does_not_trust() {
    let ca = TestCa::new("help desk CA");
    let (db, redis) = (TestDb::create().await, TestRedis::default());
    let (_helpdesk, proxy) = helpdesk_behind_tls(&redis, &ca).await;
    let mut settings = consumer_settings(&db, &proxy.url);
    settings.helpdesk_timeout = Duration::from_secs(1);
    let consumer = start_consumer(settings).await;

    // As with a help desk that is down: the review is kept, without the help
    // desk's documentId, for the reconciler to send again.
    let (status, review) = post_review(&consumer.url, "https://example.com/a.pdf").await;
    assert_eq!(status, 201, "{review}");
    assert!(review["documentId"].is_null(), "{review}");
    assert!(proxy.failed_handshakes() >= 1, "no handshake was refused");
    assert_eq!(proxy.handshakes(), 0);
    assert!(redis.snapshot().await.is_empty(), "the help desk got nothing");
}
