//! The one gate every outbound connection passes: resolve with hickory, judge every address
//! against [`policy::Policy`], then connect to a vetted address — never a second lookup, so a
//! name that answers differently between check and connect (DNS rebinding) gains nothing.
//!
//! The HTTP client reaches it through [`connector::EgressConnector`]; the browser's proxy
//! (and anything else that opens a socket for a link) calls [`Egress::connect`].

pub mod connector;
pub mod policy;
pub mod proxy;
pub mod upstream;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::TokioResolver;
use tokio::net::TcpStream;

use crate::config::Config;
pub use policy::{Denied, Policy};
pub use upstream::Upstream;

/// Why the gate refused or failed to open a connection.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EgressError {
    /// Policy: only http and https links are followed.
    #[error("scheme `{0}` is not allowed (only http and https)")]
    Scheme(String),
    /// Policy: the host is, or resolves to, a denied address. Nothing was connected to.
    /// `host` is the name that resolved to it (`None` for an IP literal).
    #[error("{} {denied}, which the egress policy refuses", match host {
        Some(h) => format!("{h} resolves to"),
        None => "the address".to_string(),
    })]
    Denied {
        host: Option<String>,
        denied: Denied,
    },
    #[error("no host in URL")]
    NoHost,
    #[error("DNS lookup for {host} failed: {message}")]
    Dns { host: String, message: String },
    #[error("DNS lookup for {host} timed out")]
    DnsTimeout { host: String },
    #[error("connecting to {addr} failed: {message}")]
    Connect { addr: SocketAddr, message: String },
    /// The egress point's proxy is down or would not connect to the (vetted) address.
    #[error("proxy {proxy} for {target}: {message}")]
    Proxy {
        proxy: SocketAddr,
        target: SocketAddr,
        message: upstream::UpstreamError,
    },
}

impl EgressError {
    /// True when policy refused the connection (as opposed to the network failing).
    pub fn is_policy(&self) -> bool {
        matches!(self, EgressError::Scheme(_) | EgressError::Denied { .. })
    }
}

/// DNS + policy + connect (directly, or through an egress point's proxy).
pub struct Egress {
    policy: Policy,
    resolver: TokioResolver,
    dns_timeout: Duration,
    upstream: Option<Upstream>,
    /// Names held vetted by a [`Pinned`]: a connection to one goes to these addresses
    /// without a second lookup.
    pins: Mutex<HashMap<String, Pin>>,
}

/// A pinned name: how many [`Pinned`] hold it, and its vetted addresses.
type Pin = (usize, Arc<[IpAddr]>);

/// A name vetted once and held so: while it lives, a connection to that name goes to
/// [`Pinned::addrs`] (no second lookup between deciding on the addresses and dialling one).
pub struct Pinned {
    egress: Arc<Egress>,
    name: Option<String>,
    /// The vetted addresses.
    pub addrs: Arc<[IpAddr]>,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else {
            return;
        };
        let mut pins = self.egress.pins.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = pins.get_mut(&name) {
            entry.0 -= 1;
            if entry.0 == 0 {
                pins.remove(&name);
            }
        }
    }
}

impl Egress {
    /// The direct way out: `[dns]`'s nameservers, hoptrace's own address.
    pub fn new(config: &Config) -> Result<Arc<Egress>, EgressError> {
        Egress::build(config, &config.dns.nameservers, None)
    }

    /// The way out through `point`: its nameservers (else `[dns]`'s), its proxy.
    pub fn for_point(
        config: &Config,
        point: &crate::config::Point,
    ) -> Result<Arc<Egress>, EgressError> {
        let nameservers = match point.nameservers.is_empty() {
            true => &config.dns.nameservers,
            false => &point.nameservers,
        };
        let upstream = Upstream::parse(&point.proxy).ok_or_else(|| EgressError::Dns {
            host: point.proxy.clone(),
            message: "not a socks5:// or http:// proxy address".into(),
        })?;
        Egress::build(config, nameservers, Some(upstream))
    }

    fn build(
        config: &Config,
        nameservers: &[SocketAddr],
        upstream: Option<Upstream>,
    ) -> Result<Arc<Egress>, EgressError> {
        let dns_timeout = config.dns_timeout();
        let mut builder = if nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| EgressError::Dns {
                host: "<system resolver>".into(),
                message: format!("cannot read the system DNS configuration: {e}"),
            })?
        } else {
            let servers = nameservers
                .iter()
                .map(|s| (s.ip(), s.port()))
                .map(|(ip, port)| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = port;
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = port;
                    NameServerConfig::new(ip, true, vec![udp, tcp])
                })
                .collect();
            let mut b = TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            );
            // Configured nameservers are the whole truth: no /etc/hosts shortcuts.
            b.options_mut().use_hosts_file = ResolveHosts::Never;
            b
        };
        let opts = builder.options_mut();
        // Both families, so every address a name has is judged, not just the first family.
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.timeout = dns_timeout.min(Duration::from_secs(5));
        opts.attempts = 2;
        let resolver = builder.build().map_err(|e| EgressError::Dns {
            host: "<resolver>".into(),
            message: e.to_string(),
        })?;
        Ok(Arc::new(Egress {
            policy: Policy::new(config.policy.allow_cidrs.clone()),
            resolver,
            dns_timeout,
            upstream,
            pins: Mutex::default(),
        }))
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The addresses `host` may be reached at: an IP literal (in any spelling the URL
    /// standard accepts) is judged as is; a name is resolved and *every* address judged. One
    /// denied address refuses the whole name: an attacker controls which answer a client
    /// would pick.
    pub async fn vet(&self, host: &str) -> Result<Vec<IpAddr>, EgressError> {
        let (addrs, name) = match parse_host(host)? {
            HostKind::Ip(ip) => (vec![ip], None),
            HostKind::Name(name) => (self.lookup(&name).await?, Some(name)),
        };
        for addr in &addrs {
            self.policy
                .check(*addr)
                .map_err(|denied| EgressError::Denied {
                    host: name.clone(),
                    denied,
                })?;
        }
        Ok(addrs)
    }

    /// Vets `host` and holds the answer (see [`Pinned`]) until the pin is dropped. A name
    /// pinned already is vetted again and the newer answer kept: both were vetted.
    pub async fn pin(self: &Arc<Self>, host: &str) -> Result<Pinned, EgressError> {
        let addrs: Arc<[IpAddr]> = self.vet(host).await?.into();
        let name = match parse_host(host)? {
            HostKind::Ip(_) => None,
            HostKind::Name(name) => Some(name),
        };
        if let Some(name) = &name {
            let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
            let entry = pins.entry(name.clone()).or_insert((0, addrs.clone()));
            entry.0 += 1;
            entry.1 = addrs.clone();
        }
        Ok(Pinned {
            egress: self.clone(),
            name,
            addrs,
        })
    }

    /// The addresses `host` is pinned to, if a [`Pinned`] holds it.
    fn pinned(&self, host: &str) -> Option<Vec<IpAddr>> {
        let HostKind::Name(name) = parse_host(host).ok()? else {
            return None;
        };
        let pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        pins.get(&name).map(|(_, addrs)| addrs.to_vec())
    }

    async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, EgressError> {
        let lookup = tokio::time::timeout(self.dns_timeout, self.resolver.lookup_ip(name))
            .await
            .map_err(|_| EgressError::DnsTimeout { host: name.into() })?
            .map_err(|e| match e {
                NetError::Timeout => EgressError::DnsTimeout { host: name.into() },
                e if e.is_no_records_found() => EgressError::Dns {
                    host: name.into(),
                    message: "no such host".into(),
                },
                e => EgressError::Dns {
                    host: name.into(),
                    message: e.to_string(),
                },
            })?;
        let mut addrs: Vec<IpAddr> = Vec::new();
        for a in lookup.iter() {
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
        if addrs.is_empty() {
            return Err(EgressError::Dns {
                host: name.into(),
                message: "no addresses".into(),
            });
        }
        Ok(addrs)
    }

    /// Vets `host` (or takes its pinned answer) and connects to the first vetted address
    /// that answers. The returned address is the one actually connected to.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(TcpStream, SocketAddr), EgressError> {
        let addrs = match self.pinned(host) {
            Some(addrs) => addrs,
            None => self.vet(host).await?,
        };
        let mut last = None;
        for ip in addrs {
            let addr = SocketAddr::new(ip, port);
            if let Some(up) = &self.upstream {
                // The proxy is asked for the vetted address itself, never the name.
                match up.tunnel(addr).await {
                    Ok(stream) => return Ok((stream, addr)),
                    Err(message) => {
                        last = Some(EgressError::Proxy {
                            proxy: up.addr(),
                            target: addr,
                            message,
                        });
                        continue;
                    }
                }
            }
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok((stream, addr));
                }
                Err(e) => {
                    last = Some(EgressError::Connect {
                        addr,
                        message: e.to_string(),
                    })
                }
            }
        }
        Err(last.unwrap_or(EgressError::NoHost))
    }
}

enum HostKind {
    Ip(IpAddr),
    Name(String),
}

/// Normalises a host the way the URL standard does (decimal, hex, octal and short IPv4
/// forms; bracketed IPv6), so an IP literal is recognised whatever its spelling.
fn parse_host(host: &str) -> Result<HostKind, EgressError> {
    if host.is_empty() {
        return Err(EgressError::NoHost);
    }
    // A bare IPv6 literal (`::1`, as a proxy's CONNECT line or a split host gives it) is not
    // a URL host without its brackets, but it is an address all the same.
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(HostKind::Ip(ip));
    }
    match url::Host::parse(host) {
        Ok(url::Host::Ipv4(v4)) => Ok(HostKind::Ip(IpAddr::V4(v4))),
        Ok(url::Host::Ipv6(v6)) => Ok(HostKind::Ip(IpAddr::V6(v6))),
        Ok(url::Host::Domain(d)) => Ok(HostKind::Name(d)),
        Err(e) => Err(EgressError::Dns {
            host: host.into(),
            message: format!("invalid host: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_spellings_normalise() {
        for spelling in [
            "2130706433",
            "0x7f000001",
            "0177.0.0.1",
            "127.1",
            "0x7f.1",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "::ffff:127.0.0.1",
        ] {
            match parse_host(spelling) {
                Ok(HostKind::Ip(ip)) => assert_eq!(
                    policy::canonical(ip),
                    "127.0.0.1".parse::<IpAddr>().unwrap(),
                    "{spelling}"
                ),
                _ => panic!("{spelling} is an IP literal"),
            }
        }
        assert!(matches!(parse_host("example.com"), Ok(HostKind::Name(_))));
        assert!(
            matches!(parse_host("::1"), Ok(HostKind::Ip(_))),
            "bare IPv6"
        );
        assert!(matches!(parse_host("[::1]"), Ok(HostKind::Ip(_))));
    }
}
