//! Use-cases over the ports: the event catalog, the line, admission, booking, readiness.

pub mod admission;
pub mod booking;
pub mod catalog;
pub mod door;
pub mod line;
pub mod readiness;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Runs `tick(target)` every `period` until `stop` is cancelled; a slow tick
/// delays the next one rather than bunching them up.
pub fn spawn_every<T, Fut>(
    period: Duration,
    stop: CancellationToken,
    target: Arc<T>,
    tick: fn(Arc<T>) -> Fut,
) -> JoinHandle<()>
where
    T: Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = interval.tick() => {}
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick(target.clone()) => {}
            }
        }
    })
}
