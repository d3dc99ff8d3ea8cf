//! The `Host` allow-list: a service answers only to the names it is known by.
//!
//! DNS rebinding is how a web page reaches a service on its visitor's
//! machine or network: `evil.example` first resolves to the attacker's
//! server, then to `127.0.0.1`, and the page's scripts, still "same origin",
//! read whatever the local service answers. The one thing the attacker
//! cannot change is the name the browser sends: `Host: evil.example`. A
//! service with [`AllowedHosts`] in its app data refuses such a request
//! with a `421 Misdirected Request` (the JSON envelope) before any route
//! runs; without it (the help desk today) [`guard`] lets everything through.
//!
//! The probes (`/healthz`, `/readyz`) answer any name: an orchestrator
//! probes by the container's address, and they say nothing but "alive".

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, HttpResponse, ResponseError, web};

use crate::http::respond;

/// The loopback names, the default list: the service reached from its own
/// machine (the demo, curl, a browser on the same machine).
pub const LOOPBACK: &str = "localhost,127.0.0.1,[::1]";

/// Routes that answer any `Host`: the probes.
const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// The host names a service answers to, without ports; or any (`*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    any: bool,
    hosts: Vec<String>,
}

impl AllowedHosts {
    /// [`LOOPBACK`]: the names of this machine.
    pub fn loopback() -> Self {
        ["localhost", "127.0.0.1", "[::1]"]
            .into_iter()
            .fold(Self::default(), Self::with)
    }

    /// Whether every name is allowed (`*`): the check is off.
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// This list and `host` (a name or an address, with or without a port).
    #[must_use]
    pub fn with(mut self, host: &str) -> Self {
        let host = normalize(host);
        if !host.is_empty() && !self.hosts.contains(&host) {
            self.hosts.push(host);
        }
        self
    }

    /// Whether a request naming `authority` (a `Host` header's value:
    /// `name`, `name:port`, `[v6]:port`) is answered.
    pub fn allows(&self, authority: &str) -> bool {
        self.any || self.hosts.contains(&normalize(authority))
    }
}

/// `authority` without its port, in lower case, without a trailing dot;
/// an IPv6 address in brackets (`::1` and `[::1]:80` are both `[::1]`).
fn normalize(authority: &str) -> String {
    let authority = authority.trim().to_ascii_lowercase();
    if authority.parse::<Ipv6Addr>().is_ok() {
        return format!("[{authority}]");
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(v6, |(address, _)| address),
        None => authority.split_once(':').map_or(authority.as_str(), |(name, _)| name),
    };
    let host = host.trim_end_matches('.');
    if authority.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Why a list of hosts was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("host {position} is not a host name or address (write name, name:port or [v6], comma-separated, or * for any)")]
pub struct AllowedHostsError {
    position: usize,
}

impl FromStr for AllowedHosts {
    type Err = AllowedHostsError;

    /// A comma-separated list of names or addresses (ports are ignored);
    /// `*` allows any. Blanks and empty items are ignored.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut hosts = Self::default();
        for (index, entry) in raw.split(',').map(str::trim).filter(|h| !h.is_empty()).enumerate() {
            if entry == "*" {
                hosts.any = true;
                continue;
            }
            let fits = entry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
            if !fits {
                return Err(AllowedHostsError { position: index + 1 });
            }
            hosts = hosts.with(entry);
        }
        Ok(hosts)
    }
}

impl fmt::Display for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any {
            return f.write_str("*");
        }
        f.write_str(&self.hosts.join(","))
    }
}

/// A request naming a host the service does not answer to: `421`.
#[derive(Debug, thiserror::Error)]
#[error("this service does not answer to the host this request names (ALLOWED_HOSTS lists the ones it does)")]
pub struct Misdirected;

impl ResponseError for Misdirected {
    fn status_code(&self) -> StatusCode {
        StatusCode::MISDIRECTED_REQUEST
    }

    fn error_response(&self) -> HttpResponse {
        let body = hookline_contract::ErrorBody::new("misdirected_request").with_detail(self.to_string());
        respond(StatusCode::MISDIRECTED_REQUEST, &body, self)
    }
}

/// The host a request names: the request target's authority (HTTP/2, or
/// an absolute-form target), else its `Host` header.
fn authority_of(request: &HttpRequest) -> Option<&str> {
    match request.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => request.headers().get(header::HOST)?.to_str().ok(),
    }
}

/// Middleware (`from_fn(host::guard)`): refuses a request whose host is not
/// in the app's `web::Data<AllowedHosts>`; without that app data, or for
/// the probes, it lets every request through.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if let Some(allowed) = req.app_data::<web::Data<AllowedHosts>>()
        && !PROBES.contains(&req.path())
    {
        let authority = authority_of(req.request());
        if !authority.is_some_and(|authority| allowed.allows(authority)) {
            // Info, not warn: anyone on the network can cause this line.
            tracing::info!(host = ?authority.map(|a| a.chars().take(100).collect::<String>()),
                "request refused: its Host is not in ALLOWED_HOSTS");
            return Err(Misdirected.into());
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_without_ports_case_or_a_trailing_dot() {
        let hosts: AllowedHosts = "Consumer, example.com:443, ::1, 127.0.0.1".parse().unwrap();
        for allowed in [
            "consumer",
            "consumer:3333",
            "EXAMPLE.com",
            "example.com.:8080",
            "[::1]:3333",
            "[::1]",
            "127.0.0.1:1",
        ] {
            assert!(hosts.allows(allowed), "{allowed}");
        }
        for refused in [
            "evil.example",
            "consumer.evil.example",
            "127.0.0.2",
            "[::2]:3333",
            "",
            "example.com@evil",
        ] {
            assert!(!hosts.allows(refused), "{refused}");
        }
        assert_eq!(hosts.to_string(), "consumer,example.com,[::1],127.0.0.1");
    }

    #[test]
    fn a_star_allows_any_and_junk_is_refused() {
        let any: AllowedHosts = "localhost,*".parse().unwrap();
        assert!(any.allows_any());
        assert!(any.allows("evil.example"));
        assert_eq!(
            "good, bad/path".parse::<AllowedHosts>().unwrap_err(),
            AllowedHostsError { position: 2 }
        );
        assert!("".parse::<AllowedHosts>().unwrap().hosts.is_empty());
        assert_eq!(LOOPBACK.parse::<AllowedHosts>().unwrap(), AllowedHosts::loopback());
    }

    #[actix_web::test]
    async fn a_refusal_is_a_421_with_the_json_envelope() {
        let response = Misdirected.error_response();
        assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
        let body = actix_web::body::to_bytes(response.into_body()).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "misdirected_request");
    }
}
