//! Endpoints: where webhooks go, as the limits see it.
//!
//! An endpoint is the scheme, host and port of a callback URL
//! (`https://hooks.example.com:443`): one receiver, whatever the path. Every
//! limit that protects receivers from us, and the other receivers from a
//! bad one, is kept per endpoint in Redis (see the [store](crate::store)):
//! deliveries in flight (`ENDPOINT_CONCURRENCY`), the rate (`ENDPOINT_RATE`
//! or an override set through `PUT /endpoints/{endpoint}`), a pause asked for
//! with `Retry-After`, and the circuit breaker.

use std::fmt;
use std::str::FromStr;

use url::Url;

/// The normalised `scheme://host:port` of a callback URL: lower-case scheme
/// and host (the `url` crate's normal form, IPv6 in brackets), and the port
/// always written, so `http://A.example` and `http://a.example:80/x` are one
/// endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint(String);

/// Why a string is not an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EndpointError(String);

impl Endpoint {
    /// The endpoint a callback URL delivers to.
    pub fn of(url: &Url) -> Result<Self, EndpointError> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(EndpointError(format!("{scheme}: only http and https endpoints exist")));
        }
        let host = url
            .host_str()
            .ok_or_else(|| EndpointError(format!("{url} has no host")))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| EndpointError(format!("{url} has no port")))?;
        Ok(Self(format!("{scheme}://{host}:{port}")))
    }

    /// The endpoint of a callback URL given as text.
    pub fn of_str(url: &str) -> Result<Self, EndpointError> {
        let parsed = Url::parse(url).map_err(|e| EndpointError(format!("{url:?} is not a URL: {e}")))?;
        Self::of(&parsed)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses an endpoint as `GET /endpoints` shows it (`http://host:port`); a
/// URL with a path, query or credentials, or without an explicit port, is
/// refused rather than silently cut down: an operator setting a limit must
/// name exactly the endpoint it applies to.
impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let not_one = |reason: String| EndpointError(format!("{raw:?} is not an endpoint: {reason}"));
        let url = Url::parse(raw).map_err(|e| not_one(e.to_string()))?;
        let endpoint = Self::of(&url).map_err(|e| not_one(e.0))?;
        if endpoint.0 != raw {
            return Err(EndpointError(format!(
                "{raw:?} is not an endpoint: write it as scheme://host:port, here {endpoint}"
            )));
        }
        Ok(endpoint)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_urls_reduce_to_scheme_host_and_port() {
        for (url, endpoint) in [
            ("http://127.0.0.1:3333/document/update", "http://127.0.0.1:3333"),
            ("https://Hooks.Example.COM/a?b=c", "https://hooks.example.com:443"),
            ("http://example.com:80/x", "http://example.com:80"),
            ("http://example.com/x", "http://example.com:80"),
            ("http://user:pw@example.com:8080/", "http://example.com:8080"),
            ("http://[::1]:9000/hook", "http://[::1]:9000"),
        ] {
            assert_eq!(Endpoint::of_str(url).unwrap().as_str(), endpoint, "{url}");
        }
        assert!(Endpoint::of_str("ftp://example.com/x").is_err());
        assert!(Endpoint::of_str("not a url").is_err());
    }

    #[test]
    fn only_the_exact_normal_form_parses_as_an_endpoint() {
        assert_eq!(
            "http://127.0.0.1:3333".parse::<Endpoint>().unwrap().as_str(),
            "http://127.0.0.1:3333"
        );
        for raw in [
            "http://127.0.0.1:3333/",
            "http://127.0.0.1:3333/document/update",
            "http://example.com",
            "HTTP://example.com:80",
            "http://u:p@example.com:80",
            "example.com:80",
        ] {
            let error = raw.parse::<Endpoint>().unwrap_err().to_string();
            assert!(error.contains("not an endpoint"), "{raw}: {error}");
        }
    }
}
