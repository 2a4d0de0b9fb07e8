//! Counts of the door: per client in fixed windows (`WindowCounts`): one hash
//! per window, `{namespace:counts:<what>}:<window>`, field = client; the hash
//! of two windows back is deleted as the next one is counted into, so they
//! never pile up. And the refusals of each event's door (`RefusalCounts`).

use std::collections::HashMap;

use async_trait::async_trait;

use super::{KeyName, RedisStore, strings};
use crate::domain::EventId;
use crate::ports::{BackendResult, RefusalCounts, WindowCounts};

impl RedisStore {
    fn window_key(&self, what: &str, window: u64) -> String {
        format!("{{{}:counts:{what}}}:{window}", self.namespace)
    }
}

#[async_trait]
impl WindowCounts for RedisStore {
    async fn add(&self, what: &str, window: u64, client: &str, delta: i64) -> BackendResult<i64> {
        let key = self.window_key(what, window);
        let count: i64 = self
            .kv
            .call(
                "HINCRBY",
                strings([key, client.to_owned(), delta.to_string()]),
            )
            .await?;
        if count == 1 && delta > 0 {
            // The first count of this client in this window: a good moment to
            // drop a finished window's counts.
            let finished = self.window_key(what, window.saturating_sub(2));
            let _: i64 = self.kv.call("DEL", strings([finished])).await?;
        }
        Ok(count)
    }
}

/// Refusals: one hash per event, `{namespace:event}:refusals`, field = refusal.
#[async_trait]
impl RefusalCounts for RedisStore {
    async fn add_refusals(
        &self,
        event: &EventId,
        counts: &[(&'static str, u64)],
    ) -> BackendResult<()> {
        let key = self.keys(event).get(KeyName::Refusals);
        for (refusal, count) in counts {
            let _: i64 = self
                .kv
                .call(
                    "HINCRBY",
                    strings([key.clone(), (*refusal).to_owned(), count.to_string()]),
                )
                .await?;
        }
        Ok(())
    }

    async fn refusals(&self, event: &EventId) -> BackendResult<HashMap<String, u64>> {
        let key = self.keys(event).get(KeyName::Refusals);
        self.kv.call("HGETALL", strings([key])).await
    }
}
