//! [`CallbackPolicy`]: the decision over one callback address, in the order
//! the [module documentation](super) gives, and the look-ups that feed it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

use super::Refusal;
use super::address::{self, Judged, Kind, METADATA_NAMES};
use super::rules::{Rule, normalize_host, parse_ip};

/// How long `POST /document` waits for DNS before refusing a callback.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// `CALLBACK_POLICY`: what the policy lets through besides its rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// Public, private and loopback addresses: a mock help desk runs beside
    /// its client (`docker compose`, the tutorial on localhost).
    #[default]
    Permissive,
    /// Public addresses only (`CALLBACK_ALLOW` may open exceptions), and
    /// every refused or unreachable address reads the same to a client.
    /// `public` is the same preset by what it lets through.
    #[value(alias = "public")]
    Strict,
}

/// Why a name could not be turned into checked addresses.
#[derive(Debug, thiserror::Error)]
pub(super) enum LookupError {
    #[error(transparent)]
    Refused(Refusal),
    #[error("{host} does not resolve: {source}")]
    Dns { host: String, source: std::io::Error },
}

/// `CALLBACK_POLICY`, `CALLBACK_ALLOW` and `CALLBACK_DENY`: where webhooks
/// may go (see the [module documentation](super) for the order of the decision).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackPolicy {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
    preset: Preset,
}

/// The address being judged, and the host name that stands for it.
struct Subject<'a> {
    host: Option<&'a str>,
    ip: IpAddr,
    judged: Judged,
}

impl Subject<'_> {
    /// What a client may read: the host as it wrote it, never an address a
    /// name resolved to (that would map the internal network for it).
    fn shown(&self) -> String {
        match (self.host, self.judged.embedded) {
            (Some(host), _) => format!("{host} (one of its addresses)"),
            (None, Some(embedded)) => format!("{} ({}, that is {})", self.ip, embedded.form, embedded.v4),
            (None, None) => self.ip.to_string(),
        }
    }

    /// What the server's log says: with the resolved address.
    fn logged(&self) -> String {
        match self.host {
            Some(host) => format!("{host} ({})", self.ip),
            None => self.shown(),
        }
    }
}

impl CallbackPolicy {
    /// The permissive preset with these rules.
    pub fn new(allow: Vec<Rule>, deny: Vec<Rule>) -> Self {
        Self {
            allow,
            deny,
            preset: Preset::Permissive,
        }
    }

    pub fn with_preset(self, preset: Preset) -> Self {
        Self { preset, ..self }
    }

    pub fn is_strict(&self) -> bool {
        self.preset == Preset::Strict
    }

    /// Judges one address that the callback's host (a name, or `None` for an
    /// IP literal) stands for.
    pub fn check_ip(&self, host: Option<&str>, ip: IpAddr) -> Result<(), Refusal> {
        let subject = Subject {
            host,
            ip,
            judged: address::judge(ip),
        };
        self.decide(&subject).map_err(|why| {
            let refusal = Refusal::new(
                format!("{} {why}", subject.shown()),
                format!("{} {why}", subject.logged()),
                self.preset,
            );
            tracing::info!(refused = refusal.logged(), "the callback policy refuses an address");
            refusal
        })
    }

    /// The decision over one address; `Err` says why it is refused.
    fn decide(&self, subject: &Subject<'_>) -> Result<(), String> {
        let Judged {
            canonical,
            embedded,
            kind,
        } = subject.judged;
        let host = subject.host;
        if kind.always_refused() {
            return Err(format!("is {}", kind.describe()));
        }
        if self.allow.iter().any(|rule| rule.matches(host, canonical)) {
            return Ok(());
        }
        let denies = |rule: &&Rule| {
            rule.matches(host, canonical) || embedded.is_some_and(|e| rule.matches(host, IpAddr::V4(e.v4)))
        };
        if let Some(rule) = self.deny.iter().find(denies) {
            return Err(format!("matches CALLBACK_DENY {rule}"));
        }
        match self.preset {
            Preset::Permissive if !self.allow.is_empty() => Err("matches no CALLBACK_ALLOW rule".to_owned()),
            Preset::Strict if !kind.is_public() => Err(format!(
                "is {}, not a public address (CALLBACK_POLICY=strict)",
                kind.describe()
            )),
            _ => Ok(()),
        }
    }

    /// A refusal that names no address (a name that does not resolve).
    fn refuse(&self, reason: String) -> Refusal {
        tracing::info!(refused = reason, "the callback policy refuses a host");
        Refusal::new(reason.clone(), reason, self.preset)
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
                Ok(Err(dns @ LookupError::Dns { .. })) => Err(self.refuse(dns.to_string())),
                Err(_) => Err(self.refuse(format!("{name} does not resolve within {DNS_TIMEOUT:?}"))),
            },
            None => Err(self.refuse("the URL names no host".to_owned())),
        }
    }

    /// Resolves `host` and returns its addresses if every one of them passes.
    /// A metadata service's name is refused before it is looked up.
    pub(super) async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, LookupError> {
        if let Some(ip) = parse_ip(host) {
            self.check_ip(None, ip).map_err(LookupError::Refused)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if METADATA_NAMES.contains(&normalize_host(host).as_str()) {
            let reason = format!("{host} is {}", Kind::Metadata.describe());
            return Err(LookupError::Refused(self.refuse(reason)));
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
        let rules = !(self.allow.is_empty() && self.deny.is_empty());
        match self.preset {
            Preset::Permissive if !rules => f.write_str("default (link-local/metadata refused, all else allowed)"),
            Preset::Permissive => Ok(()),
            Preset::Strict if !rules => f.write_str("strict (public addresses only)"),
            Preset::Strict => f.write_str("strict (public addresses only), "),
        }?;
        if rules {
            write!(f, "allow [{}], deny [{}]", list(&self.allow), list(&self.deny))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssrf::UNANSWERED;

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
    fn metadata_and_link_local_addresses_are_always_refused() {
        // Even when ALLOW names them: these are never a webhook endpoint.
        let generous = policy(&["0.0.0.0/0", "::/0", "metadata.google.internal"], &[]);
        for (address, says) in [
            ("169.254.169.254", "169.254.169.254 is a link-local/metadata address"),
            ("169.254.0.1", "link-local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fd00:ec2::254", "cloud metadata"),
            ("168.63.129.16", "cloud metadata"),
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
        let refused = generous
            .check_ip(Some("metadata.google.internal"), ip("169.254.169.254"))
            .unwrap_err();
        assert_eq!(
            refused.reason(),
            "metadata.google.internal (one of its addresses) is a link-local/metadata address",
            "the client never reads the address a name resolved to"
        );
        assert_eq!(
            refused.logged(),
            "metadata.google.internal (169.254.169.254) is a link-local/metadata address",
            "the server's log does"
        );
    }

    #[test]
    fn ipv6_addresses_carrying_an_ipv4_address_are_judged_as_it_by_every_rule() {
        let default = CallbackPolicy::default();
        assert_eq!(
            refusal(&default, None, "::ffff:169.254.169.254"),
            "::ffff:169.254.169.254 (IPv4-mapped, that is 169.254.169.254) is a link-local/metadata address"
        );
        assert_eq!(
            refusal(&default, None, "2002:a9fe:a9fe::1"),
            "2002:a9fe:a9fe::1 (6to4, that is 169.254.169.254) is a link-local/metadata address"
        );
        for carried in [
            "::a9fe:a9fe",
            "::ffff:0:a9fe:a9fe",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe",
        ] {
            assert!(refusal(&default, None, carried).contains("link-local"), "{carried}");
        }
        assert!(default.check_ip(None, ip("64:ff9b::808:808")).is_ok());
        assert!(default.check_ip(None, ip("2002:808:808::1")).is_ok());

        // DENY's networks match the IPv4 address inside, in every form.
        let no_loopback = policy(&[], &["127.0.0.0/8"]);
        for carried in [
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "::ffff:0:127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::7f00:1",
            "2002:7f00:1::1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
        ] {
            assert!(
                refusal(&no_loopback, None, carried).contains("CALLBACK_DENY 127.0.0.0/8"),
                "{carried}"
            );
        }
    }

    #[test]
    fn the_strict_preset_allows_public_addresses_only_and_every_refusal_reads_the_same() {
        let strict = CallbackPolicy::default().with_preset(Preset::Strict);
        for address in ["8.8.8.8", "2606:4700::1111", "2002:808:808::1", "64:ff9b::808:808"] {
            assert_eq!(strict.check_ip(None, ip(address)), Ok(()), "{address}");
        }
        for address in [
            "127.0.0.1",
            "::1",
            "10.0.0.5",
            "172.16.3.4",
            "192.168.1.10",
            "100.64.0.1",
            "100.127.255.254",
            "fd12::1",
            "192.0.2.1",
            "2001:db8::1",
            "198.18.0.1",
            "240.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:0:a00:1",
            "2002:a00:1::1",
            "64:ff9b::6440:1",
            "169.254.169.254",
            "168.63.129.16",
        ] {
            let refused = strict.check_ip(Some("a.example"), ip(address)).expect_err(address);
            assert_eq!(refused.reason(), UNANSWERED, "{address}");
            assert_eq!(
                refused.attempt_error(),
                UNANSWERED,
                "the attempt log reads the same as the 400"
            );
            assert!(refused.logged().contains(address), "{address}: {}", refused.logged());
        }
        // CALLBACK_ALLOW opens an exception; under strict it is no allow-list.
        let opened = policy(&["10.0.0.5"], &[]).with_preset(Preset::Strict);
        assert!(opened.check_ip(None, ip("10.0.0.5")).is_ok());
        assert!(opened.check_ip(None, ip("8.8.8.8")).is_ok());
        assert_eq!(refusal(&opened, None, "10.0.0.6"), UNANSWERED);
        assert!(opened.check_ip(None, ip("169.254.169.254")).is_err());
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
            "localhost (one of its addresses) matches CALLBACK_DENY ::1/128"
        );
        assert_eq!(
            refusal(&deny, Some("db.internal.example"), "203.0.113.9"),
            "db.internal.example (one of its addresses) matches CALLBACK_DENY *.internal.example"
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

        let strict = CallbackPolicy::default().with_preset(Preset::Strict);
        for refused in [
            "http://localhost:9/hook",
            "http://no-such-host.invalid/hook",
            "http://10.0.0.1/",
        ] {
            let refusal = strict.check_url(&url(refused)).await.unwrap_err();
            assert_eq!(refusal.reason(), UNANSWERED, "{refused}");
        }
    }

    /// Spellings of the metadata address (169.254.169.254) and of other
    /// metadata services, parsed as `POST /document` parses X-Callback-Url.
    const METADATA_SPELLINGS: [&str; 25] = [
        "http://169.254.169.254/latest/meta-data",
        "http://2852039166/",
        "http://0xa9fea9fe/",
        "http://0xA9FEA9FE/",
        "http://0251.0376.0251.0376/",
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://169.254.43518/",
        "http://169.16689662/",
        "http://169.254.169.254./",
        "http://%31%36%39.254.169.254/",
        "http://\u{ff11}\u{ff16}\u{ff19}.254.169.254/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[0:0:0:0:0:ffff:a9fe:a9fe]/",
        "http://[::a9fe:a9fe]/",
        "http://[::169.254.169.254]/",
        "http://[::ffff:0:a9fe:a9fe]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[64:ff9b:1::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",
        "http://[fd00:ec2::254]/",
        "http://168.63.129.16/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.Google.Internal./",
    ];

    #[tokio::test]
    async fn every_spelling_of_a_metadata_address_is_refused_through_the_routes_parser() {
        let generous = policy(&["0.0.0.0/0", "::/0"], &[]);
        for raw in METADATA_SPELLINGS {
            let url = hookline_contract::HttpUrl::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            let refused = generous.check_url(url.url()).await.expect_err(raw);
            let reason = refused.reason();
            assert!(
                reason.contains("link-local") || reason.contains("metadata"),
                "{raw}: {reason}"
            );
        }
        // The URL parser turns the numeric IPv4 spellings into the dotted one,
        // and that is what is stored and delivered to.
        for raw in [
            "http://2852039166/",
            "http://0xa9fea9fe/",
            "http://0251.0376.0251.0376/",
        ] {
            let url = hookline_contract::HttpUrl::parse(raw).unwrap();
            assert_eq!(url.as_str(), "http://169.254.169.254/", "{raw}");
        }
        // CGNAT is internal: the strict preset refuses it.
        let strict = CallbackPolicy::default().with_preset(Preset::Strict);
        for raw in [
            "http://100.64.0.1/",
            "http://[::ffff:100.64.0.1]/",
            "http://1681915905/",
        ] {
            let url = hookline_contract::HttpUrl::parse(raw).unwrap();
            assert_eq!(strict.check_url(url.url()).await.expect_err(raw).reason(), UNANSWERED);
        }
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
