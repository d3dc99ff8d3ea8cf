//! Every spelling of an internal address, and a strict policy that reads alike.
//!
//! Finding 5 of issue 23: IPv6 spellings of the metadata address, carrier-grade
//! NAT and Azure's wireserver passed the callback policy; refusals named the
//! address a host name resolved to; and the attempt log told a closed port
//! from an open one (a port scanner for anyone with a key). `it/ssrf.rs`
//! holds the policy's first tests; these are the attacks of the review.

use std::time::Duration;

use helpdesk::config::Role;
use helpdesk::ssrf::{Preset, Rule, UNANSWERED};
use hookline_contract::{AttemptView, DeliveryState};
use hookline_tests::process::free_port;
use hookline_tests::{
    Receiver, Running, TestRedis, assert_client_error, helpdesk_settings, post_json, start_helpdesk, wait_for_delivery,
};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

const DEADLINE: Duration = Duration::from_secs(20);

/// What the 400 of every refused callback says under `CALLBACK_POLICY=strict`.
fn strict_detail() -> String {
    format!("X-Callback-Url is refused: {UNANSWERED}")
}

fn rules(raw: &[&str]) -> Vec<Rule> {
    raw.iter().map(|rule| rule.parse().unwrap()).collect()
}

/// The help desk's test settings with `CALLBACK_POLICY=strict`.
fn strict(redis: &TestRedis) -> helpdesk::Settings {
    let mut settings = helpdesk_settings(redis);
    settings.callback_preset = Preset::Strict;
    settings
}

/// `POST /document` with `callback` as X-Callback-Url.
async fn request_review(helpdesk: &Running, callback: &str) -> (u16, Value) {
    post_json(
        &format!("{}/document", helpdesk.url),
        &json!({"documentUrl": "https://example.com/a.pdf"}),
        &[("x-callback-url", callback)],
    )
    .await
}

/// Asserts a 400 `callback_refused` with the JSON envelope about
/// X-Callback-Url, and returns its detail.
async fn refused(helpdesk: &Running, callback: &str) -> String {
    let (status, answer) = request_review(helpdesk, callback).await;
    assert_eq!(status, 400, "{callback} is let through: {answer}");
    assert_eq!(
        assert_client_error(status, &answer, 400),
        "callback_refused",
        "{callback}: {answer}"
    );
    assert_eq!(answer["field"], "X-Callback-Url", "{callback}");
    answer["detail"].as_str().unwrap().to_owned()
}

/// `POST /document` that must be accepted; the new case's id.
async fn accepted(helpdesk: &Running, callback: &str) -> String {
    let (status, answer) = request_review(helpdesk, callback).await;
    assert_eq!(status, 202, "{callback}: {answer}");
    answer["documentId"].as_str().unwrap().to_owned()
}

/// The one attempt of a case that went dead at its first attempt.
async fn only_attempt(api: &Running, document_id: &str) -> AttemptView {
    let case = wait_for_delivery(&api.url, document_id, DeliveryState::Dead).await;
    assert_eq!(case.delivery.attempts, 1, "{case:?}");
    assert_eq!(case.delivery.log.len(), 1, "{case:?}");
    case.delivery.log[0].clone()
}

#[actix_web::test]
async fn the_reviews_five_spellings_are_each_refused_with_a_400_and_nothing_is_stored() {
    let redis = TestRedis::default();
    let strict = start_helpdesk(strict(&redis)).await;
    let permissive = start_helpdesk(helpdesk_settings(&redis)).await;
    let metadata = [
        "http://[::a9fe:a9fe]/latest/meta-data/",
        "http://[::ffff:0:a9fe:a9fe]/latest/meta-data/",
        "http://[2002:a9fe:a9fe::1]/latest/meta-data/",
        "http://168.63.129.16/machine?comp=goalstate",
    ];
    // Carrier-grade NAT is internal space, like 10.0.0.0/8: the default
    // (the tutorial's) lets both through; strict refuses them.
    let cgnat = "http://100.64.0.1/";

    for callback in metadata.iter().copied().chain([cgnat]) {
        assert_eq!(refused(&strict, callback).await, strict_detail(), "{callback}");
    }
    for callback in metadata {
        let detail = refused(&permissive, callback).await;
        assert!(
            detail.contains("link-local") || detail.contains("metadata"),
            "{callback}: {detail}"
        );
    }
    assert!(redis.snapshot().await.is_empty(), "a refused callback stores nothing");
}

#[actix_web::test]
async fn every_ipv6_form_and_numeric_spelling_of_an_internal_address_is_refused_with_a_400() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.callback_deny = rules(&["127.0.0.0/8"]);
    // Long enough that the one case accepted below is never delivered.
    settings.review_delay_ms = "600000".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;

    // 169.254.169.254 is refused under every configuration...
    for callback in [
        "http://[::ffff:a9fe:a9fe]/",
        "http://[::a9fe:a9fe]/",
        "http://[::169.254.169.254]/",
        "http://[::ffff:0:a9fe:a9fe]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[64:ff9b:1::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",
        "http://2852039166/",
        "http://0xa9fea9fe/",
        "http://0251.0376.0251.0376/",
        "http://169.254.43518/",
    ] {
        let detail = refused(&helpdesk, callback).await;
        assert!(detail.contains("link-local"), "{callback}: {detail}");
    }
    // ...and CALLBACK_DENY's networks catch 127.0.0.1 in every form too.
    for callback in [
        "http://[::ffff:7f00:1]:9/",
        "http://[::7f00:1]:9/",
        "http://[::ffff:0:7f00:1]:9/",
        "http://[64:ff9b::7f00:1]:9/",
        "http://[64:ff9b:1::7f00:1]:9/",
        "http://[2002:7f00:1::1]:9/",
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:9/",
        "http://2130706433:9/",
        "http://0x7f000001:9/",
        "http://0177.0.0.1:9/",
        "http://127.1:9/",
    ] {
        let detail = refused(&helpdesk, callback).await;
        assert!(
            detail.contains("matches CALLBACK_DENY 127.0.0.0/8"),
            "{callback}: {detail}"
        );
    }
    assert!(redis.snapshot().await.is_empty(), "a refused callback stores nothing");

    // The IPv6 forms are judged by the address they carry, not refused as such.
    accepted(&helpdesk, "http://[2002:808:808::1]:9/hook").await;
}

#[actix_web::test]
async fn under_strict_private_loopback_metadata_and_unresolvable_callbacks_get_one_sentence_and_no_address() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(strict(&redis)).await;
    let addresses = ["10.1.2.3", "192.168.0.10", "127.0.0.1", "::1", "169.254.169.254"];

    for callback in [
        "http://10.1.2.3:8080/hook",
        "http://192.168.0.10/hook",
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://no-such-host.invalid/hook",
    ] {
        let (status, answer) = request_review(&helpdesk, callback).await;
        assert_eq!(assert_client_error(status, &answer, 400), "callback_refused");
        assert_eq!(answer["detail"], strict_detail().as_str(), "{callback}");
        let text = answer.to_string();
        for address in addresses {
            assert!(!text.contains(address), "{callback}: {text} names {address}");
        }
    }
    assert!(redis.snapshot().await.is_empty());

    // The default policy says why, but never the address a name resolved to.
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.callback_deny = rules(&["127.0.0.0/8", "::1/128"]);
    let permissive = start_helpdesk(settings).await;
    let detail = refused(&permissive, "http://localhost:9/hook").await;
    assert!(
        detail.contains("localhost") && detail.contains("CALLBACK_DENY"),
        "{detail}"
    );
    assert!(!detail.contains("(127.0.0.1)") && !detail.contains("(::1)"), "{detail}");
}

#[actix_web::test]
async fn under_strict_the_attempt_log_reads_alike_for_a_closed_port_and_an_open_port_answering_500() {
    // The attack: a name that resolves to a public address when the case is
    // created and to 127.0.0.1 when the webhook goes out (DNS rebinding),
    // once with a closed port and once with an open one. The API below is
    // permissive, standing in for that first answer; the worker, the one
    // that connects, runs the strict policy.
    let redis = TestRedis::default();
    let mut api = helpdesk_settings(&redis);
    api.role = Role::Api;
    let api = start_helpdesk(api).await;
    let mut worker = strict(&redis);
    worker.role = Role::Worker;
    worker.retry_schedule = "none".parse().unwrap();
    let _worker = start_helpdesk(worker).await;
    let mut open = Receiver::start(500).await;
    let closed = format!("http://localhost:{}/hook", free_port());

    let to_closed = accepted(&api, &closed).await;
    let to_open = accepted(&api, &open.url.replace("127.0.0.1", "localhost")).await;
    let closed = only_attempt(&api, &to_closed).await;
    let open_port = only_attempt(&api, &to_open).await;

    assert_eq!(closed.error.as_deref(), Some(UNANSWERED), "{closed:?}");
    assert_eq!(
        (&open_port.error, open_port.status_code),
        (&closed.error, closed.status_code),
        "the attempt log tells the ports apart"
    );
    assert!(open.received.try_recv().is_err(), "the open port got nothing");
}

/// A TCP service that is not HTTP: it greets, then hangs up.
async fn not_http() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    actix_web::rt::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
        }
    });
    port
}

#[actix_web::test]
async fn under_strict_callback_allow_opens_one_internal_host_whose_silent_ports_read_like_refusals() {
    let redis = TestRedis::default();
    let mut settings = strict(&redis);
    settings.callback_allow = rules(&["127.0.0.1"]);
    settings.retry_schedule = "none".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;

    // The operator opened 127.0.0.1: its webhooks arrive.
    let mut receiver = Receiver::start(200).await;
    let document_id = accepted(&helpdesk, &receiver.url).await;
    assert_eq!(receiver.next(DEADLINE).await.body["documentId"], document_id.as_str());
    // The rest of the loopback network stays shut, in the same words.
    assert_eq!(refused(&helpdesk, "http://127.0.0.2:9/hook").await, strict_detail());

    // On the opened host, a closed port and a service that is not HTTP
    // read alike, and like a refusal.
    let closed = accepted(&helpdesk, &format!("http://127.0.0.1:{}/hook", free_port())).await;
    let greeter = accepted(&helpdesk, &format!("http://127.0.0.1:{}/hook", not_http().await)).await;
    let closed = only_attempt(&helpdesk, &closed).await;
    let greeter = only_attempt(&helpdesk, &greeter).await;
    assert_eq!(closed.error.as_deref(), Some(UNANSWERED), "{closed:?}");
    assert_eq!(
        (&greeter.error, greeter.status_code, greeter.duration_ms),
        (&closed.error, closed.status_code, closed.duration_ms),
        "the attempt log tells a closed port from a listening one"
    );
}
