//! The settings both services share to hold off a hostile client
//! ([`GuardSettings`]: `REQUEST_BODY_TIMEOUT`, `API_RATE`, `METRICS_TOKEN`,
//! `SEND_TIMEOUT`), what they become in the app ([`Guards::configure`],
//! [`Guards::on_connect`]), and the `/metrics` door ([`Scrape`]).
//!
//! `/metrics` tells whoever reads it the routes in use, the queue, and on
//! the help desk the callback hosts of every tenant; with `METRICS_TOKEN`
//! set, a scrape needs `Authorization: Bearer <token>` (Prometheus's
//! `authorization: {credentials: ...}`), and its answer is otherwise a
//! `401`. Unset, `/metrics` stays open, as the demo has it.

use std::any::Any;
use std::future::{Ready, ready};
use std::time::Duration;

use actix_web::dev::{Extensions, Payload};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use hookline_contract::ErrorBody;

use crate::auth::{ApiKeys, bearer};
use crate::config::{parse_duration, secret};
use crate::deadline::{BodyDeadline, DEFAULT_BODY_TIMEOUT};
use crate::http::{error_response, source_chain};
use crate::rate::{DEFAULT_API_RATE, KeyRates};

/// The settings of [this module](self), flattened into each service's.
#[derive(Debug, Clone, clap::Args)]
pub struct GuardSettings {
    /// The longest a request's body may take to arrive, counted from its
    /// headers (actix already cuts slow headers after 5 s). Past it the
    /// answer is 408 and the connection is closed.
    #[arg(long, env = "REQUEST_BODY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_body_timeout: Duration,

    /// Requests a second each API key may make, with a burst of two
    /// seconds' worth; past it the answer is 429 with Retry-After. 0: no
    /// limit. An open service (no keys) is not limited.
    #[arg(long, env = "API_RATE", default_value_t = DEFAULT_API_RATE, value_parser = parse_api_rate)]
    pub api_rate: f64,

    /// The bearer token(s) `GET /metrics` needs (`Authorization: Bearer
    /// <token>`), comma-separated during a rotation, each 16 or more of
    /// letters, digits and `-._~+/=`. Unset: `/metrics` is open.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true, value_parser = secret::<ApiKeys>())]
    pub metrics_token: Option<ApiKeys>,

    /// How long what we sent may wait for the client to take it (a client
    /// that stopped reading, or vanished) before the connection is aborted
    /// (the socket's TCP_USER_TIMEOUT). Ends, among others, an event stream
    /// whose client does not read.
    #[arg(long, env = "SEND_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub send_timeout: Duration,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self {
            request_body_timeout: DEFAULT_BODY_TIMEOUT,
            api_rate: DEFAULT_API_RATE,
            metrics_token: None,
            send_timeout: DEFAULT_SEND_TIMEOUT,
        }
    }
}

/// `SEND_TIMEOUT`'s default: far longer than any working client leaves
/// an answer unread, short enough that a stalled one lets go of its
/// connection (and its event stream) soon.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// `API_RATE`: a number of requests a second, `0` for no limit.
fn parse_api_rate(raw: &str) -> Result<f64, crate::config::InvalidValue> {
    match raw.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err(crate::config::InvalidValue(format!(
            "{raw:?} is not a number of requests a second (0 for no limit)"
        ))),
    }
}

/// [`GuardSettings`] made into app data, once per process (the rate
/// buckets are shared by every worker).
#[derive(Debug, Clone)]
pub struct Guards {
    deadline: BodyDeadline,
    send_timeout: Duration,
    rates: Option<web::Data<KeyRates>>,
    metrics_token: web::Data<MetricsToken>,
}

/// The tokens `/metrics` accepts (app data; none: open).
#[derive(Debug, Clone, Default)]
pub struct MetricsToken(Option<ApiKeys>);

impl GuardSettings {
    pub fn build(&self) -> Guards {
        Guards {
            deadline: BodyDeadline(self.request_body_timeout),
            send_timeout: self.send_timeout,
            rates: KeyRates::new(self.api_rate).map(web::Data::new),
            metrics_token: web::Data::new(MetricsToken(
                self.metrics_token.clone().filter(|tokens| !tokens.is_open()),
            )),
        }
    }
}

impl Guards {
    /// Registers the guards as app data (on the `App`, so the body
    /// deadline's middleware sees them too).
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.deadline).app_data(self.metrics_token.clone());
        if let Some(rates) = &self.rates {
            cfg.app_data(rates.clone());
        }
    }

    /// The server's `on_connect`: bounds how long what we send may stay
    /// unread ([`GuardSettings::send_timeout`]). A response body (an event
    /// stream) that the client does not read fills the socket's buffers;
    /// then actix waits on the socket and polls nothing else of that
    /// connection, so no timer of ours could end it. The kernel's
    /// `TCP_USER_TIMEOUT` (which Linux applies to a zero window too) aborts
    /// it instead, and the stream is dropped with the connection.
    pub fn on_connect(&self) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
        let timeout = self.send_timeout;
        move |io, _| {
            if let Some(stream) = io.downcast_ref::<actix_web::rt::net::TcpStream>()
                && let Err(e) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout))
            {
                tracing::debug!(error = %e, "cannot set TCP_USER_TIMEOUT on a connection");
            }
        }
    }
}

/// A scrape that may read `/metrics`: take it as the handler's argument.
#[derive(Debug, Clone, Copy)]
pub struct Scrape;

/// Why a scrape is refused: `401`, `WWW-Authenticate: Bearer`.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeRefused {
    #[error("/metrics needs the METRICS_TOKEN: send Authorization: Bearer <token>")]
    Missing,
    #[error("the token is not accepted")]
    Rejected,
}

impl ResponseError for ScrapeRefused {
    fn status_code(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    fn error_response(&self) -> HttpResponse {
        let body = ErrorBody::new("unauthorized").with_detail(self.to_string());
        let mut response = error_response(StatusCode::UNAUTHORIZED, &body);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

impl Scrape {
    fn check(request: &HttpRequest) -> Result<Self, ScrapeRefused> {
        let Some(tokens) = request.app_data::<web::Data<MetricsToken>>().and_then(|t| t.0.as_ref()) else {
            return Ok(Self);
        };
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(bearer)
            .ok_or(ScrapeRefused::Missing)?;
        if tokens.accepts(presented) {
            Ok(Self)
        } else {
            let refused = ScrapeRefused::Rejected;
            tracing::info!(reason = %source_chain(&refused), "scrape refused");
            Err(refused)
        }
    }
}

impl FromRequest for Scrape {
    type Error = ScrapeRefused;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::check(request))
    }
}
