//! `CALLBACK_ALLOW` and `CALLBACK_DENY` rules: networks in CIDR notation
//! (`10.0.0.0/8`, `::1/128`; a bare address is a /32 or a /128) and host
//! names (exact, case-insensitive; `*.example.com` matches every subdomain
//! of example.com, not example.com itself).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use hookline_kit::config::InvalidValue;
use ipnet::{IpNet, Ipv4Net};

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
pub(super) fn normalize_host(host: &str) -> String {
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
    pub(super) fn matches(&self, host: Option<&str>, ip: IpAddr) -> bool {
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
pub(super) fn parse_ip(raw: &str) -> Option<IpAddr> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
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
}
