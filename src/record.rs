//! What one fetch exchanged, kept as evidence and for HAR: the request and response headers
//! (bounded), the timings, the server's TLS certificate and the SHA-256 of the body read. A
//! hop's record is what an analyst hands a colleague: standard, and never more than a few
//! kilobytes whatever the server sent.

use http::HeaderMap;
use serde::{Deserialize, Serialize};

/// Header bytes (names and values) kept per request or response; the rest are dropped and
/// the record says so.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Characters of a page title kept.
const MAX_TITLE_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// One request and its response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRecord {
    /// When the request was sent (RFC 3339 UTC, milliseconds).
    pub started: String,
    pub method: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub http_version: String,
    pub request_headers: Vec<Header>,
    pub response_headers: Vec<Header>,
    /// Headers left out past [`MAX_HEADER_BYTES`] (request and response together).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub headers_left_out: usize,
    /// From sending the request to the response's headers (connection included).
    pub wait_ms: u64,
    /// Reading the body (0 when it was not read).
    pub receive_ms: u64,
    /// Body bytes read off the wire (at most `limits.max_body_bytes`).
    pub body_bytes: u64,
    /// SHA-256 (hex) of the body as read and decoded; absent when no body was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
    /// The page's `<title>`, for an HTML body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The certificate the server presented (HTTPS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<CertSummary>,
}

impl HttpRecord {
    /// A response header's value (the first of that name, any case).
    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A server certificate, as an analyst compares them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    /// Subject alternative names: DNS names and IP addresses.
    pub sans: Vec<String>,
    /// RFC 3339 UTC.
    pub not_before: String,
    pub not_after: String,
    /// SHA-256 (hex) of the certificate's DER.
    pub sha256: String,
}

impl CertSummary {
    /// The summary of a DER certificate; `None` when it does not parse (it verified, so it
    /// did for rustls: this only guards against the two parsers disagreeing).
    pub fn of_der(der: &[u8]) -> Option<CertSummary> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let sans = match cert.subject_alternative_name() {
            Ok(Some(ext)) => ext
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    GeneralName::IPAddress(b) => ip_of(b),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let time = |t: x509_parser::time::ASN1Time| {
            let secs = t.timestamp();
            match secs >= 0 {
                true => humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64),
                )
                .to_string(),
                false => t.to_string(),
            }
        };
        Some(CertSummary {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            sans,
            not_before: time(cert.validity().not_before),
            not_after: time(cert.validity().not_after),
            sha256: sha256_hex(der),
        })
    }
}

fn ip_of(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?).to_string()),
        _ => None,
    }
}

/// The headers of `map` in order, within `room` bytes (which they use up); answers how many
/// were left out.
pub fn headers_of(map: &HeaderMap, room: &mut usize) -> (Vec<Header>, usize) {
    let mut kept = Vec::new();
    let mut left_out = 0;
    for (name, value) in map {
        let size = name.as_str().len() + value.len();
        if size > *room {
            left_out += 1;
            continue;
        }
        *room -= size;
        kept.push(Header {
            name: name.as_str().to_string(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        });
    }
    (kept, left_out)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Lower-case hex of `bytes` (without a `format!` per byte: this runs on every fetch).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// The `<title>` of an HTML document, whitespace collapsed, the commonest entities decoded,
/// at most 300 characters; `None` without one.
pub fn title_of(html: &[u8]) -> Option<String> {
    static TITLE: std::sync::LazyLock<regex::bytes::Regex> = std::sync::LazyLock::new(|| {
        regex::bytes::Regex::new(r"(?is)<title[^>]*>(.*?)</title").expect("valid")
    });
    let raw = TITLE.captures(html)?.get(1)?.as_bytes();
    let text = String::from_utf8_lossy(raw);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let text: String = text.chars().take(MAX_TITLE_CHARS).collect();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_sha256() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn titles() {
        assert_eq!(
            title_of(b"<html><head><TITLE lang=en>\n Sign in &amp; <b>\n</title>").as_deref(),
            Some("Sign in & <b>")
        );
        assert_eq!(title_of(b"<html><title></title>"), None);
        assert_eq!(title_of(b"no title"), None);
        let long = format!("<title>{}</title>", "x".repeat(1000));
        assert_eq!(title_of(long.as_bytes()).unwrap().len(), 300);
    }

    #[test]
    fn headers_are_bounded() {
        let mut map = HeaderMap::new();
        map.insert("a", "1".parse().unwrap());
        map.insert("b", "x".repeat(100).parse().unwrap());
        map.insert("c", "2".parse().unwrap());
        let mut room = 10;
        let (kept, left_out) = headers_of(&map, &mut room);
        assert_eq!(kept.len(), 2);
        assert_eq!(left_out, 1);
        assert_eq!(room, 6);
    }

    #[test]
    fn sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
