//! The help desk's subscription API as the tests call it, as a tenant
//! (`key`: the `Authorization` header's value, `Bearer …`) or, `None`,
//! without a key (the operator of an open help desk).

use serde_json::{Value, json};

use crate::call;

/// The headers that send `key`, if any.
pub fn auth(key: Option<&str>) -> Vec<(&'static str, &str)> {
    key.map(|key| vec![("authorization", key)]).unwrap_or_default()
}

/// `POST /webhooks` with `body` (`url`, `events`, …) to the help desk at
/// `helpdesk`: the subscription as answered, its secret in full.
pub async fn subscribe_with(helpdesk: &str, key: Option<&str>, body: &Value) -> Value {
    let (status, _, answer) = call("POST", &format!("{helpdesk}/webhooks"), &auth(key), Some(body)).await;
    assert_eq!(status, 201, "{answer}");
    assert!(answer["secret"].as_str().unwrap().starts_with("whsec_"), "{answer}");
    answer
}

/// `POST /webhooks` for `events` at `url`.
pub async fn subscribe(helpdesk: &str, key: Option<&str>, url: &str, events: &[&str]) -> Value {
    subscribe_with(helpdesk, key, &json!({"url": url, "events": events})).await
}

/// `POST /document` without a callback: its documentId.
pub async fn post_document(helpdesk: &str, key: Option<&str>) -> String {
    let (status, _, body) = call(
        "POST",
        &format!("{helpdesk}/document"),
        &auth(key),
        Some(&json!({"documentUrl": "https://example.com/a.pdf"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    body["documentId"].as_str().unwrap().to_owned()
}
