//! Invitation codes: issued by the operator (generated or imported), shown
//! once, kept by their keyed hash only, and checked at the door of an
//! invitation-only event.

use std::collections::HashSet;
use std::sync::Arc;

use crate::domain::codes::{CODE_RANDOM_BYTES, InviteCode};
use crate::domain::{CodeHash, CodeHasher, EventId};
use crate::ports::{BackendError, BackendResult, CodeCounts, CodeRecords};

/// A code a join brought, as the record knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownCode {
    pub hash: CodeHash,
    /// It has taken a place before.
    pub used: bool,
}

pub struct Invitations {
    records: Arc<dyn CodeRecords>,
    hasher: CodeHasher,
}

impl Invitations {
    pub fn new(records: Arc<dyn CodeRecords>, hasher: CodeHasher) -> Self {
        Self { records, hasher }
    }

    /// Generates `count` new codes for `event` and records their hashes; the
    /// codes themselves are returned, once. The hashing runs off the async
    /// threads (a million codes take a second of a core).
    pub async fn generate(&self, event: &EventId, count: u64) -> BackendResult<Vec<String>> {
        let (hasher, id) = (self.hasher.clone(), event.clone());
        let (codes, hashes) = tokio::task::spawn_blocking(move || generate(&hasher, &id, count))
            .await
            .map_err(|e| BackendError::bug_caused_by("generating codes panicked", e))??;
        let inserted = self.records.insert_codes(event, &hashes).await?;
        if inserted != hashes.len() as u64 {
            // 80 random bits per code: a collision with an issued code is not
            // expected in the life of the universe; if it happens, say so.
            return Err(BackendError::bug(format!(
                "{} of {} generated codes were issued already",
                hashes.len() as u64 - inserted,
                hashes.len()
            )));
        }
        Ok(codes)
    }

    /// Records an operator's codes for `event`; codes issued already are not
    /// counted twice. Returns how many were new.
    pub async fn import(&self, event: &EventId, codes: &[InviteCode]) -> BackendResult<u64> {
        let hashes: Vec<CodeHash> = codes.iter().map(|c| self.hasher.hash(event, c)).collect();
        self.records.insert_codes(event, &hashes).await
    }

    /// The code, if it was issued for `event`. The record is looked up by the
    /// code's keyed hash: no stored secret is compared with what the client sent.
    pub async fn find(
        &self,
        event: &EventId,
        code: &InviteCode,
    ) -> BackendResult<Option<KnownCode>> {
        let hash = self.hasher.hash(event, code);
        let used = self.records.code_used(event, &hash).await?;
        Ok(used.map(|used| KnownCode { hash, used }))
    }

    /// Notes that `code` has taken a place (for the counts).
    pub async fn used(&self, event: &EventId, code: &KnownCode) -> BackendResult<()> {
        if code.used {
            return Ok(());
        }
        self.records.mark_code_used(event, &code.hash).await
    }

    pub async fn counts(&self, event: &EventId) -> BackendResult<CodeCounts> {
        self.records.code_counts(event).await
    }
}

/// `count` distinct codes, and their hashes in order: written in order, the
/// record's index is filled page after page instead of all over (a million
/// random hashes took several times as long).
fn generate(
    hasher: &CodeHasher,
    event: &EventId,
    count: u64,
) -> BackendResult<(Vec<String>, Vec<CodeHash>)> {
    let count =
        usize::try_from(count).map_err(|e| BackendError::bug_caused_by("a code count", e))?;
    let mut codes = Vec::with_capacity(count);
    let mut hashes = Vec::with_capacity(count);
    let mut seen = HashSet::with_capacity(count);
    let mut random = vec![0u8; count * CODE_RANDOM_BYTES];
    while codes.len() < count {
        let missing = count - codes.len();
        random.truncate(missing * CODE_RANDOM_BYTES);
        getrandom::fill(&mut random).map_err(|e| BackendError::unavailable("random", e))?;
        for chunk in random.chunks_exact(CODE_RANDOM_BYTES) {
            let mut bytes = [0u8; CODE_RANDOM_BYTES];
            bytes.copy_from_slice(chunk);
            let code = InviteCode::generate(bytes);
            let parsed = InviteCode::parse(&code, "code")
                .map_err(|e| BackendError::bug_caused_by("a generated code does not parse", e))?;
            let hash = hasher.hash(event, &parsed);
            if seen.insert(hash.clone()) {
                codes.push(code);
                hashes.push(hash);
            }
        }
    }
    hashes.sort_unstable();
    Ok((codes, hashes))
}
