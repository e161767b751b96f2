//! Each key's rule, checked as the key is read: a field names its rule
//! (`#[serde(deserialize_with = "validate::...")]`) and serde names the key, so an error says
//! which key with no name written here. Only rules that tie two keys together run after,
//! in [`Config::validate`].

use std::collections::BTreeMap;

use serde::de::{Deserialize, Deserializer, Error};

use super::*;

/// No upper bound, in a `within` rule.
pub(super) const ANY: u64 = u64::MAX;

/// A bad key found after reading (a rule across two keys): its full name and what is wrong.
pub(super) struct Invalid {
    pub(super) key: &'static str,
    pub(super) message: String,
}

impl Invalid {
    pub(super) fn at(self, origin: &Path) -> ConfigError {
        ConfigError::Key {
            path: origin.to_path_buf(),
            key: self.key.to_string(),
            message: self.message,
        }
    }
}

/// Reads a `T` and holds it to `ok`, else `message`.
fn held<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    ok: impl FnOnce(&T) -> bool,
    message: impl FnOnce(&T) -> String,
) -> Result<T, D::Error> {
    let value = T::deserialize(d)?;
    match ok(&value) {
        true => Ok(value),
        false => Err(D::Error::custom(message(&value))),
    }
}

/// A whole number from `LO` to `HI`.
pub(super) fn within<'de, D, T, const LO: u64, const HI: u64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Copy + Into<u64>,
{
    held(
        d,
        |n: &T| (LO..=HI).contains(&(*n).into()),
        |_| match (LO, HI) {
            (1, ANY) => "must be greater than 0".to_string(),
            _ => format!("must be between {LO} and {HI}"),
        },
    )
}

/// `within`, for a key that may be left out.
pub(super) fn some_within<'de, D, T, const LO: u64, const HI: u64>(
    d: D,
) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Copy + Into<u64>,
{
    within::<D, T, LO, HI>(d).map(Some)
}

/// A rate: a number greater than 0.
pub(super) fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    held(
        d,
        |r: &f64| r.is_finite() && *r > 0.0,
        |_| "must be a number greater than 0".into(),
    )
}

fn header_value(value: &str) -> bool {
    http::HeaderValue::from_str(value).is_ok()
}

/// A header value (empty allowed: no header).
pub(super) fn header<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    held(
        d,
        |v: &String| header_value(v),
        |_| "is not a valid header value".into(),
    )
}

/// A header value, empty meaning none.
pub(super) fn optional_header<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    header(d).map(|v| Some(v).filter(|v| !v.is_empty()))
}

/// Text, empty meaning none.
pub(super) fn optional_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(|v| Some(v).filter(|v| !v.is_empty()))
}

/// A path, empty meaning none.
pub(super) fn optional_path<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<std::path::PathBuf>, D::Error> {
    std::path::PathBuf::deserialize(d).map(|v| Some(v).filter(|v| !v.as_os_str().is_empty()))
}

/// A User-Agent: a header value, not empty.
pub(super) fn user_agent<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    held(
        d,
        |v: &String| !v.trim().is_empty() && header_value(v),
        |_| "must be a non-empty header value".into(),
    )
}

/// A browser window, `[width, height]`.
pub(super) fn viewport<'de, D: Deserializer<'de>>(d: D) -> Result<[u32; 2], D::Error> {
    held(
        d,
        |v: &[u32; 2]| v.iter().all(|d| (100..=10_000).contains(d)),
        |_| "must be [width, height], each 100 to 10000".into(),
    )
}

/// A name of a `[profiles.NAME]` or `[egress.points.NAME]` table: lowercase letters, digits
/// and dashes (and not `direct`, the way out that is no point).
pub(super) fn named<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<BTreeMap<String, T>, D::Error> {
    let name_ok = |name: &String| {
        name != "direct"
            && !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    held(
        d,
        |m: &BTreeMap<String, T>| m.keys().all(name_ok),
        |m| {
            let bad = m.keys().find(|n| !name_ok(n)).cloned().unwrap_or_default();
            format!(
                "`{bad}`: a name must be lowercase letters, digits and dashes (and not `direct`)"
            )
        },
    )
}

/// An egress point's proxy: `socks5://ip:port` or `http://ip:port`.
pub(super) fn proxy<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    held(
        d,
        |p: &String| {
            p.strip_prefix("socks5://")
                .or_else(|| p.strip_prefix("http://"))
                .map(|a| a.trim_end_matches('/'))
                .is_some_and(|a| a.parse::<SocketAddr>().is_ok())
        },
        |_| "must be socks5://ip:port or http://ip:port".into(),
    )
}

/// An optional string: `""` (how older files say none) reads as none.
fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(String::deserialize(d)?).filter(|s| !s.is_empty()))
}

/// `limits.shared_url`: none, or a `redis://` URL.
pub(super) fn redis_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match optional(d)? {
        Some(u) if !u.starts_with("redis://") => {
            Err(D::Error::custom("must be empty or a redis:// URL"))
        }
        url => Ok(url),
    }
}

/// A PostgreSQL URL; `""` (the sled form of older files) is none.
pub(super) fn postgres_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match optional(d)? {
        Some(u) if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) => {
            Err(D::Error::custom("must be a postgres:// URL"))
        }
        url => Ok(url),
    }
}

/// A folder that must be named when given.
pub(super) fn some_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    held(
        d,
        |p: &PathBuf| !p.as_os_str().is_empty(),
        |_| "must not be empty".into(),
    )
    .map(Some)
}

/// An http or https URL, parsed; `""` is none.
pub(super) fn web_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<url::Url>, D::Error> {
    optional(d)?
        .map(|u| {
            url::Url::parse(&u)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| D::Error::custom("must be an http or https URL"))
        })
        .transpose()
}

pub(super) fn some_url<S: serde::Serializer>(
    u: &Option<url::Url>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match u {
        Some(u) => s.serialize_str(u.as_str()),
        None => s.serialize_none(),
    }
}

/// `hub.api_url`: http or https, a host, no query.
pub(super) fn hub_api_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    held(
        d,
        |u: &String| {
            url::Url::parse(u).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.query().is_none()
            })
        },
        |_| "must be an http or https URL without a query".into(),
    )
}

/// API tokens: none empty.
pub(super) fn tokens<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    held(
        d,
        |ts: &Vec<String>| ts.iter().all(|t| !t.trim().is_empty()),
        |_| "tokens must not be empty".into(),
    )
}

/// `server.allowed_hosts`: each a host name as a `Host` header gives it, without the port.
pub(super) fn host_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    held(
        d,
        |hs: &Vec<String>| hs.iter().all(|h| host_name(h)),
        |hs| {
            let bad = hs
                .iter()
                .find(|h| !host_name(h))
                .cloned()
                .unwrap_or_default();
            format!("`{bad}` is not a host name (no scheme, port or path; [::1] for IPv6)")
        },
    )
}

/// A name as a `Host` header gives it, without the port: `*`, a DNS name, an IPv4 literal,
/// or an IPv6 literal in brackets.
fn host_name(name: &str) -> bool {
    if name == "*" {
        return true;
    }
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// `hub.schedule.namespaces`: Docker Hub names.
pub(super) fn hub_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    held(
        d,
        |ns: &Vec<String>| ns.iter().all(|n| hub_name(n)),
        |_| "must be Docker Hub names ([a-z0-9][a-z0-9._-]*)".into(),
    )
}

/// `hub.schedule.search`: queries of 1 to 256 bytes.
pub(super) fn hub_searches<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    held(
        d,
        |qs: &Vec<String>| {
            qs.iter()
                .all(|q| !q.trim().is_empty() && q.len() <= MAX_HUB_SEARCH)
        },
        |_| "each query must be 1 to 256 bytes".into(),
    )
}

/// `hub.schedule.repositories`: `namespace/name`.
pub(super) fn hub_repositories<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    held(
        d,
        |rs: &Vec<String>| {
            rs.iter().all(|r| {
                r.split_once('/')
                    .is_some_and(|(ns, name)| hub_name(ns) && hub_name(name))
            })
        },
        |_| "must be `namespace/name` Docker Hub names".into(),
    )
}

/// The rules across two keys, which no single key's reader can judge; they name both.
impl Server {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        // Without tokens anyone who reaches the server may use it: only this machine may.
        if !self.listen.ip().is_loopback() && self.api_tokens.is_empty() {
            return Err(Invalid {
                key: "server.listen",
                message: "is not a loopback address while server.api_tokens is empty: without \
                          tokens the server listens on loopback only (set server.api_tokens, \
                          or listen on 127.0.0.1)"
                    .into(),
            });
        }
        // Any Host lets a rebound DNS name reach the API: only tokens stop a page then.
        if self.allowed_hosts.iter().any(|h| h == "*") && self.api_tokens.is_empty() {
            return Err(Invalid {
                key: "server.allowed_hosts",
                message: "\"*\" (any host name) needs server.api_tokens".into(),
            });
        }
        Ok(())
    }
}

impl Watch {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if self.default_every < self.min_every {
            return Err(Invalid {
                key: "watch.default_every_seconds",
                message: "must not be below watch.min_every_seconds".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys whose "none" was an empty string are options: left out or empty is none, a
    /// value is itself (a relative path against the config's folder), as the TOML always read.
    #[test]
    fn optional_keys_read_empty_as_none() {
        let parse = |t: &str| Config::parse(t, Path::new("/etc/h/t.toml")).unwrap();
        let none = parse(
            "[browser]\nchrome_path = \"\"\nscript_worker = \"\"\n[profiles.p]\nuser_agent = \"x\"\n\
             accept_language = \"\"\nplatform = \"\"\ntimezone = \"\"\nreferer = \"\"\n",
        );
        let left_out = parse("[profiles.p]\nuser_agent = \"x\"\n");
        for c in [&none, &left_out] {
            assert_eq!(
                (&c.browser.chrome_path, &c.browser.script_worker),
                (&None, &None)
            );
            let p = &c.profiles["p"];
            assert_eq!(
                (&p.accept_language, &p.platform, &p.timezone, &p.referer),
                (&None, &None, &None, &None)
            );
        }
        let set = parse(
            "[browser]\nchrome_path = \"bin/chromium\"\nscript_worker = \"/usr/bin/w\"\n\
             [profiles.p]\nuser_agent = \"x\"\naccept_language = \"de\"\nplatform = \"Win32\"\n\
             timezone = \"Europe/Berlin\"\nreferer = \"https://a.test/\"\n",
        );
        assert_eq!(
            set.browser.chrome_path.as_deref(),
            Some(Path::new("bin/chromium"))
        );
        assert_eq!(
            set.browser.script_worker.as_deref(),
            Some(Path::new("/usr/bin/w"))
        );
        let p = &set.profiles["p"];
        assert_eq!(
            (
                p.accept_language.as_deref(),
                p.platform.as_deref(),
                p.timezone.as_deref(),
                p.referer.as_deref()
            ),
            (
                Some("de"),
                Some("Win32"),
                Some("Europe/Berlin"),
                Some("https://a.test/")
            )
        );
        // A bad header value is still refused by its key.
        let bad = Config::parse(
            "[profiles.p]\nuser_agent = \"x\"\nreferer = \"a\\nb\"\n",
            Path::new("t.toml"),
        );
        assert!(bad.unwrap_err().to_string().contains("profiles.p.referer"));
    }

    /// Every validated key, one bad value each: start-up fails naming that key.
    #[test]
    fn each_bad_value_is_named_by_its_key() {
        for (toml, key) in [
            ("[limits]\nmax_hops = 0", "limits.max_hops"),
            ("[limits]\nhop_timeout_ms = 0", "limits.hop_timeout_ms"),
            ("[limits]\ntotal_timeout_ms = 0", "limits.total_timeout_ms"),
            ("[limits]\nmax_body_bytes = 0", "limits.max_body_bytes"),
            (
                "[limits]\nper_host_per_second = 0.0",
                "limits.per_host_per_second",
            ),
            ("[limits]\nconcurrency = 0", "limits.concurrency"),
            (
                "[limits]\nmax_export_chains = 0",
                "limits.max_export_chains",
            ),
            ("[http]\nuser_agent = \" \"", "http.user_agent"),
            (
                "[http]\naccept_language = \"a\\nb\"",
                "http.accept_language",
            ),
            ("[browser]\nsettle_ms = 0", "browser.settle_ms"),
            ("[browser]\nmax_tabs = 65", "browser.max_tabs"),
            (
                "[browser]\nlaunch_timeout_ms = 10",
                "browser.launch_timeout_ms",
            ),
            ("[browser]\nmax_page_bytes = 1", "browser.max_page_bytes"),
            ("[browser]\ndriver = \"headless_chrome\"", "browser.driver"),
            ("[browser]\nscript_engine = \"v8\"", "browser.script_engine"),
            ("[server]\nmax_batch = 0", "server.max_batch"),
            (
                "[server]\nheader_timeout_ms = 0",
                "server.header_timeout_ms",
            ),
            ("[server]\nbody_timeout_ms = 0", "server.body_timeout_ms"),
            ("[server]\nidle_timeout_ms = 0", "server.idle_timeout_ms"),
            ("[server]\nmax_connections = 0", "server.max_connections"),
            (
                "[server]\nhttp2_max_streams = 0",
                "server.http2_max_streams",
            ),
            ("[server]\nmax_exports = 0", "server.max_exports"),
            (
                "[server]\nrequest_timeout_ms = 0",
                "server.request_timeout_ms",
            ),
            (
                "[server]\nmax_request_bytes = 0",
                "server.max_request_bytes",
            ),
            ("[server]\napi_tokens = [\"\"]", "server.api_tokens"),
            ("[server]\nlisten = \"0.0.0.0:8080\"", "server.listen"),
            ("[server]\nlisten = \"[::]:8080\"", "server.listen"),
            (
                "[server]\nallowed_hosts = [\"http://x.example\"]",
                "server.allowed_hosts",
            ),
            (
                "[server]\nallowed_hosts = [\"x.example:8080\"]",
                "server.allowed_hosts",
            ),
            ("[server]\nallowed_hosts = [\"*\"]", "server.allowed_hosts"),
            (
                "[server]\nauth_failures_burst = 0",
                "server.auth_failures_burst",
            ),
            (
                "[server]\nauth_failures_per_minute = 0",
                "server.auth_failures_per_minute",
            ),
            ("[storage]\npath = \"\"", "storage.path"),
            ("[storage]\nbackend = \"postgres\"", "storage"),
            ("[storage]\nurl = \"mysql://h/d\"", "storage.url"),
            (
                "[storage]\nbackend = \"postgres\"\nurl = \"postgres://h/d\"\npool_size = 0",
                "storage.pool_size",
            ),
            ("[limits]\nshared_url = \"http://x\"", "limits.shared_url"),
            ("[watch]\nlease_seconds = 0", "watch.lease_seconds"),
            ("[profiles.Bad]\nuser_agent = \"x\"", "profiles"),
            (
                "[egress.points.nl]\nproxy = \"socks5://nl.example:1080\"",
                "egress.points.nl.proxy",
            ),
            (
                "[egress.points.direct]\nproxy = \"socks5://127.0.0.1:1080\"",
                "egress.points",
            ),
            ("[profiles.p]\nuser_agent = \"\"", "profiles.p.user_agent"),
            (
                "[profiles.p]\nuser_agent = \"x\"\nviewport = [1, 1]",
                "profiles.p.viewport",
            ),
            (
                "[watch]\ndefault_every_seconds = 5\nmin_every_seconds = 10",
                "watch.default_every_seconds",
            ),
            ("[dns]\ntimeout_ms = \"1s\"\nx = 1", "dns.x"),
            ("[watch]\nmin_every_seconds = 0", "watch.min_every_seconds"),
            (
                "[watch]\ndefault_every_seconds = 999999999999",
                "watch.default_every_seconds",
            ),
            ("[watch]\nmax_observations = 0", "watch.max_observations"),
            ("[hub]\napi_url = \"ftp://x\"", "hub.api_url"),
            (
                "[hub.schedule]\nnamespaces = [\"../x\"]",
                "hub.schedule.namespaces",
            ),
            ("[hub.schedule]\nsearch = [\" \"]", "hub.schedule.search"),
            (
                "[hub.schedule]\nrepositories = [\"nons\"]",
                "hub.schedule.repositories",
            ),
            (
                "[hub.schedule]\nevery_seconds = 0",
                "hub.schedule.every_seconds",
            ),
            (
                "[hub]\nrequests_per_second = 0.0",
                "hub.requests_per_second",
            ),
            ("[watch]\nwebhook_url = \"ftp://x\"", "watch.webhook_url"),
        ] {
            match Config::parse(toml, Path::new("t.toml")) {
                Err(ConfigError::Key { key: k, .. }) => assert_eq!(k, key, "{toml}"),
                other => panic!("{toml}: {other:?}"),
            }
        }
        assert!(Config::parse("", Path::new("t.toml")).is_ok());
        let exposed = "[server]\nlisten = \"0.0.0.0:8080\"\napi_tokens = [\"t\"]\n\
                       allowed_hosts = [\"*\", \"hoptrace.example\", \"[::1]\", \"10.0.0.5\"]";
        assert!(Config::parse(exposed, Path::new("t.toml")).is_ok());
    }

    /// The config serialises to TOML that parses back to the same values (tests write
    /// their configs this way).
    #[test]
    fn the_config_round_trips_through_toml() {
        let mut c = Config::default();
        c.dns.nameservers = vec!["127.0.0.1:5353".parse().unwrap()];
        c.policy.allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        c.limits.concurrency = 7;
        c.browser.launch_timeout = Duration::from_millis(1234);
        c.limits.shared_url = Some("redis://127.0.0.1:6379".into());
        c.watch.webhook_url = Some("https://hooks.example/h".parse().unwrap());
        let text = toml::to_string(&c).unwrap();
        let back = Config::parse(&text, Path::new("t.toml")).unwrap();
        assert_eq!(toml::to_string(&back).unwrap(), text);
        assert_eq!(back.limits.concurrency, 7);
        assert_eq!(back.dns.nameservers, c.dns.nameservers);
        assert_eq!(back.browser.launch_timeout, c.browser.launch_timeout);
        assert_eq!(back.limits.shared_url, c.limits.shared_url);
        assert_eq!(back.watch.webhook_url, c.watch.webhook_url);
        assert_eq!(back.storage, c.storage);
    }

    #[test]
    fn an_unset_dns_timeout_is_the_hop_budget() {
        let parse = |text| Config::parse(text, Path::new("t.toml")).unwrap();
        let c = parse("[limits]\nhop_timeout_ms = 1234");
        assert_eq!(c.dns_timeout(), Duration::from_millis(1234));
        // 0, as older files say unset.
        let c = parse("[limits]\nhop_timeout_ms = \"2s\"\n[dns]\ntimeout_ms = 0");
        assert_eq!(
            (c.dns.timeout, c.dns_timeout()),
            (None, Duration::from_secs(2))
        );
        let c = parse("[dns]\ntimeout_ms = 99");
        assert_eq!(c.dns_timeout(), Duration::from_millis(99));
    }

    /// Keys where `""` meant none read as none, from older files as from new ones.
    #[test]
    fn empty_strings_of_older_files_read_as_none() {
        let old = "[limits]\nshared_url = \"\"\n[watch]\nwebhook_url = \"\"\n";
        let c = Config::parse(old, Path::new("t.toml")).unwrap();
        assert_eq!((c.limits.shared_url, c.watch.webhook_url), (None, None));
        let set = "[limits]\nshared_url = \"redis://r:6379\"\n\
                   [watch]\nwebhook_url = \"http://h.example/e\"\n";
        let c = Config::parse(set, Path::new("t.toml")).unwrap();
        assert_eq!(c.limits.shared_url.as_deref(), Some("redis://r:6379"));
        assert_eq!(c.watch.webhook_url.unwrap().host_str(), Some("h.example"));
    }
}
