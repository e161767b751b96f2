//! Static unwrapping: links that carry their target inside them (Google `/url`, link shims,
//! mail-security rewriters) are decoded without contacting the wrapper's owner.
//!
//! Each wrapper is one row of [`WRAPPERS`]; the handful of encodings they use are the only
//! code. Nested wrappers unwrap one layer per hop, because the chain calls [`unwrap`] again on
//! whatever comes out.

use base64::Engine;
use percent_encoding::percent_decode_str;
use url::Url;

use crate::trace::Via;

/// One layer taken off a wrapped link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwrapped {
    /// The target, as found inside the wrapper.
    pub target: String,
    /// Which wrapper it was (the table row's name).
    pub wrapper: &'static str,
    pub via: Via,
    /// A label the wrapper hop itself earns (Google's `/url` is an open redirect).
    pub label: Option<crate::labels::Builtin>,
    /// Google only: a `usg` signature was present, so Google redirects without warning.
    pub automatic: Option<bool>,
}

/// Which hosts a wrapper lives on.
enum Hosts {
    /// Exactly these host names.
    Exact(&'static [&'static str]),
    /// This domain and any subdomain of it.
    Under(&'static str),
    /// Any registrable domain whose first label is this (google.com, google.co.uk, ...).
    Brand(&'static str),
}

/// Where the target is inside the wrapper URL.
enum Encoding {
    /// The first of these query parameters that is present, percent-decoded.
    Query(&'static [&'static str]),
    /// A query parameter holding base64 (standard or URL-safe alphabet).
    QueryBase64(&'static [&'static str]),
    /// The whole query string is the target (`href.li/?https://...`).
    WholeQuery,
    /// The path segment after this prefix, percent-decoded (`/L0/<target>/...`).
    PathSegment(&'static str),
    /// Proofpoint URL Defense v2: `u=` with `-` for `%` and `_` for `/`.
    ProofpointV2,
    /// Proofpoint URL Defense v3: `/v3/__<url>__;<base64>!...`, `*` placeholders.
    ProofpointV3,
}

struct Wrapper {
    name: &'static str,
    hosts: Hosts,
    /// Path the wrapper answers on; with `prefix`, anything starting with it.
    path: &'static str,
    prefix: bool,
    encoding: Encoding,
    via: Via,
    label: Option<crate::labels::Builtin>,
}

const fn row(
    name: &'static str,
    hosts: Hosts,
    path: &'static str,
    prefix: bool,
    encoding: Encoding,
) -> Wrapper {
    Wrapper {
        name,
        hosts,
        path,
        prefix,
        encoding,
        via: Via::Wrapper,
        label: None,
    }
}

/// The known wrappers. Add a row to teach hoptrace a new one.
static WRAPPERS: &[Wrapper] = &[
    Wrapper {
        name: "google",
        hosts: Hosts::Brand("google"),
        path: "/url",
        prefix: false,
        encoding: Encoding::Query(&["q", "url"]),
        via: Via::GoogleUrl,
        label: Some(crate::labels::Builtin::OpenRedirect),
    },
    row(
        "facebook",
        Hosts::Exact(&[
            "l.facebook.com",
            "lm.facebook.com",
            "m.facebook.com",
            "www.facebook.com",
            "facebook.com",
            "l.messenger.com",
            "l.instagram.com",
        ]),
        "/l.php",
        false,
        Encoding::Query(&["u"]),
    ),
    row(
        "youtube",
        Hosts::Exact(&["www.youtube.com", "youtube.com", "m.youtube.com"]),
        "/redirect",
        false,
        Encoding::Query(&["q"]),
    ),
    row(
        "vk",
        Hosts::Exact(&["vk.com", "m.vk.com"]),
        "/away.php",
        false,
        Encoding::Query(&["to"]),
    ),
    row(
        "steam",
        Hosts::Exact(&["steamcommunity.com"]),
        "/linkfilter",
        true,
        Encoding::Query(&["url", "u"]),
    ),
    row(
        "reddit",
        Hosts::Exact(&["out.reddit.com"]),
        "/",
        true,
        Encoding::Query(&["url"]),
    ),
    row(
        "duckduckgo",
        Hosts::Exact(&[
            "duckduckgo.com",
            "html.duckduckgo.com",
            "lite.duckduckgo.com",
        ]),
        "/l",
        true,
        Encoding::Query(&["uddg"]),
    ),
    row(
        "href.li",
        Hosts::Exact(&["href.li"]),
        "/",
        true,
        Encoding::WholeQuery,
    ),
    row(
        "tumblr",
        Hosts::Exact(&["t.umblr.com"]),
        "/redirect",
        false,
        Encoding::Query(&["z"]),
    ),
    row(
        "outlook-safelinks",
        Hosts::Under("safelinks.protection.outlook.com"),
        "/",
        true,
        Encoding::Query(&["url"]),
    ),
    row(
        "proofpoint-v1",
        Hosts::Exact(&["urldefense.proofpoint.com"]),
        "/v1/url",
        false,
        Encoding::Query(&["u"]),
    ),
    row(
        "proofpoint-v2",
        Hosts::Exact(&["urldefense.proofpoint.com"]),
        "/v2/url",
        false,
        Encoding::ProofpointV2,
    ),
    row(
        "proofpoint-v3",
        Hosts::Exact(&["urldefense.com", "urldefense.proofpoint.com"]),
        "/v3/__",
        true,
        Encoding::ProofpointV3,
    ),
    row(
        "barracuda",
        Hosts::Exact(&["linkprotect.cudasvc.com"]),
        "/url",
        false,
        Encoding::Query(&["a"]),
    ),
    row(
        "sophos",
        Hosts::Under("protection.sophos.com"),
        "/",
        true,
        Encoding::QueryBase64(&["u"]),
    ),
    row(
        "aws-ses",
        Hosts::Under("awstrack.me"),
        "/L0/",
        true,
        Encoding::PathSegment("/L0/"),
    ),
];

/// Takes one wrapper layer off `url`, if it is a known wrapper carrying an absolute target.
pub fn unwrap(url: &Url) -> Option<Unwrapped> {
    let host = url.host_str()?.to_ascii_lowercase();
    let path = url.path();
    let w = WRAPPERS.iter().find(|w| {
        host_matches(&w.hosts, &host) && (path == w.path || (w.prefix && path.starts_with(w.path)))
    })?;
    let target = match &w.encoding {
        Encoding::Query(names) => query_param(url, names)?,
        Encoding::QueryBase64(names) => base64_text(&query_param(url, names)?)?,
        Encoding::WholeQuery => {
            let q = url.query()?;
            let decoded = percent_decode_str(q).decode_utf8().ok()?.into_owned();
            if looks_absolute(q) {
                q.to_string()
            } else {
                decoded
            }
        }
        Encoding::PathSegment(prefix) => {
            let rest = path.strip_prefix(prefix)?;
            let segment = rest.split('/').next()?;
            percent_decode_str(segment).decode_utf8().ok()?.into_owned()
        }
        Encoding::ProofpointV2 => proofpoint_v2(&query_param(url, &["u"])?)?,
        Encoding::ProofpointV3 => proofpoint_v3(url.as_str())?,
    };
    let target = target.trim().to_string();
    if !looks_absolute(&target) {
        return None;
    }
    let automatic = (w.via == Via::GoogleUrl).then(|| url.query_pairs().any(|(k, _)| k == "usg"));
    Some(Unwrapped {
        target,
        wrapper: w.name,
        via: w.via,
        label: w.label,
        automatic,
    })
}

fn host_matches(hosts: &Hosts, host: &str) -> bool {
    match hosts {
        Hosts::Exact(list) => list.contains(&host),
        Hosts::Under(domain) => {
            host == *domain
                || (host.ends_with(domain) && host[..host.len() - domain.len()].ends_with('.'))
        }
        Hosts::Brand(brand) => psl::domain_str(host)
            .and_then(|d| d.split('.').next())
            .is_some_and(|label| label == *brand),
    }
}

fn query_param(url: &Url, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| {
        url.query_pairs()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.into_owned())
    })
}

/// True for `scheme://...` (any scheme: the chain decides which ones it may follow).
fn looks_absolute(s: &str) -> bool {
    match s.find("://") {
        Some(i) if i > 0 => s[..i]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')),
        _ => false,
    }
}

fn base64_text(s: &str) -> Option<String> {
    let s = s.trim().trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s))
        .ok()?;
    String::from_utf8(bytes).ok()
}

fn proofpoint_v2(u: &str) -> Option<String> {
    let escaped: String = u
        .chars()
        .map(|c| match c {
            '-' => '%',
            '_' => '/',
            c => c,
        })
        .collect();
    Some(
        percent_decode_str(&escaped)
            .decode_utf8()
            .ok()?
            .into_owned(),
    )
}

/// `https://urldefense.com/v3/__<url>__;<base64 bytes>!!<tokens>$`: each `*` in the URL stands
/// for the next character of the decoded bytes, and `**X` for a run of them whose length X
/// encodes (A=2, B=3, ...).
fn proofpoint_v3(whole: &str) -> Option<String> {
    let start = whole.find("/v3/__")? + "/v3/__".len();
    let rest = &whole[start..];
    let end = rest.find("__;")?;
    let embedded = percent_decode_str(&rest[..end])
        .decode_utf8()
        .ok()?
        .into_owned();
    let after = &rest[end + 3..];
    let enc = &after[..after.find('!').unwrap_or(after.len())];
    let bytes: Vec<char> = if enc.is_empty() {
        Vec::new()
    } else {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(enc.trim_end_matches('='))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())?
            .chars()
            .collect()
    };
    const RUNS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(embedded.len());
    let mut next = 0usize;
    let mut chars = embedded.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '*' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'*') {
            chars.next();
            let code = chars.next()?;
            let run = RUNS.find(code)? + 2;
            out.extend(bytes.get(next..next + run)?.iter());
            next += run;
        } else {
            out.push(*bytes.get(next)?);
            next += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn un(s: &str) -> Option<Unwrapped> {
        unwrap(&Url::parse(s).unwrap())
    }

    fn target(s: &str) -> String {
        un(s).unwrap_or_else(|| panic!("{s} should unwrap")).target
    }

    #[test]
    fn google_url_with_and_without_usg() {
        let u =
            un("https://www.google.com/url?q=https://urlin.us/2vwNSW&sa=D&sntz=1&usg=AOvVaw0abc")
                .unwrap();
        assert_eq!(u.target, "https://urlin.us/2vwNSW");
        assert_eq!(u.via, Via::GoogleUrl);
        assert_eq!(u.automatic, Some(true));
        assert_eq!(u.label.map(|l| l.as_str()), Some("open-redirect"));
        let u = un("https://google.co.uk/url?url=http%3A%2F%2Fgts794.com%2Fx%3Fa%3D1").unwrap();
        assert_eq!(u.target, "http://gts794.com/x?a=1");
        assert_eq!(u.automatic, Some(false));
        // Not a wrapper: wrong path, no target, relative target, lookalike domain.
        assert!(un("https://www.google.com/search?q=https://x.com").is_none());
        assert!(un("https://www.google.com/url?sa=D").is_none());
        assert!(un("https://www.google.com/url?q=/local").is_none());
        assert!(un("https://google.evil.com/url?q=https://x.com").is_none());
    }

    #[test]
    fn every_wrapper_row() {
        let t = "https://evil.example/p?a=1";
        let enc = "https%3A%2F%2Fevil.example%2Fp%3Fa%3D1";
        assert_eq!(
            target(&format!("https://l.facebook.com/l.php?u={enc}&h=AT0")),
            t
        );
        assert_eq!(target(&format!("https://l.messenger.com/l.php?u={enc}")), t);
        assert_eq!(
            target(&format!("https://www.youtube.com/redirect?event=x&q={enc}")),
            t
        );
        assert_eq!(
            target(&format!("https://vk.com/away.php?to={enc}&cc_key=")),
            t
        );
        assert_eq!(
            target(&format!("https://steamcommunity.com/linkfilter/?url={enc}")),
            t
        );
        assert_eq!(
            target(&format!("https://out.reddit.com/t3_abc?url={enc}&token=x")),
            t
        );
        assert_eq!(
            target(&format!("https://duckduckgo.com/l/?uddg={enc}&rut=1")),
            t
        );
        assert_eq!(target("https://href.li/?https://evil.example/p?a=1"), t);
        assert_eq!(
            target(&format!("https://t.umblr.com/redirect?z={enc}&t=x")),
            t
        );
        assert_eq!(
            target(&format!(
                "https://eur01.safelinks.protection.outlook.com/?url={enc}&data=x"
            )),
            t
        );
        assert_eq!(
            target(&format!(
                "https://urldefense.proofpoint.com/v1/url?u={enc}&k=x"
            )),
            t
        );
        assert_eq!(target("https://urldefense.proofpoint.com/v2/url?u=https-3A__evil.example_p-3Fa-3D1&d=DwMF&c=x"), t);
        assert_eq!(
            target(&format!(
                "https://linkprotect.cudasvc.com/url?a={enc}&c=E,1,x"
            )),
            t
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(t);
        assert_eq!(
            target(&format!(
                "https://eu-central-1.protection.sophos.com/?d=evil.example&u={b64}&i=x"
            )),
            t
        );
        assert_eq!(
            target(&format!(
                "https://abc.r.us-east-1.awstrack.me/L0/{enc}/1/0100-abc/xyz="
            )),
            t
        );
        for w in WRAPPERS {
            assert!(!w.name.is_empty());
        }
    }

    #[test]
    fn proofpoint_v3_placeholders() {
        // Plain, one placeholder, and a run placeholder (**A = 2 characters).
        assert_eq!(
            target("https://urldefense.com/v3/__https://evil.example/p__;!!ABC!DEF$"),
            "https://evil.example/p"
        );
        let one = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("#");
        assert_eq!(
            target(&format!(
                "https://urldefense.com/v3/__https://evil.example/p*x__;{one}!!ABC!DEF$"
            )),
            "https://evil.example/p#x"
        );
        let run = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("?a");
        assert_eq!(
            target(&format!(
                "https://urldefense.com/v3/__https://evil.example/p**A=1__;{run}!!ABC!DEF$"
            )),
            "https://evil.example/p?a=1"
        );
        // Not enough bytes for its placeholders: refused rather than guessed.
        assert!(un("https://urldefense.com/v3/__https://evil.example/p*x__;!!ABC!DEF$").is_none());
    }

    #[test]
    fn nested_layers_come_off_one_at_a_time() {
        let inner = "https://www.google.com/url?q=https://gts794.com/a&usg=x";
        let outer = format!("https://l.facebook.com/l.php?u={}", urlencode(inner));
        let first = un(&outer).unwrap();
        assert_eq!(first.target, inner);
        assert_eq!(first.via, Via::Wrapper);
        let second = un(&first.target).unwrap();
        assert_eq!(second.target, "https://gts794.com/a");
    }

    fn urlencode(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }
}
