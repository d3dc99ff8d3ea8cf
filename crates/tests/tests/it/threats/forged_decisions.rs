//! Callbacks signed per tenant; the consumer matches its own ids exactly.
//!
//! Finding 1 of issue 23: with the consumer's help desk frozen, its review
//! keeps `documentId: null` and can be found by the id the consumer sent.
//! Any key holder then opened a case of its own under a spelling of that id
//! (`urn:uuid:` and upper case: a new id to the help desk, which compares
//! strings; the same one to the consumer, which parsed it with
//! `Uuid::parse_str`), with the consumer's callback URL, and the help desk
//! signed its decision with the one `WEBHOOK_SECRET` every tenant shared:
//! the review took the attacker's decision and document. The defences,
//! each tested here: a callback is signed with the secrets of the tenant
//! that created the case (`TENANT_SECRETS`), the consumer matches its ids
//! only as it sent them, and a review is bound to one document once.

use std::time::Duration;

use hookline_contract::DocumentStatus;
use hookline_contract::signature::SecretSet;
use hookline_kit::config::Secret;
use hookline_tests::process::free_port;
use hookline_tests::{
    Running, TestDb, TestRedis, assert_client_error, call, closed_port, consumer_settings, helpdesk_settings, post_raw,
    start_consumer, start_helpdesk, tenant_secret, tenant_secrets, wait_for,
};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);
const ACME_KEY: &str = "acme-key-0123456789abcdef";
const GLOBEX_KEY: &str = "globex-key-0123456789abcdef";

/// A help desk two tenants share, each signing with its own secret (the
/// default tenant's `WEBHOOK_SECRET` is the test kit's, which no one here
/// holds).
fn shared_helpdesk(redis: &TestRedis) -> helpdesk::Settings {
    let mut settings = helpdesk_settings(redis);
    settings.api_keys = format!("acme:{ACME_KEY},globex:{GLOBEX_KEY}").parse().unwrap();
    settings.tenant_secrets = tenant_secrets(&["acme", "globex"]);
    // Refused callbacks count against the consumer's endpoint; several
    // forged cases in a row must not open its breaker on the genuine one.
    settings.circuit_failures = 1000;
    settings
}

/// acme's own secret: its callbacks are signed with it, its consumer holds it.
fn acme_secret() -> SecretSet {
    SecretSet::single(tenant_secret("acme"))
}

/// acme's consumer: its key and only its tenant's secret, its help desk
/// expected at `helpdesk_port`.
async fn acme_consumer(db: &TestDb, helpdesk_port: u16, reconcile_after: Duration) -> Running {
    let mut settings = consumer_settings(db, &format!("http://127.0.0.1:{helpdesk_port}"));
    settings.helpdesk_api_key = Some(Secret::new(ACME_KEY.to_owned()));
    settings.webhook_secret = Some(acme_secret());
    settings.reconcile_after = reconcile_after;
    start_consumer(settings).await
}

/// `POST /documents` while the consumer's help desk does not answer: the
/// review is kept without its ticket. Returns its id.
async fn review_without_ticket(consumer: &Running) -> String {
    let (status, review) = hookline_tests::post_review(&consumer.url, "https://example.com/contract.pdf").await;
    assert_eq!(status, 201, "{review}");
    assert!(review["documentId"].is_null(), "the help desk never answered: {review}");
    review["id"].as_str().unwrap().to_owned()
}

/// A case opened with `key` under the request id `id`, its decision (`accept`
/// ratio) to go to `callback`; returns its documentId.
async fn open_case(helpdesk: &Running, key: &str, id: &str, callback: &str, accept: &str) -> String {
    let authorization = format!("Bearer {key}");
    let (status, _, answer) = call(
        "POST",
        &format!("{}/document", helpdesk.url),
        &[
            ("authorization", &authorization),
            ("x-callback-url", callback),
            ("hookline-accept-ratio", accept),
        ],
        Some(&json!({"documentUrl": "https://attacker.example/forged.pdf", "id": id})),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    answer["documentId"].as_str().unwrap().to_owned()
}

/// The case `document_id`, as `key` sees it.
async fn case(helpdesk: &Running, key: &str, document_id: &str) -> Value {
    let authorization = format!("Bearer {key}");
    let url = format!("{}/document/{document_id}", helpdesk.url);
    let (status, _, case) = call("GET", &url, &[("authorization", &authorization)], None).await;
    assert_eq!(status, 200, "{case}");
    case
}

/// Waits until every attempt of the case is spent (dead-lettered); returns
/// the status of each attempt.
async fn refused_every_time(helpdesk: &Running, key: &str, document_id: &str) -> Vec<Option<u64>> {
    let case = wait_for(DEADLINE, "the case's delivery to end", || async {
        let case = case(helpdesk, key, document_id).await;
        let state = case["delivery"]["state"].as_str().unwrap_or_default().to_owned();
        assert_ne!(state, "DELIVERED", "the consumer took the callback: {case}");
        (state == "DEAD").then_some(case)
    })
    .await;
    case["delivery"]["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attempt| attempt["statusCode"].as_u64())
        .collect()
}

fn callback(consumer: &Running) -> String {
    format!("{}/document/update", consumer.url)
}

#[actix_web::test]
async fn another_tenants_client_cannot_decide_our_review_under_a_spelling_of_its_id() {
    // The attacker's door: a help desk API on the store acme's help desk
    // uses, with a globex key (its worker delivers every case of the store).
    let redis = TestRedis::default();
    let shared = start_helpdesk(shared_helpdesk(&redis)).await;
    // acme's own help desk is frozen: nothing answers at its address yet.
    let acme_port = free_port();
    let db = TestDb::create().await;
    let consumer = acme_consumer(&db, acme_port, Duration::from_millis(300)).await;
    let review_id = review_without_ticket(&consumer).await;

    // The review's id, as the unauthenticated GET /documents lists it,
    // spelled so the help desk sees a new id and Uuid::parse_str the same.
    let alias = format!("urn:uuid:{}", review_id.to_uppercase());
    let forged = open_case(&shared, GLOBEX_KEY, &alias, &callback(&consumer), "0").await;
    let statuses = refused_every_time(&shared, GLOBEX_KEY, &forged).await;
    assert!(statuses.len() > 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|status| status.is_some_and(|s| (400..500).contains(&s))),
        "the consumer refused every attempt with a 4xx: {statuses:?}"
    );
    let rows = db.reviews().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status(), DocumentStatus::PendingReview, "{:?}", rows[0]);
    assert_eq!(rows[0].document_id, None, "not bound to the attacker's document");
    assert!(
        db.snapshot().await.receipts.is_empty(),
        "no receipt of the forged decision"
    );

    // acme's help desk comes back (an API on the same store): the consumer
    // sends the review again, and the genuine case decides it.
    let mut settings = shared_helpdesk(&redis);
    settings.listen = format!("127.0.0.1:{acme_port}").parse().unwrap();
    settings.role = helpdesk::config::Role::Api;
    let _acme = start_helpdesk(settings).await;
    let row = wait_for(DEADLINE, "the genuine case to decide the review", || async {
        let rows = db.reviews().await;
        rows.into_iter().find(|row| row.status().is_decided())
    })
    .await;
    let genuine = row.document_id.clone().unwrap();
    assert_ne!(genuine, forged);
    // Its webhook is taken (applied, or acknowledged if the reconciler
    // asked the help desk first): the consumer believes its own tenant.
    let genuine_case = wait_for(DEADLINE, "the genuine webhook to be taken", || async {
        let case = case(&shared, ACME_KEY, &genuine).await;
        (case["delivery"]["state"] == "DELIVERED").then_some(case)
    })
    .await;
    assert_eq!(genuine_case["id"], review_id.as_str(), "our id, as we sent it");
    assert_eq!(row.status().as_str(), genuine_case["status"], "{genuine_case}");
    let forged_webhook = case(&shared, GLOBEX_KEY, &forged).await["delivery"]["webhookId"].clone();
    let receipts = db.snapshot().await.receipts;
    assert!(
        receipts.iter().all(|receipt| receipt.0 != forged_webhook),
        "{receipts:?}"
    );
}

#[actix_web::test]
async fn a_callback_signed_with_another_tenants_secret_is_refused_and_our_own_tenants_is_taken() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(shared_helpdesk(&redis)).await;
    let db = TestDb::create().await;
    let consumer = acme_consumer(&db, closed_port(), Duration::from_secs(600)).await;
    let targeted = review_without_ticket(&consumer).await;
    let own = review_without_ticket(&consumer).await;

    // globex uses the review's id exactly as the consumer sent it: only
    // the secret that signs globex's callbacks tells them apart.
    let forged = open_case(&helpdesk, GLOBEX_KEY, &targeted, &callback(&consumer), "0").await;
    let statuses = refused_every_time(&helpdesk, GLOBEX_KEY, &forged).await;
    assert!(
        statuses.iter().all(|status| *status == Some(401)),
        "signed with globex's secret: {statuses:?}"
    );
    let before = db.snapshot().await;
    assert!(
        before
            .reviews
            .iter()
            .all(|row| row.status() == DocumentStatus::PendingReview)
    );
    assert!(before.reviews.iter().all(|row| row.document_id.is_none()));

    // acme's case for its own review is signed with acme's secret and taken.
    let genuine = open_case(&helpdesk, ACME_KEY, &own, &callback(&consumer), "1").await;
    let row = wait_for(DEADLINE, "acme's decision to be applied", || async {
        let rows = db.reviews().await;
        rows.into_iter().find(|row| row.status().is_decided())
    })
    .await;
    assert_eq!(row.id.to_string(), own);
    assert_eq!(
        (row.status(), row.document_id.as_deref()),
        (DocumentStatus::Accepted, Some(genuine.as_str()))
    );
    let targeted_row = db
        .reviews()
        .await
        .into_iter()
        .find(|row| row.id.to_string() == targeted);
    assert_eq!(targeted_row.unwrap().status(), DocumentStatus::PendingReview);
}

#[actix_web::test]
async fn our_review_id_matches_only_as_we_sent_it_even_from_our_own_tenant() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(shared_helpdesk(&redis)).await;
    let db = TestDb::create().await;
    let consumer = acme_consumer(&db, closed_port(), Duration::from_secs(600)).await;
    let review_id = review_without_ticket(&consumer).await;
    let aliases = [
        review_id.to_uppercase(),
        format!("urn:uuid:{review_id}"),
        review_id.replace('-', ""),
    ];
    // Another client of acme's, signed with acme's own secret: the
    // signature is good, the id is not ours.
    for alias in &aliases {
        let forged = open_case(&helpdesk, ACME_KEY, alias, &callback(&consumer), "0").await;
        let statuses = refused_every_time(&helpdesk, ACME_KEY, &forged).await;
        assert!(
            statuses.iter().all(|status| *status == Some(400)),
            "{alias}: {statuses:?}"
        );
    }
    let before = db.snapshot().await;
    assert_eq!(before.reviews[0].status(), DocumentStatus::PendingReview);
    assert_eq!(before.reviews[0].document_id, None);
    assert!(before.receipts.is_empty());

    // What the consumer answers: the JSON error envelope, naming the field;
    // braces too, which this help desk refuses in an id but another may not.
    let braced = format!("{{{review_id}}}");
    for (n, alias) in aliases.iter().chain([&braced]).enumerate() {
        let body = decision(alias, "doc-forged", "DECLINED");
        let (status, answer) = post_acme_signed(&consumer, &body, &format!("msg_alias_{n}")).await;
        assert_eq!(assert_client_error(status, &answer, 400), "invalid_field", "{alias}");
        assert_eq!(answer["field"], "id", "{answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains("lowercase, hyphenated"),
            "{answer}"
        );
    }
    assert_eq!(before, db.snapshot().await);
}

/// `body` signed with acme's secret, as acme's help desk signs it.
async fn post_acme_signed(consumer: &Running, body: &[u8], webhook_id: &str) -> (u16, Value) {
    let now = chrono::Utc::now().timestamp();
    let signature = acme_secret().sign(webhook_id, now, body);
    let timestamp = now.to_string();
    post_raw(
        &callback(consumer),
        body.to_vec(),
        "application/json",
        &[
            ("webhook-id", webhook_id),
            ("webhook-timestamp", &timestamp),
            ("webhook-signature", &signature),
        ],
    )
    .await
}

fn decision(review_id: &str, document_id: &str, status: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "agentId": "agent-1", "documentId": document_id, "documentStatus": status, "id": review_id,
    }))
    .unwrap()
}

#[actix_web::test]
async fn a_review_is_bound_to_one_document_once() {
    let db = TestDb::create().await;
    let consumer = acme_consumer(&db, closed_port(), Duration::from_secs(600)).await;
    let review_id = review_without_ticket(&consumer).await;

    // The first decision that names the review binds it to its document.
    let (status, answer) = post_acme_signed(&consumer, &decision(&review_id, "doc-first", "ACCEPTED"), "msg_1").await;
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("applied")), "{answer}");
    let bound = db.snapshot().await;
    assert_eq!(bound.reviews[0].document_id.as_deref(), Some("doc-first"));

    // Another document under the same id: refused, whatever its decision
    // (the same one is no repeat either), and nothing changes.
    for (webhook_id, status_name) in [("msg_2", "ACCEPTED"), ("msg_3", "DECLINED")] {
        let body = decision(&review_id, "doc-second", status_name);
        let (status, answer) = post_acme_signed(&consumer, &body, webhook_id).await;
        assert_eq!(assert_client_error(status, &answer, 409), "conflict", "{status_name}");
        assert!(answer["detail"].as_str().unwrap().contains("doc-first"), "{answer}");
        assert_eq!(bound, db.snapshot().await, "{status_name}");
    }

    // A review the help desk's answer bound (attach_ticket) is held alike.
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.review_delay_ms = "3600000".parse().unwrap();
    let helpdesk = start_helpdesk(settings).await;
    let db = TestDb::create().await;
    let mut settings = consumer_settings(&db, &helpdesk.url);
    settings.webhook_secret = Some(acme_secret());
    let consumer = start_consumer(settings).await;
    let (status, review) = hookline_tests::post_review(&consumer.url, "https://example.com/b.pdf").await;
    assert_eq!(status, 201, "{review}");
    let (review_id, ticket) = (review["id"].as_str().unwrap(), review["documentId"].as_str().unwrap());
    let before = db.snapshot().await;
    let body = decision(review_id, "doc-other", "DECLINED");
    let (status, answer) = post_acme_signed(&consumer, &body, "msg_4").await;
    assert_eq!(assert_client_error(status, &answer, 409), "conflict");
    assert!(answer["detail"].as_str().unwrap().contains(ticket), "{answer}");
    assert_eq!(before, db.snapshot().await);
}

#[actix_web::test]
async fn a_help_desk_whose_named_tenant_has_no_secret_refuses_to_start_naming_it() {
    let redis = TestRedis::default();
    let mut settings = shared_helpdesk(&redis);
    settings.tenant_secrets = tenant_secrets(&["acme"]);
    let error = match helpdesk::Application::build(settings).await {
        Ok(_) => panic!("started although globex has no secret of its own"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("\"globex\""), "{error}");
    assert!(error.contains("TENANT_SECRETS"), "{error}");
}
