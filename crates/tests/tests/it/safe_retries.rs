//! Safe to retry, end to end: the help desk answers a request it has seen
//! (the same `id`, document and callback) with the same case; so the
//! consumer retries a call whose answer was lost instead of giving up, and
//! sends again, later, the request of a review that never got its answer.

use std::time::Duration;

use hookline_contract::DocumentStatus;
use hookline_tests::process::free_port;
use hookline_tests::proxy::AnswerCutter;
use hookline_tests::{
    Receiver, Stack, TestDb, TestRedis, assert_client_error, consumer_settings, get_json, helpdesk_settings,
    post_json_with_headers, post_review, start_consumer, start_helpdesk, wait_for,
};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(30);

#[actix_web::test]
async fn the_helpdesk_answers_a_repeated_request_with_the_same_case_and_refuses_the_id_for_another() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    let mut receiver = Receiver::start(200).await;
    let url = format!("{}/document", helpdesk.url);
    let body = json!({"documentUrl": "https://example.com/a.pdf", "id": "review-1"});
    let callback = [("x-callback-url", receiver.url.as_str())];

    let (status, first, headers) = post_json_with_headers(&url, &body, &callback).await;
    assert_eq!(status, 202, "{first}");
    assert!(!headers.contains_key("idempotent-replayed"), "{headers:?}");
    let (status, again, headers) = post_json_with_headers(&url, &body, &callback).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(headers.get("idempotent-replayed").map(String::as_str), Some("true"));
    assert_eq!(
        (&again["documentId"], &again["agentId"]),
        (&first["documentId"], &first["agentId"]),
        "the same case"
    );

    // The same id for another document, or another callback: refused.
    let other = json!({"documentUrl": "https://example.com/b.pdf", "id": "review-1"});
    let (status, answer, _) = post_json_with_headers(&url, &other, &callback).await;
    assert_eq!(assert_client_error(status, &answer, 409), "conflict");
    let elsewhere = [("x-callback-url", "http://127.0.0.1:9/elsewhere")];
    let (status, answer, _) = post_json_with_headers(&url, &body, &elsewhere).await;
    assert_eq!(assert_client_error(status, &answer, 409), "conflict");
    // Without an id, every request is a new case.
    let plain = json!({"documentUrl": "https://example.com/a.pdf"});
    for _ in 0..2 {
        let (status, _, _) = post_json_with_headers(&url, &plain, &callback).await;
        assert_eq!(status, 202);
    }

    let (_, cases) = get_json(&format!("{}/cases", helpdesk.url)).await;
    assert_eq!(
        cases["total"], 3,
        "one case for review-1, one per plain request: {cases}"
    );
    let webhooks = receiver.collect_until(DEADLINE, |got| got.len() == 3).await;
    let for_first = webhooks
        .iter()
        .filter(|w| w.body["documentId"] == first["documentId"])
        .count();
    assert_eq!(for_first, 1, "review-1 is decided and delivered once");
}

#[actix_web::test]
async fn an_answer_lost_on_the_way_back_is_asked_for_again_and_makes_one_case() {
    let stack = Stack::start(|hd| hd.review_delay_ms = "300".parse().unwrap()).await;
    // A consumer of its own, talking to the help desk through a proxy that
    // loses the first answer: the case is stored, the consumer never hears.
    let helpdesk_addr = stack.helpdesk.url.trim_start_matches("http://").to_owned();
    let cutter = AnswerCutter::start(helpdesk_addr, 1).await;
    let db = TestDb::create().await;
    let consumer = start_consumer(consumer_settings(&db, &cutter.url)).await;

    let (status, review) = post_review(&consumer.url, "https://example.com/a.pdf").await;
    assert_eq!(status, 201, "{review}");
    assert_eq!(cutter.cut(), 1, "the first answer was lost");
    let document_id = review["documentId"]
        .as_str()
        .expect("the retry got the case")
        .to_owned();
    let (_, cases) = get_json(&format!("{}/cases", stack.helpdesk.url)).await;
    assert_eq!(cases["total"], 1, "the retry made no second case: {cases}");
    assert_eq!(cases["items"][0]["documentId"], document_id.as_str());

    let rows = wait_for(DEADLINE, "the review to be decided", || async {
        let rows = db.reviews().await;
        rows.iter().all(|row| row.status().is_decided()).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].document_id.as_deref(), Some(document_id.as_str()));
}

#[actix_web::test]
async fn a_review_whose_helpdesk_was_down_is_sent_when_it_is_back_and_decided() {
    let port = free_port();
    let db = TestDb::create().await;
    let mut settings = consumer_settings(&db, &format!("http://127.0.0.1:{port}"));
    settings.reconcile_after = Duration::from_millis(300);
    let consumer = start_consumer(settings).await;
    let (status, review) = post_review(&consumer.url, "https://example.com/a.pdf").await;
    assert_eq!(status, 201, "kept, not refused: {review}");
    assert!(review["documentId"].is_null(), "{review}");
    assert_eq!(review["documentStatus"], DocumentStatus::PendingReview.as_str());

    // The help desk comes up where the consumer expects it.
    let redis = TestRedis::default();
    let mut helpdesk = helpdesk_settings(&redis);
    helpdesk.listen = format!("127.0.0.1:{port}").parse().unwrap();
    let helpdesk = start_helpdesk(helpdesk).await;
    let rows = wait_for(DEADLINE, "the review to be sent and decided", || async {
        let rows = db.reviews().await;
        rows.iter().all(|row| row.status().is_decided()).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 1);
    let (_, cases) = get_json(&format!("{}/cases", helpdesk.url)).await;
    assert_eq!(cases["total"], 1, "{cases}");
    assert_eq!(cases["items"][0]["documentId"], rows[0].document_id.as_deref().unwrap());
    assert_eq!(
        cases["items"][0]["id"],
        rows[0].id.to_string().as_str(),
        "our id, as sent"
    );
    let (_, metrics) = hookline_tests::get_text(&format!("{}/metrics", consumer.url)).await;
    assert!(
        metrics.contains("hookline_consumer_reviews_healed_total 1\n"),
        "{metrics}"
    );
}
