//! Per-client counts in fixed windows (`WindowCounts`): one hash per window,
//! `{namespace:counts:<what>}:<window>`, field = client; the hash of two windows
//! back is deleted as the next one is counted into, so they never pile up.

use async_trait::async_trait;

use super::{RedisStore, strings};
use crate::ports::{BackendResult, WindowCounts};

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
