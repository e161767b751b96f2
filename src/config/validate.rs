//! Each section of the config judges its own keys: a fixed check per key, the first bad one
//! named in full.

use super::*;

/// A bad key: its full name and what is wrong.
pub(super) struct Invalid {
    pub(super) key: &'static str,
    pub(super) message: String,
}

/// `Ok` when `ok`, else the key and the message.
fn check(ok: bool, key: &'static str, message: &str) -> Result<(), Invalid> {
    if ok {
        Ok(())
    } else {
        Err(Invalid {
            key,
            message: message.to_string(),
        })
    }
}

fn header_value(value: &str) -> bool {
    http::HeaderValue::from_str(value).is_ok()
}

impl Limits {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        check(
            self.shared_url.is_empty() || self.shared_url.starts_with("redis://"),
            "limits.shared_url",
            "must be empty or a redis:// URL",
        )?;
        check(
            (1..=1000).contains(&self.max_hops),
            "limits.max_hops",
            "must be between 1 and 1000",
        )?;
        check(
            self.hop_timeout_ms > 0,
            "limits.hop_timeout_ms",
            "must be greater than 0",
        )?;
        check(
            self.total_timeout_ms > 0,
            "limits.total_timeout_ms",
            "must be greater than 0",
        )?;
        check(
            (1..=1 << 30).contains(&self.max_body_bytes),
            "limits.max_body_bytes",
            "must be between 1 and 1073741824",
        )?;
        check(
            self.per_host_per_second.is_finite() && self.per_host_per_second > 0.0,
            "limits.per_host_per_second",
            "must be a number greater than 0",
        )?;
        check(
            (1..=100_000).contains(&self.concurrency),
            "limits.concurrency",
            "must be between 1 and 100000",
        )?;
        check(
            (1..=10_000_000).contains(&self.max_export_chains),
            "limits.max_export_chains",
            "must be between 1 and 10000000",
        )
    }
}

impl Http {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        check(
            !self.user_agent.trim().is_empty(),
            "http.user_agent",
            "must not be empty",
        )?;
        check(
            header_value(&self.user_agent),
            "http.user_agent",
            "is not a valid header value",
        )?;
        check(
            header_value(&self.accept_language),
            "http.accept_language",
            "is not a valid header value",
        )
    }
}

impl Profile {
    /// Every `[profiles.NAME]`: a name of lowercase letters, digits and dashes, header values
    /// that are valid headers, a sane window.
    pub(super) fn validate_all(
        profiles: &std::collections::BTreeMap<String, Profile>,
    ) -> Result<(), Invalid> {
        for (name, p) in profiles {
            let bad = |what: &str| Invalid {
                key: "profiles",
                message: format!("profile `{name}`: {what}"),
            };
            let name_ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !name_ok {
                return Err(bad("the name must be lowercase letters, digits and dashes"));
            }
            if p.user_agent.trim().is_empty() || !header_value(&p.user_agent) {
                return Err(bad("user_agent must be a non-empty header value"));
            }
            if !header_value(&p.accept_language) || !header_value(&p.referer) {
                return Err(bad("accept_language and referer must be header values"));
            }
            if !p.viewport.iter().all(|d| (100..=10_000).contains(d)) {
                return Err(bad("viewport must be [width, height], each 100 to 10000"));
            }
        }
        Ok(())
    }
}

impl EgressPoints {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        for (name, point) in &self.points {
            let bad = |what: &str| Invalid {
                key: "egress.points",
                message: format!("point `{name}`: {what}"),
            };
            if name == "direct"
                || name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(bad(
                    "the name must be lowercase letters, digits and dashes (and not `direct`)",
                ));
            }
            let addr = point
                .proxy
                .strip_prefix("socks5://")
                .or_else(|| point.proxy.strip_prefix("http://"))
                .map(|a| a.trim_end_matches('/'));
            if addr.is_none_or(|a| a.parse::<std::net::SocketAddr>().is_err()) {
                return Err(bad("proxy must be socks5://ip:port or http://ip:port"));
            }
        }
        Ok(())
    }
}

impl Browser {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        check(
            (1..=600_000).contains(&self.settle_ms),
            "browser.settle_ms",
            "must be between 1 and 600000",
        )?;
        check(
            (1..=64).contains(&self.max_tabs),
            "browser.max_tabs",
            "must be between 1 and 64",
        )?;
        check(
            (100..=600_000).contains(&self.launch_timeout_ms),
            "browser.launch_timeout_ms",
            "must be between 100 and 600000",
        )?;
        check(
            (65_536..=1 << 30).contains(&self.max_page_bytes),
            "browser.max_page_bytes",
            "must be between 65536 and 1073741824",
        )
    }
}

impl Server {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        check(
            (1..=100_000).contains(&self.max_batch),
            "server.max_batch",
            "must be between 1 and 100000",
        )?;
        for (key, ms) in [
            ("server.header_timeout_ms", self.header_timeout_ms),
            ("server.body_timeout_ms", self.body_timeout_ms),
            ("server.idle_timeout_ms", self.idle_timeout_ms),
        ] {
            check(
                (1..=3_600_000).contains(&ms),
                key,
                "must be between 1 and 3600000",
            )?;
        }
        check(
            (1..=1_000_000).contains(&self.max_connections),
            "server.max_connections",
            "must be between 1 and 1000000",
        )?;
        check(
            (1..=10_000).contains(&self.http2_max_streams),
            "server.http2_max_streams",
            "must be between 1 and 10000",
        )?;
        check(
            (1..=64).contains(&self.max_exports),
            "server.max_exports",
            "must be between 1 and 64",
        )?;
        check(
            self.request_timeout_ms > 0,
            "server.request_timeout_ms",
            "must be at least 1",
        )?;
        check(
            self.max_request_bytes > 0,
            "server.max_request_bytes",
            "must be greater than 0",
        )?;
        check(
            self.api_tokens.iter().all(|t| !t.trim().is_empty()),
            "server.api_tokens",
            "tokens must not be empty",
        )?;
        check(
            self.auth_failures_burst > 0,
            "server.auth_failures_burst",
            "must be greater than 0",
        )?;
        check(
            self.auth_failures_per_minute > 0,
            "server.auth_failures_per_minute",
            "must be greater than 0",
        )?;
        // Without tokens anyone who reaches the server may use it: only this machine may.
        check(
            self.listen.ip().is_loopback() || !self.api_tokens.is_empty(),
            "server.listen",
            "is not a loopback address while server.api_tokens is empty: without tokens \
             the server listens on loopback only (set server.api_tokens, or listen on 127.0.0.1)",
        )?;
        for name in &self.allowed_hosts {
            check(
                host_name(name),
                "server.allowed_hosts",
                &format!("`{name}` is not a host name (no scheme, port or path; [::1] for IPv6)"),
            )?;
        }
        // Any Host lets a rebound DNS name reach the API: only tokens stop a page then.
        check(
            !self.allowed_hosts.iter().any(|h| h == "*") || !self.api_tokens.is_empty(),
            "server.allowed_hosts",
            "\"*\" (any host name) needs server.api_tokens",
        )
    }
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

impl Storage {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        match self.backend {
            StorageBackend::Sled => check(
                !self.path.as_os_str().is_empty(),
                "storage.path",
                "must not be empty",
            ),
            StorageBackend::Postgres => {
                check(
                    self.url.starts_with("postgres://") || self.url.starts_with("postgresql://"),
                    "storage.url",
                    "must be a postgres:// URL when storage.backend = \"postgres\"",
                )?;
                check(
                    self.pool_size > 0,
                    "storage.pool_size",
                    "must be greater than 0",
                )?;
                check(
                    self.connect_timeout_ms > 0,
                    "storage.connect_timeout_ms",
                    "must be greater than 0",
                )
            }
        }
    }
}

impl Watch {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        check(
            self.min_every_seconds > 0,
            "watch.min_every_seconds",
            "must be greater than 0",
        )?;
        check(
            self.lease_seconds > 0,
            "watch.lease_seconds",
            "must be greater than 0",
        )?;
        check(
            self.default_every_seconds <= MAX_WATCH_EVERY_SECONDS,
            "watch.default_every_seconds",
            &format!("must be at most {MAX_WATCH_EVERY_SECONDS} (ten years)"),
        )?;
        check(
            self.default_every_seconds >= self.min_every_seconds,
            "watch.default_every_seconds",
            "must not be below watch.min_every_seconds",
        )?;
        check(
            self.max_observations > 0,
            "watch.max_observations",
            "must be greater than 0",
        )?;
        let web = self.webhook_url.is_empty()
            || url::Url::parse(&self.webhook_url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        check(web, "watch.webhook_url", "must be an http or https URL")
    }
}

impl Hub {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        let base = url::Url::parse(&self.api_url).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some() && u.query().is_none()
        });
        check(
            base,
            "hub.api_url",
            "must be an http or https URL without a query",
        )?;
        check(
            self.requests_per_second.is_finite() && self.requests_per_second > 0.0,
            "hub.requests_per_second",
            "must be greater than 0",
        )?;
        let s = &self.schedule;
        check(
            s.namespaces.iter().all(|n| hub_name(n)),
            "hub.schedule.namespaces",
            "must be Docker Hub names ([a-z0-9][a-z0-9._-]*)",
        )?;
        check(
            s.search
                .iter()
                .all(|q| !q.trim().is_empty() && q.len() <= MAX_HUB_SEARCH),
            "hub.schedule.search",
            "each query must be 1 to 256 bytes",
        )?;
        check(
            s.repositories.iter().all(|r| {
                r.split_once('/')
                    .is_some_and(|(ns, name)| hub_name(ns) && hub_name(name))
            }),
            "hub.schedule.repositories",
            "must be `namespace/name` Docker Hub names",
        )?;
        check(
            (1..=MAX_WATCH_EVERY_SECONDS).contains(&s.every_seconds),
            "hub.schedule.every_seconds",
            "must be from 1 to 315360000 (ten years)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ("[storage]\nbackend = \"postgres\"", "storage.url"),
            (
                "[storage]\nbackend = \"postgres\"\nurl = \"postgres://h/d\"\npool_size = 0",
                "storage.pool_size",
            ),
            ("[limits]\nshared_url = \"http://x\"", "limits.shared_url"),
            ("[watch]\nlease_seconds = 0", "watch.lease_seconds"),
            ("[profiles.Bad]\nuser_agent = \"x\"", "profiles"),
            (
                "[egress.points.nl]\nproxy = \"socks5://nl.example:1080\"",
                "egress.points",
            ),
            (
                "[egress.points.direct]\nproxy = \"socks5://127.0.0.1:1080\"",
                "egress.points",
            ),
            ("[profiles.p]\nuser_agent = \"\"", "profiles"),
            (
                "[profiles.p]\nuser_agent = \"x\"\nviewport = [1, 1]",
                "profiles",
            ),
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
        c.browser.launch_timeout_ms = 1234;
        let text = toml::to_string(&c).unwrap();
        let back = Config::parse(&text, Path::new("t.toml")).unwrap();
        assert_eq!(toml::to_string(&back).unwrap(), text);
        assert_eq!(back.limits.concurrency, 7);
        assert_eq!(back.dns.nameservers, c.dns.nameservers);
    }

    #[test]
    fn an_unset_dns_timeout_is_the_hop_budget() {
        let c = Config::parse("[limits]\nhop_timeout_ms = 1234", Path::new("t.toml")).unwrap();
        assert_eq!(c.dns_timeout_ms(), 1234);
        let c = Config::parse("[dns]\ntimeout_ms = 99", Path::new("t.toml")).unwrap();
        assert_eq!(c.dns_timeout_ms(), 99);
    }
}
