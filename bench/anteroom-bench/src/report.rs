//! What a run measured: latencies per route, and the figures it prints.

use std::time::Duration;

/// The routes whose latency is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Join,
    Poll,
    Hold,
    Pay,
    Cancel,
    Leave,
}

impl Route {
    pub const ALL: [Route; 6] = [
        Route::Join,
        Route::Poll,
        Route::Hold,
        Route::Pay,
        Route::Cancel,
        Route::Leave,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Route::Join => "join",
            Route::Poll => "poll",
            Route::Hold => "hold",
            Route::Pay => "pay",
            Route::Cancel => "cancel",
            Route::Leave => "leave",
        }
    }
}

/// Every latency of a run, in microseconds, per route. Each driver keeps its
/// own and they are merged at the end: recording never contends.
#[derive(Default)]
pub struct Latencies {
    micros: [Vec<u32>; Route::ALL.len()],
}

impl Latencies {
    pub fn record(&mut self, route: Route, took: Duration) {
        self.micros[route as usize].push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn merge(&mut self, other: Latencies) {
        for (mine, theirs) in self.micros.iter_mut().zip(other.micros) {
            mine.extend(theirs);
        }
    }

    /// Count and percentiles per route that saw any request.
    pub fn summary(mut self) -> Vec<RouteSummary> {
        Route::ALL
            .iter()
            .filter_map(|&route| {
                let micros = &mut self.micros[route as usize];
                if micros.is_empty() {
                    return None;
                }
                micros.sort_unstable();
                let at = |q: f64| {
                    let index =
                        ((micros.len() as f64 * q).ceil() as usize).clamp(1, micros.len()) - 1;
                    f64::from(micros[index]) / 1_000.0
                };
                Some(RouteSummary {
                    route: route.name(),
                    count: micros.len() as u64,
                    p50_ms: at(0.50),
                    p95_ms: at(0.95),
                    p99_ms: at(0.99),
                    max_ms: at(1.0),
                })
            })
            .collect()
    }
}

#[derive(Debug, serde::Serialize)]
pub struct RouteSummary {
    pub route: &'static str,
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub fn print_latencies(summary: &[RouteSummary], seconds: f64) {
    println!(
        "{:<8} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "route", "requests", "per s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for s in summary {
        println!(
            "{:<8} {:>10} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>9.1}",
            s.route,
            s.count,
            s.count as f64 / seconds.max(1e-9),
            s.p50_ms,
            s.p95_ms,
            s.p99_ms,
            s.max_ms
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_read_from_the_sorted_latencies() {
        let mut latencies = Latencies::default();
        for ms in (1..=100).rev() {
            latencies.record(Route::Poll, Duration::from_millis(ms));
        }
        let summary = latencies.summary();
        assert_eq!(summary.len(), 1);
        let poll = &summary[0];
        assert_eq!((poll.route, poll.count), ("poll", 100));
        assert_eq!(
            (poll.p50_ms, poll.p95_ms, poll.p99_ms, poll.max_ms),
            (50.0, 95.0, 99.0, 100.0)
        );
    }
}
