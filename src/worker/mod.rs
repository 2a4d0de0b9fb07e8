//! Long-running loops, each restarted on failure: one admission worker per
//! event, the expiry consumer, and the sweeper under it. Each loop repeats one
//! public step (`AdmissionWorker::step`, `ExpiryWorker::step`,
//! `Workers::sweep_once`), which tests drive directly.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, stream};

use crate::domain::EventId;
use crate::ports::{
    AdmissionStore, BackendError, BackendResult, Clock, DelayQueue, ExpiryConsumer, ExpiryDue,
    LineQueue, LineRecords,
};
use crate::services::admission::{AdmissionWorker, PREFETCH};
use crate::services::booking::Booking;
use crate::services::catalog::Catalog;
use crate::services::line::Line;
use crate::tasks::Tasks;

/// How long an admission step waits for new arrivals.
const STEP_WAIT: Duration = Duration::from_millis(20);
const RETRY_AFTER: Duration = Duration::from_secs(1);
const WATCH_EVENTS: Duration = Duration::from_millis(500);
/// Timer messages (each the timers of a group of holds) taken at once by one process.
const EXPIRY_PREFETCH: u16 = 64;
/// Expiries handled at once by one process.
const EXPIRIES_AT_ONCE: usize = 64;
/// How long an expiry step waits for due holds.
pub const EXPIRY_WAIT: Duration = Duration::from_millis(250);
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
    pub clock: Clock,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Overdue holds expired (their timer was lost or late).
    pub expired: usize,
    /// Holds the fast store kept with no order behind them, released.
    pub reconciled: usize,
    /// Paid orders whose sale the fast store had missed, now sold in it.
    pub repaired: usize,
}

impl Workers {
    /// Starts every worker on `tasks`; they stop when its background work does.
    pub fn run(self, tasks: &Tasks) {
        tasks.spawn(restarting("expiry", tasks.clone(), {
            let (this, tasks) = (self.clone(), tasks.clone());
            move || {
                let (this, tasks) = (this.clone(), tasks.clone());
                async move { this.expire_until_failure(&tasks).await }
            }
        }));
        // Expires holds that the delay queue has not (a lost timer, a broker outage),
        // then reconciles holds the fast store kept past their time (a crash between hold and order).
        tasks.every(SWEEP_EVERY, Arc::new(self.clone()), |workers| async move {
            workers.sweep_logged().await
        });
        tasks.spawn(self.admit_every_event(tasks.clone()));
    }

    /// One step of the sweeper.
    pub async fn sweep_once(&self) -> BackendResult<Swept> {
        let repaired = self.booking.repair_unfollowed_sales().await;
        let expired = self.booking.expire_overdue().await?;
        let reconciled = self.booking.reap_stale_holds().await;
        Ok(Swept {
            expired,
            reconciled,
            repaired,
        })
    }

    async fn sweep_logged(&self) {
        match self.sweep_once().await {
            Ok(Swept {
                expired,
                reconciled,
                repaired,
            }) => {
                if expired > 0 {
                    tracing::info!(expired, "the sweeper expired overdue holds");
                }
                if reconciled > 0 {
                    tracing::warn!(reconciled, "stale holds reconciled with the record");
                }
                if repaired > 0 {
                    tracing::info!(
                        repaired,
                        "paid seats the fast store had missed are sold in it now"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "the sweeper failed"),
        }
    }

    /// Keeps one admission worker per event.
    async fn admit_every_event(self, tasks: Tasks) {
        let mut running: HashSet<EventId> = HashSet::new();
        let mut tick = tokio::time::interval(WATCH_EVENTS);
        loop {
            tokio::select! {
                _ = tasks.stopping() => return,
                _ = tick.tick() => {}
            }
            for event in self.catalog.all() {
                if running.insert(event.id().clone()) {
                    let (this, id, stop) = (self.clone(), event.id().clone(), tasks.clone());
                    tasks.spawn(restarting("admission", tasks.clone(), move || {
                        let (this, id, stop) = (this.clone(), id.clone(), stop.clone());
                        async move { this.admit_until_failure(&id, &stop).await }
                    }));
                }
            }
        }
    }

    /// A started admission worker for `event`, beginning where this process
    /// last saw the line consumed.
    pub async fn admission(&self, event: &EventId) -> BackendResult<AdmissionWorker> {
        let consumer = self.queue.consume(event, PREFETCH).await?;
        // What this process knows was consumed: the store's watermark may have been lost.
        let left_at = self
            .watermarks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(event)
            .copied()
            .unwrap_or(0);
        let known = left_at.max(self.line.consumed(event));
        AdmissionWorker::new(
            event.clone(),
            self.catalog.clone(),
            self.store.clone(),
            self.record.clone(),
            consumer,
            known,
            self.clock.clone(),
        )
        .await
    }

    async fn admit_until_failure(&self, event: &EventId, tasks: &Tasks) -> BackendResult<()> {
        let mut worker = self.admission(event).await?;
        let outcome = loop {
            tokio::select! {
                _ = tasks.stopping() => break Ok(()),
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

    /// A started expiry worker.
    pub async fn expiry(&self) -> BackendResult<ExpiryWorker> {
        Ok(ExpiryWorker {
            booking: self.booking.clone(),
            consumer: self.delays.expiries(EXPIRY_PREFETCH).await?,
        })
    }

    async fn expire_until_failure(&self, tasks: &Tasks) -> BackendResult<()> {
        let mut worker = self.expiry().await?;
        let outcome = loop {
            tokio::select! {
                _ = tasks.stopping() => break Ok(()),
                step = worker.step(EXPIRY_WAIT) => if let Err(e) = step { break Err(e) },
            }
        };
        worker.close().await;
        outcome
    }
}

/// Consumes due expiries; each message is acknowledged once its orders have
/// ended and their seats are free, and returned to the queue if that failed
/// (expiring again is harmless).
pub struct ExpiryWorker {
    booking: Arc<Booking>,
    consumer: Box<ExpiryConsumer>,
}

impl ExpiryWorker {
    /// Handles the expiries due within `wait`; returns how many timers were handled.
    pub async fn step(&mut self, wait: Duration) -> BackendResult<usize> {
        let batch = self
            .consumer
            .receive(wait, usize::from(EXPIRY_PREFETCH))
            .await?;
        // Each expiry waits on the record and the fast store: many are handled at
        // once, so that a burst of due holds ends within hold_seconds + 2 (API.md),
        // and no more than the record's pool serves without a long wait.
        let dues: Vec<(usize, ExpiryDue)> = batch
            .iter()
            .enumerate()
            .flat_map(|(message, delivered)| {
                delivered.message.dues().map(move |due| (message, due))
            })
            .collect();
        let expired: Vec<(usize, BackendResult<()>)> = stream::iter(dues)
            .map(|(message, due)| {
                let booking = self.booking.clone();
                async move { (message, booking.expire(&due).await) }
            })
            .buffer_unordered(EXPIRIES_AT_ONCE)
            .collect()
            .await;
        let mut failed: Vec<Option<BackendError>> = vec![None; batch.len()];
        for (message, outcome) in expired {
            if let Err(e) = outcome {
                failed[message].get_or_insert(e);
            }
        }
        // A message is acknowledged once every timer in it is handled.
        for (delivered, failure) in batch.iter().zip(failed) {
            match failure {
                None => self.consumer.ack(&[delivered.tag]).await?,
                Some(e) => {
                    self.consumer.retry(delivered.tag).await?;
                    return Err(e);
                }
            }
        }
        Ok(batch.iter().map(|d| d.message.orders.len()).sum())
    }

    /// Stops consuming; unacknowledged expiries go back to the queue.
    pub async fn close(self) {
        self.consumer.close().await;
    }
}

/// Runs `attempt` again after a pause whenever it fails, until background work stops.
async fn restarting<F, Fut>(name: &'static str, tasks: Tasks, attempt: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = BackendResult<()>>,
{
    while !tasks.is_stopping() {
        if let Err(e) = attempt().await {
            tracing::warn!(worker = name, error = %e, "worker failed; restarting");
            metrics::counter!("anteroom_worker_restarts_total", "worker" => name).increment(1);
        }
        tokio::select! {
            _ = tasks.stopping() => {}
            _ = tokio::time::sleep(RETRY_AFTER) => {}
        }
    }
}
