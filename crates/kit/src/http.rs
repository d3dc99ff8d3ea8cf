//! The JSON error envelope ([`ErrorBody`]) for every 4xx/5xx either service
//! sends, including the ones actix-web produces itself (unknown route, wrong
//! method, malformed JSON, oversized body, bad path segment).

use actix_web::dev::ServiceResponse;
use actix_web::error::{InternalError, JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpRequest, HttpResponse, web};
use hookline_contract::ErrorBody;

/// Largest JSON body either service reads; past it the answer is 413.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// A response with `status` and `body` as JSON.
pub fn error_response(status: StatusCode, body: &ErrorBody) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

/// `web::JsonConfig` whose errors say what is wrong with the body, as JSON.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default().limit(limit).error_handler(|err, _req| {
        let (status, body) = match &err {
            JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorBody::new("payload_too_large").with_detail(err.to_string()),
            ),
            JsonPayloadError::ContentType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorBody::new("unsupported_media_type")
                    .with_detail("the body must be JSON with Content-Type: application/json"),
            ),
            JsonPayloadError::Deserialize(e) if e.is_data() => (
                StatusCode::BAD_REQUEST,
                ErrorBody::new("invalid_body").with_detail(e.to_string()),
            ),
            JsonPayloadError::Deserialize(e) => (
                StatusCode::BAD_REQUEST,
                ErrorBody::new("invalid_json").with_detail(e.to_string()),
            ),
            other => (
                StatusCode::BAD_REQUEST,
                ErrorBody::new("invalid_body").with_detail(other.to_string()),
            ),
        };
        let response = error_response(status, &body);
        InternalError::from_response(err, response).into()
    })
}

/// `web::PathConfig` answering a malformed path segment with a JSON 400.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req: &HttpRequest| {
        let response = error_response(
            StatusCode::BAD_REQUEST,
            &ErrorBody::new("invalid_path").with_detail(err.to_string()),
        );
        InternalError::from_response(err, response).into()
    })
}

/// `web::QueryConfig` answering a malformed query string with a JSON 400.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req: &HttpRequest| {
        let response = error_response(
            StatusCode::BAD_REQUEST,
            &ErrorBody::new("invalid_query").with_detail(err.to_string()),
        );
        InternalError::from_response(err, response).into()
    })
}

/// Registers the extractor configs above on an app or scope, and the body
/// limit for raw bodies too (`web::Bytes`, which [`crate::json::JsonBody`]
/// reads: without it, actix's own 256 KiB would apply).
pub fn configure_extractors(cfg: &mut web::ServiceConfig, body_limit: usize) {
    cfg.app_data(web::PayloadConfig::new(body_limit))
        .app_data(json_config(body_limit))
        .app_data(path_config())
        .app_data(query_config());
}

/// The default service: an unknown route is a JSON 404.
pub async fn not_found() -> HttpResponse {
    error_response(
        StatusCode::NOT_FOUND,
        &ErrorBody::new("not_found").with_detail("no such route"),
    )
}

/// Middleware that gives any error response without a JSON body (actix's own
/// 404/405/413 and friends) the [`ErrorBody`] envelope, keeping its status
/// and headers such as `Allow`.
pub fn json_errors<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(jsonify)
}

fn jsonify<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_client_error() => "bad_request",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "internal_error",
    };
    let mut body = ErrorBody::new(code);
    if let Some(reason) = status.canonical_reason() {
        body = body.with_detail(reason);
    }
    let (req, old) = res.into_parts();
    let mut new = error_response(status, &body);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().append(name.clone(), value.clone());
        }
    }
    new.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}

/// The errors a route can answer with, shared by both services. Each maps to
/// one status and the [`ErrorBody`] envelope; the causes of 5xx answers are
/// logged with their whole source chain and never shown to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; `field` names the part at fault.
    #[error("{code}: {detail}")]
    BadRequest {
        code: &'static str,
        field: Option<&'static str>,
        detail: String,
    },
    /// A body that is not the JSON the route expects; `field` is the path
    /// of the part at fault, where serde knows it.
    #[error("{code}: {detail}")]
    BadBody {
        code: &'static str,
        field: Option<String>,
        detail: String,
    },
    #[error("the body must be JSON with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// Well-formed, but cannot be processed as it stands.
    #[error("unprocessable: {0}")]
    Unprocessable(String),
    /// A dependency we call (the help desk) failed or refused us.
    #[error("bad gateway: {detail}")]
    BadGateway { detail: String },
    /// Our own storage is unreachable: retrying later may succeed.
    #[error("{what} is unavailable")]
    Unavailable {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A request field that failed validation.
    pub fn invalid(field: &'static str, reason: impl std::fmt::Display) -> Self {
        Self::BadRequest {
            code: "invalid_field",
            field: Some(field),
            detail: format!("{field} {reason}"),
        }
    }

    pub fn bad_body(code: &'static str, field: Option<String>, detail: impl Into<String>) -> Self {
        Self::BadBody {
            code,
            field,
            detail: detail.into(),
        }
    }

    pub fn unavailable(what: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable {
            what,
            source: Box::new(source),
        }
    }

    pub fn internal(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(source))
    }

    /// The envelope this error is answered with.
    pub fn body(&self) -> ErrorBody {
        match self {
            Self::BadRequest { code, field, detail } => {
                let body = ErrorBody::new(*code).with_detail(detail.as_str());
                match field {
                    Some(field) => body.with_field(*field),
                    None => body,
                }
            }
            Self::BadBody { code, field, detail } => {
                let body = ErrorBody::new(*code).with_detail(detail.as_str());
                match field {
                    Some(field) => body.with_field(field.as_str()),
                    None => body,
                }
            }
            Self::UnsupportedMediaType => ErrorBody::new("unsupported_media_type")
                .with_detail("the body must be JSON with Content-Type: application/json"),
            Self::NotFound(what) => ErrorBody::new("not_found").with_detail(*what),
            Self::Unauthorized(why) => ErrorBody::new("unauthorized").with_detail(why.as_str()),
            Self::Conflict(why) => ErrorBody::new("conflict").with_detail(why.as_str()),
            Self::Unprocessable(why) => ErrorBody::new("unprocessable").with_detail(why.as_str()),
            Self::BadGateway { detail } => ErrorBody::new("bad_gateway").with_detail(detail.as_str()),
            Self::Unavailable { what, .. } => unavailable_body(what),
            Self::Internal(_) => internal_body(),
        }
    }
}

/// The envelope of a 503: `what` cannot be reached now; retry.
pub fn unavailable_body(what: &str) -> ErrorBody {
    ErrorBody::new("unavailable").with_detail(format!("{what} is unavailable, try again later"))
}

/// The envelope of a 500: nothing about the cause (it is logged, not shown).
pub fn internal_body() -> ErrorBody {
    ErrorBody::new("internal_error")
}

/// The answer to a failed request: `status` with `body`. A 5xx logs `cause`
/// with its whole source chain; a 503 says when to retry. Every service's
/// error type answers through this, so they all behave alike.
pub fn respond(status: StatusCode, body: &ErrorBody, cause: &dyn std::error::Error) -> HttpResponse {
    if status.is_server_error() {
        tracing::error!(error = %source_chain(cause), "request failed");
    }
    let mut response = error_response(status, body);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// `error` and its causes, outermost first, for a log line.
pub fn source_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } | Self::BadBody { .. } => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        respond(self.status_code(), &self.body(), self)
    }
}
