//! Per-key request rates, `/metrics` in O(1) and behind a token.
//!
//! Finding 3 of issue 23 (in part): anyone with a key could make thousands
//! of endpoints in seconds, and then every unauthenticated `GET /metrics`
//! ran one Lua script walking them all (35–89 ms of blocked Redis each).
//! Now each key has a rate (`API_RATE`, `429` with `Retry-After` past it),
//! a scrape's work in Redis does not grow with the number of endpoints,
//! and `/metrics` can need a bearer token (`METRICS_TOKEN`).

use std::time::Duration;

use futures_util::future::join_all;
use helpdesk::store::{DEPTH_ENDPOINTS, EndpointLimits, NewCase, Store};
use hookline_tests::process::PrivateRedis;
use hookline_tests::{Stack, TestRedis, get_text, helpdesk_settings, start_helpdesk};

const KEY_A: &str = "flooding-key-acme-0123456789";
const KEY_B: &str = "flooding-key-globex-0123456789";
const METRICS_TOKEN: &str = "flooding-metrics-token-0123456789";

/// `GET url` with `Authorization: Bearer <bearer>`: status, `Retry-After`,
/// `WWW-Authenticate`, body.
async fn get(url: &str, bearer: Option<&str>) -> (u16, Option<String>, Option<String>, String) {
    let mut request = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
        .get(url);
    if let Some(token) = bearer {
        request = request.insert_header(("authorization", format!("Bearer {token}")));
    }
    let mut response = request.send().await.unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (retry_after, challenge) = (header("retry-after"), header("www-authenticate"));
    let body = response.body().limit(1 << 22).await.unwrap();
    (
        response.status().as_u16(),
        retry_after,
        challenge,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[actix_web::test]
async fn a_burst_from_one_key_gets_429_with_retry_after_while_another_key_is_served() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.api_keys = format!("acme:{KEY_A},globex:{KEY_B}").parse().unwrap();
    settings.tenant_secrets = hookline_tests::tenant_secrets(&["acme", "globex"]);
    settings.guards.api_rate = 1.0;
    let helpdesk = start_helpdesk(settings).await;
    let url = format!("{}/webhooks", helpdesk.url);

    let mut answers = Vec::new();
    for _ in 0..10 {
        answers.push(get(&url, Some(KEY_A)).await);
    }
    assert_eq!(
        answers[0].0, 200,
        "the first request of a burst is served: {:?}",
        answers[0]
    );
    let refused = answers
        .iter()
        .find(|(status, ..)| *status == 429)
        .unwrap_or_else(|| panic!("ten requests at once from a key limited to 1/s: {answers:?}"));
    let retry_after = refused.1.as_deref().and_then(|s| s.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "a 429 says when to retry, in whole seconds: {refused:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&refused.3).unwrap();
    assert_eq!(body["error"], "too_many_requests", "{body}");

    let (status, _, _, body) = get(&url, Some(KEY_B)).await;
    assert_eq!(status, 200, "another key has its own rate: {body}");
    let (status, ..) = get(&url, Some("not-a-key-0123456789abcdef")).await;
    assert_eq!(status, 401, "an unknown key is refused before any rate");
}

#[actix_web::test]
async fn with_a_metrics_token_a_scrape_needs_it_on_both_services() {
    let token = || Some(METRICS_TOKEN.parse().unwrap());
    let stack = Stack::start_with(
        |hd| hd.guards.metrics_token = token(),
        |c| c.guards.metrics_token = token(),
    )
    .await;
    for base in [&stack.helpdesk.url, &stack.consumer.url] {
        let url = format!("{base}/metrics");
        let (status, _, challenge, body) = get(&url, None).await;
        assert_eq!(status, 401, "{url} without the token: {body}");
        assert_eq!(challenge.as_deref(), Some("Bearer"));
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "unauthorized", "{body}");
        let (status, ..) = get(&url, Some("flooding-wrong-token-0123456789")).await;
        assert_eq!(status, 401, "{url} with another token");
        let (status, _, _, body) = get(&url, Some(METRICS_TOKEN)).await;
        assert_eq!(status, 200, "{url} with the token: {body}");
        assert!(body.contains("hookline_http_requests_total"), "{body}");
    }
}

/// Every command Redis has run (scripts' own calls included), from `INFO commandstats`.
async fn commands_run(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await.unwrap();
    info.lines()
        .filter_map(|line| line.split_once(":calls=")?.1.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// The commands one `GET /metrics` makes Redis run (the fewest of three
/// scrapes, so nothing else that ran meanwhile counts).
async fn commands_per_scrape(conn: &mut redis::aio::MultiplexedConnection, helpdesk: &str) -> (u64, String) {
    let mut fewest = u64::MAX;
    let mut exposition = String::new();
    for _ in 0..3 {
        let before = commands_run(conn).await;
        let (status, text) = get_text(&format!("{helpdesk}/metrics")).await;
        assert_eq!(status, 200, "{text}");
        fewest = fewest.min(commands_run(conn).await - before);
        exposition = text;
    }
    (fewest, exposition)
}

/// Cases to `count` endpoints of their own (ports `from..from + count`),
/// due in an hour, written through the store as `POST /document` would.
async fn endpoints(store: &Store, from: u16, count: u16) {
    let cases: Vec<NewCase> = (from..from + count)
        .map(|port| NewCase {
            document_id: store.new_document_id(None),
            agent_id: "agent".to_owned(),
            document_url: "https://example.com/a.pdf".to_owned(),
            callback_url: Some(format!("http://127.0.0.1:{port}/hook")),
            request_id: None,
            webhook_id: format!("msg_{port}"),
            tenant: hookline_kit::auth::DEFAULT_TENANT.to_owned(),
            verdict: None,
            event_prefix: format!("msg_e{port}"),
            delay: Duration::from_secs(3600),
            chaos: None,
            reorder: false,
            dialect: None,
            chaos_seed: None,
            traceparent: None,
        })
        .collect();
    for chunk in cases.chunks(250) {
        for scheduled in join_all(chunk.iter().map(|case| store.schedule(case))).await {
            scheduled.unwrap();
        }
    }
}

#[actix_web::test]
async fn a_scrape_costs_redis_the_same_with_3000_endpoints_as_with_a_few_hundred() {
    // A Redis of its own: INFO commandstats counts every client's commands.
    let private = PrivateRedis::start().await;
    let redis = TestRedis {
        url: private.url(),
        prefix: "flooding".to_owned(),
    };
    let mut conn = redis.connection().await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg("no")
        .query_async(&mut conn)
        .await
        .unwrap();
    let store = Store::connect(&redis.url, &redis.prefix, EndpointLimits::default())
        .await
        .unwrap();
    let mut settings = helpdesk_settings(&redis);
    // The API alone: no worker touching Redis between the counts.
    settings.role = helpdesk::config::Role::Api;
    let helpdesk = start_helpdesk(settings).await;

    let few = u16::try_from(DEPTH_ENDPOINTS).unwrap() + 100;
    endpoints(&store, 1, few).await;
    let (with_few, exposition) = commands_per_scrape(&mut conn, &helpdesk.url).await;
    assert!(
        exposition.contains(&format!("hookline_helpdesk_endpoints{{set=\"known\"}} {few}\n")),
        "{exposition}"
    );

    endpoints(&store, 1 + few, 3000 - few).await;
    let (with_many, exposition) = commands_per_scrape(&mut conn, &helpdesk.url).await;
    assert!(
        exposition.contains("hookline_helpdesk_endpoints{set=\"known\"} 3000\n"),
        "{exposition}"
    );
    assert_eq!(
        with_many, with_few,
        "one scrape ran {with_few} Redis commands with {few} endpoints and {with_many} with 3000"
    );
    assert!(
        exposition.contains(&format!(
            "hookline_helpdesk_endpoints{{set=\"counted\"}} {DEPTH_ENDPOINTS}\n"
        )),
        "{exposition}"
    );
    let labelled = exposition
        .lines()
        .filter(|line| line.starts_with("hookline_helpdesk_endpoint_due{"))
        .count();
    assert!(
        labelled <= helpdesk::metrics::ENDPOINT_SERIES,
        "{labelled} endpoints labelled"
    );
}
