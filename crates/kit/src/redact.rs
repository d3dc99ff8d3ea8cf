//! URLs fit for a log line: what a URL says about *where* (scheme, host,
//! port, path), never what it carries as a credential.
//!
//! A callback or subscription URL is chosen by a client, and clients put
//! secrets in them: `https://user:pass@host/…` or `…?token=…`. Logs are read
//! by more people, kept longer and shipped further than the store that holds
//! the URL, so every URL a service logs goes through [`redact_url`] first:
//! the userinfo, the query and the fragment are dropped.

/// `raw` as `scheme://host:port/path`, without userinfo, query or
/// fragment. Something that does not parse as a URL is cut the same way by
/// hand (everything from `?` or `#`, everything before the last `@` of the
/// authority), so a malformed URL cannot smuggle its secret into a log.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(url) if url.has_host() => {
            let mut kept = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
            if let Some(port) = url.port() {
                kept.push_str(&format!(":{port}"));
            }
            kept.push_str(url.path());
            kept
        }
        _ => redact_by_hand(raw),
    }
}

/// The fallback of [`redact_url`] for text that is not a URL with a host.
fn redact_by_hand(raw: &str) -> String {
    let end = raw.find(['?', '#']).unwrap_or(raw.len());
    let raw = &raw[..end];
    let (scheme, rest) = match raw.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, raw.trim_start_matches('/')),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    match scheme {
        Some(scheme) => format!("{scheme}://{host}{path}"),
        None => format!("{host}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_query_and_fragment_are_dropped() {
        assert_eq!(
            redact_url("https://user:pass@example.com:8443/hooks/a?token=s3cret#frag"),
            "https://example.com:8443/hooks/a"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:3333/document/update"),
            "http://127.0.0.1:3333/document/update"
        );
        assert_eq!(redact_url("http://[::1]:80/x?a=b"), "http://[::1]/x");
        assert_eq!(redact_url("https://token@example.com"), "https://example.com/");
    }

    #[test]
    fn text_that_is_not_a_url_is_cut_alike() {
        assert_eq!(redact_url("http://user:pa ss@exa mple/p?token=x"), "http://exa mple/p");
        assert_eq!(redact_url("user:pass@host/path?token=x"), "host/path");
        assert_eq!(redact_url(""), "");
        for raw in ["ht!tp://u:secret@h/?secret", "//u:secret@h#secret"] {
            assert!(!redact_url(raw).contains("secret"), "{raw}: {}", redact_url(raw));
        }
    }
}
