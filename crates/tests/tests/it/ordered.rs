//! Ordered subscriptions (`"ordered": true`): a subscription's events are
//! delivered one at a time, in the order they happened; a failing one holds
//! the rest back until it is delivered or dead; the tenant's other
//! subscriptions are not held. The order holds under retries, across a
//! worker killed mid-delivery, and with the store in several partitions (a
//! tenant with an ordered subscription has its cases in its home partition).
//!
//! The receiver here is scripted: it answers the n-th distinct message it
//! sees as told (fail a few times, fail always, hold the first attempt), and
//! records every attempt and how many were in flight at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use helpdesk::store::partition_of;
use hookline_tests::api::{auth, post_document, subscribe_with};
use hookline_tests::process::{free_port, helpdesk_process};
use hookline_tests::redis::TestRedis;
use hookline_tests::{Running, call, helpdesk_settings, start_helpdesk};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);
const ACME: &str = "Bearer acme-key-0123456789abcdef";
const GLOBEX: &str = "Bearer globex-key-0123456789abcdef";
const KEYS: &str = "operator-key-0123456789abcdef,acme:acme-key-0123456789abcdef,globex:globex-key-0123456789abcdef";

/// How the receiver answers the attempts of its n-th distinct message.
#[derive(Clone, Copy, Default)]
struct Script {
    /// Answer 500 to its first `fail` attempts.
    fail: u32,
    /// Hold its first attempt this long before answering.
    hold_first: Option<Duration>,
}

/// One attempt as the receiver saw it.
#[derive(Clone, Debug)]
struct Attempt {
    webhook_id: String,
    event: String,
    document_id: String,
    answered: u16,
}

#[derive(Default)]
struct State {
    scripts: HashMap<usize, Script>,
    /// Every message's place, by webhook-id, in the order first seen.
    seen: Vec<String>,
    attempts: Vec<Attempt>,
    in_flight: usize,
    most_in_flight: usize,
    /// Attempts of each message so far.
    tries: HashMap<String, u32>,
}

/// Decrements the count in flight however the attempt ends (a sender that
/// hangs up drops the handler).
struct InFlight(Arc<Mutex<State>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock().unwrap().in_flight -= 1;
    }
}

struct Scripted {
    url: String,
    state: Arc<Mutex<State>>,
    _server: actix_web::dev::ServerHandle,
}

impl Scripted {
    async fn start(scripts: &[(usize, Script)], hold_each: Duration) -> Self {
        let state = Arc::new(Mutex::new(State {
            scripts: scripts.iter().copied().collect(),
            ..State::default()
        }));
        let shared = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(shared.clone()))
                .app_data(web::Data::new(hold_each))
                .default_service(web::to(answer))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            state,
            _server: handle,
        }
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.state.lock().unwrap().attempts.clone()
    }

    fn most_in_flight(&self) -> usize {
        self.state.lock().unwrap().most_in_flight
    }

    /// Waits until `done` holds of the attempts so far.
    async fn until(&self, what: &str, done: impl Fn(&[Attempt]) -> bool) -> Vec<Attempt> {
        let give_up = tokio::time::Instant::now() + DEADLINE;
        loop {
            let attempts = self.attempts();
            if done(&attempts) {
                return attempts;
            }
            assert!(tokio::time::Instant::now() < give_up, "never {what}: {:#?}", attempts);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn answer(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
    hold: web::Data<Duration>,
) -> HttpResponse {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let webhook_id = req
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let state = state.get_ref().clone();
    // Recorded as it arrives (with the answer it will get), so the order of
    // `attempts` is the order they were sent in.
    let (status, wait) = {
        let mut s = state.lock().unwrap();
        s.in_flight += 1;
        s.most_in_flight = s.most_in_flight.max(s.in_flight);
        if !s.seen.contains(&webhook_id) {
            s.seen.push(webhook_id.clone());
        }
        let place = s.seen.iter().position(|id| *id == webhook_id).unwrap();
        let script = s.scripts.get(&place).copied().unwrap_or_default();
        let tries = s.tries.entry(webhook_id.clone()).or_default();
        *tries += 1;
        let tries = *tries;
        let status = if tries <= script.fail { 500 } else { 204 };
        s.attempts.push(Attempt {
            webhook_id,
            event: body["type"].as_str().unwrap_or_default().to_owned(),
            document_id: body["data"]["documentId"].as_str().unwrap_or_default().to_owned(),
            answered: status,
        });
        let wait = match script.hold_first {
            Some(hold) if tries == 1 => hold,
            _ => **hold,
        };
        (status, wait)
    };
    let _in_flight = InFlight(state.clone());
    actix_web::rt::time::sleep(wait).await;
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
}

async fn subscribe(url: &str, key: &str, to: &str, ordered: bool) -> Value {
    let events = ["document.received", "document.accepted", "document.declined"];
    let body = subscribe_with(
        url,
        Some(key),
        &json!({"url": to, "events": events, "ordered": ordered}),
    )
    .await;
    assert_eq!(body["ordered"], ordered, "{body}");
    body
}

/// Posts `n` documents one after another; their documentIds in order.
async fn post_documents(url: &str, key: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(post_document(url, Some(key)).await);
    }
    ids
}

/// The events of `documents`, in the order they happened: each document's
/// `document.received`, then its decision (the review delay is 0: both are
/// due when it is posted, in that order).
fn happened(documents: &[String]) -> Vec<(String, &'static str)> {
    documents
        .iter()
        .flat_map(|id| [(id.clone(), "received"), (id.clone(), "decided")])
        .collect()
}

fn kind(event: &str) -> &'static str {
    if event == "document.received" {
        "received"
    } else {
        "decided"
    }
}

/// The messages delivered (2xx), in the order they were, as (documentId, kind).
fn delivered(attempts: &[Attempt]) -> Vec<(String, &'static str)> {
    attempts
        .iter()
        .filter(|a| a.answered < 300)
        .map(|a| (a.document_id.clone(), kind(&a.event)))
        .collect()
}

/// Asserts that no message was attempted before the one before it was
/// done: the attempts, grouped by message, come in one run each.
fn one_at_a_time(attempts: &[Attempt]) {
    let mut done: Vec<&str> = Vec::new();
    for pair in attempts.windows(2) {
        if pair[0].webhook_id != pair[1].webhook_id {
            done.push(&pair[0].webhook_id);
            assert!(
                !done.contains(&pair[1].webhook_id.as_str()),
                "{} was attempted again after another message: {attempts:#?}",
                pair[1].webhook_id
            );
        }
    }
}

async fn acme_helpdesk(redis: &TestRedis, partitions: u16) -> Running {
    let mut settings = helpdesk_settings(redis);
    settings.api_keys = KEYS.parse().unwrap();
    settings.redis_partitions = partitions;
    settings.tenant_secrets = hookline_tests::tenant_secrets(&["acme", "globex"]);
    start_helpdesk(settings).await
}

#[actix_web::test]
async fn an_ordered_subscription_gets_its_events_one_at_a_time_in_order_through_retries_and_a_dead_letter() {
    let redis = TestRedis::default();
    let helpdesk = acme_helpdesk(&redis, 1).await;
    // The first message fails twice (retried), the third every time (dead
    // after 1 + 3 attempts); every answer takes 30 ms, so that messages sent
    // together would overlap.
    let ordered = Scripted::start(
        &[
            (
                0,
                Script {
                    fail: 2,
                    ..Script::default()
                },
            ),
            (
                2,
                Script {
                    fail: u32::MAX,
                    ..Script::default()
                },
            ),
        ],
        Duration::from_millis(30),
    )
    .await;
    let unordered = Scripted::start(&[], Duration::from_millis(200)).await;
    subscribe(&helpdesk.url, ACME, &ordered.url, true).await;
    subscribe(&helpdesk.url, ACME, &unordered.url, false).await;

    let documents = post_documents(&helpdesk.url, ACME, 6).await;
    let expected = happened(&documents);
    // The tenant's other subscription is neither held back by the failing
    // head nor held to one at a time: all 12, several at once.
    unordered
        .until("12 unordered deliveries", |a| delivered(a).len() == 12)
        .await;
    assert!(
        unordered.most_in_flight() > 1,
        "the unordered subscription got one at a time"
    );

    let attempts = ordered
        .until("11 ordered deliveries", |a| delivered(a).len() == 11)
        .await;
    let mut without_dead = expected.clone();
    let dead = without_dead.remove(2);
    assert_eq!(delivered(&attempts), without_dead, "out of order: {attempts:#?}");
    one_at_a_time(&attempts);
    assert_eq!(ordered.most_in_flight(), 1, "more than one in flight: {attempts:#?}");
    // The first message: twice refused, then delivered; the third: four
    // refusals (1 + RETRY_SCHEDULE's 3), then the next one went.
    let tries = |doc: &str, k: &str| {
        attempts
            .iter()
            .filter(|a| a.document_id == doc && kind(&a.event) == k)
            .map(|a| a.answered)
            .collect::<Vec<_>>()
    };
    assert_eq!(tries(&expected[0].0, expected[0].1), [500, 500, 204]);
    assert_eq!(tries(&dead.0, dead.1), [500, 500, 500, 500]);
    let (_, _, dead_letters) = call(
        "GET",
        &format!("{}/dead-letters", helpdesk.url),
        &auth(Some(ACME)),
        None,
    )
    .await;
    assert_eq!(dead_letters["items"].as_array().unwrap().len(), 1, "{dead_letters}");
}

#[actix_web::test]
async fn the_order_holds_across_a_worker_killed_mid_delivery() {
    let redis = TestRedis::default();
    // The first attempt of the first message is held 5 s (and would be
    // refused): its worker is killed meanwhile; the next worker takes the job
    // when its lease (2 s) runs out, and only then does anything after it go.
    let ordered = Scripted::start(
        &[(
            0,
            Script {
                fail: 1,
                hold_first: Some(Duration::from_secs(5)),
            },
        )],
        Duration::from_millis(10),
    )
    .await;
    let secrets = ["acme", "globex"]
        .map(|t| format!("{t}={}", hookline_tests::tenant_secret(t).expose()))
        .join(",");
    let env = [
        ("HELPDESK_API_KEYS", KEYS),
        ("TENANT_SECRETS", secrets.as_str()),
        ("JOB_LEASE", "2s"),
        ("DELIVERY_TIMEOUT", "1500ms"),
    ];
    let port = free_port();
    let mut first = helpdesk_process(&redis, port, &env).await;
    let url = format!("http://127.0.0.1:{port}");
    subscribe(&url, ACME, &ordered.url, true).await;
    let documents = post_documents(&url, ACME, 4).await;
    let give_up = tokio::time::Instant::now() + DEADLINE;
    while ordered.state.lock().unwrap().in_flight == 0 {
        assert!(tokio::time::Instant::now() < give_up, "the first message never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill();
    let port = free_port();
    let _second = helpdesk_process(&redis, port, &env).await;

    let attempts = ordered.until("8 ordered deliveries", |a| delivered(a).len() == 8).await;
    assert_eq!(
        delivered(&attempts),
        happened(&documents),
        "out of order: {attempts:#?}"
    );
    // (Not `most_in_flight`: the killed worker's attempt may still be held
    // here when the next worker sends it again, as it should.)
    one_at_a_time(&attempts);
    // The killed worker's attempt was answered to no one, then sent again.
    let first_message = &attempts[0].webhook_id;
    assert!(
        attempts.iter().filter(|a| &a.webhook_id == first_message).count() >= 2,
        "{attempts:#?}"
    );
}

#[actix_web::test]
async fn with_partitions_a_tenant_with_an_ordered_subscription_keeps_its_cases_in_its_home_partition() {
    const PARTITIONS: u16 = 4;
    let redis = TestRedis::default();
    let helpdesk = acme_helpdesk(&redis, PARTITIONS).await;
    let ordered = Scripted::start(
        &[(
            1,
            Script {
                fail: 1,
                ..Script::default()
            },
        )],
        Duration::from_millis(20),
    )
    .await;
    let other = Scripted::start(&[], Duration::ZERO).await;
    subscribe(&helpdesk.url, ACME, &ordered.url, true).await;
    subscribe(&helpdesk.url, GLOBEX, &other.url, false).await;

    let documents = post_documents(&helpdesk.url, ACME, 12).await;
    let home = partition_of("acme", usize::from(PARTITIONS));
    for id in &documents {
        assert_eq!(
            partition_of(id, usize::from(PARTITIONS)),
            home,
            "{id} is not in acme's home partition"
        );
    }
    let attempts = ordered
        .until("24 ordered deliveries", |a| delivered(a).len() == 24)
        .await;
    assert_eq!(
        delivered(&attempts),
        happened(&documents),
        "out of order: {attempts:#?}"
    );
    one_at_a_time(&attempts);
    assert_eq!(ordered.most_in_flight(), 1);

    // A tenant without one spreads as before.
    let spread = post_documents(&helpdesk.url, GLOBEX, 12).await;
    let used: std::collections::HashSet<usize> = spread
        .iter()
        .map(|id| partition_of(id, usize::from(PARTITIONS)))
        .collect();
    assert!(used.len() > 1, "globex's cases all in one partition: {used:?}");

    // A retried request (the same `id`) finds its case in the home partition.
    let body = json!({"documentUrl": "https://example.com/b.pdf", "id": "order-42"});
    let (status, _, once) = call(
        "POST",
        &format!("{}/document", helpdesk.url),
        &auth(Some(ACME)),
        Some(&body),
    )
    .await;
    assert_eq!(status, 202, "{once}");
    let (status, _, twice) = call(
        "POST",
        &format!("{}/document", helpdesk.url),
        &auth(Some(ACME)),
        Some(&body),
    )
    .await;
    assert!(status == 200 || status == 202, "{status} {twice}");
    assert_eq!(once["documentId"], twice["documentId"]);
    let id = once["documentId"].as_str().unwrap();
    assert_eq!(partition_of(id, usize::from(PARTITIONS)), home);
    let (status, _, case) = call(
        "GET",
        &format!("{}/document/{id}", helpdesk.url),
        &auth(Some(ACME)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{case}");
}
