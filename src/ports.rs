//! The traits the core needs from the outside world. Only `adapters/` implements them,
//! except the clock, which the services read time from.

mod clock;

pub use clock::{Clock, ManualClock};

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use std::collections::HashMap;

use crate::domain::door::WindowLimit;
use crate::domain::{
    CodeHash, Event, EventId, EventPatch, Holder, LogEntry, LogPosition, Order, OrderStatus,
    Ticket, TokenKey, TokenKind,
};

/// Why a backend operation did not succeed, as its caller must act on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// A server is out of reach, too slow, or refusing for now: the request
    /// can be retried shortly (`503` with `Retry-After`).
    #[error(transparent)]
    Unavailable(#[from] Outage),
    /// Something that cannot happen if Anteroom is right: a reply or a row no
    /// version of it writes, a task that panicked. Retrying will not help (`500`, logged).
    #[error(transparent)]
    Bug(#[from] Bug),
    /// The admission store no longer has this line: nothing may move in it
    /// until it is restored from the durable record.
    #[error(transparent)]
    LineLost(#[from] LineLost),
}

impl BackendError {
    /// `backend` is out of reach or refused: `cause` is kept whole for the logs.
    pub fn unavailable(backend: &'static str, cause: impl Into<AnyError>) -> Self {
        Outage {
            backend,
            cause: shared(cause),
        }
        .into()
    }

    pub fn bug(what: impl Into<String>) -> Self {
        Bug {
            what: what.into(),
            cause: None,
        }
        .into()
    }

    pub fn bug_caused_by(what: impl Into<String>, cause: impl Into<AnyError>) -> Self {
        Bug {
            what: what.into(),
            cause: Some(shared(cause)),
        }
        .into()
    }
}

/// A server that did not answer or refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{backend} is unavailable: {}", Chain(&**.cause))]
pub struct Outage {
    pub backend: &'static str,
    #[source]
    cause: Cause,
}

/// A broken invariant, with what broke it when there is an underlying error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}{}", .cause.as_deref().map(|c| format!(": {}", Chain(c))).unwrap_or_default())]
pub struct Bug {
    what: String,
    #[source]
    cause: Option<Cause>,
}

/// An error and every `source()` under it: what a log line needs. (The
/// cause is still kept as an error, for code that matches on it.)
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        Ok(())
    }
}

/// The admission store lost an event's line (it restarted empty, or a
/// failover lost it); the restore logic matches on this.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the line of {event} was lost and is being restored")]
pub struct LineLost {
    pub event: EventId,
}

/// An underlying error, kept whole (its `source()` chain too) and shared,
/// since one failed group commit answers every join of the group.
pub type Cause = std::sync::Arc<dyn std::error::Error + Send + Sync>;

/// Any error a library or a message can be turned into.
pub type AnyError = Box<dyn std::error::Error + Send + Sync>;

fn shared(e: impl Into<AnyError>) -> Cause {
    Cause::from(e.into())
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
    async fn update_event(&self, id: &EventId, patch: EventPatch) -> BackendResult<Option<Event>>;
    async fn list_events(&self) -> BackendResult<Vec<Event>>;
    /// The stored value of a deployment setting, storing `candidate` first if there is none.
    async fn setting_or_insert(&self, name: &str, candidate: &str) -> BackendResult<String>;
    async fn ping(&self) -> BackendResult<()>;
}

/// The public keys that have signed passes, shared by every instance: each
/// instance notes its signing key while it signs, and trusts (and publishes in
/// the JWKS) every key that signed recently enough for one of its passes to
/// be still in use (see `services::pass_keys`).
#[async_trait]
pub trait PassKeyRecords: Send + Sync {
    /// Notes that the key `kid` (public JWK `jwk`, as JSON) signs passes as of
    /// `now_ms`; a later note never moves the time back.
    async fn note_signing(&self, kid: &str, jwk: &str, now_ms: i64) -> BackendResult<()>;
    /// The public JWKs (JSON) of the keys noted signing at or after `since_ms`.
    async fn keys_signing_since(&self, since_ms: i64) -> BackendResult<Vec<String>>;
}

/// The durable part of an event's line: what the admission store's fast state
/// is restored from when that store loses it (the people waiting are in the queue).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineRecord {
    /// Sequence numbers are handed out only below these, so a restored line
    /// continues above every token ever issued.
    pub reserved: Reserved,
    /// The pre-queue's size, once it closed.
    pub prequeue: Option<u64>,
    /// The pre-queue draw, once made.
    pub draw: Option<Vec<u32>>,
}

/// Places reserved for each kind of token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserved {
    pub regular: u64,
    pub prequeue: u64,
}

impl Reserved {
    pub fn of(&self, kind: TokenKind) -> u64 {
        match kind {
            TokenKind::Regular => self.regular,
            TokenKind::PreQueue => self.prequeue,
        }
    }
}

/// The durable record of each line (see [`LineRecord`]).
#[async_trait]
pub trait LineRecords: Send + Sync {
    /// Records a new line's first reservations; `false` if the line has a record already.
    async fn open_line(&self, event: &EventId, reserved: Reserved) -> BackendResult<bool>;
    /// Raises the reservation of `kind` to at least `at_least`; returns it.
    async fn reserve(&self, event: &EventId, kind: TokenKind, at_least: u64) -> BackendResult<u64>;
    /// Records the pre-queue's size; the first recorded stays.
    async fn record_prequeue(&self, event: &EventId, size: u64) -> BackendResult<()>;
    /// Records the draw; the first recorded stays. Returns the draw in force.
    async fn record_draw(&self, event: &EventId, draw: &[u32]) -> BackendResult<Vec<u32>>;
    async fn line_record(&self, event: &EventId) -> BackendResult<LineRecord>;
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

/// A message that an expiry is due: the delay of an order's hold has run out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryDue {
    pub event: EventId,
    pub order: Uuid,
}

/// Messages that travel through a queue.
pub trait QueueMessage: Sized + Send + 'static {
    fn encode(&self) -> String;
    fn decode(raw: &[u8]) -> Option<Self>;
}

/// The joins of one group commit, published as one message: one broker write
/// and one confirm for the whole group, whatever its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineBatch(pub Vec<LineMessage>);

impl QueueMessage for LineBatch {
    fn encode(&self) -> String {
        self.0
            .iter()
            .map(LineMessage::encode)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// All the joins or none: a batch with one malformed join is malformed.
    fn decode(raw: &[u8]) -> Option<Self> {
        let joins: Option<Vec<LineMessage>> =
            raw.split(|&b| b == b',').map(LineMessage::decode).collect();
        joins.filter(|j| !j.is_empty()).map(Self)
    }
}

/// The expiry timers of one group commit of an event's holds, published as
/// one message: one broker write and one confirm for the whole group. A timer
/// of one order (`event:order`, as timers were published before groups) is a
/// group of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryBatch {
    pub event: EventId,
    pub orders: Vec<Uuid>,
}

impl ExpiryBatch {
    /// The expiries this message makes due.
    pub fn dues(&self) -> impl Iterator<Item = ExpiryDue> + '_ {
        self.orders.iter().map(|&order| ExpiryDue {
            event: self.event.clone(),
            order,
        })
    }
}

impl QueueMessage for ExpiryBatch {
    fn encode(&self) -> String {
        let mut encoded = format!("{}:", self.event);
        for (i, order) in self.orders.iter().enumerate() {
            if i > 0 {
                encoded.push(',');
            }
            encoded.push_str(&order.to_string());
        }
        encoded
    }

    /// All the orders or none: a batch with one malformed order is malformed.
    fn decode(raw: &[u8]) -> Option<Self> {
        let (event, orders) = std::str::from_utf8(raw).ok()?.split_once(':')?;
        let orders: Option<Vec<Uuid>> = orders
            .split(',')
            .map(|order| Uuid::parse_str(order).ok())
            .collect();
        Some(Self {
            event: EventId::parse(event).ok()?,
            orders: orders?,
        })
    }
}

#[derive(Debug)]
pub struct Delivered<M> {
    pub message: M,
    pub tag: u64,
}

/// A consumer on a queue. On an event's line only the single active one receives deliveries.
#[async_trait]
pub trait Consumer<M>: Send {
    /// What arrived within `wait`, possibly nothing. Malformed messages are dropped.
    async fn receive(&mut self, wait: Duration, max: usize) -> BackendResult<Vec<Delivered<M>>>;
    /// Acknowledges deliveries whose outcome is stored.
    async fn ack(&mut self, tags: &[u64]) -> BackendResult<()>;
    /// Returns a delivery to the queue, to be tried again.
    async fn retry(&mut self, tag: u64) -> BackendResult<()>;
    /// Leaves the line's consumers, so that a standby takes over at once; what
    /// was not acknowledged returns to the line.
    async fn close(self: Box<Self>);
}

/// The durable FIFO line of each event.
#[async_trait]
pub trait LineQueue: Send + Sync {
    /// Publishes `messages` as one [`LineBatch`]; returns once the broker has
    /// confirmed it (they are durable).
    async fn publish(&self, event: &EventId, messages: &[LineMessage]) -> BackendResult<()>;
    async fn consume(&self, event: &EventId, prefetch: u16) -> BackendResult<Box<LineConsumer>>;
    async fn ping(&self) -> BackendResult<()>;
}

pub type LineConsumer = dyn Consumer<LineBatch>;
pub type ExpiryConsumer = dyn Consumer<ExpiryBatch>;

/// Durable timers: each hold's expiry is due `hold_seconds` after the hold.
#[async_trait]
pub trait DelayQueue: Send + Sync {
    /// Schedules the expiry of `orders` of `event` as one [`ExpiryBatch`];
    /// returns once the broker has confirmed it (the timers survive restarts).
    async fn schedule_expiries(
        &self,
        event: &EventId,
        orders: &[Uuid],
        after: Duration,
    ) -> BackendResult<()>;
    /// Schedules one order's expiry; returns once it is confirmed.
    async fn schedule_expiry(&self, due: &ExpiryDue, after: Duration) -> BackendResult<()> {
        self.schedule_expiries(&due.event, &[due.order], after)
            .await
    }
    /// Competing consumers of the expiries that are due.
    async fn expiries(&self, prefetch: u16) -> BackendResult<Box<ExpiryConsumer>>;
}

/// What became of a request for sequence numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocateOutcome {
    Allocated(Allocation),
    /// The group would pass the reservation of `kind`: it must be raised to
    /// at least `at_least` in the durable record first. Nothing was allocated.
    Reserve {
        kind: TokenKind,
        at_least: u64,
    },
}

/// Sequence numbers handed to one group of joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub kind: TokenKind,
    /// The first new sequence number; new joins take consecutive ones.
    pub first_seq: u64,
    /// The pre-queue's final size, once it is frozen.
    pub prequeue: Option<u64>,
    /// For each request, what its visitor id already held.
    pub existing: Vec<VisitorPlace>,
}

/// The place a join's visitor id already names, as the allocation found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitorPlace {
    /// No place (or no visitor id): the join gets a new one.
    None,
    /// A live place (waiting, pre-queued, or admitted with a valid pass): the
    /// join answers with it.
    Live(LineMessage),
    /// A place that ended (left, abandoned, its pass ran out or was ended): the
    /// join gets a new place, which takes over the visitor id only if the id
    /// still names this one when the join is committed.
    Ended(LineMessage),
    /// No live place, and the join's ticket does not buy a new one.
    Refused(DoorRefusal),
}

/// Why the door refused a join a new place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoorRefusal {
    /// The event asks for a solved challenge and the join brought none.
    ChallengeRequired,
    /// The challenge has already bought a place.
    ChallengeUsed,
    /// The client's address has taken the event's limit of new places in
    /// this window.
    TooManyPlaces,
}

/// One join of a group to allocate: its visitor id, the token id a new place
/// would get, and what it brings to the door.
#[derive(Debug, Clone, Copy)]
pub struct AllocateRequest<'a> {
    pub visitor: Option<&'a str>,
    pub token_id: Uuid,
    pub ticket: &'a Ticket,
    /// The client's address, on an event that limits places per address.
    pub address: Option<&'a str>,
}

/// A join whose place was allocated but whose publish failed.
#[derive(Debug, Clone, Copy)]
pub struct AbortedJoin<'a> {
    pub key: TokenKey,
    pub request: &'a AllocateRequest<'a>,
}

/// A confirmed join to record: its entry, its visitor id, and the ended place it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinCommit<'a> {
    pub message: LineMessage,
    pub visitor: Option<&'a str>,
    pub replaces: Option<LineMessage>,
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

/// What a leave did, and how far into the line's log a view must have read
/// to know it (`None` while the line is lost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaving {
    pub outcome: LeaveOutcome,
    pub logged_at: Option<LogPosition>,
}

/// One place presented to the admission step, in rank order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidate {
    /// A join that arrived: admitted, or skipped if it left or was abandoned.
    Arrived { rank: u64, key: TokenKey },
    /// A place whose join failed or never arrived; its token (if any) departs.
    Absent { rank: u64, key: Option<TokenKey> },
}

impl Candidate {
    pub fn rank(&self) -> u64 {
        match *self {
            Candidate::Arrived { rank, .. } | Candidate::Absent { rank, .. } => rank,
        }
    }
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
    /// Once this many seats are sold, nobody more is admitted.
    pub seats_total: u64,
    /// The worker's own watermark: if the store's is lower, the store lost it.
    pub consumed_floor: u64,
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
    /// Allocated (or last seen) at `since_s` and not known to have failed:
    /// its message may still arrive.
    Pending { since_s: i64 },
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

/// One read of an event's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRead {
    /// Changes when the line is restored: the log starts again from its first entry.
    pub epoch: String,
    pub entries: Vec<LogEntry>,
    /// The store lost the line: it must be restored (see [`LineRecord`]).
    pub lost: bool,
    /// The line was restored once: its log starts at the restore.
    pub restored: bool,
}

/// How a line is put in the admission store: opened when its event is created,
/// or restored after the store lost it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineStart {
    Open {
        reserved: Reserved,
    },
    Restore {
        record: LineRecord,
        /// Passes that may still be valid, as `(expires_at_ms, how many)`,
        /// soonest first: they count under `max_active` until they expire,
        /// those the store kept counting for the earliest of them.
        passes: Vec<(i64, u64)>,
        /// Passes seen ended early: they stay ended, whatever the store kept.
        ended: Vec<TokenKey>,
    },
}

/// Fast shared state of each line: sequence numbers, admission, the event log.
/// Every operation that moves the line fails with [`BackendError::LineLost`]
/// once the store has lost it, until it is restored.
#[async_trait]
pub trait AdmissionStore: Send + Sync {
    /// Puts the line in the store unless it is there; `true` if it was not.
    async fn start_line(
        &self,
        event: &EventId,
        start: &LineStart,
        now_ms: i64,
    ) -> BackendResult<bool>;
    /// Raises the reservation the store allocates within (never lowers it).
    async fn extend_reservation(
        &self,
        event: &EventId,
        kind: TokenKind,
        reserved: u64,
    ) -> BackendResult<()>;
    /// Allocates sequence numbers for a group of joins (`open` once the sale
    /// is open), and marks the new places, and the live places joined again,
    /// seen at `now_ms`. A visitor id whose place ended gets a new place. A
    /// join without a live place takes a new one only if its ticket allows:
    /// a solved challenge is marked used (until it expires) with the place it
    /// buys, atomically, so that it buys one place across every instance;
    /// and, under an `address_limit`, only while its address has taken fewer
    /// new places than the limit in the current window.
    async fn allocate(
        &self,
        event: &EventId,
        open: bool,
        requests: &[AllocateRequest<'_>],
        address_limit: Option<WindowLimit>,
        now_ms: i64,
    ) -> BackendResult<AllocateOutcome>;
    /// Records confirmed joins. For each, the entry that won its visitor id if another did.
    async fn commit_joins(
        &self,
        event: &EventId,
        joins: &[JoinCommit<'_>],
    ) -> BackendResult<Vec<Option<LineMessage>>>;
    /// Marks joins whose publish failed, so that admission skips their places,
    /// and gives back what they took at the door (`allocate` with the same
    /// `address_limit` and `now_ms`): the challenge each used and its place in
    /// the address window, so that a retry is not refused for them.
    async fn abort_joins(
        &self,
        event: &EventId,
        joins: &[AbortedJoin<'_>],
        address_limit: Option<WindowLimit>,
        now_ms: i64,
    ) -> BackendResult<()>;
    async fn heartbeat(&self, event: &EventId, keys: &[TokenKey], now_s: i64) -> BackendResult<()>;
    /// Takes `key` out of the line, or ends its pass; `pass`: the pass this
    /// process saw issued to it, ended too if it dates from before a restore.
    async fn leave(
        &self,
        event: &EventId,
        key: TokenKey,
        rank: Option<u64>,
        pass: Option<PassTerms>,
        now_ms: i64,
    ) -> BackendResult<Leaving>;
    async fn read_log(&self, event: &EventId, from: u64) -> BackendResult<LogRead>;
    async fn read_draw(&self, event: &EventId) -> BackendResult<Option<Vec<u32>>>;
    async fn counters(&self, event: &EventId, now_ms: i64) -> BackendResult<LineCounters>;

    // The admission worker's steps.
    /// Closes the pre-queue (if not yet closed); returns its size and the keys that failed.
    async fn freeze_prequeue(&self, event: &EventId) -> BackendResult<(u64, Vec<TokenKey>)>;
    /// The pre-queue's joins as allocated: sequence number and token id.
    async fn prequeue_entrants(&self, event: &EventId) -> BackendResult<Vec<(u64, Uuid)>>;
    /// Publishes the draw unless one exists; returns the draw in force.
    async fn publish_draw(&self, event: &EventId, draw: &[u32]) -> BackendResult<Vec<u32>>;
    async fn consumed(&self, event: &EventId) -> BackendResult<u64>;
    /// What is known of each place whose join the admission worker has not received.
    async fn probe_gaps(&self, event: &EventId, keys: &[TokenKey]) -> BackendResult<Vec<GapProbe>>;
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

pub use crate::domain::SeatState;

/// The seat state at `version`, as the store answers a reader that has it at an
/// earlier version (`SeatStore::seats_since`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatsAt {
    /// The seats whose state changed after the reader's version, as they are now.
    Changed {
        version: u64,
        seats: Vec<(String, SeatState)>,
    },
    /// Every taken seat (free ones are absent).
    Taken {
        version: u64,
        seats: Vec<(String, SeatState)>,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeatCounts {
    pub held: u64,
    pub sold: u64,
}

/// The pass a hold is made with, as the store checks it: valid while admitted
/// in the store, or, if the store lost the line, when issued before it was restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassTerms {
    pub key: TokenKey,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
}

impl PassTerms {
    /// A pass lasts the event's `pass_seconds` from its admission.
    pub fn new(key: TokenKey, expires_at_ms: i64, pass_seconds: u32) -> Self {
        Self {
            key,
            issued_at_ms: expires_at_ms - i64::from(pass_seconds) * 1_000,
            expires_at_ms,
        }
    }
}

/// One order's seats to hold, with what the store checks them against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldAsk {
    pub order: Uuid,
    pub holder: Holder,
    pub pass: PassTerms,
    pub seats: Vec<String>,
    pub max_per_holder: u32,
    /// When the hold was asked for (unix milliseconds): the pass must be valid then.
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldOutcome {
    Held(SeatCounts),
    /// These of the requested seats are not free; nothing was held.
    Taken(Vec<String>),
    /// The holder would own more than its limit; nothing was held.
    LimitExceeded,
    /// The pass expired or was ended; nothing was held.
    PassEnded,
    /// The event's seat state is missing and must be rebuilt first.
    NeedsRebuild,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SellOutcome {
    Sold,
    /// A seat is no longer held by this order: the fast store disagrees with the record.
    Lost,
    NeedsRebuild,
}

/// A hold as the fast store recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldOrder {
    pub order: Uuid,
    pub holder: Holder,
    pub seats: Vec<String>,
}

/// A seat taken by a live order, as the durable record has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSeat {
    pub seat: String,
    pub order: Uuid,
    pub holder: Holder,
    pub sold: bool,
}

/// Fast seat state of each event: holds and sales, checked and changed atomically.
#[async_trait]
pub trait SeatStore: Send + Sync {
    /// Holds, for each ask in turn, all its seats or none, if its pass is
    /// still valid and its holder stays within its limit; one atomic step for
    /// the whole group, in which an ask finds the seats of the asks before it
    /// taken. One outcome per ask, in order.
    async fn hold_group(
        &self,
        event: &EventId,
        asks: &[HoldAsk],
    ) -> BackendResult<Vec<HoldOutcome>>;
    /// Holds all of one ask's seats or none (a group of one).
    async fn hold(&self, event: &EventId, ask: &HoldAsk) -> BackendResult<HoldOutcome> {
        let mut outcomes = self.hold_group(event, std::slice::from_ref(ask)).await?;
        match (outcomes.pop(), outcomes.is_empty()) {
            (Some(outcome), true) => Ok(outcome),
            _ => Err(BackendError::bug(
                "a hold of one order answered other than once",
            )),
        }
    }
    /// Frees the seats still held by `order` (idempotent; sold seats stay sold).
    async fn release(
        &self,
        event: &EventId,
        order: Uuid,
        holder: &Holder,
        seats: &[String],
    ) -> BackendResult<()>;
    /// Turns `order`'s held seats into sold ones (idempotent).
    async fn sell(
        &self,
        event: &EventId,
        order: Uuid,
        holder: &Holder,
        seats: &[String],
    ) -> BackendResult<SellOutcome>;
    /// Replaces the event's seat state with `live` unless it exists (or always, if `force`).
    async fn rebuild(
        &self,
        event: &EventId,
        live: &[LiveSeat],
        force: bool,
        now_ms: i64,
    ) -> BackendResult<()>;
    /// Holds made before `before_ms` that neither ended nor became sales here.
    async fn holds_before(&self, event: &EventId, before_ms: i64) -> BackendResult<Vec<HeldOrder>>;
    /// Taken seats (free ones are absent); `None` while the state must be rebuilt.
    async fn seat_states(
        &self,
        event: &EventId,
    ) -> BackendResult<Option<HashMap<String, SeatState>>>;
    async fn seat_counts(&self, event: &EventId) -> BackendResult<Option<SeatCounts>>;
    /// The seat state's version (it grows with every change of a seat's state)
    /// and what changed after `since`; every taken seat instead with no
    /// `since`, when the changes after it are no longer kept, or when more
    /// than `max_changes` seats changed. `None` while the state must be rebuilt.
    async fn seats_since(
        &self,
        event: &EventId,
        since: Option<u64>,
        max_changes: u64,
    ) -> BackendResult<Option<SeatsAt>>;
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum InsertOrderError {
    #[error("seats already taken: {0:?}")]
    SeatsTaken(Vec<String>),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The outcome of a compare-and-set on an order's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// This call moved the order out of `pending`.
    Changed(Order),
    /// The order was not pending (or its hold had run out, for a payment).
    Unchanged(Order),
    NotFound,
}

/// An event's invitation codes, as the record counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodeCounts {
    pub issued: u64,
    /// Codes that have taken a place in the line.
    pub used: u64,
}

/// The durable record of invitation codes, kept by their keyed hash only.
#[async_trait]
pub trait CodeRecords: Send + Sync {
    /// Records `codes` for `event`, all or none; a code already recorded is
    /// left as it is. Returns how many were new.
    async fn insert_codes(&self, event: &EventId, codes: &[CodeHash]) -> BackendResult<u64>;
    /// Whether `code` was issued for `event` (`None`: it was not), and whether
    /// it has taken a place.
    async fn code_used(&self, event: &EventId, code: &CodeHash) -> BackendResult<Option<bool>>;
    /// Notes that `code` has taken a place (the first time counts).
    async fn mark_code_used(&self, event: &EventId, code: &CodeHash) -> BackendResult<()>;
    async fn code_counts(&self, event: &EventId) -> BackendResult<CodeCounts>;
}

/// The durable record of orders and their seats.
/// Counts per client in fixed windows, shared by every instance of a
/// deployment (the limits on abuse hold across instances).
#[async_trait]
pub trait WindowCounts: Send + Sync {
    /// Adds `delta` to `client`'s count of `what` in `window`; returns the new count.
    async fn add(&self, what: &str, window: u64, client: &str, delta: i64) -> BackendResult<i64>;
}

/// How many joins each defence of an event's door refused, added up over
/// every instance.
#[async_trait]
pub trait RefusalCounts: Send + Sync {
    async fn add_refusals(
        &self,
        event: &EventId,
        counts: &[(&'static str, u64)],
    ) -> BackendResult<()>;
    /// The counts by the refusal's name.
    async fn refusals(&self, event: &EventId) -> BackendResult<HashMap<String, u64>>;
}

#[async_trait]
pub trait OrderRepository: Send + Sync {
    /// Inserts pending orders in one transaction, each with its own outcome:
    /// an order with a seat already live in another order (or earlier in
    /// `orders`) is refused alone, and the others are inserted.
    async fn insert_orders(&self, orders: &[Order]) -> Vec<Result<(), InsertOrderError>>;
    /// Inserts a pending order; a seat already live in another order is refused.
    async fn insert_order(&self, order: &Order) -> Result<(), InsertOrderError> {
        self.insert_orders(std::slice::from_ref(order))
            .await
            .pop()
            .unwrap_or_else(|| {
                Err(BackendError::bug("an insert of one order answered nothing").into())
            })
    }
    async fn order(&self, id: Uuid) -> BackendResult<Option<Order>>;
    /// Moves a pending order to `to` in one compare-and-set, by the record's
    /// own clock: a payment only before the hold's end, an expiry only after it.
    async fn transition(
        &self,
        id: Uuid,
        to: OrderStatus,
        payment_ref: Option<&str>,
    ) -> BackendResult<Transition>;
    async fn live_seats(&self, event: &EventId) -> BackendResult<Vec<LiveSeat>>;
    /// Pending orders whose hold ended more than `grace` ago (by the record's clock), oldest first.
    async fn overdue(&self, grace: Duration, limit: i64) -> BackendResult<Vec<ExpiryDue>>;
    /// Orders paid and expired, for the stats.
    async fn order_counts(&self, event: &EventId) -> BackendResult<(u64, u64)>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_joins_travels_as_one_message() {
        let joins: Vec<LineMessage> = (1..=3)
            .map(|seq| LineMessage {
                key: TokenKey::regular(seq),
                token_id: Uuid::new_v4(),
            })
            .collect();
        let batch = LineBatch(joins);
        assert_eq!(LineBatch::decode(batch.encode().as_bytes()), Some(batch));
    }

    #[test]
    fn a_batch_of_timers_travels_as_one_message_and_a_single_timer_is_a_batch_of_one() {
        let event = EventId::parse("sale").unwrap();
        let batch = ExpiryBatch {
            event: event.clone(),
            orders: vec![Uuid::new_v4(), Uuid::new_v4()],
        };
        assert_eq!(ExpiryBatch::decode(batch.encode().as_bytes()), Some(batch));
        let order = Uuid::new_v4();
        assert_eq!(
            ExpiryBatch::decode(format!("sale:{order}").as_bytes()),
            Some(ExpiryBatch {
                event,
                orders: vec![order]
            })
        );
        for raw in [
            format!("sale:{order},not-a-uuid"),
            format!("sale:{order},"),
            "sale:".to_owned(),
            format!("Not An Event:{order}"),
        ] {
            assert_eq!(ExpiryBatch::decode(raw.as_bytes()), None, "{raw:?}");
        }
    }

    #[test]
    fn a_batch_with_a_malformed_join_is_refused_whole() {
        let good = LineMessage {
            key: TokenKey::regular(1),
            token_id: Uuid::new_v4(),
        }
        .encode();
        for raw in [
            format!("{good},r2:not-a-uuid"),
            String::new(),
            format!("{good},"),
        ] {
            assert_eq!(LineBatch::decode(raw.as_bytes()), None, "{raw:?}");
        }
    }
}
