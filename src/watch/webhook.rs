//! The webhook: events POSTed in order through the egress gate, with retries, backoff and a
//! stored cursor so nothing raised while the receiver was down is lost.

use super::*;

impl Watcher {
    /// Delivers events to `watch.webhook_url`, in order, each POSTed as JSON with retries and
    /// exponential backoff; where it got to is kept in the store, so events raised while the
    /// receiver (or hoptrace) was down are delivered later. Runs until `shutdown`.
    pub async fn deliver_webhooks(
        self: Arc<Self>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let Some(hook) = self.webhook.clone() else {
            return;
        };
        tokio::pin!(shutdown);
        loop {
            let cursor = self.store.counter(WEBHOOK_CURSOR).await.unwrap_or(0);
            let pending: Vec<(u64, Event)> = self
                .store
                .events_after(cursor, 100)
                .await
                .unwrap_or_default();
            if pending.is_empty() {
                tokio::select! {
                    _ = self.new_event.notified() => continue,
                    _ = tokio::time::sleep(Duration::from_secs(30)) => continue,
                    _ = &mut shutdown => return,
                }
            }
            for (id, event) in pending {
                let delivery = self.deliver(&hook, &event);
                let result = tokio::select! {
                    r = delivery => r,
                    _ = &mut shutdown => return,
                };
                self.metrics
                    .webhook
                    .get_or_create(&ResultLabel {
                        result: result.into(),
                    })
                    .inc();
                if let Err(e) = self.store.set_counter(WEBHOOK_CURSOR, id).await {
                    tracing::error!("webhook cursor: {e}");
                }
            }
        }
    }

    async fn deliver(&self, hook: &url::Url, event: &Event) -> &'static str {
        let body = serde_json::to_vec(event).unwrap_or_default();
        let mut backoff = self.webhook_backoff;
        for attempt in 1..=WEBHOOK_ATTEMPTS {
            match self
                .resolver
                .fetcher()
                .post_json(hook, body.clone(), WEBHOOK_TIMEOUT)
                .await
            {
                Ok(status) if (200..300).contains(&status) => return "delivered",
                Ok(status) => tracing::warn!("webhook answered {status} (attempt {attempt})"),
                Err(e) if e.kind() == crate::trace::ErrorKind::Policy => {
                    tracing::error!("webhook {hook} refused by the egress policy: {e}");
                    return "refused";
                }
                Err(e) => tracing::warn!("webhook {hook}: {e} (attempt {attempt})"),
            }
            if attempt < WEBHOOK_ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(300));
            }
        }
        tracing::error!(
            "webhook gave up on event {} after {WEBHOOK_ATTEMPTS} attempts",
            event.id
        );
        "failed"
    }
}
