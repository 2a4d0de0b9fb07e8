//! How many joins each defence of the door refused, per event, added up over
//! every instance in the shared store.
//!
//! A refusal is counted in this process's memory first and sent to the store
//! once a second: refusing a flood must stay as cheap as the refusal itself
//! (the request rate limit answers without any I/O). A process that dies
//! loses at most its last second of counts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::domain::EventId;
use crate::ports::{BackendResult, RefusalCounts};

/// How often this process's counts are added to the shared ones.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Why a join was refused: one per defence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// No solved proof-of-work challenge (428).
    ChallengeRequired,
    /// A challenge that had bought a place already (409).
    ChallengeUsed,
    /// An invitation-only event, and no code (403).
    CodeRequired,
    /// A code that was not issued for the event (403).
    InvalidCode,
    /// The address took the event's limit of places in this window (429).
    TooManyPlaces,
    /// The client is over the request rate, or has guessed too many codes (429).
    RateLimited,
}

impl Refusal {
    pub const ALL: [Refusal; 6] = [
        Refusal::ChallengeRequired,
        Refusal::ChallengeUsed,
        Refusal::CodeRequired,
        Refusal::InvalidCode,
        Refusal::TooManyPlaces,
        Refusal::RateLimited,
    ];

    /// The name the stats and metrics use: the error code the join answered.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::ChallengeRequired => "challenge_required",
            Refusal::ChallengeUsed => "challenge_used",
            Refusal::CodeRequired => "code_required",
            Refusal::InvalidCode => "invalid_code",
            Refusal::TooManyPlaces => "too_many_places",
            Refusal::RateLimited => "rate_limited",
        }
    }
}

pub struct Refusals {
    store: Arc<dyn RefusalCounts>,
    /// Counted here and not yet in the store.
    pending: Mutex<HashMap<(EventId, Refusal), u64>>,
}

impl Refusals {
    pub fn new(store: Arc<dyn RefusalCounts>) -> Self {
        Self {
            store,
            pending: Mutex::default(),
        }
    }

    /// Counts a refused join of `event` (and in `/metrics` at once).
    pub fn note(&self, event: &EventId, why: Refusal) {
        metrics::counter!("anteroom_join_refusals_total", "event" => event.to_string(), "reason" => why.name())
            .increment(1);
        *self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((event.clone(), why))
            .or_default() += 1;
    }

    /// Adds this process's counts to the shared ones (run every
    /// [`FLUSH_INTERVAL`]); counts the store did not take are kept for the next time.
    pub async fn flush(&self) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let mut by_event: HashMap<EventId, Vec<(Refusal, u64)>> = HashMap::new();
        for ((event, why), count) in pending {
            by_event.entry(event).or_default().push((why, count));
        }
        for (event, counts) in by_event {
            let named: Vec<(&'static str, u64)> =
                counts.iter().map(|&(why, n)| (why.name(), n)).collect();
            if let Err(e) = self.store.add_refusals(&event, &named).await {
                tracing::warn!(event = %event, error = %e, "could not add up refusals; kept for the next time");
                let mut kept = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                for (why, count) in counts {
                    *kept.entry((event.clone(), why)).or_default() += count;
                }
            }
        }
    }

    /// Every instance's refusals of `event`'s joins, with this process's latest.
    pub async fn counts(&self, event: &EventId) -> BackendResult<HashMap<Refusal, u64>> {
        let stored = self.store.refusals(event).await?;
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Refusal::ALL
            .into_iter()
            .map(|why| {
                let shared = stored.get(why.name()).copied().unwrap_or(0);
                let here = pending.get(&(event.clone(), why)).copied().unwrap_or(0);
                (why, shared + here)
            })
            .collect())
    }
}
