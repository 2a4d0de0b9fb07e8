//! The waiting line as people see it: join (group-committed), poll, leave.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

use super::catalog::Catalog;
use super::group_commit::{GroupCommit, Limits};
use crate::domain::line::{Estimate, estimate};
use crate::domain::{
    Departure, Event, EventId, EventSpec, LineView, LogPosition, QueueToken, Signer, Ticket,
    TokenKey, TokenKind, TokenStatus, unix_ms,
};
use crate::ports::{
    AbortedJoin, AdmissionStore, AllocateOutcome, AllocateRequest, Allocation, BackendError,
    BackendResult, Clock, DoorRefusal, InsertEventError, JoinCommit, LeaveOutcome, Leaving,
    LineCounters, LineLost, LineMessage, LineQueue, LineRecords, LineStart, PassTerms, Reserved,
    VisitorPlace,
};
use crate::tasks::Tasks;

/// One event's joins taken into one publish-and-confirm at most, and its
/// groups being published at once. While they are all in flight, new joins
/// queue up and go out together: under load the groups grow by themselves.
/// Each event's groups go apart from the others'. Two in flight, not
/// more: a group's cost is mostly per group (two scripts, one message, the
/// broker's write), so fewer and larger groups cost less per join, and two
/// still overlap one group's scripts with the other's confirm
/// (docs/benchmarks.md: 8 in flight made groups of 19 at 62–63 µs of CPU per
/// join across the processes, 2 groups of 63 at 49–55 µs, and more joins/s).
/// The price: two slow groups (a publish waiting out its timeout, a restore)
/// hold the event's other joins back until they end, where eight did so only
/// when all eight were slow; other events' joins go on.
const JOIN_GROUPS: Limits = Limits {
    max_group: 2_048,
    in_flight: 2,
};
/// How often each process catches up with the events' logs.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);
/// How often polls are reported as signs of life (see `abandon_seconds`).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// How long a poll waits for this process to read the log as far as the
/// client's last answer did. A healthy follower gets there within one
/// `FOLLOW_INTERVAL`; this bound is for a stalled one (the store slow or away),
/// past which the poll answers from what this process has.
const READ_UP_TO_WAIT: Duration = Duration::from_secs(1);
/// How often the line's gauges (waiting, active) are refreshed for `/metrics`.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);
/// Places reserved in the durable record at a time: one write per this many
/// joins, and at most this many places skipped after a restore.
const RESERVATION_STEP: u64 = 1_000;
/// Restores one group of joins may wait for before it gives up.
const MAX_RESTORES: usize = 2;

/// The result of a join: the line entry, and whether this request created it.
#[derive(Debug, Clone, Copy)]
pub struct Joined {
    pub created: bool,
    pub message: LineMessage,
}

/// A join's answer: a place, or the door's refusal of a new one.
pub type JoinOutcome = Result<Joined, DoorRefusal>;

struct JoinRequest {
    event: Arc<Event>,
    visitor: Option<String>,
    ticket: Ticket,
    /// The client's address, when the event limits places per address.
    address: Option<String>,
}

/// What a poll reads: the token's status and, while it waits, how long it can
/// expect to wait and what for; and how far into the log it was read.
#[derive(Debug, Clone)]
pub struct Standing {
    pub status: TokenStatus,
    pub estimate: Option<Estimate>,
    pub read_up_to: Option<LogPosition>,
}

/// One event's line as this process sees it.
#[derive(Default)]
struct EventLine {
    view: RwLock<LineView>,
    /// Waiting tokens polled since the last heartbeat report.
    seen: Mutex<foldhash::HashSet<TokenKey>>,
    /// Held while this process restores the line: one restore at a time.
    restoring: tokio::sync::Mutex<()>,
    /// Held while the follower catches this event's view up: one step at a time.
    following: tokio::sync::Mutex<()>,
    /// Woken whenever the view has read more of the log.
    read_more: Notify,
}

impl EventLine {
    fn view(&self) -> std::sync::RwLockReadGuard<'_, LineView> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    fn view_mut(&self) -> std::sync::RwLockWriteGuard<'_, LineView> {
        self.view.write().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Line {
    store: Arc<dyn AdmissionStore>,
    record: Arc<dyn LineRecords>,
    queue: Arc<dyn LineQueue>,
    catalog: Arc<Catalog>,
    signer: Signer,
    lines: RwLock<foldhash::HashMap<EventId, Arc<EventLine>>>,
    /// Each event's joins committed apart.
    joins: GroupCommit<EventId, JoinRequest, BackendResult<JoinOutcome>>,
    clock: Clock,
    /// Where each event's follower runs (`stop` waits for it).
    tasks: Tasks,
}

impl Line {
    /// Starts the line's background work (group commit, following the logs,
    /// reporting heartbeats) on `tasks`; it stops when they do, and the group
    /// commit first answers every join it was given.
    pub fn start(
        store: Arc<dyn AdmissionStore>,
        record: Arc<dyn LineRecords>,
        queue: Arc<dyn LineQueue>,
        catalog: Arc<Catalog>,
        signer: Signer,
        clock: Clock,
        tasks: &Tasks,
    ) -> Arc<Self> {
        let line = Arc::new_cyclic(|line: &Weak<Self>| {
            let line = line.clone();
            let joins = GroupCommit::start("join", JOIN_GROUPS, tasks, {
                move |_: EventId, group: Vec<JoinRequest>| {
                    let line = line.upgrade();
                    async move {
                        match line {
                            Some(line) => line.commit_group(group).await,
                            None => group
                                .iter()
                                .map(|_| {
                                    Err(BackendError::unavailable("anteroom", "shutting down"))
                                })
                                .collect(),
                        }
                    }
                }
            });
            Self {
                store,
                record,
                queue,
                catalog,
                signer,
                lines: RwLock::default(),
                joins,
                clock,
                tasks: tasks.clone(),
            }
        });
        tasks.every(FOLLOW_INTERVAL, line.clone(), |line| async move {
            line.follow_each_event()
        });
        tasks.every(HEARTBEAT_INTERVAL, line.clone(), |line| async move {
            line.report_heartbeats().await
        });
        tasks.every(GAUGE_INTERVAL, line.clone(), |line| async move {
            line.report_gauges().await
        });
        line
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Creates an event with its line open. The line is opened first, so that
    /// a line missing while its event exists can only be one the store lost.
    pub async fn create_event(&self, spec: EventSpec) -> Result<Arc<Event>, InsertEventError> {
        let reserved = Reserved {
            regular: RESERVATION_STEP,
            prequeue: RESERVATION_STEP,
        };
        // A line with a record is never opened again: it may have issued tokens.
        // (If it was recorded by a creation that failed, it is restored when first used.)
        if self.record.open_line(&spec.id, reserved).await? {
            let now_ms = unix_ms(self.clock.now());
            self.store
                .start_line(&spec.id, &LineStart::Open { reserved }, now_ms)
                .await?;
        }
        self.catalog.create(spec).await
    }

    /// Restores a line the admission store lost (a restart without persistence,
    /// a flush): counters above every token issued, the pre-queue and its draw
    /// from the durable record; the people waiting are still in the queue.
    /// Passes this process saw admitted count under `max_active` until they
    /// expire; if it did not see them all, `max_active` of them are assumed.
    async fn restore(&self, event: &Event) -> BackendResult<()> {
        let id = event.id();
        let line = self.line(id);
        let _restoring = line.restoring.lock().await;
        let mut record = self.record.line_record(id).await?;
        let now_ms = unix_ms(self.clock.now());
        let admission = event.spec.admission;
        let recorded_prequeue = record.prequeue;
        let (passes, ended) = {
            let view = line.view();
            // What the store had made and not yet recorded, this process may have seen.
            record.prequeue = record.prequeue.or(view.prequeue());
            record.draw = record
                .draw
                .take()
                .or_else(|| view.draw().map(<[u32]>::to_vec));
            let passes = view
                .valid_passes(now_ms, admission.pass_seconds)
                .unwrap_or_else(|| {
                    let last_expiry = now_ms + i64::from(admission.pass_seconds) * 1_000;
                    vec![(last_expiry, admission.max_active)]
                });
            (passes, view.ended_passes(now_ms, admission.pass_seconds))
        };
        if let (None, Some(size)) = (recorded_prequeue, record.prequeue) {
            self.record.record_prequeue(id, size).await?;
        }
        if self
            .store
            .start_line(
                id,
                &LineStart::Restore {
                    record,
                    passes,
                    ended,
                },
                now_ms,
            )
            .await?
        {
            tracing::warn!(event = %id, "the admission store had lost the line: restored from the durable record");
            metrics::counter!("anteroom_lines_restored_total", "event" => id.to_string())
                .increment(1);
        }
        Ok(())
    }

    /// Places a person in the line; returns once the join is durable. A
    /// visitor's live place is returned whatever the ticket; a new place is
    /// taken only if the ticket passes the door, and (under the event's
    /// address limit) if `client` has room for another place.
    pub async fn join(
        &self,
        event: Arc<Event>,
        visitor: Option<String>,
        ticket: Ticket,
        client: IpAddr,
    ) -> BackendResult<JoinOutcome> {
        let address = event.spec.address_limit.map(|_| client.to_string());
        let request = JoinRequest {
            event: event.clone(),
            visitor,
            ticket,
            address,
        };
        self.joins.submit(event.id(), request).await?
    }

    pub fn token_for(&self, event: &EventId, message: LineMessage) -> QueueToken {
        QueueToken {
            event: event.clone(),
            key: message.key,
            token_id: message.token_id,
        }
    }

    /// A token's standing from this process's view: no I/O. Waiting tokens are
    /// noted as seen, for abandonment. `shown`: the position the client was
    /// last shown, perhaps by another process (a place never moves back).
    pub fn standing(
        &self,
        token: &QueueToken,
        event: &Event,
        now: OffsetDateTime,
        shown: Option<u64>,
    ) -> Standing {
        let line = self.line(&token.event);
        let now_ms = unix_ms(now);
        let admission = &event.spec.admission;
        let (status, estimate, read_up_to) = {
            let view = line.view();
            let status = view
                .status(
                    token.key,
                    now_ms,
                    admission.pass_seconds,
                    event.is_on_sale(now),
                )
                .no_further_back_than(shown);
            let estimate = match status {
                TokenStatus::Waiting { position } => Some(estimate(
                    position,
                    admission,
                    event.spec.paused,
                    view.valid_pass_expiries(now_ms, admission.pass_seconds),
                )),
                _ => None,
            };
            (status, estimate, view.position())
        };
        if matches!(status, TokenStatus::Waiting { .. } | TokenStatus::PreQueue) {
            line.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(token.key);
        }
        Standing {
            status,
            estimate,
            read_up_to,
        }
    }

    /// Waits (briefly, for the follower: no I/O) until this process answers
    /// for `token` what it would having read its event's log as far as
    /// `position`, the one a client's last answer was read at, perhaps by
    /// another process. Past [`READ_UP_TO_WAIT`] it goes on: a client's
    /// position is a hint, and a bogus one costs only its sender the wait.
    pub async fn read_up_to(&self, token: &QueueToken, position: &LogPosition) {
        let line = self.line(&token.event);
        // Of another epoch (a restore in between, or while waiting) this view
        // can never have read it: the restored log is the truth now, and
        // waiting would not help.
        let done = || {
            let view = line.view();
            view.answers_as_of(token.key, position) || !view.follows_epoch_of(position)
        };
        // Most polls: already there, so no waiter is registered with the
        // follower's notification (a lock taken twice, on the hottest path).
        if done() {
            return;
        }
        let caught_up = async {
            loop {
                let read_more = line.read_more.notified();
                let mut read_more = std::pin::pin!(read_more);
                // Registered before the check below: a read that lands
                // between the two still wakes this wait.
                read_more.as_mut().enable();
                if done() {
                    return;
                }
                read_more.await;
            }
        };
        if tokio::time::timeout(READ_UP_TO_WAIT, caught_up)
            .await
            .is_err()
        {
            metrics::counter!("anteroom_poll_read_up_to_timeouts_total").increment(1);
        }
    }

    /// Whether this process's view can place `token` yet: a regular token ranks
    /// after the pre-queue, whose size the view learns from the log.
    pub fn can_place(&self, token: &QueueToken) -> bool {
        token.key.kind == TokenKind::PreQueue
            || self.line(&token.event).view().rank_of(token.key).is_some()
    }

    /// Every rank up to this one was consumed, as far as this process has seen.
    pub fn consumed(&self, event: &EventId) -> u64 {
        self.line(event).view().consumed()
    }

    /// Takes `token` out of the line, or ends its pass; returns how far into
    /// the line's log another process must have read to know it.
    pub async fn leave(
        &self,
        token: &QueueToken,
        event: &Event,
    ) -> BackendResult<Option<LogPosition>> {
        let line = self.line(&token.event);
        let now_ms = unix_ms(self.clock.now());
        let pass_seconds = event.spec.admission.pass_seconds;
        let (rank, pass) = {
            let view = line.view();
            let pass = match view.status(token.key, now_ms, pass_seconds, true) {
                TokenStatus::Admitted { expires_at_ms } => {
                    Some(PassTerms::new(token.key, expires_at_ms, pass_seconds))
                }
                _ => None,
            };
            (view.rank_of(token.key), pass)
        };
        let leaving = self
            .store
            .leave(&token.event, token.key, rank, pass, now_ms);
        let Leaving { outcome, logged_at } = leaving.await?;
        let why = match outcome {
            LeaveOutcome::Left => Some(Departure::Left),
            LeaveOutcome::PassEnded => Some(Departure::PassEnded),
            LeaveOutcome::AlreadyGone => None,
        };
        if let Some(why) = why {
            line.view_mut().note_departed(token.key, why);
        }
        Ok(logged_at)
    }

    pub async fn counters(
        &self,
        event: &EventId,
        now: OffsetDateTime,
    ) -> BackendResult<LineCounters> {
        self.store.counters(event, unix_ms(now)).await
    }

    fn line(&self, event: &EventId) -> Arc<EventLine> {
        if let Some(line) = self
            .lines
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(event)
        {
            return line.clone();
        }
        self.lines
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(event.clone())
            .or_default()
            .clone()
    }

    /// Commits the joins of one event; answers in their order.
    #[tracing::instrument(skip_all, fields(event = %group[0].event.id(), joins = group.len()))]
    async fn commit_group(&self, group: Vec<JoinRequest>) -> Vec<BackendResult<JoinOutcome>> {
        let event = group[0].event.clone();
        // Token ids are drawn up front: a pre-queue place records its id when allocated.
        let requests: Vec<AllocateRequest<'_>> = group
            .iter()
            .map(|r| AllocateRequest {
                visitor: r.visitor.as_deref(),
                token_id: Uuid::new_v4(),
                ticket: &r.ticket,
                address: r.address.as_deref(),
            })
            .collect();
        let outcome = self.commit(&event, &requests).await;
        if let Err(e) = &outcome {
            tracing::warn!(error = %e, "a group of joins failed");
        }
        let results: Vec<BackendResult<JoinOutcome>> = match outcome {
            Ok(joined) => joined.into_iter().map(Ok).collect(),
            Err(e) => group.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut outcomes: HashMap<&'static str, u64> = HashMap::new();
        for result in &results {
            let outcome = match result {
                Ok(Ok(j)) if j.created => "created",
                Ok(Ok(_)) => "existing",
                Ok(Err(DoorRefusal::ChallengeRequired)) => "challenge_required",
                Ok(Err(DoorRefusal::ChallengeUsed)) => "challenge_used",
                Ok(Err(DoorRefusal::TooManyPlaces)) => "too_many_places",
                Err(_) => "unavailable",
            };
            *outcomes.entry(outcome).or_default() += 1;
        }
        for (outcome, count) in outcomes {
            metrics::counter!("anteroom_joins_total", "event" => event.id().to_string(), "outcome" => outcome)
                .increment(count);
        }
        results
    }

    async fn commit(
        &self,
        event: &Event,
        requests: &[AllocateRequest<'_>],
    ) -> BackendResult<Vec<JoinOutcome>> {
        let now = self.clock.now();
        let id = event.id();
        let allocation = self.allocate(event, requests, now).await?;
        if let Some(prequeue) = allocation.prequeue {
            self.line(id).view_mut().note_frozen(prequeue);
        }
        let mut seq = allocation.first_seq;
        let mut fresh = Vec::new();
        for (index, existing) in allocation.existing.iter().enumerate() {
            let replaces = match *existing {
                VisitorPlace::Live(_) | VisitorPlace::Refused(_) => continue,
                VisitorPlace::None => None,
                VisitorPlace::Ended(ended) => Some(ended),
            };
            let key = TokenKey {
                kind: allocation.kind,
                seq,
            };
            let message = LineMessage {
                key,
                token_id: requests[index].token_id,
            };
            fresh.push((
                index,
                JoinCommit {
                    message,
                    visitor: requests[index].visitor,
                    replaces,
                },
            ));
            seq += 1;
        }
        let mut winners = vec![None; fresh.len()];
        if !fresh.is_empty() {
            let messages: Vec<LineMessage> = fresh.iter().map(|(_, join)| join.message).collect();
            if let Err(e) = self.queue.publish(id, &messages).await {
                let aborted: Vec<AbortedJoin<'_>> = fresh
                    .iter()
                    .map(|&(index, join)| AbortedJoin {
                        key: join.message.key,
                        request: &requests[index],
                    })
                    .collect();
                let limit = event.spec.address_limit;
                if let Err(abort) = self
                    .store
                    .abort_joins(id, &aborted, limit, unix_ms(now))
                    .await
                {
                    // Admission will find the places empty after its grace period.
                    tracing::error!(error = %abort, "could not mark failed joins");
                }
                return Err(e);
            }
            let joins: Vec<JoinCommit> = fresh.iter().map(|&(_, join)| join).collect();
            winners = self.store.commit_joins(id, &joins).await?;
        }
        let mut joined: Vec<Option<JoinOutcome>> = allocation
            .existing
            .iter()
            .map(|e| match *e {
                VisitorPlace::Live(message) => Some(Ok(Joined {
                    created: false,
                    message,
                })),
                VisitorPlace::Refused(refusal) => Some(Err(refusal)),
                VisitorPlace::None | VisitorPlace::Ended(_) => None,
            })
            .collect();
        for ((index, join), winner) in fresh.into_iter().zip(winners) {
            joined[index] = Some(Ok(match winner {
                Some(message) => Joined {
                    created: false,
                    message,
                },
                None => Joined {
                    created: true,
                    message: join.message,
                },
            }));
        }
        joined
            .into_iter()
            .map(|j| {
                j.ok_or_else(|| BackendError::bug("a join went unanswered by its group commit"))
            })
            .collect()
    }

    /// Sequence numbers for a group, within the durable reservation: raises it
    /// when the group would pass it, and restores the line if the store lost it.
    async fn allocate(
        &self,
        event: &Event,
        requests: &[AllocateRequest<'_>],
        now: OffsetDateTime,
    ) -> BackendResult<Allocation> {
        let id = event.id();
        let mut restores = 0;
        // Each reservation covers the group that asked for it, so groups racing
        // for reservations all progress; only restores are bounded.
        loop {
            let outcome = match self
                .store
                .allocate(
                    id,
                    event.is_on_sale(now),
                    requests,
                    event.spec.address_limit,
                    unix_ms(now),
                )
                .await
            {
                Ok(AllocateOutcome::Allocated(allocation)) => return Ok(allocation),
                Ok(AllocateOutcome::Reserve { kind, at_least }) => {
                    let reserved = self
                        .record
                        .reserve(id, kind, at_least + RESERVATION_STEP)
                        .await?;
                    self.store.extend_reservation(id, kind, reserved).await
                }
                Err(e) => Err(e),
            };
            match outcome {
                Err(BackendError::LineLost(_)) if restores < MAX_RESTORES => {
                    restores += 1;
                    self.restore(event).await?;
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
    }

    /// Catches this process's view up with every event's log now (tests call
    /// it to see a change at once).
    pub async fn follow_once(&self) {
        let events = self.catalog.all();
        futures_util::future::join_all(events.iter().map(|event| self.follow(event))).await;
    }

    /// One step of the follower (every `FOLLOW_INTERVAL`): starts a catch-up
    /// of each event's view whose last one has ended, and returns. Each event
    /// goes on its own, so that one whose store is slow (its Redis master
    /// failing over: a read waits out its timeout) holds back no other's.
    fn follow_each_event(self: &Arc<Self>) {
        for event in self.catalog.all() {
            let this = self.clone();
            self.tasks.spawn(async move {
                let line = this.line(event.id());
                // Its last step is still running: the next tick looks again.
                let Ok(_following) = line.following.try_lock() else {
                    return;
                };
                this.follow(&event).await;
            });
        }
    }

    async fn follow(&self, event: &Event) {
        if let Err(e) = self.catch_up(event).await {
            tracing::warn!(event = %event.id(), error = %e, "could not follow the line's log");
        }
    }

    /// Applies every log entry this process has not seen yet; restores the
    /// line if the store lost it.
    pub async fn catch_up(&self, event: &Event) -> BackendResult<()> {
        let id = event.id();
        let line = self.line(id);
        let mut restored = false;
        loop {
            let from = line.view().entries_applied();
            let read = self.store.read_log(id, from).await?;
            if read.lost {
                if restored {
                    return Err(LineLost { event: id.clone() }.into());
                }
                self.restore(event).await?;
                restored = true;
                continue;
            }
            let mut v = line.view_mut();
            // A new epoch rewinds the view to the new log's start.
            v.follow_epoch(&read.epoch, read.restored);
            if v.entries_applied() != from {
                continue;
            }
            if read.entries.is_empty() {
                break;
            }
            read.entries.into_iter().for_each(|e| v.apply(e));
            drop(v);
            line.read_more.notify_waiters();
        }
        if line.view().needs_draw()
            && let Some(draw) = self.store.read_draw(id).await?
        {
            line.view_mut().install_draw(draw);
        }
        Ok(())
    }

    /// Reports the tokens polled since the last report as seen (for abandonment).
    async fn report_heartbeats(&self) {
        let lines: Vec<(EventId, Arc<EventLine>)> = self
            .lines
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(e, l)| (e.clone(), l.clone()))
            .collect();
        let now = self.clock.now().unix_timestamp();
        for (event, line) in lines {
            let keys: Vec<TokenKey> =
                std::mem::take(&mut *line.seen.lock().unwrap_or_else(|p| p.into_inner()))
                    .into_iter()
                    .collect();
            if keys.is_empty() {
                continue;
            }
            if let Err(e) = self.store.heartbeat(&event, &keys, now).await {
                tracing::warn!(event = %event, error = %e, "could not report heartbeats");
            }
        }
    }

    /// Every event's gauges at once: one whose store is slow delays no other's.
    async fn report_gauges(&self) {
        let events = self.catalog.all();
        futures_util::future::join_all(events.iter().map(|event| self.report_gauges_of(event)))
            .await;
    }

    async fn report_gauges_of(&self, event: &Event) {
        let id = event.id().to_string();
        match self.counters(event.id(), self.clock.now()).await {
            Ok(c) => {
                metrics::gauge!("anteroom_line_waiting", "event" => id.clone())
                    .set(c.waiting() as f64);
                metrics::gauge!("anteroom_line_active", "event" => id).set(c.active as f64);
            }
            Err(e) => {
                tracing::debug!(event = %id, error = %e, "could not read the line's counters")
            }
        }
    }
}
