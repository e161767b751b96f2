//! `hoptrace serve`: the service, its scheduler, reloads and graceful stop.

use std::io::Write;

use anyhow::Context;

use crate::chain::Resolver;
use crate::config::Config;
use crate::store::Store;

use super::*;

/// How long requests in flight may take to finish after a shutdown signal.
pub(super) const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

pub(super) async fn serve(args: ServeArgs) -> Result<(), Failure> {
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
