//! Endpoints only through cases, caps that hold under concurrency.
//!
//! The security review's finding 3 (its part in the help desk's store),
//! replayed: a tenant's key creating endpoints no case made, 140 concurrent
//! `POST /webhooks` past the cap of 100, and idle endpoints the trim never
//! reached.

use std::time::Duration;

use futures_util::future::join_all;
use hookline_tests::{TestRedis, call, helpdesk_settings, start_helpdesk, wait_for};
use serde_json::{Value, json};

const OPERATOR: &str = "operator-key-000000";
const ACME: &str = "acme-key-0000000000";

async fn helpdesk(redis: &TestRedis, tune: impl FnOnce(&mut helpdesk::Settings)) -> hookline_tests::Running {
    let mut settings = helpdesk_settings(redis);
    settings.api_keys = format!("{OPERATOR},acme:{ACME}").parse().unwrap();
    settings.tenant_secrets = hookline_tests::tenant_secrets(&["acme"]);
    // The attacks here are many requests at once; API_RATE is not what
    // stops them (threats::flooding tests that).
    settings.guards.api_rate = 0.0;
    tune(&mut settings);
    start_helpdesk(settings).await
}

async fn as_key(key: &str, method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let bearer = format!("Bearer {key}");
    let (status, _, answer) = call(method, url, &[("authorization", &bearer)], body).await;
    (status, answer)
}

#[actix_web::test]
async fn a_tenant_cannot_create_an_endpoint_by_naming_it() {
    let redis = TestRedis::default();
    let hd = helpdesk(&redis, |_| {}).await;
    let before = redis.snapshot().await;
    for n in 0..20 {
        let url = format!("{}/endpoints/http%3A%2F%2Fmade-up-{n}.example%3A80", hd.url);
        let (status, answer) = as_key(ACME, "PUT", &url, Some(&json!({"rate": 5}))).await;
        assert_eq!((status, answer["error"].as_str()), (403, Some("forbidden")), "{answer}");
    }
    assert_eq!(before, redis.snapshot().await, "a refused PUT stored nothing");
    let (_, page) = as_key(OPERATOR, "GET", &format!("{}/endpoints", hd.url), None).await;
    assert_eq!(page["total"], 0, "{page}");
}

#[actix_web::test]
async fn concurrent_subscriptions_stop_exactly_at_the_cap() {
    let redis = TestRedis::default();
    let hd = helpdesk(&redis, |_| {}).await;
    let cap = usize::try_from(helpdesk::routes::webhooks::MAX_SUBSCRIPTIONS).unwrap();
    let url = format!("{}/webhooks", hd.url);
    let body = json!({"url": "http://127.0.0.1:9/hook", "events": ["webhook.test"]});
    let answers = join_all((0..cap + 40).map(|_| as_key(ACME, "POST", &url, Some(&body)))).await;
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    let refused = answers.iter().filter(|(status, _)| *status == 409).count();
    assert_eq!((created, refused), (cap, 40), "{:?}", &answers[..3]);
    let (_, page) = as_key(ACME, "GET", &url, None).await;
    assert_eq!(page["total"], json!(cap), "the tenant's list");
    let mut conn = redis.connection().await;
    let stored: usize = redis::cmd("ZCARD")
        .arg(format!("{{{}}}:subs:acme", redis.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored, cap, "in Redis");
}

#[actix_web::test]
async fn every_idle_endpoint_is_forgotten_not_only_the_oldest_five_hundred() {
    let redis = TestRedis::default();
    let hd = helpdesk(&redis, |hd| hd.case_retention = Duration::from_secs(1)).await;
    // 520 endpoints the operator gave a rate (the oldest), then 10 without one.
    let put = |n: usize, rate: Value| {
        let url = format!("{}/endpoints/http%3A%2F%2Fidle-{n}.example%3A80", hd.url);
        async move {
            let (status, answer) = as_key(OPERATOR, "PUT", &url, Some(&json!({"rate": rate}))).await;
            assert_eq!(status, 200, "{answer}");
        }
    };
    for chunk in (0..520).collect::<Vec<_>>().chunks(40) {
        join_all(chunk.iter().map(|&n| put(n, json!(5)))).await;
    }
    for n in 520..530 {
        put(n, json!(5)).await;
        put(n, Value::Null).await;
    }
    let endpoints_url = format!("{}/endpoints", hd.url);
    // Once idle for CASE_RETENTION, every one is forgotten, rate and all.
    wait_for(
        Duration::from_secs(60),
        "every idle endpoint to be forgotten",
        || async {
            let (_, page) = as_key(OPERATOR, "GET", &endpoints_url, None).await;
            (page["total"] == 0).then_some(())
        },
    )
    .await;
    let left = redis
        .snapshot()
        .await
        .into_keys()
        .filter(|key| key.contains(":endpoint"))
        .collect::<Vec<_>>();
    assert!(left.is_empty(), "{left:?}");
}
