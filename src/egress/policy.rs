//! Which addresses a link may reach. One deny list, judged on normalised addresses, with
//! `policy.allow_cidrs` as the only way to open a hole in it.

use std::net::IpAddr;
#[cfg(test)]
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// IPv4 ranges no link may reach: every row of IANA's IPv4 Special-Purpose Address Registry
/// (more specific rows first, so the first match names the reason) plus multicast. Rows the
/// registry marks globally reachable (PCP/TURN anycast, AS112, AMT) are denied too: no web
/// page lives there, and a link that names one is up to something.
const DENY_V4: &[(&str, &str)] = &[
    ("0.0.0.0/32", "this host on this network"),
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "CGNAT shared address space"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/29", "IPv4 service continuity (DS-Lite)"),
    ("192.0.0.8/32", "IPv4 dummy address"),
    ("192.0.0.9/32", "PCP anycast"),
    ("192.0.0.10/32", "TURN anycast"),
    ("192.0.0.170/31", "NAT64/DNS64 discovery"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.31.196.0/24", "AS112"),
    ("192.52.193.0/24", "AMT"),
    ("192.88.99.0/24", "6to4 relay anycast (deprecated)"),
    ("192.168.0.0/16", "private"),
    ("192.175.48.0/24", "AS112 direct delegation"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "limited broadcast"),
    ("240.0.0.0/4", "reserved"),
];

/// IPv6 ranges no link may reach: every row of IANA's IPv6 Special-Purpose Address Registry
/// (more specific rows first) plus the deprecated and multicast blocks. The v4-mapped
/// (`::ffff:0:0/96`) and IPv4-translated (`::ffff:0:0:0/96`, SIIT) forms are not here: such an
/// address is judged as the IPv4 address inside it ([`canonical`]). The translation and
/// tunnel prefixes are denied whole, since the IPv4 address they carry could be anything.
const DENY_V6: &[(&str, &str)] = &[
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("64:ff9b::/96", "NAT64"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("100:0:0:1::/64", "dummy prefix"),
    ("2001::/32", "Teredo"),
    ("2001:1::1/128", "PCP anycast"),
    ("2001:1::2/128", "TURN anycast"),
    ("2001:1::3/128", "DNS-SD SRP anycast"),
    ("2001:2::/48", "benchmarking"),
    ("2001:3::/32", "AMT"),
    ("2001:4:112::/48", "AS112"),
    ("2001:10::/28", "ORCHID (deprecated)"),
    ("2001:20::/28", "ORCHIDv2"),
    ("2001:30::/28", "drone remote ID tags"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001:db8::/32", "documentation"),
    ("2002::/16", "6to4"),
    ("2620:4f:8000::/48", "AS112 direct delegation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "SRv6 SIDs"),
    ("fc00::/7", "unique local (ULA)"),
    ("fec0::/10", "site-local (deprecated)"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
];

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub addr: IpAddr,
    pub range: IpNet,
    pub what: &'static str,
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, in the {} range ({})",
            self.addr, self.what, self.range
        )
    }
}

/// The address policy: the built-in deny list minus the configured exceptions.
#[derive(Debug, Clone)]
pub struct Policy {
    deny_v4: Vec<(Ipv4Net, &'static str)>,
    deny_v6: Vec<(Ipv6Net, &'static str)>,
    allow: Vec<IpNet>,
}

impl Policy {
    pub fn new(allow: Vec<IpNet>) -> Policy {
        Policy {
            deny_v4: DENY_V4
                .iter()
                .map(|(n, w)| (n.parse().expect("built-in range"), *w))
                .collect(),
            deny_v6: DENY_V6
                .iter()
                .map(|(n, w)| (n.parse().expect("built-in range"), *w))
                .collect(),
            allow,
        }
    }

    /// Judges one address. A v4-mapped IPv6 address is judged as the IPv4 address it carries,
    /// for both the deny list and the exceptions, so `::ffff:127.0.0.2` is exactly as
    /// forbidden as `127.0.0.2`.
    pub fn check(&self, addr: IpAddr) -> Result<(), Denied> {
        let addr = canonical(addr);
        if self.allow.iter().any(|net| net.contains(&addr)) {
            return Ok(());
        }
        let hit = match addr {
            IpAddr::V4(v4) => self
                .deny_v4
                .iter()
                .find(|(n, _)| n.contains(&v4))
                .map(|(n, w)| (IpNet::V4(*n), *w)),
            IpAddr::V6(v6) => self
                .deny_v6
                .iter()
                .find(|(n, _)| n.contains(&v6))
                .map(|(n, w)| (IpNet::V6(*n), *w)),
        };
        match hit {
            Some((range, what)) => Err(Denied { addr, range, what }),
            None => Ok(()),
        }
    }
}

/// The address a connection would really reach: a v4-mapped (`::ffff:a.b.c.d`) or
/// IPv4-translated (`::ffff:0:a.b.c.d`, SIIT) IPv6 address is its IPv4 address.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            match v6.segments() {
                [0, 0, 0, 0, 0xffff, 0, hi, lo] => IpAddr::V4(std::net::Ipv4Addr::from(
                    (u32::from(hi) << 16) | u32::from(lo),
                )),
                _ => IpAddr::V6(v6),
            }
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(p: &Policy, a: &str) -> bool {
        p.check(a.parse().unwrap()).is_err()
    }

    /// Every range, edge by edge: its first and last address are denied, the addresses just
    /// outside it are not (unless a neighbouring range claims them).
    #[test]
    fn every_range_edge_by_edge() {
        let p = Policy::new(vec![]);
        let mut checked = 0;
        for (net, _) in DENY_V4 {
            let n: Ipv4Net = net.parse().unwrap();
            let (first, last) = (u32::from(n.network()), u32::from(n.broadcast()));
            assert!(
                denied(&p, &Ipv4Addr::from(first).to_string()),
                "{net} first"
            );
            assert!(denied(&p, &Ipv4Addr::from(last).to_string()), "{net} last");
            for outside in [first.checked_sub(1), last.checked_add(1)]
                .into_iter()
                .flatten()
            {
                let o = Ipv4Addr::from(outside);
                let in_other = DENY_V4
                    .iter()
                    .any(|(m, _)| m.parse::<Ipv4Net>().unwrap().contains(&o));
                assert_eq!(denied(&p, &o.to_string()), in_other, "{o} next to {net}");
                checked += 1;
            }
        }
        for (net, _) in DENY_V6 {
            let n: Ipv6Net = net.parse().unwrap();
            let (first, last) = (u128::from(n.network()), u128::from(n.broadcast()));
            assert!(
                denied(&p, &Ipv6Addr::from(first).to_string()),
                "{net} first"
            );
            assert!(denied(&p, &Ipv6Addr::from(last).to_string()), "{net} last");
            for outside in [first.checked_sub(1), last.checked_add(1)]
                .into_iter()
                .flatten()
            {
                let o = Ipv6Addr::from(outside);
                let in_other = DENY_V6
                    .iter()
                    .any(|(m, _)| m.parse::<Ipv6Net>().unwrap().contains(&o))
                    || matches!(canonical(IpAddr::V6(o)), IpAddr::V4(v4) if p.check(IpAddr::V4(v4)).is_err());
                assert_eq!(denied(&p, &o.to_string()), in_other, "{o} next to {net}");
                checked += 1;
            }
        }
        assert!(checked > 40);
    }

    /// IANA's IPv4 Special-Purpose Address Registry, row by row (as of 2025), and the
    /// multicast block: the first and last address of every row is denied.
    const IANA_V4: &[(&str, &str)] = &[
        ("0.0.0.0/8", "This network"),
        ("0.0.0.0/32", "This host on this network"),
        ("10.0.0.0/8", "Private-Use"),
        ("100.64.0.0/10", "Shared Address Space"),
        ("127.0.0.0/8", "Loopback"),
        ("169.254.0.0/16", "Link Local"),
        ("172.16.0.0/12", "Private-Use"),
        ("192.0.0.0/24", "IETF Protocol Assignments"),
        ("192.0.0.0/29", "IPv4 Service Continuity Prefix"),
        ("192.0.0.8/32", "IPv4 dummy address"),
        ("192.0.0.9/32", "Port Control Protocol Anycast"),
        ("192.0.0.10/32", "Traversal Using Relays around NAT Anycast"),
        ("192.0.0.170/32", "NAT64/DNS64 Discovery"),
        ("192.0.0.171/32", "NAT64/DNS64 Discovery"),
        ("192.0.2.0/24", "Documentation (TEST-NET-1)"),
        ("192.31.196.0/24", "AS112-v4"),
        ("192.52.193.0/24", "AMT"),
        ("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)"),
        ("192.168.0.0/16", "Private-Use"),
        ("192.175.48.0/24", "Direct Delegation AS112 Service"),
        ("198.18.0.0/15", "Benchmarking"),
        ("198.51.100.0/24", "Documentation (TEST-NET-2)"),
        ("203.0.113.0/24", "Documentation (TEST-NET-3)"),
        ("240.0.0.0/4", "Reserved"),
        ("255.255.255.255/32", "Limited Broadcast"),
        (
            "224.0.0.0/4",
            "Multicast (IPv4 Multicast Address Space registry)",
        ),
    ];

    /// IANA's IPv6 Special-Purpose Address Registry, row by row (as of 2025), with the
    /// deprecated and multicast blocks of the IPv6 Address Space registry.
    const IANA_V6: &[(&str, &str)] = &[
        ("::1/128", "Loopback Address"),
        ("::/128", "Unspecified Address"),
        ("64:ff9b::/96", "IPv4-IPv6 Translat."),
        ("64:ff9b:1::/48", "IPv4-IPv6 Translat. (local-use)"),
        ("100::/64", "Discard-Only Address Block"),
        ("100:0:0:1::/64", "Dummy IPv6 Prefix"),
        ("2001::/23", "IETF Protocol Assignments"),
        ("2001::/32", "TEREDO"),
        ("2001:1::1/128", "Port Control Protocol Anycast"),
        ("2001:1::2/128", "Traversal Using Relays around NAT Anycast"),
        (
            "2001:1::3/128",
            "DNS-SD Service Registration Protocol Anycast",
        ),
        ("2001:2::/48", "Benchmarking"),
        ("2001:3::/32", "AMT"),
        ("2001:4:112::/48", "AS112-v6"),
        ("2001:10::/28", "Deprecated (previously ORCHID)"),
        ("2001:20::/28", "ORCHIDv2"),
        (
            "2001:30::/28",
            "Drone Remote ID Protocol Entity Tags (DETs) Prefix",
        ),
        ("2001:db8::/32", "Documentation"),
        ("2002::/16", "6to4"),
        ("2620:4f:8000::/48", "Direct Delegation AS112 Service"),
        ("3fff::/20", "Documentation"),
        ("5f00::/16", "Segment Routing (SRv6) SIDs"),
        ("fc00::/7", "Unique-Local"),
        ("fe80::/10", "Link-Local Unicast"),
        ("::/96", "IPv4-compatible (deprecated, RFC 4291)"),
        ("fec0::/10", "Site-local (deprecated, RFC 3879)"),
        ("ff00::/8", "Multicast"),
    ];

    #[test]
    fn every_iana_special_purpose_row_is_denied() {
        let p = Policy::new(vec![]);
        for (net, name) in IANA_V4 {
            let n: Ipv4Net = net.parse().unwrap();
            for a in [n.network(), n.broadcast()] {
                assert!(denied(&p, &a.to_string()), "IANA v4 {net} ({name}): {a}");
            }
        }
        for (net, name) in IANA_V6 {
            let n: Ipv6Net = net.parse().unwrap();
            for a in [n.network(), n.broadcast()] {
                assert!(denied(&p, &a.to_string()), "IANA v6 {net} ({name}): {a}");
            }
        }
    }

    /// The two IPv6 forms that carry an IPv4 address and reach it: judged as that address,
    /// for the deny list and the exceptions alike.
    #[test]
    fn ipv4_mapped_and_translated_are_their_ipv4_address() {
        let p = Policy::new(vec![]);
        for (v6, v4) in [
            ("::ffff:10.0.0.1", "10.0.0.1"),
            ("::ffff:0:10.0.0.1", "10.0.0.1"),
            ("::ffff:0:a00:1", "10.0.0.1"),
            ("::ffff:0:7f00:9", "127.0.0.9"),
            ("::ffff:0:169.254.169.254", "169.254.169.254"),
            ("::ffff:0:1.1.1.1", "1.1.1.1"),
        ] {
            let ip: IpAddr = v6.parse().unwrap();
            assert_eq!(canonical(ip), v4.parse::<IpAddr>().unwrap(), "{v6}");
            assert_eq!(denied(&p, v6), denied(&p, v4), "{v6} is judged as {v4}");
        }
        assert!(denied(&p, "::ffff:0:a00:1"), "SIIT form of 10.0.0.1");
        assert!(!denied(&p, "::ffff:0:101:101"), "SIIT form of 1.1.1.1");
        let open = Policy::new(vec!["127.0.0.9/32".parse().unwrap()]);
        assert!(
            !denied(&open, "::ffff:0:7f00:9"),
            "the exception follows the address"
        );
    }

    #[test]
    fn named_addresses() {
        let p = Policy::new(vec![]);
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "100.64.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.251",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2001:0:4136:e378::1",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "100::1",
            "::ffff:0:a00:1",
            "3fff::1",
            "5f00::1",
            "2001:1ff::1",
        ] {
            assert!(denied(&p, a), "{a} must be denied");
        }
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "2001:4860::8888",
        ] {
            assert!(!denied(&p, a), "{a} must be allowed");
        }
    }

    #[test]
    fn allow_cidrs_open_only_their_hole() {
        let p = Policy::new(vec!["127.0.0.1/32".parse().unwrap()]);
        assert!(!denied(&p, "127.0.0.1"));
        assert!(
            !denied(&p, "::ffff:127.0.0.1"),
            "mapped form follows the same exception"
        );
        assert!(denied(&p, "127.0.0.2"));
        assert!(denied(&p, "::1"));
        let reason = p
            .check("127.0.0.2".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(reason.contains("loopback"), "{reason}");
    }
}
