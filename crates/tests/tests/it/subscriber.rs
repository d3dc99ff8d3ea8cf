//! The consumer with `HELPDESK_SUBSCRIBE=true`, against a stand-in help
//! desk that speaks the subscription API (the real one is being built): the
//! set-up (made, reused, rotated, retried), which requests carry a callback,
//! and `POST /helpdesk/events` on a real database.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, web};
use chrono::Utc;
use hookline_contract::signature::SecretSet;
use hookline_contract::{EventType, NewSubscription, Subscription, SubscriptionPage, SubscriptionStats};
use hookline_tests::{Running, TestDb, consumer_settings, get_json, post_raw, post_review, start_consumer, wait_for};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(10);

/// What the stand-in help desk saw and holds.
#[derive(Default)]
struct Desk {
    subscriptions: Vec<Subscription>,
    /// `GET /webhooks` answers 503 this many more times.
    unavailable: usize,
    created: usize,
    rotated: usize,
    /// Per `POST /document`, in order: its `X-Callback-Url`, if any.
    callbacks: Vec<Option<String>>,
}

struct StandIn {
    url: String,
    desk: Arc<Mutex<Desk>>,
    _server: Running,
}

fn new_secret() -> String {
    use base64::Engine as _;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes().repeat(2))
    )
}

impl StandIn {
    fn start(desk: Desk) -> Self {
        let desk = Arc::new(Mutex::new(desk));
        let shared = desk.clone();
        let server = Running::serve(move || {
            let desk = web::Data::new(shared.clone());
            App::new()
                .app_data(desk)
                .route(
                    "/webhooks",
                    web::get().to(|desk: web::Data<Arc<Mutex<Desk>>>| async move {
                        let mut desk = desk.lock().unwrap();
                        if desk.unavailable > 0 {
                            desk.unavailable -= 1;
                            return HttpResponse::ServiceUnavailable().json(json!({"error": "unavailable"}));
                        }
                        let items: Vec<Subscription> = desk
                            .subscriptions
                            .iter()
                            .map(|s| Subscription {
                                secret: "whsec_****".to_owned(),
                                ..s.clone()
                            })
                            .collect();
                        let total = items.len() as u64;
                        HttpResponse::Ok().json(SubscriptionPage { items, total })
                    }),
                )
                .route(
                    "/webhooks",
                    web::post().to(
                        |desk: web::Data<Arc<Mutex<Desk>>>, new: web::Json<NewSubscription>| async move {
                            let mut desk = desk.lock().unwrap();
                            desk.created += 1;
                            let subscription = Subscription {
                                id: format!("sub_{}", uuid::Uuid::new_v4().simple()),
                                url: new.url.clone(),
                                events: new.events.iter().map(|e| e.parse().unwrap()).collect(),
                                description: new.description.clone(),
                                secret: new_secret(),
                                previous_secret_until: None,
                                disabled: false,
                                created_at: Utc::now(),
                                updated_at: Utc::now(),
                                stats: SubscriptionStats::default(),
                            };
                            desk.subscriptions.push(subscription.clone());
                            HttpResponse::Created().json(subscription)
                        },
                    ),
                )
                .route(
                    "/webhooks/{id}/rotate-secret",
                    web::post().to(|desk: web::Data<Arc<Mutex<Desk>>>, id: web::Path<String>| async move {
                        let mut desk = desk.lock().unwrap();
                        desk.rotated += 1;
                        let Some(found) = desk.subscriptions.iter_mut().find(|s| s.id == *id) else {
                            return HttpResponse::NotFound().finish();
                        };
                        found.secret = new_secret();
                        HttpResponse::Ok().json(found.clone())
                    }),
                )
                .route(
                    "/document",
                    web::post().to(|desk: web::Data<Arc<Mutex<Desk>>>, request: HttpRequest| async move {
                        let callback = request
                            .headers()
                            .get("x-callback-url")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let mut desk = desk.lock().unwrap();
                        desk.callbacks.push(callback);
                        let n = desk.callbacks.len();
                        HttpResponse::Accepted().json(json!({
                            "agentId": "agent-1", "documentId": format!("doc-{}-{n}", uuid::Uuid::new_v4().simple()),
                            "status": "PENDING_REVIEW",
                        }))
                    }),
                )
        });
        Self {
            url: server.url.clone(),
            desk,
            _server: server,
        }
    }

    fn desk(&self) -> std::sync::MutexGuard<'_, Desk> {
        self.desk.lock().unwrap()
    }

    /// Subscriptions created, secrets rotated.
    fn counts(&self) -> (usize, usize) {
        let desk = self.desk();
        (desk.created, desk.rotated)
    }

    /// The full secret of the only subscription.
    fn secret(&self) -> SecretSet {
        let desk = self.desk();
        assert_eq!(desk.subscriptions.len(), 1, "one subscription");
        desk.subscriptions[0].secret.parse().unwrap()
    }
}

fn subscribing(db: &TestDb, helpdesk: &StandIn, public_url: Option<&str>) -> consumer::Settings {
    let mut settings = consumer_settings(db, &helpdesk.url);
    settings.helpdesk_subscribe = true;
    settings.public_url = public_url.map(|url| url.parse().unwrap());
    settings
}

/// Requests reviews until one goes without `X-Callback-Url` (the set-up is
/// done); returns that review.
async fn first_review_without_callback(consumer: &Running, helpdesk: &StandIn) -> Value {
    wait_for(DEADLINE, "a review requested without X-Callback-Url", || async {
        let (status, review) = post_review(&consumer.url, "https://example.com/a.pdf").await;
        assert_eq!(status, 201, "{review}");
        let sent = helpdesk.desk().callbacks.last().cloned().unwrap();
        sent.is_none().then_some(review)
    })
    .await
}

/// Signs `event` with `secrets` and POSTs it to the consumer's events route.
async fn send_event(consumer: &Running, secrets: &SecretSet, msg_id: &str, event: &Value) -> (u16, Value) {
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

fn document_event(event_type: EventType, review: &Value, status: &str, sequence: u32) -> Value {
    json!({
        "type": event_type.as_str(),
        "timestamp": "2026-12-01T10:00:00Z",
        "data": {
            "documentId": review["documentId"], "agentId": review["agentId"], "documentStatus": status,
            "documentUrl": review["documentUrl"], "id": review["id"], "sequence": sequence,
        },
    })
}

async fn review(consumer: &Running, id: &Value) -> Value {
    let (status, body) = get_json(&format!("{}/documents/{}", consumer.url, id.as_str().unwrap())).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[actix_web::test]
async fn a_subscribing_consumer_makes_its_subscription_then_requests_reviews_without_a_callback() {
    let (db, helpdesk) = (TestDb::create().await, StandIn::start(Desk::default()));
    let consumer = start_consumer(subscribing(&db, &helpdesk, None)).await;
    first_review_without_callback(&consumer, &helpdesk).await;
    let desk = helpdesk.desk();
    assert_eq!((desk.created, desk.rotated), (1, 0));
    let subscription = &desk.subscriptions[0];
    assert_eq!(subscription.url, format!("{}/helpdesk/events", consumer.url));
    assert_eq!(
        subscription.events,
        [
            EventType::DocumentReceived,
            EventType::DocumentAccepted,
            EventType::DocumentDeclined
        ]
    );
}

#[actix_web::test]
async fn events_decide_reviews_and_a_late_received_event_does_not_undo_the_decision() {
    let (db, helpdesk) = (TestDb::create().await, StandIn::start(Desk::default()));
    let consumer = start_consumer(subscribing(&db, &helpdesk, None)).await;
    let requested = first_review_without_callback(&consumer, &helpdesk).await;
    let secrets = helpdesk.secret();

    let received = document_event(EventType::DocumentReceived, &requested, "PENDING_REVIEW", 1);
    let (status, ack) = send_event(&consumer, &secrets, "msg_received", &received).await;
    assert_eq!((status, ack["outcome"].as_str()), (200, Some("recorded")), "{ack}");
    let noted = review(&consumer, &requested["id"]).await;
    assert_eq!(noted["receivedAt"], "2026-12-01T10:00:00Z", "{noted}");
    assert_eq!(noted["documentStatus"], "PENDING_REVIEW");

    let accepted = document_event(EventType::DocumentAccepted, &requested, "ACCEPTED", 2);
    let (status, ack) = send_event(&consumer, &secrets, "msg_accepted", &accepted).await;
    assert_eq!((status, ack["outcome"].as_str()), (200, Some("applied")), "{ack}");
    // A redelivery of the same event is recognised by its webhook-id.
    let (status, ack) = send_event(&consumer, &secrets, "msg_accepted", &accepted).await;
    assert_eq!((status, ack["outcome"].as_str()), (200, Some("duplicate")), "{ack}");

    // A received event that comes after the decision (another copy, out of order).
    let (status, ack) = send_event(&consumer, &secrets, "msg_received_late", &received).await;
    assert_eq!(
        (status, ack["documentStatus"].as_str()),
        (200, Some("ACCEPTED")),
        "{ack}"
    );
    let decided = review(&consumer, &requested["id"]).await;
    assert_eq!(decided["documentStatus"], "ACCEPTED", "{decided}");

    // The other decision contradicts the stored one.
    let declined = document_event(EventType::DocumentDeclined, &requested, "DECLINED", 2);
    let (status, body) = send_event(&consumer, &secrets, "msg_declined", &declined).await;
    assert_eq!(status, 409, "{body}");
}

#[actix_web::test]
async fn events_signed_with_anything_but_the_subscription_secret_are_refused() {
    let (db, helpdesk) = (TestDb::create().await, StandIn::start(Desk::default()));
    let consumer = start_consumer(subscribing(&db, &helpdesk, None)).await;
    let requested = first_review_without_callback(&consumer, &helpdesk).await;
    let accepted = document_event(EventType::DocumentAccepted, &requested, "ACCEPTED", 2);
    // WEBHOOK_SECRET verifies /document/update, not the subscription's events.
    let (status, body) = send_event(&consumer, &hookline_tests::secret_set(), "msg_1", &accepted).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "unauthorized");
    let still = review(&consumer, &requested["id"]).await;
    assert_eq!(still["documentStatus"], "PENDING_REVIEW");
}

#[actix_web::test]
async fn test_events_and_unknown_event_types_are_acknowledged_and_change_nothing() {
    let (db, helpdesk) = (TestDb::create().await, StandIn::start(Desk::default()));
    let consumer = start_consumer(subscribing(&db, &helpdesk, None)).await;
    first_review_without_callback(&consumer, &helpdesk).await;
    let secrets = helpdesk.secret();
    let before = db.snapshot().await;
    let test = json!({"type": "webhook.test", "timestamp": "2026-12-01T10:00:00Z",
                      "data": {"subscriptionId": "sub_1", "message": "hello"}});
    let (status, body) = send_event(&consumer, &secrets, "msg_test", &test).await;
    assert_eq!((status, body), (204, Value::Null));
    let unknown = json!({"type": "document.archived", "timestamp": "2026-12-01T10:00:00Z", "data": {}});
    let (status, _) = send_event(&consumer, &secrets, "msg_unknown", &unknown).await;
    assert_eq!(status, 204);
    assert_eq!(db.snapshot().await, before);
}

#[actix_web::test]
async fn a_restarted_consumer_reuses_its_subscription_and_rotates_one_whose_secret_it_lost() {
    let (db, helpdesk) = (TestDb::create().await, StandIn::start(Desk::default()));
    // A fixed public URL: each consumer here listens on another port.
    let public = Some("http://consumer.test");
    {
        let first = start_consumer(subscribing(&db, &helpdesk, public)).await;
        first_review_without_callback(&first, &helpdesk).await;
    }
    let second = start_consumer(subscribing(&db, &helpdesk, public)).await;
    first_review_without_callback(&second, &helpdesk).await;
    assert_eq!(helpdesk.counts(), (1, 0));

    use diesel_async::RunQueryDsl;
    diesel::sql_query("DELETE FROM helpdesk_subscription")
        .execute(&mut db.connect().await)
        .await
        .unwrap();
    let third = start_consumer(subscribing(&db, &helpdesk, public)).await;
    first_review_without_callback(&third, &helpdesk).await;
    assert_eq!(helpdesk.counts(), (1, 1));
    // The rotated secret verifies events at once.
    let requested = first_review_without_callback(&third, &helpdesk).await;
    let accepted = document_event(EventType::DocumentAccepted, &requested, "ACCEPTED", 2);
    let (status, ack) = send_event(&third, &helpdesk.secret(), "msg_after_rotation", &accepted).await;
    assert_eq!((status, ack["outcome"].as_str()), (200, Some("applied")), "{ack}");
}

#[actix_web::test]
async fn until_the_help_desk_answers_reviews_keep_their_callback() {
    let db = TestDb::create().await;
    let helpdesk = StandIn::start(Desk {
        unavailable: 2,
        ..Desk::default()
    });
    let consumer = start_consumer(subscribing(&db, &helpdesk, None)).await;
    // The first try of the set-up failed at start-up: the next is a second later.
    let (status, body) = post_review(&consumer.url, "https://example.com/early.pdf").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        helpdesk.desk().callbacks.first().cloned().flatten(),
        Some(format!("{}/document/update", consumer.url))
    );
    first_review_without_callback(&consumer, &helpdesk).await;
    let desk = helpdesk.desk();
    assert_eq!((desk.unavailable, desk.created), (0, 1));
}
