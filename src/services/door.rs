//! Doors that count a client's failures across every instance: wrong admin
//! tokens (so that the admin token cannot be guessed at speed) and unknown
//! invitation codes (so that codes cannot be guessed by brute force).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::door::WindowLimit;
use crate::ports::WindowCounts;

/// Ten wrong admin tokens per client address per minute.
pub const ADMIN_FAILURES: WindowLimit = WindowLimit {
    per_window: 10,
    window_seconds: 60,
};
/// Ten unknown invitation codes per client address per minute: plenty for a
/// fan who mistypes, and a few thousand guesses a day for a farm's address.
pub const CODE_FAILURES: WindowLimit = WindowLimit {
    per_window: 10,
    window_seconds: 60,
};

/// Which failures a door counts (the shared store's name for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failures {
    AdminToken,
    InviteCode,
}

impl Failures {
    fn name(self) -> &'static str {
        match self {
            Failures::AdminToken => "admin_failures",
            Failures::InviteCode => "code_failures",
        }
    }
}

pub struct FailureDoor {
    counts: Arc<dyn WindowCounts>,
    limit: WindowLimit,
    what: Failures,
}

impl FailureDoor {
    pub fn new(counts: Arc<dyn WindowCounts>, limit: WindowLimit, what: Failures) -> Self {
        Self {
            counts,
            limit,
            what,
        }
    }

    /// Counts an attempt of `client` before its secret is checked, so that
    /// attempts sent at once are all counted: `Ok` while the window has room
    /// for it, else how long until the next window. An outage of the shared
    /// store lets the attempt through (logged): nobody must be locked out of a
    /// sale by it.
    pub async fn attempt(&self, client: IpAddr, now: OffsetDateTime) -> Result<(), Duration> {
        let now = now.unix_timestamp();
        let window = self.limit.window(now);
        match self
            .counts
            .add(self.what.name(), window, &client.to_string(), 1)
            .await
        {
            // The count includes this attempt: the failures before it decide.
            Ok(attempts) => self
                .limit
                .allows(u64::try_from(attempts).unwrap_or(0).saturating_sub(1), now),
            Err(e) => {
                tracing::warn!(error = %e, what = ?self.what, "an attempt could not be counted; not limited");
                Ok(())
            }
        }
    }

    /// The attempt's secret was right: it does not count as a failure.
    pub async fn succeeded(&self, client: IpAddr, now: OffsetDateTime) {
        let window = self.limit.window(now.unix_timestamp());
        if let Err(e) = self
            .counts
            .add(self.what.name(), window, &client.to_string(), -1)
            .await
        {
            tracing::warn!(error = %e, what = ?self.what, "a right attempt could not be uncounted");
        }
    }
}
