//! Fixture web servers on loopback: hyper servers with a handler per test, ready-made
//! answers (pages, redirects, endless and stalled bodies), the campaign and Docker Hub
//! internets.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::*;

/// The report's blogger page, as published (tests/fixtures/report.html): `el` read from the
/// query, then, while the page is still being parsed, string timers with zero delay;
/// `Redirect()` replaces the location with an https target built from `el`. Without `el`
/// only a link's href changes at 500 ms.
pub const REPORT: &str = include_str!("../fixtures/report.html");

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

/// A server on 127.0.0.1 that answers every request with a 302 to `target`.
pub async fn redirector(target: &str) -> Server {
    let target = target.to_string();
    Server::start("127.0.0.1", move |_| {
        let t = target.clone();
        async move { redirect(302, t.as_bytes()) }
    })
    .await
}

/// The 2021 downloader campaign in miniature: `blltly.com` (a fake bit.ly) answers every
/// path with a redirect to a payload page on `failhostingpolp.ru`. Returns (shortener,
/// payload, the payload URL the shortener redirects to).
pub async fn campaign(env: &TestEnv) -> (Server, Server, String) {
    let payload = Server::start("127.0.0.1", |_| async { html("<html>offer page</html>") }).await;
    let target = format!("http://failhostingpolp.ru:{}/4aF9/0x7Token", payload.port());
    let short = redirector(&target).await;
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
