//! Webhook signature dialects: how each provider signs, timestamps and
//! identifies a delivery, exactly as it documents it, for a test bench that
//! speaks to receivers written against those providers' SDKs.
//!
//! | dialect | signature header | what is signed | encoding | timestamp | delivery id |
//! |---|---|---|---|---|---|
//! | `standard` | `webhook-signature: v1,<mac>` | `{id}.{timestamp}.{body}` | base64 | `webhook-timestamp`, signed | `webhook-id`, signed |
//! | `stripe` | `Stripe-Signature: t=<ts>,v1=<mac>` | `{ts}.{body}` | hex | `t=`, signed | none (the event's id is in the body) |
//! | `github` | `X-Hub-Signature-256: sha256=<mac>` | `{body}` | hex | none | `X-GitHub-Delivery`, not signed |
//! | `shopify` | `X-Shopify-Hmac-Sha256: <mac>` | `{body}` | base64 | `X-Shopify-Triggered-At`, not signed | `X-Shopify-Webhook-Id`, not signed |
//! | `slack` | `X-Slack-Signature: v0=<mac>` | `v0:{ts}:{body}` | hex | `X-Slack-Request-Timestamp`, signed | none |
//!
//! Every MAC is HMAC-SHA256. The key is the secret as the provider hands it
//! out ([`Dialect::key`]): Standard Webhooks decodes the base64 after
//! `whsec_`; Stripe, GitHub, Shopify and Slack use the secret string's bytes
//! as they are (Stripe's `whsec_` prefix included). A dialect with a signed
//! timestamp refuses one more than [`TOLERANCE_SECS`](crate::signature::TOLERANCE_SECS)
//! from the receiver's clock (the tolerance Stripe's, Slack's and Standard
//! Webhooks' libraries default to; Stripe's refuse only a timestamp that
//! old, not one ahead); one without cannot tell a replay by time, only by
//! its delivery id. Comparisons are in constant time.
//!
//! While a secret rotates the sender holds several ([`Dialect::sign_with`]):
//! a dialect whose header carries several signatures (`standard`: several
//! `v1,` separated by spaces; `stripe`: several `v1=`, as Stripe itself
//! sends while a rolled secret still signs) signs with each, so a receiver
//! holding either accepts; the others carry one signature and sign with the
//! first secret listed, the newest (`WEBHOOK_SECRET=whsec_new,whsec_old`,
//! a subscription's current secret).
//!
//! `crates/contract/vectors/signatures.json` holds positive and negative
//! vectors for every dialect, computed independently of this code; the
//! crate's tests check both directions against each.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::DateTime;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::signature::{SecretError, SecretSet, TOLERANCE_SECS, WebhookSecret};

type HmacSha256 = Hmac<Sha256>;

/// A provider's way of signing webhooks, each as that provider documents it:
/// `standard` (Standard Webhooks), `stripe`, `github`, `shopify`, `slack`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    #[default]
    Standard,
    Stripe,
    Github,
    Shopify,
    Slack,
}

/// One delivery to sign: its id, event type, time (unix seconds) and body.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub id: &'a str,
    pub event: &'a str,
    pub timestamp: i64,
    pub body: &'a [u8],
}

/// Why a delivery was refused in a dialect. Safe to show to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialectError {
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    #[error("the {0} header is not what this dialect sends")]
    Malformed(&'static str),
    #[error("the signed timestamp is more than 5 minutes away from now")]
    Stale,
    #[error("no signature matches")]
    NoMatch,
}

/// `--dialect` named none of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dialect {0:?}: one of standard, stripe, github, shopify, slack")]
pub struct UnknownDialect(pub String);

impl Dialect {
    pub const ALL: [Self; 5] = [Self::Standard, Self::Stripe, Self::Github, Self::Shopify, Self::Slack];

    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Stripe => "stripe",
            Self::Github => "github",
            Self::Shopify => "shopify",
            Self::Slack => "slack",
        }
    }

    /// The header that carries the signature.
    pub fn signature_header(self) -> &'static str {
        match self {
            Self::Standard => "webhook-signature",
            Self::Stripe => "Stripe-Signature",
            Self::Github => "X-Hub-Signature-256",
            Self::Shopify => "X-Shopify-Hmac-Sha256",
            Self::Slack => "X-Slack-Signature",
        }
    }

    /// Whether the signature covers a timestamp: only then can a receiver
    /// refuse a stale (replayed) delivery by its time.
    pub fn signs_timestamp(self) -> bool {
        matches!(self, Self::Standard | Self::Stripe | Self::Slack)
    }

    /// The header naming the delivery, by which a receiver drops a replay
    /// (none: the event's id is in the body, as Stripe's).
    pub fn id_header(self) -> Option<&'static str> {
        match self {
            Self::Standard => Some("webhook-id"),
            Self::Github => Some("X-GitHub-Delivery"),
            Self::Shopify => Some("X-Shopify-Webhook-Id"),
            Self::Stripe | Self::Slack => None,
        }
    }

    /// The signed timestamp (unix seconds) of a received delivery, read
    /// from its headers (`header` looks one up by name); `None` in a
    /// dialect that signs none, or when it is missing or unreadable. Not
    /// verified: [`Dialect::verify`] does that.
    pub fn signed_timestamp(self, header: impl Fn(&str) -> Option<String>) -> Option<i64> {
        match self {
            Self::Standard => header("webhook-timestamp")?.trim().parse().ok(),
            Self::Slack => header("X-Slack-Request-Timestamp")?.trim().parse().ok(),
            Self::Stripe => header(self.signature_header())?
                .split(',')
                .find_map(|item| item.trim().strip_prefix("t=")?.trim().parse().ok()),
            Self::Github | Self::Shopify => None,
        }
    }

    /// The HMAC key of `secret`, written as the provider hands it out.
    pub fn key(self, secret: &str) -> Result<Vec<u8>, SecretError> {
        match self {
            Self::Standard => Ok(secret.parse::<WebhookSecret>()?.as_bytes().to_vec()),
            _ if secret.is_empty() => Err(SecretError::Empty),
            _ => Ok(secret.as_bytes().to_vec()),
        }
    }

    /// Whether the signature header carries several signatures at once (one
    /// per secret during a rotation).
    pub fn carries_several_signatures(self) -> bool {
        matches!(self, Self::Standard | Self::Stripe)
    }

    /// The HMAC key of a secret the sender holds: its bytes in Standard
    /// Webhooks, its `whsec_…` spelling ([`WebhookSecret::expose`]) as the
    /// others' keys are the string handed out.
    pub fn key_of(self, secret: &WebhookSecret) -> Vec<u8> {
        match self {
            Self::Standard => secret.as_bytes().to_vec(),
            _ => secret.expose().into_bytes(),
        }
    }

    /// The headers that sign `delivery` with every secret of `secrets` the
    /// dialect can carry (see the [module](self)): each, in a dialect whose
    /// header holds several signatures; else the first listed.
    pub fn sign_with(self, secrets: &SecretSet, delivery: &Delivery<'_>) -> Vec<(&'static str, String)> {
        let mut keys = secrets.iter().map(|secret| self.key_of(secret));
        let first = keys.next().unwrap_or_default();
        let mut headers = self.sign(&first, delivery);
        if !self.carries_several_signatures() {
            return headers;
        }
        let name = self.signature_header();
        // Each further secret's signature, as its own header spells it.
        let more: Vec<String> = keys
            .filter_map(|key| {
                self.sign(&key, delivery)
                    .into_iter()
                    .find(|(header, _)| *header == name)
            })
            .filter_map(|(_, value)| match self {
                Self::Stripe => value.split_once(',').map(|(_, sigs)| sigs.to_owned()),
                _ => Some(value),
            })
            .collect();
        if let Some((_, value)) = headers.iter_mut().find(|(header, _)| *header == name) {
            let separator = if self == Self::Stripe { "," } else { " " };
            for signature in more {
                value.push_str(separator);
                value.push_str(&signature);
            }
        }
        headers
    }

    /// The headers that sign `delivery` under `key`, in the order sent.
    pub fn sign(self, key: &[u8], delivery: &Delivery<'_>) -> Vec<(&'static str, String)> {
        let ts = delivery.timestamp;
        let mac = |parts: &[&[u8]]| hmac(key, parts);
        let ts_text = ts.to_string();
        match self {
            Self::Standard => {
                let mac = mac(&[delivery.id.as_bytes(), b".", ts_text.as_bytes(), b".", delivery.body]);
                vec![
                    ("webhook-id", delivery.id.to_owned()),
                    ("webhook-timestamp", ts_text),
                    ("webhook-signature", format!("v1,{}", BASE64.encode(mac))),
                ]
            }
            Self::Stripe => {
                let mac = mac(&[ts_text.as_bytes(), b".", delivery.body]);
                vec![("Stripe-Signature", format!("t={ts},v1={}", hex(&mac)))]
            }
            Self::Github => vec![
                ("X-Hub-Signature-256", format!("sha256={}", hex(&mac(&[delivery.body])))),
                ("X-GitHub-Delivery", delivery.id.to_owned()),
                ("X-GitHub-Event", delivery.event.to_owned()),
            ],
            Self::Shopify => {
                let at = DateTime::from_timestamp(ts, 0)
                    .map(|at| at.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_default();
                vec![
                    ("X-Shopify-Hmac-Sha256", BASE64.encode(mac(&[delivery.body]))),
                    ("X-Shopify-Webhook-Id", delivery.id.to_owned()),
                    ("X-Shopify-Topic", delivery.event.to_owned()),
                    ("X-Shopify-Triggered-At", at),
                ]
            }
            Self::Slack => {
                let mac = mac(&[b"v0:", ts_text.as_bytes(), b":", delivery.body]);
                vec![
                    ("X-Slack-Signature", format!("v0={}", hex(&mac))),
                    ("X-Slack-Request-Timestamp", ts_text),
                ]
            }
        }
    }

    /// Checks a received delivery as the provider's own library does:
    /// `header` looks a header up by name (case-insensitively, as HTTP
    /// does), `now` is the receiver's clock in unix seconds.
    pub fn verify(
        self,
        key: &[u8],
        header: impl Fn(&str) -> Option<String>,
        body: &[u8],
        now: i64,
    ) -> Result<(), DialectError> {
        let need = |name: &'static str| header(name).ok_or(DialectError::MissingHeader(name));
        let fresh = |ts: i64| {
            if now.abs_diff(ts) > TOLERANCE_SECS.unsigned_abs() {
                Err(DialectError::Stale)
            } else {
                Ok(())
            }
        };
        let timestamp =
            |name: &'static str, raw: &str| raw.trim().parse::<i64>().map_err(|_| DialectError::Malformed(name));
        let signature = self.signature_header();
        // What was signed, and the candidate MACs the sender sent.
        let (signed, candidates): (Vec<u8>, Vec<Vec<u8>>) = match self {
            Self::Standard => {
                let id = need("webhook-id")?;
                let raw_ts = need("webhook-timestamp")?;
                let sigs = need(signature)?;
                let ts = timestamp("webhook-timestamp", &raw_ts)?;
                fresh(ts)?;
                let candidates = sigs
                    .split_whitespace()
                    .filter_map(|sig| sig.strip_prefix("v1,"))
                    .filter_map(|b64| BASE64.decode(b64).ok())
                    .collect();
                (
                    joined(&[id.as_bytes(), b".", raw_ts.trim().as_bytes(), b".", body]),
                    candidates,
                )
            }
            Self::Stripe => {
                let value = need(signature)?;
                let mut ts = None;
                let mut candidates = Vec::new();
                for item in value.split(',') {
                    match item.trim().split_once('=') {
                        Some(("t", t)) => ts = Some(timestamp(signature, t)?),
                        Some(("v1", mac)) => candidates.extend(unhex(mac)),
                        _ => {}
                    }
                }
                let ts = ts.ok_or(DialectError::Malformed(signature))?;
                // As Stripe's libraries do: too old is refused, ahead is not.
                if now - ts > TOLERANCE_SECS {
                    return Err(DialectError::Stale);
                }
                (joined(&[ts.to_string().as_bytes(), b".", body]), candidates)
            }
            Self::Github => {
                let value = need(signature)?;
                let mac = value
                    .strip_prefix("sha256=")
                    .ok_or(DialectError::Malformed(signature))?;
                (body.to_vec(), unhex(mac).into_iter().collect())
            }
            Self::Shopify => {
                let value = need(signature)?;
                (body.to_vec(), BASE64.decode(value.trim()).ok().into_iter().collect())
            }
            Self::Slack => {
                let raw_ts = need("X-Slack-Request-Timestamp")?;
                let value = need(signature)?;
                let ts = timestamp("X-Slack-Request-Timestamp", &raw_ts)?;
                fresh(ts)?;
                let mac = value.strip_prefix("v0=").ok_or(DialectError::Malformed(signature))?;
                (
                    joined(&[b"v0:", raw_ts.trim().as_bytes(), b":", body]),
                    unhex(mac).into_iter().collect(),
                )
            }
        };
        let expected = hmac(key, &[&signed]);
        let matches = candidates
            .iter()
            .any(|candidate| bool::from(candidate.as_slice().ct_eq(expected.as_slice())));
        if matches { Ok(()) } else { Err(DialectError::NoMatch) }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dialect {
    type Err = UnknownDialect;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|dialect| dialect.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownDialect(s.to_owned()))
    }
}

/// HMAC-SHA256 of `parts` in a row under `key`.
fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn joined(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower- or upper-case hex; `None` if it is not hex of whole bytes.
fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for dialect in Dialect::ALL {
            assert_eq!(dialect.name().parse::<Dialect>(), Ok(dialect));
        }
        assert_eq!("GitHub".parse::<Dialect>(), Ok(Dialect::Github));
        assert!("svix".parse::<Dialect>().is_err());
    }

    #[test]
    fn several_secrets_sign_each_where_the_dialect_carries_several_signatures_else_the_first() {
        let (new, old) = (WebhookSecret::from_array([1; 32]), WebhookSecret::from_array([2; 32]));
        let both = SecretSet::new(vec![new.clone(), old.clone()]).unwrap();
        let delivery = Delivery {
            id: "msg_1",
            event: "document.accepted",
            timestamp: 1_700_000_000,
            body: br#"{"a":1}"#,
        };
        for dialect in Dialect::ALL {
            let headers = dialect.sign_with(&both, &delivery);
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(header, _)| header.eq_ignore_ascii_case(name))
                    .map(|(_, value)| value.clone())
            };
            let verifies = |secret: &WebhookSecret| {
                dialect
                    .verify(&dialect.key_of(secret), header, delivery.body, delivery.timestamp)
                    .is_ok()
            };
            assert!(verifies(&new), "{dialect}: the newest signs");
            assert_eq!(verifies(&old), dialect.carries_several_signatures(), "{dialect}");
            // Keys as the provider hands them out: the whsec_ string itself,
            // except Standard Webhooks' decoded base64.
            assert_eq!(dialect.key(&new.expose()).unwrap(), dialect.key_of(&new), "{dialect}");
        }
        let standard = Dialect::Standard.sign_with(&both, &delivery);
        assert_eq!(
            standard[2].1,
            both.sign(delivery.id, delivery.timestamp, delivery.body),
            "the same header as SecretSet::sign"
        );
    }

    #[test]
    fn the_signed_timestamp_is_read_back_where_a_dialect_signs_one() {
        for dialect in Dialect::ALL {
            let delivery = Delivery {
                id: "msg_1",
                event: "document.accepted",
                timestamp: 1_700_000_123,
                body: b"{}",
            };
            let headers = dialect.sign(b"key", &delivery);
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            let expected = dialect.signs_timestamp().then_some(1_700_000_123);
            assert_eq!(dialect.signed_timestamp(header), expected, "{dialect}");
        }
    }

    #[test]
    fn hex_refuses_what_is_not_whole_bytes_of_hex() {
        assert_eq!(unhex("00ff"), Some(vec![0, 255]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é0"), None);
    }
}
