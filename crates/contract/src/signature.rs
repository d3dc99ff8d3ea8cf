//! Standard Webhooks signatures (<https://www.standardwebhooks.com>).
//!
//! The sender signs `"{webhook-id}.{webhook-timestamp}.{body}"` with
//! HMAC-SHA256 under a shared secret and sends `v1,<base64 mac>` in
//! `webhook-signature`. The receiver recomputes the MAC and accepts the
//! message when
//!
//! * the timestamp is within [`TOLERANCE_SECS`] of its own clock (so a
//!   captured request cannot be replayed later), and
//! * any one of the space-separated signatures matches the MAC under any one
//!   of its secrets, compared in constant time.
//!
//! Several secrets make rotation painless: the sender signs with every secret
//! in its list and the receiver accepts any of its own, so the new secret is
//! added on both sides first and the old one removed afterwards.
//!
//! Secrets are written `whsec_<base64>` (the prefix is optional on input) and
//! carry 24–64 random bytes. [`WebhookSecret`] never prints its bytes.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How far (seconds) a webhook's timestamp may be from the receiver's clock.
pub const TOLERANCE_SECS: i64 = 5 * 60;
const SECRET_PREFIX: &str = "whsec_";
const VERSION_PREFIX: &str = "v1,";

/// One shared signing key. `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

/// Why a secret could not be read. Never contains the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a webhook secret must be base64 (optionally prefixed with whsec_)")]
    NotBase64,
    #[error("a webhook secret must decode to 24-64 bytes, this one has {0}")]
    BadLength(usize),
    #[error("the webhook secret list is empty")]
    Empty,
}

impl WebhookSecret {
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SecretError> {
        if !(24..=64).contains(&bytes.len()) {
            return Err(SecretError::BadLength(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// A secret from 32 bytes (always a valid length): pass random ones.
    pub fn from_array(bytes: [u8; 32]) -> Self {
        Self(bytes.to_vec())
    }

    /// The `whsec_...` spelling, for handing the secret to the other side.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.0))
    }

    /// The key's bytes, for the signature [dialects](crate::dialect).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    fn signature(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(msg_id, timestamp, body).finalize().into_bytes();
        format!("{VERSION_PREFIX}{}", BASE64.encode(tag))
    }
}

impl FromStr for WebhookSecret {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let encoded = s.trim();
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        let bytes = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        Self::from_bytes(bytes)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// The secrets one side holds (`WEBHOOK_SECRET`, comma-separated): the
/// signer signs with each, the verifier accepts any.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretSet(Vec<WebhookSecret>);

/// Why a webhook was refused. The messages are safe to return to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a unix time in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is more than 5 minutes away from now")]
    Stale,
    #[error("no signature in webhook-signature matches")]
    NoMatch,
}

impl SecretSet {
    pub fn new(secrets: Vec<WebhookSecret>) -> Result<Self, SecretError> {
        if secrets.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self(secrets))
    }

    /// A set of one secret.
    pub fn single(secret: WebhookSecret) -> Self {
        Self(vec![secret])
    }

    /// The secrets, in the order listed (the newest first, by convention).
    pub fn iter(&self) -> impl Iterator<Item = &WebhookSecret> {
        self.0.iter()
    }

    /// The `webhook-signature` header value for one attempt.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        self.0
            .iter()
            .map(|secret| secret.signature(msg_id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Checks one received webhook against `now` (unix seconds).
    pub fn verify(
        &self,
        msg_id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let timestamp = fresh_timestamp(timestamp, now)?;
        let candidates: Vec<Vec<u8>> = signatures
            .split_whitespace()
            .filter_map(|sig| sig.strip_prefix(VERSION_PREFIX))
            .filter_map(|b64| BASE64.decode(b64).ok())
            .collect();
        let matches = self.0.iter().any(|secret| {
            let expected = secret.mac(msg_id, timestamp, body).finalize().into_bytes();
            candidates
                .iter()
                .any(|candidate| bool::from(candidate.as_slice().ct_eq(expected.as_slice())))
        });
        if matches { Ok(()) } else { Err(VerifyError::NoMatch) }
    }
}

/// A `webhook-timestamp` read, and within [`TOLERANCE_SECS`] of `now`:
/// the check every Standard Webhooks signature (`v1`, `v1a`) starts with.
pub(crate) fn fresh_timestamp(timestamp: &str, now: i64) -> Result<i64, VerifyError> {
    let timestamp: i64 = timestamp.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    if now.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(VerifyError::Stale);
    }
    Ok(timestamp)
}

impl FromStr for SecretSet {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let secrets = s
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(secrets)
    }
}

impl fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretSet(<{} redacted>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector published with the Standard Webhooks reference libraries.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1_614_265_330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn spec_set() -> SecretSet {
        SPEC_SECRET.parse().unwrap()
    }

    #[test]
    fn signing_reproduces_the_specification_test_vector() {
        assert_eq!(
            spec_set().sign(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes()),
            SPEC_SIGNATURE
        );
    }

    #[test]
    fn the_specification_test_vector_verifies() {
        let ts = SPEC_TIMESTAMP.to_string();
        spec_set()
            .verify(SPEC_ID, &ts, SPEC_SIGNATURE, SPEC_BODY.as_bytes(), SPEC_TIMESTAMP)
            .unwrap();
    }

    #[test]
    fn a_tampered_body_id_or_timestamp_is_refused() {
        let set = spec_set();
        let ts = SPEC_TIMESTAMP.to_string();
        let body = SPEC_BODY.as_bytes();
        let now = SPEC_TIMESTAMP;
        assert_eq!(
            set.verify(SPEC_ID, &ts, SPEC_SIGNATURE, br#"{"test": 2432232315}"#, now),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            set.verify("msg_other", &ts, SPEC_SIGNATURE, body, now),
            Err(VerifyError::NoMatch)
        );
        let later = (SPEC_TIMESTAMP + 1).to_string();
        assert_eq!(
            set.verify(SPEC_ID, &later, SPEC_SIGNATURE, body, now),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn a_timestamp_outside_five_minutes_is_refused_either_way() {
        let set = spec_set();
        let ts = SPEC_TIMESTAMP.to_string();
        let body = SPEC_BODY.as_bytes();
        for now in [SPEC_TIMESTAMP + TOLERANCE_SECS + 1, SPEC_TIMESTAMP - TOLERANCE_SECS - 1] {
            assert_eq!(
                set.verify(SPEC_ID, &ts, SPEC_SIGNATURE, body, now),
                Err(VerifyError::Stale)
            );
        }
        assert_eq!(
            set.verify(SPEC_ID, "yesterday", SPEC_SIGNATURE, body, SPEC_TIMESTAMP),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn any_of_several_signatures_and_any_of_several_secrets_will_do() {
        let other = WebhookSecret::from_bytes(vec![7; 32]).unwrap();
        let old_and_new: SecretSet = format!("{},{}", other.expose(), SPEC_SECRET).parse().unwrap();
        let header = old_and_new.sign(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes());
        assert_eq!(header.split(' ').count(), 2);
        let ts = SPEC_TIMESTAMP.to_string();
        // A receiver that only knows the spec secret accepts the two-signature header.
        spec_set()
            .verify(SPEC_ID, &ts, &header, SPEC_BODY.as_bytes(), SPEC_TIMESTAMP)
            .unwrap();
        // A receiver with both secrets accepts a header signed with just one.
        old_and_new
            .verify(SPEC_ID, &ts, SPEC_SIGNATURE, SPEC_BODY.as_bytes(), SPEC_TIMESTAMP)
            .unwrap();
        let only_other = SecretSet::new(vec![other]).unwrap();
        assert_eq!(
            only_other.verify(SPEC_ID, &ts, SPEC_SIGNATURE, SPEC_BODY.as_bytes(), SPEC_TIMESTAMP),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn garbage_signatures_are_refused_not_panicked_on() {
        let ts = SPEC_TIMESTAMP.to_string();
        for header in [
            "",
            "v1,",
            "v1,!!!",
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "v1",
        ] {
            assert_eq!(
                spec_set().verify(SPEC_ID, &ts, header, SPEC_BODY.as_bytes(), SPEC_TIMESTAMP),
                Err(VerifyError::NoMatch)
            );
        }
    }

    #[test]
    fn secrets_never_print() {
        let set = spec_set();
        assert!(!format!("{set:?}").contains("MfKQ9r8"));
        let secret: WebhookSecret = SPEC_SECRET.parse().unwrap();
        assert!(!format!("{secret:?}").contains("MfKQ9r8"));
        assert_eq!(secret.expose(), SPEC_SECRET);
    }

    #[test]
    fn malformed_secrets_are_refused() {
        assert_eq!("whsec_***".parse::<WebhookSecret>(), Err(SecretError::NotBase64));
        assert_eq!(
            "whsec_c2hvcnQ=".parse::<WebhookSecret>(),
            Err(SecretError::BadLength(5))
        );
        assert_eq!(" , ".parse::<SecretSet>(), Err(SecretError::Empty));
    }
}
