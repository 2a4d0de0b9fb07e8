//! The traits the core needs from the outside world. Only `adapters/` implements them.

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::{AdmissionPatch, Event, EventId, LogEntry, TokenKey, TokenKind};

/// A backend that did not answer or failed: the request can be retried later.
#[derive(Debug, thiserror::Error)]
#[error("{backend} is unavailable: {detail}")]
pub struct BackendError {
    pub backend: &'static str,
    pub detail: String,
}

impl BackendError {
    pub fn new(backend: &'static str, detail: impl std::fmt::Display) -> Self {
        Self {
            backend,
            detail: detail.to_string(),
        }
    }
}

pub type BackendResult<T> = Result<T, BackendError>;

#[derive(Debug, thiserror::Error)]
pub enum InsertEventError {
    #[error("an event with this id exists")]
    Exists,
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The durable record of events and of the deployment's generated settings.
#[async_trait]
pub trait EventRepository: Send + Sync {
    async fn insert_event(&self, event: &Event) -> Result<(), InsertEventError>;
    async fn update_event(
        &self,
        id: &EventId,
        patch: AdmissionPatch,
        paused: Option<bool>,
    ) -> BackendResult<Option<Event>>;
    async fn list_events(&self) -> BackendResult<Vec<Event>>;
    /// The stored value of a deployment setting, storing `candidate` first if there is none.
    async fn setting_or_insert(&self, name: &str, candidate: &str) -> BackendResult<String>;
    async fn ping(&self) -> BackendResult<()>;
}

/// One person's place in the durable line, as published to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineMessage {
    pub key: TokenKey,
    pub token_id: Uuid,
}

impl LineMessage {
    pub fn encode(&self) -> String {
        format!("{}:{}", self.key, self.token_id)
    }

    pub fn decode(raw: &[u8]) -> Option<Self> {
        let (key, id) = std::str::from_utf8(raw).ok()?.split_once(':')?;
        Some(Self {
            key: TokenKey::parse(key)?,
            token_id: Uuid::parse_str(id).ok()?,
        })
    }
}

#[derive(Debug)]
pub struct Delivered {
    pub message: LineMessage,
    pub tag: u64,
}

/// A consumer on an event's line; only the single active one receives deliveries.
#[async_trait]
pub trait LineConsumer: Send {
    /// What arrived within `wait`, possibly nothing. Malformed messages are dropped.
    async fn receive(&mut self, wait: Duration, max: usize) -> BackendResult<Vec<Delivered>>;
    /// Acknowledges deliveries whose admission state is stored.
    async fn ack(&mut self, tags: &[u64]) -> BackendResult<()>;
    /// Leaves the line's consumers, so that a standby takes over at once; what
    /// was not acknowledged returns to the line.
    async fn close(self: Box<Self>);
}

/// The durable FIFO line of each event.
#[async_trait]
pub trait LineQueue: Send + Sync {
    /// Returns once the broker has confirmed every message (they are durable).
    async fn publish(&self, event: &EventId, messages: &[LineMessage]) -> BackendResult<()>;
    async fn consume(&self, event: &EventId, prefetch: u16)
    -> BackendResult<Box<dyn LineConsumer>>;
    async fn ping(&self) -> BackendResult<()>;
}

/// Sequence numbers handed to one group of joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub kind: TokenKind,
    /// The first new sequence number; new joins take consecutive ones.
    pub first_seq: u64,
    /// The pre-queue's final size, once it is frozen.
    pub prequeue: Option<u64>,
    /// For each request, the line entry its visitor id already holds.
    pub existing: Vec<Option<LineMessage>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveOutcome {
    /// Was waiting and is now out of the line.
    Left,
    /// Held a pass and ended it early.
    PassEnded,
    /// Was already out of the line.
    AlreadyGone,
}

/// One place presented to the admission step, in rank order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub rank: u64,
    /// `None` for a rank that holds nobody (a join that failed or never arrived).
    pub key: Option<TokenKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmitRequest {
    pub now_ms: i64,
    pub pass_ms: i64,
    pub max_active: u64,
    /// Tokens last seen before this (unix seconds) are abandoned.
    pub seen_cutoff_s: i64,
    /// Admit at most this many in this step (the rate limit's share).
    pub max_admit: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmitOutcome {
    /// Every rank up to this one is consumed.
    pub consumed: u64,
    pub admitted: u64,
    /// Room left under `max_active`.
    pub room: u64,
}

/// What the store knows of a rank the admission worker has not received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapProbe {
    /// Nobody has taken this sequence number yet: the line ends here.
    NotAllocated,
    /// The join failed before its confirm: nobody holds this place.
    Failed,
    /// Allocated and not known to have failed: its message may still arrive.
    Pending,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineCounters {
    pub joined: u64,
    pub admitted: u64,
    pub abandoned: u64,
    pub left_waiting: u64,
    pub active: u64,
}

impl LineCounters {
    pub fn waiting(&self) -> u64 {
        self.joined
            .saturating_sub(self.admitted + self.abandoned + self.left_waiting)
    }
}

/// Fast shared state of each line: sequence numbers, admission, the event log.
#[async_trait]
pub trait AdmissionStore: Send + Sync {
    /// Allocates sequence numbers for a group of joins; `open` once the sale is open.
    async fn allocate(
        &self,
        event: &EventId,
        open: bool,
        visitors: &[Option<&str>],
    ) -> BackendResult<Allocation>;
    /// Records confirmed joins. For each, the entry that won its visitor id if another did.
    async fn commit_joins(
        &self,
        event: &EventId,
        joins: &[(LineMessage, Option<&str>)],
        now_s: i64,
    ) -> BackendResult<Vec<Option<LineMessage>>>;
    /// Marks joins whose publish failed, so that admission skips their places.
    async fn abort_joins(&self, event: &EventId, keys: &[TokenKey]) -> BackendResult<()>;
    async fn heartbeat(&self, event: &EventId, keys: &[TokenKey], now_s: i64) -> BackendResult<()>;
    async fn leave(
        &self,
        event: &EventId,
        key: TokenKey,
        rank: Option<u64>,
    ) -> BackendResult<LeaveOutcome>;
    async fn read_log(&self, event: &EventId, from: u64) -> BackendResult<Vec<LogEntry>>;
    async fn read_draw(&self, event: &EventId) -> BackendResult<Option<Vec<u32>>>;
    async fn counters(&self, event: &EventId, now_ms: i64) -> BackendResult<LineCounters>;

    // The admission worker's steps.
    /// Closes the pre-queue (if not yet closed); returns its size and the keys that failed.
    async fn freeze_prequeue(&self, event: &EventId) -> BackendResult<(u64, Vec<TokenKey>)>;
    /// Publishes the draw unless one exists; returns the draw in force.
    async fn publish_draw(&self, event: &EventId, draw: &[u32]) -> BackendResult<Vec<u32>>;
    async fn consumed(&self, event: &EventId) -> BackendResult<u64>;
    async fn probe_gap(&self, event: &EventId, key: TokenKey) -> BackendResult<GapProbe>;
    /// Consumes `candidates` (contiguous from the watermark) atomically: skips the
    /// departed and abandoned, admits the rest until `max_active` is reached.
    async fn admit(
        &self,
        event: &EventId,
        candidates: &[Candidate],
        request: AdmitRequest,
    ) -> BackendResult<AdmitOutcome>;
    async fn ping(&self) -> BackendResult<()>;
}
