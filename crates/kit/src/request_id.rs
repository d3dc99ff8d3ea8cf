//! Request ids: one id per request, in every log line of the request, in the
//! response, and passed on to the services the request calls.
//!
//! An incoming `x-request-id` is kept when it is 1–128 visible ASCII
//! characters, so an id chosen upstream (a load balancer, or the consumer
//! calling the help desk) follows the request across services; anything
//! else (absent, empty, too long, spaces, control or non-ASCII bytes) is
//! replaced by a fresh UUID. The id is then
//!
//! * stored in the request's extensions by [`propagate`] (middleware, the
//!   outermost one) and returned in the `x-request-id` response header, on
//!   errors too;
//! * recorded as `request_id` on the request's root span by [`RequestSpan`],
//!   the `tracing_actix_web::RootSpanBuilder` both services give to
//!   `TracingLogger::<RequestSpan>`, so one grep finds every line of the
//!   request;
//! * available to handlers as the [`RequestId`] extractor, to forward on
//!   outgoing calls.
//!
//! The root span also declares an empty `document_id`, which handlers fill
//! in (`Span::current().record("document_id", …)`) once they know which
//! review the request is about, so a grep for a document id finds the
//! requests that touched it as well as the deliveries.
//!
//! ```ignore
//! App::new()
//!     .wrap(json_errors())
//!     .wrap(TracingLogger::<RequestSpan>::new())
//!     .wrap(from_fn(request_id::propagate))
//! ```

use std::fmt;
use std::future::{Ready, ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest};
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};

/// The header that carries the id, in requests and responses.
pub const HEADER: &str = "x-request-id";
/// The longest id kept from a request.
pub const MAX_LEN: usize = 128;

/// The id of one request; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh id (a random UUID).
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// `raw` as an id, if it is 1–[`MAX_LEN`] visible ASCII characters.
    pub fn parse(raw: &str) -> Option<Self> {
        let valid = (1..=MAX_LEN).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
        valid.then(|| Self(raw.to_owned()))
    }

    /// The id an incoming header value gives: itself if valid, else a fresh one.
    pub fn from_header(value: Option<&HeaderValue>) -> Self {
        value
            .and_then(|v| v.to_str().ok())
            .and_then(Self::parse)
            .unwrap_or_else(Self::generate)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The request's id: the one [`propagate`] stored, or (without that
    /// middleware) one resolved from the header now and stored for the
    /// rest of the request.
    pub fn of(request: &HttpRequest) -> Self {
        if let Some(id) = request.extensions().get::<Self>() {
            return id.clone();
        }
        let id = Self::from_header(request.headers().get(HEADER));
        request.extensions_mut().insert(id.clone());
        id
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromRequest for RequestId {
    type Error = std::convert::Infallible;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self::of(req)))
    }
}

/// Middleware (`from_fn(propagate)`): resolves the request's id, stores it
/// for the span and the handlers, and returns it in the `x-request-id`
/// response header. Register it last (outermost).
pub async fn propagate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = RequestId::of(req.request());
    // Always valid: `RequestId` only holds visible ASCII.
    let value = HeaderValue::from_str(id.as_str()).ok();
    let name = HeaderName::from_static(HEADER);
    match next.call(req).await {
        Ok(mut response) => {
            if let Some(value) = value {
                response.headers_mut().insert(name, value);
            }
            Ok(response)
        }
        Err(error) => {
            // The server would answer the error as it stands; answer it here, with the header.
            let mut answer = error.error_response();
            if let Some(value) = value {
                answer.headers_mut().insert(name, value);
            }
            Err(InternalError::from_response(error, answer).into())
        }
    }
}

/// The root span of every request (`TracingLogger::<RequestSpan>`): method,
/// route pattern, target, status and errors as tracing-actix-web records
/// them, plus `request_id` and an empty `document_id` for handlers to fill.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let id = RequestId::of(request.request());
        let route = request.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %route,
            http.target = %request.uri().path_and_query().map_or("", |p| p.as_str()),
            http.status_code = Empty,
            otel.status_code = Empty,
            request_id = %id,
            document_id = Empty,
            exception.message = Empty,
            exception.details = Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_are_kept() {
        for raw in [
            "test-123",
            "a",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            &"x".repeat(128),
        ] {
            assert_eq!(RequestId::parse(raw).map(|id| id.0), Some(raw.to_owned()));
        }
    }

    #[test]
    fn malformed_ids_are_refused() {
        for raw in ["", "has space", "tab\there", "caf\u{e9}", "new\nline", &"x".repeat(129)] {
            assert_eq!(RequestId::parse(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn a_missing_or_malformed_header_gets_a_fresh_uuid() {
        let fresh = RequestId::from_header(None);
        assert!(uuid::Uuid::parse_str(fresh.as_str()).is_ok());
        let bad = HeaderValue::from_static("two words");
        let replaced = RequestId::from_header(Some(&bad));
        assert!(uuid::Uuid::parse_str(replaced.as_str()).is_ok());
        assert_ne!(fresh, replaced);
        let good = HeaderValue::from_static("test-123");
        assert_eq!(RequestId::from_header(Some(&good)).as_str(), "test-123");
    }
}
