//! Which addresses a link may reach. One deny list, judged on normalised addresses, with
//! `policy.allow_cidrs` as the only way to open a hole in it.

use std::net::IpAddr;
#[cfg(test)]
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// IPv4 ranges no link may reach: this host, private networks, shared address space,
/// documentation, benchmarking, multicast and reserved space.
const DENY_V4: &[(&str, &str)] = &[
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "CGNAT shared address space"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
];

/// IPv6 ranges no link may reach (the first match names the reason). `::ffff:0:0/96` is not here: a v4-mapped address is judged
/// by the IPv4 address inside it. The translation and tunnel prefixes are denied whole,
/// since the IPv4 address they carry could be anything.
const DENY_V6: &[(&str, &str)] = &[
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("64:ff9b::/96", "NAT64"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001::/32", "Teredo"),
    ("2001:db8::/32", "documentation"),
    ("2002::/16", "6to4"),
    ("fc00::/7", "unique local (ULA)"),
    ("fec0::/10", "site-local"),
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
        write!(f, "{} is {} ({})", self.addr, self.what, self.range)
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

/// The address a connection would really reach: a v4-mapped IPv6 address is its IPv4 address.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
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
                    || o.to_ipv4_mapped()
                        .is_some_and(|v4| p.check(IpAddr::V4(v4)).is_err());
                assert_eq!(denied(&p, &o.to_string()), in_other, "{o} next to {net}");
                checked += 1;
            }
        }
        assert!(checked > 40);
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
