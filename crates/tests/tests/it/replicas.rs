//! Several consumer processes on one PostgreSQL behave as one: a browser on
//! any replica sees every change (the relay: `LISTEN`/`NOTIFY`), the
//! reconciler never asks the help desk twice about a review, one
//! `Idempotency-Key` makes one review whichever replicas it reaches, and a
//! replica SIGKILLed mid-run loses nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use hookline_contract::{DocumentStatus, Review};
use hookline_tests::process::{Process, binary, consumer_process, free_port};
use hookline_tests::{
    Running, TestDb, TestRedis, call, closed_port, get_json, helpdesk_settings, metric_sum, post_json, post_review,
    start_helpdesk, wait_for,
};
use serde_json::json;

/// What one browser has seen on a replica's `GET /events`: the last state
/// of each review, and how many `resync`s it was told.
#[derive(Debug, Default)]
struct Seen {
    reviews: HashMap<String, DocumentStatus>,
    resyncs: u32,
}

/// A browser's event stream on `consumer`, read in the background. Like
/// the dashboard, it reloads the list (`GET /documents`) when told to
/// `resync`.
async fn watch_events(consumer: &str) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut response = awc::Client::new()
        .get(format!("{consumer}/events"))
        .timeout(Duration::from_secs(3600))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let into = seen.clone();
    let list = format!("{consumer}/documents?limit=100");
    actix_web::rt::spawn(async move {
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = response.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if frame.starts_with("event: resync") {
                    let (status, page) = get_json(&list).await;
                    assert_eq!(status, 200, "{page}");
                    let reviews: Vec<Review> = serde_json::from_value(page["items"].clone()).unwrap();
                    let mut seen = into.lock().unwrap();
                    seen.resyncs += 1;
                    for review in reviews {
                        seen.reviews.insert(review.id, review.document_status);
                    }
                } else if let Some(data) = frame.strip_prefix("event: review\ndata: ") {
                    let review: Review = serde_json::from_str(data.trim()).unwrap();
                    into.lock().unwrap().reviews.insert(review.id, review.document_status);
                }
            }
        }
    });
    seen
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

async fn create_reviews(consumer: &str, count: usize) -> Vec<Review> {
    futures_util::stream::iter(0..count)
        .map(|i| async move {
            let (status, review) = post_review(consumer, &format!("https://example.com/replicas/{i}.pdf")).await;
            assert_eq!(status, 201, "{review}");
            serde_json::from_value::<Review>(review).unwrap()
        })
        .buffer_unordered(4)
        .collect()
        .await
}

/// Waits until every review in the database is decided; they must be `expected` in all.
async fn all_decided(db: &TestDb, expected: usize) -> Vec<consumer::db::ReviewRow> {
    wait_for(Duration::from_secs(60), "every review decided", || async {
        let rows = db.reviews().await;
        (rows.len() == expected && rows.iter().all(|row| row.status().is_decided())).then_some(rows)
    })
    .await
}

/// The help desk's decision on `document_id`.
async fn helpdesk_status(helpdesk: &Running, document_id: &str) -> DocumentStatus {
    let (status, case) = get_json(&format!("{}/document/{document_id}", helpdesk.url)).await;
    assert_eq!(status, 200, "{case}");
    serde_json::from_value(case["status"].clone()).unwrap()
}

#[actix_web::test]
async fn a_browser_on_any_replica_sees_every_change_and_a_replica_killed_mid_run_loses_nothing() {
    const REVIEWS: usize = 60;
    // Built before any service runs here: a build would hold up this thread.
    binary("consumer");
    let (db, redis) = (TestDb::create().await, TestRedis::default());
    let mut settings = helpdesk_settings(&redis);
    settings.review_delay_ms = "200-1000".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;
    let reconcile = [("RECONCILE_AFTER", "3s")];
    // B receives the webhooks of the reviews created through A; a browser
    // watches C, which neither creates nor receives anything itself.
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let mut b = consumer_process(&db, pb, &helpdesk.url, &reconcile).await;
    let _c = consumer_process(&db, pc, &helpdesk.url, &reconcile).await;
    let b_url = url(pb);
    let _a = consumer_process(
        &db,
        pa,
        &helpdesk.url,
        &[("CONSUMER_PUBLIC_URL", b_url.as_str()), reconcile[0]],
    )
    .await;
    let seen = watch_events(&url(pc)).await;

    let mut created = create_reviews(&url(pa), REVIEWS / 2).await;
    // Some decided through B's webhooks, some still waiting: kill B.
    wait_for(Duration::from_secs(30), "a first decision", || async {
        db.reviews()
            .await
            .iter()
            .any(|row| row.status().is_decided())
            .then_some(())
    })
    .await;
    b.kill();
    created.extend(create_reviews(&url(pa), REVIEWS / 2).await);

    // The webhooks B never took are dead letters at the help desk by now or
    // soon; A's and C's reconcilers ask the help desk instead.
    let rows = all_decided(&db, REVIEWS).await;
    for row in &rows {
        let document_id = row.document_id.as_deref().unwrap();
        assert_eq!(row.status(), helpdesk_status(&helpdesk, document_id).await, "{row:?}");
    }
    // C's browser saw every review reach its decision (those B decided
    // just before it was killed, maybe through a reload: C noticed B was gone).
    let by_id: HashMap<String, DocumentStatus> = rows.iter().map(|row| (row.id.to_string(), row.status())).collect();
    wait_for(Duration::from_secs(10), "C's browser to see every decision", || async {
        let seen = seen.lock().unwrap();
        (seen.reviews == by_id).then_some(())
    })
    .await;
    assert_eq!(created.len(), REVIEWS);
    assert!(
        seen.lock().unwrap().resyncs >= 1,
        "C noticed that B was gone and had its browsers reload"
    );
}

#[actix_web::test]
async fn three_reconcilers_never_ask_the_help_desk_twice_about_one_review() {
    const REVIEWS: usize = 40;
    // Built before any service runs here: a build would hold up this thread.
    binary("consumer");
    let (db, redis) = (TestDb::create().await, TestRedis::default());
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    // Every webhook goes nowhere: only the reconcilers can decide reviews.
    let nowhere = url(closed_port());
    let extra = [("RECONCILE_AFTER", "1s"), ("CONSUMER_PUBLIC_URL", nowhere.as_str())];
    let mut replicas: Vec<Process> = Vec::new();
    for _ in 0..3 {
        replicas.push(consumer_process(&db, free_port(), &helpdesk.url, &extra).await);
    }
    let first = url(replicas[0].port);
    create_reviews(&first, REVIEWS).await;
    all_decided(&db, REVIEWS).await;

    let asked = metric_sum(
        &helpdesk.url,
        "hookline_http_requests_total{method=\"GET\",route=\"/document/{document_id}\"",
    )
    .await;
    assert_eq!(
        asked, REVIEWS as u64,
        "each review asked about once, by one of three reconcilers"
    );
}

#[actix_web::test]
async fn one_idempotency_key_makes_one_review_whichever_replicas_it_reaches() {
    // Built before any service runs here: a build would hold up this thread.
    binary("consumer");
    let (db, redis) = (TestDb::create().await, TestRedis::default());
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(consumer_process(&db, free_port(), &helpdesk.url, &[]).await);
    }
    let body = json!({"documentUrl": "https://example.com/once.pdf"});
    let key = [("idempotency-key", "replicas-1")];
    let answers = futures_util::future::join_all(replicas.iter().flat_map(|replica| {
        let target = format!("{}/documents", url(replica.port));
        let body = body.clone();
        (0..3).map(move |_| {
            let (target, body) = (target.clone(), body.clone());
            async move { post_json(&target, &body, &key).await }
        })
    }))
    .await;
    assert!(
        answers.iter().all(|(status, _)| *status == 201 || *status == 409),
        "{answers:?}"
    );
    let ids: Vec<&serde_json::Value> = answers
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, review)| &review["id"])
        .collect();
    assert!(!ids.is_empty(), "{answers:?}");
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(db.reviews().await.len(), 1);
    // Once the first has finished, every replica answers the retry with it.
    for replica in &replicas {
        let (status, _, review) = call("POST", &format!("{}/documents", url(replica.port)), &key, Some(&body)).await;
        assert_eq!((status, &review["id"]), (201, ids[0]), "{review}");
    }
}

#[actix_web::test]
async fn replicas_started_together_on_a_new_database_take_turns_at_the_migrations() {
    binary("consumer"); // built before anything runs here
    let db = TestDb::create().await;
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    // Three first starts at once, each applying every migration: without the
    // migration lock, two ran the same one and one replica exited.
    let (a, b, c) = tokio::join!(
        consumer_process(&db, free_port(), &helpdesk.url, &[]),
        consumer_process(&db, free_port(), &helpdesk.url, &[]),
        consumer_process(&db, free_port(), &helpdesk.url, &[]),
    );
    for replica in [&a, &b, &c] {
        let (status, _, _) = call("GET", &format!("{}/readyz", url(replica.port)), &[], None).await;
        assert_eq!(status, 200, "replica on {} is up", replica.port);
    }
}
