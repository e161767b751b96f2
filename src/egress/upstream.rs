//! An egress point's upstream proxy: SOCKS5 or HTTP CONNECT, always asked for an address the
//! gate vetted — an IP literal, never a name — so the policy holds through any proxy (a
//! proxy asked for a name would resolve it itself, past the gate).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the proxy may take to connect us and say so.
const HANDSHAKE: Duration = Duration::from_secs(10);

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
    pub async fn tunnel(&self, target: SocketAddr) -> Result<TcpStream, String> {
        let work = async {
            let mut s = TcpStream::connect(self.addr())
                .await
                .map_err(|e| format!("cannot reach the proxy: {e}"))?;
            let _ = s.set_nodelay(true);
            match self {
                Upstream::Socks5(_) => socks5(&mut s, target).await?,
                Upstream::Connect(_) => connect(&mut s, target).await?,
            }
            Ok(s)
        };
        tokio::time::timeout(HANDSHAKE, work)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", HANDSHAKE.as_secs())))
    }
}

async fn socks5(s: &mut TcpStream, target: SocketAddr) -> Result<(), String> {
    let io = |e: std::io::Error| format!("SOCKS5: {e}");
    s.write_all(&[5, 1, 0]).await.map_err(io)?;
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).await.map_err(io)?;
    if reply != [5, 0] {
        return Err(format!(
            "SOCKS5: the proxy wants authentication or is no SOCKS5 proxy ({reply:?})"
        ));
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
        return Err(format!(
            "SOCKS5: the proxy refused {target} (reply {})",
            head[1]
        ));
    }
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len).await.map_err(io)?;
            usize::from(len[0]) + 2
        }
        other => return Err(format!("SOCKS5: bad address type {other} in the reply")),
    };
    let mut skip = vec![0u8; rest];
    s.read_exact(&mut skip).await.map_err(io)?;
    Ok(())
}

async fn connect(s: &mut TcpStream, target: SocketAddr) -> Result<(), String> {
    let io = |e: std::io::Error| format!("CONNECT: {e}");
    // `SocketAddr`'s Display brackets an IPv6 address, as the request line wants it.
    let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    s.write_all(req.as_bytes()).await.map_err(io)?;
    // The answer's head, byte by byte so nothing of the tunnel is read past it (bounded).
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= 8192 {
            return Err("CONNECT: the proxy's answer has no end".into());
        }
        let mut b = [0u8; 1];
        if s.read(&mut b).await.map_err(io)? == 0 {
            return Err("CONNECT: the proxy closed the connection".into());
        }
        head.push(b[0]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line.lines().next().unwrap_or("").to_string();
    match status.split_whitespace().nth(1) {
        Some(code) if code.starts_with('2') => Ok(()),
        _ => Err(format!("CONNECT: the proxy refused {target}: {status}")),
    }
}
