//! The webhook receiver refuses what is forged and absorbs what is repeated;
//! `POST /documents` is safe to retry with an `Idempotency-Key`.

use std::time::Duration;

use chrono::Utc;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use hookline_contract::signature::SecretSet;
use hookline_contract::{DeliveryState, DocumentStatus};
use hookline_tests::{SECRET, Stack, assert_client_error, post_json, post_raw, secret_set};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(30);

/// A stack whose one review is pending for an hour: webhooks in these tests
/// come from the test, not from the help desk.
async fn stack_with_a_pending_review() -> (Stack, String, String) {
    let stack = Stack::start(|hd| hd.review_delay_ms = "3600000".parse().unwrap()).await;
    let review = stack.request_review("https://example.com/a.pdf").await;
    (stack, review.document_id.unwrap(), review.agent_id.unwrap())
}

fn body(document_id: &str, agent_id: &str, status: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"agentId": agent_id, "documentId": document_id, "documentStatus": status})).unwrap()
}

async fn send(stack: &Stack, body: &[u8], id: &str, timestamp: i64, signature: &str) -> (u16, serde_json::Value) {
    let timestamp = timestamp.to_string();
    post_raw(
        &format!("{}/document/update", stack.consumer.url),
        body.to_vec(),
        "application/json",
        &[
            ("webhook-id", id),
            ("webhook-timestamp", &timestamp),
            ("webhook-signature", signature),
        ],
    )
    .await
}

#[actix_web::test]
async fn forged_tampered_stale_or_incomplete_webhooks_are_refused_with_401_and_change_nothing() {
    let (stack, document_id, agent_id) = stack_with_a_pending_review().await;
    let before = stack.db.snapshot().await;
    let good = body(&document_id, &agent_id, "ACCEPTED");
    let now = Utc::now().timestamp();
    let secrets = secret_set();
    let other: SecretSet = "whsec_b3RoZXItc2VjcmV0LW9mLXR3ZW50eS1mb3VyLWJ5dGVz".parse().unwrap();

    let tampered = body(&document_id, &agent_id, "DECLINED");
    let cases: Vec<(&str, Vec<u8>, String, i64, String)> = vec![
        (
            "signed with another secret",
            good.clone(),
            "msg_1".into(),
            now,
            other.sign("msg_1", now, &good),
        ),
        (
            "body tampered after signing",
            tampered,
            "msg_2".into(),
            now,
            secrets.sign("msg_2", now, &good),
        ),
        (
            "id swapped after signing",
            good.clone(),
            "msg_3b".into(),
            now,
            secrets.sign("msg_3", now, &good),
        ),
        (
            "ten minutes old",
            good.clone(),
            "msg_4".into(),
            now - 600,
            secrets.sign("msg_4", now - 600, &good),
        ),
        (
            "ten minutes ahead",
            good.clone(),
            "msg_5".into(),
            now + 600,
            secrets.sign("msg_5", now + 600, &good),
        ),
        (
            "a v2 signature",
            good.clone(),
            "msg_6".into(),
            now,
            secrets.sign("msg_6", now, &good).replace("v1,", "v2,"),
        ),
        (
            "garbage signature",
            good.clone(),
            "msg_7".into(),
            now,
            "v1,bm90IGEgc2lnbmF0dXJl".into(),
        ),
    ];
    for (what, payload, id, timestamp, signature) in cases {
        let (status, answer) = send(&stack, &payload, &id, timestamp, &signature).await;
        assert_eq!(assert_client_error(status, &answer, 401), "unauthorized", "{what}");
    }
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let ts = now.to_string();
        let sig = secrets.sign("msg_8", now, &good);
        let all = [
            ("webhook-id", "msg_8"),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", sig.as_str()),
        ];
        let headers: Vec<_> = all.into_iter().filter(|(name, _)| *name != missing).collect();
        let (status, answer) = post_raw(
            &format!("{}/document/update", stack.consumer.url),
            good.clone(),
            "application/json",
            &headers,
        )
        .await;
        assert_eq!(
            assert_client_error(status, &answer, 401),
            "unauthorized",
            "without {missing}"
        );
        assert!(answer["detail"].as_str().unwrap().contains(missing), "{answer}");
    }
    assert_eq!(before, stack.db.snapshot().await);
}

#[actix_web::test]
async fn a_redelivered_webhook_id_is_acknowledged_and_changes_nothing() {
    let (stack, document_id, agent_id) = stack_with_a_pending_review().await;
    let now = Utc::now().timestamp();
    let payload = body(&document_id, &agent_id, "DECLINED");
    let signature = secret_set().sign("msg_once", now, &payload);

    let (status, first) = send(&stack, &payload, "msg_once", now, &signature).await;
    assert_eq!((status, first["outcome"].as_str()), (200, Some("applied")));
    let after_first = stack.db.snapshot().await;
    assert_eq!(after_first.reviews[0].status(), DocumentStatus::Declined);
    assert_eq!(after_first.receipts.len(), 1);

    let (status, again) = send(&stack, &payload, "msg_once", now, &signature).await;
    assert_eq!((status, again["outcome"].as_str()), (200, Some("duplicate")));
    assert_eq!(
        after_first,
        stack.db.snapshot().await,
        "a duplicate changes nothing, not even updated_at, nor a second receipt"
    );

    // Another event with the same decision is a no-op; a contradicting one is refused.
    let other = secret_set().sign("msg_other", now, &payload);
    let (status, same) = send(&stack, &payload, "msg_other", now, &other).await;
    assert_eq!((status, same["outcome"].as_str()), (200, Some("already_applied")));
    let contradicting = body(&document_id, &agent_id, "ACCEPTED");
    let signature = secret_set().sign("msg_contra", now, &contradicting);
    let (status, answer) = send(&stack, &contradicting, "msg_contra", now, &signature).await;
    assert_eq!(assert_client_error(status, &answer, 409), "conflict");
    assert_eq!(
        after_first.reviews,
        stack.db.snapshot().await.reviews,
        "the stored decision stands"
    );
}

#[actix_web::test]
async fn two_contradicting_webhooks_at_once_decide_the_review_once_and_the_other_is_refused() {
    let (stack, document_id, agent_id) = stack_with_a_pending_review().await;
    let now = Utc::now().timestamp();
    let (accept, decline) = (
        body(&document_id, &agent_id, "ACCEPTED"),
        body(&document_id, &agent_id, "DECLINED"),
    );
    let (sign_accept, sign_decline) = (
        secret_set().sign("msg_yes", now, &accept),
        secret_set().sign("msg_no", now, &decline),
    );
    let (yes, no) = while_the_review_is_locked(&stack, 2, async {
        tokio::join!(
            send(&stack, &accept, "msg_yes", now, &sign_accept),
            send(&stack, &decline, "msg_no", now, &sign_decline)
        )
    })
    .await;
    let mut statuses = [yes.0, no.0];
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 409],
        "one applies, the other contradicts it: {yes:?} {no:?}"
    );
    let winner = if yes.0 == 200 {
        DocumentStatus::Accepted
    } else {
        DocumentStatus::Declined
    };
    let stored = stack.db.snapshot().await;
    assert_eq!(
        stored.reviews[0].status(),
        winner,
        "the stored decision is the applied one"
    );
    assert_eq!(
        stored.receipts.len(),
        1,
        "one receipt, the winner's: {:?}",
        stored.receipts
    );
    assert_eq!(stored.receipts[0].2, winner.as_str());
}

/// Runs `requests` while the test holds the review's row lock, and releases
/// it once `waiters` of them wait for it: left to chance, concurrent
/// webhooks would rarely overlap in the database, and a broken lock would
/// go unnoticed.
async fn while_the_review_is_locked<F: std::future::Future>(stack: &Stack, waiters: usize, requests: F) -> F::Output {
    let mut holder = stack.db.connect().await;
    holder
        .batch_execute("BEGIN; SELECT id FROM document_reviews FOR UPDATE")
        .await
        .unwrap();
    let release = async {
        let mut watcher = stack.db.connect().await;
        let started = std::time::Instant::now();
        loop {
            let waiting: Vec<Waiting> = diesel::sql_query(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .load(&mut watcher)
            .await
            .unwrap();
            if waiting.len() == waiters {
                break;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{waiters} requests never waited for the row lock"
            );
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
        holder.batch_execute("COMMIT").await.unwrap();
    };
    let (output, ()) = tokio::join!(requests, release);
    output
}

#[derive(diesel::QueryableByName)]
struct Waiting {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    #[allow(dead_code)]
    pid: i32,
}

#[actix_web::test]
async fn concurrent_copies_of_one_webhook_apply_it_exactly_once() {
    let (stack, document_id, agent_id) = stack_with_a_pending_review().await;
    let now = Utc::now().timestamp();
    let payload = body(&document_id, &agent_id, "ACCEPTED");
    let signature = secret_set().sign("msg_race", now, &payload);
    // As many copies as webhooks get connections (half the pool of 8, see
    // WebhookSlots), so all of them reach the database and race there.
    let copies = (0..4).map(|_| send(&stack, &payload, "msg_race", now, &signature));
    let answers = while_the_review_is_locked(&stack, 4, futures_util::future::join_all(copies)).await;
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    let applied = answers.iter().filter(|(_, a)| a["outcome"] == "applied").count();
    assert_eq!(applied, 1, "{answers:?}");
    assert_eq!(stack.db.snapshot().await.receipts.len(), 1);
}

#[actix_web::test]
async fn secret_rotation_keeps_webhooks_flowing() {
    const NEW: &str = "whsec_bmV3LXNlY3JldC1mb3Itcm90YXRpb24tdGVzdHM=";
    // The help desk signs with the new and the old secret; the consumer still
    // only knows the old one (step 1 of a rotation), then only the new one.
    for consumer_secret in [SECRET, NEW] {
        let stack = Stack::start_with(
            |hd| hd.webhook_secret = Some(format!("{NEW},{SECRET}").parse().unwrap()),
            |consumer| consumer.webhook_secret = Some(consumer_secret.parse().unwrap()),
        )
        .await;
        stack.request_review("https://example.com/a.pdf").await;
        stack.wait_until_all_decided(1, DEADLINE).await;
    }
}

#[actix_web::test]
async fn unsigned_webhooks_flow_only_when_explicitly_allowed_without_a_secret() {
    // Neither a secret nor the permission: the consumer refuses to start.
    let db = hookline_tests::TestDb::create().await;
    let mut settings = hookline_tests::consumer_settings(&db, "http://127.0.0.1:9");
    settings.webhook_secret = None;
    settings.allow_unsigned_webhooks = false;
    let refused = consumer::Application::build(settings)
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("ALLOW_UNSIGNED_WEBHOOKS")),
        "{refused:?}"
    );
    // A secret and the permission: the secret wins, unsigned webhooks are refused.
    let stack = Stack::start_with(
        |hd| hd.webhook_secret = None,
        |consumer| consumer.allow_unsigned_webhooks = true,
    )
    .await;
    let review = stack.request_review("https://example.com/a.pdf").await;
    let case = stack
        .wait_for_delivery(review.document_id.as_deref().unwrap(), DeliveryState::Dead)
        .await;
    assert_eq!(case.delivery.last_error.as_deref(), Some("HTTP 401"), "{case:?}");
    assert_eq!(stack.db.reviews().await[0].status(), DocumentStatus::PendingReview);
    // No secret, and the permission: they flow.
    let stack = Stack::start_with(
        |hd| hd.webhook_secret = None,
        |consumer| {
            consumer.webhook_secret = None;
            consumer.allow_unsigned_webhooks = true;
        },
    )
    .await;
    let review = stack.request_review("https://example.com/a.pdf").await;
    stack.wait_until_all_decided(1, DEADLINE).await;
    let case = stack
        .wait_for_delivery(review.document_id.as_deref().unwrap(), DeliveryState::Delivered)
        .await;
    assert_eq!(case.delivery.attempts, 1);
}

#[actix_web::test]
async fn a_retried_request_with_an_idempotency_key_gets_the_first_answer_and_asks_the_helpdesk_once() {
    let stack = Stack::start(|_| {}).await;
    let url = format!("{}/documents", stack.consumer.url);
    let body = json!({"documentUrl": "https://example.com/a.pdf"});
    let key = [("idempotency-key", "order-42")];

    let (status, first) = post_json(&url, &body, &key).await;
    assert_eq!(status, 201, "{first}");
    let (status, second) = post_json(&url, &body, &key).await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(first, second, "the first response, replayed");
    assert_eq!(stack.db.reviews().await.len(), 1);
    let cases = stack
        .redis
        .snapshot()
        .await
        .keys()
        .filter(|k| k.contains(":case:"))
        .count();
    assert_eq!(cases, 1, "the help desk was asked once");

    let (status, answer) = post_json(&url, &json!({"documentUrl": "https://example.com/b.pdf"}), &key).await;
    assert_eq!(assert_client_error(status, &answer, 422), "unprocessable");
    let long = "k".repeat(300);
    let (status, answer) = post_json(&url, &body, &[("idempotency-key", long.as_str())]).await;
    assert_eq!(assert_client_error(status, &answer, 400), "invalid_field");
    assert_eq!(stack.db.reviews().await.len(), 1);
}

#[actix_web::test]
async fn concurrent_requests_with_one_idempotency_key_create_one_review() {
    let stack = Stack::start(|_| {}).await;
    let url = format!("{}/documents", stack.consumer.url);
    let body = json!({"documentUrl": "https://example.com/a.pdf"});
    let requests = (0..8).map(|_| post_json(&url, &body, &[("idempotency-key", "same")]));
    let answers = futures_util::future::join_all(requests).await;
    assert!(
        answers.iter().all(|(status, _)| *status == 201 || *status == 409),
        "{answers:?}"
    );
    let reviews = stack.db.reviews().await;
    assert_eq!(reviews.len(), 1);
    let created: Vec<&serde_json::Value> = answers
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, review)| review)
        .collect();
    assert!(!created.is_empty(), "{answers:?}");
    assert!(
        created
            .iter()
            .all(|review| review["id"] == reviews[0].id.to_string().as_str()),
        "every 201 is the same review: {created:?}"
    );
    let (_, cases) = hookline_tests::get_json(&format!("{}/cases", stack.helpdesk.url)).await;
    assert_eq!(cases["total"], 1, "the help desk was asked once: {cases}");
}

#[actix_web::test]
async fn a_retry_after_its_first_request_died_mid_way_resumes_that_review_instead_of_making_another() {
    let stack = Stack::start(|_| {}).await;
    let url = format!("{}/documents", stack.consumer.url);
    let mut conn = stack.db.connect().await;
    // Two requests that died two minutes ago (a replica SIGKILLed): one after
    // its review was stored, before the help desk answered; one before even that.
    let (stored, never_stored) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    conn.batch_execute(&format!(
        "INSERT INTO document_reviews (id, document_url, document_status) \
           VALUES ('{stored}', 'https://example.com/died.pdf', 'PENDING_REVIEW'); \
         INSERT INTO idempotency_keys (key, document_url, review_id, created_at) VALUES \
           ('died-after-insert', 'https://example.com/died.pdf', '{stored}', now() - interval '2 minutes'), \
           ('died-before-insert', 'https://example.com/early.pdf', '{never_stored}', now() - interval '2 minutes')"
    ))
    .await
    .unwrap();

    let body = json!({"documentUrl": "https://example.com/died.pdf"});
    let (status, review) = post_json(&url, &body, &[("idempotency-key", "died-after-insert")]).await;
    assert_eq!(status, 201, "{review}");
    assert_eq!(review["id"], stored.to_string(), "the stored review, resumed");
    assert!(review["documentId"].is_string(), "and sent to the help desk: {review}");
    let body = json!({"documentUrl": "https://example.com/early.pdf"});
    let (status, review) = post_json(&url, &body, &[("idempotency-key", "died-before-insert")]).await;
    assert_eq!(status, 201, "{review}");
    assert_eq!(review["id"], never_stored.to_string(), "the id claimed with the key");
    assert_eq!(stack.db.reviews().await.len(), 2, "one review per key");
}
