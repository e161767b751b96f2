//! What a web page open in an analyst's browser could make the API do, refused in one layer
//! before any route runs (the API answers on loopback, which every page can name):
//! - **Host** (every route): only the server's own names — the loopback names, the `listen`
//!   address, `server.allowed_hosts` — else 421. A page on a rebound DNS name
//!   (`attacker.example` -> 127.0.0.1) sends its own name, so it cannot read the answers.
//! - **Origin / Sec-Fetch-Site** (`/v1`): a call a browser marks as coming from another site
//!   is 403, whatever it carries. The web view (`/ui/`) checks its forms the same way.
//! - **Content-Type** (`/v1` POST, PUT, PATCH): `application/json` only, else 415. A page can
//!   send `text/plain` without asking the server first; `application/json` it cannot.
//!
//! A few header comparisons per request, no allocation unless refused.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use tower::{Layer, Service};

use super::admit::Answer;
use super::{Api, ApiError};
use crate::config;

/// The names a request's `Host` may give (any port).
pub struct Hosts {
    /// Lowercase; IPv6 literals in brackets.
    names: Vec<Box<str>>,
    /// `"*"` in `server.allowed_hosts`.
    any: bool,
}

impl Hosts {
    pub fn new(s: &config::Server) -> Hosts {
        let mut names: Vec<Box<str>> = ["localhost", "127.0.0.1", "[::1]"]
            .into_iter()
            .map(Box::from)
            .collect();
        let listen = match s.listen.ip() {
            ip if ip.is_unspecified() => None,
            std::net::IpAddr::V6(v6) => Some(format!("[{v6}]")),
            ip => Some(ip.to_string()),
        };
        for name in listen.into_iter().chain(s.allowed_hosts.iter().cloned()) {
            let name = name.to_ascii_lowercase().into_boxed_str();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Hosts {
            any: names.iter().any(|n| &**n == "*"),
            names,
        }
    }

    /// Whether `authority` (`name` or `name:port`) names this server.
    fn allows(&self, authority: &[u8]) -> bool {
        if self.any {
            return true;
        }
        let (name, port) = match authority.first() {
            Some(b'[') => match authority.iter().position(|&b| b == b']') {
                Some(end) => authority.split_at(end + 1),
                None => return false,
            },
            _ => match authority.iter().rposition(|&b| b == b':') {
                Some(colon) => authority.split_at(colon),
                None => (authority, &[][..]),
            },
        };
        let port_ok = match port.split_first() {
            None => true,
            Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
            Some(_) => false,
        };
        port_ok
            && self
                .names
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
    }
}

/// Whether a request comes from this site, as the browser tells it: `Sec-Fetch-Site`
/// `same-origin` or `none` (typed by the user) when sent, and an `Origin` naming this host
/// when sent. (A client that sends neither is not a browser acting for someone else.)
pub fn same_origin(h: &HeaderMap) -> bool {
    let text = |name| h.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, o)| o.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// Whether a `Content-Type` says JSON (`application/json`, parameters allowed).
fn is_json(value: Option<&HeaderValue>) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

impl Api {
    /// The fence's answer for `req`: `Ok` to go on, else the refusal.
    fn fence(&self, req: &Request) -> Result<(), ApiError> {
        let host = req
            .headers()
            .get(header::HOST)
            .map(HeaderValue::as_bytes)
            .or_else(|| req.uri().authority().map(|a| a.as_str().as_bytes()));
        let Some(host) = host else {
            return Err(ApiError::bad_request("the request has no Host header"));
        };
        if !self.hosts.allows(host) {
            let shown: String = String::from_utf8_lossy(host).chars().take(100).collect();
            return Err(ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected_request",
                format!(
                    "this server does not answer to the name `{shown}` (it answers to \
                     localhost, 127.0.0.1, [::1], its listen address and server.allowed_hosts)"
                ),
            ));
        }
        if !req.uri().path().starts_with("/v1/") {
            return Ok(());
        }
        if !same_origin(req.headers()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_site",
                "a call from another site (by its Origin or Sec-Fetch-Site) is not accepted",
            ));
        }
        let has_body = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
        if has_body && !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be sent as Content-Type: application/json",
            ));
        }
        Ok(())
    }
}

/// The layer (outside every route, inside `observe` so refusals are counted).
#[derive(Clone)]
pub struct Fence(pub Arc<Api>);

impl<S> Layer<S> for Fence {
    type Service = Fenced<S>;

    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced {
            api: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct Fenced<S> {
    api: Arc<Api>,
    inner: S,
}

impl<S> Service<Request> for Fenced<S>
where
    S: Service<Request, Response = Response, Error = std::convert::Infallible>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Answer<S::Future> {
        match self.api.fence(&req) {
            Ok(()) => Answer::running(self.inner.call(req), None),
            Err(refused) => Answer::refused(refused),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_one_of_the_names_with_any_port() {
        let mut s = config::Server {
            allowed_hosts: vec!["Hoptrace.Example".into()],
            ..Default::default()
        };
        let hosts = Hosts::new(&s);
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1:1",
            "[::1]",
            "[::1]:8080",
            "hoptrace.example:443",
        ] {
            assert!(hosts.allows(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:8080",
            "localhost.attacker.example",
            "127.0.0.2",
            "[::1",
            "localhost:80:80",
            "localhost:x",
            "",
        ] {
            assert!(!hosts.allows(bad.as_bytes()), "{bad}");
        }
        s.listen = "[fd00::5]:8080".parse().unwrap();
        assert!(Hosts::new(&s).allows(b"[fd00::5]:8080"));
        s.allowed_hosts = vec!["*".into()];
        assert!(Hosts::new(&s).allows(b"anything.example"));
    }
}
