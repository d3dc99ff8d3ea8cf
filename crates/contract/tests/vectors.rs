//! Every dialect's signer and verifier against the published test vectors
//! (`vectors/signatures.json`), whose signatures were computed with
//! Python's `hmac`, independently of this crate: a valid vector's headers
//! are exactly what hookline signs, and each vector verifies as it says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hookline_contract::asymmetric::{PublicKeys, SigningKey};
use hookline_contract::dialect::{Delivery, Dialect, DialectError};
use hookline_contract::signature::VerifyError;
use serde_json::Value;

const VECTORS: &str = include_str!("../vectors/signatures.json");

fn vectors() -> Vec<Value> {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    doc["vectors"].as_array().unwrap().clone()
}

fn text<'a>(vector: &'a Value, field: &str) -> &'a str {
    vector[field].as_str().unwrap_or_else(|| panic!("{field} in {vector}"))
}

#[test]
fn every_vector_verifies_as_it_says() {
    let vectors = vectors();
    assert!(vectors.len() >= 25, "{} vectors", vectors.len());
    for vector in &vectors {
        let dialect: Dialect = text(vector, "dialect").parse().unwrap();
        let key = dialect.key(text(vector, "secret")).unwrap();
        let headers = vector["headers"].as_object().unwrap();
        // HTTP header names are case-insensitive: look them up so.
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_str())
                .map(str::to_owned)
        };
        let got = dialect.verify(
            key.as_slice(),
            header,
            text(vector, "body").as_bytes(),
            vector["now"].as_i64().unwrap(),
        );
        let ok = matches!(
            (text(vector, "expect"), &got),
            ("ok", Ok(()))
                | ("no_match", Err(DialectError::NoMatch))
                | ("stale", Err(DialectError::Stale))
                | ("missing_header", Err(DialectError::MissingHeader(_)))
        );
        assert!(ok, "{} / {}: {got:?}", text(vector, "dialect"), text(vector, "case"));
    }
}

#[test]
fn signing_a_valid_vector_gives_exactly_its_headers() {
    let mut signed = 0;
    for vector in vectors().iter().filter(|v| v["case"] == "valid") {
        let dialect: Dialect = text(vector, "dialect").parse().unwrap();
        let key = dialect.key(text(vector, "secret")).unwrap();
        let delivery = Delivery {
            id: vector["signed"]["id"].as_str().unwrap(),
            event: vector["signed"]["event"].as_str().unwrap(),
            timestamp: vector["signed"]["timestamp"].as_i64().unwrap(),
            body: text(vector, "body").as_bytes(),
        };
        // The same headers (JSON objects do not keep an order).
        let mut ours: Vec<(String, String)> = dialect
            .sign(&key, &delivery)
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        let mut theirs: Vec<(String, String)> = vector["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
            .collect();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "{dialect}");
        signed += 1;
    }
    assert_eq!(signed, Dialect::ALL.len(), "one valid vector per dialect");
}

#[test]
fn only_dialects_that_sign_a_time_can_call_a_delivery_stale() {
    for dialect in Dialect::ALL {
        let key = b"k";
        let delivery = Delivery {
            id: "msg_1",
            event: "document.accepted",
            timestamp: 1_000_000,
            body: b"{}",
        };
        let headers = dialect.sign(key, &delivery);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let an_hour_later = dialect.verify(key, header, b"{}", 1_000_000 + 3_600);
        if dialect.signs_timestamp() {
            assert_eq!(an_hour_later, Err(DialectError::Stale), "{dialect}");
        } else {
            assert_eq!(an_hour_later, Ok(()), "{dialect}: nothing says when it was signed");
        }
    }
}

#[test]
fn every_asymmetric_vector_verifies_as_it_says_and_signs_exactly_as_published() {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    let vectors = doc["asymmetric"]["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 6);
    for vector in vectors {
        let keys: Vec<&str> = vector["public_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        let keys: PublicKeys = keys.join(",").parse().unwrap();
        let header = |name: &str| vector["headers"][name].as_str().unwrap();
        let body = text(vector, "body").as_bytes();
        let got = keys.verify(
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
            body,
            vector["now"].as_i64().unwrap(),
        );
        let ok = matches!(
            (text(vector, "expect"), &got),
            ("ok", Ok(())) | ("no_match", Err(VerifyError::NoMatch)) | ("stale", Err(VerifyError::Stale))
        );
        assert!(ok, "{}: {got:?}", text(vector, "case"));
        if let Some(secret) = vector["signing_key"].as_str() {
            let key: SigningKey = secret.parse().unwrap();
            let timestamp = header("webhook-timestamp").parse().unwrap();
            assert_eq!(
                key.sign(header("webhook-id"), timestamp, body),
                header("webhook-signature")
            );
        }
    }
}
