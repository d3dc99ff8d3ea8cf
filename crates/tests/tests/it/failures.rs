//! What the consumer does when things around it fail.

use hookline_tests::{TestDb, assert_client_error, consumer_settings, post_review, start_consumer};

#[actix_web::test]
async fn a_helpdesk_that_refuses_the_request_is_a_502_that_says_why() {
    // A wrong HELPDESK_URL path: the help desk answers 404 to every request.
    let db = TestDb::create().await;
    let redis = hookline_tests::TestRedis::default();
    let helpdesk = hookline_tests::start_helpdesk(hookline_tests::helpdesk_settings(&redis)).await;
    let consumer = start_consumer(consumer_settings(&db, &format!("{}/wrong/prefix", helpdesk.url))).await;
    let (status, answer) = post_review(&consumer.url, "https://example.com/a.pdf").await;
    assert_eq!(assert_client_error(status, &answer, 502), "bad_gateway");
    assert!(answer["detail"].as_str().unwrap().contains("HTTP 404"), "{answer}");
    assert!(db.reviews().await.is_empty());
    assert!(redis.snapshot().await.is_empty(), "the help desk stored nothing");
}

#[actix_web::test]
async fn the_consumer_refuses_to_start_without_a_webhook_policy_or_with_a_bad_public_url() {
    let db = TestDb::create().await;
    let mut settings = consumer_settings(&db, "http://127.0.0.1:9");
    settings.webhook_secret = None;
    let error = consumer::Application::build(settings.clone())
        .await
        .err()
        .expect("must refuse");
    assert!(error.to_string().contains("WEBHOOK_SECRET"), "{error}");
    settings.allow_unsigned_webhooks = true;
    assert!(consumer::Application::build(settings.clone()).await.is_ok());

    settings.public_url = Some("ftp://consumer.invalid".parse().unwrap());
    let error = consumer::Application::build(settings).await.err().expect("must refuse");
    assert!(error.to_string().contains("CONSUMER_PUBLIC_URL"), "{error}");
}
