//! API keys: who may call a service's private routes.
//!
//! [`ApiKeys`] is the set of keys a service accepts, from one setting
//! (`HELPDESK_API_KEYS=key1,key2`). Several at once is how a key is rotated
//! without downtime: add the new key, move the clients to it, drop the old
//! one. No keys means open, as the tutorial's help desk is.
//!
//! A key may name its **tenant**: `acme:key1,acme:key2,globex:key3`. What a
//! tenant owns (the help desk's cases, dead letters, request ids, chaos
//! tallies, subscriptions) is seen and changed only with one of its keys:
//! another tenant's is answered as if it did not exist. (A key itself
//! cannot contain `:`, so the first one always ends the name.)
//!
//! A key without a name is the **operator's**: it acts for the tenant
//! [`DEFAULT_TENANT`] (what it creates belongs there), sees every tenant's
//! objects ([`Authorized::sees`]), and alone may change what every tenant
//! shares, such as an endpoint's limits ([`Authorized::require_operator`],
//! a `403` for a tenant's key). The name `default` cannot be given to a key:
//! the default tenant is the operator's. An open service (no keys) treats
//! every request as the operator's, as before tenants existed, so the
//! tutorial's help desk behaves as it always did.
//!
//! A handler that needs a key says so in its signature, by taking
//! [`Authorized`] as an argument: the extractor checks
//! `Authorization: Bearer <key>` before the handler runs, and a request
//! without an accepted key is a `401` with the JSON error envelope and
//! `WWW-Authenticate: Bearer`. The keys are compared in constant time, each
//! one whole, so the answer's timing tells nothing about a key's prefix.

use std::fmt;
use std::future::{Ready, ready};
use std::str::FromStr;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::http::respond;
use crate::rate::{self, RateLimited};

/// The shortest key accepted: 16 characters of a random string are out of
/// reach of guessing; a short word is not.
pub const MIN_KEY_LEN: usize = 16;

/// The tenant of keys that name none, and of every request to an open service.
pub const DEFAULT_TENANT: &str = "default";

/// The keys a service accepts; empty means the private routes are open.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<Key>,
}

/// One accepted key and whom it acts for.
#[derive(Clone)]
struct Key {
    tenant: String,
    /// Named no tenant: the operator's key.
    operator: bool,
    secret: Secret<String>,
}

impl ApiKeys {
    /// No keys configured: every route is open.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many keys are accepted (for the start-up log line).
    pub fn count(&self) -> usize {
        self.keys.len()
    }

    /// Whether `presented` is one of the keys. Every key is compared, in
    /// constant time, whichever matches.
    pub fn accepts(&self, presented: &str) -> bool {
        self.tenant_of(presented).is_some()
    }

    /// The tenant of `presented`, if it is one of the keys. Every key is
    /// compared, in constant time, whichever matches.
    pub fn tenant_of(&self, presented: &str) -> Option<&str> {
        self.holder(presented).map(|key| key.tenant.as_str())
    }

    /// The key `presented` is, if it is one. Every key is compared, in
    /// constant time, whichever matches.
    fn holder(&self, presented: &str) -> Option<&Key> {
        let mut found = None;
        for key in &self.keys {
            let matches: bool = key.secret.expose().as_bytes().ct_eq(presented.as_bytes()).into();
            if matches && found.is_none() {
                found = Some(key);
            }
        }
        found
    }

    /// The distinct tenants the keys name.
    pub fn tenants(&self) -> Vec<&str> {
        let mut tenants: Vec<&str> = self.keys.iter().map(|key| key.tenant.as_str()).collect();
        tenants.sort_unstable();
        tenants.dedup();
        tenants
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} keys, not shown)", self.keys.len())
    }
}

/// Why a list of keys was refused (the keys themselves are never shown).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApiKeysError {
    #[error("key {position} is shorter than {MIN_KEY_LEN} characters")]
    TooShort { position: usize },
    #[error("key {position} has a character that cannot be sent in a header (use letters, digits and -._~+/=)")]
    BadCharacter { position: usize },
    #[error("key {position} names a tenant that is not 1-64 of a-z, 0-9, - and _ (write tenant:key)")]
    BadTenant { position: usize },
    #[error(
        "key {position} names the tenant `default`, which is the operator's: leave the name out for an operator key, or name another tenant"
    )]
    ReservedTenant { position: usize },
}

impl FromStr for ApiKeys {
    type Err = ApiKeysError;

    /// A comma-separated list; blanks around keys and empty items are
    /// ignored, so an empty string is the open service.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut keys = Vec::new();
        for (index, entry) in raw.split(',').map(str::trim).filter(|k| !k.is_empty()).enumerate() {
            let position = index + 1;
            let (tenant, key, operator) = match entry.split_once(':') {
                Some((tenant, key)) => (tenant.trim(), key.trim(), false),
                None => (DEFAULT_TENANT, entry, true),
            };
            if !operator && tenant == DEFAULT_TENANT {
                return Err(ApiKeysError::ReservedTenant { position });
            }
            if tenant.is_empty()
                || tenant.len() > 64
                || !tenant
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            {
                return Err(ApiKeysError::BadTenant { position });
            }
            // RFC 6750's token68: what a Bearer credential may contain.
            if !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))
            {
                return Err(ApiKeysError::BadCharacter { position });
            }
            if key.len() < MIN_KEY_LEN {
                return Err(ApiKeysError::TooShort { position });
            }
            keys.push(Key {
                tenant: tenant.to_owned(),
                operator,
                secret: Secret::new(key.to_owned()),
            });
        }
        Ok(Self { keys })
    }
}

/// A request that presented an accepted key (or reached an open service),
/// the tenant it acts for, and whether it is the operator's. Take it as a
/// handler argument to make the route private.
#[derive(Debug, Clone)]
pub struct Authorized {
    tenant: String,
    operator: bool,
}

/// A tenant's key asked for what only the operator may do: `403`.
#[derive(Debug, thiserror::Error)]
#[error("only the operator's key (one without a tenant name) may {0}")]
pub struct Forbidden(pub &'static str);

impl ResponseError for Forbidden {
    fn status_code(&self) -> StatusCode {
        StatusCode::FORBIDDEN
    }

    fn error_response(&self) -> HttpResponse {
        let body = hookline_contract::ErrorBody::new("forbidden").with_detail(self.to_string());
        respond(StatusCode::FORBIDDEN, &body, self)
    }
}

/// Why a request is refused: `401`, `WWW-Authenticate: Bearer`.
#[derive(Debug, thiserror::Error)]
pub enum Unauthorized {
    #[error("this route needs an API key: send Authorization: Bearer <key>")]
    Missing,
    #[error("the Authorization header must be Bearer <key>")]
    NotBearer,
    #[error("the API key is not accepted")]
    Rejected,
    /// An accepted key over its rate ([`crate::rate`]): `429`.
    #[error(transparent)]
    Limited(#[from] RateLimited),
}

impl ResponseError for Unauthorized {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Limited(limited) = self {
            return limited.response();
        }
        let body = hookline_contract::ErrorBody::new("unauthorized").with_detail(self.to_string());
        let mut response = respond(StatusCode::UNAUTHORIZED, &body, self);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

impl Authorized {
    /// The tenant the request acts for ([`DEFAULT_TENANT`] on an open service).
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Whether the request is the operator's: a key without a tenant name,
    /// or any request to an open service.
    pub fn is_operator(&self) -> bool {
        self.operator
    }

    /// Whether the request may see (and act on) an object of `tenant`: its
    /// own tenant's, or any if it is the operator's.
    pub fn sees(&self, tenant: &str) -> bool {
        self.operator || self.tenant == tenant
    }

    /// `Ok` for the operator; a tenant's key may not do `what` (a `403`).
    pub fn require_operator(&self, what: &'static str) -> Result<(), Forbidden> {
        if self.operator { Ok(()) } else { Err(Forbidden(what)) }
    }

    fn open() -> Self {
        Self {
            tenant: DEFAULT_TENANT.to_owned(),
            operator: true,
        }
    }

    fn of(key: &Key) -> Self {
        Self {
            tenant: key.tenant.clone(),
            operator: key.operator,
        }
    }

    /// Checks `request` against the [`ApiKeys`] in the app data (none
    /// registered is the same as none configured: open).
    pub fn check(request: &HttpRequest) -> Result<Self, Unauthorized> {
        let Some(keys) = request.app_data::<web::Data<ApiKeys>>() else {
            return Ok(Self::open());
        };
        if keys.is_open() {
            return Ok(Self::open());
        }
        let outcome = match request.headers().get(header::AUTHORIZATION) {
            None => Err(Unauthorized::Missing),
            Some(value) => match bearer(value) {
                None => Err(Unauthorized::NotBearer),
                Some(key) => keys
                    .holder(key)
                    .map(Self::of)
                    .ok_or(Unauthorized::Rejected)
                    .and_then(|authorized| Ok(rate::check(request, key).map(|()| authorized)?)),
            },
        };
        if let Err(why) = &outcome {
            // Info, not warn: anyone on the network can cause this line.
            tracing::info!(route = request.match_pattern().unwrap_or_default(), reason = %why, "request refused: no accepted API key, or over its rate");
        }
        outcome
    }
}

/// The credential of `Authorization: Bearer <key>` (the scheme in any case).
pub(crate) fn bearer(value: &HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|k| !k.is_empty())
}

impl FromRequest for Authorized {
    type Error = Unauthorized;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::check(request))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    const KEY: &str = "0123456789abcdef-old";
    const NEW: &str = "0123456789abcdef-new";

    fn request(keys: &str, authorization: Option<&str>) -> HttpRequest {
        let mut request = TestRequest::default().app_data(web::Data::new(keys.parse::<ApiKeys>().unwrap()));
        if let Some(value) = authorization {
            request = request.insert_header((header::AUTHORIZATION, value));
        }
        request.to_http_request()
    }

    #[test]
    fn a_list_of_keys_parses_and_refuses_weak_or_unsendable_ones() {
        assert!("".parse::<ApiKeys>().unwrap().is_open());
        assert!(" , ".parse::<ApiKeys>().unwrap().is_open());
        assert_eq!(format!(" {KEY} ,{NEW},").parse::<ApiKeys>().unwrap().count(), 2);
        assert_eq!(
            format!("{KEY},short").parse::<ApiKeys>().unwrap_err(),
            ApiKeysError::TooShort { position: 2 }
        );
        assert_eq!(
            "0123456789abcdef ghij".parse::<ApiKeys>().unwrap_err(),
            ApiKeysError::BadCharacter { position: 1 }
        );
        assert!(!format!("{:?}", KEY.parse::<ApiKeys>().unwrap()).contains(KEY));
    }

    #[test]
    fn keys_may_name_their_tenant_and_the_others_belong_to_the_default_one() {
        let keys: ApiKeys = format!("acme:{KEY}, globex : {NEW},0123456789abcdef-bare")
            .parse()
            .unwrap();
        assert_eq!(keys.tenant_of(KEY), Some("acme"));
        assert_eq!(keys.tenant_of(NEW), Some("globex"));
        assert_eq!(keys.tenant_of("0123456789abcdef-bare"), Some(DEFAULT_TENANT));
        assert_eq!(keys.tenant_of("acme"), None);
        assert_eq!(keys.tenants(), vec!["acme", DEFAULT_TENANT, "globex"]);
        assert_eq!(
            format!("Acme:{KEY}").parse::<ApiKeys>().unwrap_err(),
            ApiKeysError::BadTenant { position: 1 }
        );
        assert_eq!(
            format!(":{KEY}").parse::<ApiKeys>().unwrap_err(),
            ApiKeysError::BadTenant { position: 1 }
        );
        assert_eq!(
            format!("{NEW},default:{KEY}").parse::<ApiKeys>().unwrap_err(),
            ApiKeysError::ReservedTenant { position: 2 }
        );
        let tenant = |authorization: &str| {
            Authorized::check(&request(&format!("acme:{KEY},{NEW}"), Some(authorization)))
                .unwrap()
                .tenant()
                .to_owned()
        };
        assert_eq!(tenant(&format!("Bearer {KEY}")), "acme");
        assert_eq!(tenant(&format!("Bearer {NEW}")), DEFAULT_TENANT);
        assert_eq!(Authorized::check(&request("", None)).unwrap().tenant(), DEFAULT_TENANT);
    }

    #[test]
    fn a_key_without_a_tenant_is_the_operator_and_a_tenant_key_sees_only_its_own() {
        let keys = format!("acme:{KEY},{NEW}");
        let acme = Authorized::check(&request(&keys, Some(&format!("Bearer {KEY}")))).unwrap();
        let operator = Authorized::check(&request(&keys, Some(&format!("Bearer {NEW}")))).unwrap();
        let open = Authorized::check(&request("", None)).unwrap();
        assert!(!acme.is_operator());
        assert!(acme.sees("acme") && !acme.sees("globex") && !acme.sees(DEFAULT_TENANT));
        assert!(acme.require_operator("set limits").is_err());
        for who in [&operator, &open] {
            assert!(who.is_operator() && who.sees("acme") && who.sees(DEFAULT_TENANT));
            assert!(who.require_operator("set limits").is_ok());
        }
    }

    #[test]
    fn every_configured_key_is_accepted_and_nothing_else() {
        let keys: ApiKeys = format!("{KEY},{NEW}").parse().unwrap();
        assert!(keys.accepts(KEY));
        assert!(keys.accepts(NEW));
        assert!(!keys.accepts(&KEY[..KEY.len() - 1]));
        assert!(!keys.accepts(&format!("{KEY}x")));
        assert!(!keys.accepts(""));
    }

    #[test]
    fn requests_are_checked_only_when_keys_are_configured() {
        assert!(Authorized::check(&request("", None)).is_ok());
        assert!(Authorized::check(&TestRequest::default().to_http_request()).is_ok());
        assert!(Authorized::check(&request(KEY, Some(&format!("Bearer {KEY}")))).is_ok());
        assert!(Authorized::check(&request(KEY, Some(&format!("bearer  {KEY}")))).is_ok());
        assert!(matches!(
            Authorized::check(&request(KEY, None)),
            Err(Unauthorized::Missing)
        ));
        assert!(matches!(
            Authorized::check(&request(KEY, Some(&format!("Basic {KEY}")))),
            Err(Unauthorized::NotBearer)
        ));
        assert!(matches!(
            Authorized::check(&request(KEY, Some(&format!("Bearer {NEW}")))),
            Err(Unauthorized::Rejected)
        ));
    }

    #[actix_web::test]
    async fn a_refusal_is_a_401_with_the_json_envelope_and_a_bearer_challenge() {
        let response = Unauthorized::Missing.error_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers().get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
        let body = actix_web::body::to_bytes(response.into_body()).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "unauthorized");
        assert!(json["detail"].as_str().unwrap().contains("Authorization: Bearer"));
    }
}
