use clap::Parser;

/// Allocation is spread over the runtime's threads; mimalloc's thread-local heaps cost less
/// there than glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // A worker of the script engine (started by hoptrace itself): no CLI, no runtime.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == hoptrace::script::WORKER_ARG)
    {
        std::process::exit(hoptrace::script::serve());
    }
    let cli = hoptrace::cli::Cli::parse();
    // The service logs its requests (info); one-shot commands only what went wrong.
    let (default_level, json) = match &cli.command {
        hoptrace::cli::Command::Serve(args) => ("info", args.log_json),
        _ => ("warn", false),
    };
    // chromiumoxide logs what it cannot parse of Chromium's messages and a browser dropped at
    // exit as warnings: nothing a user can act on, so off unless RUST_LOG asks for them.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default_level},chromiumoxide=off"))
    });
    // Colour only for a person at a terminal who has not asked for none (no-color.org).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_env_filter(filter);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    // Every connection in flight and every idle keep-alive one (kept 30 s, per host) is a file
    // descriptor: a batch over many hosts needs thousands, beyond the usual soft limit of
    // 1024. The hard limit is the real bound; take it (as Go's runtime does).
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) if n < 4096 => tracing::warn!("open files limited to {n}: a batch over many hosts may fail to connect (raise the hard limit: ulimit -Hn)"),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hoptrace: cannot start the async runtime: {e}");
            std::process::exit(hoptrace::cli::EXIT_FAILURE);
        }
    };
    if let Err(failure) = runtime.block_on(hoptrace::cli::run(cli)) {
        // Errors echo what they were given (a URL, a line, a server's message): escaped.
        eprintln!("hoptrace: {:#}", hoptrace::terminal::Shown(&failure.error));
        std::process::exit(failure.code);
    }
}
