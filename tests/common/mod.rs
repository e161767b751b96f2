//! Real parts for tests: a small DNS responder for hickory and hyper servers, all on
//! loopback. Nothing here talks to any address outside 127.0.0.0/8.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, UdpSocket};

use hoptrace::config::Config;
use serde_json::Value;

pub mod db;
pub mod proxies;
pub mod tools;

// ---------------------------------------------------------------- DNS

/// A DNS responder on 127.0.0.1 (UDP). Each name maps to a list of answers; with more than
/// one, each query takes the next (the last repeats), which is how a rebinding name behaves.
#[derive(Clone)]
pub struct Dns {
    pub addr: SocketAddr,
    records: Arc<Mutex<HashMap<String, Vec<Vec<IpAddr>>>>>,
    queries: Arc<Mutex<HashMap<(String, u16), usize>>>,
}

impl Dns {
    pub async fn start() -> Dns {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dns = Dns {
            addr: socket.local_addr().unwrap(),
            records: Default::default(),
            queries: Default::default(),
        };
        let me = dns.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    break;
                };
                if let Some(reply) = me.answer(&buf[..n]) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        dns
    }

    /// `name` answers these addresses (A and AAAA records as their families say).
    pub fn set(&self, name: &str, addrs: &[&str]) {
        self.set_sequence(name, &[addrs]);
    }

    /// `name` answers the first list on the first query of a type, the second on the next...
    pub fn set_sequence(&self, name: &str, seq: &[&[&str]]) {
        let seq = seq
            .iter()
            .map(|a| a.iter().map(|s| s.parse().unwrap()).collect())
            .collect();
        self.records
            .lock()
            .unwrap()
            .insert(name.to_ascii_lowercase(), seq);
    }

    /// How many queries of `qtype` (1 = A, 28 = AAAA) arrived for `name`.
    pub fn queries(&self, name: &str, qtype: u16) -> usize {
        *self
            .queries
            .lock()
            .unwrap()
            .get(&(name.to_ascii_lowercase(), qtype))
            .unwrap_or(&0)
    }

    /// Queries of any type for `name`.
    pub fn all_queries(&self, name: &str) -> usize {
        let n = name.to_ascii_lowercase();
        self.queries
            .lock()
            .unwrap()
            .iter()
            .filter(|((q, _), _)| *q == n)
            .map(|(_, c)| *c)
            .sum()
    }

    fn answer(&self, q: &[u8]) -> Option<Vec<u8>> {
        if q.len() < 12 {
            return None;
        }
        // Question name.
        let mut i = 12;
        let mut labels = Vec::new();
        loop {
            let len = *q.get(i)? as usize;
            i += 1;
            if len == 0 {
                break;
            }
            labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
            i += len;
        }
        let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
        let question_end = i + 4;
        let name = labels.join(".");
        *self
            .queries
            .lock()
            .unwrap()
            .entry((name.clone(), qtype))
            .or_default() += 1;

        let addrs: Option<Vec<IpAddr>> = {
            let mut recs = self.records.lock().unwrap();
            recs.get_mut(&name).map(|seq| {
                let all = seq[0].clone();
                // Advance per A query, so a sequence models answers changing over time.
                if qtype == 1 && seq.len() > 1 {
                    seq.remove(0);
                }
                all
            })
        };
        let mut out = Vec::new();
        out.extend_from_slice(&q[0..2]); // id
        let rcode = if addrs.is_none() { 3 } else { 0 };
        out.extend_from_slice(&[0x81, 0x80 | rcode]);
        let answers: Vec<IpAddr> = addrs
            .unwrap_or_default()
            .into_iter()
            .filter(|a| (qtype == 1 && a.is_ipv4()) || (qtype == 28 && a.is_ipv6()))
            .collect();
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&q[12..question_end]);
        for a in answers {
            out.extend_from_slice(&[0xc0, 0x0c]);
            out.extend_from_slice(&qtype.to_be_bytes());
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&0u32.to_be_bytes()); // TTL 0: never cached
            match a {
                IpAddr::V4(v4) => {
                    out.extend_from_slice(&4u16.to_be_bytes());
                    out.extend_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => {
                    out.extend_from_slice(&16u16.to_be_bytes());
                    out.extend_from_slice(&v6.octets());
                }
            }
        }
        Some(out)
    }
}

// ---------------------------------------------------------------- HTTP

pub type Body = BoxBody<Bytes, Infallible>;
pub type Reply = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;
pub type Handler = Arc<dyn Fn(Request<Incoming>) -> Reply + Send + Sync>;

/// The address a fixture's request came from (on every request's extensions).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// A hyper server on one loopback address, counting the connections it accepts.
#[derive(Clone)]
pub struct Server {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
}

impl Server {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Serves `handler` over plain HTTP/1.1 on `ip` (port chosen by the kernel).
    pub async fn start<F, Fut>(ip: &str, handler: F) -> Server
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        Server::start_on(SocketAddr::new(ip.parse().unwrap(), 0), None, handler).await
    }

    pub async fn start_on<F, Fut>(
        addr: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
        handler: F,
    ) -> Server
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let listener = TcpListener::bind(addr).await.unwrap();
        let server = Server {
            addr: listener.local_addr().unwrap(),
            connections: Default::default(),
            requests: Default::default(),
        };
        let handler: Handler = Arc::new(move |r| Box::pin(handler(r)));
        let counters = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    break;
                };
                counters.connections.fetch_add(1, Ordering::SeqCst);
                let handler = handler.clone();
                let requests = counters.requests.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                        requests.fetch_add(1, Ordering::SeqCst);
                        req.extensions_mut().insert(PeerAddr(peer));
                        let fut = handler(req);
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                    }
                });
            }
        });
        server
    }
}

/// A listener that only counts connections and never speaks: the "this must not be
/// reached" target.
pub struct Sentinel {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
}

impl Sentinel {
    pub async fn start(ip: &str, port: u16) -> Option<Sentinel> {
        let listener = TcpListener::bind(SocketAddr::new(ip.parse().ok()?, port))
            .await
            .ok()?;
        let connections = Arc::new(AtomicUsize::new(0));
        let c = connections.clone();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                drop(s);
            }
        });
        Some(Sentinel { addr, connections })
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

pub fn body(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).boxed()
}

pub fn html(s: &str) -> Response<Body> {
    Response::builder()
        .header("content-type", "text/html; charset=utf-8")
        .body(body(s.to_string()))
        .unwrap()
}

pub fn redirect(status: u16, location: &[u8]) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(
            "location",
            hyper::header::HeaderValue::from_bytes(location).unwrap(),
        )
        .body(body(""))
        .unwrap()
}

/// A body that never ends; `sent` counts the bytes handed to hyper.
pub fn endless(content_type: &str, sent: Arc<AtomicU64>) -> Response<Body> {
    let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
    let stream = futures_util::stream::repeat_with(move || {
        sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        Ok::<_, Infallible>(Frame::data(chunk.clone()))
    });
    Response::builder()
        .header("content-type", content_type)
        .body(StreamBody::new(stream).boxed())
        .unwrap()
}

/// Headers now, body never.
pub fn stall_after_headers(content_type: &str, disposition: Option<&str>) -> Response<Body> {
    let stream = futures_util::stream::pending::<Result<Frame<Bytes>, Infallible>>();
    let mut b = Response::builder().header("content-type", content_type);
    if let Some(d) = disposition {
        b = b.header("content-disposition", d);
    }
    b.body(StreamBody::new(stream).boxed()).unwrap()
}

/// The number in a request path like `/17` (0 when there is none).
pub fn path_number(req: &Request<Incoming>) -> u64 {
    req.uri()
        .path()
        .trim_start_matches('/')
        .parse()
        .unwrap_or(0)
}

/// The 2021 downloader campaign in miniature: `blltly.com` (a fake bit.ly) answers every
/// path with a redirect to a payload page on `failhostingpolp.ru`. Returns (shortener,
/// payload, the payload URL the shortener redirects to).
pub async fn campaign(env: &TestEnv) -> (Server, Server, String) {
    let payload = Server::start("127.0.0.1", |_| async { html("<html>offer page</html>") }).await;
    let target = format!("http://failhostingpolp.ru:{}/4aF9/0x7Token", payload.port());
    let t = target.clone();
    let short = Server::start("127.0.0.1", move |_| {
        let t = t.clone();
        async move { redirect(302, t.as_bytes()) }
    })
    .await;
    env.dns.set("blltly.com", &["127.0.0.1"]);
    env.dns.set("failhostingpolp.ru", &["127.0.0.1"]);
    (short, payload, target)
}

/// Every host of the synthetic Docker Hub dump (tests/fixtures/hub), served by one local
/// server that answers by `Host` as each campaign of the threat model does; every name
/// points at 127.0.0.1. `log` records each request as `host path`.
pub struct HubInternet {
    pub server: Server,
    pub log: Arc<Mutex<Vec<String>>>,
}

pub const HUB_HOSTS: &[&str] = &[
    "blltly.com",
    "bltlly.com",
    "byltly.com",
    "tinurll.com",
    "urlcod.com",
    "imgfil.com",
    "failhostingpolp.ru",
    "gts794.com",
    "totrakto.com",
    "urlin.us",
    "bookreader-blog.com",
    "gohhs.com",
    "rd.lesac.ru",
    "secure-card-check.com",
    "billing-verify.net",
    "premium-access.org",
    "twitter.com",
    "www.facebook.com",
    "github.com",
    "docs.docker.com",
    "bit.ly",
    "bitlly.com",
    "tinnyurl.com",
    "promo-gift.net",
    "getmy.link",
    "cheap-keys-store.com",
];

impl HubInternet {
    pub async fn start(dns: &Dns) -> HubInternet {
        let log: Arc<Mutex<Vec<String>>> = Default::default();
        let visits = Arc::new(AtomicU64::new(0));
        let port = Arc::new(std::sync::OnceLock::<u16>::new());
        let (l, p) = (log.clone(), port.clone());
        let server = Server::start("127.0.0.1", move |req| {
            let host = req
                .headers()
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap_or("")
                .to_string();
            let path = req.uri().path().to_string();
            l.lock().unwrap().push(format!("{host} {path}"));
            let n = visits.fetch_add(1, Ordering::SeqCst);
            let port = *p.get().unwrap();
            async move { hub_answer(&host, &path, n, port) }
        })
        .await;
        port.set(server.port()).unwrap();
        for h in HUB_HOSTS {
            dns.set(h, &["127.0.0.1"]);
        }
        HubInternet { server, log }
    }

    /// The fixture dump with this server's port in every link.
    pub fn dump(&self) -> String {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/hub/repositories.jsonl"),
        )
        .unwrap();
        text.replace("{{port}}", &self.server.port().to_string())
    }
}

fn hub_answer(host: &str, path: &str, n: u64, port: u16) -> Response<Body> {
    let to = |host: &str, path: &str| format!("http://{host}:{port}{path}");
    match host {
        // Fake shorteners: a new payload path on every visit.
        "blltly.com" | "bltlly.com" | "byltly.com" | "tinurll.com" | "urlcod.com"
        | "imgfil.com" => redirect(
            302,
            to("failhostingpolp.ru", &format!("/{n:x}a9/tk{n}")).as_bytes(),
        ),
        "urlin.us" => {
            let next = if path.ends_with(['0', '2', '4', '6', '8']) {
                "failhostingpolp.ru"
            } else {
                "gts794.com"
            };
            redirect(301, to(next, &format!("/{n:x}b7/tk{n}")).as_bytes())
        }
        "failhostingpolp.ru" => {
            redirect(302, to("totrakto.com", "/CRACK-IDA-Pro-7.7.zip").as_bytes())
        }
        "gts794.com" => html(&format!(
            "<html><head><meta http-equiv=\"refresh\" content=\"0;url={}\"></head></html>",
            to("totrakto.com", "/setup-installer.zip")
        )),
        // The archive: headers, then a body that never comes (nobody should wait for it).
        "totrakto.com" => stall_after_headers(
            "application/zip",
            Some("attachment; filename=\"CRACK-IDA-Pro-7.7.zip\""),
        ),
        "bookreader-blog.com" => {
            let id = path.rsplit('=').next().unwrap_or("");
            html(&format!(
                "<html><head><meta http-equiv=\"refresh\" content=\"0; url={}\"></head><body>loading</body></html>",
                to("gohhs.com", &format!("/{id}"))
            ))
        }
        "gohhs.com" => redirect(302, to("rd.lesac.ru", &format!("/?s={n}")).as_bytes()),
        // The eBook redirector picks a card-phishing page per visitor.
        "rd.lesac.ru" => {
            let page = [
                "secure-card-check.com",
                "billing-verify.net",
                "premium-access.org",
            ][(n % 3) as usize];
            redirect(302, to(page, "/subscribe").as_bytes())
        }
        "bit.ly" => redirect(301, to("github.com", path).as_bytes()),
        "bitlly.com" | "tinnyurl.com" => redirect(302, to("promo-gift.net", "/claim").as_bytes()),
        "getmy.link" => redirect(302, to("cheap-keys-store.com", "/offer").as_bytes()),
        "" => Response::builder()
            .status(400)
            .body(body("no host"))
            .unwrap(),
        _ => html("<html><body>a page</body></html>"),
    }
}

/// Resolves one URL with a fresh resolver and no store.
pub async fn resolve(env: &TestEnv, url: &str) -> hoptrace::trace::Trace {
    hoptrace::chain::Resolver::new(&env.config, None)
        .unwrap()
        .resolve(url, false)
        .await
}

// ---------------------------------------------------------------- config

/// A config for tests: the local DNS, only 127.0.0.1 allowed, short limits, a fresh store.
pub struct TestEnv {
    pub dns: Dns,
    pub dir: tempfile::TempDir,
    pub config: Config,
}

impl TestEnv {
    pub async fn new() -> TestEnv {
        let dns = Dns::start().await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.dns.nameservers = vec![dns.addr];
        config.policy.allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        config.limits.hop_timeout_ms = 3000;
        config.limits.total_timeout_ms = 20000;
        config.limits.max_body_bytes = 65536;
        config.limits.per_host_per_second = 1000.0;
        config.browser.enabled = false;
        config.storage.path = dir.path().join("db");
        TestEnv { dns, dir, config }
    }

    /// Writes the test's config as a file for the binary, with the tables of `extra` (TOML)
    /// merged over it, key by key.
    pub fn write_config(&self, extra: &str) -> PathBuf {
        let path = self.dir.path().join("hoptrace.toml");
        std::fs::write(&path, config_toml(&self.config, extra)).unwrap();
        path
    }
}

/// `config` as TOML, with the tables of `extra` merged over it: how tests write a config for
/// the binary (from the typed config, not a copied template).
pub fn config_toml(config: &Config, extra: &str) -> String {
    fn merge(base: &mut toml::Table, over: toml::Table) {
        for (k, v) in over {
            match (base.get_mut(&k), v) {
                (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
                (_, v) => {
                    base.insert(k, v);
                }
            }
        }
    }
    let mut base = toml::Table::try_from(config).expect("the config serialises");
    merge(&mut base, toml::from_str(extra).expect("extra is TOML"));
    // The parsed config is checked as the binary will check it.
    let text = toml::to_string(&base).unwrap();
    Config::parse(&text, std::path::Path::new("test.toml")).expect("a valid config");
    text
}

/// Sends hoptrace's debug logs to the test's captured output, so a failing case shows what
/// the stages did (libtest prints captured output only for failures).
pub fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("hoptrace=debug")
        .with_test_writer()
        .try_init();
}

// ---------------------------------------------------------------- API clients

/// One answer: status, headers, body as JSON (the library's client's, as the CLI uses).
pub use hoptrace::client::Answer;

/// Sends one request over a new connection to `addr`; the answer with its body unread
/// (which may be a stream).
pub async fn send(
    addr: SocketAddr,
    req: http::Request<http_body_util::Full<Bytes>>,
) -> hyper::Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender.send_request(req).await.unwrap()
}

pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
    token: Option<&str>,
) -> Answer {
    hoptrace::client::ApiClient::new(&addr.to_string())
        .unwrap()
        .with_token(token)
        .call(method.parse().unwrap(), path, body)
        .await
        .unwrap()
}

pub async fn post(addr: SocketAddr, path: &str, body: Value, token: Option<&str>) -> Answer {
    call(
        addr,
        "POST",
        path,
        Some(body.to_string().into_bytes()),
        token,
    )
    .await
}

pub async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Answer {
    call(addr, "GET", path, None, token).await
}

pub fn error_code(a: &Answer) -> &str {
    a.body["error"]["code"].as_str().unwrap_or("")
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Reads `GET /v1/events` into `text` as it arrives.
pub async fn listen(addr: std::net::SocketAddr, last_event_id: Option<u64>) -> Arc<Mutex<String>> {
    let text: Arc<Mutex<String>> = Default::default();
    let t = text.clone();
    let mut req = http::Request::get("/v1/events").header("host", addr.to_string());
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id.to_string());
    }
    let resp = send(addr, req.body(Default::default()).unwrap()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                t.lock().unwrap().push_str(&String::from_utf8_lossy(&data));
            }
        }
    });
    text
}

/// Runs the hoptrace binary: stdout, stderr, whether it succeeded.
pub fn run_hoptrace(args: &[&str]) -> (String, String, bool) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hoptrace"))
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

/// A child process killed when dropped, so a failing test leaves no server behind.
pub struct Serving(pub std::process::Child);

impl std::ops::Deref for Serving {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Serving {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `hoptrace serve` (the real binary) on a free loopback port with config `cfg`: the child
/// and the address it printed.
pub fn serve_binary(cfg: &std::path::Path) -> (Serving, SocketAddr) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hoptrace"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr: SocketAddr = line
        .trim()
        .trim_start_matches("listening on http://")
        .parse()
        .unwrap_or_else(|_| panic!("address line: {line:?}"));
    (Serving(child), addr)
}

// ---------------------------------------------------------------- benchmarks

/// Where the benchmarks write their JSON (target/bench), so one run can read another's.
pub fn bench_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench")
}

/// Writes a benchmark's figures to target/bench/NAME, pretty-printed.
pub fn write_bench_json(name: &str, json: &serde_json::Value) {
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), serde_json::to_string_pretty(json).unwrap()).unwrap();
}

/// The one Chromium of a test binary, started on first use (its tests share it).
pub fn shared_browser() -> std::sync::Arc<hoptrace::browser::oxide::Oxide> {
    use hoptrace::browser::Driver;
    static BROWSER: std::sync::OnceLock<std::sync::Arc<hoptrace::browser::oxide::Oxide>> =
        std::sync::OnceLock::new();
    BROWSER
        .get_or_init(|| {
            let oxide = hoptrace::browser::oxide::Oxide::new(
                std::path::Path::new(""),
                hoptrace::browser::Identity::from_config(&Config::default().http),
            );
            oxide
                .available()
                .expect("Chromium is installed (scripts/setup installs it)");
            std::sync::Arc::new(oxide)
        })
        .clone()
}
