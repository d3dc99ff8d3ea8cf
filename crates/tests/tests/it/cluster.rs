//! The help desk on a real Redis Cluster (three masters, three replicas on
//! loopback): `REDIS_URL` listing the nodes connects in cluster mode, and
//! `REDIS_PARTITIONS=3` spreads the queue over the three masters. The whole
//! flow, two worker processes sharing the jobs, a master's failover, a
//! partition's slot moved to another master mid-run.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hookline_contract::DeliveryState;
use hookline_kit::config::Secret;
use hookline_tests::cluster::RedisCluster;
use hookline_tests::process::{free_port, helpdesk_process};
use hookline_tests::{Receiver, Stack, TestRedis, call, helpdesk_settings, start_helpdesk};
use serde_json::json;

/// The documentIds the receiver got, once it has every one of `accepted`
/// (or `within` is over).
async fn delivered(receiver: &mut Receiver, accepted: &HashSet<String>, within: Duration) -> HashSet<String> {
    receiver
        .collect_until(within, |got| {
            let seen: HashSet<&str> = got.iter().filter_map(|r| r.body["documentId"].as_str()).collect();
            accepted.iter().all(|id| seen.contains(id.as_str()))
        })
        .await
        .iter()
        .filter_map(|r| r.body["documentId"].as_str().map(str::to_owned))
        .collect()
}

/// The hash tag of partition `k` of three (with its braces).
fn tag(prefix: &str, k: usize) -> String {
    format!("{{{}}}", helpdesk::store::partition_tag(prefix, k, 3))
}

#[actix_web::test]
async fn the_whole_review_flow_runs_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let url = cluster.url();
    let prefix = format!("cluster-{}", uuid::Uuid::new_v4().simple());
    let stack = Stack::start_with(
        |helpdesk| {
            helpdesk.redis_url = Secret::new(url.clone());
            helpdesk.redis_prefix = prefix.clone();
            helpdesk.redis_partitions = 3;
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
    // Three partitions, three hash tags, one on each master: the queue's
    // keys and work spread over the whole cluster.
    let owners: HashSet<u16> = (0..3).map(|k| cluster.master_of(&tag(&prefix, k))).collect();
    assert_eq!(owners.len(), 3, "each partition on its own master");
    let per_master = cluster.keys_per_master();
    assert_eq!(per_master.len(), 3, "{per_master:?}");
    // 20 random documentIds over three partitions: a few cases each at
    // least (all 20 in two partitions: 3 × (2/3)^20, about 1 in 1,100 runs).
    for (port, keys) in &per_master {
        assert!(*keys >= 5, "master {port} holds cases of its partition: {per_master:?}");
    }
    eprintln!("keys per master: {per_master:?}");
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
    settings.redis_partitions = 3;
    settings.redis_min_replicas = 1;
    settings.review_delay_ms = "200-1000".parse().unwrap();
    // Room to retry deliveries through the failover.
    settings.retry_schedule = "500ms,1s,2s,4s,8s,8s".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;
    let mut receiver = Receiver::start(200).await;

    let master = cluster.master_of(&tag(&prefix, 0));
    let mut accepted = HashSet::new();
    let (mut refused, mut killed_at, mut restarted, mut recovered_in) = (0, None::<Instant>, false, None);
    // Requests whose case goes to the killed master's partition (0), and
    // the others': partitions on live masters should not notice.
    let (mut after_recovery, mut others_accepted, mut others_refused) = (0, 0, 0);
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
        let request = format!("request-{i}");
        let on_killed = helpdesk::store::partition_of(&request, 3) == 0;
        let body = json!({"documentUrl": "https://example.com/failover.pdf", "id": request});
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
                match killed_at {
                    Some(at) if on_killed => {
                        recovered_in.get_or_insert(at.elapsed());
                        after_recovery += 1;
                    }
                    Some(_) => others_accepted += 1,
                    None => {}
                }
            }
            503 if on_killed => refused += 1,
            503 => others_refused += 1,
            other => panic!("{other}: {answer}"),
        }
        if after_recovery >= 40 || killed_at.is_some_and(|at| at.elapsed() > Duration::from_secs(60)) {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    let delivered = delivered(&mut receiver, &accepted, Duration::from_secs(90)).await;
    let lost = accepted.difference(&delivered).count();
    eprintln!(
        "failover: {} accepted, {} delivered, {lost} lost; the killed master's partition: {refused} answered 503, \
         first 202 {:?} after the kill (old master restarted after 3 s); the other partitions meanwhile: \
         {others_accepted} accepted, {others_refused} answered 503",
        accepted.len(),
        delivered.len(),
        recovered_in
    );
    assert_eq!(lost, 0);
    assert!(
        recovered_in.is_some(),
        "the help desk accepted reviews again after the failover"
    );
    assert_ne!(cluster.master_of(&tag(&prefix, 0)), master, "a replica took over");
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
        ("REDIS_PARTITIONS", "3"),
        ("HELPDESK_ROLE", "worker"),
    ];
    let _workers = [
        helpdesk_process(&redis, free_port(), &env).await,
        helpdesk_process(&redis, free_port(), &env).await,
    ];
    let mut settings = helpdesk_settings(&redis);
    settings.redis_url = Secret::new(url.clone());
    settings.redis_prefix = prefix.clone();
    settings.redis_partitions = 3;
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

#[actix_web::test]
async fn a_partition_s_slot_moved_to_another_master_mid_run_loses_nothing() {
    let cluster = RedisCluster::start().await;
    let prefix = format!("reshard-{}", uuid::Uuid::new_v4().simple());
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.redis_url = Secret::new(cluster.url());
    settings.redis_prefix = prefix.clone();
    settings.redis_partitions = 3;
    settings.review_delay_ms = "300-1500".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;
    let mut receiver = Receiver::start(200).await;

    let moving = tag(&prefix, 0);
    let from = cluster.master_of(&moving);
    let to = *cluster.masters().iter().find(|&&port| port != from).unwrap();
    let create = |i: usize| {
        let (url, to) = (helpdesk.url.clone(), receiver.url.clone());
        async move {
            let body = json!({"documentUrl": "https://example.com/reshard.pdf", "id": format!("request-{i}")});
            call(
                "POST",
                &format!("{url}/document"),
                &[("x-callback-url", to.as_str())],
                Some(&body),
            )
            .await
        }
    };
    // Reviews keep arriving (and being claimed and delivered) while the slot moves.
    let traffic = async {
        let mut accepted = HashSet::new();
        let mut failed = Vec::new();
        for i in 0..400 {
            let (status, _, answer) = create(i).await;
            match status {
                202 => {
                    accepted.insert(answer["documentId"].as_str().unwrap().to_owned());
                }
                _ => failed.push(format!("{status}: {answer}")),
            }
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        (accepted, failed)
    };
    let reshard = async {
        actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        let moved = cluster.move_slot(&moving, to, Duration::from_millis(300)).await;
        (moved, started.elapsed())
    };
    let ((accepted, failed), (moved, took)) = tokio::join!(traffic, reshard);
    assert_eq!(cluster.master_of(&moving), to, "the slot moved");
    assert!(moved > 10, "the partition's keys moved with it ({moved})");
    let delivered = delivered(&mut receiver, &accepted, Duration::from_secs(60)).await;
    let lost = accepted.difference(&delivered).count();
    eprintln!(
        "reshard: {moved} keys of {moving} moved from {from} to {to} in {took:?}; {} accepted, {} refused, {} delivered, {lost} lost",
        accepted.len(),
        failed.len(),
        delivered.len()
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(lost, 0);
    // Every case is still whole where its partition now lives.
    for id in accepted.iter().take(50) {
        let (status, _, case) = call("GET", &format!("{}/document/{id}", helpdesk.url), &[], None).await;
        assert_eq!(status, 200, "{case}");
    }
}
