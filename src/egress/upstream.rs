//! An egress point's upstream proxy: SOCKS5 or HTTP CONNECT, always asked for an address the
//! gate vetted — an IP literal, never a name — so the policy holds through any proxy (a
//! proxy asked for a name would resolve it itself, past the gate).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the proxy may take to connect us and say so.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// What the upstream proxy did instead of connecting us (cloned with the egress error that
/// carries it, so its I/O errors are shared).
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach the proxy: {0}")]
    Unreachable(Arc<std::io::Error>),
    #[error("no answer within {} s", HANDSHAKE.as_secs())]
    Silent,
    #[error("{0}: {1}")]
    Io(Protocol, Arc<std::io::Error>),
    #[error("SOCKS5: the proxy wants authentication or is no SOCKS5 proxy ({0:?})")]
    Socks5Greeting([u8; 2]),
    #[error("SOCKS5: the proxy refused {target} (reply {reply})")]
    Socks5Refused { target: SocketAddr, reply: u8 },
    #[error("SOCKS5: bad address type {0} in the reply")]
    Socks5AddressType(u8),
    #[error("CONNECT: the proxy's answer has no end")]
    ConnectEndless,
    #[error("CONNECT: the proxy closed the connection")]
    ConnectClosed,
    #[error("CONNECT: the proxy refused {target}: {status}")]
    ConnectRefused { target: SocketAddr, status: String },
}

/// The proxy protocol a failure happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Socks5,
    Connect,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Socks5 => "SOCKS5",
            Protocol::Connect => "CONNECT",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Socks5(SocketAddr),
    /// HTTP `CONNECT`.
    Connect(SocketAddr),
}

impl Upstream {
    /// `socks5://ip:port` or `http://ip:port` (the config checked the form).
    pub fn parse(proxy: &str) -> Option<Upstream> {
        let addr = |rest: &str| rest.trim_end_matches('/').parse().ok();
        if let Some(rest) = proxy.strip_prefix("socks5://") {
            return addr(rest).map(Upstream::Socks5);
        }
        proxy
            .strip_prefix("http://")
            .and_then(addr)
            .map(Upstream::Connect)
    }

    pub fn addr(&self) -> SocketAddr {
        match *self {
            Upstream::Socks5(a) | Upstream::Connect(a) => a,
        }
    }

    /// A stream to `target` through the proxy; the error says what the proxy did.
    pub async fn tunnel(&self, target: SocketAddr) -> Result<TcpStream, UpstreamError> {
        let work = async {
            let mut s = TcpStream::connect(self.addr())
                .await
                .map_err(|e| UpstreamError::Unreachable(Arc::new(e)))?;
            let _ = s.set_nodelay(true);
            match self {
                Upstream::Socks5(_) => socks5(&mut s, target).await?,
                Upstream::Connect(_) => connect(&mut s, target).await?,
            }
            Ok(s)
        };
        tokio::time::timeout(HANDSHAKE, work)
            .await
            .unwrap_or(Err(UpstreamError::Silent))
    }
}

async fn socks5(s: &mut TcpStream, target: SocketAddr) -> Result<(), UpstreamError> {
    let io = |e| UpstreamError::Io(Protocol::Socks5, Arc::new(e));
    s.write_all(&[5, 1, 0]).await.map_err(io)?;
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).await.map_err(io)?;
    if reply != [5, 0] {
        return Err(UpstreamError::Socks5Greeting(reply));
    }
    let mut req = vec![5, 1, 0];
    match target.ip() {
        IpAddr::V4(v4) => {
            req.push(1);
            req.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            req.push(4);
            req.extend_from_slice(&v6.octets());
        }
    }
    req.extend_from_slice(&target.port().to_be_bytes());
    s.write_all(&req).await.map_err(io)?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.map_err(io)?;
    if head[1] != 0 {
        return Err(UpstreamError::Socks5Refused {
            target,
            reply: head[1],
        });
    }
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len).await.map_err(io)?;
            usize::from(len[0]) + 2
        }
        other => return Err(UpstreamError::Socks5AddressType(other)),
    };
    let mut skip = vec![0u8; rest];
    s.read_exact(&mut skip).await.map_err(io)?;
    Ok(())
}

async fn connect(s: &mut TcpStream, target: SocketAddr) -> Result<(), UpstreamError> {
    let io = |e| UpstreamError::Io(Protocol::Connect, Arc::new(e));
    // `SocketAddr`'s Display brackets an IPv6 address, as the request line wants it.
    let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    s.write_all(req.as_bytes()).await.map_err(io)?;
    // The answer's head, byte by byte so nothing of the tunnel is read past it (bounded).
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= 8192 {
            return Err(UpstreamError::ConnectEndless);
        }
        let mut b = [0u8; 1];
        if s.read(&mut b).await.map_err(io)? == 0 {
            return Err(UpstreamError::ConnectClosed);
        }
        head.push(b[0]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line.lines().next().unwrap_or("").to_string();
    match status.split_whitespace().nth(1) {
        Some(code) if code.starts_with('2') => Ok(()),
        _ => Err(UpstreamError::ConnectRefused { target, status }),
    }
}
