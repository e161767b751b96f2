//! The service's composition root: everything `hoptrace serve` runs, built from the config in
//! one place, so the command and the tests start the same thing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::api::Api;
use crate::chain::{Resolver, SetupError};
use crate::config::Config;
use crate::hub::{Crawls, HubError, Order};
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
    /// The Docker Hub client or its schedule could not be set up.
    #[error(transparent)]
    Hub(#[from] HubError),
}

/// The parts of a running service.
pub struct Service {
    pub store: Store,
    pub resolver: Arc<Resolver>,
    pub watcher: Arc<Watcher>,
    pub api: Arc<Api>,
    /// Docker Hub crawls (the API's and the schedule's).
    pub crawls: Arc<Crawls>,
    /// `[hub.schedule]` as an order and its interval; `None`: off.
    hub_schedule: Option<(Order, Duration)>,
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
        let egress = crate::egress::Egress::new(config).map_err(HubError::Egress)?;
        let token = std::env::var(crate::hub::TOKEN_VAR).ok();
        let crawls = Crawls::new(
            crate::hub::HubApi::new(config, egress, token.as_deref())?,
            store.clone(),
            crate::scan::Scanner::new(resolver.clone(), true, false),
            config.limits.concurrency as usize,
        );
        let hub_schedule = crate::hub::schedule::order(&config.hub.schedule)?
            .map(|o| (o, config.hub.schedule.every));
        let api = Arc::new(Api::new(
            &config.server,
            &config.limits,
            resolver.clone(),
            store.clone(),
            watcher.clone(),
            crawls.clone(),
        ));
        Ok(Service {
            store,
            resolver,
            watcher,
            api,
            crawls,
            hub_schedule,
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
        let hub = self.hub_schedule.map(|(order, every)| {
            tokio::spawn(crate::hub::schedule::run(
                self.crawls.clone(),
                order,
                every,
                stopped(),
            ))
        });
        let shutdown = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        crate::api::serve(self.api, listener, shutdown, grace).await;
        let _ = tokio::join!(scheduler, webhook);
        if let Some(hub) = hub {
            let _ = hub.await;
        }
        self.store.flush().await
    }
}
