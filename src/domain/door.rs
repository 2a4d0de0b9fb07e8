//! How many failed attempts a client may make, counted in fixed windows that
//! every instance of a deployment shares.

use std::time::Duration;

/// At most `attempts` failures per client in each window of `window_seconds`;
/// past them, the client waits for the next window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimit {
    pub attempts: u64,
    pub window_seconds: u64,
}

impl FailureLimit {
    /// The window an instant (unix seconds) falls in: instances agree on it
    /// without talking to each other.
    pub fn window(&self, now_unix_seconds: i64) -> u64 {
        u64::try_from(now_unix_seconds).unwrap_or(0) / self.window_seconds.max(1)
    }

    /// `Ok` while `failures` (in the current window) leave room for another
    /// attempt; else how long until the next window opens.
    pub fn allows(&self, failures: u64, now_unix_seconds: i64) -> Result<(), Duration> {
        if failures < self.attempts {
            return Ok(());
        }
        let window = self.window_seconds.max(1);
        let into = u64::try_from(now_unix_seconds).unwrap_or(0) % window;
        Err(Duration::from_secs(window - into))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: FailureLimit = FailureLimit {
        attempts: 10,
        window_seconds: 60,
    };

    #[test]
    fn attempts_are_allowed_until_the_window_has_its_failures() {
        assert_eq!(LIMIT.allows(0, 120), Ok(()));
        assert_eq!(LIMIT.allows(9, 120), Ok(()));
        assert_eq!(LIMIT.allows(10, 120), Err(Duration::from_secs(60)));
        assert_eq!(LIMIT.allows(11, 150), Err(Duration::from_secs(30)));
        assert_eq!(LIMIT.allows(10, 179), Err(Duration::from_secs(1)));
    }

    #[test]
    fn every_instant_of_a_window_names_the_same_window() {
        assert_eq!(LIMIT.window(120), LIMIT.window(179));
        assert_eq!(LIMIT.window(180), LIMIT.window(120) + 1);
        assert_eq!(
            LIMIT.window(-5),
            0,
            "a clock before 1970 counts in the first window"
        );
    }
}
