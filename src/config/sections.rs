//! The tables of the config file, one struct per table (`[limits]`, `[browser]`, ...), each
//! with its keys' defaults and their own checks; `[storage]` is in [`super::storage`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::duration;
use super::validate::{self, ANY};

/// `[egress]`: the ways out besides hoptrace's own address.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct EgressPoints {
    /// `[egress.points.NAME]`.
    #[serde(deserialize_with = "validate::named")]
    pub points: std::collections::BTreeMap<String, Point>,
}

/// An egress point: an upstream proxy that hoptrace asks for vetted IP literals only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// `socks5://ip:port` or `http://ip:port` (HTTP CONNECT). The proxy's own address is the
    /// operator's choice: naming it allows it.
    #[serde(deserialize_with = "validate::proxy")]
    pub proxy: String,
    /// Where the point comes out (ISO 3166 code), for people.
    #[serde(default)]
    pub country: String,
    /// Nameservers names are resolved with for this point (`ip:port`); empty: `[dns]`'s.
    #[serde(default)]
    pub nameservers: Vec<SocketAddr>,
}

/// A client profile: what one kind of visitor sends and shows, for the HTTP client and the
/// browser alike (`[profiles.NAME]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The User-Agent header and `navigator.userAgent`.
    #[serde(deserialize_with = "validate::user_agent")]
    pub user_agent: String,
    /// None (or empty): no Accept-Language header at all (what a bare script sends).
    #[serde(
        default,
        deserialize_with = "validate::optional_header",
        skip_serializing_if = "Option::is_none"
    )]
    pub accept_language: Option<String>,
    /// `navigator.platform`; none (or empty): derived from the User-Agent.
    #[serde(
        default,
        deserialize_with = "validate::optional_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub platform: Option<String>,
    /// The browser window's inner size, `[width, height]`.
    #[serde(default = "desktop_viewport", deserialize_with = "validate::viewport")]
    pub viewport: [u32; 2],
    /// A phone or tablet: mobile layout and client hints, touch events.
    #[serde(default)]
    pub mobile: bool,
    /// The browser's time zone (IANA name, `Europe/Berlin`); none (or empty): the machine's.
    #[serde(
        default,
        deserialize_with = "validate::optional_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub timezone: Option<String>,
    /// A Referer for the first request; none (or empty): no Referer.
    #[serde(
        default,
        deserialize_with = "validate::optional_header",
        skip_serializing_if = "Option::is_none"
    )]
    pub referer: Option<String>,
}

fn desktop_viewport() -> [u32; 2] {
    [1366, 657]
}

/// `[dns]`: the nameservers hoptrace asks itself (the system resolver and the browser are
/// never asked about a link).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Dns {
    /// `ip:port` of nameservers; empty means the system's resolv.conf.
    pub nameservers: Vec<SocketAddr>,
    /// Time for one lookup, all attempts together; unset (or 0): `limits.hop_timeout_ms`.
    #[serde(
        rename = "timeout_ms",
        deserialize_with = "duration::millis_or_none",
        serialize_with = "duration::some_text",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(test, schemars(with = "Option<duration::Text>"))]
    pub timeout: Option<Duration>,
}

/// `[policy]`: which addresses may be connected to besides the public internet.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Exceptions to the built-in deny list: CIDR blocks hoptrace may connect to after all
    /// (`["10.1.2.0/24"]`), for a lab or an internal site on purpose.
    #[cfg_attr(test, schemars(with = "Vec<String>"))]
    pub allow_cidrs: Vec<IpNet>,
}

/// The longest watch interval (ten years): beyond it the scheduler's clock arithmetic would
/// overflow. Here, so that config needs nothing from the modules it configures.
pub const MAX_WATCH_EVERY_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// `[limits]`: what one hop and one resolution may cost, and how hard a host is visited.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Hops one chain may take; the next one ends it as `too-many-hops`.
    #[serde(deserialize_with = "validate::within::<_, _, 1, 1000>")]
    pub max_hops: u32,
    /// One hop: DNS, connect, TLS, headers and body together.
    #[serde(
        rename = "hop_timeout_ms",
        deserialize_with = "duration::millis::<_, 1, ANY>",
        serialize_with = "duration::text"
    )]
    #[cfg_attr(test, schemars(with = "duration::Text"))]
    pub hop_timeout: Duration,
    /// One whole resolution's network time (waiting for per-host politeness is not counted).
    #[serde(
        rename = "total_timeout_ms",
        deserialize_with = "duration::millis::<_, 1, ANY>",
        serialize_with = "duration::text"
    )]
    #[cfg_attr(test, schemars(with = "duration::Text"))]
    pub total_timeout: Duration,
    /// Bytes read of any response at most (and decompressed at most); only text-like types
    /// are read at all.
    #[serde(deserialize_with = "validate::within::<_, _, 1, 1_073_741_824>")]
    pub max_body_bytes: u64,
    /// Requests a second to one target host, shared by all the work of the process (of every
    /// process with `shared_url`).
    #[serde(deserialize_with = "validate::rate")]
    pub per_host_per_second: f64,
    /// Resolutions in flight at once; also the idle keep-alive connections kept per host.
    #[serde(deserialize_with = "validate::within::<_, _, 1, 100_000>")]
    pub concurrency: u32,
    /// No longer read: every export streams in bounded memory, whatever the store holds.
    /// Still accepted (and checked) so that configs which set it keep loading.
    #[serde(deserialize_with = "validate::within::<_, _, 1, 10_000_000>")]
    pub max_export_chains: u32,
    /// `redis://host:port`: the per-host and per-client limits (and who resolves which link)
    /// shared by every process naming the same Redis; unset (or `""`): each process alone.
    #[serde(
        deserialize_with = "validate::redis_url",
        skip_serializing_if = "Option::is_none"
    )]
    pub shared_url: Option<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_hops: 20,
            hop_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(30),
            max_body_bytes: 1_048_576,
            per_host_per_second: 5.0,
            concurrency: 64,
            max_export_chains: 10_000,
            shared_url: None,
        }
    }
}

/// `[http]`: how requests present themselves. These servers cloak for bots, so the default looks like
/// a desktop browser.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// The User-Agent of the default profile, for the HTTP client and the browser alike.
    #[serde(deserialize_with = "validate::user_agent")]
    pub user_agent: String,
    /// The Accept-Language of the default profile (and the browser's `navigator.languages`).
    #[serde(deserialize_with = "validate::header")]
    pub accept_language: String,
    /// Fetch the icon of each landing page (its `<link rel="icon">`, else `/favicon.ico` of
    /// its origin) and keep its hashes as evidence (`favicon_sha256`, and Shodan's
    /// `favicon_mmh3`). Off by default: it is one more request the user did not ask for, to
    /// the host the link landed on (or wherever the page's icon points), made as the visit's
    /// profile through the same gate as every hop; only an image of at most 100 KiB is read.
    pub favicon: bool,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36".into(),
            accept_language: "en-US,en;q=0.9".into(),
            favicon: false,
        }
    }
}

/// `[browser]`: the browser stage, headless Chromium for pages whose next hop only script shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Browser {
    /// Use the browser stage; off (or no Chromium found): a page that needs it is noted on
    /// its hop and the chain ends there.
    pub enabled: bool,
    /// None (or empty): look for /usr/lib/chromium/chromium, then chromium/google-chrome on
    /// PATH.
    #[serde(
        deserialize_with = "validate::optional_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub chrome_path: Option<PathBuf>,
    /// Page time (virtual: timers fire without real waiting) a page gets after loading.
    #[serde(
        rename = "settle_ms",
        deserialize_with = "duration::millis::<_, 1, 600_000>",
        serialize_with = "duration::text"
    )]
    #[cfg_attr(test, schemars(with = "duration::Text"))]
    pub settle: Duration,
    /// Pages open at once in the shared browser.
    #[serde(deserialize_with = "validate::within::<_, _, 1, 64>")]
    pub max_tabs: u32,
    /// Which CDP crate drives Chromium (one is shipped).
    pub driver: DriverKind,
    /// Starting Chromium and preparing a page: their own limit, not charged to
    /// `limits.hop_timeout_ms` (a visit's clock starts when its page starts loading).
    #[serde(
        rename = "launch_timeout_ms",
        deserialize_with = "duration::millis::<_, 100, 600_000>",
        serialize_with = "duration::text"
    )]
    #[cfg_attr(test, schemars(with = "duration::Text"))]
    pub launch_timeout: Duration,
    /// Bytes one page visit may move through its proxy, over all its connections.
    #[serde(deserialize_with = "validate::within::<_, _, 65_536, 1_073_741_824>")]
    pub max_page_bytes: u64,
    /// Take a screenshot of each landing page (an HTML page the chain ends on), in the same
    /// sandboxed browser, proxy and identity: a browser visit per landed chain.
    pub screenshots: bool,
    /// A screenshot larger than this (PNG bytes) is not kept.
    pub max_screenshot_bytes: u64,
    /// Who runs a page's scripts: `auto` (the embedded engine decides what it can, Chromium
    /// the rest) or `chromium` (Chromium only).
    pub script_engine: ScriptEngineKind,
    /// The program that runs the embedded engine's worker processes; none (or empty):
    /// hoptrace itself.
    #[serde(
        deserialize_with = "validate::optional_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub script_worker: Option<PathBuf>,
}

/// `browser.script_engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ScriptEngineKind {
    #[default]
    Auto,
    Chromium,
}

/// The CDP crate that drives Chromium. chromiumoxide is the only one kept: headless_chrome
/// was slower per call and missed script hops chromiumoxide finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum DriverKind {
    #[default]
    Chromiumoxide,
}

impl Default for Browser {
    fn default() -> Self {
        Browser {
            enabled: true,
            chrome_path: None,
            settle: Duration::from_secs(3),
            max_tabs: 4,
            driver: DriverKind::Chromiumoxide,
            launch_timeout: Duration::from_secs(10),
            max_page_bytes: 8 << 20,
            screenshots: false,
            max_screenshot_bytes: 2 << 20,
            script_engine: ScriptEngineKind::Auto,
            script_worker: None,
        }
    }
}

/// `[server]`: `hoptrace serve`, the HTTP API and the web view.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// The address `hoptrace serve` listens on (`--listen` overrides it).
    pub listen: SocketAddr,
    /// Non-empty: every `/v1` call needs `Authorization: Bearer <token>`, and the web view a
    /// login; empty: no token is asked for.
    #[serde(deserialize_with = "validate::tokens")]
    pub api_tokens: Vec<String>,
    /// A larger request body is refused with 413.
    #[serde(deserialize_with = "validate::within::<_, _, 1, ANY>")]
    pub max_request_bytes: u64,
    /// Requests per second each client (token, else address) may make to /v1; 0 = no limit.
    pub rate_per_second: u32,
    /// Requests a client may make at once before the rate applies (0 = rate_per_second).
    pub rate_burst: u32,
    /// Resolutions that may wait for a resolver slot; beyond that, 503.
    pub max_queue: u32,
    /// URLs in one batch (and links resolved from one scan).
    #[serde(deserialize_with = "validate::within::<_, _, 1, 100_000>")]
    pub max_batch: u32,
    /// Time limit of one API request; beyond that, 504.
    #[serde(
        rename = "request_timeout_ms",
        deserialize_with = "duration::millis::<_, 1, ANY>",
        serialize_with = "duration::text"
    )]
    #[cfg_attr(test, schemars(with = "duration::Text"))]
    pub request_timeout: Duration,
    /// A request head must arrive within this (else the connection closes).
    #[serde(
        rename = "header_timeout_ms",
        deserialize_with = "duration::millis::<_, 1, 3_600_000>",
        serialize_with = "duration::text"
    )]
    #[cfg_attr(test, schemars(with = "duration::Text"))]
    pub header_timeout: Duration,
    /// A request body must arrive within this (else 408).
    #[serde(
        rename = "body_timeout_ms",
        deserialize_with = "duration::millis::<_, 1, 3_600_000>",
        serialize_with = "duration::text"
    )]
    #[cfg_attr(test, schemars(with = "duration::Text"))]
    pub body_timeout: Duration,
    /// A connection with nothing in flight and no traffic for this long is closed.
    #[serde(
        rename = "idle_timeout_ms",
        deserialize_with = "duration::millis::<_, 1, 3_600_000>",
        serialize_with = "duration::text"
    )]
    #[cfg_attr(test, schemars(with = "duration::Text"))]
    pub idle_timeout: Duration,
    /// Connections open at once; past it the one idle the longest makes room.
    #[serde(deserialize_with = "validate::within::<_, _, 1, 1_000_000>")]
    pub max_connections: u32,
    /// Streams at once on one HTTP/2 connection.
    #[serde(deserialize_with = "validate::within::<_, _, 1, 10_000>")]
    pub http2_max_streams: u32,
    /// Host names the server answers to besides the loopback names (`localhost`, `127.0.0.1`,
    /// `[::1]`) and the `listen` address; any port. `"*"`: any name (needs `api_tokens`).
    #[serde(deserialize_with = "validate::host_names")]
    pub allowed_hosts: Vec<String>,
    /// Wrong tokens (API or login form) one address may send before it is refused (429).
    #[serde(deserialize_with = "validate::within::<_, _, 1, ANY>")]
    pub auth_failures_burst: u32,
    /// How fast that allowance comes back, per minute.
    #[serde(deserialize_with = "validate::within::<_, _, 1, ANY>")]
    pub auth_failures_per_minute: u32,
    /// `/v1/export` calls running at once (each holds its document until sent); 429 beyond.
    #[serde(deserialize_with = "validate::within::<_, _, 1, 64>")]
    pub max_exports: u32,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_tokens: Vec::new(),
            max_request_bytes: 1_048_576,
            rate_per_second: 200,
            rate_burst: 400,
            max_queue: 10_000,
            max_batch: 1000,
            request_timeout: Duration::from_secs(300),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            http2_max_streams: 100,
            allowed_hosts: Vec::new(),
            auth_failures_burst: 10,
            auth_failures_per_minute: 6,
            max_exports: 1,
        }
    }
}

/// `[tls]`: certificates trusted when a hop is fetched over HTTPS.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM roots trusted beside the built-in web roots.
    pub extra_ca_files: Vec<PathBuf>,
}

/// `[labels]`: the indicator lists hosts are labelled with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Labels {
    /// More indicator lists (plain text or TOML); the shipped lists are built in.
    pub extra_files: Vec<PathBuf>,
}

/// `[watch]`: the watchlist `hoptrace serve` re-resolves on a schedule, and its events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Watch {
    /// Interval of a watch that names none (and of automatic watches).
    #[serde(
        rename = "default_every_seconds",
        deserialize_with = "duration::seconds::<_, 0, MAX_WATCH_EVERY_SECONDS>",
        serialize_with = "duration::text"
    )]
    #[cfg_attr(test, schemars(with = "duration::Text"))]
    pub default_every: Duration,
    /// The shortest interval a watch may ask for.
    #[serde(
        rename = "min_every_seconds",
        deserialize_with = "duration::seconds::<_, 1, ANY>",
        serialize_with = "duration::text"
    )]
    #[cfg_attr(test, schemars(with = "duration::Text"))]
    pub min_every: Duration,
    /// Whether links whose resolution passes through a fake or lookalike shortener may be
    /// watched automatically at all; which resolutions do it is `auto_from`.
    pub auto: bool,
    /// Which resolutions add those automatic watches: any of `resolve` (the CLI command),
    /// `scan` (`hoptrace scan` and `hub --scan`) and `api` (the server's calls and web view).
    /// Empty (the default): none; an ad-hoc run never leaves a watch behind unasked. Each
    /// watch added is announced where it is made (stderr, and `watch_added` in the Trace).
    pub auto_from: Vec<AutoSource>,
    /// Observations kept per watched link (the newest).
    #[serde(deserialize_with = "validate::within::<_, _, 1, ANY>")]
    pub max_observations: u64,
    /// Events (`new-landing-host`, `relabel`) are POSTed here as JSON, through the egress
    /// gate like any link; unset (or `""`): none.
    #[serde(
        deserialize_with = "validate::web_url",
        serialize_with = "validate::some_url",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(test, schemars(with = "Option<String>"))]
    pub webhook_url: Option<url::Url>,
    /// Wait before the first webhook retry; doubles per retry (up to 5 minutes).
    #[serde(
        rename = "webhook_backoff_ms",
        deserialize_with = "duration::millis::<_, 0, ANY>",
        serialize_with = "duration::text"
    )]
    #[cfg_attr(test, schemars(with = "duration::Text"))]
    pub webhook_backoff: Duration,
    /// With a shared store: how long a replica's claim on a due watch keeps the others off it.
    /// A replica that dies mid-run holds its watches this long; longer than a resolution
    /// (`limits.total_timeout_ms`), or a slow run is started twice.
    #[serde(
        rename = "lease_seconds",
        deserialize_with = "duration::seconds::<_, 1, ANY>",
        serialize_with = "duration::text"
    )]
    #[cfg_attr(test, schemars(with = "duration::Text"))]
    pub lease: Duration,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            default_every: Duration::from_secs(21600),
            min_every: Duration::from_secs(1),
            auto: true,
            auto_from: Vec::new(),
            max_observations: 1000,
            webhook_url: None,
            webhook_backoff: Duration::from_secs(1),
            lease: Duration::from_secs(120),
        }
    }
}

/// Where a resolution was asked for, as `watch.auto_from` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum AutoSource {
    /// `hoptrace resolve`.
    Resolve,
    /// `hoptrace scan` and `hoptrace hub --scan`.
    Scan,
    /// The server: its API calls and the web view.
    Api,
}

/// `[output]`: how the commands print what they found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Output {
    /// Print links defanged (`hxxp://evil[.]example/...`, nested URLs too) by default, as
    /// `--defang` does, in every command that prints links (`resolve`, `scan`, `compare`,
    /// `campaigns`, `export` csv and txt).
    pub defang: bool,
}

/// `[hub]`: Docker Hub as a source (`hoptrace hub`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Hub {
    /// Base URL of the Docker Hub API (a mirror or a stand-in may take its place); `next`
    /// links of its pages are followed only on this scheme, host and port.
    #[serde(deserialize_with = "validate::hub_api_url")]
    pub api_url: String,
    /// Requests per second to the Hub, on average; separate from the politeness per link
    /// target (`limits.per_host_per_second`).
    #[serde(deserialize_with = "validate::rate")]
    pub requests_per_second: f64,
    /// What `hoptrace serve` crawls by itself, periodically; nothing unless sources are named.
    pub schedule: HubSchedule,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            api_url: "https://hub.docker.com".into(),
            requests_per_second: 1.0,
            schedule: HubSchedule::default(),
        }
    }
}

/// `[hub.schedule]`: sources `hoptrace serve` crawls every `every_seconds`, incrementally
/// (each run reads only repositories updated since the last finished run began), scanning
/// what it reads into the store. Off while no source is named.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct HubSchedule {
    /// Namespaces (Docker Hub users or organisations) crawled.
    #[serde(deserialize_with = "validate::hub_names")]
    pub namespaces: Vec<String>,
    /// Repository searches crawled (one query each).
    #[serde(deserialize_with = "validate::hub_searches")]
    pub search: Vec<String>,
    /// Single repositories, `namespace/name`.
    #[serde(deserialize_with = "validate::hub_repositories")]
    pub repositories: Vec<String>,
    /// Time from the start of one run to the start of the next.
    #[serde(
        rename = "every_seconds",
        deserialize_with = "duration::seconds::<_, 1, MAX_WATCH_EVERY_SECONDS>",
        serialize_with = "duration::text"
    )]
    #[cfg_attr(test, schemars(with = "duration::Text"))]
    pub every: Duration,
}

impl Default for HubSchedule {
    fn default() -> Self {
        HubSchedule {
            namespaces: Vec::new(),
            search: Vec::new(),
            repositories: Vec::new(),
            every: Duration::from_secs(21600),
        }
    }
}

impl HubSchedule {
    /// Whether any source is named (the schedule runs only then).
    pub fn enabled(&self) -> bool {
        !(self.namespaces.is_empty() && self.search.is_empty() && self.repositories.is_empty())
    }
}

/// The longest Docker Hub search query hoptrace sends, in bytes.
pub const MAX_HUB_SEARCH: usize = 256;

/// A Docker Hub namespace or repository name: lower-case letters, digits, `.`, `_`, `-`, at
/// most 255, starting with a letter or digit.
pub fn hub_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}
