//! `hoptrace serve`: the service, its scheduler, reloads and graceful stop.

use std::io::Write;

use anyhow::Context;

use crate::config::Config;

use super::*;

/// How long requests in flight may take to finish after a shutdown signal.
pub(super) const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

pub(super) async fn serve(args: ServeArgs) -> Result<(), Failure> {
    use tokio::signal::unix::{signal, SignalKind};
    let config_path = args.config.path.clone();
    let mut config = args.config.load()?;
    if let Some(listen) = args.listen {
        config.set_listen(listen).map_err(|e| usage(e.into()))?;
    }
    let service = crate::server::Service::build(&config)
        .await
        .map_err(|e| match e {
            crate::server::BuildError::Store(e) => Failure::from(e),
            e @ (crate::server::BuildError::Setup(_) | crate::server::BuildError::Hub(_)) => {
                usage(e.into())
            }
        })?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!("hoptrace serving on http://{addr}");
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;
    // Beside the sled store it holds: where a command that finds the store in use is sent.
    let addr_file = config
        .storage
        .sled_path()
        .map(|path| path.join(super::client::SERVE_ADDR_FILE));
    if let Some(file) = &addr_file {
        if let Err(e) = std::fs::write(file, addr.to_string()) {
            tracing::warn!("cannot write {}: {e}", file.display());
        }
    }

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    // SIGHUP reloads the indicator lists (re-reading the config for labels.extra_files).
    let reloader = service.resolver.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let reloaded = Config::load(config_path.as_deref())
                .map_err(|e| e.to_string())
                .and_then(|c| reloader.reload_labels(&c.labels).map_err(|e| e.to_string()));
            match reloaded {
                Ok(()) => tracing::info!("indicator lists reloaded"),
                Err(e) => tracing::error!("reload failed, the old lists stay: {e}"),
            }
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down: finishing requests in flight");
    };
    let ran = service.run(listener, shutdown, SHUTDOWN_GRACE).await;
    if let Some(file) = &addr_file {
        let _ = std::fs::remove_file(file);
    }
    ran?;
    tracing::info!("stopped; the store is flushed");
    Ok(())
}
