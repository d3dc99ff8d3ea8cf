//! The delivery client's DNS: [`GuardedResolver`] resolves, checks every
//! address against the policy, and hands awc only checked addresses, so
//! what is checked is exactly what is connected to (no DNS rebinding in
//! between).

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use super::Refusal;
use super::address::judge;
use super::policy::{CallbackPolicy, LookupError};
use super::rules::{normalize_host, parse_ip};

/// How many names [`GuardedResolver`] remembers the last look-up of; it
/// forgets them all when full (a forgotten name counts as not public).
const REMEMBERED: usize = 1024;

/// The DNS resolver of the delivery client: resolves, checks every address
/// against the policy and gives awc only checked addresses. A refusal comes
/// back as a [`Refusal`] inside awc's resolver error, which [`refusal_in`]
/// finds again; a DNS failure stays an ordinary, retryable, connection
/// error.
///
/// Under the strict preset it also remembers whether each name's last
/// look-up found public addresses only ([`GuardedResolver::is_public`]):
/// a failure to reach anything else reads like a refusal, so the attempt
/// log is no port scanner.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<CallbackPolicy>,
    public: Rc<RefCell<HashMap<String, bool>>>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<CallbackPolicy>) -> Self {
        Self {
            policy,
            public: Rc::default(),
        }
    }

    /// Whether `host` (as awc hands it: a name, an address, `[v6]`) is a
    /// public address, or a name whose last look-up found only public ones.
    /// Kept under the strict preset only; otherwise every name is `false`.
    pub fn is_public(&self, host: &str) -> bool {
        match parse_ip(host) {
            Some(ip) => judge(ip).kind.is_public(),
            None => self
                .public
                .borrow()
                .get(&normalize_host(host))
                .copied()
                .unwrap_or(false),
        }
    }

    fn remember(&self, host: &str, found: &Result<Vec<SocketAddr>, LookupError>) {
        if !self.policy.is_strict() || parse_ip(host).is_some() {
            return;
        }
        let public = found
            .as_ref()
            .is_ok_and(|addrs| addrs.iter().all(|addr| judge(addr.ip()).kind.is_public()));
        let mut remembered = self.public.borrow_mut();
        let host = normalize_host(host);
        if remembered.len() >= REMEMBERED && !remembered.contains_key(&host) {
            remembered.clear();
        }
        remembered.insert(host, public);
    }
}

impl actix_tls::connect::Resolve for GuardedResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn StdError>>> {
        Box::pin(async move {
            let found = self.policy.resolve(host, port).await;
            self.remember(host, &found);
            found.map_err(|e| -> Box<dyn StdError> {
                match e {
                    LookupError::Refused(refusal) => Box::new(refusal),
                    dns @ LookupError::Dns { .. } => Box::new(dns),
                }
            })
        })
    }
}

/// The policy's refusal inside an error the [`GuardedResolver`] caused, if any.
pub fn refusal_in<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a Refusal> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(refusal) = error.downcast_ref::<Refusal>() {
            return Some(refusal);
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssrf::{Preset, Rule};
    use actix_tls::connect::Resolve;

    fn policy(allow: &[&str], deny: &[&str]) -> CallbackPolicy {
        let rules = |raw: &[&str]| raw.iter().map(|r| r.parse::<Rule>().unwrap()).collect();
        CallbackPolicy::new(rules(allow), rules(deny))
    }

    #[tokio::test]
    async fn the_resolver_returns_only_checked_addresses_and_marks_refusals() {
        use actix_tls::connect::Resolve;
        let guard = GuardedResolver::new(Arc::new(policy(&[], &["127.0.0.0/8", "::1/128"])));
        let refused = guard.lookup("localhost", 80).await.unwrap_err();
        assert!(refusal_in(refused.as_ref()).is_some(), "{refused}");
        // awc hands bracketed IPv6 literals to the resolver.
        let refused = guard.lookup("[fe80::1]", 80).await.unwrap_err();
        assert!(refusal_in(refused.as_ref()).is_some(), "{refused}");
        let dns = guard.lookup("no-such-host.invalid", 80).await.unwrap_err();
        assert!(
            refusal_in(dns.as_ref()).is_none(),
            "a DNS failure is not a refusal: {dns}"
        );

        let open = GuardedResolver::new(Arc::new(CallbackPolicy::default()));
        let addrs = open.lookup("localhost", 8080).await.unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 8080));
        assert_eq!(
            open.lookup("[::1]", 80).await.unwrap(),
            vec!["[::1]:80".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn awc_sees_ipv6_hosts_in_brackets() {
        // Why the resolver must understand "[...]": awc passes Uri::host() on,
        // and only unbracketed strings that parse as addresses skip it.
        let uri: awc::http::Uri = "http://[fe80::1]:8080/x".parse().unwrap();
        assert_eq!(uri.host(), Some("[fe80::1]"));
    }

    #[tokio::test]
    async fn under_the_strict_preset_the_resolver_remembers_which_names_were_public() {
        let strict = policy(&["localhost"], &[]).with_preset(Preset::Strict);
        let guard = GuardedResolver::new(Arc::new(strict));
        assert!(!guard.is_public("localhost"), "not looked up yet");
        assert!(guard.lookup("localhost", 80).await.is_ok(), "CALLBACK_ALLOW opens it");
        assert!(!guard.is_public("localhost"));
        assert!(!guard.is_public("LOCALHOST."));
        assert!(guard.is_public("8.8.8.8"));
        assert!(!guard.is_public("[::1]"));
        assert!(!guard.is_public("[::ffff:10.0.0.1]"));
        assert!(guard.is_public("[2606:4700::1111]"));
    }
}
