//! Domain types that validate on construction: once you hold one, it is valid.

use std::fmt;

/// Longest URL either service accepts (document or callback).
pub const MAX_URL_LEN: usize = 2048;
/// Longest id either service accepts (`documentId`, `agentId`, the echoed `id`).
pub const MAX_ID_LEN: usize = 128;

/// Why a value was refused; the message is meant for the API client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub &'static str);

/// An absolute `http`/`https` URL with a host, no credentials, of sane length.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpUrl(url::Url);

impl HttpUrl {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.is_empty() {
            return Err(InvalidInput("must not be empty"));
        }
        if raw.len() > MAX_URL_LEN {
            return Err(InvalidInput("is longer than 2048 characters"));
        }
        if raw.trim() != raw {
            return Err(InvalidInput("must not start or end with white space"));
        }
        let url = url::Url::parse(raw).map_err(|_| InvalidInput("is not an absolute URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(InvalidInput("must use the http or https scheme"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(InvalidInput("must name a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidInput("must not carry credentials"));
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HttpUrl({})", self.0)
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// An identifier handed over by the other side: 1–128 characters of
/// `[A-Za-z0-9._:-]`. Restrictive on purpose: ids end up in logs, URLs and
/// Redis keys, where anything else only causes trouble.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ExternalId(String);

impl ExternalId {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.is_empty() {
            return Err(InvalidInput("must not be empty"));
        }
        if raw.len() > MAX_ID_LEN {
            return Err(InvalidInput("is longer than 128 characters"));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        {
            return Err(InvalidInput("may only contain letters, digits and - _ . :"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExternalId({})", self.0)
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_https_urls_with_a_host_are_accepted() {
        for ok in [
            "https://example.com/contract.pdf",
            "http://127.0.0.1:3333/document/update",
            "http://consumer:3333/document/update?x=1",
        ] {
            assert_eq!(HttpUrl::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn other_urls_are_refused_with_a_reason() {
        for bad in [
            "",
            "not a url",
            "/relative/path",
            "ftp://example.com/a",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://user:pw@example.com/",
            " https://example.com/",
            "http://",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(HttpUrl::parse(&long).is_err());
    }

    #[test]
    fn ids_are_short_and_plain() {
        assert!(ExternalId::parse("0192f7c4-3b1e-7c3a-9d1e-2a4b5c6d7e8f").is_ok());
        assert!(ExternalId::parse("msg_2x:abc.def").is_ok());
        for bad in ["", "a b", "a/b", "é", "a\nb", &"x".repeat(MAX_ID_LEN + 1)] {
            assert!(ExternalId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
