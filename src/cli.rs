//! The `hoptrace` command line. `anyhow` lives here and in `main`, at the binary's edge.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use futures_util::stream::{self, StreamExt};

use crate::chain::Resolver;
use crate::config::Config;
use crate::store::Store;
use crate::trace::{Outcome, Trace};

/// Exit status for usage and configuration errors (as clap uses for usage errors).
pub const EXIT_USAGE: i32 = 2;
/// Exit status when the work could not run (for example the database is locked).
pub const EXIT_FAILURE: i32 = 1;

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
    Resolve(ResolveArgs),
    /// Find the links in Docker Hub repository descriptions (JSONL) or plain text, resolve
    /// them and judge each repository.
    Scan(ScanArgs),
    /// Print the campaigns in the store: repositories grouped by shared infrastructure.
    Campaigns(CampaignsArgs),
    /// Serve the HTTP API (see the README and GET /openapi.json).
    Serve(ServeArgs),
    /// Manage the watchlist of a running server: links re-resolved on a schedule, with their
    /// history.
    Watch(WatchArgs),
    /// Ask a running server whether it is healthy (exit 0 when GET /healthz answers 200);
    /// the Docker image's HEALTHCHECK.
    Health(HealthArgs),
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
    /// Docker Hub repository JSONL, or plain text; `-` reads stdin.
    #[arg(value_name = "FILE")]
    pub input: String,
}

#[derive(Args, Debug)]
pub struct CampaignsArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// `{"campaigns": [...]}` as GET /v1/campaigns answers, instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Leave out campaigns with fewer repositories.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub min_repositories: usize,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(subcommand)]
    pub action: WatchAction,
    /// The server: `host:port` or `http://host:port`.
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:8080",
        value_name = "URL"
    )]
    pub server: String,
    /// Bearer token, when the server has `server.api_tokens`.
    #[arg(long, global = true, value_name = "T")]
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
    /// Use no store at all: nothing is read from the cache or written (implies --no-cache;
    /// the database is not opened, so it may be in use by a running `hoptrace serve`).
    #[arg(long)]
    pub no_store: bool,
    /// URLs to resolve (defanged forms accepted); `-` reads one URL a line from stdin.
    #[arg(required = true, value_name = "URL")]
    pub urls: Vec<String>,
}

/// A failure with the exit status it deserves.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: EXIT_FAILURE,
            error: e.into(),
        }
    }
}

fn usage(error: anyhow::Error) -> Failure {
    Failure {
        code: EXIT_USAGE,
        error,
    }
}

pub async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Resolve(args) => resolve(args).await,
        Command::Scan(args) => scan(args).await,
        Command::Campaigns(args) => campaigns(args),
        Command::Serve(args) => serve(args).await,
        Command::Watch(args) => watch(args).await,
        Command::Health(args) => health(args).await,
    }
}

async fn health(args: HealthArgs) -> Result<(), Failure> {
    let server = args.server.to_string();
    let ask = call_server(&server, None, http::Method::GET, "/healthz", None);
    match tokio::time::timeout(std::time::Duration::from_secs(5), ask).await {
        Ok(Ok((200, _))) => Ok(()),
        Ok(Ok((status, _))) => Err(anyhow::anyhow!("{server} answered {status}").into()),
        Ok(Err(e)) => Err(anyhow::anyhow!("{e:#}").into()),
        Err(_) => Err(anyhow::anyhow!("{server} did not answer within 5 s").into()),
    }
}

/// One call to a running server's API: status and JSON answer.
async fn call_server(
    server: &str,
    token: Option<&str>,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    use http_body_util::{BodyExt, Full};
    let authority = server
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    if authority.contains("://") || authority.contains('/') {
        anyhow::bail!("--server: `host:port` or `http://host:port`, not {server}");
    }
    let ask = async {
        let stream = tokio::net::TcpStream::connect(&authority).await?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &authority);
        if let Some(t) = token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let bytes = match body {
            Some(b) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                b.to_string().into_bytes()
            }
            None => Vec::new(),
        };
        let resp = send
            .send_request(req.body(Full::new(bytes::Bytes::from(bytes)))?)
            .await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        let value = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
            })
        };
        Ok::<_, anyhow::Error>((status, value))
    };
    match tokio::time::timeout(std::time::Duration::from_secs(30), ask).await {
        Ok(r) => r.with_context(|| format!("asking the server at {authority}")),
        Err(_) => anyhow::bail!("the server at {authority} did not answer within 30 s"),
    }
}

async fn watch(args: WatchArgs) -> Result<(), Failure> {
    let enc = |u: &str| {
        percent_encoding::utf8_percent_encode(u, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let (method, path, body) = match &args.action {
        WatchAction::Add { url, every } => (
            http::Method::POST,
            "/v1/watch".to_string(),
            Some(serde_json::json!({"url": url, "every_seconds": every})),
        ),
        WatchAction::List => (http::Method::GET, "/v1/watch".to_string(), None),
        WatchAction::Remove { url } => (
            http::Method::DELETE,
            format!("/v1/watch?url={}", enc(url)),
            None,
        ),
        WatchAction::History { url } => (
            http::Method::GET,
            format!("/v1/history?url={}", enc(url)),
            None,
        ),
    };
    let (status, answer) =
        call_server(&args.server, args.token.as_deref(), method, &path, body).await?;
    if !(200..300).contains(&status) {
        let message = answer["error"]["message"]
            .as_str()
            .map_or(answer.to_string(), str::to_string);
        return Err(anyhow::anyhow!("the server answered {status}: {message}").into());
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        if !answer.is_null() {
            serde_json::to_writer_pretty(&mut out, &answer)?;
            writeln!(out)?;
        }
        return Ok(());
    }
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    match &args.action {
        WatchAction::Add { .. } => writeln!(
            out,
            "{} {} every {} s; next run {}",
            if status == 201 {
                "watching"
            } else {
                "updated:"
            },
            text(&answer["url"]),
            answer["every_seconds"],
            text(&answer["next_due"]),
        )?,
        WatchAction::Remove { url } => writeln!(out, "no longer watching {url}")?,
        WatchAction::List => {
            let list = answer["watches"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                writeln!(out, "nothing is watched")?;
            }
            for w in list {
                writeln!(
                    out,
                    "{}\n    every {} s, next {}, last {}{}",
                    text(&w["url"]),
                    w["every_seconds"],
                    text(&w["next_due"]),
                    text(&w["last_run"]),
                    if w["auto"] == true {
                        " (added automatically: a fake shortener)"
                    } else {
                        ""
                    },
                )?;
            }
        }
        WatchAction::History { .. } => write_history(&mut out, &answer)?,
    }
    Ok(())
}

/// A link's history for a person: the summary, then one line per observation.
fn write_history(out: &mut impl Write, h: &serde_json::Value) -> std::io::Result<()> {
    let s = &h["summary"];
    let list = |v: &serde_json::Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x.as_str().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    writeln!(out, "{}", h["url"].as_str().unwrap_or(""))?;
    writeln!(
        out,
        "  {} observations from {} to {}; {} distinct final URLs{}",
        s["observations"],
        s["first_seen"].as_str().unwrap_or(""),
        s["last_seen"].as_str().unwrap_or(""),
        s["distinct_final_urls"],
        if s["rotating"] == true {
            " (rotating)"
        } else {
            ""
        },
    )?;
    writeln!(out, "  landing hosts: {}", list(&s["distinct_final_hosts"]))?;
    for n in s["new_hosts"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  new host {} since {}",
            n["host"].as_str().unwrap_or(""),
            n["first_seen"].as_str().unwrap_or("")
        )?;
    }
    for o in h["observations"].as_array().into_iter().flatten() {
        let labels = list(&o["labels"]);
        writeln!(
            out,
            "  {}  {:<8}  {}{}",
            o["at"].as_str().unwrap_or(""),
            o["outcome"].as_str().unwrap_or(""),
            o["final_url"].as_str().unwrap_or(""),
            if labels.is_empty() {
                String::new()
            } else {
                format!("  [{labels}]")
            },
        )?;
    }
    Ok(())
}

/// How long requests in flight may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

async fn serve(args: ServeArgs) -> Result<(), Failure> {
    use tokio::signal::unix::{signal, SignalKind};
    let config_path = args.config.path.clone();
    let mut config = args.config.load()?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    let store = Store::open(&config.storage.path)?;
    let resolver = std::sync::Arc::new(
        Resolver::new(&config, Some(store.clone())).map_err(|e| usage(e.into()))?,
    );
    let watcher = crate::watch::Watcher::new(&config, resolver.clone(), store.clone());
    let api = std::sync::Arc::new(crate::api::Api::new(
        &config,
        resolver.clone(),
        store.clone(),
        watcher.clone(),
    ));
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!("hoptrace serving on http://{addr}");
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    // SIGHUP reloads the indicator lists (re-reading the config for labels.extra_files).
    let reloader = resolver.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let reloaded = Config::load(config_path.as_deref())
                .map_err(|e| e.to_string())
                .and_then(|c| reloader.reload_labels(&c).map_err(|e| e.to_string()));
            match reloaded {
                Ok(()) => tracing::info!("indicator lists reloaded"),
                Err(e) => tracing::error!("reload failed, the old lists stay: {e}"),
            }
        }
    });
    // The scheduler and the webhook stop with the server.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let scheduler = tokio::spawn(watcher.clone().run(stopped()));
    let webhook = tokio::spawn(watcher.clone().deliver_webhooks(stopped()));
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down: finishing requests in flight");
        let _ = stop_tx.send(true);
    };
    crate::api::serve(api, listener, shutdown, SHUTDOWN_GRACE).await;
    let _ = tokio::join!(scheduler, webhook);
    store.flush().await?;
    tracing::info!("stopped; the store is flushed");
    Ok(())
}

async fn resolve(args: ResolveArgs) -> Result<(), Failure> {
    let config = args.config.load()?;
    let store = match args.no_store {
        true => None,
        false => Some(Store::open(&config.storage.path)?),
    };
    let mut resolver = Resolver::new(&config, store.clone()).map_err(|e| usage(e.into()))?;
    // A printed line is on disk, but the store is flushed once per group of lines rather than
    // once per resolution, so the disk's latency does not hold up the resolutions.
    resolver.defer_durability();
    let resolver = std::sync::Arc::new(resolver);
    let use_cache = !args.no_cache;
    let concurrency = (config.limits.concurrency as usize).max(1);
    let stdout = std::io::stdout();
    let colour = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();

    // Inputs are read as they are needed (a list of millions is never held whole); each
    // resolution is its own task, so they spread over the cores, and holds one of
    // `concurrency` slots while it runs. Results come back in input order; finished ones may
    // wait for an earlier slow one in a window four times that size, so one slow link does
    // not stop new ones from starting (nor does a flush of the store by the printer).
    let inputs = read_inputs(args.urls, concurrency);
    let window = concurrency.saturating_mul(4);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Trace>(window);
    let producer = tokio::spawn(async move {
        let mut traces = std::pin::pin!(inputs
            .map(|input| {
                let (resolver, slots) = (resolver.clone(), slots.clone());
                tokio::spawn(async move {
                    let input = input?;
                    let _slot = slots.acquire_owned().await.expect("never closed");
                    Ok::<_, std::io::Error>(resolver.resolve(&input, use_cache).await)
                })
            })
            .buffered(window));
        while let Some(joined) = traces.next().await {
            let trace = joined
                .context("a resolution task failed")?
                .context("reading URLs from stdin")?;
            if tx.send(trace).await.is_err() {
                break; // the printer stopped (stdout closed)
            }
        }
        Ok::<_, anyhow::Error>(())
    });

    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut ready = Vec::with_capacity(concurrency);
    while let Some(trace) = rx.recv().await {
        ready.push(trace);
        while let Ok(trace) = rx.try_recv() {
            ready.push(trace);
        }
        if let Some(store) = &store {
            store.flush().await?;
        }
        for trace in ready.drain(..) {
            if args.json {
                serde_json::to_writer(&mut out, &trace)?;
                out.write_all(b"\n")?;
            } else {
                write_human(&mut out, &trace, colour)?;
            }
        }
        out.flush()?;
    }
    producer.await.context("the resolution task failed")??;
    Ok(())
}

async fn scan(args: ScanArgs) -> Result<(), Failure> {
    use crate::scan::{documents, Scanner, Verdict};
    let config = args.config.load()?;
    let (reader, source, total): (Box<dyn BufRead + Send>, String, Option<u64>) =
        if args.input == "-" {
            (
                Box::new(std::io::BufReader::new(std::io::stdin())),
                "stdin".into(),
                None,
            )
        } else {
            let path = std::path::Path::new(&args.input);
            let open = || {
                std::fs::File::open(path)
                    .with_context(|| format!("cannot read {}", path.display()))
                    .map_err(usage)
            };
            // Counting lines first gives the progress bar a length (and an ETA).
            let lines = std::io::BufReader::new(open()?)
                .lines()
                .map_while(Result::ok)
                .filter(|l| !l.trim().is_empty())
                .count() as u64;
            let name = path
                .file_name()
                .map_or(args.input.clone(), |n| n.to_string_lossy().into_owned());
            (
                Box::new(std::io::BufReader::new(open()?)),
                name,
                Some(lines),
            )
        };
    let store = Store::open(&config.storage.path)?;
    let resolver =
        std::sync::Arc::new(Resolver::new(&config, Some(store)).map_err(|e| usage(e.into()))?);
    let concurrency = config.limits.concurrency as usize;
    let scanner = Scanner::new(resolver, concurrency, !args.no_cache, args.rescan);

    let bar = if std::io::stderr().is_terminal() {
        let bar = match total {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::no_length(),
        };
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} repositories  {per_sec}  ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();

    // Documents are read as they are needed (a dump of millions of repositories is never
    // held whole); `buffered` scans `concurrency` repositories at once and keeps input order.
    let docs = read_ahead(concurrency, move || documents(reader, &source));
    let scanner = &scanner;
    let mut results = std::pin::pin!(docs
        .map(|doc| async move {
            match doc {
                Ok(doc) => scanner.scan(&doc).await.map_err(anyhow::Error::from),
                Err(e) => Err(anyhow::Error::from(e)),
            }
        })
        .buffered(concurrency.max(1)));
    let mut counts = [0usize; 3];
    let (mut resumed, mut bad) = (0usize, 0usize);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    while let Some(result) = results.next().await {
        bar.inc(1);
        match result {
            Ok(scanned) => {
                counts[scanned.verdict as usize] += 1;
                resumed += usize::from(scanned.resumed);
                bar.suspend(|| -> std::io::Result<()> {
                    if args.json {
                        serde_json::to_writer(&mut out, &scanned)?;
                        out.write_all(b"\n")?;
                    } else {
                        write_scanned(&mut out, &scanned, colour)?;
                    }
                    out.flush()
                })?;
            }
            Err(e) => {
                bad += 1;
                bar.suspend(|| eprintln!("hoptrace: skipped: {e:#}"));
            }
        }
    }
    bar.finish_and_clear();
    eprintln!(
        "scanned {} repositories: {} malicious, {} suspicious, {} clean ({resumed} from an earlier scan){}",
        counts.iter().sum::<usize>(),
        counts[Verdict::Malicious as usize],
        counts[Verdict::Suspicious as usize],
        counts[Verdict::Clean as usize],
        if bad > 0 { format!("; {bad} skipped (see above)") } else { String::new() },
    );
    Ok(())
}

/// The items of the iterator `make` builds, produced on a thread of their own (reading input
/// blocks) at most `ahead` items ahead of the consumer; the thread stops when the stream is
/// dropped.
fn read_ahead<I>(
    ahead: usize,
    make: impl FnOnce() -> I + Send + 'static,
) -> impl futures_util::Stream<Item = I::Item>
where
    I: Iterator,
    I::Item: Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(ahead.max(1));
    std::thread::spawn(move || {
        for item in make() {
            if tx.blocking_send(item).is_err() {
                break;
            }
        }
    });
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) })
}

/// A repository for a person: the verdict, then each reason.
fn write_scanned(
    out: &mut impl Write,
    s: &crate::scan::Scanned,
    colour: bool,
) -> std::io::Result<()> {
    use crate::scan::Verdict;
    let st = Style { on: colour };
    let (code, word) = match s.verdict {
        Verdict::Malicious => ("31;1", "MALICIOUS"),
        Verdict::Suspicious => ("33", "suspicious"),
        Verdict::Clean => ("32", "clean"),
    };
    let mut line = format!(
        "{}  {}",
        st.paint(code, &format!("{word:<10}")),
        s.repository
    );
    line.push_str(&format!("  ({} links", s.links.len()));
    if s.links_left_out > 0 {
        line.push_str(&format!(", {} more not resolved", s.links_left_out));
    }
    line.push(')');
    if s.resumed {
        line.push_str("  (earlier scan)");
    }
    writeln!(out, "{line}")?;
    for r in &s.reasons {
        match &r.url {
            Some(url) => writeln!(out, "    {url}: {}", r.why)?,
            None => writeln!(out, "    {}", r.why)?,
        }
    }
    Ok(())
}

fn campaigns(args: CampaignsArgs) -> Result<(), Failure> {
    let config = args.config.load()?;
    let store = Store::open(&config.storage.path)?;
    let records = store
        .repositories::<crate::scan::RepositoryRecord>()
        .collect::<Result<Vec<_>, _>>()?;
    let found = crate::campaigns::cluster(records, args.min_repositories);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "campaigns": found }))?;
        writeln!(out)?;
    } else if found.is_empty() {
        writeln!(
            out,
            "no campaigns of {} or more repositories in the store",
            args.min_repositories
        )?;
    } else {
        write_campaigns(&mut out, &found)?;
    }
    out.flush()?;
    Ok(())
}

/// Campaigns as a table, with each one's hosts, users and labels under it.
fn write_campaigns(
    out: &mut impl Write,
    found: &[crate::campaigns::Campaign],
) -> std::io::Result<()> {
    let list = |items: &[String], max: usize| {
        if items.is_empty() {
            return "-".to_string();
        }
        let mut s = items
            .iter()
            .take(max)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if items.len() > max {
            s.push_str(&format!(" (+{} more)", items.len() - max));
        }
        s
    };
    writeln!(
        out,
        "{:<16} {:>6} {:>6} {:>9}  {:<20} {:<20}",
        "campaign", "repos", "users", "malicious", "first seen", "last seen"
    )?;
    for c in found {
        writeln!(
            out,
            "{:<16} {:>6} {:>6} {:>9}  {:<20} {:<20}",
            c.id, c.repository_count, c.user_count, c.malicious, c.first_seen, c.last_seen
        )?;
        writeln!(out, "    landing hosts:  {}", list(&c.landing_hosts, 6))?;
        writeln!(out, "    infrastructure: {}", list(&c.infrastructure, 6))?;
        writeln!(out, "    labels:         {}", list(&c.labels, 8))?;
        writeln!(out, "    users:          {}", list(&c.users, 6))?;
        writeln!(out, "    repositories:   {}", list(&c.repositories, 4))?;
    }
    Ok(())
}

/// The URLs named on the command line, with `-` replaced by stdin's lines (blank lines and
/// `#` comments skipped), read at most `ahead` lines ahead of the work.
fn read_inputs(
    args: Vec<String>,
    ahead: usize,
) -> impl futures_util::Stream<Item = std::io::Result<String>> {
    read_ahead(ahead, move || {
        args.into_iter()
            .flat_map(|arg| -> Box<dyn Iterator<Item = _>> {
                if arg != "-" {
                    return Box::new(std::iter::once(Ok(arg)));
                }
                Box::new(std::io::stdin().lines().filter_map(|line| match line {
                    Ok(line) => {
                        let line = line.trim();
                        (!line.is_empty() && !line.starts_with('#')).then(|| Ok(line.to_string()))
                    }
                    Err(e) => Some(Err(e)),
                }))
            })
    })
}

struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// A chain for a person: numbered hops with status, how each was reached, labels, and where
/// it all ends.
pub fn write_human(out: &mut impl Write, trace: &Trace, colour: bool) -> std::io::Result<()> {
    let st = Style { on: colour };
    writeln!(out, "{}", st.paint("1", &trace.input))?;
    for (i, hop) in trace.hops.iter().enumerate() {
        let status = match (hop.blocked, hop.status) {
            (true, _) => st.paint("33", "BLOCKED"),
            (_, Some(s)) => format!("{s:>7}"),
            (_, None) => format!("{:>7}", "-"),
        };
        let mut line = format!("  {i:>2}  {status}  {:<13}  {}", hop.via.as_str(), hop.url);
        if !hop.labels.is_empty() {
            let mut tags = hop.labels.join(", ");
            if let Some(imitates) = &hop.imitates {
                tags.push_str(&format!("; imitates {imitates}"));
            }
            let bad = hop
                .labels
                .iter()
                .any(|l| crate::labels::MALICIOUS.contains(&l.as_str()));
            line.push_str("  ");
            line.push_str(&st.paint(if bad { "31;1" } else { "36" }, &format!("[{tags}]")));
        }
        writeln!(out, "{line}")?;
        if let Some(reason) = &hop.reason {
            writeln!(
                out,
                "{}",
                st.paint("2", &format!("                         {reason}"))
            )?;
        }
    }
    let at = |what: &str| match trace.final_host.as_str() {
        "" => what.to_string(),
        host => format!("{what} {host}"),
    };
    let end = match trace.outcome {
        Outcome::Landed => at("landed on"),
        Outcome::Download => at("download from"),
        Outcome::Blocked => at("blocked at"),
        Outcome::Loop => format!("loop back to {}", trace.final_url),
        Outcome::TooManyHops => "too many hops".to_string(),
        Outcome::Timeout => "timed out".to_string(),
        Outcome::Error => "error".to_string(),
    };
    let mut summary = format!("  => {end}");
    if !trace.final_url.is_empty() && !matches!(trace.outcome, Outcome::Loop) {
        summary.push_str(&format!("  {}", trace.final_url));
    }
    if let Some(e) = &trace.error {
        summary.push_str(&format!("  ({}: {})", e.kind, e.message));
    }
    if trace.cached {
        summary.push_str("  (cached)");
    }
    let code = match trace.outcome {
        Outcome::Landed => "32",
        Outcome::Download | Outcome::Blocked => "33",
        _ => "31",
    };
    writeln!(out, "{}", st.paint(code, &summary))?;
    if !trace.labels.is_empty() {
        writeln!(out, "     labels: {}", trace.labels.join(", "))?;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Hop, Via};

    fn sample() -> Trace {
        let mut hop = Hop::new(
            "http://bltlly.com/x".into(),
            "bltlly.com".into(),
            Via::Input,
        );
        hop.status = Some(302);
        hop.labels = vec!["fake-shortener".into()];
        hop.imitates = Some("bitly.com".into());
        Trace::from_hops("hxxp://bltlly[.]com/x", vec![hop], Outcome::Landed)
    }

    #[test]
    fn colour_only_when_asked() {
        let mut plain = Vec::new();
        write_human(&mut plain, &sample(), false).unwrap();
        let plain = String::from_utf8(plain).unwrap();
        assert!(!plain.contains('\x1b'));
        assert!(plain.contains("[fake-shortener; imitates bitly.com]"));
        let mut coloured = Vec::new();
        write_human(&mut coloured, &sample(), true).unwrap();
        let coloured = String::from_utf8(coloured).unwrap();
        assert!(
            coloured.contains("\x1b[31;1m[fake-shortener; imitates bitly.com]\x1b[0m"),
            "{coloured}"
        );
    }
}
