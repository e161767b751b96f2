//! Upstream proxies for egress-point tests: a SOCKS5 server and an HTTP CONNECT server on
//! loopback, each dialling out from its own source address (127.0.0.2, 127.0.0.3, ...) so a
//! fixture can tell them apart by peer, and each recording every target it was asked for.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Socks5,
    Connect,
}

/// A running test proxy.
pub struct TestProxy {
    pub addr: SocketAddr,
    /// What it was asked to connect to, as the client sent it (`ip:port`, or a name).
    pub asked: Arc<Mutex<Vec<String>>>,
}

impl TestProxy {
    /// Listens on `listen_ip`, dials out from `source_ip`.
    pub async fn start(kind: Kind, listen_ip: &str, source_ip: &str) -> TestProxy {
        let listener = TcpListener::bind((listen_ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let source: IpAddr = source_ip.parse().unwrap();
        let asked: Arc<Mutex<Vec<String>>> = Default::default();
        let log = asked.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = serve(kind, client, source, log).await;
                });
            }
        });
        TestProxy { addr, asked }
    }

    pub fn url(&self, kind: Kind) -> String {
        match kind {
            Kind::Socks5 => format!("socks5://{}", self.addr),
            Kind::Connect => format!("http://{}", self.addr),
        }
    }

    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

async fn dial(target: &str, source: IpAddr) -> std::io::Result<TcpStream> {
    let target: SocketAddr = match target.parse() {
        Ok(a) => a,
        // A name: the test proxies never resolve one (hoptrace must not send one).
        Err(_) => return Err(std::io::Error::other("names are not resolved here")),
    };
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(target).await
}

async fn serve(
    kind: Kind,
    mut client: TcpStream,
    source: IpAddr,
    log: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let target = match kind {
        Kind::Socks5 => {
            let mut hello = [0u8; 2];
            client.read_exact(&mut hello).await?;
            let mut methods = vec![0u8; hello[1] as usize];
            client.read_exact(&mut methods).await?;
            client.write_all(&[5, 0]).await?;
            let mut head = [0u8; 4];
            client.read_exact(&mut head).await?;
            let host = match head[3] {
                1 => {
                    let mut a = [0u8; 4];
                    client.read_exact(&mut a).await?;
                    IpAddr::from(a).to_string()
                }
                4 => {
                    let mut a = [0u8; 16];
                    client.read_exact(&mut a).await?;
                    format!("[{}]", IpAddr::from(a))
                }
                _ => {
                    let mut len = [0u8; 1];
                    client.read_exact(&mut len).await?;
                    let mut name = vec![0u8; len[0] as usize];
                    client.read_exact(&mut name).await?;
                    String::from_utf8_lossy(&name).into_owned()
                }
            };
            let mut port = [0u8; 2];
            client.read_exact(&mut port).await?;
            format!("{host}:{}", u16::from_be_bytes(port))
        }
        Kind::Connect => {
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                let mut b = [0u8; 1];
                if client.read(&mut b).await? == 0 {
                    return Ok(());
                }
                head.push(b[0]);
            }
            let line = String::from_utf8_lossy(&head).into_owned();
            line.split_whitespace().nth(1).unwrap_or("").to_string()
        }
    };
    log.lock().unwrap().push(target.clone());
    let upstream = dial(&target, source).await;
    let ok = upstream.is_ok();
    match kind {
        Kind::Socks5 => {
            let rep = if ok { 0 } else { 5 };
            client.write_all(&[5, rep, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        }
        Kind::Connect => {
            let status = if ok {
                "200 Connection established"
            } else {
                "502 Bad Gateway"
            };
            client
                .write_all(format!("HTTP/1.1 {status}\r\n\r\n").as_bytes())
                .await?;
        }
    }
    if let Ok(mut up) = upstream {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
    }
    Ok(())
}

/// Two egress points in `env`'s configuration: `nl`, a SOCKS5 proxy dialling out from
/// 127.0.0.2, and `us`, an HTTP CONNECT proxy from 127.0.0.3.
pub async fn two_points(env: &mut super::TestEnv) -> (TestProxy, TestProxy) {
    let socks = TestProxy::start(Kind::Socks5, "127.0.0.1", "127.0.0.2").await;
    let connect = TestProxy::start(Kind::Connect, "127.0.0.1", "127.0.0.3").await;
    for (name, proxy, kind, country) in [
        ("nl", &socks, Kind::Socks5, "NL"),
        ("us", &connect, Kind::Connect, "US"),
    ] {
        env.config.egress.points.insert(
            name.into(),
            hoptrace::config::Point {
                proxy: proxy.url(kind),
                country: country.into(),
                nameservers: vec![],
            },
        );
    }
    (socks, connect)
}
