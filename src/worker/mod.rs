//! Long-running loops, each restarted on failure: one admission worker per
//! event, the expiry consumer, and the sweeper under it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::domain::EventId;
use crate::ports::{AdmissionStore, BackendResult, DelayQueue, LineQueue, LineRecords};
use crate::services::admission::{AdmissionWorker, PREFETCH};
use crate::services::booking::Booking;
use crate::services::catalog::Catalog;
use crate::services::line::Line;
use crate::services::spawn_every;

/// How long an admission step waits for new arrivals.
const STEP_WAIT: Duration = Duration::from_millis(20);
const RETRY_AFTER: Duration = Duration::from_secs(1);
const WATCH_EVENTS: Duration = Duration::from_millis(500);
/// Expiries handled at once by one process.
const EXPIRY_PREFETCH: u16 = 64;
const EXPIRY_WAIT: Duration = Duration::from_millis(250);
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Workers {
    pub catalog: Arc<Catalog>,
    pub line: Arc<Line>,
    pub booking: Arc<Booking>,
    pub store: Arc<dyn AdmissionStore>,
    pub record: Arc<dyn LineRecords>,
    pub queue: Arc<dyn LineQueue>,
    /// Each event's watermark as its last admission worker here left it: a
    /// worker started again begins there, even if the store lost its own.
    pub watermarks: Arc<std::sync::Mutex<HashMap<EventId, u64>>>,
    pub delays: Arc<dyn DelayQueue>,
}

impl Workers {
    /// Runs every worker until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let expiry = tokio::spawn(restarting("expiry", stop.clone(), {
            let this = self.clone();
            let stop = stop.clone();
            move || {
                let (this, stop) = (this.clone(), stop.clone());
                async move { this.expire_until_failure(&stop).await }
            }
        }));
        // Expires holds that the delay queue has not (a lost timer, a broker outage).
        // Then reconciles holds the fast store kept past their time (a crash between hold and order).
        let sweeper = spawn_every(
            SWEEP_EVERY,
            stop.clone(),
            self.booking.clone(),
            |booking| async move {
                match booking.expire_overdue().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "the sweeper expired overdue holds"),
                    Err(e) => tracing::warn!(error = %e, "the sweeper failed"),
                }
                let repaired = booking.repair_unfollowed_sales().await;
                if repaired > 0 {
                    tracing::info!(
                        repaired,
                        "paid seats the fast store had missed are sold in it now"
                    );
                }
                match booking.reap_stale_holds().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::warn!(reconciled = n, "stale holds reconciled with the record")
                    }
                    Err(e) => tracing::warn!(error = %e, "reconciling stale holds failed"),
                }
            },
        );
        self.admit_every_event(stop).await;
        let _ = tokio::join!(expiry, sweeper);
    }

    /// Keeps one admission worker per event.
    async fn admit_every_event(self, stop: CancellationToken) {
        let mut running: HashMap<EventId, JoinHandle<()>> = HashMap::new();
        let mut tick = tokio::time::interval(WATCH_EVENTS);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            for event in self.catalog.all() {
                running.entry(event.id().clone()).or_insert_with(|| {
                    let (this, id, stop) = (self.clone(), event.id().clone(), stop.clone());
                    tokio::spawn(restarting("admission", stop.clone(), move || {
                        let (this, id, stop) = (this.clone(), id.clone(), stop.clone());
                        async move { this.admit_until_failure(&id, &stop).await }
                    }))
                });
            }
        }
        for (_, handle) in running {
            // A worker that panicked has already been reported by the runtime.
            let _ = handle.await;
        }
    }

    async fn admit_until_failure(
        &self,
        event: &EventId,
        stop: &CancellationToken,
    ) -> BackendResult<()> {
        let consumer = self.queue.consume(event, PREFETCH).await?;
        let (catalog, store, record) = (
            self.catalog.clone(),
            self.store.clone(),
            self.record.clone(),
        );
        // What this process knows was consumed: the store's watermark may have been lost.
        let left_at = self
            .watermarks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(event)
            .copied()
            .unwrap_or(0);
        let known = left_at.max(self.line.consumed(event));
        let mut worker =
            AdmissionWorker::new(event.clone(), catalog, store, record, consumer, known).await?;
        let outcome = loop {
            tokio::select! {
                _ = stop.cancelled() => break Ok(()),
                step = worker.step(STEP_WAIT) => if let Err(e) = step { break Err(e) },
            }
        };
        self.watermarks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(event.clone(), worker.consumed());
        worker.close().await;
        outcome
    }

    /// Consumes due expiries; each is acknowledged once its order has ended and
    /// its seats are free, and returned to the queue if that failed.
    async fn expire_until_failure(&self, stop: &CancellationToken) -> BackendResult<()> {
        let mut consumer = self.delays.expiries(EXPIRY_PREFETCH).await?;
        let outcome = 'consuming: loop {
            let batch = tokio::select! {
                _ = stop.cancelled() => break Ok(()),
                batch = consumer.receive(EXPIRY_WAIT, usize::from(EXPIRY_PREFETCH)) => batch,
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => break Err(e),
            };
            // Each expiry waits on the record and the fast store: a batch is handled at once,
            // so that a burst of due holds ends within hold_seconds + 2 (API.md).
            let handled = join_all(batch.iter().map(|due| self.booking.expire(&due.message))).await;
            for (due, handled) in batch.iter().zip(handled) {
                let settled = match &handled {
                    Ok(()) => consumer.ack(&[due.tag]).await,
                    Err(_) => consumer.retry(due.tag).await,
                };
                if let Err(e) = handled.and(settled) {
                    break 'consuming Err(e);
                }
            }
        };
        consumer.close().await;
        outcome
    }
}

/// Runs `attempt` again after a pause whenever it fails, until `stop`.
async fn restarting<F, Fut>(name: &'static str, stop: CancellationToken, attempt: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = BackendResult<()>>,
{
    while !stop.is_cancelled() {
        if let Err(e) = attempt().await {
            tracing::warn!(worker = name, error = %e, "worker failed; restarting");
            metrics::counter!("anteroom_worker_restarts_total", "worker" => name).increment(1);
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(RETRY_AFTER) => {}
        }
    }
}
