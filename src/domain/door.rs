//! How many times a client may do something (fail to sign in, guess a code,
//! take a place in a line), counted in fixed windows that every instance of a
//! deployment shares.

use std::time::Duration;

/// At most `per_window` times per client in each window of `window_seconds`;
/// past them, the client waits for the next window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimit {
    pub per_window: u64,
    pub window_seconds: u64,
}

impl WindowLimit {
    /// The window an instant (unix seconds) falls in: instances agree on it
    /// without talking to each other.
    pub fn window(&self, now_unix_seconds: i64) -> u64 {
        u64::try_from(now_unix_seconds).unwrap_or(0) / self.window_seconds.max(1)
    }

    /// `Ok` while `done` (in the current window) leaves room for one more;
    /// else how long until the next window opens.
    pub fn allows(&self, done: u64, now_unix_seconds: i64) -> Result<(), Duration> {
        if done < self.per_window {
            return Ok(());
        }
        Err(self.until_next_window(now_unix_seconds))
    }

    /// How long until the window after the one `now_unix_seconds` falls in.
    pub fn until_next_window(&self, now_unix_seconds: i64) -> Duration {
        let window = self.window_seconds.max(1);
        let into = u64::try_from(now_unix_seconds).unwrap_or(0) % window;
        Duration::from_secs(window - into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: WindowLimit = WindowLimit {
        per_window: 10,
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
