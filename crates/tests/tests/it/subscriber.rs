//! The consumer with `HELPDESK_SUBSCRIBE=true` against the real help desk,
//! real Redis and real PostgreSQL: the set-up (made, reused, rotated,
//! retried), which requests carry a callback, and the events that decide
//! reviews at `POST /helpdesk/events`.

use std::time::Duration;

use chrono::Utc;
use hookline_contract::signature::SecretSet;
use hookline_contract::{
    CaseView, DeliveryState, DocumentEvent, DocumentStatus, Event, EventType, Review, Subscription, SubscriptionPage,
};
use hookline_tests::proxy::AnswerCutter;
use hookline_tests::{
    Running, Stack, TestDb, TestRedis, call, closed_port, consumer_settings, get_json, get_text, helpdesk_settings,
    metric_sum, post_raw, post_review, start_consumer, start_helpdesk, wait_for,
};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(20);

fn subscribe(settings: &mut consumer::Settings) {
    settings.helpdesk_subscribe = true;
}

/// The help desk's `GET /webhooks` (no API keys in these tests).
async fn subscriptions(helpdesk: &Running) -> SubscriptionPage {
    let (status, _, page) = call("GET", &format!("{}/webhooks", helpdesk.url), &[], None).await;
    assert_eq!(status, 200, "{page}");
    serde_json::from_value(page).unwrap()
}

/// The only subscription at the help desk, once there is one.
async fn the_subscription(helpdesk: &Running) -> Subscription {
    let page = wait_for(DEADLINE, "a subscription at the help desk", || async {
        let page = subscriptions(helpdesk).await;
        (page.total > 0).then_some(page)
    })
    .await;
    assert_eq!(page.total, 1, "{page:?}");
    page.items.into_iter().next().unwrap()
}

async fn case(helpdesk: &Running, document_id: &str) -> CaseView {
    let (status, case) = get_json(&format!("{helpdesk}/document/{document_id}", helpdesk = helpdesk.url)).await;
    assert_eq!(status, 200, "{case}");
    serde_json::from_value(case).unwrap()
}

async fn request_review(consumer: &Running) -> Review {
    let (status, review) = post_review(&consumer.url, "https://example.com/a.pdf").await;
    assert_eq!(status, 201, "{review}");
    serde_json::from_value(review).unwrap()
}

/// Requests reviews until the help desk gets one without `X-Callback-Url`
/// (the set-up is done); returns it and its case.
async fn review_without_callback(consumer: &Running, helpdesk: &Running) -> (Review, CaseView) {
    wait_for(DEADLINE, "a review requested without X-Callback-Url", || async {
        let review = request_review(consumer).await;
        let case = case(helpdesk, review.document_id.as_deref().unwrap()).await;
        case.callback_url.is_none().then_some((review, case))
    })
    .await
}

async fn review(consumer: &Running, id: &str) -> Review {
    let (status, body) = get_json(&format!("{}/documents/{id}", consumer.url)).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

/// Waits until the review is decided and its `document.received` noted.
async fn decided_and_received(consumer: &Running, id: &str) -> Review {
    wait_for(DEADLINE, "the review decided, its receipt noted", || async {
        let review = review(consumer, id).await;
        (review.document_status.is_decided() && review.received_at.is_some()).then_some(review)
    })
    .await
}

/// The subscription's secret as the consumer keeps it.
async fn stored_secret(db: &TestDb) -> String {
    use consumer::schema::helpdesk_subscription as s;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    s::table
        .select(s::secret)
        .get_result(&mut db.connect().await)
        .await
        .unwrap()
}

/// Signs `event` with `secrets` and POSTs it to the consumer's events route.
async fn send_event(
    consumer: &Running,
    secrets: &SecretSet,
    msg_id: &str,
    event: &impl serde::Serialize,
) -> (u16, Value) {
    let body = serde_json::to_vec(event).unwrap();
    let timestamp = Utc::now().timestamp();
    let signature = secrets.sign(msg_id, timestamp, &body);
    let timestamp = timestamp.to_string();
    post_raw(
        &format!("{}/helpdesk/events", consumer.url),
        body,
        "application/json",
        &[
            ("webhook-id", msg_id),
            ("webhook-timestamp", &timestamp),
            ("webhook-signature", &signature),
        ],
    )
    .await
}

/// An event about `case` as the help desk words it.
fn document_event(event_type: EventType, case: &CaseView, status: DocumentStatus, sequence: u32) -> Event {
    Event {
        event_type,
        timestamp: Utc::now(),
        data: serde_json::to_value(DocumentEvent {
            document_id: case.document_id.clone(),
            agent_id: case.agent_id.clone(),
            document_status: status,
            document_url: case.document_url.clone(),
            id: case.id.clone(),
            sequence,
        })
        .unwrap(),
    }
}

/// `hookline_consumer_webhooks_total` for `outcome`.
async fn webhooks_counted(consumer: &Running, outcome: &str) -> u64 {
    let (status, metrics) = get_text(&format!("{}/metrics", consumer.url)).await;
    assert_eq!(status, 200);
    let prefix = format!("hookline_consumer_webhooks_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map_or(0, |n| n.parse().unwrap())
}

/// The sum of the help desk's series whose line starts with `prefix`.
async fn helpdesk_counted(helpdesk: &Running, prefix: &str) -> u64 {
    metric_sum(&helpdesk.url, prefix).await
}

#[actix_web::test]
async fn a_subscribing_consumer_subscribes_then_requests_reviews_without_a_callback_decided_by_events() {
    let stack = Stack::start_with(|_| {}, subscribe).await;
    let subscription = the_subscription(&stack.helpdesk).await;
    assert_eq!(subscription.url, format!("{}/helpdesk/events", stack.consumer.url));
    assert_eq!(
        subscription.events,
        [
            EventType::DocumentReceived,
            EventType::DocumentAccepted,
            EventType::DocumentDeclined
        ]
    );
    assert!(!subscription.disabled);

    let (requested, case) = review_without_callback(&stack.consumer, &stack.helpdesk).await;
    assert_eq!(case.delivery.state, DeliveryState::NoCallback, "{case:?}");
    let decided = decided_and_received(&stack.consumer, &requested.id).await;
    let case = stack.case(&case.document_id).await;
    assert_eq!(decided.document_status, case.status, "the help desk's decision");
    // The event's timestamp: when the help desk took the document.
    assert_eq!(decided.received_at, Some(case.created_at));
}

#[actix_web::test]
async fn a_late_document_received_event_does_not_undo_a_decision() {
    let stack = Stack::start_with(|_| {}, subscribe).await;
    let (requested, case) = review_without_callback(&stack.consumer, &stack.helpdesk).await;
    let decided = decided_and_received(&stack.consumer, &requested.id).await;
    let secrets: SecretSet = stored_secret(&stack.db).await.parse().unwrap();

    // Another copy of document.received, arriving after the decision.
    let late = document_event(EventType::DocumentReceived, &case, DocumentStatus::PendingReview, 1);
    let (status, ack) = send_event(&stack.consumer, &secrets, "msg_received_late", &late).await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["outcome"], "recorded", "{ack}");
    assert_eq!(ack["documentStatus"], decided.document_status.as_str(), "{ack}");
    let after = review(&stack.consumer, &requested.id).await;
    assert_eq!(after.document_status, decided.document_status);
    assert_eq!(after.received_at, decided.received_at, "the first receipt stands");

    // The other decision contradicts the stored one.
    let other = match decided.document_status {
        DocumentStatus::Accepted => DocumentStatus::Declined,
        _ => DocumentStatus::Accepted,
    };
    let contradiction = document_event(EventType::of_decision(other).unwrap(), &case, other, 2);
    let (status, body) = send_event(&stack.consumer, &secrets, "msg_contradiction", &contradiction).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(review(&stack.consumer, &requested.id).await, after);
}

#[actix_web::test]
async fn events_signed_with_anything_but_the_subscription_secret_are_refused() {
    // The agent takes a minute: only this test's events decide the review.
    let stack = Stack::start_with(|h| h.review_delay_ms = "60000".parse().unwrap(), subscribe).await;
    let (requested, case) = review_without_callback(&stack.consumer, &stack.helpdesk).await;
    // Another subscription's secret, handed out by the same help desk.
    let (status, _, other) = call(
        "POST",
        &format!("{}/webhooks", stack.helpdesk.url),
        &[],
        Some(&serde_json::json!({
            "url": format!("http://127.0.0.1:{}/hook", closed_port()),
            "events": ["webhook.test"],
        })),
    )
    .await;
    assert_eq!(status, 201, "{other}");
    let accepted = document_event(EventType::DocumentAccepted, &case, DocumentStatus::Accepted, 2);
    // The real document.received events (due at once) have all landed.
    wait_for(DEADLINE, "every document.received delivered", || async {
        let queued = helpdesk_counted(
            &stack.helpdesk,
            "hookline_helpdesk_events_queued_total{type=\"document.received\"}",
        )
        .await;
        let delivered = helpdesk_counted(
            &stack.helpdesk,
            "hookline_helpdesk_event_attempts_total{outcome=\"delivered\",type=\"document.received\"}",
        )
        .await;
        (queued > 0 && delivered == queued).then_some(())
    })
    .await;
    let before = stack.db.snapshot().await;

    // WEBHOOK_SECRET verifies /document/update, not the subscription's events.
    for (name, secrets) in [
        ("WEBHOOK_SECRET", hookline_tests::secret_set()),
        (
            "another subscription's",
            other["secret"].as_str().unwrap().parse().unwrap(),
        ),
    ] {
        let (status, body) = send_event(&stack.consumer, &secrets, "msg_forged", &accepted).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["error"], "unauthorized", "{name}");
    }
    assert_eq!(stack.db.snapshot().await, before);
    assert_eq!(
        review(&stack.consumer, &requested.id).await.document_status,
        DocumentStatus::PendingReview
    );

    // The same event under the subscription's own secret is taken.
    let secrets: SecretSet = stored_secret(&stack.db).await.parse().unwrap();
    let (status, ack) = send_event(&stack.consumer, &secrets, "msg_forged", &accepted).await;
    assert_eq!((status, &ack["outcome"]), (200, &serde_json::json!("applied")), "{ack}");
}

#[actix_web::test]
async fn a_test_event_and_an_unknown_event_type_are_acknowledged_and_change_nothing() {
    let stack = Stack::start_with(|_| {}, subscribe).await;
    let (requested, _) = review_without_callback(&stack.consumer, &stack.helpdesk).await;
    decided_and_received(&stack.consumer, &requested.id).await;
    let id = the_subscription(&stack.helpdesk).await.id;
    let stats = || async {
        let (status, _, sub) = call("GET", &format!("{}/webhooks/{id}", stack.helpdesk.url), &[], None).await;
        assert_eq!(status, 200, "{sub}");
        serde_json::from_value::<Subscription>(sub).unwrap().stats
    };
    // Every event queued so far is delivered (the set-up may have let an
    // earlier review go with both a callback and events), whatever came first.
    let delivered = wait_for(DEADLINE, "every queued event delivered", || async {
        let queued = helpdesk_counted(&stack.helpdesk, "hookline_helpdesk_events_queued_total{").await;
        let stats = stats().await;
        (queued >= 2 && stats.delivered == queued).then_some(stats.delivered)
    })
    .await;
    let before = stack.db.snapshot().await;

    let (status, _, queued) = call("POST", &format!("{}/webhooks/{id}/test", stack.helpdesk.url), &[], None).await;
    assert_eq!(status, 202, "{queued}");
    let after = wait_for(DEADLINE, "the test event delivered", || async {
        let stats = stats().await;
        (stats.delivered > delivered).then_some(stats)
    })
    .await;
    assert_eq!(after.delivered, delivered + 1, "{after:?}");
    assert_eq!(webhooks_counted(&stack.consumer, "ignored").await, 1);
    assert_eq!(stack.db.snapshot().await, before);

    let secrets: SecretSet = stored_secret(&stack.db).await.parse().unwrap();
    // A type newer than this consumer.
    let unknown = serde_json::json!({"type": "document.archived", "timestamp": Utc::now(), "data": {}});
    let (status, body) = send_event(&stack.consumer, &secrets, "msg_unknown", &unknown).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(webhooks_counted(&stack.consumer, "ignored").await, 2);
    assert_eq!(stack.db.snapshot().await, before);
}

#[actix_web::test]
async fn a_restarted_consumer_reuses_its_subscription_and_rotates_one_whose_secret_it_lost() {
    let (db, redis) = (TestDb::create().await, TestRedis::default());
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    // The same port each time: the subscription's URL stays the consumer's.
    let mut settings = consumer_settings(&db, &helpdesk.url);
    settings.listen = format!("127.0.0.1:{}", closed_port()).parse().unwrap();
    subscribe(&mut settings);

    let first = start_consumer(settings.clone()).await;
    review_without_callback(&first, &helpdesk).await;
    let made = the_subscription(&helpdesk).await;
    let first_secret = stored_secret(&db).await;
    first.stop().await;

    let second = start_consumer(settings.clone()).await;
    review_without_callback(&second, &helpdesk).await;
    let reused = the_subscription(&helpdesk).await;
    assert_eq!(reused.id, made.id);
    assert_eq!(reused.previous_secret_until, None, "not rotated");
    assert_eq!(stored_secret(&db).await, first_secret);
    second.stop().await;

    {
        use diesel_async::RunQueryDsl;
        diesel::sql_query("DELETE FROM helpdesk_subscription")
            .execute(&mut db.connect().await)
            .await
            .unwrap();
    }
    let third = start_consumer(settings).await;
    let (requested, _) = review_without_callback(&third, &helpdesk).await;
    let rotated = the_subscription(&helpdesk).await;
    assert_eq!(rotated.id, made.id);
    assert!(rotated.previous_secret_until.is_some(), "{rotated:?}");
    assert_ne!(stored_secret(&db).await, first_secret);
    // Events signed since verify with the new secret: they decide the review.
    decided_and_received(&third, &requested.id).await;
}

#[actix_web::test]
async fn until_the_help_desk_answers_the_set_up_reviews_keep_their_callback() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    // The answer to the consumer's first call, the set-up's GET /webhooks,
    // is lost on the way back; it tries again a second later.
    let cutter = AnswerCutter::start(helpdesk.url.trim_start_matches("http://").to_owned(), 1).await;
    let db = TestDb::create().await;
    let mut settings = consumer_settings(&db, &cutter.url);
    subscribe(&mut settings);
    let consumer = start_consumer(settings).await;
    wait_for(DEADLINE, "the set-up's answer lost", || async {
        (cutter.cut() == 1).then_some(())
    })
    .await;
    assert_eq!(subscriptions(&helpdesk).await.total, 0);

    let early = request_review(&consumer).await;
    let early_case = case(&helpdesk, early.document_id.as_deref().unwrap()).await;
    assert_eq!(
        early_case.callback_url,
        Some(format!("{}/document/update", consumer.url))
    );

    let (later, _) = review_without_callback(&consumer, &helpdesk).await;
    assert_eq!(
        the_subscription(&helpdesk).await.url,
        format!("{}/helpdesk/events", consumer.url)
    );
    // Both are decided: the early one through its callback, the later by events.
    hookline_tests::wait_for_delivery(&helpdesk.url, &early_case.document_id, DeliveryState::Delivered).await;
    decided_and_received(&consumer, &later.id).await;
}
