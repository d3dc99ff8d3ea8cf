//! What `hookline check` sends: the signer (a Standard Webhooks secret or
//! key, or another provider's dialect), the payload, each case's request
//! built from them and spoilt one way ([`request_for`]), and the client
//! that sends it and reads the answer.

use awc::error::SendRequestError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use hookline_contract::asymmetric::{KeyError, PublicKeys, SigningKey};
use hookline_contract::dialect::{Delivery, Dialect};
use hookline_contract::headers;
use hookline_contract::signature::{SecretError, SecretSet, WebhookSecret};

use super::{Case, Got, OVERSIZED_BYTES, SKEW_SECS, Target};

/// A JSON object to send as every webhook's body.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload(pub(super) serde_json::Map<String, serde_json::Value>);

/// Why a `--payload` cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the payload is not JSON")]
    NotJson(#[from] serde_json::Error),
    #[error("the payload must be a JSON object (the battery adds fields to it)")]
    NotAnObject,
}

/// Why `--payload DIR --event TYPE` has no payload to send.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("{path}: no fixture for the event {event:?}; {dir} has {}", list(.types))]
    Missing {
        path: String,
        event: String,
        dir: String,
        /// The event types the directory has (`TYPE.json`), sorted.
        types: Vec<String>,
    },
    #[error("{0}: {1}")]
    Unreadable(String, std::io::Error),
    #[error("{0}: {1}")]
    Bad(String, PayloadError),
}

fn list(types: &[String]) -> String {
    if types.is_empty() {
        "no TYPE.json files".to_owned()
    } else {
        types.join(", ")
    }
}

impl Payload {
    pub fn parse(text: &str) -> Result<Self, PayloadError> {
        match serde_json::from_str(text)? {
            serde_json::Value::Object(map) => Ok(Self(map)),
            _ => Err(PayloadError::NotAnObject),
        }
    }

    /// The payload in the file `path`.
    pub fn read(path: &std::path::Path) -> Result<Self, FixtureError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| FixtureError::Unreadable(shown.clone(), e))?;
        Self::parse(&text).map_err(|e| FixtureError::Bad(shown, e))
    }

    /// The fixture of `event` in `dir` (`--payload DIR --event TYPE`): the
    /// file `DIR/TYPE.json`, as provider fixtures are laid out (one file
    /// per event type, named by it).
    pub fn fixture(dir: &std::path::Path, event: &str) -> Result<Self, FixtureError> {
        let path = dir.join(format!("{event}.json"));
        // A type with a path separator would read a file elsewhere.
        let plain = !event.is_empty() && !event.contains(['/', '\\']) && event != "..";
        if plain && path.is_file() {
            return Self::read(&path);
        }
        let mut types: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| FixtureError::Unreadable(dir.display().to_string(), e))?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".json").map(str::to_owned)
            })
            .collect();
        types.sort();
        Err(FixtureError::Missing {
            path: path.display().to_string(),
            event: event.to_owned(),
            dir: dir.display().to_string(),
            types,
        })
    }
}

/// How the battery signs (and `listen` verifies): Standard Webhooks with
/// the receiver's secrets (every one of them, as a sender rotating them
/// does), or with an Ed25519 key (`v1a`: the signing key `whsk_…`; a
/// receiver's public keys `whpk_…` only verify), or another provider's
/// dialect with its secret.
#[derive(Debug, Clone)]
pub enum Signer {
    Standard(SecretSet),
    Asymmetric(SigningKey),
    /// Public keys: they verify (`listen`) and cannot sign (`check`).
    Verifying(PublicKeys),
    Dialect {
        dialect: Dialect,
        key: Vec<u8>,
    },
}

/// Why `--secret` cannot be read in its dialect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSecret {
    #[error(transparent)]
    Shared(#[from] SecretError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl Signer {
    /// `secret` as `dialect` writes it (Standard Webhooks: `whsec_…`,
    /// comma-separated for several, or an Ed25519 key `whsk_…` / public
    /// keys `whpk_…`; the others: the string itself).
    pub fn new(dialect: Dialect, secret: &str) -> Result<Self, BadSecret> {
        let secret = secret.trim();
        Ok(match dialect {
            Dialect::Standard if secret.starts_with("whsk_") => Self::Asymmetric(secret.parse()?),
            Dialect::Standard if secret.starts_with("whpk_") => Self::Verifying(secret.parse()?),
            Dialect::Standard => Self::Standard(secret.parse()?),
            other => Self::Dialect {
                dialect: other,
                key: other.key(secret)?,
            },
        })
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Standard(_) | Self::Asymmetric(_) | Self::Verifying(_) => Dialect::Standard,
            Self::Dialect { dialect, .. } => *dialect,
        }
    }

    /// Checks a received request as a receiver holding this secret would
    /// (`listen`, `grade`): `header` looks a header up by name
    /// (case-insensitively), `now` is the receiver's clock in unix
    /// seconds. Why it fails, in words fit to print.
    pub fn verify(&self, header: impl Fn(&str) -> Option<String>, body: &[u8], now: i64) -> Result<(), String> {
        // Standard Webhooks' three headers, or which one is missing.
        let standard = || -> Result<(String, String, String), String> {
            let need = |name: &'static str| header(name).ok_or_else(|| format!("the {name} header is missing"));
            Ok((
                need(headers::WEBHOOK_ID)?,
                need(headers::WEBHOOK_TIMESTAMP)?,
                need(headers::WEBHOOK_SIGNATURE)?,
            ))
        };
        let verify_v1a = |keys: &PublicKeys| {
            let (id, ts, sig) = standard()?;
            keys.verify(&id, &ts, &sig, body, now).map_err(|e| e.to_string())
        };
        match self {
            Self::Standard(secrets) => {
                let (id, ts, sig) = standard()?;
                secrets.verify(&id, &ts, &sig, body, now).map_err(|e| e.to_string())
            }
            Self::Asymmetric(key) => verify_v1a(&key.public_key().parse().map_err(|e: KeyError| e.to_string())?),
            Self::Verifying(keys) => verify_v1a(keys),
            Self::Dialect { dialect, key } => dialect.verify(key, header, body, now).map_err(|e| e.to_string()),
        }
    }

    /// The same dialect with a secret no receiver holds.
    pub(super) fn other(&self) -> Self {
        match self {
            Self::Standard(_) | Self::Verifying(_) => Self::Standard(other_secret()),
            Self::Asymmetric(_) => Self::Asymmetric(SigningKey::from_seed(rand::random())),
            Self::Dialect { dialect, .. } => Self::Dialect {
                dialect: *dialect,
                key: rand::random::<[u8; 32]>().to_vec(),
            },
        }
    }
}

/// The request of a case other than the valid one and its duplicates.
pub(super) fn request_for(case: Case, signer: &Signer, payload: Option<&Payload>) -> Request {
    let message = Message::new(payload);
    let now = Utc::now().timestamp();
    let dialect = signer.dialect();
    let signature_header = dialect.signature_header();
    match case {
        Case::StaleTimestamp => message.signed_at(signer, now - SKEW_SECS),
        Case::FutureTimestamp => message.signed_at(signer, now + SKEW_SECS),
        Case::ForgedSignature => match signer {
            Signer::Standard(_) | Signer::Verifying(_) => message
                .signed(signer)
                .with(signature_header, format!("v1,{}", random_mac())),
            Signer::Asymmetric(_) => message.signed(signer).with(
                signature_header,
                format!("v1a,{}", BASE64.encode(rand::random::<[u8; 64]>())),
            ),
            // A random MAC in the dialect's own format: what a key no one
            // holds signs.
            Signer::Dialect { .. } => message.signed(&signer.other()),
        },
        Case::OtherSecret => message.signed(&signer.other()),
        Case::TamperedBody => {
            let mut request = message.signed(signer);
            request.body = message.tampered_body();
            request
        }
        Case::MissingWebhookId => message.signed(signer).without(headers::WEBHOOK_ID),
        Case::MissingTimestamp => match dialect {
            Dialect::Slack => message.signed(signer).without("X-Slack-Request-Timestamp"),
            _ => message.signed(signer).without(headers::WEBHOOK_TIMESTAMP),
        },
        Case::MissingSignature => message.signed(signer).without(signature_header),
        Case::UnknownVersionOnly => {
            let request = message.signed(signer);
            // v1, (and v1a,) become v2, (v2a,): versions no receiver knows.
            let v2 = request.header(signature_header).replacen("v1", "v2", 1);
            request.with(signature_header, v2)
        }
        Case::UnknownVersionAndV1 => {
            let request = message.signed(signer);
            let both = format!("v2,{} {}", random_mac(), request.header(signature_header));
            request.with(signature_header, both)
        }
        Case::OversizedBody => message
            .with_extra("padding", "x".repeat(OVERSIZED_BYTES))
            .signed(signer),
        Case::UnknownFields => message
            .with_extra("hooklineCheck", "an unknown field")
            .with_extra("nested", serde_json::json!({"also": ["unknown", 1, true]}))
            .signed(signer),
        // Indented over several lines: bytes that neither JSON.stringify nor
        // json.dumps of the parsed body gives back.
        Case::ReformattedBody => Message {
            pretty: true,
            ..message
        }
        .signed(signer),
        Case::Valid | Case::DuplicateSequential | Case::DuplicateConcurrent => message.signed(signer),
    }
}

fn random_mac() -> String {
    BASE64.encode(rand::random::<[u8; 32]>())
}

fn other_secret() -> SecretSet {
    SecretSet::single(WebhookSecret::from_array(rand::random()))
}

/// One webhook before it is signed: the tutorial's flat payload.
#[derive(Debug, Clone)]
pub(super) struct Message {
    pub(super) id: String,
    pub(super) body: serde_json::Map<String, serde_json::Value>,
    /// Written indented rather than compact.
    pub(super) pretty: bool,
}

impl Message {
    /// `payload` as it is, or the tutorial's with fresh ids.
    pub(super) fn new(payload: Option<&Payload>) -> Self {
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        if let Some(Payload(body)) = payload {
            return Self {
                id,
                body: body.clone(),
                pretty: false,
            };
        }
        let mut body = serde_json::Map::new();
        body.insert("documentId".into(), uuid::Uuid::new_v4().to_string().into());
        body.insert("agentId".into(), uuid::Uuid::new_v4().to_string().into());
        body.insert("documentStatus".into(), "ACCEPTED".into());
        Self {
            id,
            body,
            pretty: false,
        }
    }

    pub(super) fn with_extra(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.body.insert(key.into(), value.into());
        self
    }

    pub(super) fn bytes(&self) -> Vec<u8> {
        let body = serde_json::Value::Object(self.body.clone());
        if self.pretty {
            serde_json::to_vec_pretty(&body).unwrap_or_else(|_| unreachable!("a JSON value serialises"))
        } else {
            body.to_string().into_bytes()
        }
    }

    /// The body with one character changed: the last of the first
    /// non-empty string in it (documentId's, in the review payload), so it
    /// stays valid JSON of the same length; a payload without one gets a
    /// field more.
    pub(super) fn tampered_body(&self) -> Vec<u8> {
        fn first_string(value: &mut serde_json::Value) -> Option<&mut String> {
            match value {
                serde_json::Value::String(text) if !text.is_empty() => Some(text),
                serde_json::Value::Object(map) => map.values_mut().find_map(first_string),
                serde_json::Value::Array(items) => items.iter_mut().find_map(first_string),
                _ => None,
            }
        }
        let mut changed = serde_json::Value::Object(self.body.clone());
        let target = match changed.get_mut("documentId") {
            Some(serde_json::Value::String(_)) => changed.get_mut("documentId").and_then(first_string),
            _ => first_string(&mut changed),
        };
        match target {
            Some(text) => {
                let last = if text.ends_with('0') { '1' } else { '0' };
                text.pop();
                text.push(last);
            }
            None => {
                if let serde_json::Value::Object(map) = &mut changed {
                    map.insert("tampered".into(), true.into());
                }
            }
        }
        changed.to_string().into_bytes()
    }

    pub(super) fn signed(&self, signer: &Signer) -> Request {
        self.signed_at(signer, Utc::now().timestamp())
    }

    pub(super) fn signed_at(&self, signer: &Signer, timestamp: i64) -> Request {
        let body = self.bytes();
        let headers = match signer {
            Signer::Standard(secrets) => vec![
                (headers::WEBHOOK_ID, self.id.clone()),
                (headers::WEBHOOK_TIMESTAMP, timestamp.to_string()),
                (headers::WEBHOOK_SIGNATURE, secrets.sign(&self.id, timestamp, &body)),
            ],
            Signer::Asymmetric(key) => vec![
                (headers::WEBHOOK_ID, self.id.clone()),
                (headers::WEBHOOK_TIMESTAMP, timestamp.to_string()),
                (headers::WEBHOOK_SIGNATURE, key.sign(&self.id, timestamp, &body)),
            ],
            // Never reached: `run` refuses public keys before sending.
            Signer::Verifying(_) => Vec::new(),
            Signer::Dialect { dialect, key } => dialect.sign(
                key,
                &Delivery {
                    id: &self.id,
                    event: "document.accepted",
                    timestamp,
                    body: &body,
                },
            ),
        };
        Request { headers, body }
    }
}

/// One request as it goes on the wire.
#[derive(Debug, Clone)]
pub(super) struct Request {
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Vec<u8>,
}

impl Request {
    pub(super) fn header(&self, header: &str) -> String {
        self.headers
            .iter()
            .find(|(name, _)| *name == header)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    }

    pub(super) fn with(mut self, header: &str, new: String) -> Self {
        for (name, value) in &mut self.headers {
            if *name == header {
                *value = new.clone();
            }
        }
        self
    }

    pub(super) fn without(mut self, header: &str) -> Self {
        self.headers.retain(|(name, _)| *name != header);
        self
    }
}

pub(super) struct Sender<'a> {
    pub(super) client: awc::Client,
    pub(super) target: &'a Target,
}

impl Sender<'_> {
    pub(super) async fn send(&self, request: Request) -> Got {
        let mut builder = self
            .client
            .post(&self.target.url)
            .insert_header(("content-type", "application/json"));
        for (name, value) in request.headers {
            builder = builder.insert_header((name, value));
        }
        match builder.send_body(request.body).await {
            Ok(mut response) => {
                // Read (a bounded part of) the body so the connection can be reused.
                let _ = response.body().limit(64 * 1024).await;
                Got::Status(response.status().as_u16())
            }
            Err(SendRequestError::Timeout) => Got::Timeout,
            Err(SendRequestError::Connect(error)) => Got::NoConnection(error.to_string()),
            Err(error) => Got::ConnectionError(error.to_string()),
        }
    }
}
