//! The service's composition root: everything `hoptrace serve` runs, built from the config in
//! one place, so the command and the tests start the same thing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::api::Api;
use crate::chain::{Resolver, SetupError};
use crate::config::Config;
use crate::store::{Store, StoreError};
use crate::watch::Watcher;

/// Why the service could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A config problem the resolver found (DNS, TLS roots, indicator lists).
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// The parts of a running service.
pub struct Service {
    pub store: Store,
    pub resolver: Arc<Resolver>,
    pub watcher: Arc<Watcher>,
    pub api: Arc<Api>,
}

impl Service {
    /// Opens the store and builds the resolver, the watcher and the API over it.
    pub async fn build(config: &Config) -> Result<Service, BuildError> {
        let store = Store::open(&config.storage).await?;
        let mut resolver = Resolver::new(config, Some(store.clone()))?;
        resolver.watch_automatically(&config.watch, crate::config::AutoSource::Api);
        let resolver = Arc::new(resolver);
        let watcher = Watcher::new(
            &config.watch,
            config.limits.concurrency,
            resolver.clone(),
            store.clone(),
        );
        let api = Arc::new(Api::new(
            &config.server,
            &config.limits,
            resolver.clone(),
            store.clone(),
            watcher.clone(),
        ));
        Ok(Service {
            store,
            resolver,
            watcher,
            api,
        })
    }

    /// Serves the API on `listener`, with the watch scheduler and the webhook beside it, until
    /// `shutdown` resolves; then lets requests in flight finish (up to `grace`), stops the
    /// scheduler and the webhook, and flushes the store.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
        grace: Duration,
    ) -> Result<(), StoreError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let scheduler = tokio::spawn(self.watcher.clone().run(stopped()));
        let webhook = tokio::spawn(self.watcher.clone().deliver_webhooks(stopped()));
        let shutdown = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        crate::api::serve(self.api, listener, shutdown, grace).await;
        let _ = tokio::join!(scheduler, webhook);
        self.store.flush().await
    }
}
