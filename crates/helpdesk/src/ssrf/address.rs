//! What an address is, for the callback policy: public, or one of the
//! internal kinds (loopback, private, link-local, metadata, ...).
//!
//! An IPv6 address that carries an IPv4 address is judged as that IPv4
//! address, whatever the spelling: the packets go there (a 6to4 relay, a
//! Teredo peer, a NAT64 gateway, or the host's own IPv4 stack), so
//! `[::a9fe:a9fe]` or `[2002:a9fe:a9fe::1]` is 169.254.169.254.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// The kinds of address a callback may point at. Only [`Kind::Public`] is
/// reachable from the internet at large; the policy's strict preset allows
/// nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Public,
    Loopback,
    /// RFC 1918 networks.
    Private,
    /// Carrier-grade NAT, 100.64.0.0/10 (RFC 6598): a provider's internal space.
    SharedNat,
    /// IPv6 unique local addresses, fc00::/7, and the deprecated site-local fec0::/10.
    UniqueLocal,
    /// Ranges set aside for examples (192.0.2.0/24, 2001:db8::/32, ...).
    Documentation,
    /// Benchmarking, protocol assignments, future use, unallocated IPv6.
    Reserved,
    /// 169.254.0.0/16 and fe80::/10, where most cloud metadata services live.
    LinkLocal,
    /// Cloud metadata services outside the link-local range.
    Metadata,
    /// 0.0.0.0/8 and `::`: on Linux, 0.0.0.0 reaches the local host.
    Unspecified,
    Broadcast,
    Multicast,
}

impl Kind {
    /// No configuration may open these: no webhook receiver lives there,
    /// and the metadata services hand out the instance's credentials.
    pub fn always_refused(self) -> bool {
        matches!(
            self,
            Self::LinkLocal | Self::Metadata | Self::Unspecified | Self::Broadcast | Self::Multicast
        )
    }

    pub fn is_public(self) -> bool {
        self == Self::Public
    }

    /// The kind in words, for refusals.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Public => "a public address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::SharedNat => "a carrier-grade NAT (shared) address",
            Self::UniqueLocal => "a unique local address",
            Self::Documentation => "a documentation address",
            Self::Reserved => "a reserved address",
            Self::LinkLocal => "a link-local/metadata address",
            Self::Metadata => "a cloud metadata address",
            Self::Unspecified => "an unspecified (\"this network\") address",
            Self::Broadcast => "the broadcast address",
            Self::Multicast => "a multicast address",
        }
    }
}

/// An IPv4 address inside an IPv6 one, and the name of that form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embedded {
    pub v4: Ipv4Addr,
    pub form: &'static str,
}

/// An address as the policy judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judged {
    /// The address in canonical form (an IPv4-mapped address as IPv4).
    pub canonical: IpAddr,
    /// The IPv4 address an IPv6 address carries, if any.
    pub embedded: Option<Embedded>,
    /// What it is: the kind of the embedded IPv4 address when there is one.
    pub kind: Kind,
}

/// Judges `ip`: its canonical form, the IPv4 address it carries and its kind.
pub fn judge(ip: IpAddr) -> Judged {
    let canonical = ip.to_canonical();
    let embedded = match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6),
        IpAddr::V4(_) => None,
    };
    let kind = match (embedded, canonical) {
        (Some(embedded), _) => v4_kind(embedded.v4),
        (None, IpAddr::V4(v4)) => v4_kind(v4),
        (None, IpAddr::V6(v6)) => v6_kind(v6),
    };
    Judged {
        canonical,
        embedded,
        kind,
    }
}

/// The IPv4 address inside every IPv6 form that carries one.
pub fn embedded_ipv4(v6: Ipv6Addr) -> Option<Embedded> {
    let bits = u128::from(v6);
    let low = |bits: u128| Ipv4Addr::from(u32::try_from(bits & 0xffff_ffff).unwrap_or(0));
    let form = |v4, form| Some(Embedded { v4, form });
    match bits >> 32 {
        0xffff => return form(low(bits), "IPv4-mapped"),
        0xffff_0000 => return form(low(bits), "IPv4-translated"),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        0 if bits > 1 => return form(low(bits), "IPv4-compatible"),
        0x0064_ff9b_0000_0000_0000_0000 => return form(low(bits), "NAT64"),
        _ => {}
    }
    if bits >> 80 == 0x0064_ff9b_0001 {
        return form(low(bits), "local-use NAT64");
    }
    if bits >> 112 == 0x2002 {
        return form(low(bits >> 80), "6to4");
    }
    if bits >> 96 == 0x2001_0000 {
        // Teredo: the client's address is the last 32 bits, inverted.
        return form(low(!bits), "Teredo");
    }
    None
}

/// Cloud metadata services outside 169.254.0.0/16: Azure's wireserver,
/// Alibaba's and Oracle's metadata, AWS's IPv6 endpoint.
const METADATA_V4: [Ipv4Addr; 3] = [
    Ipv4Addr::new(168, 63, 129, 16),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(192, 0, 0, 192),
];
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)];

/// Host names of metadata services, refused before they are resolved.
pub const METADATA_NAMES: [&str; 2] = ["metadata.google.internal", "metadata.goog"];

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(segments: [u16; 8], prefix: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

/// IPv4 networks by kind, most specific first ([`METADATA_V4`] before all).
const V4_NETWORKS: [(Ipv4Net, Kind); 17] = [
    (v4(0, 0, 0, 0, 8), Kind::Unspecified),
    (v4(127, 0, 0, 0, 8), Kind::Loopback),
    (v4(10, 0, 0, 0, 8), Kind::Private),
    (v4(172, 16, 0, 0, 12), Kind::Private),
    (v4(192, 168, 0, 0, 16), Kind::Private),
    (v4(100, 64, 0, 0, 10), Kind::SharedNat),
    (v4(169, 254, 0, 0, 16), Kind::LinkLocal),
    (v4(192, 0, 2, 0, 24), Kind::Documentation),
    (v4(198, 51, 100, 0, 24), Kind::Documentation),
    (v4(203, 0, 113, 0, 24), Kind::Documentation),
    (v4(255, 255, 255, 255, 32), Kind::Broadcast),
    (v4(224, 0, 0, 0, 4), Kind::Multicast),
    (v4(240, 0, 0, 0, 4), Kind::Reserved),
    (v4(198, 18, 0, 0, 15), Kind::Reserved),
    (v4(192, 0, 0, 0, 24), Kind::Reserved),
    (v4(192, 88, 99, 0, 24), Kind::Reserved),
    (v4(0, 0, 0, 0, 0), Kind::Public),
];

/// IPv6 networks by kind, most specific first. The forms that carry an
/// IPv4 address never get here; nothing outside 2000::/3 is public.
const V6_NETWORKS: [(Ipv6Net, Kind); 12] = [
    (v6([0; 8], 128), Kind::Unspecified),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), Kind::Loopback),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), Kind::LinkLocal),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), Kind::UniqueLocal),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), Kind::UniqueLocal),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), Kind::Multicast),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), Kind::Documentation),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), Kind::Documentation),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), Kind::Reserved),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), Kind::Reserved),
    (v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3), Kind::Public),
    (v6([0; 8], 0), Kind::Reserved),
];

fn v4_kind(v4: Ipv4Addr) -> Kind {
    if METADATA_V4.contains(&v4) {
        return Kind::Metadata;
    }
    V4_NETWORKS
        .iter()
        .find(|(net, _)| net.contains(&v4))
        .map_or(Kind::Reserved, |&(_, kind)| kind)
}

fn v6_kind(v6: Ipv6Addr) -> Kind {
    if METADATA_V6.contains(&v6) {
        return Kind::Metadata;
    }
    V6_NETWORKS
        .iter()
        .find(|(net, _)| net.contains(&v6))
        .map_or(Kind::Reserved, |&(_, kind)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(raw: &str) -> Kind {
        judge(raw.parse().unwrap()).kind
    }

    #[test]
    fn every_ipv6_form_that_carries_an_ipv4_address_is_judged_by_it() {
        for (v6, form) in [
            ("::ffff:169.254.169.254", "IPv4-mapped"),
            ("::ffff:a9fe:a9fe", "IPv4-mapped"),
            ("::169.254.169.254", "IPv4-compatible"),
            ("::a9fe:a9fe", "IPv4-compatible"),
            ("::ffff:0:a9fe:a9fe", "IPv4-translated"),
            ("::ffff:0:169.254.169.254", "IPv4-translated"),
            ("64:ff9b::a9fe:a9fe", "NAT64"),
            ("64:ff9b::169.254.169.254", "NAT64"),
            ("64:ff9b:1::a9fe:a9fe", "local-use NAT64"),
            ("2002:a9fe:a9fe::1", "6to4"),
            ("2002:a9fe:a9fe:1234:5678::9", "6to4"),
            // Teredo: server 65.54.227.120, client 169.254.169.254 inverted.
            ("2001:0:4136:e378:8000:63bf:5601:5601", "Teredo"),
        ] {
            let judged = judge(v6.parse().unwrap());
            let embedded = judged.embedded.unwrap_or_else(|| panic!("{v6}: nothing embedded"));
            assert_eq!(embedded.v4, Ipv4Addr::new(169, 254, 169, 254), "{v6}");
            assert_eq!(embedded.form, form, "{v6}");
            assert_eq!(judged.kind, Kind::LinkLocal, "{v6}");
        }
        assert_eq!(kind("::ffff:127.0.0.1"), Kind::Loopback);
        assert_eq!(kind("2002:0a00:0001::1"), Kind::Private);
        assert_eq!(kind("64:ff9b::6440:1"), Kind::SharedNat);
        assert_eq!(kind("2002:808:808::1"), Kind::Public, "6to4 of a public address");
        assert_eq!(kind("64:ff9b::808:808"), Kind::Public);
        assert_eq!(judge("::1".parse().unwrap()).embedded, None, "::1 is IPv6's loopback");
        assert_eq!(judge("::".parse().unwrap()).embedded, None);
        assert_eq!(judge("2606:4700::1111".parse().unwrap()).embedded, None);
    }

    #[test]
    fn addresses_get_their_kind() {
        for (address, expected) in [
            ("8.8.8.8", Kind::Public),
            ("100.63.255.255", Kind::Public),
            ("100.128.0.0", Kind::Public),
            ("2606:4700::1111", Kind::Public),
            ("127.0.0.1", Kind::Loopback),
            ("127.255.0.9", Kind::Loopback),
            ("::1", Kind::Loopback),
            ("10.1.2.3", Kind::Private),
            ("172.31.255.255", Kind::Private),
            ("192.168.0.1", Kind::Private),
            ("100.64.0.0", Kind::SharedNat),
            ("100.127.255.255", Kind::SharedNat),
            ("fd12::1", Kind::UniqueLocal),
            ("fec0::1", Kind::UniqueLocal),
            ("192.0.2.1", Kind::Documentation),
            ("203.0.113.7", Kind::Documentation),
            ("2001:db8::1", Kind::Documentation),
            ("198.18.0.1", Kind::Reserved),
            ("240.0.0.1", Kind::Reserved),
            ("4000::1", Kind::Reserved),
            ("2001:2::1", Kind::Reserved),
            ("169.254.169.254", Kind::LinkLocal),
            ("fe80::1", Kind::LinkLocal),
            ("168.63.129.16", Kind::Metadata),
            ("100.100.100.200", Kind::Metadata),
            ("192.0.0.192", Kind::Metadata),
            ("fd00:ec2::254", Kind::Metadata),
            ("0.0.0.0", Kind::Unspecified),
            ("0.1.2.3", Kind::Unspecified),
            ("::", Kind::Unspecified),
            ("255.255.255.255", Kind::Broadcast),
            ("224.0.0.1", Kind::Multicast),
            ("ff02::1", Kind::Multicast),
        ] {
            assert_eq!(kind(address), expected, "{address}");
        }
    }
}
