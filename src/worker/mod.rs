//! Long-running loops: one admission worker per event, restarted on failure.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::domain::EventId;
use crate::ports::{AdmissionStore, LineQueue};
use crate::services::admission::{AdmissionWorker, PREFETCH};
use crate::services::catalog::Catalog;

/// How long an admission step waits for new arrivals.
const STEP_WAIT: Duration = Duration::from_millis(20);
const RETRY_AFTER: Duration = Duration::from_secs(1);
const WATCH_EVENTS: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Workers {
    pub catalog: Arc<Catalog>,
    pub store: Arc<dyn AdmissionStore>,
    pub queue: Arc<dyn LineQueue>,
}

impl Workers {
    /// Keeps one admission worker per event until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let mut running: HashMap<EventId, JoinHandle<()>> = HashMap::new();
        let mut tick = tokio::time::interval(WATCH_EVENTS);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            for event in self.catalog.all() {
                running.entry(event.id().clone()).or_insert_with(|| {
                    tokio::spawn(self.clone().admit(event.id().clone(), stop.clone()))
                });
            }
        }
        for (_, handle) in running {
            // A worker that panicked has already been reported by the runtime.
            let _ = handle.await;
        }
    }

    async fn admit(self, event: EventId, stop: CancellationToken) {
        while !stop.is_cancelled() {
            if let Err(e) = self.admit_until_failure(&event, &stop).await {
                tracing::warn!(%event, error = %e, "admission worker failed; restarting");
                metrics::counter!("anteroom_worker_restarts_total", "event" => event.to_string())
                    .increment(1);
            }
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(RETRY_AFTER) => {}
            }
        }
    }

    async fn admit_until_failure(
        &self,
        event: &EventId,
        stop: &CancellationToken,
    ) -> crate::ports::BackendResult<()> {
        let consumer = self.queue.consume(event, PREFETCH).await?;
        let mut worker = AdmissionWorker::new(
            event.clone(),
            self.catalog.clone(),
            self.store.clone(),
            consumer,
        )
        .await?;
        let outcome = loop {
            tokio::select! {
                _ = stop.cancelled() => break Ok(()),
                step = worker.step(STEP_WAIT) => if let Err(e) = step { break Err(e) },
            }
        };
        worker.close().await;
        outcome
    }
}
