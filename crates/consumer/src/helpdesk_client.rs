//! The consumer's side of the Help Desk API: `POST {HELPDESK_URL}/document`
//! and `GET {HELPDESK_URL}/document/{documentId}`, and the subscription
//! calls (`GET`/`POST /webhooks`, `POST /webhooks/{id}/rotate-secret`).
//!
//! `POST /document` carries the `X-Callback-Url` its caller passes, or none
//! (while our subscription delivers the decisions as events, a callback
//! would only deliver them twice; `subscription::Callback` decides which).
//!
//! Every call has one deadline, `HELPDESK_TIMEOUT`, for all of it: connect,
//! send, the answer's head and its body. A help desk that answers its head
//! and then trickles the body cannot hold a request (or the reconciler)
//! longer than that.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use hookline_contract::{
    CaseView, DocumentAccepted, DocumentRequest, ExternalId, HttpUrl, NewSubscription, Subscription, SubscriptionPage,
    headers,
};
use hookline_kit::config::Secret;
use hookline_kit::request_id::{self, RequestId};
use hookline_kit::tls::ClientConfig;
use hookline_kit::trace::{self, SpanKind, TraceContext, Tracer};
use tracing::debug;

/// Largest answer read from the help desk.
const ANSWER_LIMIT: usize = 64 * 1024;
/// Largest `GET /webhooks` read: up to 100 subscriptions with their stats.
const LISTING_LIMIT: usize = 1024 * 1024;

/// What can go wrong asking the help desk; each keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum HelpdeskError {
    #[error("the help desk is unreachable")]
    Unreachable(#[source] awc::error::SendRequestError),
    #[error("the help desk gave no whole answer within {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    #[error("the help desk refused the request with HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("the help desk's answer could not be read")]
    Unreadable(#[source] awc::error::PayloadError),
    #[error("the help desk answered something unexpected")]
    BadAnswer(#[source] serde_json::Error),
    #[error("the help desk answered an unusable {field}")]
    BadId {
        field: &'static str,
        #[source]
        reason: hookline_contract::InvalidInput,
    },
}

impl HelpdeskError {
    /// Whether the help desk may not have had its say: no answer (refused
    /// connection, timeout, cut off), or one that says "not now" (5xx, 429,
    /// 408). Such a request may have been taken, or not; sent again with the
    /// same `id`, the help desk answers with the same case, so it is safe to
    /// retry. Anything else is the help desk's word.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable(_) | Self::TimedOut(_) | Self::Unreadable(_) => true,
            Self::Refused { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            Self::BadAnswer(_) | Self::BadId { .. } => false,
        }
    }
}

/// Talks to one help desk. Holds an `awc::Client`, so there is one per
/// HTTP worker thread.
pub struct HelpdeskClient {
    client: awc::Client,
    document_endpoint: String,
    webhooks_endpoint: String,
    timeout: Duration,
    /// `Authorization: Bearer <HELPDESK_API_KEY>`, when there is a key.
    authorization: Option<HeaderValue>,
    /// Records the client span of `POST /document`.
    tracer: Tracer,
}

impl HelpdeskClient {
    /// `tls` is used when `helpdesk_url` is `https://`
    /// ([`hookline_kit::tls::client_config`], with `HELPDESK_CA_FILE`).
    pub fn new(helpdesk_url: &url::Url, timeout: Duration, tls: Arc<ClientConfig>) -> Self {
        let client = awc::Client::builder()
            .connector(awc::Connector::new().rustls_0_23(tls))
            .timeout(timeout)
            .disable_redirects()
            .add_default_header(("user-agent", concat!("hookline-consumer/", env!("CARGO_PKG_VERSION"))))
            .finish();
        let base = helpdesk_url.as_str().trim_end_matches('/');
        Self {
            client,
            document_endpoint: format!("{base}/document"),
            webhooks_endpoint: format!("{base}/webhooks"),
            timeout,
            authorization: None,
            tracer: Tracer::off(),
        }
    }

    /// Sends `key` with every call (a help desk with `HELPDESK_API_KEYS`
    /// answers 401 without one).
    pub fn with_api_key(mut self, key: Option<&Secret<String>>) -> Self {
        self.authorization = key.and_then(|key| {
            let mut value = HeaderValue::try_from(format!("Bearer {}", key.expose())).ok()?;
            value.set_sensitive(true);
            Some(value)
        });
        self
    }

    /// Records a client span for each `POST /document` made in a trace.
    pub fn with_tracer(mut self, tracer: Tracer) -> Self {
        self.tracer = tracer;
        self
    }

    /// `HELPDESK_TIMEOUT`: the deadline of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Asks for a review of `document_url`; `reference` comes back in the
    /// webhook's `id`. `request_id` (the id of the request being served) goes
    /// as `x-request-id`, so the help desk logs the same id. The decision is
    /// delivered to `callback` (`X-Callback-Url`), or, with `None`, to our
    /// subscription only. Within a trace (`parent`, the request's server
    /// span) the call is a client span of its own, named in the
    /// `traceparent` it sends.
    pub async fn request_review(
        &self,
        document_url: &HttpUrl,
        reference: &str,
        request_id: &RequestId,
        callback: Option<&HttpUrl>,
        parent: Option<TraceContext>,
    ) -> Result<DocumentAccepted, HelpdeskError> {
        let mut span = match parent {
            Some(parent) => self.tracer.start("POST /document", SpanKind::Client, Some(parent)),
            None => trace::Span::inert(),
        };
        span.set("http.request.method", "POST");
        span.set("url.full", self.document_endpoint.clone());
        let answer = self
            .send_review(document_url, reference, request_id, callback, &span)
            .await;
        match &answer {
            Ok(_) => span.succeed(),
            Err(HelpdeskError::Refused { status, .. }) => {
                span.set("http.response.status_code", *status);
                span.fail(format!("HTTP {status}"));
            }
            Err(e) => span.fail(e.to_string()),
        }
        answer
    }

    async fn send_review(
        &self,
        document_url: &HttpUrl,
        reference: &str,
        request_id: &RequestId,
        callback: Option<&HttpUrl>,
        span: &trace::Span,
    ) -> Result<DocumentAccepted, HelpdeskError> {
        let request = DocumentRequest {
            document_url: document_url.to_string(),
            id: Some(reference.to_owned()),
        };
        let mut call = self
            .request(Method::POST, &self.document_endpoint)
            .insert_header((request_id::HEADER, request_id.as_str()));
        match callback {
            Some(callback) => call = call.insert_header((headers::CALLBACK_URL, callback.as_str())),
            None => debug!(reference, "subscribed: the review is requested without X-Callback-Url"),
        }
        if let Some(traceparent) = span.traceparent() {
            call = call.insert_header((trace::TRACEPARENT, traceparent));
        }
        let (status, body) = self.answer(call.send_json(&request), ANSWER_LIMIT).await?;
        if !(200..300).contains(&status) {
            return Err(refused(status, &body));
        }
        let accepted: DocumentAccepted = serde_json::from_slice(&body).map_err(HelpdeskError::BadAnswer)?;
        for (field, value) in [("agentId", &accepted.agent_id), ("documentId", &accepted.document_id)] {
            ExternalId::parse(value).map_err(|reason| HelpdeskError::BadId { field, reason })?;
        }
        Ok(accepted)
    }

    /// The help desk's view of a case (`GET /document/{documentId}`), or
    /// `None` if it does not know it.
    pub async fn case(&self, document_id: &str) -> Result<Option<CaseView>, HelpdeskError> {
        let (status, body) = self
            .answer(
                self.request(Method::GET, &format!("{}/{document_id}", self.document_endpoint))
                    .send(),
                ANSWER_LIMIT,
            )
            .await?;
        match status {
            200 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(HelpdeskError::BadAnswer),
            404 => Ok(None),
            status => Err(refused(status, &body)),
        }
    }

    /// Our subscriptions (`GET /webhooks`), their secrets masked.
    pub async fn subscriptions(&self) -> Result<SubscriptionPage, HelpdeskError> {
        let (status, body) = self
            .answer(self.request(Method::GET, &self.webhooks_endpoint).send(), LISTING_LIMIT)
            .await?;
        if status != 200 {
            return Err(refused(status, &body));
        }
        serde_json::from_slice(&body).map_err(HelpdeskError::BadAnswer)
    }

    /// Makes a subscription (`POST /webhooks`); the answer holds its secret
    /// in full, the only time besides a rotation.
    pub async fn subscribe(&self, new: &NewSubscription) -> Result<Subscription, HelpdeskError> {
        let (status, body) = self
            .answer(
                self.request(Method::POST, &self.webhooks_endpoint).send_json(new),
                ANSWER_LIMIT,
            )
            .await?;
        if !(200..300).contains(&status) {
            return Err(refused(status, &body));
        }
        serde_json::from_slice(&body).map_err(HelpdeskError::BadAnswer)
    }

    /// Gives subscription `id` a new secret (`POST /webhooks/{id}/rotate-secret`)
    /// and returns it in full; the old one keeps signing for a while.
    pub async fn rotate_secret(&self, id: &str) -> Result<Subscription, HelpdeskError> {
        // It goes into the path: only an id of the safe alphabet.
        let id = ExternalId::parse(id).map_err(|reason| HelpdeskError::BadId { field: "id", reason })?;
        let url = format!("{}/{}/rotate-secret", self.webhooks_endpoint, id.as_str());
        let (status, body) = self
            .answer(self.request(Method::POST, &url).send(), ANSWER_LIMIT)
            .await?;
        if status != 200 {
            return Err(refused(status, &body));
        }
        serde_json::from_slice(&body).map_err(HelpdeskError::BadAnswer)
    }
}

impl HelpdeskClient {
    fn request(&self, method: Method, url: &str) -> awc::ClientRequest {
        let request = self.client.request(method, url);
        match &self.authorization {
            Some(value) => request.insert_header((header::AUTHORIZATION, value.clone())),
            None => request,
        }
    }

    /// Sends a request and reads the help desk's answer (status and at most
    /// `limit` bytes of body), all of it within `HELPDESK_TIMEOUT`.
    async fn answer(
        &self,
        request: awc::SendClientRequest,
        limit: usize,
    ) -> Result<(u16, actix_web::web::Bytes), HelpdeskError> {
        let exchange = async {
            let mut response = request.await.map_err(|e| match e {
                awc::error::SendRequestError::Timeout => HelpdeskError::TimedOut(self.timeout),
                other => HelpdeskError::Unreachable(other),
            })?;
            let body = response.body().limit(limit).await.map_err(HelpdeskError::Unreadable)?;
            Ok((response.status().as_u16(), body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(HelpdeskError::TimedOut(self.timeout)))
    }
}

fn refused(status: u16, body: &[u8]) -> HelpdeskError {
    HelpdeskError::Refused {
        status,
        body: String::from_utf8_lossy(body).chars().take(500).collect(),
    }
}
