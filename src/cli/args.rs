//! Every argument, defined once; `--config` is one flattened [`ConfigArg`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

use super::{usage, Failure};

#[derive(Parser, Debug)]
#[command(
    name = "hoptrace",
    version,
    about = "Follows suspicious links to where they really go, safely."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Resolve URLs and print every hop of each chain.
    #[command(after_long_help = examples::RESOLVE)]
    Resolve(ResolveArgs),
    /// Find the links in Docker Hub repository descriptions (JSONL) or plain text, resolve
    /// them and judge each repository.
    #[command(after_long_help = examples::SCAN)]
    Scan(ScanArgs),
    /// List Docker Hub repositories (of namespaces, a search, or a list of names) with
    /// their descriptions and whether they have any image; print them as `scan` reads them,
    /// or scan them directly. Resumes an interrupted crawl (docs/hub.md).
    #[command(after_long_help = examples::HUB)]
    Hub(HubArgs),
    /// Print the campaigns in the store: repositories grouped by shared infrastructure.
    #[command(after_long_help = examples::CAMPAIGNS)]
    Campaigns(CampaignsArgs),
    /// Resolve one link as several visitors (client profiles) at once and say whether it is
    /// cloaked: where the chains part, and whether they end in different places.
    #[command(after_long_help = examples::COMPARE)]
    Compare(CompareArgs),
    /// Write what the store holds as indicators for other platforms: a MISP event, a STIX
    /// 2.1 bundle, CSV or text (one indicator a line).
    #[command(after_long_help = examples::EXPORT)]
    Export(ExportArgs),
    /// Serve the HTTP API and the web view (docs/api.md; GET /openapi.json).
    #[command(after_long_help = examples::SERVE)]
    Serve(ServeArgs),
    /// Manage the watchlist of a running server: links re-resolved on a schedule, with their
    /// history.
    #[command(after_long_help = examples::WATCH)]
    Watch(WatchArgs),
    /// Ask a running server whether it is healthy (exit 0 when GET /healthz answers 200);
    /// the Docker image's HEALTHCHECK.
    #[command(after_long_help = examples::HEALTH)]
    Health(HealthArgs),
    /// Print a shell completion script for hoptrace.
    #[command(after_long_help = examples::COMPLETIONS)]
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write a page per command to a folder.
    #[command(after_long_help = examples::MAN)]
    Man(ManArgs),
}

/// An example or two per command, shown by `--help` and in the manual pages.
mod examples {
    pub const RESOLVE: &str = "Examples:
  hoptrace resolve 'hxxp://blltly[.]com/1w1w1'          # defanged input is fine
  hoptrace resolve --json - < urls.txt > traces.jsonl   # one Trace per line, input order
  hoptrace resolve --no-store --profile iphone-safari 'bit.ly/x'";
    pub const SCAN: &str = "Examples:
  hoptrace scan repositories.jsonl            # Docker Hub API objects, one a line
  hoptrace scan --json notes.txt > verdicts.jsonl";
    pub const HUB: &str = "Examples:
  hoptrace hub --json --namespace dlwave000 --namespace dlwave001 > repositories.jsonl
  hoptrace hub --scan --search 'crack keygen' --since 2024-01-01T00:00:00Z
  HOPTRACE_HUB_TOKEN=... hoptrace hub --json --repositories names.txt";
    pub const CAMPAIGNS: &str = "Examples:
  hoptrace campaigns
  hoptrace campaigns --json --min-repositories 5
  hoptrace campaigns --timeline --json          # one campaign's days a line
  hoptrace campaigns --members c-56d53773cbf5   # one repository a line (JSON)";
    pub const COMPARE: &str = "Examples:
  hoptrace compare 'http://cloak.example/go'                 # every built-in profile
  hoptrace compare --profiles windows-chrome,crawler --via nl 'http://cloak.example/go'";
    pub const EXPORT: &str = "Examples:
  hoptrace export --format stix > hoptrace.stix.json
  hoptrace export --format csv --label payload-host --since 7d
  hoptrace export --format txt --defang --campaign c-56d53773cbf5";
    pub const SERVE: &str = "Examples:
  hoptrace serve                         # server.listen, 127.0.0.1:8080 by default
  hoptrace serve --listen 127.0.0.1:0 --log-json";
    pub const WATCH: &str = "Examples:
  hoptrace watch add 'hxxp://tinurll[.]com/file-7' --every 600
  hoptrace watch history http://tinurll.com/file-7
  hoptrace watch list --server http://10.0.0.2:8080 --token T";
    pub const HEALTH: &str = "Examples:
  hoptrace health --server 127.0.0.1:8080 && echo up";
    pub const COMPLETIONS: &str = "Examples:
  hoptrace completions bash > ~/.local/share/bash-completion/completions/hoptrace
  hoptrace completions zsh > ~/.zfunc/_hoptrace
  hoptrace completions fish > ~/.config/fish/completions/hoptrace.fish";
    pub const MAN: &str = "Examples:
  hoptrace man | man -l -
  hoptrace man --dir /usr/local/share/man/man1      # hoptrace.1, hoptrace-resolve.1, ...";
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell the script is for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write hoptrace.1 and a page per command (hoptrace-resolve.1, ...) to DIR instead of
    /// printing hoptrace.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `--config`, declared once and flattened into every command that reads the config.
#[derive(Args, Debug, Clone, Default)]
pub struct ConfigArg {
    /// Config file (default: resolver-config/hoptrace.toml when it exists).
    #[arg(long = "config", value_name = "FILE")]
    pub path: Option<PathBuf>,
}

impl ConfigArg {
    /// Loads it (a bad config is a usage error: exit 2).
    pub fn load(&self) -> Result<Config, Failure> {
        Config::load(self.path.as_deref()).map_err(|e| usage(e.into()))
    }
}

/// `--server` and its token, for commands that can work through a running `hoptrace serve`
/// (needed while it holds a sled store: one process at a time).
#[derive(Args, Debug, Clone, Default)]
pub struct ServerArg {
    /// Work through the running server at ADDR (`host:port` or `http://host:port`) instead of
    /// opening the store.
    #[arg(long = "server", env = "HOPTRACE_SERVER", value_name = "ADDR")]
    pub addr: Option<String>,
    /// The server's API token (`server.api_tokens`); read from the environment only, so it
    /// is never on a command line.
    #[arg(skip = std::env::var("HOPTRACE_TOKEN").ok().filter(|t| !t.is_empty()))]
    pub token: Option<String>,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// One JSON object per repository (its verdict, reasons and link Traces) instead of a
    /// readable report.
    #[arg(long)]
    pub json: bool,
    /// Resolve links afresh even when a recent Trace is cached.
    #[arg(long)]
    pub no_cache: bool,
    /// Scan repositories again even when the store holds a scan of the same text (by
    /// default a re-run skips them, so an interrupted scan resumes).
    #[arg(long)]
    pub rescan: bool,
    /// Print links defanged (`hxxp://evil[.]example/…`), URLs nested in them too (default:
    /// `output.defang`).
    #[arg(long)]
    pub defang: bool,
    #[command(flatten)]
    pub server: ServerArg,
    /// Docker Hub repository JSONL, or plain text; `-` reads stdin.
    #[arg(value_name = "FILE")]
    pub input: String,
}

#[derive(Args, Debug)]
pub struct HubArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// A namespace (user or organisation) whose repositories to list; repeatable.
    #[arg(long, value_name = "NS")]
    pub namespace: Vec<String>,
    /// A file of namespaces, one a line.
    #[arg(long, value_name = "FILE")]
    pub namespaces: Option<PathBuf>,
    /// The repositories Docker Hub's search finds for QUERY.
    #[arg(long, value_name = "QUERY")]
    pub search: Option<String>,
    /// A file of `namespace/name`, one a line.
    #[arg(long, value_name = "FILE")]
    pub repositories: Option<PathBuf>,
    /// Only repositories updated after this moment (RFC 3339, e.g. 2024-01-01T00:00:00Z).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// One JSON object per repository, in the JSONL `hoptrace scan` reads.
    #[arg(long)]
    pub json: bool,
    /// Scan the repositories as they are listed (as `hoptrace scan` would; `--json` then
    /// prints verdicts).
    #[arg(long)]
    pub scan: bool,
}

#[derive(Args, Debug)]
pub struct CampaignsArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// `{"campaigns": [...]}` as GET /v1/campaigns answers (written one campaign at a time),
    /// instead of a table; with --timeline or --members, one JSON object a line.
    #[arg(long)]
    pub json: bool,
    /// Leave out campaigns with fewer repositories (counting those their own links group).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub min_repositories: usize,
    /// Print links defanged (`hxxp://evil[.]example/…`), URLs nested in them too (default:
    /// `output.defang`).
    #[arg(long)]
    pub defang: bool,
    #[command(flatten)]
    pub server: ServerArg,
    /// Repositories per day per campaign (Docker Hub `date_registered`, else `last_updated`),
    /// days at 10x the median of the 28 days before or more flagged as anomalies.
    #[arg(long, conflicts_with = "members")]
    pub timeline: bool,
    /// Every repository of this campaign (its id; `all` for every campaign's), with how it
    /// joined (`links` or `publisher`), its verdict and reasons.
    #[arg(long, value_name = "ID")]
    pub members: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// misp, stix, csv or txt. misp: MISP events as JSON lines, one event per campaign and,
    /// for chains of no campaign, one per landing domain; a group of more than 1,000 chains
    /// is split into numbered parts (`part 2 of 3` in the event's info).
    #[arg(long, value_name = "FORMAT")]
    pub format: String,
    /// Only chains stored since then: an RFC 3339 time, or a duration back from now (7d).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only chains with a hop carrying this label (in csv and txt: only indicators carrying
    /// it).
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Only chains that passed this campaign's infrastructure (its id, as `hoptrace
    /// campaigns` shows).
    #[arg(long, value_name = "ID")]
    pub campaign: Option<String>,
    /// Defang URLs and names, nested URLs too (csv and txt; default: `output.defang`).
    #[arg(long)]
    pub defang: bool,
    #[command(flatten)]
    pub server: ServerArg,
    /// Write to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(subcommand)]
    pub action: WatchAction,
    /// The server: `host:port` or `http://host:port`.
    #[arg(
        long,
        global = true,
        env = "HOPTRACE_SERVER",
        default_value = "127.0.0.1:8080",
        value_name = "URL"
    )]
    pub server: String,
    /// Bearer token, when the server has `server.api_tokens` (better: `HOPTRACE_TOKEN`, kept
    /// off the command line).
    #[arg(
        long,
        global = true,
        env = "HOPTRACE_TOKEN",
        hide_env_values = true,
        value_name = "T"
    )]
    pub token: Option<String>,
    /// Print the server's JSON answer instead of a readable one.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum WatchAction {
    /// Watch a link (or change how often it is re-resolved).
    Add {
        url: String,
        /// Seconds between re-resolutions (default: the server's
        /// `watch.default_every_seconds`).
        #[arg(long, value_name = "SECONDS")]
        every: Option<u64>,
        /// Client profiles each run resolves as, comma-separated (default: the default
        /// profile).
        #[arg(long, value_delimiter = ',', value_name = "A,B,...")]
        profiles: Vec<String>,
        /// Egress points each run goes out through, comma-separated (default: `direct`);
        /// every profile goes through every point.
        #[arg(long, value_delimiter = ',', value_name = "X,Y,...")]
        via: Vec<String>,
    },
    /// List the watched links.
    List,
    /// Stop watching a link (its history stays).
    Remove { url: String },
    /// A link's observations and what they add up to.
    History { url: String },
}

#[derive(Args, Debug)]
pub struct HealthArgs {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub server: std::net::SocketAddr,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Listen here instead of `server.listen` (port 0 picks a free port; the address is
    /// logged and printed on stdout).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Logs as JSON lines (one object per event) instead of text.
    #[arg(long)]
    pub log_json: bool,
}

#[derive(Args, Debug)]
pub struct ResolveArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Resolve afresh even when a recent Trace is cached (the result is still stored).
    #[arg(long)]
    pub no_cache: bool,
    /// Print one Trace per line (JSONL), in input order.
    #[arg(long)]
    pub json: bool,
    /// Print links defanged (`hxxp://evil[.]example/…`), URLs nested in them too: the input,
    /// every hop's URL and host, where it ended. Safe to paste into a report or a chat
    /// (default: `output.defang`).
    #[arg(long)]
    pub defang: bool,
    #[command(flatten)]
    pub server: ServerArg,
    /// Use no store at all: nothing is read from the cache or written (implies --no-cache;
    /// the database is not opened, so it may be in use by a running `hoptrace serve`).
    #[arg(long)]
    pub no_store: bool,
    /// Resolve as this client profile (built in: windows-chrome, macos-safari, iphone-safari,
    /// android-chrome, crawler, bare; or a `[profiles.NAME]`). Another than the default is a
    /// visit of its own: not served from the cache, not stored.
    #[arg(long, value_name = "NAME", default_value = crate::profile::DEFAULT)]
    pub profile: String,
    /// Go out through this egress point (`[egress.points.NAME]`) instead of directly; like
    /// another profile, not cached or stored.
    #[arg(long, value_name = "POINT", default_value = crate::chain::DIRECT)]
    pub via: String,
    /// Take a screenshot of each landing page (as `browser.screenshots = true`) and write
    /// it to DIR as `<final host>-<sha256 prefix>.png`.
    #[arg(long, value_name = "DIR")]
    pub screenshot: Option<std::path::PathBuf>,
    /// Write the HTTP records of every chain to FILE as HAR 1.2 (a page per link).
    #[arg(long, value_name = "FILE")]
    pub har: Option<std::path::PathBuf>,
    /// URLs to resolve (defanged forms accepted); `-` reads one URL a line from stdin.
    #[arg(required = true, value_name = "URL")]
    pub urls: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Profiles to compare, comma-separated (default: every built-in one, and the default
    /// profile through every egress point).
    #[arg(long, value_delimiter = ',', value_name = "A,B,...")]
    pub profiles: Vec<String>,
    /// Ways out to compare, comma-separated (`direct` and `[egress.points]` names).
    #[arg(long, value_delimiter = ',', value_name = "X,Y,...")]
    pub via: Vec<String>,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print links defanged (`hxxp://evil[.]example/…`), URLs nested in them too (default:
    /// `output.defang`).
    #[arg(long)]
    pub defang: bool,
    #[command(flatten)]
    pub server: ServerArg,
    /// The link (defanged forms accepted).
    #[arg(value_name = "URL")]
    pub url: String,
}
