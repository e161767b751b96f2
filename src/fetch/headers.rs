//! What a request presents: the headers by which a client profile is known, and a form's
//! own (its type, and the Origin and Referer a browser sends with it).

use http::header::{self, HeaderMap, HeaderValue};
use url::Url;

/// A form a page submits with POST: its `application/x-www-form-urlencoded` body and the
/// page it was submitted from.
#[derive(Debug, Clone, Copy)]
pub struct Form<'a> {
    pub body: &'a str,
    pub from: &'a Url,
}

impl Form<'_> {
    /// The headers a browser sends with the form's POST to `to`: its type, the submitting
    /// page's Origin, and the Referer its default policy (`strict-origin-when-cross-origin`)
    /// allows.
    pub(crate) fn present(&self, headers: &mut HeaderMap, to: &Url) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        // The same policy hides the origin too from HTTPS to HTTP.
        let origin = if self.from.scheme() == "https" && to.scheme() != "https" {
            "null".to_string()
        } else {
            self.from.origin().ascii_serialization()
        };
        if let Ok(v) = HeaderValue::from_str(&origin) {
            headers.insert(header::ORIGIN, v);
        }
        match referrer(self.from, to).and_then(|r| HeaderValue::from_str(&r).ok()) {
            Some(v) => {
                headers.insert(header::REFERER, v);
            }
            None => {
                headers.remove(header::REFERER);
            }
        }
    }
}

/// The Referer a browser sends from the page `from` to `to` under the default referrer
/// policy, `strict-origin-when-cross-origin`: the page's URL (without its credentials and
/// fragment) to its own origin, its origin alone elsewhere, nothing from HTTPS to HTTP.
pub fn referrer(from: &Url, to: &Url) -> Option<String> {
    if !matches!(from.scheme(), "http" | "https") {
        return None;
    }
    if from.scheme() == "https" && to.scheme() != "https" {
        return None;
    }
    if from.origin() == to.origin() {
        let mut page = from.clone();
        let _ = page.set_username("");
        let _ = page.set_password(None);
        page.set_fragment(None);
        return Some(page.to_string());
    }
    Some(format!("{}/", from.origin().ascii_serialization()))
}

/// The headers by which `profile` is known (the config checked they are header values).
pub(crate) fn present(headers: &mut HeaderMap, profile: &crate::profile::Profile, first: bool) {
    if let Ok(ua) = HeaderValue::from_str(&profile.user_agent) {
        headers.insert(header::USER_AGENT, ua);
    }
    match profile
        .accept_language
        .as_deref()
        .map(HeaderValue::from_str)
    {
        Some(Ok(lang)) => {
            headers.insert(header::ACCEPT_LANGUAGE, lang);
        }
        _ => {
            headers.remove(header::ACCEPT_LANGUAGE);
        }
    }
    if first {
        if let Some(Ok(r)) = profile.referer.as_deref().map(HeaderValue::from_str) {
            headers.insert(header::REFERER, r);
        }
    }
}
