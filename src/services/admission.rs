//! The admission worker of one event: moves people from the durable line into
//! the admitted set, in rank order, at the event's rate and under `max_active`.
//!
//! Only the single active consumer of the event's queue receives deliveries, so
//! a standby's worker simply has nothing to do until it takes over. Deliveries
//! are acknowledged only after the admission store has recorded their fate.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::catalog::Catalog;
use crate::domain::{Event, EventId, TokenKey, TokenKind, prequeue, unix_ms};
use crate::ports::{
    AdmissionStore, AdmitRequest, BackendError, BackendResult, Candidate, Clock, Delivered,
    GapProbe, LineBatch, LineConsumer, LineMessage, LineRecords,
};

/// Batches of joins buffered at most: enough to reorder the groups published
/// at once by many processes, and to keep a fast drain busy.
pub const PREFETCH: u16 = 60_000;
/// Places presented to the store in one step at most, when the credit allows
/// that many. The step is one script that Redis runs alone: 20,000 places took
/// 40–50 ms on the two shared cores of docs/benchmarks.md.
const MAX_STEP: usize = 20_000;
/// Extra places presented beyond the admissions allowed, so that those who left
/// or were abandoned are skipped in the same step.
const SKIP_ALLOWANCE: usize = 256;
/// How long after its allocation a missing place is taken as lost. Longer than
/// the publish timeout: a join that may still be acknowledged is never skipped.
pub const GAP_GRACE_SECONDS: i64 = 10;
/// How long a worker that just started holds deliveries before it makes the
/// pre-queue draw: the line's unacknowledged joins come back to it first.
const DRAW_SETTLE: Duration = Duration::from_secs(2);
/// Admission credit accumulates for at most this long: smooth, never a burst of
/// a whole paused second.
const MAX_BURST: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Consumed places; `admitted` of them were admitted.
    Stepped {
        admitted: u64,
    },
    Idle,
}

pub struct AdmissionWorker {
    event: EventId,
    catalog: Arc<Catalog>,
    store: Arc<dyn AdmissionStore>,
    record: Arc<dyn LineRecords>,
    consumer: Box<LineConsumer>,
    batches: Settlement,
    ranked: BTreeMap<u64, Delivered<LineMessage>>,
    unranked: Vec<Delivered<LineMessage>>,
    prequeue: Option<u64>,
    draw: Option<Vec<u32>>,
    /// `drawn[rank - 1]` is the pre-queue sequence number the draw put at `rank`.
    drawn: Vec<u64>,
    consumed: u64,
    credit: Credit,
    /// The last step stopped only at `MAX_STEP`: the next one has work at once.
    more_ready: bool,
    started: Instant,
    clock: Clock,
}

impl AdmissionWorker {
    pub async fn new(
        event: EventId,
        catalog: Arc<Catalog>,
        store: Arc<dyn AdmissionStore>,
        record: Arc<dyn LineRecords>,
        consumer: Box<LineConsumer>,
        seen_consumed: u64,
        clock: Clock,
    ) -> BackendResult<Self> {
        let consumed = store.consumed(&event).await?.max(seen_consumed);
        let mut worker = Self {
            event,
            catalog,
            store,
            record,
            consumer,
            batches: Settlement::default(),
            ranked: BTreeMap::new(),
            unranked: Vec::new(),
            prequeue: None,
            draw: None,
            drawn: Vec::new(),
            consumed,
            credit: Credit::new(clock.instant()),
            more_ready: false,
            started: clock.instant(),
            clock,
        };
        if let Some(draw) = worker.store.read_draw(&worker.event).await? {
            worker.install_draw(draw);
        }
        Ok(worker)
    }

    /// Receives what arrived within `wait`, then admits what the rate, the room
    /// under `max_active` and the line's order allow. Does not wait when the
    /// last step left places it could admit at once.
    #[tracing::instrument(skip_all, fields(event = %self.event))]
    pub async fn step(&mut self, wait: Duration) -> BackendResult<Outcome> {
        let wait = if std::mem::take(&mut self.more_ready) {
            Duration::ZERO
        } else {
            wait
        };
        match self.try_step(wait).await {
            // Every process restores a lost line when it next follows the log
            // (`Line::catch_up`); until then nobody moves, and nothing is lost:
            // the deliveries stay held.
            Err(e @ BackendError::LineLost(_)) => {
                tracing::debug!(error = %e, "admission waits for the line to be restored");
                Ok(Outcome::Idle)
            }
            outcome => outcome,
        }
    }

    async fn try_step(&mut self, wait: Duration) -> BackendResult<Outcome> {
        for Delivered {
            message: LineBatch(joins),
            tag,
        } in self.consumer.receive(wait, usize::from(PREFETCH)).await?
        {
            self.batches.received(tag, joins.len());
            self.unranked
                .extend(joins.into_iter().map(|message| Delivered { message, tag }));
        }
        // Time not on sale, or paused, earns no admissions.
        let elapsed = self.credit.elapse(self.clock.instant());
        let Some(event) = self.catalog.get(&self.event) else {
            return Ok(Outcome::Idle);
        };
        let now = self.clock.now();
        if !event.is_on_sale(now) {
            return Ok(Outcome::Idle);
        }
        self.prepare_ranks(&event).await?;
        self.rank_arrivals().await?;
        if event.spec.paused {
            self.credit.forfeit();
            return Ok(Outcome::Idle);
        }
        let admission = event.spec.admission;
        let max_admit = self
            .credit
            .earn(admission.per_second, elapsed)
            .min(MAX_STEP);
        if max_admit == 0 {
            return Ok(Outcome::Idle);
        }
        self.catch_up_watermark().await?;
        let candidates = self.candidates(max_admit + SKIP_ALLOWANCE).await?;
        if candidates.is_empty() {
            return Ok(Outcome::Idle);
        }
        let now_ms = unix_ms(now);
        let outcome = self
            .store
            .admit(
                &self.event,
                &candidates,
                AdmitRequest {
                    now_ms,
                    pass_ms: i64::from(admission.pass_seconds) * 1_000,
                    max_active: admission.max_active,
                    seen_cutoff_s: now.unix_timestamp() - i64::from(admission.abandon_seconds),
                    max_admit: max_admit as u64,
                    seats_total: event.spec.seats_total(),
                    consumed_floor: self.consumed,
                },
            )
            .await?;
        self.credit.spend(outcome.admitted);
        let skipped = candidates
            .iter()
            .filter(|c| {
                matches!(c, Candidate::Absent { key: Some(_), .. }) && c.rank() <= outcome.consumed
            })
            .count();
        if skipped > 0 {
            tracing::warn!(
                skipped,
                from_rank = self.consumed + 1,
                "places whose joins never arrived are skipped"
            );
            metrics::counter!("anteroom_places_skipped_total", "event" => self.event.to_string())
                .increment(skipped as u64);
        }
        let progressed = outcome.consumed > self.consumed;
        self.advance_to(outcome.consumed).await?;
        // Credit and room left, and the next place already here: only the step's
        // size stopped it. A step that moved nobody never sets this, so a line
        // that cannot move (sold out, a gap) does not spin.
        self.more_ready = progressed
            && self.credit.available() >= 1
            && outcome.room > 0
            && self.ranked.contains_key(&(self.consumed + 1));
        metrics::counter!("anteroom_admitted_total", "event" => self.event.to_string())
            .increment(outcome.admitted);
        metrics::gauge!("anteroom_admission_room", "event" => self.event.to_string())
            .set(outcome.room as f64);
        Ok(Outcome::Stepped {
            admitted: outcome.admitted,
        })
    }

    /// Learns the pre-queue's size once the sale is open, and makes the draw
    /// from the pre-queue joins as allocated (those whose join failed excluded).
    async fn prepare_ranks(&mut self, event: &Event) -> BackendResult<()> {
        if self.draw.is_some() || self.prequeue == Some(0) {
            return Ok(());
        }
        let (size, failed) = self.store.freeze_prequeue(&self.event).await?;
        if self.prequeue.is_none() {
            self.record.record_prequeue(&self.event, size).await?;
            self.prequeue = Some(size);
        }
        if size == 0 {
            return Ok(());
        }
        let draw = match self.store.read_draw(&self.event).await? {
            Some(draw) => draw,
            // A worker that just started waits for the line's redeliveries: its
            // entrants must be complete if the store lost its own list.
            None if self.clock.instant().duration_since(self.started) < DRAW_SETTLE => {
                return Ok(());
            }
            None => {
                let mut entrants = self.store.prequeue_entrants(&self.event).await?;
                // A store that lost the line lost its list of entrants too; the
                // pre-queue joins held here are durable, and enough on their own.
                entrants.extend(self.unranked.iter().map(|d| d.message).filter_map(|m| {
                    (m.key.kind == TokenKind::PreQueue).then_some((m.key.seq, m.token_id))
                }));
                entrants.sort_unstable();
                entrants.dedup_by_key(|&mut (seq, _)| seq);
                entrants
                    .retain(|&(seq, _)| seq <= size && !failed.contains(&TokenKey::pre_queue(seq)));
                prequeue::draw_order(&event.prequeue_seed, &mut entrants, |e| e.1);
                let mut draw = vec![0u32; usize::try_from(size).unwrap_or(usize::MAX)];
                for (place, (seq, _)) in entrants.iter().enumerate() {
                    draw[(seq - 1) as usize] = u32::try_from(place + 1).unwrap_or(u32::MAX);
                }
                tracing::info!(entrants = entrants.len(), "the pre-queue draw is made");
                // Recorded first: a draw the store loses is restored as it was made.
                let recorded = self.record.record_draw(&self.event, &draw).await?;
                self.store.publish_draw(&self.event, &recorded).await?
            }
        };
        self.install_draw(draw);
        Ok(())
    }

    fn install_draw(&mut self, draw: Vec<u32>) {
        let mut drawn = vec![0u64; draw.iter().filter(|&&r| r != 0).count()];
        for (index, &rank) in draw.iter().enumerate() {
            if let Some(slot) = (rank as usize)
                .checked_sub(1)
                .and_then(|i| drawn.get_mut(i))
            {
                *slot = index as u64 + 1;
            }
        }
        self.drawn = drawn;
        self.draw = Some(draw);
    }

    fn rank_of(&self, key: TokenKey) -> Option<Option<u64>> {
        match key.kind {
            TokenKind::Regular => self.prequeue.map(|p| Some(p + key.seq)),
            TokenKind::PreQueue => {
                let draw = self.draw.as_ref()?;
                let rank = usize::try_from(key.seq)
                    .ok()
                    .and_then(|s| s.checked_sub(1))
                    .and_then(|i| draw.get(i));
                Some(rank.filter(|&&r| r != 0).map(|&r| u64::from(r)))
            }
        }
    }

    /// Files arrivals by rank; acknowledges those already consumed or never drawn.
    async fn rank_arrivals(&mut self) -> BackendResult<()> {
        let mut done = Vec::new();
        for delivery in std::mem::take(&mut self.unranked) {
            match self.rank_of(delivery.message.key) {
                None => self.unranked.push(delivery),
                Some(None) => {
                    tracing::error!(key = %delivery.message.key, "a pre-queue join arrived after the draw: it has no place");
                    done.push(delivery.tag);
                }
                Some(Some(rank)) if rank <= self.consumed => done.push(delivery.tag),
                Some(Some(rank)) => {
                    if let Some(duplicate) = self.ranked.insert(rank, delivery) {
                        done.push(duplicate.tag);
                    }
                }
            }
        }
        self.settle(&done).await
    }

    /// Another worker may have admitted while this one stood by: before a
    /// missing head of the line is taken for a gap, the store's watermark is read.
    async fn catch_up_watermark(&mut self) -> BackendResult<()> {
        if self.ranked.is_empty() || self.ranked.contains_key(&(self.consumed + 1)) {
            return Ok(());
        }
        let consumed = self.store.consumed(&self.event).await?;
        if consumed > self.consumed {
            self.advance_to(consumed).await?;
        }
        Ok(())
    }

    /// The places from the watermark on, in order, as far as they are known.
    /// The missing ones in the window are probed in one round trip: after an
    /// outage thousands of refused joins may have to be passed at once.
    async fn candidates(&mut self, limit: usize) -> BackendResult<Vec<Candidate>> {
        let mut planned = Vec::new();
        let mut to_probe = Vec::new();
        let last_arrived = self.ranked.keys().next_back().copied().unwrap_or(0);
        for rank in (self.consumed + 1..).take(limit.min(MAX_STEP)) {
            let place = match self.ranked.get(&rank) {
                Some(d) => Planned::Known(Candidate::Arrived {
                    rank,
                    key: d.message.key,
                }),
                // Only a missing place with someone behind it holds the line up.
                None if rank > last_arrived => break,
                None => match self.missing_key(rank) {
                    Missing::Unknown => break,
                    Missing::Nobody => Planned::Known(Candidate::Absent { rank, key: None }),
                    Missing::Key(key) => {
                        to_probe.push(key);
                        Planned::Probe(rank, key)
                    }
                },
            };
            planned.push(place);
        }
        let mut probes = if to_probe.is_empty() {
            Vec::new()
        } else {
            self.store.probe_gaps(&self.event, &to_probe).await?
        }
        .into_iter();
        let mut out = Vec::with_capacity(planned.len());
        for place in planned {
            let candidate = match place {
                Planned::Known(candidate) => Some(candidate),
                Planned::Probe(rank, key) => {
                    let probe = probes
                        .next()
                        .ok_or_else(|| BackendError::bug("a gap of the window went unprobed"))?;
                    self.judge_gap(rank, key, probe)
                }
            };
            match candidate {
                Some(candidate) => out.push(candidate),
                None => break,
            }
        }
        Ok(out)
    }

    /// Whose place `rank` is, for a place whose join has not arrived.
    fn missing_key(&self, rank: u64) -> Missing {
        let prequeue = self.prequeue.unwrap_or(0);
        if rank > prequeue {
            return Missing::Key(TokenKey::regular(rank - prequeue));
        }
        if self.draw.is_none() {
            return Missing::Unknown;
        }
        match self.drawn.get((rank - 1) as usize) {
            Some(&seq) => Missing::Key(TokenKey::pre_queue(seq)),
            // Past the draw's last rank: pre-queue joins that failed.
            None => Missing::Nobody,
        }
    }

    /// The place at `rank` if nobody will ever arrive for it, so admission may pass it.
    fn judge_gap(&self, rank: u64, key: TokenKey, probe: GapProbe) -> Option<Candidate> {
        match probe {
            GapProbe::Failed => Some(Candidate::Absent {
                rank,
                key: Some(key),
            }),
            GapProbe::NotAllocated => None,
            GapProbe::Pending { since_s } => {
                let waited = self.clock.now().unix_timestamp() - since_s;
                // A full buffer may be hiding the message behind later ones: keep waiting.
                let saturated = self.batches.held() >= usize::from(PREFETCH);
                if waited < GAP_GRACE_SECONDS || saturated {
                    if saturated && waited >= GAP_GRACE_SECONDS {
                        tracing::error!(%key, "the head of the line is missing and the buffer is full");
                    }
                    None
                } else {
                    tracing::debug!(%key, waited, "a join never arrived in the line; its place is skipped");
                    Some(Candidate::Absent {
                        rank,
                        key: Some(key),
                    })
                }
            }
        }
    }

    /// Every rank up to this one is consumed.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Stops consuming; unacknowledged deliveries go back to the line.
    pub async fn close(self) {
        self.consumer.close().await;
    }

    async fn advance_to(&mut self, consumed: u64) -> BackendResult<()> {
        self.consumed = consumed;
        let behind = self.ranked.split_off(&(consumed + 1));
        let done: Vec<u64> = std::mem::replace(&mut self.ranked, behind)
            .into_values()
            .map(|d| d.tag)
            .collect();
        self.settle(&done).await
    }

    /// Settles one join per tag listed; acknowledges the batches all settled.
    async fn settle(&mut self, tags: &[u64]) -> BackendResult<()> {
        let acked = self.batches.settle(tags);
        self.consumer.ack(&acked).await
    }
}

/// A place of the admission window before the gaps in it are probed.
enum Planned {
    Known(Candidate),
    Probe(u64, TokenKey),
}

/// Whose place a missing rank is.
enum Missing {
    /// The draw that says so is not known yet.
    Unknown,
    /// Nobody's: past the draw's last rank.
    Nobody,
    Key(TokenKey),
}

/// The joins of each unacknowledged batch still to settle, by delivery tag: a
/// batch is acknowledged only once every join in it is admitted or skipped.
#[derive(Debug, Default)]
struct Settlement {
    unsettled: HashMap<u64, usize>,
}

impl Settlement {
    fn received(&mut self, tag: u64, joins: usize) {
        self.unsettled.insert(tag, joins);
    }

    /// Settles one join per tag listed; returns the tags of the batches now all settled.
    fn settle(&mut self, tags: &[u64]) -> Vec<u64> {
        let mut acked = Vec::new();
        for &tag in tags {
            if let Some(left) = self.unsettled.get_mut(&tag) {
                *left -= 1;
                if *left == 0 {
                    self.unsettled.remove(&tag);
                    acked.push(tag);
                }
            }
        }
        acked
    }

    /// Batches delivered and not yet acknowledged.
    fn held(&self) -> usize {
        self.unsettled.len()
    }
}

/// Admissions earned at the event's rate and not yet spent.
struct Credit {
    admissions: f64,
    last_step: Instant,
}

impl Credit {
    fn new(now: Instant) -> Self {
        Self {
            admissions: 0.0,
            last_step: now,
        }
    }

    /// The time since the last step, which is now.
    fn elapse(&mut self, now: Instant) -> Duration {
        now.saturating_duration_since(std::mem::replace(&mut self.last_step, now))
    }

    /// Earns `per_second` for each second `elapsed`, up to `MAX_BURST`'s worth
    /// (at least one); returns the whole admissions available.
    fn earn(&mut self, per_second: f64, elapsed: Duration) -> usize {
        let burst = (per_second * MAX_BURST.as_secs_f64()).max(1.0);
        self.admissions = (self.admissions + per_second * elapsed.as_secs_f64()).min(burst);
        self.admissions.floor() as usize
    }

    fn spend(&mut self, admitted: u64) {
        self.admissions -= admitted as f64;
    }

    /// The whole admissions earned and not yet spent.
    fn available(&self) -> usize {
        self.admissions.max(0.0).floor() as usize
    }

    fn forfeit(&mut self) {
        self.admissions = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ManualClock;

    /// A step every `every` for `steps` steps, admitting all it may: what each step admitted.
    fn admissions(per_second: f64, every: Duration, steps: usize) -> Vec<usize> {
        let clock = ManualClock::new();
        clock.pause();
        let mut credit = Credit::new(clock.instant());
        (0..steps)
            .map(|_| {
                clock.advance(every);
                let elapsed = credit.elapse(clock.instant());
                let admitted = credit.earn(per_second, elapsed);
                credit.spend(admitted as u64);
                admitted
            })
            .collect()
    }

    #[test]
    fn credit_is_earned_at_the_rate_in_small_steps() {
        assert_eq!(admissions(8.0, Duration::from_millis(125), 8), vec![1; 8]);
    }

    #[test]
    fn a_slow_rate_admits_one_at_a_time_when_its_credit_is_whole() {
        assert_eq!(
            admissions(0.5, Duration::from_millis(500), 8),
            vec![0, 0, 0, 1, 0, 0, 0, 1]
        );
    }

    #[test]
    fn a_long_pause_between_steps_earns_no_more_than_a_burst() {
        let admitted = admissions(100.0, Duration::from_secs(10), 3);
        assert_eq!(
            admitted,
            vec![20, 20, 20],
            "MAX_BURST is 200 ms of the rate"
        );
    }

    #[test]
    fn only_whole_unspent_admissions_are_available() {
        let mut credit = Credit::new(ManualClock::new().instant());
        assert_eq!(credit.earn(20.0, Duration::from_millis(125)), 2);
        credit.spend(2);
        assert_eq!(credit.available(), 0, "half an admission is not one");
        assert_eq!(credit.earn(20.0, Duration::from_millis(125)), 3);
        assert_eq!(credit.available(), 3);
    }

    #[test]
    fn forfeited_credit_starts_again_from_nothing() {
        let mut credit = Credit::new(ManualClock::new().instant());
        assert_eq!(credit.earn(10.0, Duration::from_millis(150)), 1);
        credit.forfeit();
        assert_eq!(credit.earn(10.0, Duration::ZERO), 0);
    }

    #[test]
    fn a_batch_is_acknowledged_once_its_last_join_is_settled() {
        let mut batches = Settlement::default();
        batches.received(7, 3);
        batches.received(8, 1);
        assert_eq!(batches.settle(&[7, 8]), vec![8]);
        assert_eq!(batches.held(), 1);
        assert_eq!(batches.settle(&[7]), Vec::<u64>::new());
        assert_eq!(batches.settle(&[7]), vec![7]);
        assert_eq!(batches.held(), 0);
    }

    #[test]
    fn settling_an_unknown_or_finished_batch_acknowledges_nothing() {
        let mut batches = Settlement::default();
        batches.received(1, 1);
        assert_eq!(batches.settle(&[1]), vec![1]);
        assert_eq!(batches.settle(&[1, 2]), Vec::<u64>::new());
    }
}
