//! Whether a webhook or event is believed: its Standard Webhooks signature,
//! checked over the raw bytes before the body is even parsed, so nothing
//! forged reaches the database; and its `webhook-id`, the key of its receipt.

use actix_web::http::header::HeaderMap;
use chrono::Utc;
use hookline_contract::ExternalId;
use hookline_contract::headers::{WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};
use hookline_contract::signature::{SecretSet, VerifyError};
use hookline_kit::http::ApiError;

/// Which webhooks `POST /document/update` believes.
#[derive(Debug, Clone)]
pub enum WebhookPolicy {
    /// Only those signed with one of these secrets (Standard Webhooks).
    Verify(SecretSet),
    /// Any (for the tutorial's help desk, which does not sign).
    AllowUnsigned,
}

impl WebhookPolicy {
    /// Why the webhook is not believed, if it is not.
    pub(crate) fn check(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
        match self {
            Self::Verify(secrets) => verify(secrets, headers, body),
            Self::AllowUnsigned => Ok(()),
        }
    }
}

/// Why a Standard Webhooks message is not signed with one of `secrets`, if
/// it is not (the reason is safe to answer with).
pub(crate) fn verify(secrets: &SecretSet, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .ok_or(VerifyError::MissingHeader(name))
    };
    let id = header(WEBHOOK_ID)?;
    let timestamp = header(WEBHOOK_TIMESTAMP)?;
    let signature = header(WEBHOOK_SIGNATURE)?;
    secrets.verify(id, timestamp, signature, body, Utc::now().timestamp())
}

/// The `webhook-id` header, checked (absent only on unsigned webhooks), and
/// put on the current span.
pub(crate) fn webhook_id(headers: &HeaderMap) -> Result<Option<ExternalId>, ApiError> {
    let Some(raw) = headers.get(WEBHOOK_ID) else {
        return Ok(None);
    };
    let webhook_id = raw
        .to_str()
        .ok()
        .and_then(|raw| ExternalId::parse(raw).ok())
        .ok_or_else(|| ApiError::invalid("webhook-id", "must be 1-128 letters, digits or - _ . :"))?;
    tracing::Span::current().record("webhook_id", webhook_id.as_str());
    Ok(Some(webhook_id))
}
