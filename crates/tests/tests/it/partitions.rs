//! `REDIS_PARTITIONS` on one Redis: cases spread over the partitions, and
//! the help desk still behaves as one queue — retries of a request find
//! their case, listings merge, an endpoint's limit holds over all of them,
//! and a help desk refuses a count its queue was not made with.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use helpdesk::store::{EndpointLimits, NewCase, Store, StoreError, partition_tag};
use hookline_tests::hostile::{Hostile, Hostility};
use hookline_tests::{Receiver, TestRedis, call, helpdesk_settings, start_helpdesk, wait_for};
use serde_json::json;

#[actix_web::test]
async fn a_partitioned_queue_spreads_cases_and_answers_as_one() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.redis_partitions = 4;
    settings.review_delay_ms = "100-300".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;
    let receiver = Receiver::start(200).await;
    let create = |i: usize| {
        let (url, to) = (helpdesk.url.clone(), receiver.url.clone());
        async move {
            let body = json!({"documentUrl": format!("https://example.com/{i}.pdf"), "id": format!("request-{i}")});
            let (status, _, answer) = call(
                "POST",
                &format!("{url}/document"),
                &[("x-callback-url", to.as_str())],
                Some(&body),
            )
            .await;
            assert_eq!(status, 202, "{answer}");
            answer["documentId"].as_str().unwrap().to_owned()
        }
    };
    let ids: Vec<String> = futures_util::stream::iter(0..40)
        .map(create)
        .buffered(8)
        .collect()
        .await;
    // A retry of a request lands in its partition and finds its case.
    for i in [0, 7, 13, 39] {
        assert_eq!(create(i).await, ids[i], "request-{i} retried");
    }
    let mut conn = redis.connection().await;
    let mut per_partition = Vec::new();
    for k in 0..4 {
        let key = format!("{{{}}}:cases", partition_tag(&redis.prefix, k, 4));
        let held: u64 = redis::cmd("ZCARD").arg(&key).query_async(&mut conn).await.unwrap();
        per_partition.push(held);
    }
    assert_eq!(per_partition.iter().sum::<u64>(), 40, "{per_partition:?}");
    assert!(per_partition.iter().all(|&held| held > 0), "{per_partition:?}");

    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 40);
    wait_for(Duration::from_secs(30), "every case delivered", || async {
        let (_, _, page) = call("GET", &format!("{}/cases?limit=100", helpdesk.url), &[], None).await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        let delivered = items.iter().filter(|c| c["delivery"]["state"] == "DELIVERED").count();
        (page["total"] == 40 && delivered == 40).then_some(())
    })
    .await;
    // The listing merges the partitions, newest first.
    let (_, _, page) = call("GET", &format!("{}/cases?limit=10", helpdesk.url), &[], None).await;
    let created: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["createdAt"].as_str().unwrap())
        .collect();
    assert_eq!(created.len(), 10);
    assert!(created.windows(2).all(|pair| pair[0] >= pair[1]), "{created:?}");
    for id in &ids {
        let (status, _, case) = call("GET", &format!("{}/document/{id}", helpdesk.url), &[], None).await;
        assert_eq!(status, 200, "{case}");
        assert_eq!(case["delivery"]["state"], "DELIVERED", "{case}");
    }
}

#[actix_web::test]
async fn an_endpoint_s_limit_holds_over_all_partitions_together() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.redis_partitions = 3;
    settings.endpoint_concurrency = 4;
    settings.review_delay_ms = "0".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;
    let black_hole = Hostile::start(Hostility::BlackHole).await;
    for i in 0..30 {
        let body = json!({"documentUrl": format!("https://example.com/{i}.pdf")});
        let (status, _, answer) = call(
            "POST",
            &format!("{}/document", helpdesk.url),
            &[("x-callback-url", black_hole.url.as_str())],
            Some(&body),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
    }
    wait_for(Duration::from_secs(10), "the endpoint's slots taken", || async {
        (black_hole.stats.max_open() >= 4).then_some(())
    })
    .await;
    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        black_hole.stats.max_open(),
        4,
        "ENDPOINT_CONCURRENCY=4 over three partitions (shares 2, 1, 1)"
    );
    let (_, _, endpoints) = call("GET", &format!("{}/endpoints", helpdesk.url), &[], None).await;
    let view = &endpoints["items"][0];
    assert_eq!(view["inFlight"], 4, "{view}");
    assert_eq!(view["concurrency"], 4, "{view}");
    assert_eq!(view["due"], 26, "{view}");
}

#[actix_web::test]
async fn a_help_desk_refuses_another_partition_count_while_the_queue_holds_cases() {
    let redis = TestRedis::default();
    let limits = EndpointLimits::default();
    let one = Store::connect(&redis.url, &redis.prefix, limits).await.unwrap();
    let case = NewCase {
        document_id: one.new_document_id(None),
        agent_id: "agent".to_owned(),
        document_url: "https://example.com/a.pdf".to_owned(),
        callback_url: None,
        request_id: None,
        webhook_id: "msg_1".to_owned(),
        tenant: "default".to_owned(),
        verdict: None,
        event_prefix: "msg_e".to_owned(),
        delay: Duration::from_secs(60),
        chaos: None,
        reorder: false,
        dialect: None,
        chaos_seed: None,
        traceparent: None,
    };
    one.schedule(&case).await.unwrap();
    let refused = Store::connect_partitioned(&redis.url, &redis.prefix, 3, limits).await;
    let Err(
        error @ StoreError::Layout {
            before: 1,
            now: 3,
            held: 1,
        },
    ) = refused
    else {
        panic!("{refused:?}");
    };
    assert!(error.to_string().contains("REDIS_PARTITIONS is 3"), "{error}");
    // The help desk itself says so and does not start.
    let mut settings = helpdesk_settings(&redis);
    settings.redis_partitions = 3;
    let started = helpdesk::startup::Application::build(settings).await;
    let Err(error) = started else { panic!("started") };
    assert!(error.to_string().contains("made with 1"), "{error}");
    // The same count is fine; an empty queue may change its count.
    Store::connect(&redis.url, &redis.prefix, limits).await.unwrap();
    let fresh = TestRedis::default();
    let three = Store::connect_partitioned(&fresh.url, &fresh.prefix, 3, limits)
        .await
        .unwrap();
    assert_eq!(three.partitions(), 3);
}
