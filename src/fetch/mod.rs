//! Fetching one hop: a hyper 1 client (HTTP/1.1 and HTTP/2 by ALPN, rustls) over connections
//! the egress gate opened. It never follows redirects itself, never reads more than
//! `max_body_bytes`, and never reads the body of a download at all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http_body_util::Empty;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::time::Instant;
use url::Url;

use crate::certs::{CertLog, Recording};
use crate::config::Config;
use crate::egress::connector::{EgressConnector, VettedPeer};
use crate::egress::Egress;
use crate::record::HttpRecord;

mod body;
mod error;
mod headers;

use body::{decompress, read_capped, worth_reading};
use error::classify;
pub use error::{ClientError, FetchError};
use headers::present;
pub use headers::{referrer, Form};

/// Header lines a response head may carry. Browsers accept hundreds (Chromium has no count
/// limit), so a download hidden behind a hundred extra headers must still be seen; each
/// parse reserves room for this many, so it is not unbounded either.
pub const MAX_HEADERS: usize = 4096;
/// Bytes of a response head, as Chromium's limit (256 KiB). A head beyond either limit ends
/// the hop with [`FetchError::HeadTooLarge`], which the verdict counts as suspicious.
pub const MAX_HEAD_BYTES: usize = MAX_HEAD_KIB * 1024;
const MAX_HEAD_KIB: usize = 256;

/// What one hop answered.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub peer: Option<SocketAddr>,
    /// The body, decompressed, at most `max_body_bytes`; empty when it was not read.
    pub body: Bytes,
    /// Why the body was not read, or was cut short.
    pub body_note: Option<&'static str>,
    /// Set when headers say this is a file download; its body was never read.
    pub download: Option<String>,
    /// The exchange, for the hop's evidence.
    pub record: HttpRecord,
}

impl Response {
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    pub fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status) && self.headers.contains_key(header::LOCATION)
    }
}

/// What an API answered to [`Fetcher::get_api`].
#[derive(Debug)]
pub struct ApiAnswer {
    pub status: u16,
    pub headers: HeaderMap,
    /// At most the limit asked for.
    pub body: Bytes,
    /// Why the body stopped short of its end, if it did.
    pub cut: Option<&'static str>,
}

/// The HTTP client for single hops.
pub struct Fetcher {
    client: Client<HttpsConnector<EgressConnector>, Empty<Bytes>>,
    /// For the few requests that carry a body (a form's POST, webhooks): same connector, same
    /// egress gate, same limits.
    poster: Client<HttpsConnector<EgressConnector>, http_body_util::Full<Bytes>>,
    headers: HeaderMap,
    max_body: usize,
    /// Certificates seen as connections were verified, by server name.
    certs: Arc<CertLog>,
}

impl Fetcher {
    pub fn new(config: &Config, egress: Arc<Egress>) -> Result<Fetcher, ClientError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for path in &config.tls.extra_ca_files {
            let err = |message: String| ClientError::CaFile {
                path: path.display().to_string(),
                message,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| err(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.to_string()))?;
            if certs.is_empty() {
                return Err(err("no PEM certificates in file".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| err(e.to_string()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = Arc::new(CertLog::default());
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .build()
        .map_err(|e| ClientError::Tls(e.to_string()))?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Recording::new(webpki, certs.clone())))
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(EgressConnector::new(egress));
        let builder = || {
            let mut b = Client::builder(TokioExecutor::new());
            b.pool_idle_timeout(Duration::from_secs(30))
                // Keep-alive connections are reused only for the host (and port) they were
                // opened to, and that connection went to an address the gate vetted. As many
                // idle ones per host as resolutions can be in flight: with fewer, a batch
                // aimed at one host closed and re-opened most of them.
                .pool_max_idle_per_host(config.limits.concurrency.max(1) as usize)
                .http1_max_headers(MAX_HEADERS)
                .http1_max_buf_size(MAX_HEAD_BYTES)
                .http2_max_header_list_size(MAX_HEAD_BYTES as u32);
            b
        };
        let client = builder().build(https.clone());
        let poster = builder().build(https);

        let mut headers = HeaderMap::new();
        let value = |s: &str| HeaderValue::from_str(s).expect("validated by config");
        headers.insert(header::USER_AGENT, value(&config.http.user_agent));
        headers.insert(
            header::ACCEPT,
            value("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        );
        headers.insert(header::ACCEPT_LANGUAGE, value(&config.http.accept_language));
        headers.insert(header::ACCEPT_ENCODING, value("gzip, deflate, br"));
        Ok(Fetcher {
            client,
            poster,
            headers,
            max_body: config.limits.max_body_bytes as usize,
            certs,
        })
    }

    /// Fetches `url` once as `profile` presents itself (with its Referer when `first`): a GET,
    /// or a POST of `form` (a form's `application/x-www-form-urlencoded` body, with the
    /// Origin and Referer a browser sends for it).
    /// Headers must arrive before `budget` runs out; the body is read until the limit, the
    /// end, or the budget, whichever comes first.
    pub async fn fetch(
        &self,
        url: &Url,
        form: Option<Form<'_>>,
        budget: Duration,
        profile: &crate::profile::Profile,
        first: bool,
    ) -> Result<Response, FetchError> {
        let deadline = Instant::now() + budget;
        let headers = self.headers_as(url, profile, first, form.as_ref());
        // Recorded as sent, without keeping a copy of the map.
        let mut room = crate::record::MAX_HEADER_BYTES;
        let sent = Sent {
            headers: crate::record::headers_of(&headers, &mut room),
            started: crate::now_ms(),
            t0: Instant::now(),
            method: if form.is_some() { "POST" } else { "GET" },
        };
        let resp = tokio::time::timeout_at(deadline, self.send(url, form, headers)?)
            .await
            .map_err(|_| FetchError::Timeout(budget.as_millis() as u64))?
            .map_err(classify)?;
        let (parts, body) = resp.into_parts();
        let mut out = self.response_of(url, parts, sent);
        if out.leads_on_without_body() {
            return Ok(out);
        }
        self.read_body(&mut out, body, deadline).await;
        Ok(out)
    }

    /// The request's headers to `url`: the client's, as `profile` presents itself (with its
    /// Referer when `first`), and a form's own (type, Origin, Referer) when it POSTs one.
    fn headers_as(
        &self,
        url: &Url,
        profile: &crate::profile::Profile,
        first: bool,
        form: Option<&Form<'_>>,
    ) -> HeaderMap {
        let mut headers = self.headers.clone();
        present(&mut headers, profile, first);
        if let Some(form) = form {
            form.present(&mut headers, url);
        }
        headers
    }

    /// The request under way: a GET, or a POST of `form`.
    fn send(
        &self,
        url: &Url,
        form: Option<Form<'_>>,
        headers: HeaderMap,
    ) -> Result<hyper_util::client::legacy::ResponseFuture, FetchError> {
        Ok(match form {
            None => {
                let mut req = request(http::Method::GET, url, Empty::<Bytes>::new())?;
                *req.headers_mut() = headers;
                self.client.request(req)
            }
            Some(Form { body, .. }) => {
                let body = http_body_util::Full::new(Bytes::copy_from_slice(body.as_bytes()));
                let mut req = request(http::Method::POST, url, body)?;
                *req.headers_mut() = headers;
                self.poster.request(req)
            }
        })
    }

    /// The response's head, with its record (the body not read yet).
    fn response_of(&self, url: &Url, parts: http::response::Parts, sent: Sent) -> Response {
        let peer = parts.extensions.get::<VettedPeer>().map(|p| p.0);
        let mut room = crate::record::MAX_HEADER_BYTES;
        let (response_headers, left_resp) = crate::record::headers_of(&parts.headers, &mut room);
        let (request_headers, left_req) = sent.headers;
        let record = HttpRecord {
            started: crate::trace::rfc3339_ms(sent.started),
            method: sent.method.into(),
            http_version: format!("{:?}", parts.version),
            request_headers,
            response_headers,
            headers_left_out: left_req + left_resp,
            wait_ms: sent.t0.elapsed().as_millis() as u64,
            receive_ms: 0,
            body_bytes: 0,
            body_sha256: None,
            title: None,
            tls: match url.scheme() {
                "https" => self
                    .certs
                    .get(url.host_str().unwrap_or("").trim_matches(['[', ']'])),
                _ => None,
            },
        };
        Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            peer,
            body: Bytes::new(),
            body_note: None,
            download: None,
            record,
        }
    }

    /// Reads at most `max_body` bytes off the wire, then stops (dropping the body closes a
    /// connection that has more to send instead of draining it), and decodes them.
    async fn read_body(
        &self,
        out: &mut Response,
        mut body: hyper::body::Incoming,
        deadline: Instant,
    ) {
        let t1 = Instant::now();
        let (raw, note) = read_capped(&mut body, deadline, self.max_body).await;
        out.body_note = note;
        drop(body);
        let encoding = out
            .headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        out.record.receive_ms = t1.elapsed().as_millis() as u64;
        out.record.body_bytes = raw.len() as u64;
        out.body = decompress(&encoding, raw, self.max_body);
        out.record.body_sha256 = Some(crate::record::sha256_hex(&out.body));
        if out.content_type().is_none_or(|t| t.contains("html")) {
            out.record.title = crate::record::title_of(&out.body);
        }
    }
}

/// What was sent, for the hop's record.
struct Sent {
    /// The request's headers as recorded, and how many were left out.
    headers: (Vec<crate::record::Header>, usize),
    started: u64,
    t0: Instant,
    method: &'static str,
}

impl Response {
    /// Whether the head says all there is to know: a redirect, a download (never read), or a
    /// content type that carries no redirect (noted as unread).
    fn leads_on_without_body(&mut self) -> bool {
        if self.is_redirect() {
            return true;
        }
        if let Some(why) = crate::download::download_reason(&self.headers) {
            self.download = Some(why);
            return true;
        }
        if !worth_reading(self.content_type()) {
            self.body_note = Some("body not read: content type carries no redirect");
            return true;
        }
        false
    }
}

impl Fetcher {
    /// GETs `url` from an API through the egress gate with `extra` headers (a token, say):
    /// the status, the headers and the body, of which at most `limit` bytes are read (a body
    /// cut short says why in `cut`). Within `budget`, connection and body included.
    pub async fn get_api(
        &self,
        url: &Url,
        extra: HeaderMap,
        budget: Duration,
        limit: usize,
    ) -> Result<ApiAnswer, FetchError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::USER_AGENT, self.headers[header::USER_AGENT].clone());
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        headers.extend(extra);
        self.get_capped(url, headers, budget, limit, |_| true).await
    }

    /// GETs a page's icon as `profile` presents itself, within `budget`: the status, the
    /// headers and at most `limit` bytes of body, read only when `wanted` accepts the
    /// answer's headers (an image); otherwise the body is never read (`cut` says so).
    pub async fn get_icon(
        &self,
        url: &Url,
        budget: Duration,
        profile: &crate::profile::Profile,
        limit: usize,
        wanted: impl FnOnce(&HeaderMap) -> bool,
    ) -> Result<ApiAnswer, FetchError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::USER_AGENT, self.headers[header::USER_AGENT].clone());
        headers.insert(
            header::ACCEPT_LANGUAGE,
            self.headers[header::ACCEPT_LANGUAGE].clone(),
        );
        present(&mut headers, profile, false);
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("image/avif,image/webp,image/png,image/*;q=0.8,*/*;q=0.5"),
        );
        self.get_capped(url, headers, budget, limit, wanted).await
    }

    /// One GET of `url` with `headers` through the gate, connection and body within
    /// `budget`; at most `limit` body bytes, read only if `wanted` accepts the headers.
    async fn get_capped(
        &self,
        url: &Url,
        headers: HeaderMap,
        budget: Duration,
        limit: usize,
        wanted: impl FnOnce(&HeaderMap) -> bool,
    ) -> Result<ApiAnswer, FetchError> {
        let deadline = Instant::now() + budget;
        let mut req = request(http::Method::GET, url, Empty::<Bytes>::new())?;
        *req.headers_mut() = headers;
        let resp = tokio::time::timeout_at(deadline, self.client.request(req))
            .await
            .map_err(|_| FetchError::Timeout(budget.as_millis() as u64))?
            .map_err(classify)?;
        let (parts, mut body) = resp.into_parts();
        let (raw, cut) = if wanted(&parts.headers) {
            read_capped(&mut body, deadline, limit).await
        } else {
            (Vec::new(), Some("body not read"))
        };
        Ok(ApiAnswer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: Bytes::from(raw),
            cut,
        })
    }

    /// POSTs `json` to `url` through the egress gate; the answer's status (its body is not
    /// read). Within `budget`, connection included.
    pub async fn post_json(
        &self,
        url: &Url,
        json: Vec<u8>,
        budget: Duration,
    ) -> Result<u16, FetchError> {
        let mut req = request(
            http::Method::POST,
            url,
            http_body_util::Full::new(Bytes::from(json)),
        )?;
        req.headers_mut()
            .insert(header::USER_AGENT, self.headers[header::USER_AGENT].clone());
        req.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let resp = tokio::time::timeout(budget, self.poster.request(req))
            .await
            .map_err(|_| FetchError::Timeout(budget.as_millis() as u64))?
            .map_err(classify)?;
        Ok(resp.status().as_u16())
    }
}

/// A `method` request for `url` carrying `body`.
fn request<B>(method: http::Method, url: &Url, body: B) -> Result<http::Request<B>, FetchError> {
    let uri: http::Uri = url
        .as_str()
        .parse()
        .map_err(|e: http::uri::InvalidUri| FetchError::Request(e.to_string()))?;
    http::Request::builder()
        .method(method)
        .uri(uri)
        .body(body)
        .map_err(|e| FetchError::Request(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forms_referer_follows_strict_origin_when_cross_origin() {
        let u = |s: &str| Url::parse(s).unwrap();
        let page = u("https://user:pw@blog.test/p/form?x=1#f");
        for (to, want) in [
            (
                "https://blog.test/posted",
                Some("https://blog.test/p/form?x=1"),
            ),
            ("https://next.test/posted", Some("https://blog.test/")),
            ("https://blog.test:8443/posted", Some("https://blog.test/")),
            ("http://blog.test/posted", None),
        ] {
            assert_eq!(referrer(&page, &u(to)).as_deref(), want, "{to}");
        }
        assert_eq!(
            referrer(&u("http://blog.test/a"), &u("https://next.test/b")).as_deref(),
            Some("http://blog.test/")
        );
        // As headers on the POST: the Origin too is hidden from HTTPS to HTTP.
        for (to, origin, referer) in [
            (
                "https://next.test/posted",
                "https://blog.test",
                Some("https://blog.test/"),
            ),
            ("http://blog.test/posted", "null", None),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::REFERER,
                HeaderValue::from_static("http://profile.test/"),
            );
            let form = Form {
                body: "q=1",
                from: &page,
            };
            form.present(&mut headers, &u(to));
            assert_eq!(headers[header::ORIGIN], origin, "{to}");
            assert_eq!(
                headers.get(header::REFERER).map(|v| v.to_str().unwrap()),
                referer,
                "{to}"
            );
            assert_eq!(
                headers[header::CONTENT_TYPE],
                "application/x-www-form-urlencoded"
            );
        }
    }
}
