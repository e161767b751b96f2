//! The landing page's icon as evidence: where it is (`<link rel="icon">`, else
//! `/favicon.ico` of the page's origin), fetched once through the chain's own fetcher and
//! gate, only when the answer is an image no larger than [`MAX_FAVICON_BYTES`], and hashed
//! as SHA-256 and as Shodan's `http.favicon.hash` (MurmurHash3 of the base64).

use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine as _;
use regex::Regex;
use url::Url;

use crate::discover::attributes;
use crate::extract::html_unescape;
use crate::fetch::{FetchError, Fetcher};
use crate::profile::Profile;
use crate::trace::Favicon;

/// Largest icon hashed; a bigger one is not read past this and gets no hash.
pub const MAX_FAVICON_BYTES: usize = 100 * 1024;

/// Why a landing page's icon has no hash (said on the landing hop).
#[derive(Debug, thiserror::Error)]
pub enum FaviconError {
    #[error("icon {0} is not an http(s) URL")]
    Scheme(String),
    #[error("icon {url}: {source}")]
    Fetch { url: String, source: FetchError },
    #[error("icon {url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("icon {url} is not an image ({content_type}); not read")]
    NotImage { url: String, content_type: String },
    #[error("icon {url} larger than {MAX_FAVICON_BYTES} bytes or cut short; not hashed")]
    TooLarge { url: String },
}

static LINK_TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?is)<link\b[^>]*>").unwrap());

/// The page's icon: the first `<link rel="icon">` (or `shortcut icon`) `href`, resolved
/// against `page`, else `/favicon.ico` of `page`'s origin.
pub fn icon_url(page: &Url, html: &[u8]) -> Option<Url> {
    let html = String::from_utf8_lossy(html);
    let linked = LINK_TAG.find_iter(&html).find_map(|tag| {
        let mut icon = false;
        let mut href = None;
        for (name, value) in attributes(tag.as_str()) {
            match name.as_str() {
                "rel" => {
                    icon = value
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("icon"))
                }
                "href" => href = Some(html_unescape(value.trim())),
                _ => {}
            }
        }
        href.filter(|h| icon && !h.is_empty())
    });
    match linked {
        Some(href) => page.join(&href).ok(),
        None => page.join("/favicon.ico").ok(),
    }
}

/// Whether an answer with `content_type` for `url` is an icon: any `image/*`, or an `.ico`
/// served with no type at all.
fn is_image(content_type: Option<&str>, url: &Url) -> bool {
    match content_type {
        Some(t) => t.trim_start().to_ascii_lowercase().starts_with("image/"),
        None => url.path().to_ascii_lowercase().ends_with(".ico"),
    }
}

/// Fetches the icon at `url` as `profile` within `budget` and hashes it.
pub async fn fetch(
    fetcher: &Fetcher,
    url: &Url,
    budget: Duration,
    profile: &Profile,
) -> Result<Favicon, FaviconError> {
    let shown = url.to_string();
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FaviconError::Scheme(shown));
    }
    let content_type = |h: &http::HeaderMap| {
        h.get(http::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    // One byte over the cap tells a too-large icon from one exactly at it.
    let answer = fetcher
        .get_icon(url, budget, profile, MAX_FAVICON_BYTES + 1, |h| {
            is_image(content_type(h).as_deref(), url)
        })
        .await
        .map_err(|source| FaviconError::Fetch {
            url: shown.clone(),
            source,
        })?;
    if !(200..300).contains(&answer.status) {
        return Err(FaviconError::Status {
            url: shown,
            status: answer.status,
        });
    }
    let content_type = content_type(&answer.headers);
    if !is_image(content_type.as_deref(), url) {
        return Err(FaviconError::NotImage {
            url: shown,
            content_type: content_type.unwrap_or_else(|| "no type".into()),
        });
    }
    if answer.cut.is_some() || answer.body.len() > MAX_FAVICON_BYTES {
        return Err(FaviconError::TooLarge { url: shown });
    }
    Ok(Favicon {
        url: shown,
        sha256: crate::record::sha256_hex(&answer.body),
        mmh3: shodan_hash(&answer.body),
    })
}

/// Shodan's favicon hash: MurmurHash3 (x86, 32-bit, seed 0, read as signed) of the bytes'
/// base64 with a newline after every 76 characters and at the end, as Python's
/// `mmh3.hash(codecs.encode(data, "base64"))`.
pub fn shodan_hash(data: &[u8]) -> i32 {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut lines = Vec::with_capacity(b64.len() + b64.len() / 76 + 1);
    for chunk in b64.as_bytes().chunks(76) {
        lines.extend_from_slice(chunk);
        lines.push(b'\n');
    }
    murmur3_32(&lines, 0) as i32
}

/// MurmurHash3 x86 32-bit.
fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for b in &mut blocks {
        let k = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, &b) in tail.iter().enumerate() {
            k |= u32::from(b) << (8 * i);
        }
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_known_vectors() {
        // Published vectors (Python's mmh3.hash reads the same value as signed).
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514E_28B7);
        assert_eq!(murmur3_32(b"foo", 0) as i32, -156_908_512);
        assert_eq!(murmur3_32(b"hello", 0), 613_153_351);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
    }

    #[test]
    fn icon_from_link_or_origin() {
        let page = Url::parse("http://a.test:8080/x/page.html?q=1").unwrap();
        let linked = br#"<head><link rel="stylesheet" href="s.css"><LINK REL="Shortcut Icon" href="/i/fav.png?a=1&amp;b=2"></head>"#;
        assert_eq!(
            icon_url(&page, linked).unwrap().as_str(),
            "http://a.test:8080/i/fav.png?a=1&b=2"
        );
        assert_eq!(
            icon_url(&page, b"<p>no icon</p>").unwrap().as_str(),
            "http://a.test:8080/favicon.ico"
        );
    }

    #[test]
    fn only_images_are_icons() {
        let ico = Url::parse("http://a.test/favicon.ico").unwrap();
        assert!(is_image(Some("image/x-icon"), &ico));
        assert!(is_image(None, &ico));
        assert!(!is_image(Some("application/octet-stream"), &ico));
        assert!(!is_image(Some("text/html"), &ico));
        assert!(!is_image(None, &Url::parse("http://a.test/f.png").unwrap()));
    }
}
