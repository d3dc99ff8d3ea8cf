//! Signature dialects at the help desk: a case's callback signed as Stripe,
//! GitHub, Shopify or Slack sign (`Hookline-Dialect`, `hookline trigger
//! --dialect`) and verified by `hookline listen` in that dialect, refused in
//! any other; a subscription's events signed in its own dialect, through a
//! rotation; an unknown dialect refused with nothing stored. Cases without
//! the header keep the tutorial's wire (`tutorial::`, `subscriptions::`).

use std::time::Duration;

use futures_util::future::join_all;
use hookline_cli::check::Signer;
use hookline_cli::trigger::{self, Summary, Trigger};
use hookline_contract::chaos::Fault;
use hookline_contract::dialect::Dialect;
use hookline_contract::headers;
use hookline_tests::{
    Received, Receiver, Running, SECRET, TestRedis, call, helpdesk_settings, start_helpdesk, start_listener,
};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(20);

/// The dialect after `dialect` in [`Dialect::ALL`], round: one a listener
/// of `dialect` must refuse.
fn another(dialect: Dialect) -> Dialect {
    let at = Dialect::ALL.iter().position(|d| *d == dialect).unwrap();
    Dialect::ALL[(at + 1) % Dialect::ALL.len()]
}

/// `hookline trigger --dialect` with `count` reviews to `to`, `chaos` as the profile.
async fn trigger_in(helpdesk: &Running, dialect: Dialect, to: &str, count: usize, chaos: &str) -> Summary {
    let trigger = Trigger {
        helpdesk: helpdesk.url.clone(),
        to: to.to_owned(),
        count,
        chaos: Some(chaos.parse().unwrap()),
        accept_ratio: Some(0.5),
        api_key: None,
        wait: DEADLINE,
        dialect: Some(dialect),
        seed: None,
    };
    trigger::run(&trigger, |_, _, _| {}).await.unwrap()
}

fn injected(summary: &Summary, fault: Fault) -> u64 {
    summary.faults.get(&fault).map_or(0, |tally| tally.injected)
}

/// What one dialect's run came to: its summaries and its listeners' totals.
async fn run_in(helpdesk: &Running, dialect: Dialect) -> String {
    let right = start_listener(Some(Signer::new(dialect, SECRET).unwrap()), dialect);
    let wrong_dialect = another(dialect);
    let wrong = start_listener(Some(Signer::new(wrong_dialect, SECRET).unwrap()), wrong_dialect);
    let chaos = "forged_signature=1,stale_timestamp=1";
    let (to_right, to_wrong) = futures_util::future::join(
        trigger_in(helpdesk, dialect, &format!("{}/hook", right.url), 2, chaos),
        trigger_in(helpdesk, dialect, &format!("{}/hook", wrong.url), 2, "none"),
    )
    .await;
    let _ = right.stop.send(());
    let _ = wrong.stop.send(());
    let (right, wrong) = (right.totals.await.unwrap(), wrong.totals.await.unwrap());

    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    // Its own dialect: every review verified, every forgery refused.
    expect(to_right.passed(), format!("summary:\n{}", to_right.text(false)));
    expect(
        right.verified == 2,
        format!("verified {} of 2: {right:?}", right.verified),
    );
    let stale = injected(&to_right, Fault::StaleTimestamp);
    // A stale timestamp only where the dialect signs one; never drawn elsewhere.
    expect(
        stale == if dialect.signs_timestamp() { 2 } else { 0 },
        format!("stale_timestamp injected {stale}"),
    );
    expect(
        injected(&to_right, Fault::ForgedSignature) == 2 && right.refused == 2 + stale,
        format!("forgeries and stale ones refused: {right:?}"),
    );
    // Another dialect's listener believes none of it: every attempt refused.
    expect(
        (to_wrong.dead, wrong.verified) == (2, 0) && wrong.refused >= 2,
        format!("a {wrong_dialect} listener: {wrong:?}, {}", to_wrong.text(false)),
    );
    if problems.is_empty() {
        String::new()
    } else {
        format!("{dialect}: {}", problems.join("; "))
    }
}

#[actix_web::test]
async fn each_dialect_s_callback_is_verified_by_a_listener_of_that_dialect_and_refused_by_another() {
    let redis = TestRedis::default();
    let mut settings = helpdesk_settings(&redis);
    settings.job_lease = Duration::from_secs(20);
    let helpdesk = start_helpdesk(settings).await;

    let problems: Vec<String> = join_all(Dialect::ALL.map(|dialect| run_in(&helpdesk, dialect)))
        .await
        .into_iter()
        .filter(|problem| !problem.is_empty())
        .collect();

    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[actix_web::test]
async fn a_github_callback_names_its_delivery_and_event_in_github_s_headers_only() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    let mut receiver = Receiver::start(200).await;

    let (status, _, accepted) = call(
        "POST",
        &format!("{}/document", helpdesk.url),
        &[(headers::CALLBACK_URL, &receiver.url), ("Hookline-Dialect", "GitHub")],
        Some(&json!({"documentUrl": "https://example.com/a.pdf"})),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let got = receiver.next(DEADLINE).await;

    assert_verified(Dialect::Github, SECRET, &got);
    let id = accepted["documentId"].as_str().unwrap();
    let (_, _, case) = call("GET", &format!("{}/document/{id}", helpdesk.url), &[], None).await;
    assert_eq!(
        case["dialect"], "github",
        "the case says how its callback is signed: {case}"
    );
    assert_eq!(
        Some(got.headers["x-github-delivery"].as_str()),
        case["delivery"]["webhookId"].as_str(),
        "{case}"
    );
    let decision = got.body["documentStatus"].as_str().unwrap().to_lowercase();
    assert_eq!(got.headers["x-github-event"], format!("document.{decision}"));
    for standard in [
        headers::WEBHOOK_ID,
        headers::WEBHOOK_TIMESTAMP,
        headers::WEBHOOK_SIGNATURE,
    ] {
        assert!(!got.headers.contains_key(standard), "{standard}: {:?}", got.headers);
    }
}

/// `got` verifies in `dialect` under `secret` (as the provider hands it out).
fn assert_verified(dialect: Dialect, secret: &str, got: &Received) {
    let key = dialect.key(secret).unwrap();
    let header = |name: &str| got.headers.get(&name.to_lowercase()).cloned();
    let now = chrono::Utc::now().timestamp();
    let verified = dialect.verify(&key, header, &got.raw, now);
    assert_eq!(verified, Ok(()), "{dialect}: {:?}", got.headers);
}

/// `POST /webhooks` for every event, in `dialect` if given: the answer.
async fn subscribe(helpdesk: &Running, url: &str, dialect: Option<&str>) -> (u16, Value) {
    let mut body = json!({"url": url, "events": ["document.received"]});
    if let Some(dialect) = dialect {
        body["dialect"] = json!(dialect);
    }
    let (status, _, answer) = call("POST", &format!("{}/webhooks", helpdesk.url), &[], Some(&body)).await;
    (status, answer)
}

async fn post_document(helpdesk: &Running) {
    let (status, _, body) = call(
        "POST",
        &format!("{}/document", helpdesk.url),
        &[],
        Some(&json!({"documentUrl": "https://example.com/a.pdf"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
}

#[actix_web::test]
async fn a_stripe_subscription_s_events_verify_as_stripe_s_through_a_rotation_and_a_change_of_dialect() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    let mut receiver = Receiver::start(200).await;
    let (status, sub) = subscribe(&helpdesk, &receiver.url, Some("stripe")).await;
    assert_eq!((status, &sub["dialect"]), (201, &json!("stripe")), "{sub}");
    let id = sub["id"].as_str().unwrap();
    let old = sub["secret"].as_str().unwrap().to_owned();
    let shown = call("GET", &format!("{}/webhooks/{id}", helpdesk.url), &[], None)
        .await
        .2;
    assert_eq!(shown["dialect"], "stripe", "{shown}");

    post_document(&helpdesk).await;
    let got = receiver.next(DEADLINE).await;
    assert_verified(Dialect::Stripe, &old, &got);
    assert!(
        !got.headers.contains_key(headers::WEBHOOK_SIGNATURE),
        "{:?}",
        got.headers
    );
    assert_eq!(got.body["type"], "document.received");

    // A rotation: both secrets sign, a v1= each, in the one header.
    let rotated = call(
        "POST",
        &format!("{}/webhooks/{id}/rotate-secret", helpdesk.url),
        &[],
        None,
    )
    .await
    .2;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    post_document(&helpdesk).await;
    let got = receiver.next(DEADLINE).await;
    assert_eq!(
        got.headers["stripe-signature"].matches("v1=").count(),
        2,
        "{:?}",
        got.headers
    );
    assert_verified(Dialect::Stripe, &old, &got);
    assert_verified(Dialect::Stripe, &new, &got);

    // Another dialect from the next event on: GitHub's one signature, the newest secret's.
    let (status, _, changed) = call(
        "PATCH",
        &format!("{}/webhooks/{id}", helpdesk.url),
        &[],
        Some(&json!({"dialect": "github"})),
    )
    .await;
    assert_eq!((status, &changed["dialect"]), (200, &json!("github")), "{changed}");
    post_document(&helpdesk).await;
    let got = receiver.next(DEADLINE).await;
    assert_verified(Dialect::Github, &new, &got);
    assert_eq!(got.headers["x-github-event"], "document.received");
    assert!(
        got.headers["x-github-delivery"].starts_with("msg_"),
        "{:?}",
        got.headers
    );
}

#[actix_web::test]
async fn an_unknown_dialect_is_a_400_naming_ours_on_every_route_and_nothing_stored_changes() {
    let redis = TestRedis::default();
    let helpdesk = start_helpdesk(helpdesk_settings(&redis)).await;
    let receiver = Receiver::start(200).await;
    let refused = |status: u16, body: &Value, field: &str| {
        assert_eq!(
            (status, &body["error"], &body["field"]),
            (400, &json!("unknown_dialect"), &json!(field)),
            "{body}"
        );
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("svix") && detail.contains("standard, stripe, github, shopify, slack"),
            "{detail}"
        );
    };
    let before = redis.footprint().await;

    let (status, body) = subscribe(&helpdesk, &receiver.url, Some("svix")).await;
    refused(status, &body, "dialect");
    let (status, _, body) = call(
        "POST",
        &format!("{}/document", helpdesk.url),
        &[(headers::CALLBACK_URL, &receiver.url), ("Hookline-Dialect", "svix")],
        Some(&json!({"documentUrl": "https://example.com/a.pdf"})),
    )
    .await;
    refused(status, &body, "Hookline-Dialect");
    assert_eq!(redis.footprint().await, before, "nothing stored");

    // A change that names one is refused whole: the description stays too.
    let (status, sub) = subscribe(&helpdesk, &receiver.url, None).await;
    assert_eq!((status, &sub["dialect"]), (201, &json!("standard")), "{sub}");
    let url = format!("{}/webhooks/{}", helpdesk.url, sub["id"].as_str().unwrap());
    let before = call("GET", &url, &[], None).await.2;
    let (status, _, body) = call(
        "PATCH",
        &url,
        &[],
        Some(&json!({"dialect": "svix", "description": "changed"})),
    )
    .await;
    refused(status, &body, "dialect");
    let after = call("GET", &url, &[], None).await.2;
    assert_eq!(after, before);
}
