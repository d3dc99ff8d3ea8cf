//! Where webhooks may go: the guard against server-side request forgery.
//!
//! The help desk POSTs to any URL a client hands it, from inside whatever
//! network it runs in. Left alone, that makes it a proxy into that network:
//! a callback of `http://169.254.169.254/latest/meta-data/...` would have it
//! fetch the cloud instance's credentials. So every callback address goes
//! through a [`CallbackPolicy`], decided in this order:
//!
//! 1. **Always refused**, whatever the configuration: link-local addresses
//!    (169.254.0.0/16, fe80::/10), where most cloud metadata services live,
//!    and the metadata services outside that range (AWS fd00:ec2::254, Azure's
//!    wireserver 168.63.129.16, Alibaba 100.100.100.200, Oracle 192.0.0.192,
//!    the names metadata.google.internal and metadata.goog); the unspecified
//!    addresses (0.0.0.0/8, `::`; on Linux 0.0.0.0 reaches the local host),
//!    multicast and broadcast. An IPv6 address that carries an IPv4 address
//!    (IPv4-mapped, -compatible and -translated, 6to4, Teredo, NAT64) is
//!    judged as that IPv4 address ([`address`]), so no spelling is a way
//!    around this list; the URL parser has already turned decimal, hex and
//!    octal IPv4 spellings (`http://0xa9fea9fe/`) into the dotted one.
//! 2. An address or host name matching a `CALLBACK_ALLOW` rule is allowed:
//!    ALLOW widens, it wins over DENY.
//! 3. One matching a `CALLBACK_DENY` rule is refused; a network rule also
//!    matches an IPv6 address that carries an IPv4 address inside it.
//! 4. Under `CALLBACK_POLICY=permissive` (the default), when
//!    `CALLBACK_ALLOW` is not empty, anything it does not match is refused:
//!    ALLOW makes an allow-list. Anything else is allowed: public, private
//!    and loopback addresses. A mock help desk usually runs next to its
//!    client (`docker compose`, tests on 127.0.0.1), so the default must let
//!    that through.
//! 5. Under `CALLBACK_POLICY=strict`, only public addresses are allowed
//!    (loopback, private, carrier-grade NAT, unique local, documentation and
//!    reserved ranges are refused); `CALLBACK_ALLOW` opens exceptions. Every
//!    refusal then reads the same to the client ([`UNANSWERED`]), and so does
//!    a failed attempt that got no HTTP answer from an address that is not
//!    public: neither the 400 nor the attempt log tells a closed port from an
//!    open one, or an address from a name that does not resolve.
//!
//! Under every preset, what a client reads never names an address a host
//! name resolved to; the server's log does ([`Refusal::logged`]).
//!
//! Rules are CIDRs or host names ([`rules`]). Names are judged by what they
//! resolve to, and a name is refused if ANY of its addresses is refused.
//! Checking when the case is created is not enough: the name may resolve
//! elsewhere by the time the webhook goes out (DNS rebinding), so delivery
//! resolves through a [`GuardedResolver`] plugged into awc's connector. It
//! hands awc only addresses it has checked, so what is checked is exactly
//! what is connected to, with no window in between. awc skips the resolver
//! for IP-literal hosts; the deliverer checks those itself with
//! [`CallbackPolicy::check_ip`].

/// What an address is: public or which internal kind, IPv4 inside IPv6.
pub mod address;
/// The decision over an address, a URL, a name's addresses; the presets.
mod policy;
/// The delivery client's DNS, which hands awc only checked addresses.
mod resolver;
/// `CALLBACK_ALLOW` / `CALLBACK_DENY` rules: CIDRs and host names.
pub mod rules;

pub use policy::{CallbackPolicy, Preset};
pub use resolver::{GuardedResolver, refusal_in};
pub use rules::{Cidr, HostPattern, Rule};

/// What a client reads, under the strict preset, of every refused or
/// unreachable callback address: in the 400 and in the attempt log.
pub const UNANSWERED: &str = "the callback URL is not a public address that answers";

/// Why a callback address is refused: in words fit for the client
/// ([`Refusal::reason`], also its `Display`) and for the server's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{shown}")]
pub struct Refusal {
    shown: String,
    logged: String,
    uniform: bool,
}

impl Refusal {
    /// `shown` is for the client, `logged` (which may name resolved
    /// addresses) for the server. Under the strict preset the client reads
    /// [`UNANSWERED`] whatever the reason.
    fn new(shown: String, logged: String, preset: Preset) -> Self {
        let uniform = preset == Preset::Strict;
        Self {
            shown: if uniform { UNANSWERED.to_owned() } else { shown },
            logged,
            uniform,
        }
    }

    /// What the client may read.
    pub fn reason(&self) -> &str {
        &self.shown
    }

    /// What the server's log says: the whole reason, resolved addresses included.
    pub fn logged(&self) -> &str {
        &self.logged
    }

    /// The error of the attempt the refusal stopped, as the attempt log
    /// shows it: under the strict preset [`UNANSWERED`], like any attempt
    /// to a non-public address that got no answer.
    pub fn attempt_error(&self) -> String {
        if self.uniform {
            self.shown.clone()
        } else {
            format!("refused by the callback policy: {}", self.shown)
        }
    }
}
