//! The owner of a process's background tasks: every task is spawned here, and
//! shutdown stops them and waits for them, instead of dropping their handles.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

/// A set of tasks and the signal that stops their background work.
///
/// Two kinds of task live here: loops that run until `stop` (following the
/// logs, the workers), and work that must finish once started (a hold whose
/// client went away, a group of joins being committed). `stop` cancels the
/// first kind and waits for both.
#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    stopping: CancellationToken,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` until it ends; `stop` waits for it.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Runs `tick(target)` every `period` until background work stops; a slow
    /// tick delays the next one rather than bunching them up.
    pub fn every<T, Fut>(&self, period: Duration, target: Arc<T>, tick: fn(Arc<T>) -> Fut)
    where
        T: Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stopping = self.stopping.clone();
        self.spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stopping.cancelled() => return,
                    _ = interval.tick() => {}
                }
                tokio::select! {
                    _ = stopping.cancelled() => return,
                    _ = tick(target.clone()) => {}
                }
            }
        });
    }

    /// Completes once background work is told to stop.
    pub fn stopping(&self) -> WaitForCancellationFuture<'_> {
        self.stopping.cancelled()
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.is_cancelled()
    }

    /// Tasks that have not ended yet.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Stops background work and waits up to `within` for every task to end.
    /// Returns whether they all did; the ones left are logged and abandoned.
    pub async fn stop(&self, within: Duration) -> bool {
        self.stopping.cancel();
        self.tracker.close();
        let ended = tokio::time::timeout(within, self.tracker.wait())
            .await
            .is_ok();
        if !ended {
            tracing::error!(
                left = self.tracker.len(),
                ?within,
                "background tasks did not end in time; they are abandoned"
            );
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_cancels_the_loops_and_waits_for_work_already_started() {
        let tasks = Tasks::new();
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let work = tasks.spawn(async move {
            let _ = finished.await;
            "done"
        });
        tasks.every(Duration::from_millis(1), Arc::new(()), |_| async {});
        assert_eq!(tasks.running(), 2);
        let stopped = tokio::spawn({
            let tasks = tasks.clone();
            async move { tasks.stop(Duration::from_secs(60)).await }
        });
        tasks.stopping().await;
        assert!(!stopped.is_finished(), "stop waits for the work");
        finish.send(()).expect("the work still waits");
        assert!(stopped.await.expect("stop ends"));
        assert_eq!(work.await.expect("the work ends"), "done");
        assert_eq!(tasks.running(), 0);
    }

    #[tokio::test]
    async fn stop_gives_up_on_a_task_that_never_ends() {
        let tasks = Tasks::new();
        tasks.spawn(std::future::pending::<()>());
        assert!(!tasks.stop(Duration::from_millis(20)).await);
        assert_eq!(tasks.running(), 1);
    }
}
