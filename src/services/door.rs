//! The operator's door: failed admin sign-ins are limited per client address,
//! across every instance, so that the admin token cannot be guessed at speed.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::door::FailureLimit;
use crate::ports::WindowCounts;

/// Ten wrong admin tokens per client address per minute.
pub const ADMIN_FAILURES: FailureLimit = FailureLimit {
    attempts: 10,
    window_seconds: 60,
};
const WHAT: &str = "admin_failures";

pub struct AdminDoor {
    counts: Arc<dyn WindowCounts>,
    limit: FailureLimit,
}

impl AdminDoor {
    pub fn new(counts: Arc<dyn WindowCounts>, limit: FailureLimit) -> Self {
        Self { counts, limit }
    }

    /// Counts an attempt of `client` before its token is compared, so that
    /// attempts sent at once are all counted: `Ok` while the window has room
    /// for it, else how long until the next window. An outage of the shared
    /// store lets the attempt through (logged): operators must not be locked
    /// out of a sale by it.
    pub async fn attempt(&self, client: IpAddr, now: OffsetDateTime) -> Result<(), Duration> {
        let now = now.unix_timestamp();
        let window = self.limit.window(now);
        match self.counts.add(WHAT, window, &client.to_string(), 1).await {
            // The count includes this attempt: the failures before it decide.
            Ok(attempts) => self
                .limit
                .allows(u64::try_from(attempts).unwrap_or(0).saturating_sub(1), now),
            Err(e) => {
                tracing::warn!(error = %e, "an admin sign-in attempt could not be counted; not limited");
                Ok(())
            }
        }
    }

    /// The attempt's token was right: it does not count as a failure.
    pub async fn succeeded(&self, client: IpAddr, now: OffsetDateTime) {
        let window = self.limit.window(now.unix_timestamp());
        if let Err(e) = self.counts.add(WHAT, window, &client.to_string(), -1).await {
            tracing::warn!(error = %e, "a right admin token could not be uncounted");
        }
    }
}
