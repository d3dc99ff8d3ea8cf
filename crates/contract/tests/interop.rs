//! hookline's signatures interoperate with the Standard Webhooks reference
//! library (`standardwebhooks`, by the scheme's authors): each verifies what
//! the other signs, and each refuses what the other would refuse.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hookline_contract::signature::SecretSet;
use http::{HeaderMap, HeaderValue};
use standardwebhooks::Webhook;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY: &[u8] = br#"{"agentId":"a-1","documentId":"d-1","documentStatus":"ACCEPTED","id":"r-1"}"#;

fn headers(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", HeaderValue::from_str(id).unwrap());
    headers.insert(
        "webhook-timestamp",
        HeaderValue::from_str(&timestamp.to_string()).unwrap(),
    );
    headers.insert("webhook-signature", HeaderValue::from_str(signature).unwrap());
    headers
}

#[test]
fn the_reference_library_verifies_what_hookline_signs() {
    let now = chrono::Utc::now().timestamp();
    let ours: SecretSet = SECRET.parse().unwrap();
    let signature = ours.sign("msg_interop", now, BODY);
    let theirs = Webhook::new(SECRET).unwrap();
    theirs.verify(BODY, &headers("msg_interop", now, &signature)).unwrap();
    // ...and refuses it once tampered with.
    let tampered = br#"{"agentId":"a-1","documentId":"d-1","documentStatus":"DECLINED","id":"r-1"}"#;
    assert!(
        theirs
            .verify(tampered, &headers("msg_interop", now, &signature))
            .is_err()
    );
}

#[test]
fn hookline_verifies_what_the_reference_library_signs() {
    let now = chrono::Utc::now().timestamp();
    let theirs = Webhook::new(SECRET).unwrap();
    let signature = theirs.sign("msg_interop", now, BODY).unwrap();
    let ours: SecretSet = SECRET.parse().unwrap();
    ours.verify("msg_interop", &now.to_string(), &signature, BODY, now)
        .unwrap();
    assert!(
        ours.verify("msg_other", &now.to_string(), &signature, BODY, now)
            .is_err()
    );
}

#[test]
fn both_sign_identically_including_with_several_secrets() {
    let theirs = Webhook::new(SECRET).unwrap();
    let ours: SecretSet = SECRET.parse().unwrap();
    for timestamp in [0, 1_614_265_330, 1_795_000_000] {
        assert_eq!(
            ours.sign("msg_x", timestamp, BODY),
            theirs.sign("msg_x", timestamp, BODY).unwrap()
        );
    }
    // During a rotation hookline sends one signature per secret; the
    // reference library, holding either secret alone, accepts the header.
    let other = "whsec_b3RoZXItc2VjcmV0LW9mLXR3ZW50eS1mb3VyLWJ5dGVz";
    let now = chrono::Utc::now().timestamp();
    let rotating: SecretSet = format!("{other},{SECRET}").parse().unwrap();
    let header = rotating.sign("msg_rot", now, BODY);
    for secret in [SECRET, other] {
        Webhook::new(secret)
            .unwrap()
            .verify(BODY, &headers("msg_rot", now, &header))
            .unwrap();
    }
}
