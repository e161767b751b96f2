//! Real parts for tests: a small DNS responder for hickory (`dns.rs`) and hyper servers
//! (`fixtures.rs`), a private CA (`pki.rs`), PostgreSQL and Redis (`db.rs`), proxies (`proxies.rs`), the tests'
//! config, API clients and the binary (here), all on loopback. Nothing here talks to any
//! address outside 127.0.0.0/8.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use hoptrace::config::Config;
use serde_json::Value;

pub mod db;
mod dns;
mod fixtures;
pub mod hubmix;
pub mod pki;
pub mod proxies;
pub mod rss;
pub mod tools;
pub mod view;

pub use dns::*;
pub use fixtures::*;

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
        config.limits.hop_timeout = std::time::Duration::from_millis(3000);
        config.limits.total_timeout = std::time::Duration::from_millis(20000);
        config.limits.max_body_bytes = 65536;
        config.limits.per_host_per_second = 1000.0;
        config.browser.enabled = false;
        // The script engine's workers are the hoptrace binary (a test binary is not one).
        config.browser.script_worker = Some(env!("CARGO_BIN_EXE_hoptrace").into());
        config.storage.backend =
            hoptrace::config::Backend::Sled(hoptrace::config::Sled::at(dir.path().join("db")));
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

// ---------------------------------------------------------------- the service

/// The service in this process on a free port (stops when the handle drops).
pub struct Running {
    pub addr: SocketAddr,
    /// The service's store (the same handle: sled allows one per process).
    pub store: hoptrace::store::Store,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.abort();
    }
}

pub async fn start(config: &Config) -> Running {
    let service = hoptrace::server::Service::build(config).await.unwrap();
    let store = service.store.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        service
            .run(listener, shutdown, std::time::Duration::from_secs(5))
            .await
            .unwrap();
    });
    Running {
        addr,
        store,
        stop: Some(tx),
        task,
    }
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

/// One request to `addr` with these headers (a `Host` naming `addr` unless one is given):
/// status, headers, body as text.
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, http::HeaderMap, String) {
    let mut req = http::Request::builder().method(method).uri(path);
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req = req.header("host", addr.to_string());
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = send(addr, req.body(body.to_string().into()).unwrap()).await;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// A login form POSTed with `body` (`token=...`).
pub async fn login(addr: SocketAddr, body: &str) -> (u16, http::HeaderMap, String) {
    let form = ("content-type", "application/x-www-form-urlencoded");
    raw(addr, "POST", "/ui/login", &[form], body).await
}

/// The CSRF token of the forms on a web view page.
pub fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF field: {page}"))
        .to_string()
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

/// One JSON value a line.
pub fn jsonl(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
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

/// Runs `cmd` with `stdin`: exit code, stdout, stderr.
pub fn run_command(
    mut cmd: std::process::Command,
    stdin: impl AsRef<[u8]>,
) -> (i32, String, String) {
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_ref())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
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
                None,
                hoptrace::browser::Identity::from_config(&Config::default().http),
            );
            oxide
                .available()
                .expect("Chromium is installed (scripts/setup installs it)");
            std::sync::Arc::new(oxide)
        })
        .clone()
}
