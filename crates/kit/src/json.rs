//! Strict JSON bodies: [`JsonBody`] accepts only a JSON object with
//! `Content-Type: application/json` (or `+json`), within the body limit, and
//! says which field is wrong when it is not what the route expects
//! (`"field": "documentUrl"`), using the path `serde_path_to_error` tracks.
//!
//! serde's derive also accepts a JSON array for a struct (fields by
//! position); a request body is an object, so anything else is refused
//! before deserialising.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use crate::http::ApiError;

/// A request body parsed strictly from JSON; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| mime.trim().to_ascii_lowercase())
            .is_some_and(|mime| {
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::UnsupportedMediaType.into());
            }
            let bytes = body.await?;
            Ok(Self(parse(&bytes)?))
        })
    }
}

/// Parses `bytes` as a JSON object into `T`, with errors that name the field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        let code = if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
            "invalid_body"
        } else {
            "invalid_json"
        };
        return Err(ApiError::bad_body(code, None, "the body must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let inner = e.inner();
        let code = if inner.is_data() {
            "invalid_body"
        } else {
            "invalid_json"
        };
        let path = e.path().to_string();
        let field = if path == "." {
            missing_field(&inner.to_string())
        } else {
            Some(path)
        };
        ApiError::bad_body(code, field, inner.to_string())
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::bad_body("invalid_json", None, e.to_string()))?;
    Ok(value)
}

/// serde reports a missing field at the parent's path; name it anyway.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        document_url: String,
        id: Option<String>,
    }

    fn refusal(json: &str) -> (String, Option<String>) {
        match parse::<Body>(json.as_bytes()) {
            Err(ApiError::BadBody { code, field, .. }) => (code.to_owned(), field),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field_at_fault() {
        assert_eq!(
            refusal(r#"{"documentUrl": 42}"#),
            ("invalid_body".into(), Some("documentUrl".into()))
        );
        assert_eq!(
            refusal(r#"{"id": "x"}"#),
            ("invalid_body".into(), Some("documentUrl".into()))
        );
        assert_eq!(
            refusal(r#"{"documentUrl": "u", "id": []}"#),
            ("invalid_body".into(), Some("id".into()))
        );
    }

    #[test]
    fn only_objects_are_bodies() {
        assert_eq!(refusal(r#"["https://example.com"]"#).0, "invalid_body");
        assert_eq!(refusal("42").0, "invalid_body");
        assert_eq!(refusal("").0, "invalid_json");
        assert_eq!(refusal("{\"documentUrl\": ").0, "invalid_json");
        assert_eq!(refusal(r#"{"documentUrl": "u"} trailing"#).0, "invalid_json");
    }

    #[test]
    fn a_valid_object_parses() {
        let body: Body = parse(br#" {"documentUrl": "u", "unknown": true}"#).unwrap();
        assert_eq!(body.document_url, "u");
    }
}
