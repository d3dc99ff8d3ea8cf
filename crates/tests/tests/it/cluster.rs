//! The help desk on a real Redis Cluster (three masters, three replicas on
//! loopback): `REDIS_URL` listing the nodes connects in cluster mode. The
//! whole flow, two worker processes sharing the jobs, a master's failover.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hookline_contract::DeliveryState;
use hookline_kit::config::Secret;
use hookline_tests::cluster::RedisCluster;
use hookline_tests::process::{free_port, helpdesk_process};
use hookline_tests::{Receiver, Stack, TestRedis, call, helpdesk_settings, start_helpdesk};
use serde_json::json;

#[actix_web::test]
async fn the_whole_review_flow_runs_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let url = cluster.url();
    let prefix = format!("cluster-{}", uuid::Uuid::new_v4().simple());
    let stack = Stack::start_with(
        |helpdesk| {
            helpdesk.redis_url = Secret::new(url.clone());
            helpdesk.redis_prefix = prefix.clone();
        },
        // Subscriptions too: their writes are MULTI/EXEC pipelines.
        |consumer| consumer.helpdesk_subscribe = true,
    )
    .await;
    let mut reviews = Vec::new();
    for i in 0..20 {
        reviews.push(
            stack
                .request_review(&format!("https://example.com/cluster/{i}.pdf"))
                .await,
        );
    }
    let rows = stack.wait_until_all_decided(20, Duration::from_secs(60)).await;
    for row in &rows {
        let case = stack.case(row.document_id.as_deref().unwrap()).await;
        assert_eq!(case.status, row.status(), "{case:?}");
        assert!(
            matches!(
                case.delivery.state,
                DeliveryState::Delivered | DeliveryState::NoCallback
            ),
            "{case:?}"
        );
    }
    // One hash tag, one slot: every key of the queue is on one master.
    let owner = cluster.master_of(&format!("{{{prefix}}}"));
    let per_master = cluster.keys_per_master();
    assert_eq!(per_master.len(), 3, "{per_master:?}");
    for (port, keys) in per_master {
        if port == owner {
            assert!(keys > 0, "the tag's master holds the queue");
        } else {
            assert_eq!(keys, 0, "master {port} holds none of it");
        }
    }
    assert_eq!(reviews.len(), 20);
}

#[actix_web::test]
async fn with_redis_min_replicas_a_master_killed_mid_run_loses_no_accepted_review() {
    let mut cluster = RedisCluster::start().await;
    let prefix = format!("failover-{}", uuid::Uuid::new_v4().simple());
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.redis_url = Secret::new(cluster.url());
    settings.redis_prefix = prefix.clone();
    settings.redis_min_replicas = 1;
    settings.review_delay_ms = "200-1000".parse().unwrap();
    // Room to retry deliveries through the failover.
    settings.retry_schedule = "500ms,1s,2s,4s,8s,8s".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;
    let mut receiver = Receiver::start(200).await;

    let master = cluster.master_of(&format!("{{{prefix}}}"));
    let mut accepted = HashSet::new();
    let (mut refused, mut killed_at, mut restarted, mut recovered_in) = (0, None::<Instant>, false, None);
    let mut after_recovery = 0;
    for i in 0.. {
        if i == 100 {
            cluster.node(master).kill();
            killed_at = Some(Instant::now());
        }
        // The promoted replica has no replica of its own until the old
        // master is back: with REDIS_MIN_REPLICAS=1 that shard takes no
        // write it could lose meanwhile.
        if let Some(at) = killed_at
            && !restarted
            && at.elapsed() > Duration::from_secs(3)
        {
            cluster.node(master).restart();
            restarted = true;
        }
        let body = json!({"documentUrl": "https://example.com/failover.pdf", "id": format!("request-{i}")});
        let (status, _, answer) = call(
            "POST",
            &format!("{}/document", helpdesk.url),
            &[("x-callback-url", receiver.url.as_str())],
            Some(&body),
        )
        .await;
        match status {
            202 => {
                accepted.insert(answer["documentId"].as_str().unwrap().to_owned());
                if let Some(at) = killed_at {
                    recovered_in.get_or_insert(at.elapsed());
                    after_recovery += 1;
                }
            }
            503 => refused += 1,
            other => panic!("{other}: {answer}"),
        }
        if after_recovery >= 100 || killed_at.is_some_and(|at| at.elapsed() > Duration::from_secs(60)) {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    let delivered: HashSet<String> = receiver
        .collect_until(Duration::from_secs(90), |got| {
            let seen: HashSet<&str> = got.iter().filter_map(|r| r.body["documentId"].as_str()).collect();
            accepted.iter().all(|id| seen.contains(id.as_str()))
        })
        .await
        .iter()
        .filter_map(|r| r.body["documentId"].as_str().map(str::to_owned))
        .collect();
    let lost = accepted.difference(&delivered).count();
    eprintln!(
        "failover: {} accepted, {refused} answered 503, {} delivered, {lost} lost; \
         first 202 {:?} after the master was killed (restarted after 3 s)",
        accepted.len(),
        delivered.len(),
        recovered_in
    );
    assert_eq!(lost, 0);
    assert!(
        recovered_in.is_some(),
        "the help desk accepted reviews again after the failover"
    );
    assert_ne!(
        cluster.master_of(&format!("{{{prefix}}}")),
        master,
        "a replica took over"
    );
}

#[actix_web::test]
async fn two_workers_on_a_cluster_deliver_a_thousand_jobs_exactly_once() {
    const JOBS: usize = 1000;
    hookline_tests::process::binary("helpdesk"); // built before anything runs here
    let cluster = RedisCluster::start().await;
    let redis = TestRedis::default();
    let url = cluster.url();
    let prefix = format!("workers-{}", uuid::Uuid::new_v4().simple());
    let env = [
        ("REDIS_URL", url.as_str()),
        ("REDIS_PREFIX", prefix.as_str()),
        ("HELPDESK_ROLE", "worker"),
    ];
    let _workers = [
        helpdesk_process(&redis, free_port(), &env).await,
        helpdesk_process(&redis, free_port(), &env).await,
    ];
    let mut settings = helpdesk_settings(&redis);
    settings.redis_url = Secret::new(url.clone());
    settings.redis_prefix = prefix.clone();
    settings.role = helpdesk::config::Role::Api;
    let api = start_helpdesk(settings).await;
    let mut receiver = Receiver::start(200).await;

    let accepted: HashSet<String> = futures_util::stream::iter(0..JOBS)
        .map(|i| {
            let (api, to) = (api.url.clone(), receiver.url.clone());
            async move {
                let body = json!({"documentUrl": format!("https://example.com/{i}.pdf")});
                let (status, _, answer) = call(
                    "POST",
                    &format!("{api}/document"),
                    &[("x-callback-url", to.as_str())],
                    Some(&body),
                )
                .await;
                assert_eq!(status, 202, "{answer}");
                answer["documentId"].as_str().unwrap().to_owned()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut got = receiver
        .collect_until(Duration::from_secs(120), |got| got.len() >= JOBS)
        .await;
    // Anything delivered twice would arrive within a moment more.
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    while let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(100), receiver.received.recv()).await {
        got.push(extra);
    }
    let ids: Vec<String> = got
        .iter()
        .map(|r| r.body["documentId"].as_str().unwrap().to_owned())
        .collect();
    let distinct: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(distinct, accepted, "every accepted job delivered");
    assert_eq!(ids.len(), JOBS, "none twice");
}
