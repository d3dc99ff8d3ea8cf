//! The whole flow through both real services: consumer → help desk → Redis
//! job → signed webhook → consumer → PostgreSQL.

use std::time::Duration;

use hookline_contract::{DeliveryState, DocumentStatus};
use hookline_tests::{
    Receiver, Stack, TestRedis, closed_port, get_json, helpdesk_settings, post_json, post_signed_webhook,
    start_helpdesk, wait_for_delivery,
};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(20);

#[actix_web::test]
async fn a_review_goes_from_pending_review_to_a_decision_through_the_real_helpdesk() {
    let stack = Stack::start(|hd| hd.review_delay_ms = "100-200".parse().unwrap()).await;

    let review = stack.request_review("https://example.com/contract.pdf").await;
    assert_eq!(review.document_status, DocumentStatus::PendingReview);
    assert_eq!(review.document_url, "https://example.com/contract.pdf");
    let document_id = review
        .document_id
        .clone()
        .expect("the help desk's document id is stored");
    assert!(review.agent_id.is_some());
    assert_eq!(
        stack.review(&review.id).await.document_status,
        DocumentStatus::PendingReview
    );

    let rows = stack.wait_until_all_decided(1, DEADLINE).await;
    let decided = stack.review(&review.id).await;
    assert!(decided.document_status.is_decided());
    assert_eq!(rows[0].status(), decided.document_status);
    assert!(decided.updated_at > decided.created_at);

    let case = stack.case(&document_id).await;
    assert_eq!(case.status, decided.document_status, "both sides agree on the decision");
    assert_eq!(
        case.id.as_deref(),
        Some(review.id.as_str()),
        "the consumer's id travelled as the request id"
    );
    let delivered = stack.wait_for_delivery(&document_id, DeliveryState::Delivered).await;
    assert_eq!(delivered.delivery.attempts, 1);
}

#[actix_web::test]
async fn nothing_is_decided_before_the_minimum_review_delay() {
    const MIN_MS: i64 = 400;
    let stack = Stack::start(|hd| hd.review_delay_ms = "400-500".parse().unwrap()).await;
    let mut reviews = Vec::new();
    for n in 0..5 {
        reviews.push(stack.request_review(&format!("https://example.com/{n}.pdf")).await);
    }
    let rows = stack.wait_until_all_decided(5, DEADLINE).await;
    for row in rows {
        let took = (row.updated_at - row.created_at).num_milliseconds();
        assert!(took >= MIN_MS, "review {} decided after {took} ms", row.id);
    }
    for review in reviews {
        let case = stack.case(review.document_id.as_deref().unwrap()).await;
        let decided_after = (case.decided_at.unwrap() - case.created_at).num_milliseconds();
        assert!(decided_after >= MIN_MS, "agent decided after {decided_after} ms");
        assert!((case.due_at - case.created_at).num_milliseconds() >= MIN_MS);
    }
}

async fn decide_twenty_with_ratio(ratio: f64) -> Vec<DocumentStatus> {
    let stack = Stack::start(|hd| hd.accept_ratio = ratio).await;
    for n in 0..20 {
        stack.request_review(&format!("https://example.com/{n}.pdf")).await;
    }
    let rows = stack.wait_until_all_decided(20, DEADLINE).await;
    rows.iter().map(consumer::db::ReviewRow::status).collect()
}

#[actix_web::test]
async fn accept_ratio_one_accepts_every_review() {
    let statuses = decide_twenty_with_ratio(1.0).await;
    assert!(statuses.iter().all(|s| *s == DocumentStatus::Accepted), "{statuses:?}");
}

#[actix_web::test]
async fn accept_ratio_zero_declines_every_review() {
    let statuses = decide_twenty_with_ratio(0.0).await;
    assert!(statuses.iter().all(|s| *s == DocumentStatus::Declined), "{statuses:?}");
}

#[actix_web::test]
async fn the_optional_id_is_echoed_in_the_callback() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    let mut receiver = Receiver::start(200).await;
    let endpoint = format!("{}/document", helpdesk.url);
    let receiver_url = receiver.url.clone();
    let callback = [("x-callback-url", receiver_url.as_str())];

    for (sent, echoed) in [
        (json!("ref-42"), Some(json!("ref-42"))),
        (json!(42), Some(json!("42"))),
        (serde_json::Value::Null, None),
    ] {
        let mut body = json!({"documentUrl": "https://example.com/a.pdf"});
        if !sent.is_null() {
            body["id"] = sent;
        }
        let (status, accepted) = post_json(&endpoint, &body, &callback).await;
        assert_eq!(status, 202, "{accepted}");
        assert_eq!(accepted["status"], "PENDING_REVIEW");
        let webhook = receiver.next(DEADLINE).await;
        assert_eq!(webhook.body["documentId"], accepted["documentId"]);
        assert_eq!(webhook.body["agentId"], accepted["agentId"]);
        assert_eq!(webhook.body.get("id").cloned(), echoed);
        let decision = webhook.body["documentStatus"].as_str().unwrap();
        assert!(decision == "ACCEPTED" || decision == "DECLINED", "{decision}");
        assert_eq!(webhook.headers["content-type"], "application/json");
        assert!(webhook.headers["webhook-id"].starts_with("msg_"));
        assert!(webhook.headers["webhook-signature"].starts_with("v1,"));
    }
}

#[actix_web::test]
async fn two_hundred_reviews_requested_at_once_are_all_decided_and_none_is_lost() {
    let stack = Stack::start(|hd| hd.review_delay_ms = "0-300".parse().unwrap()).await;
    let requests = (0..200).map(|n| {
        let stack = &stack;
        async move { stack.request_review(&format!("https://example.com/{n}.pdf")).await }
    });
    let reviews = futures_util::future::join_all(requests).await;

    let rows = stack.wait_until_all_decided(200, Duration::from_secs(60)).await;
    let mut ids: Vec<_> = rows.iter().map(|row| row.id.to_string()).collect();
    ids.sort();
    let mut requested: Vec<_> = reviews.iter().map(|review| review.id.clone()).collect();
    requested.sort();
    assert_eq!(ids, requested, "exactly the requested reviews exist");
}

#[actix_web::test]
async fn a_webhook_that_overtakes_the_helpdesk_answer_is_matched_by_the_echoed_id() {
    // The state in which the race leaves us, made on purpose: the review is
    // recorded but the help desk's answer (its ids) is not stored yet.
    let stack = Stack::start(|_| {}).await;
    let review_id = uuid::Uuid::now_v7();
    let mut conn = stack.db.connect().await;
    consumer::db::insert_requested(&mut conn, review_id, "https://example.com/a.pdf")
        .await
        .unwrap();

    let webhook =
        json!({"agentId": "agent-1", "documentId": "doc-1", "documentStatus": "ACCEPTED", "id": review_id.to_string()});
    let (status, body) = post_signed_webhook(
        &format!("{}/document/update", stack.consumer.url),
        &serde_json::to_vec(&webhook).unwrap(),
        "msg_overtaking",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows = stack.db.reviews().await;
    assert_eq!(rows[0].status(), DocumentStatus::Accepted);
    assert_eq!(rows[0].document_id.as_deref(), Some("doc-1"));
    assert_eq!(rows[0].agent_id.as_deref(), Some("agent-1"));

    // The help desk's answer arriving afterwards (with other ids, to see
    // whether they would be written) neither overwrites the ids nor the decision.
    let row = consumer::db::attach_ticket(&mut conn, review_id, "agent-2", "doc-2")
        .await
        .unwrap();
    assert_eq!(row.status(), DocumentStatus::Accepted);
    assert_eq!(
        (row.agent_id.as_deref(), row.document_id.as_deref()),
        (Some("agent-1"), Some("doc-1"))
    );
    assert_eq!(stack.db.reviews().await, vec![row], "and nothing else changed");
}

#[actix_web::test]
async fn fifty_reviews_with_zero_delay_are_all_decided_by_their_first_attempt() {
    // Zero delay makes the webhook race the help desk's 202; retries are an
    // hour away, so only the first attempt can decide the reviews in time.
    let stack = Stack::start(|hd| hd.retry_schedule = "1h".parse().unwrap()).await;
    let requests = (0..50).map(|n| {
        let stack = &stack;
        async move { stack.request_review(&format!("https://example.com/{n}.pdf")).await }
    });
    futures_util::future::join_all(requests).await;
    let rows = stack.wait_until_all_decided(50, DEADLINE).await;
    for row in &rows {
        let case = stack.case(row.document_id.as_deref().unwrap()).await;
        assert_eq!(
            case.delivery.attempts, 1,
            "decided by the first attempt, however the webhook raced the 202: {case:?}"
        );
    }
}

#[actix_web::test]
async fn the_helpdesk_survives_callback_urls_that_refuse_connections() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.retry_schedule = "10ms,10ms".parse().unwrap();
    // Every attempt, not the circuit breaker (tests/receivers.rs), here.
    settings.circuit_failures = 1000;
    let helpdesk = start_helpdesk(settings).await;
    let endpoint = format!("{}/document", helpdesk.url);
    let refused = format!("http://127.0.0.1:{}/hook", closed_port());

    let mut doomed = Vec::new();
    for _ in 0..20 {
        let (status, accepted) = post_json(
            &endpoint,
            &json!({"documentUrl": "https://example.com/a.pdf"}),
            &[("x-callback-url", &refused)],
        )
        .await;
        assert_eq!(status, 202);
        doomed.push(accepted["documentId"].as_str().unwrap().to_owned());
    }
    // Meanwhile a healthy receiver still gets its webhook.
    let mut receiver = Receiver::start(200).await;
    let (status, _) = post_json(
        &endpoint,
        &json!({"documentUrl": "https://example.com/b.pdf"}),
        &[("x-callback-url", &receiver.url)],
    )
    .await;
    assert_eq!(status, 202);
    receiver.next(DEADLINE).await;

    for document_id in doomed {
        let case = wait_for_delivery(&helpdesk.url, &document_id, DeliveryState::Dead).await;
        assert_eq!(case.delivery.attempts, 3, "{case:?}");
        assert!(
            case.delivery.last_error.as_deref().unwrap().contains("connect"),
            "{case:?}"
        );
    }
    let (status, _) = get_json(&format!("{}/healthz", helpdesk.url)).await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn webhooks_signed_with_another_secret_are_refused_and_the_review_stays_pending() {
    let stack = Stack::start(|hd| {
        hd.webhook_secret = Some(
            "whsec_b3RoZXItc2VjcmV0LW5vdC10aGUtY29uc3VtZXJzLW9uZQ=="
                .parse()
                .unwrap(),
        );
        hd.retry_schedule = "none".parse().unwrap();
    })
    .await;
    let review = stack.request_review("https://example.com/a.pdf").await;
    let document_id = review.document_id.unwrap();
    let case = stack.wait_for_delivery(&document_id, DeliveryState::Dead).await;
    assert_eq!(case.delivery.last_error.as_deref(), Some("HTTP 401"));
    assert_eq!(
        stack.review(&review.id).await.document_status,
        DocumentStatus::PendingReview
    );
}

#[actix_web::test]
async fn a_callback_that_never_answers_costs_one_timeout_and_does_not_stall_other_deliveries() {
    // The kernel completes the handshake into the backlog; nobody ever answers.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = format!("http://{}/hook", black_hole.local_addr().unwrap());
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.delivery_timeout = Duration::from_millis(300);
    settings.retry_schedule = "none".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;
    let endpoint = format!("{}/document", helpdesk.url);

    let (_, stuck) = post_json(
        &endpoint,
        &json!({"documentUrl": "https://example.com/a.pdf"}),
        &[("x-callback-url", &silent)],
    )
    .await;
    let mut receiver = Receiver::start(200).await;
    let (status, _) = post_json(
        &endpoint,
        &json!({"documentUrl": "https://example.com/b.pdf"}),
        &[("x-callback-url", &receiver.url)],
    )
    .await;
    assert_eq!(status, 202);
    receiver.next(DEADLINE).await;

    let document_id = stuck["documentId"].as_str().unwrap();
    let case = wait_for_delivery(&helpdesk.url, document_id, DeliveryState::Dead).await;
    assert_eq!(
        case.delivery.last_error.as_deref(),
        Some("timed out after 300ms waiting for the response"),
        "{case:?}"
    );
}
