//! Where webhooks may go: the guard against server-side request forgery.
//!
//! The help desk POSTs to any URL a client hands it, from inside whatever
//! network it runs in. Left alone, that makes it a proxy into that network:
//! a callback of `http://169.254.169.254/latest/meta-data/...` would have it
//! fetch the cloud instance's credentials. So every callback address goes
//! through a [`CallbackPolicy`], decided in this order:
//!
//! 1. **Always refused**, whatever the configuration: link-local addresses
//!    (169.254.0.0/16, fe80::/10), where the cloud metadata services live,
//!    and the metadata addresses outside that range (fd00:ec2::254,
//!    100.100.100.200, 192.0.0.192); the unspecified addresses (0.0.0.0/8,
//!    `::`; on Linux 0.0.0.0 reaches the local host), multicast and
//!    broadcast. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is judged
//!    as its IPv4 address, and so is one inside the NAT64 prefix
//!    64:ff9b::/96, so neither spelling is a way around this list.
//! 2. An address or host name matching a `CALLBACK_ALLOW` rule is allowed:
//!    ALLOW widens, it wins over DENY.
//! 3. One matching a `CALLBACK_DENY` rule is refused.
//! 4. When `CALLBACK_ALLOW` is not empty, anything it does not match is
//!    refused: ALLOW alone makes an allow-list.
//! 5. Anything else is allowed: public, private and loopback addresses. A
//!    mock help desk usually runs next to its client (`docker compose`,
//!    tests on 127.0.0.1), so the default must let that through; a
//!    deployment that faces the internet tightens it with
//!    `CALLBACK_DENY=127.0.0.0/8,::1/128,10.0.0.0/8,...`.
//!
//! Rules are CIDRs (`10.0.0.0/8`, `::1/128`; a bare address is a /32 or a
//! /128) or host names (exact, case-insensitive; `*.example.com` matches
//! every subdomain of example.com, not example.com itself).
//!
//! Names are judged by what they resolve to, and a name is refused if ANY
//! of its addresses is refused. Checking when the case is created is not
//! enough: the name may resolve elsewhere by the time the webhook goes out
//! (DNS rebinding), so delivery resolves through a [`GuardedResolver`]
//! plugged into awc's connector. It hands awc only addresses it has checked,
//! so what is checked is exactly what is connected to, with no window in
//! between. awc skips the resolver for IP-literal hosts; the deliverer
//! checks those itself with [`CallbackPolicy::check_ip`].

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use hookline_kit::config::InvalidValue;
use ipnet::{IpNet, Ipv4Net};
use url::{Host, Url};

/// How long `POST /document` waits for DNS before refusing a callback.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a callback address is refused, in words fit for the client and the logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    reason: String,
}

impl Refusal {
    fn new(reason: String) -> Self {
        Self { reason }
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A network in CIDR notation. An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`)
/// is stored as its IPv4 network, since addresses are matched in their
/// canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(IpNet);

impl Cidr {
    /// The network `network/prefix`; refuses a prefix too long for the family
    /// and host bits set beyond the prefix (likely a typo).
    pub fn new(network: IpAddr, prefix: u8) -> Result<Self, InvalidValue> {
        let too_long = |_| {
            let bits = if network.is_ipv4() { 32 } else { 128 };
            InvalidValue(format!("{network}/{prefix}: the prefix length must be 0 to {bits}"))
        };
        let net = match network {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => IpNet::V4(Ipv4Net::new(v4, prefix - 96).map_err(too_long)?),
                None => IpNet::new(network, prefix).map_err(too_long)?,
            },
            _ => IpNet::new(network, prefix).map_err(too_long)?,
        };
        let truncated = net.trunc();
        if truncated != net {
            return Err(InvalidValue(format!(
                "{network}/{prefix} has bits set beyond its prefix; did you mean {truncated}?"
            )));
        }
        Ok(Self(net))
    }

    /// Whether `ip` (in canonical form) is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A host-name rule: `example.com` (that name only) or `*.example.com`
/// (its subdomains, at any depth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    Subdomains(String),
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        let host = normalize_host(host);
        match self {
            Self::Exact(name) => host == *name,
            Self::Subdomains(parent) => host
                .strip_suffix(parent.as_str())
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Subdomains(parent) => write!(f, "*.{parent}"),
        }
    }
}

/// Host names compare case-insensitively and without the root's trailing
/// dot (`Internal.Example.COM.` is `internal.example.com`).
fn normalize_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// One `CALLBACK_ALLOW`/`CALLBACK_DENY` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Net(Cidr),
    Host(HostPattern),
}

impl Rule {
    /// Whether the rule matches the callback's host name (if it has one)
    /// or the address `ip` (canonical) it resolved to.
    fn matches(&self, host: Option<&str>, ip: IpAddr) -> bool {
        match self {
            Self::Net(cidr) => cidr.contains(ip),
            Self::Host(pattern) => host.is_some_and(|host| pattern.matches(host)),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Net(cidr) => cidr.fmt(f),
            Self::Host(pattern) => pattern.fmt(f),
        }
    }
}

impl FromStr for Rule {
    type Err = InvalidValue;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let rule = raw.trim();
        if rule.is_empty() {
            return Err(InvalidValue(
                "an empty rule: expected a CIDR (10.0.0.0/8), an address or a host name (example.com, *.example.com)"
                    .to_owned(),
            ));
        }
        if let Some((address, prefix)) = rule.split_once('/') {
            let network =
                parse_ip(address).ok_or_else(|| InvalidValue(format!("{rule:?}: {address:?} is not an IP address")))?;
            let prefix = prefix
                .parse::<u8>()
                .map_err(|_| InvalidValue(format!("{rule:?}: {prefix:?} is not a prefix length")))?;
            return Cidr::new(network, prefix).map(Self::Net);
        }
        if let Some(ip) = parse_ip(rule) {
            let full = if ip.is_ipv4() { 32 } else { 128 };
            return Cidr::new(ip, full).map(Self::Net);
        }
        let name = normalize_host(rule);
        let (pattern, name) = match name.strip_prefix("*.") {
            Some(parent) => (HostPattern::Subdomains(parent.to_owned()), parent),
            None => (HostPattern::Exact(name.clone()), name.as_str()),
        };
        if is_host_name(name) {
            Ok(Self::Host(pattern))
        } else {
            Err(InvalidValue(format!(
                "{rule:?} is neither a CIDR (10.0.0.0/8, ::1/128), an IP address nor a host name (example.com, *.example.com)"
            )))
        }
    }
}

/// An IP address, IPv6 possibly in brackets as in URLs.
fn parse_ip(raw: &str) -> Option<IpAddr> {
    let raw = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(raw);
    raw.parse().ok()
}

/// Dot-separated labels of letters, digits, `-` and `_` (seen in internal
/// names), none empty. A name made of digits alone would be an address.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// Addresses no configuration may open, with what they are.
fn always_refused(ip: IpAddr) -> Option<&'static str> {
    const ALIBABA_METADATA: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);
    const ORACLE_METADATA: Ipv4Addr = Ipv4Addr::new(192, 0, 0, 192);
    const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_link_local() {
                Some("a link-local/metadata address")
            } else if v4 == ALIBABA_METADATA || v4 == ORACLE_METADATA {
                Some("a cloud metadata address")
            } else if v4.octets()[0] == 0 {
                Some("an unspecified (\"this network\") address")
            } else if v4.is_broadcast() {
                Some("the broadcast address")
            } else if v4.is_multicast() {
                Some("a multicast address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_unicast_link_local() {
                Some("a link-local address")
            } else if v6 == AWS_METADATA_V6 {
                Some("a cloud metadata address")
            } else if v6.is_unspecified() {
                Some("the unspecified address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if let Some(embedded) = nat64_embedded(v6) {
                always_refused(IpAddr::V4(embedded))
            } else {
                None
            }
        }
    }
}

/// The IPv4 address inside the well-known NAT64 prefix 64:ff9b::/96, which
/// a NAT64 gateway would connect to.
fn nat64_embedded(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(v6);
    (bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000)
        .then(|| Ipv4Addr::from(u32::try_from(bits & 0xffff_ffff).unwrap_or(0)))
}

/// Why a name could not be turned into checked addresses.
#[derive(Debug, thiserror::Error)]
enum LookupError {
    #[error(transparent)]
    Refused(Refusal),
    #[error("{host} does not resolve: {source}")]
    Dns { host: String, source: std::io::Error },
}

/// `CALLBACK_ALLOW` and `CALLBACK_DENY`: where webhooks may go (see the
/// module documentation for the order of the decision).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackPolicy {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
}

impl CallbackPolicy {
    pub fn new(allow: Vec<Rule>, deny: Vec<Rule>) -> Self {
        Self { allow, deny }
    }

    /// Judges one address that the callback's host (a name, or `None` for an
    /// IP literal) stands for.
    pub fn check_ip(&self, host: Option<&str>, ip: IpAddr) -> Result<(), Refusal> {
        let canonical = ip.to_canonical();
        let shown = match (host, canonical == ip) {
            (Some(host), _) => format!("{host} ({ip})"),
            (None, true) => ip.to_string(),
            (None, false) => format!("{ip} (that is {canonical})"),
        };
        let judged = match canonical {
            IpAddr::V6(v6) => nat64_embedded(v6).map_or(canonical, IpAddr::V4),
            IpAddr::V4(_) => canonical,
        };
        if let Some(what) = always_refused(judged) {
            return Err(Refusal::new(format!("{shown} is {what}")));
        }
        if self.allow.iter().any(|rule| rule.matches(host, canonical)) {
            return Ok(());
        }
        if let Some(rule) = self.deny.iter().find(|rule| rule.matches(host, canonical)) {
            return Err(Refusal::new(format!("{shown} matches CALLBACK_DENY {rule}")));
        }
        if !self.allow.is_empty() {
            return Err(Refusal::new(format!("{shown} matches no CALLBACK_ALLOW rule")));
        }
        Ok(())
    }

    /// Judges a callback URL as it would be delivered now: an IP-literal host
    /// directly, a name by every address it resolves to. A name that does not
    /// resolve is refused too.
    pub async fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        let port = url.port_or_known_default().unwrap_or(80);
        match url.host() {
            Some(Host::Ipv4(ip)) => self.check_ip(None, IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_ip(None, IpAddr::V6(ip)),
            Some(Host::Domain(name)) => match tokio::time::timeout(DNS_TIMEOUT, self.resolve(name, port)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(LookupError::Refused(refusal))) => Err(refusal),
                Ok(Err(dns @ LookupError::Dns { .. })) => Err(Refusal::new(dns.to_string())),
                Err(_) => Err(Refusal::new(format!("{name} does not resolve within {DNS_TIMEOUT:?}"))),
            },
            None => Err(Refusal::new("the URL names no host".to_owned())),
        }
    }

    /// Resolves `host` and returns its addresses if every one of them passes.
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, LookupError> {
        if let Some(ip) = parse_ip(host) {
            self.check_ip(None, ip).map_err(LookupError::Refused)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let dns = |source| LookupError::Dns {
            host: host.to_owned(),
            source,
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await.map_err(dns)?.collect();
        if addrs.is_empty() {
            return Err(dns(std::io::Error::other("no addresses")));
        }
        for addr in &addrs {
            self.check_ip(Some(host), addr.ip()).map_err(LookupError::Refused)?;
        }
        Ok(addrs)
    }
}

impl fmt::Display for CallbackPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |rules: &[Rule]| rules.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        if self.allow.is_empty() && self.deny.is_empty() {
            return f.write_str("default (link-local/metadata refused, all else allowed)");
        }
        write!(f, "allow [{}], deny [{}]", list(&self.allow), list(&self.deny))
    }
}

/// The DNS resolver of the delivery client: resolves, checks every address
/// against the policy and gives awc only checked addresses (so DNS rebinding
/// between the check and the connection is impossible). A refusal comes
/// back as a [`Refusal`] inside awc's resolver error, which
/// [`refusal_in`] finds again; a DNS failure stays an ordinary,
/// retryable, connection error.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<CallbackPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<CallbackPolicy>) -> Self {
        Self { policy }
    }
}

impl actix_tls::connect::Resolve for GuardedResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn StdError>>> {
        Box::pin(async move {
            self.policy.resolve(host, port).await.map_err(|e| -> Box<dyn StdError> {
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

    fn rules(raw: &[&str]) -> Vec<Rule> {
        raw.iter().map(|r| r.parse().unwrap()).collect()
    }

    fn policy(allow: &[&str], deny: &[&str]) -> CallbackPolicy {
        CallbackPolicy::new(rules(allow), rules(deny))
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    fn refusal(policy: &CallbackPolicy, host: Option<&str>, address: &str) -> String {
        policy
            .check_ip(host, ip(address))
            .expect_err(address)
            .reason()
            .to_owned()
    }

    #[test]
    fn cidrs_and_bare_addresses_parse_into_networks() {
        assert_eq!("10.0.0.0/8".parse::<Rule>().unwrap().to_string(), "10.0.0.0/8");
        assert_eq!("::1/128".parse::<Rule>().unwrap().to_string(), "::1/128");
        assert_eq!(" 127.0.0.1 ".parse::<Rule>().unwrap().to_string(), "127.0.0.1/32");
        assert_eq!("::1".parse::<Rule>().unwrap().to_string(), "::1/128");
        assert_eq!("[fd00::1]".parse::<Rule>().unwrap().to_string(), "fd00::1/128");
        assert_eq!("0.0.0.0/0".parse::<Rule>().unwrap().to_string(), "0.0.0.0/0");
        assert_eq!(
            "::ffff:10.0.0.0/104".parse::<Rule>().unwrap().to_string(),
            "10.0.0.0/8",
            "a mapped network is stored as its IPv4 network"
        );
    }

    #[test]
    fn malformed_rules_are_refused_with_a_reason() {
        for (raw, says) in [
            ("", "empty"),
            ("10.0.0.0/33", "0 to 32"),
            ("::/129", "0 to 128"),
            ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
            ("10.0.0/8", "not an IP address"),
            ("10.0.0.0/x", "not a prefix length"),
            ("10.0.0.0/-1", "not a prefix length"),
            ("exa mple.com", "neither a CIDR"),
            ("*", "neither a CIDR"),
            ("*.", "neither a CIDR"),
            ("a..b", "neither a CIDR"),
            ("foo.*.com", "neither a CIDR"),
            ("http://example.com", "not an IP address"),
            ("300.1.1.1", "neither a CIDR"),
        ] {
            let error = raw.parse::<Rule>().expect_err(raw);
            assert!(error.0.contains(says), "{raw:?}: {error}");
        }
    }

    #[test]
    fn host_rules_match_names_case_insensitively_and_wildcards_match_subdomains() {
        let exact: Rule = "Hooks.Example.com".parse().unwrap();
        let any_ip = ip("203.0.113.7");
        assert!(exact.matches(Some("hooks.example.com"), any_ip));
        assert!(exact.matches(Some("HOOKS.EXAMPLE.COM."), any_ip));
        assert!(!exact.matches(Some("a.hooks.example.com"), any_ip));
        assert!(!exact.matches(None, any_ip), "a name rule never matches an IP literal");

        let wildcard: Rule = "*.example.com".parse().unwrap();
        assert_eq!(wildcard.to_string(), "*.example.com");
        assert!(wildcard.matches(Some("a.example.com"), any_ip));
        assert!(wildcard.matches(Some("a.b.Example.com"), any_ip));
        assert!(!wildcard.matches(Some("example.com"), any_ip));
        assert!(!wildcard.matches(Some("badexample.com"), any_ip));
        assert!(!wildcard.matches(Some("example.com.evil.net"), any_ip));
    }

    #[test]
    fn networks_contain_exactly_their_addresses() {
        let Rule::Net(net) = "10.1.0.0/16".parse().unwrap() else {
            panic!("not a network")
        };
        assert!(net.contains(ip("10.1.255.255")));
        assert!(!net.contains(ip("10.2.0.0")));
        assert!(
            !net.contains(ip("::ffff:10.1.0.1")),
            "addresses are canonical before matching"
        );
        let Rule::Net(all) = "0.0.0.0/0".parse().unwrap() else {
            panic!("not a network")
        };
        assert!(all.contains(ip("8.8.8.8")));
        assert!(!all.contains(ip("::1")), "families never mix");
        let Rule::Net(v6) = "fd00::/8".parse().unwrap() else {
            panic!("not a network")
        };
        assert!(v6.contains(ip("fdff::1")));
        assert!(!v6.contains(ip("fe00::1")));
    }

    #[test]
    fn metadata_and_link_local_addresses_are_always_refused() {
        // Even when ALLOW names them: these are never a webhook endpoint.
        let generous = policy(&["0.0.0.0/0", "::/0", "metadata.google.internal"], &[]);
        for (address, says) in [
            ("169.254.169.254", "169.254.169.254 is a link-local/metadata address"),
            ("169.254.0.1", "link-local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fd00:ec2::254", "cloud metadata"),
            ("100.100.100.200", "cloud metadata"),
            ("192.0.0.192", "cloud metadata"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("::", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "broadcast"),
        ] {
            let reason = refusal(&generous, None, address);
            assert!(reason.contains(says), "{address}: {reason}");
        }
        let reason = refusal(&generous, Some("metadata.google.internal"), "169.254.169.254");
        assert!(
            reason.starts_with("metadata.google.internal (169.254.169.254)"),
            "{reason}"
        );
    }

    #[test]
    fn mapped_and_nat64_ipv6_addresses_are_judged_as_their_ipv4_address() {
        let default = CallbackPolicy::default();
        let reason = refusal(&default, None, "::ffff:169.254.169.254");
        assert_eq!(
            reason,
            "::ffff:169.254.169.254 (that is 169.254.169.254) is a link-local/metadata address"
        );
        assert!(refusal(&default, None, "64:ff9b::a9fe:a9fe").contains("link-local"));
        assert!(default.check_ip(None, ip("64:ff9b::808:808")).is_ok());

        let no_loopback = policy(&[], &["127.0.0.0/8"]);
        assert!(refusal(&no_loopback, None, "::ffff:127.0.0.1").contains("CALLBACK_DENY 127.0.0.0/8"));
    }

    #[test]
    fn by_default_public_private_and_loopback_addresses_are_allowed() {
        let default = CallbackPolicy::default();
        for address in [
            "8.8.8.8",
            "10.0.0.5",
            "172.16.3.4",
            "192.168.1.10",
            "127.0.0.1",
            "::1",
            "fd12::1",
            "2001:db8::1",
            "169.253.255.255",
            "169.255.0.0",
        ] {
            assert_eq!(default.check_ip(None, ip(address)), Ok(()), "{address}");
        }
    }

    #[test]
    fn deny_rules_refuse_what_they_match_and_nothing_else() {
        let deny = policy(&[], &["127.0.0.0/8", "::1/128", "*.internal.example"]);
        assert_eq!(
            refusal(&deny, None, "127.0.0.1"),
            "127.0.0.1 matches CALLBACK_DENY 127.0.0.0/8"
        );
        assert_eq!(
            refusal(&deny, Some("localhost"), "::1"),
            "localhost (::1) matches CALLBACK_DENY ::1/128"
        );
        assert_eq!(
            refusal(&deny, Some("db.internal.example"), "203.0.113.9"),
            "db.internal.example (203.0.113.9) matches CALLBACK_DENY *.internal.example"
        );
        assert!(deny.check_ip(None, ip("10.0.0.1")).is_ok());
        assert!(deny.check_ip(Some("example.com"), ip("93.184.216.34")).is_ok());
    }

    #[test]
    fn allow_rules_override_deny_rules() {
        let widened = policy(&["127.0.0.1/32", "hooks.local"], &["127.0.0.0/8", "10.0.0.0/8"]);
        assert!(widened.check_ip(None, ip("127.0.0.1")).is_ok());
        assert!(widened.check_ip(Some("hooks.local"), ip("10.1.2.3")).is_ok());
        assert!(refusal(&widened, None, "127.0.0.2").contains("CALLBACK_DENY 127.0.0.0/8"));
    }

    #[test]
    fn allow_rules_alone_make_an_allow_list() {
        let only = policy(&["203.0.113.0/24", "*.partner.example"], &[]);
        assert!(only.check_ip(None, ip("203.0.113.200")).is_ok());
        assert!(only.check_ip(Some("hooks.partner.example"), ip("198.51.100.1")).is_ok());
        assert_eq!(
            refusal(&only, None, "8.8.8.8"),
            "8.8.8.8 matches no CALLBACK_ALLOW rule"
        );
        assert!(refusal(&only, Some("partner.example"), "198.51.100.1").contains("no CALLBACK_ALLOW"));
    }

    #[tokio::test]
    async fn urls_are_judged_by_their_literal_address_or_every_address_their_name_resolves_to() {
        let url = |raw: &str| Url::parse(raw).unwrap();
        let default = CallbackPolicy::default();
        assert!(default.check_url(&url("http://127.0.0.1:9/hook")).await.is_ok());
        assert!(default.check_url(&url("http://localhost:9/hook")).await.is_ok());
        for refused in [
            "http://169.254.169.254/latest/meta-data",
            "http://[fe80::1]/x",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://0/",
        ] {
            let refusal = default.check_url(&url(refused)).await;
            assert!(refusal.is_err(), "{refused}");
        }

        let no_loopback = policy(&[], &["127.0.0.0/8", "::1/128"]);
        let reason = no_loopback
            .check_url(&url("http://localhost:9/hook"))
            .await
            .unwrap_err();
        assert!(reason.reason().starts_with("localhost ("), "{reason}");
        assert!(reason.reason().contains("CALLBACK_DENY"), "{reason}");

        let unresolvable = default
            .check_url(&url("http://no-such-host.invalid/hook"))
            .await
            .unwrap_err();
        assert!(unresolvable.reason().contains("does not resolve"), "{unresolvable}");
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

    #[test]
    fn the_policy_describes_itself_for_the_startup_log() {
        assert!(CallbackPolicy::default().to_string().starts_with("default"));
        assert_eq!(
            policy(&["127.0.0.1"], &["127.0.0.0/8", "*.corp"]).to_string(),
            "allow [127.0.0.1/32], deny [127.0.0.0/8,*.corp]"
        );
    }
}
