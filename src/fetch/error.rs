//! Why a hop could not be fetched: the client's errors classified into what went wrong
//! (the egress gate's own refusal, TLS, a head too large, a connection, HTTP), and the
//! Trace's `error.kind` of each; and why the client itself could not be built.

use crate::egress::EgressError;
use crate::trace::ErrorKind;

use super::{MAX_HEADERS, MAX_HEAD_KIB};

/// Why a hop could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Egress(#[from] EgressError),
    #[error("no response within {0} ms")]
    Timeout(u64),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("HTTP: {0}")]
    Http(String),
    /// The response head was beyond what any browser-like client reads: evasion, not silence.
    #[error("the response head is larger than hoptrace reads (over {MAX_HEADERS} header lines or {MAX_HEAD_KIB} KiB): {0}")]
    HeadTooLarge(String),
    #[error("invalid URL for a request: {0}")]
    Request(String),
}

impl FetchError {
    /// The `error.kind` of the Trace.
    pub fn kind(&self) -> ErrorKind {
        match self {
            FetchError::Egress(EgressError::Dns { .. }) => ErrorKind::Dns,
            FetchError::Egress(EgressError::DnsTimeout { .. }) => ErrorKind::Timeout,
            FetchError::Egress(EgressError::Connect { .. }) => ErrorKind::Connect,
            FetchError::Egress(EgressError::NoHost) => ErrorKind::Input,
            FetchError::Egress(EgressError::Proxy { .. }) => ErrorKind::Proxy,
            FetchError::Egress(_) => ErrorKind::Policy,
            FetchError::Timeout(_) => ErrorKind::Timeout,
            FetchError::Tls(_) => ErrorKind::Tls,
            FetchError::Connect(_) => ErrorKind::Connect,
            FetchError::Http(_) | FetchError::HeadTooLarge(_) => ErrorKind::Http,
            FetchError::Request(_) => ErrorKind::Input,
        }
    }
}

/// Start-up problems building the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("tls.extra_ca_files: {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("TLS set-up: {0}")]
    Tls(String),
}

/// Turns a client error into what went wrong, finding the gate's own error when it refused.
pub(super) fn classify(err: hyper_util::client::legacy::Error) -> FetchError {
    let is_connect = err.is_connect();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut egress: Option<&EgressError> = None;
    let mut tls = None;
    let mut too_large = false;
    while let Some(e) = source {
        too_large |= e
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse_too_large);
        if let Some(x) = e.downcast_ref::<EgressError>() {
            egress = Some(x);
            break;
        }
        if let Some(x) = e.downcast_ref::<rustls::Error>() {
            tls = Some(x.to_string());
        }
        if let Some(x) = rustls_inside_io(e) {
            tls = Some(x.to_string());
        }
        source = e.source();
    }
    if let Some(e) = egress {
        return FetchError::Egress(e.clone());
    }
    if let Some(t) = tls {
        return FetchError::Tls(t);
    }
    let chain = error_chain(&err);
    if too_large {
        FetchError::HeadTooLarge(chain)
    } else if is_connect {
        FetchError::Connect(chain)
    } else {
        FetchError::Http(chain)
    }
}

/// io::Error's `source()` skips the error it wraps, and hyper-rustls wraps TLS failures in
/// an io::Error inside another: look through every layer.
fn rustls_inside_io<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut inner: &(dyn std::error::Error + 'static) = e;
    loop {
        if let Some(x) = inner.downcast_ref::<rustls::Error>() {
            return Some(x);
        }
        inner = inner.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        source = e.source();
    }
    parts.join(": ")
}
