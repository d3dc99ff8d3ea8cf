//! The callback policy (issue 4): link-local and metadata addresses are
//! never called, CALLBACK_ALLOW/CALLBACK_DENY tighten or widen the rest, the
//! address is checked again when the webhook goes out, and redirects are
//! never followed.

use std::time::Duration;

use actix_web::{App, HttpResponse, web};
use helpdesk::config::Role;
use helpdesk::ssrf::Rule;
use hookline_contract::DeliveryState;
use hookline_tests::process::{free_port, helpdesk_process};
use hookline_tests::{
    Receiver, Running, TestRedis, assert_client_error, helpdesk_settings, post_json, start_helpdesk, wait_for_delivery,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(20);

fn rules(raw: &[&str]) -> Vec<Rule> {
    raw.iter().map(|rule| rule.parse().unwrap()).collect()
}

/// `POST /document` with `callback` as X-Callback-Url.
async fn request_review(helpdesk_url: &str, callback: &str) -> (u16, Value) {
    post_json(
        &format!("{helpdesk_url}/document"),
        &json!({"documentUrl": "https://example.com/a.pdf"}),
        &[("x-callback-url", callback)],
    )
    .await
}

/// Asserts a 400 `callback_refused` about X-Callback-Url; returns its detail.
#[track_caller]
fn assert_refused(status: u16, answer: &Value, callback: &str) -> String {
    assert_eq!(
        assert_client_error(status, answer, 400),
        "callback_refused",
        "callback {callback}"
    );
    assert_eq!(answer["field"], "X-Callback-Url");
    answer["detail"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn metadata_and_link_local_callbacks_are_refused_with_a_400_and_nothing_is_stored() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;

    for callback in [
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/x",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/latest/meta-data",
        "http://100.100.100.200/latest/meta-data",
        "http://0.0.0.0:8080/hook",
    ] {
        let (status, answer) = request_review(&helpdesk.url, callback).await;
        let detail = assert_refused(status, &answer, callback);
        assert!(
            detail.contains("link-local") || detail.contains("metadata") || detail.contains("unspecified"),
            "{callback}: {detail}"
        );
    }
    let (status, answer) = request_review(&helpdesk.url, "http://169.254.169.254/").await;
    assert_eq!(
        assert_refused(status, &answer, "169.254.169.254"),
        "X-Callback-Url is refused: 169.254.169.254 is a link-local/metadata address"
    );
    assert!(redis.snapshot().await.is_empty(), "a refused callback stores nothing");
}

#[actix_web::test]
async fn a_callback_host_that_does_not_resolve_is_refused() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    let (status, answer) = request_review(&helpdesk.url, "http://no-such-host.invalid/hook").await;
    let detail = assert_refused(status, &answer, "no-such-host.invalid");
    assert!(detail.contains("does not resolve"), "{detail}");
    assert!(redis.snapshot().await.is_empty());
}

#[actix_web::test]
async fn with_callback_deny_on_loopback_a_loopback_callback_is_refused_by_address_and_by_name() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.callback_deny = rules(&["127.0.0.0/8", "::1/128"]);
    // Long enough that the one accepted case below is never delivered.
    settings.review_delay_ms = "600000".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;
    let receiver = Receiver::start(200).await;
    let by_name = receiver.url.replace("127.0.0.1", "localhost");

    for callback in [receiver.url.as_str(), by_name.as_str(), "http://[::1]:9/hook"] {
        let (status, answer) = request_review(&helpdesk.url, callback).await;
        let detail = assert_refused(status, &answer, callback);
        assert!(detail.contains("matches CALLBACK_DENY"), "{callback}: {detail}");
    }
    let (status, answer) = request_review(&helpdesk.url, &receiver.url).await;
    assert_eq!(
        assert_refused(status, &answer, &receiver.url),
        "X-Callback-Url is refused: 127.0.0.1 matches CALLBACK_DENY 127.0.0.0/8"
    );
    // Other addresses are still fine.
    let (status, answer) = request_review(&helpdesk.url, "http://10.0.0.1:9/hook").await;
    assert_eq!(status, 202, "{answer}");
}

#[actix_web::test]
async fn callback_allow_opens_one_address_inside_a_denied_network_and_the_webhook_arrives() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.callback_allow = rules(&["127.0.0.1/32"]);
    settings.callback_deny = rules(&["127.0.0.0/8"]);
    let helpdesk = start_helpdesk(settings).await;
    let mut receiver = Receiver::start(200).await;

    let (status, accepted) = request_review(&helpdesk.url, &receiver.url).await;
    assert_eq!(status, 202, "{accepted}");
    let webhook = receiver.next(DEADLINE).await;
    assert_eq!(webhook.body["documentId"], accepted["documentId"]);

    // The rest of 127.0.0.0/8 stays denied, and ALLOW alone is an allow-list.
    let (status, answer) = request_review(&helpdesk.url, "http://127.0.0.2:9/hook").await;
    let detail = assert_refused(status, &answer, "127.0.0.2");
    assert!(detail.contains("CALLBACK_DENY 127.0.0.0/8"), "{detail}");
    let (status, answer) = request_review(&helpdesk.url, "http://10.0.0.1:9/hook").await;
    let detail = assert_refused(status, &answer, "10.0.0.1");
    assert!(detail.contains("no CALLBACK_ALLOW rule"), "{detail}");
}

#[actix_web::test]
async fn a_callback_allowed_when_accepted_is_checked_again_at_delivery_and_dead_lettered_at_once() {
    // The API accepts the callback under the default policy; the worker,
    // which denies loopback, is the one that would connect. This is what a
    // name that re-resolves elsewhere after the check (DNS rebinding) meets.
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.role = Role::Api;
    let api = start_helpdesk(settings).await;
    let mut receiver = Receiver::start(200).await;
    let callback = receiver.url.replace("127.0.0.1", "localhost");

    let (status, accepted) = request_review(&api.url, &callback).await;
    assert_eq!(status, 202, "{accepted}");
    let document_id = accepted["documentId"].as_str().unwrap();

    let _worker = helpdesk_process(
        &redis,
        free_port(),
        &[("HELPDESK_ROLE", "worker"), ("CALLBACK_DENY", "127.0.0.0/8,::1/128")],
    )
    .await;
    let case = wait_for_delivery(&api.url, document_id, DeliveryState::Dead).await;
    assert_eq!(case.delivery.attempts, 1, "no retries: {case:?}");
    let error = case.delivery.last_error.as_deref().unwrap();
    assert!(
        error.starts_with("refused by the callback policy: localhost ("),
        "{error}"
    );
    assert!(error.contains("matches CALLBACK_DENY"), "{error}");
    assert_eq!(case.delivery.log.len(), 1);
    assert_eq!(case.delivery.log[0].status_code, None, "nothing was sent");
    assert!(receiver.received.try_recv().is_err(), "the receiver got nothing");
}

/// A server that answers every request with a 302 to `location`, and
/// reports each request it gets.
struct Redirector {
    url: String,
    hits: mpsc::UnboundedReceiver<()>,
    _server: Running,
}

impl Redirector {
    fn start(location: String) -> Self {
        let (tx, hits) = mpsc::unbounded_channel();
        let server = Running::serve(move || {
            let (tx, location) = (tx.clone(), location.clone());
            App::new().default_service(web::to(move || {
                let _ = tx.send(());
                let location = location.clone();
                async move { HttpResponse::Found().insert_header(("location", location)).finish() }
            }))
        });
        Self {
            url: format!("{}/hook", server.url),
            hits,
            _server: server,
        }
    }
}

#[actix_web::test]
async fn a_redirect_from_the_callback_is_not_followed_and_counts_as_a_failed_attempt() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.retry_schedule = "none".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;
    let mut elsewhere = Receiver::start(200).await;
    let mut redirector = Redirector::start(elsewhere.url.clone());

    let (status, accepted) = request_review(&helpdesk.url, &redirector.url).await;
    assert_eq!(status, 202, "{accepted}");
    let document_id = accepted["documentId"].as_str().unwrap();
    let case = wait_for_delivery(&helpdesk.url, document_id, DeliveryState::Dead).await;

    assert_eq!(case.delivery.attempts, 1, "{case:?}");
    assert_eq!(case.delivery.last_error.as_deref(), Some("HTTP 302"));
    assert_eq!(case.delivery.log[0].status_code, Some(302));
    assert!(redirector.hits.try_recv().is_ok(), "the callback was called");
    assert!(
        elsewhere.received.try_recv().is_err(),
        "the redirect target got nothing"
    );
}
