//! Both ways with the original tutorial (nickabb/async-flows-and-webhooks),
//! through stand-ins that answer exactly as its code does
//! ([`hookline_tests::tutorial`]): its consumer with our help desk, our
//! consumer with its help desk.

use std::sync::atomic::Ordering;
use std::time::Duration;

use hookline_tests::tutorial::{TutorialConsumer, TutorialHelpDesk};
use hookline_tests::{
    TestDb, TestRedis, consumer_settings, get_json, post_review, start_consumer, start_helpdesk, wait_for,
};

#[actix_web::test]
async fn the_tutorials_consumer_works_with_our_help_desk() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(hookline_tests::helpdesk_settings(&redis)).await;
    let mut tutorial = TutorialConsumer::start().await;
    let (status, answer) = tutorial.request_review(&helpdesk.url).await;
    assert_eq!(status, 202, "{answer}");
    let document_id = answer["documentId"].as_str().unwrap().to_owned();
    assert!(answer["agentId"].is_string(), "{answer}");

    let (webhook, headers) = tokio::time::timeout(Duration::from_secs(10), tutorial.webhooks.recv())
        .await
        .unwrap()
        .unwrap();
    // The fields its handler reads, and no `id`: it sent none.
    assert_eq!(webhook["documentId"], document_id.as_str());
    assert_eq!(webhook["agentId"], answer["agentId"]);
    assert!(
        matches!(webhook["documentStatus"].as_str(), Some("ACCEPTED" | "DECLINED")),
        "{webhook}"
    );
    assert!(webhook.get("id").is_none(), "{webhook}");
    // Signed all the same (it ignores the headers).
    assert!(
        headers.iter().any(|(name, _)| name == "webhook-signature"),
        "{headers:?}"
    );
    wait_for(Duration::from_secs(5), "its 200 to count as delivered", || async {
        let (_, case) = get_json(&format!("{}/document/{document_id}", helpdesk.url)).await;
        (case["delivery"]["state"] == "DELIVERED").then_some(())
    })
    .await;
}

#[actix_web::test]
async fn our_consumer_works_with_the_tutorials_help_desk() {
    let tutorial = TutorialHelpDesk::start(Duration::from_millis(200), true).await;
    let db = TestDb::create().await;
    let mut settings = consumer_settings(&db, &tutorial.url);
    // It signs nothing: the consumer must be told to take unsigned webhooks.
    settings.webhook_secret = None;
    settings.allow_unsigned_webhooks = true;
    let consumer = start_consumer(settings).await;
    let (status, review) = post_review(&consumer.url, "https://boot.dev/community").await;
    assert_eq!(status, 201, "its 200 without a status is an accepted review: {review}");
    assert_eq!(review["documentStatus"], "PENDING_REVIEW");
    let id = review["id"].as_str().unwrap().to_owned();
    let decided = wait_for(Duration::from_secs(10), "the tutorial's webhook", || async {
        let (_, review) = get_json(&format!("{}/documents/{id}", consumer.url)).await;
        let status = review["documentStatus"].as_str().unwrap_or_default().to_owned();
        (status != "PENDING_REVIEW").then_some(status)
    })
    .await;
    assert!(matches!(decided.as_str(), "ACCEPTED" | "DECLINED"), "{decided}");
}

#[actix_web::test]
async fn a_help_desk_without_get_document_is_reported_once_and_asked_less_and_less() {
    // Its callbacks never arrive, and it cannot be asked: only the reconciler
    // notices, and it must not ask every round.
    let tutorial = TutorialHelpDesk::start(Duration::ZERO, false).await;
    let db = TestDb::create().await;
    let mut settings = consumer_settings(&db, &tutorial.url);
    settings.webhook_secret = None;
    settings.allow_unsigned_webhooks = true;
    settings.reconcile_after = Duration::from_millis(300);
    let consumer = start_consumer(settings).await;
    for n in 0..5 {
        let (status, body) = post_review(&consumer.url, &format!("https://example.com/{n}.pdf")).await;
        assert_eq!(status, 201, "{body}");
    }
    wait_for(Duration::from_secs(5), "the reconciler to ask", || async {
        (tutorial.gets.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    actix_web::rt::time::sleep(Duration::from_secs(4)).await;
    // Without backing off: 5 reviews, each asked again every 300 ms, for 4 s.
    let asked = tutorial.gets.load(Ordering::SeqCst);
    assert!(
        asked <= 15,
        "{asked} questions to a help desk that answered 404 to every one, in 4 s"
    );
    let (_, page) = get_json(&format!("{}/documents", consumer.url)).await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["documentStatus"] == "PENDING_REVIEW"),
        "{page}"
    );
}
