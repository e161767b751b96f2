//! The browser's only way out: a local HTTP proxy that sends every request through the same
//! gate as the HTTP client ([`Egress::connect`]: hickory, policy, pinned address) and records
//! it. One proxy per resolution, so a job's requests are told apart from anything else the
//! browser does; Chromium's own background traffic goes to [`Refuser`], which refuses it all.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::{Egress, EgressError};

/// Largest request or response head the proxy accepts (what browsers accept is larger
/// still, but a page that needs more is not one a link check must render).
const MAX_HEAD: usize = 64 * 1024;
/// Time for a client to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// What the proxy did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRecord {
    /// `http://host:port/path` for plain HTTP, `host:port` for a CONNECT tunnel.
    pub target: String,
    /// `None` when it was relayed; otherwise why not.
    pub refused: Option<String>,
    /// True when policy refused it (as opposed to the network failing).
    pub blocked: bool,
}

/// A proxy serving one resolution. Dropping it stops it and every tunnel it opened.
pub struct JobProxy {
    pub addr: SocketAddr,
    records: Arc<Mutex<Vec<ProxyRecord>>>,
    budget: Arc<Budget>,
    _tasks: JoinSet<()>,
}

/// Bytes the whole visit may still move through the proxy, over all its connections and
/// both directions: a page may load scripts and images, never a payload, however many
/// connections it opens at once.
struct Budget {
    total: u64,
    left: AtomicU64,
    spent: AtomicBool,
}

impl Budget {
    /// Takes up to `want` bytes; fewer (possibly none) when the budget runs out.
    fn take(&self, want: u64) -> u64 {
        let mut got = 0;
        let _ = self
            .left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                got = want.min(left);
                Some(left - got)
            });
        if got < want {
            self.spent.store(true, Ordering::Release);
        }
        got
    }
}

impl JobProxy {
    /// Starts a proxy on 127.0.0.1. `budget` bounds the bytes relayed for the whole visit,
    /// over every connection and in both directions.
    pub async fn start(egress: Arc<Egress>, budget: u64) -> std::io::Result<JobProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let records: Arc<Mutex<Vec<ProxyRecord>>> = Arc::default();
        let budget = Arc::new(Budget {
            total: budget,
            left: AtomicU64::new(budget),
            spent: AtomicBool::new(false),
        });
        let mut tasks = JoinSet::new();
        let (recs, left) = (records.clone(), budget.clone());
        tasks.spawn(async move {
            // Connection tasks live in this set, so stopping the proxy ends them too.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        let (egress, recs, left) = (egress.clone(), recs.clone(), left.clone());
                        conns.spawn(async move {
                            let note = |rec| recs.lock().unwrap_or_else(|p| p.into_inner()).push(rec);
                            serve(client, &egress, &left, note).await;
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(JobProxy {
            addr,
            records,
            budget,
            _tasks: tasks,
        })
    }

    /// Everything the proxy was asked for so far; last, when the visit ran out of bytes, a
    /// record saying so.
    pub fn records(&self) -> Vec<ProxyRecord> {
        let mut out = self
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if self.budget.spent.load(Ordering::Acquire) {
            out.push(refused(
                "(the page's traffic)",
                format!(
                    "the page's byte budget ({} bytes) is spent; its connections were cut",
                    self.budget.total
                ),
                true,
            ));
        }
        out
    }

    /// Bytes relayed so far, both directions, all connections.
    pub fn relayed(&self) -> u64 {
        self.budget.total - self.budget.left.load(Ordering::Acquire)
    }
}

/// Handles one client connection: one request (plain HTTP is forwarded with
/// `Connection: close`; CONNECT becomes a tunnel).
/// Serves one connection of the browser's. What was asked for is noted in `note`, a refusal
/// before the browser is answered (the page may act on the answer at once, and whoever reads
/// the records after the page acted must find it).
async fn serve(
    mut client: TcpStream,
    egress: &Egress,
    budget: &Budget,
    note: impl Fn(ProxyRecord),
) -> Option<()> {
    let (head, rest) = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client))
        .await
        .ok()??;
    let text = String::from_utf8_lossy(&head).into_owned();
    let asked = match Asked::parse(&text)? {
        Ok(asked) => asked,
        Err(no) => {
            no.answer(&mut client, &note).await;
            return None;
        }
    };
    let upstream = match egress.connect(&asked.host, asked.port).await {
        Ok((stream, _)) => stream,
        Err(e) => {
            let status = match e.is_policy() {
                true => "403 Forbidden",
                false => "502 Bad Gateway",
            };
            let no = Refusal {
                record: refused(&asked.label, e.to_string(), e.is_policy()),
                answer: format!(
                    "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                ),
            };
            no.answer(&mut client, &note).await;
            return None;
        }
    };
    let refusal = asked.relay(client, upstream, &rest, budget, &note).await?;
    if !refusal {
        note(ProxyRecord {
            target: asked.label,
            refused: None,
            blocked: false,
        });
    }
    Some(())
}

/// A request the proxy will pass on: where to, and (plain HTTP) the head to send there.
struct Asked {
    host: String,
    port: u16,
    /// The request head rewritten for the server; `None` for a CONNECT tunnel.
    forward: Option<String>,
    /// What the records call it: the URL, or `host:port` for a tunnel.
    label: String,
}

/// A request refused before any connection: its record and the browser's answer.
struct Refusal {
    record: ProxyRecord,
    answer: String,
}

impl Refusal {
    /// Notes the refusal, then tells the browser (see [`serve`] for that order).
    async fn answer(self, client: &mut TcpStream, note: &impl Fn(ProxyRecord)) {
        note(self.record);
        let _ = client.write_all(self.answer.as_bytes()).await;
    }
}

impl Asked {
    /// The request in the head `text`: a CONNECT, or an absolute `http` URL (forwarded in
    /// origin form, hop-by-hop proxy headers dropped, one request only). `None` for a head
    /// with no request line at all.
    fn parse(text: &str) -> Option<Result<Asked, Refusal>> {
        let mut lines = text.split("\r\n");
        let mut parts = lines.next()?.split(' ');
        let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
        if method.eq_ignore_ascii_case("CONNECT") {
            let (host, port) = split_host_port(target, 443)?;
            let label = format!("{host}:{port}");
            return Some(Ok(Asked {
                host,
                port,
                forward: None,
                label,
            }));
        }
        let refusal = |why: String, blocked, status: &str| Refusal {
            record: refused(target, why, blocked),
            answer: format!("HTTP/1.1 {status}\r\nConnection: close\r\n\r\n"),
        };
        let Ok(url) = url::Url::parse(target) else {
            let why = "not an absolute http URL".into();
            return Some(Err(refusal(why, false, "400 Bad Request")));
        };
        if url.scheme() != "http" {
            let why = EgressError::Scheme(url.scheme().to_string()).to_string();
            return Some(Err(refusal(why, true, "403 Forbidden")));
        }
        let host = url
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let mut out = format!(
            "{method} {} {version}\r\n",
            &url[url::Position::BeforePath..]
        );
        for line in lines.filter(|l| !l.is_empty()) {
            let name = line
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if !matches!(
                name.as_str(),
                "proxy-connection" | "proxy-authorization" | "connection" | "keep-alive"
            ) {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str("Connection: close\r\n\r\n");
        Some(Ok(Asked {
            host,
            port,
            forward: Some(out),
            label: target.to_string(),
        }))
    }

    /// Relays the exchange (`rest`: what the browser sent past the head); answers whether a
    /// download was refused (and noted).
    async fn relay(
        &self,
        mut client: TcpStream,
        mut upstream: TcpStream,
        rest: &[u8],
        budget: &Budget,
        note: &impl Fn(ProxyRecord),
    ) -> Option<bool> {
        let refused_download = |why: String| {
            note(refused(
                &self.label,
                format!("download refused before its body ({why})"),
                true,
            ))
        };
        match &self.forward {
            Some(head) => {
                upstream.write_all(head.as_bytes()).await.ok()?;
                upstream.write_all(rest).await.ok()?;
                Some(relay_checked(client, upstream, budget, refused_download).await)
            }
            None => {
                client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .ok()?;
                upstream.write_all(rest).await.ok()?;
                // Inside a tunnel the browser itself holds every response at its headers.
                relay(client, upstream, budget).await;
                Some(false)
            }
        }
    }
}

/// Relays one plain-HTTP exchange, reading the response head first: a download (the HTTP
/// fetcher's rule) is told to `refuse` with its reason, then answered `403`, and its body
/// never relayed. Returns whether it was refused. The request body flows meanwhile, so a
/// large POST cannot stall the exchange.
async fn relay_checked(
    client: TcpStream,
    upstream: TcpStream,
    budget: &Budget,
    refuse: impl FnOnce(String),
) -> bool {
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let mut refusal = false;
    let down = async {
        let (head, rest) = read_head(&mut ur).await?;
        if let Some(why) = download_in(&head) {
            refuse(why);
            refusal = true;
            let _ = cw.write_all(REFUSED_DOWNLOAD).await;
            let _ = cw.shutdown().await;
            return None;
        }
        for part in [&head[..], &rest[..]] {
            let allowed = budget.take(part.len() as u64) as usize;
            cw.write_all(&part[..allowed]).await.ok()?;
            if allowed < part.len() {
                return None;
            }
        }
        pipe(&mut ur, &mut cw, budget).await;
        Some(())
    };
    tokio::select! {
        _ = pipe(&mut cr, &mut uw, budget) => {}
        _ = down => {}
    }
    refusal
}

/// What the browser gets instead of a download.
const REFUSED_DOWNLOAD: &[u8] =
    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Why a response head announces a download (`None` for anything else, and for a head that
/// does not parse: the browser will judge that one).
fn download_in(head: &[u8]) -> Option<String> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut response = httparse::Response::new(&mut headers);
    response.parse(head).ok()?;
    let mut map = http::HeaderMap::new();
    for h in response.headers.iter() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(h.name.as_bytes()),
            http::HeaderValue::from_bytes(h.value),
        ) {
            map.append(name, value);
        }
    }
    crate::download::download_reason(&map)
}

fn refused(target: &str, why: String, blocked: bool) -> ProxyRecord {
    ProxyRecord {
        target: target.to_string(),
        refused: Some(why),
        blocked,
    }
}

/// `host:port` or `[v6]:port`.
fn split_host_port(s: &str, default: u16) -> Option<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after
            .strip_prefix(':')
            .map_or(Some(default), |p| p.parse().ok())?;
        return Some((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((s.to_string(), default)),
    }
}

/// Reads up to the end of a request or response head; returns the head and any bytes after
/// it (`None` past [`MAX_HEAD`]).
async fn read_head(client: &mut (impl AsyncRead + Unpin)) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    loop {
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
    }
}

/// Copies both ways until either side closes or the visit's byte budget runs out.
async fn relay(client: TcpStream, upstream: TcpStream, budget: &Budget) {
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    tokio::select! {
        _ = pipe(&mut cr, &mut uw, budget) => {}
        _ = pipe(&mut ur, &mut cw, budget) => {}
    }
}

async fn pipe(
    r: &mut (impl AsyncRead + Unpin),
    w: &mut (impl AsyncWrite + Unpin),
    budget: &Budget,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let allowed = budget.take(n as u64) as usize;
        if w.write_all(&buf[..allowed]).await.is_err() || allowed < n {
            break;
        }
    }
    let _ = w.shutdown().await;
}

/// Where Chromium's own traffic goes (update checks, safe-browsing, preconnects): a
/// listener that counts and refuses every connection. A plain thread, so it outlives any one
/// async runtime, like the browser it serves.
pub struct Refuser {
    pub addr: SocketAddr,
    pub refused: Arc<std::sync::atomic::AtomicU64>,
}

impl Refuser {
    pub fn start() -> std::io::Result<Refuser> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = refused.clone();
        std::thread::Builder::new()
            .name("hoptrace-refuser".into())
            .spawn(move || {
                for mut conn in listener.incoming().flatten() {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    use std::io::Write;
                    let _ = conn.write_all(
                        b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                    );
                }
            })?;
        Ok(Refuser { addr, refused })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("a.test:443", 1),
            Some(("a.test".into(), 443))
        );
        assert_eq!(split_host_port("[::1]:8443", 1), Some(("::1".into(), 8443)));
        assert_eq!(split_host_port("a.test", 443), Some(("a.test".into(), 443)));
        assert_eq!(split_host_port("a.test:x", 443), None);
    }
}
