//! Where the services read the time. Production reads the system's clock; a
//! test gives the app a `ManualClock` and stops or moves it, as
//! `tokio::time::pause` does for tokio's timers, instead of sleeping.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// The wall time Anteroom decides with (pass ends, hold deadlines, the "now"
/// Redis scripts receive, abandonment) and a monotonic instant for intervals
/// (admission credit, rate limits, cache ages). Cheap to clone.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<ManualClock>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    pub fn now(&self) -> OffsetDateTime {
        match &self.manual {
            None => OffsetDateTime::now_utc(),
            Some(manual) => manual.now(),
        }
    }

    pub fn instant(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(manual) => manual.instant(),
        }
    }
}

/// A clock for tests: it keeps time with the system's until paused, stands
/// still while paused, and jumps when advanced. Its wall time and its instant
/// move together, and never backwards.
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<Manual>>);

struct Manual {
    /// A reading of both clocks, from which every later reading is derived.
    wall_origin: OffsetDateTime,
    origin: Instant,
    /// The system's instant at which this clock was paused.
    paused_at: Option<Instant>,
    /// Advanced by hand, minus the time spent paused.
    shift: Shift,
}

/// Kept as two sums so that it never needs a negative `Duration`.
#[derive(Default)]
struct Shift {
    advanced: Duration,
    paused: Duration,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock that reads the system's time until it is paused or advanced.
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(Manual {
            wall_origin: OffsetDateTime::now_utc(),
            origin: Instant::now(),
            paused_at: None,
            shift: Shift::default(),
        })))
    }

    /// The clock the app is given: it reads this one.
    pub fn clock(&self) -> Clock {
        Clock {
            manual: Some(self.clone()),
        }
    }

    /// Stops the clock; it moves only when advanced until `resume`.
    pub fn pause(&self) {
        let mut manual = self.lock();
        manual.paused_at.get_or_insert_with(Instant::now);
    }

    /// Lets the clock run again from where it stands.
    pub fn resume(&self) {
        let mut manual = self.lock();
        if let Some(paused_at) = manual.paused_at.take() {
            manual.shift.paused += paused_at.elapsed();
        }
    }

    pub fn advance(&self, by: Duration) {
        self.lock().shift.advanced += by;
    }

    pub fn now(&self) -> OffsetDateTime {
        let manual = self.lock();
        manual.wall_origin + (manual.instant() - manual.origin)
    }

    pub fn instant(&self) -> Instant {
        self.lock().instant()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Manual> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Manual {
    fn instant(&self) -> Instant {
        let system = self.paused_at.unwrap_or_else(Instant::now);
        // Time spent paused is never more than the time since the origin.
        system + self.shift.advanced - self.shift.paused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_clock_stands_still_until_advanced() {
        let manual = ManualClock::new();
        let clock = manual.clock();
        manual.pause();
        let (wall, instant) = (clock.now(), clock.instant());
        assert_eq!((clock.now(), clock.instant()), (wall, instant));
        manual.advance(Duration::from_secs(90));
        assert_eq!(clock.instant() - instant, Duration::from_secs(90));
        assert_eq!(clock.now() - wall, time::Duration::seconds(90));
    }

    #[test]
    fn a_resumed_clock_goes_on_from_where_it_stood() {
        let manual = ManualClock::new();
        manual.pause();
        let stood = manual.instant();
        manual.resume();
        assert!(manual.instant() >= stood);
        manual.advance(Duration::from_secs(5));
        assert!(manual.instant() >= stood + Duration::from_secs(5));
    }
}
