//! The waiting line as people see it: join (group-committed), poll, leave.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::catalog::Catalog;
use super::spawn_every;
use crate::domain::{Departure, Event, EventId, LineView, QueueToken, Signer, TokenKey, TokenStatus, unix_ms};
use crate::ports::{AdmissionStore, BackendError, BackendResult, LeaveOutcome, LineCounters, LineMessage, LineQueue};

/// Joins taken into one publish-and-confirm at most.
const MAX_GROUP: usize = 2_048;
/// Groups being published at once. While they are all in flight, new joins
/// queue up and go out together: under load the groups grow by themselves.
const GROUPS_IN_FLIGHT: usize = 8;
/// How often each process catches up with the events' logs.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);
/// How often polls are reported as signs of life (see `abandon_seconds`).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// How often the line's gauges (waiting, active) are refreshed for `/metrics`.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

/// The result of a join: the line entry, and whether this request created it.
#[derive(Debug, Clone, Copy)]
pub struct Joined {
    pub created: bool,
    pub message: LineMessage,
}

struct JoinRequest {
    event: Arc<Event>,
    visitor: Option<String>,
    reply: oneshot::Sender<BackendResult<Joined>>,
}

pub struct Line {
    store: Arc<dyn AdmissionStore>,
    queue: Arc<dyn LineQueue>,
    catalog: Arc<Catalog>,
    signer: Signer,
    views: RwLock<HashMap<EventId, Arc<RwLock<LineView>>>>,
    seen: Mutex<HashMap<EventId, HashSet<TokenKey>>>,
    joins: mpsc::Sender<JoinRequest>,
}

impl Line {
    /// Starts the line's background work (group commit, following the logs,
    /// reporting heartbeats); it stops when `stop` is cancelled.
    pub fn start(
        store: Arc<dyn AdmissionStore>,
        queue: Arc<dyn LineQueue>,
        catalog: Arc<Catalog>,
        signer: Signer,
        stop: CancellationToken,
    ) -> Arc<Self> {
        let (joins, requests) = mpsc::channel(MAX_GROUP * GROUPS_IN_FLIGHT);
        let line = Arc::new(Self {
            store,
            queue,
            catalog,
            signer,
            views: RwLock::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            joins,
        });
        tokio::spawn(line.clone().group_commit(requests, stop.clone()));
        spawn_every(FOLLOW_INTERVAL, stop.clone(), line.clone(), |line| async move { line.follow_logs().await });
        spawn_every(
            HEARTBEAT_INTERVAL,
            stop.clone(),
            line.clone(),
            |line| async move { line.report_heartbeats().await },
        );
        spawn_every(GAUGE_INTERVAL, stop, line.clone(), |line| async move { line.report_gauges().await });
        line
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Places a person in the line; returns once the join is durable.
    pub async fn join(&self, event: Arc<Event>, visitor: Option<String>) -> BackendResult<Joined> {
        let (reply, answer) = oneshot::channel();
        self.joins
            .send(JoinRequest { event, visitor, reply })
            .await
            .map_err(|_| BackendError::new("anteroom", "shutting down"))?;
        answer.await.map_err(|_| BackendError::new("anteroom", "the join was dropped"))?
    }

    pub fn token_for(&self, event: &EventId, message: LineMessage) -> QueueToken {
        QueueToken { event: event.clone(), key: message.key, token_id: message.token_id }
    }

    /// A token's status from this process's view: no I/O. Waiting tokens are
    /// noted as seen, for abandonment.
    pub fn status(&self, token: &QueueToken, event: &Event, now: OffsetDateTime) -> TokenStatus {
        let status = self.view(&token.event).read().unwrap_or_else(|p| p.into_inner()).status(
            token.key,
            unix_ms(now),
            event.spec.admission.pass_seconds,
            event.is_on_sale(now),
        );
        if matches!(status, TokenStatus::Waiting { .. } | TokenStatus::PreQueue) {
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(token.event.clone())
                .or_default()
                .insert(token.key);
        }
        status
    }

    /// Admissions per second recently measured for `event`, if any.
    pub fn measured_rate(&self, event: &EventId, now: OffsetDateTime) -> Option<f64> {
        self.view(event).read().unwrap_or_else(|p| p.into_inner()).measured_rate(unix_ms(now))
    }

    pub async fn leave(&self, token: &QueueToken) -> BackendResult<()> {
        let view = self.view(&token.event);
        let rank = view.read().unwrap_or_else(|p| p.into_inner()).rank_of(token.key);
        let why = match self.store.leave(&token.event, token.key, rank).await? {
            LeaveOutcome::Left => Departure::Left,
            LeaveOutcome::PassEnded => Departure::PassEnded,
            LeaveOutcome::AlreadyGone => return Ok(()),
        };
        view.write().unwrap_or_else(|p| p.into_inner()).note_departed(token.key, why);
        Ok(())
    }

    pub async fn counters(&self, event: &EventId, now: OffsetDateTime) -> BackendResult<LineCounters> {
        self.store.counters(event, unix_ms(now)).await
    }

    fn view(&self, event: &EventId) -> Arc<RwLock<LineView>> {
        if let Some(view) = self.views.read().unwrap_or_else(|p| p.into_inner()).get(event) {
            return view.clone();
        }
        self.views.write().unwrap_or_else(|p| p.into_inner()).entry(event.clone()).or_default().clone()
    }

    async fn group_commit(self: Arc<Self>, mut requests: mpsc::Receiver<JoinRequest>, stop: CancellationToken) {
        let in_flight = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
        loop {
            let first = tokio::select! {
                _ = stop.cancelled() => return,
                next = requests.recv() => match next { Some(r) => r, None => return },
            };
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_GROUP {
                match requests.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            metrics::histogram!("anteroom_join_group_size").record(batch.len() as f64);
            let mut groups: HashMap<EventId, Vec<JoinRequest>> = HashMap::new();
            for request in batch {
                groups.entry(request.event.id().clone()).or_default().push(request);
            }
            let permit = Arc::new(permit);
            for group in groups.into_values() {
                let (line, permit) = (self.clone(), permit.clone());
                tokio::spawn(async move {
                    line.commit_group(group).await;
                    drop(permit);
                });
            }
        }
    }

    #[tracing::instrument(skip_all, fields(event = %group[0].event.id(), joins = group.len()))]
    async fn commit_group(&self, group: Vec<JoinRequest>) {
        let event = group[0].event.clone();
        let visitors: Vec<Option<&str>> = group.iter().map(|r| r.visitor.as_deref()).collect();
        let outcome = self.commit(&event, &visitors).await;
        if let Err(e) = &outcome {
            tracing::warn!(error = %e, "a group of joins failed");
        }
        let results: Vec<BackendResult<Joined>> = match outcome {
            Ok(joined) => joined.into_iter().map(Ok).collect(),
            Err(e) => group.iter().map(|_| Err(BackendError::new(e.backend, &e.detail))).collect(),
        };
        for (request, result) in group.into_iter().zip(results) {
            let outcome = match &result {
                Ok(j) if j.created => "created",
                Ok(_) => "existing",
                Err(_) => "unavailable",
            };
            metrics::counter!("anteroom_joins_total", "event" => event.id().to_string(), "outcome" => outcome)
                .increment(1);
            // The client may have gone; its join stands regardless.
            let _ = request.reply.send(result);
        }
    }

    async fn commit(&self, event: &Event, visitors: &[Option<&str>]) -> BackendResult<Vec<Joined>> {
        let now = OffsetDateTime::now_utc();
        let id = event.id();
        // Token ids are drawn up front: a pre-queue place records its id when allocated.
        let requests: Vec<(Option<&str>, Uuid)> = visitors.iter().map(|&v| (v, Uuid::new_v4())).collect();
        let allocation = self.store.allocate(id, event.is_on_sale(now), &requests, now.unix_timestamp()).await?;
        if let Some(prequeue) = allocation.prequeue {
            self.view(id).write().unwrap_or_else(|p| p.into_inner()).note_frozen(prequeue);
        }
        let mut seq = allocation.first_seq;
        let mut fresh = Vec::new();
        for (index, existing) in allocation.existing.iter().enumerate() {
            if existing.is_none() {
                let key = TokenKey { kind: allocation.kind, seq };
                fresh.push((index, LineMessage { key, token_id: requests[index].1 }));
                seq += 1;
            }
        }
        let messages: Vec<LineMessage> = fresh.iter().map(|&(_, m)| m).collect();
        let mut winners = vec![None; fresh.len()];
        if !messages.is_empty() {
            if let Err(e) = self.queue.publish(id, &messages).await {
                let keys: Vec<TokenKey> = messages.iter().map(|m| m.key).collect();
                if let Err(abort) = self.store.abort_joins(id, &keys).await {
                    // Admission will find the places empty after its grace period.
                    tracing::error!(error = %abort, "could not mark failed joins");
                }
                return Err(e);
            }
            let joins: Vec<(LineMessage, Option<&str>)> = fresh.iter().map(|&(i, m)| (m, visitors[i])).collect();
            winners = self.store.commit_joins(id, &joins).await?;
        }
        let mut joined: Vec<Option<Joined>> =
            allocation.existing.iter().map(|e| e.map(|message| Joined { created: false, message })).collect();
        for ((index, message), winner) in fresh.into_iter().zip(winners) {
            joined[index] = Some(match winner {
                Some(message) => Joined { created: false, message },
                None => Joined { created: true, message },
            });
        }
        joined.into_iter().map(|j| j.ok_or_else(|| BackendError::new("anteroom", "a join went unanswered"))).collect()
    }

    async fn follow_logs(&self) {
        for event in self.catalog.all() {
            if let Err(e) = self.catch_up(event.id()).await {
                tracing::warn!(event = %event.id(), error = %e, "could not follow the line's log");
            }
        }
    }

    /// Applies every log entry this process has not seen yet.
    pub async fn catch_up(&self, event: &EventId) -> BackendResult<()> {
        let view = self.view(event);
        loop {
            let from = view.read().unwrap_or_else(|p| p.into_inner()).entries_applied();
            let entries = self.store.read_log(event, from).await?;
            if entries.is_empty() {
                break;
            }
            let mut v = view.write().unwrap_or_else(|p| p.into_inner());
            // Another catch-up may have applied these meanwhile.
            if v.entries_applied() == from {
                entries.into_iter().for_each(|e| v.apply(e));
            }
        }
        if view.read().unwrap_or_else(|p| p.into_inner()).needs_draw()
            && let Some(draw) = self.store.read_draw(event).await?
        {
            view.write().unwrap_or_else(|p| p.into_inner()).install_draw(draw);
        }
        Ok(())
    }

    /// Reports the tokens polled since the last report as seen (for abandonment).
    async fn report_heartbeats(&self) {
        let seen = std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()));
        let now = OffsetDateTime::now_utc().unix_timestamp();
        for (event, keys) in seen {
            let keys: Vec<TokenKey> = keys.into_iter().collect();
            if let Err(e) = self.store.heartbeat(&event, &keys, now).await {
                tracing::warn!(event = %event, error = %e, "could not report heartbeats");
            }
        }
    }

    async fn report_gauges(&self) {
        for event in self.catalog.all() {
            let id = event.id().to_string();
            match self.counters(event.id(), OffsetDateTime::now_utc()).await {
                Ok(c) => {
                    metrics::gauge!("anteroom_line_waiting", "event" => id.clone()).set(c.waiting() as f64);
                    metrics::gauge!("anteroom_line_active", "event" => id).set(c.active as f64);
                }
                Err(e) => tracing::debug!(event = %id, error = %e, "could not read the line's counters"),
            }
        }
    }
}
