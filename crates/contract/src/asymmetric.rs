//! Standard Webhooks' asymmetric signatures (`v1a`): the sender signs
//! `"{webhook-id}.{webhook-timestamp}.{body}"` with an Ed25519 secret key
//! (`whsk_<base64>`) and sends `v1a,<base64 signature>` in
//! `webhook-signature`, beside or instead of `v1,` HMACs; the receiver
//! holds only public keys (`whpk_<base64>`), which verify and cannot sign,
//! so a leaked receiver configuration lets no one forge a webhook.
//!
//! Rotation works as with shared secrets: the sender signs with the old
//! and the new key for a while (several `v1a,` signatures, space-separated),
//! the receiver accepts any of its public keys. The timestamp tolerance is
//! the same ([`TOLERANCE_SECS`](crate::signature::TOLERANCE_SECS)).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey as Ed25519Secret, Verifier as _, VerifyingKey};

use crate::signature::{VerifyError, fresh_timestamp};

const SECRET_PREFIX: &str = "whsk_";
const PUBLIC_PREFIX: &str = "whpk_";
const VERSION_PREFIX: &str = "v1a,";

/// Why a key could not be read. Never contains the key itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a signing key is whsk_ and the base64 of a 32-byte Ed25519 seed (or of 64 bytes: seed and public key)")]
    BadSecret,
    #[error("a public key is whpk_ and the base64 of a 32-byte Ed25519 public key")]
    BadPublic,
    #[error("no public key given")]
    Empty,
}

/// The sender's Ed25519 signing key (`whsk_…`). `Debug` redacts it.
#[derive(Clone)]
pub struct SigningKey(Ed25519Secret);

/// The public keys a receiver accepts (`whpk_…`, comma-separated).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKeys(Vec<VerifyingKey>);

impl SigningKey {
    /// A key from 32 random bytes (a seed).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(Ed25519Secret::from_bytes(&seed))
    }

    /// The 32-byte seed, as `whsk_` carries it.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Its public key, as the receiver is given it.
    pub fn public_key(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", BASE64.encode(self.0.verifying_key().as_bytes()))
    }

    /// The `webhook-signature` value for one message: `v1a,<base64>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let signature = self.0.sign(&signed_content(msg_id, timestamp, body));
        format!("{VERSION_PREFIX}{}", BASE64.encode(signature.to_bytes()))
    }
}

impl FromStr for SigningKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .and_then(|b64| BASE64.decode(b64).ok())
            .ok_or(KeyError::BadSecret)?;
        let seed: [u8; 32] = bytes
            .get(..32)
            .and_then(|s| s.try_into().ok())
            .ok_or(KeyError::BadSecret)?;
        let key = Ed25519Secret::from_bytes(&seed);
        match bytes.len() {
            32 => Ok(Self(key)),
            // seed and public key: the public half must be the seed's.
            64 if bytes[32..] == key.verifying_key().as_bytes()[..] => Ok(Self(key)),
            _ => Err(KeyError::BadSecret),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl PublicKeys {
    /// Checks one received webhook against `now` (unix seconds), as
    /// [`SecretSet::verify`](crate::signature::SecretSet::verify) does for
    /// `v1,`: any `v1a,` signature valid under any of the keys.
    pub fn verify(
        &self,
        msg_id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let ts = fresh_timestamp(timestamp, now)?;
        let content = signed_content(msg_id, ts, body);
        let candidates: Vec<Signature> = signatures
            .split_whitespace()
            .filter_map(|sig| sig.strip_prefix(VERSION_PREFIX))
            .filter_map(|b64| BASE64.decode(b64).ok())
            .filter_map(|bytes| Signature::from_slice(&bytes).ok())
            .collect();
        let valid = self
            .0
            .iter()
            .any(|key| candidates.iter().any(|sig| key.verify(&content, sig).is_ok()));
        if valid { Ok(()) } else { Err(VerifyError::NoMatch) }
    }
}

impl FromStr for PublicKeys {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let keys = s
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| {
                let bytes = part
                    .trim()
                    .strip_prefix(PUBLIC_PREFIX)
                    .and_then(|b64| BASE64.decode(b64).ok())
                    .ok_or(KeyError::BadPublic)?;
                let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError::BadPublic)?;
                VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::BadPublic)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self(keys))
    }
}

impl fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKeys({})", self.0.len())
    }
}

fn signed_content(msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    [msg_id.as_bytes(), b".", timestamp.to_string().as_bytes(), b".", body].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signing_key_signs_what_its_public_key_verifies_and_no_other_does() {
        let key = SigningKey::from_seed([7; 32]);
        let keys: PublicKeys = key.public_key().parse().unwrap();
        let signature = key.sign("msg_1", 1_000, b"{}");
        assert!(keys.verify("msg_1", "1000", &signature, b"{}", 1_000).is_ok());
        assert_eq!(
            keys.verify("msg_1", "1000", &signature, b"{ }", 1_000),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            keys.verify("msg_2", "1000", &signature, b"{}", 1_000),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            keys.verify("msg_1", "1000", &signature, b"{}", 2_000),
            Err(VerifyError::Stale)
        );
        let other: PublicKeys = SigningKey::from_seed([8; 32]).public_key().parse().unwrap();
        assert_eq!(
            other.verify("msg_1", "1000", &signature, b"{}", 1_000),
            Err(VerifyError::NoMatch)
        );
        // A v1 HMAC beside it is skipped, not an error.
        let both = format!("v1,AAAA {signature}");
        assert!(keys.verify("msg_1", "1000", &both, b"{}", 1_000).is_ok());
    }

    #[test]
    fn keys_that_are_not_ed25519_keys_are_refused_without_showing_them() {
        assert_eq!("whsk_AAAA".parse::<SigningKey>().err(), Some(KeyError::BadSecret));
        assert_eq!("whsec_AAAA".parse::<SigningKey>().err(), Some(KeyError::BadSecret));
        assert_eq!("whpk_AAAA".parse::<PublicKeys>(), Err(KeyError::BadPublic));
        assert_eq!("".parse::<PublicKeys>(), Err(KeyError::Empty));
        assert_eq!(
            format!("{:?}", SigningKey::from_seed([1; 32])),
            "SigningKey(<redacted>)"
        );
    }
}
