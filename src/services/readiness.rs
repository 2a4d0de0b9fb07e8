//! Whether this process can serve: every backend it depends on answers.

use std::sync::Arc;

use crate::ports::{AdmissionStore, BackendError, EventRepository, LineQueue};

/// The backends a request may need, asked together.
pub struct Readiness {
    record: Arc<dyn EventRepository>,
    fast_state: Arc<dyn AdmissionStore>,
    line: Arc<dyn LineQueue>,
}

impl Readiness {
    pub fn new(
        record: Arc<dyn EventRepository>,
        fast_state: Arc<dyn AdmissionStore>,
        line: Arc<dyn LineQueue>,
    ) -> Self {
        Self {
            record,
            fast_state,
            line,
        }
    }

    /// Every backend that does not answer, with why; empty when ready.
    pub async fn failures(&self) -> Vec<BackendError> {
        let (record, fast_state, line) =
            tokio::join!(self.record.ping(), self.fast_state.ping(), self.line.ping());
        [record, fast_state, line]
            .into_iter()
            .filter_map(Result::err)
            .collect()
    }
}
