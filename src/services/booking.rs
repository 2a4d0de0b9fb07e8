//! Seats and orders: hold, pay, cancel and expire — never a seat twice.
//!
//! The fast store (Redis) decides holds atomically; the durable record
//! (PostgreSQL) is written in the same request and is the truth the fast store
//! is rebuilt from. Pay, cancel and expire are each one compare-and-set on the
//! record, so exactly one of them ends a pending order; the fast store follows.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use uuid::Uuid;

use super::catalog::Catalog;
use crate::domain::gate::pass_admits;
use crate::domain::{
    BlockFilter, Event, EventId, Holder, Order, OrderStatus, Pass, SeatRef, Venue, VersionedSeats,
    unix_ms,
};
use crate::ports::{
    BackendError, BackendResult, Clock, DelayQueue, ExpiryDue, HoldAsk, HoldOutcome,
    InsertOrderError, OrderRepository, PassTerms, SeatCounts, SeatState, SeatStore, SeatsAt,
    SellOutcome, Transition,
};

/// The seat map may lag the truth by this much (API.md).
const MAP_MAX_AGE: Duration = Duration::from_secs(1);
/// Best-available tries at most this many blocks. Each one lost was taken by
/// another hold after a fresh read, so a request runs out of attempts only
/// under a rush of more winners than this in its lifetime; it then answers
/// with what the seats show, even a block that fits (the buyer may ask again).
const BEST_AVAILABLE_ATTEMPTS: usize = 64;
/// Orders the sweeper expires per pass.
const SWEEP_BATCH: i64 = 500;
/// The sweeper expires what the delay queue has not, this long after the hold ended.
pub const SWEEP_GRACE: Duration = Duration::from_secs(1);
/// A hold still in the fast store this long after it should have ended is reconciled.
const REAP_GRACE: Duration = Duration::from_secs(5);
/// A changed seat costs a client about ten times what its character in the
/// whole compact map does (`"A-12-34":"h",`): past a tenth of the seats, the
/// whole map is the smaller answer.
const CHANGE_COST_IN_SEATS: u64 = 10;

/// Times are kept to the millisecond, so that every read of an order shows the
/// same instant as the answer that created it.
fn to_millis(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(t)
}

#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error("the pass is missing, forged, expired, ended or for another event")]
    InvalidPass,
    #[error("{0}")]
    Invalid(String),
    #[error("seats are not available")]
    SeatsUnavailable(Vec<String>),
    #[error("{0}")]
    NoBlock(NoBlock),
    #[error("the pass would hold more seats than the event allows")]
    LimitExceeded,
    #[error("no such order")]
    NotFound,
    #[error("the hold has expired or was cancelled")]
    Expired,
    #[error("the order is paid")]
    AlreadyPaid,
    #[error(transparent)]
    Backend(#[from] BackendError),
}

pub enum SeatRequest {
    Seats(Vec<String>),
    BestAvailable(BestAvailable),
}

/// What a best-available request asks for: `count` adjacent seats in one row,
/// in one section and at or under a price per seat if given.
#[derive(Debug, Clone)]
pub struct BestAvailable {
    pub count: u32,
    pub section: Option<String>,
    pub max_price_cents: Option<i64>,
}

impl BestAvailable {
    /// The sections it allows, after the checks a hold and a proposal share;
    /// `field` prefixes the names of the fields in messages.
    fn filter(&self, venue: &Venue<'_>, field: &str) -> Result<BlockFilter, BookingError> {
        if self.count == 0 {
            return Err(BookingError::Invalid(format!(
                "{field}count: must be at least 1"
            )));
        }
        if self.max_price_cents.is_some_and(|max| max < 0) {
            return Err(BookingError::Invalid(format!(
                "{field}max_price_cents: must be 0 or more"
            )));
        }
        let section = self
            .section
            .as_deref()
            .map(|id| {
                venue.section_index(id).ok_or_else(|| {
                    BookingError::Invalid(format!("{field}section: unknown section {id:?}"))
                })
            })
            .transpose()?;
        Ok(BlockFilter {
            section,
            max_price_cents: self.max_price_cents,
        })
    }

    /// The refusal when no block fits, saying what is left where it looked.
    fn refused(&self, largest_block: u32) -> BookingError {
        BookingError::NoBlock(NoBlock {
            asked: self.clone(),
            largest_block,
        })
    }
}

/// A best-available request no block fits, and the most adjacent seats in one
/// row still free where it looked: the buyer can ask again for fewer.
#[derive(Debug)]
pub struct NoBlock {
    pub asked: BestAvailable,
    pub largest_block: u32,
}

impl fmt::Display for NoBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut scope = String::new();
        if let Some(section) = &self.asked.section {
            scope.push_str(&format!(" in section {section}"));
        }
        if let Some(max) = self.asked.max_price_cents {
            scope.push_str(&format!(" at {max} cents a seat or less"));
        }
        match self.largest_block {
            0 => write!(f, "no seat is free{scope}"),
            1 => write!(
                f,
                "no {} adjacent seats are free in one row{scope}; only single seats are",
                self.asked.count
            ),
            largest => write!(
                f,
                "no {} adjacent seats are free in one row{scope}; the largest block free is {largest} seats",
                self.asked.count
            ),
        }
    }
}

/// Every seat's state in seat-map order, as of `taken_at`, with the changes
/// this process made since.
#[derive(Clone)]
pub struct SeatMap {
    pub taken_at: Instant,
    pub states: Vec<SeatState>,
}

impl SeatMap {
    /// Whether `seat` of `venue` (the event this map is of) is free.
    fn is_free(&self, venue: &Venue<'_>, seat: SeatRef) -> bool {
        self.states.get(venue.index(seat)) == Some(&SeatState::Free)
    }
}

/// A block picked for a best-available hold. The seats it marked as being
/// taken are given back to other picks when it is dropped, whatever the fast
/// store answered: by then a taken seat is noted in the map.
struct Picked {
    seats: Vec<SeatRef>,
    /// The seats no other pick was taking when this one took them.
    reserved: Vec<SeatRef>,
    picking: Arc<Mutex<HashSet<SeatRef>>>,
}

impl Drop for Picked {
    fn drop(&mut self) {
        let mut in_flight = self.picking.lock().unwrap_or_else(|p| p.into_inner());
        for seat in &self.reserved {
            in_flight.remove(seat);
        }
    }
}

/// What the compact seat map answers a client.
pub enum VersionedAnswer {
    /// The whole map: the client had no version, or the store no longer has
    /// the changes since the one it had (or they would be longer than the map).
    Whole(Arc<VersionedSeats>),
    /// The seats that changed after the client's version, as they are at `version`.
    Changes {
        version: u64,
        seats: Vec<(String, SeatState)>,
    },
}

pub struct Booking {
    catalog: Arc<Catalog>,
    seats: Arc<dyn SeatStore>,
    orders: Arc<dyn OrderRepository>,
    delays: Arc<dyn DelayQueue>,
    maps: RwLock<HashMap<EventId, Arc<SeatMap>>>,
    /// The latest compact map this process built of each event: brought up to
    /// date from the store's log of changes, not read whole each time.
    versioned: RwLock<HashMap<EventId, Arc<VersionedSeats>>>,
    counts: RwLock<foldhash::HashMap<EventId, SeatCounts>>,
    /// Per event, the seats best-available holds of this process are taking:
    /// picked under this lock, taken in the fast store outside it, so that
    /// concurrent requests neither reach for the same block nor wait for each
    /// other's round trip.
    picking: Mutex<HashMap<EventId, Arc<Mutex<HashSet<SeatRef>>>>>,
    /// Paid orders whose sale the fast store missed (it was out of reach,
    /// e.g. failing over): followed again by every sweep until it answers,
    /// not left reading `held` until the reaper's time.
    unfollowed: Mutex<HashMap<Uuid, Order>>,
    clock: Clock,
}

impl Booking {
    pub fn new(
        catalog: Arc<Catalog>,
        seats: Arc<dyn SeatStore>,
        orders: Arc<dyn OrderRepository>,
        delays: Arc<dyn DelayQueue>,
        clock: Clock,
    ) -> Self {
        Self {
            catalog,
            seats,
            orders,
            delays,
            clock,
            maps: RwLock::default(),
            versioned: RwLock::default(),
            counts: RwLock::default(),
            picking: Mutex::default(),
            unfollowed: Mutex::default(),
        }
    }

    /// Holds seats for the holder of `pass`, writes the pending order and
    /// schedules its expiry.
    #[tracing::instrument(skip_all, fields(event = %event.id()))]
    pub async fn hold(
        &self,
        event: &Event,
        pass: &Pass,
        request: SeatRequest,
    ) -> Result<Order, BookingError> {
        let now = to_millis(self.clock.now());
        if !pass_admits(pass, event.id(), unix_ms(now)) {
            return Err(BookingError::InvalidPass);
        }
        let venue = Venue::of(&event.spec);
        let max = event.spec.max_seats_per_user;
        match request {
            SeatRequest::Seats(ids) => {
                if ids.is_empty() {
                    return Err(BookingError::Invalid(
                        "seats: at least one seat is required".into(),
                    ));
                }
                let mut seats = Vec::with_capacity(ids.len());
                for id in &ids {
                    let seat = venue.parse(id).ok_or_else(|| {
                        BookingError::Invalid(format!("seats: unknown seat {id:?}"))
                    })?;
                    if seats.contains(&seat) {
                        return Err(BookingError::Invalid(format!("seats: {id:?} is repeated")));
                    }
                    seats.push(seat);
                }
                if seats.len() > max as usize {
                    return Err(BookingError::LimitExceeded);
                }
                let order = Uuid::new_v4();
                let ids = self.take(event, pass, order, &seats, now).await?;
                self.record_hold(event, pass, order, &seats, ids, now).await
            }
            SeatRequest::BestAvailable(asked) => {
                let filter = asked.filter(&venue, "best_available.")?;
                if asked.count > max {
                    return Err(BookingError::LimitExceeded);
                }
                let order = Uuid::new_v4();
                let (seats, ids) = self
                    .take_best(event, pass, order, &asked, filter, now)
                    .await?;
                self.record_hold(event, pass, order, &seats, ids, now).await
            }
        }
    }

    /// The seats a best-available hold of `asked` would take now, held for
    /// nobody: the page proposes them, the buyer confirms or changes them. The
    /// same rule as `hold`, read from the same map.
    pub async fn propose_best(
        &self,
        event: &Event,
        asked: &BestAvailable,
    ) -> Result<Vec<String>, BookingError> {
        let venue = Venue::of(&event.spec);
        let filter = asked.filter(&venue, "")?;
        let max = event.spec.max_seats_per_user;
        if asked.count > max {
            return Err(BookingError::Invalid(format!(
                "count: must be from 1 to {max}"
            )));
        }
        let map = self.seat_map(event).await?;
        let is_free = |seat| map.is_free(&venue, seat);
        let block = venue
            .best_block(asked.count, filter, is_free)
            .ok_or_else(|| asked.refused(venue.largest_free_block(filter, is_free)))?;
        Ok(block
            .into_iter()
            .map(|seat| venue.id(seat).to_string())
            .collect())
    }

    /// Picks the best free block under the event's lock, then takes it in the
    /// fast store outside the lock, so that concurrent requests pick their blocks
    /// while this one waits for its answer; a block taken meanwhile elsewhere is
    /// marked so and the next one tried.
    async fn take_best(
        &self,
        event: &Event,
        pass: &Pass,
        order: Uuid,
        asked: &BestAvailable,
        filter: BlockFilter,
        now: OffsetDateTime,
    ) -> Result<(Vec<SeatRef>, Vec<String>), BookingError> {
        let venue = Venue::of(&event.spec);
        for attempt in 0..BEST_AVAILABLE_ATTEMPTS {
            // After a lost race the cached map is known to be behind: other
            // instances hold seats it shows free. Read the seats afresh.
            let read = if attempt == 0 {
                self.seat_map(event).await?
            } else {
                self.read_seat_map(event).await?
            };
            let picked = self.pick(event, read, asked, filter)?;
            match self.take(event, pass, order, &picked.seats, now).await {
                // `take` noted the seats held before `picked` lets go of them.
                Ok(ids) => return Ok((picked.seats.clone(), ids)),
                // Taken since the map was read: note them, look again.
                Err(BookingError::SeatsUnavailable(taken)) => self.note_taken(event.id(), &taken),
                Err(other) => return Err(other),
            }
        }
        // Every block tried was taken first by another request. The cached map
        // is behind those takes: what is left is read afresh.
        let map = self.read_seat_map(event).await?;
        Err(asked.refused(venue.largest_free_block(filter, |seat| map.is_free(&venue, seat))))
    }

    /// The seats this process is taking for best-available holds of `event`.
    fn picking(&self, event: &EventId) -> Arc<Mutex<HashSet<SeatRef>>> {
        self.picking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(event.clone())
            .or_default()
            .clone()
    }

    /// The best block free in this process's latest map (`read`, or a newer one
    /// noted since) that no concurrent pick of this process is taking, marked as
    /// being taken until the returned `Picked` is dropped. When only blocks being
    /// taken are left, one of those: the fast store decides between the two
    /// requests, and neither answers that nothing is free while the other's take
    /// may yet fail. Refused, with what is left, when no block fits the map at all.
    fn pick(
        &self,
        event: &Event,
        read: Arc<SeatMap>,
        asked: &BestAvailable,
        filter: BlockFilter,
    ) -> Result<Picked, BookingError> {
        let venue = Venue::of(&event.spec);
        let picking = self.picking(event.id());
        let mut in_flight = picking.lock().unwrap_or_else(|p| p.into_inner());
        let map = self.latest_map(event.id(), read);
        let is_free = |seat| map.is_free(&venue, seat);
        let seats = venue
            .best_block(asked.count, filter, |seat| {
                is_free(seat) && !in_flight.contains(&seat)
            })
            .or_else(|| venue.best_block(asked.count, filter, is_free))
            .ok_or_else(|| asked.refused(venue.largest_free_block(filter, is_free)))?;
        let reserved = seats
            .iter()
            .copied()
            .filter(|&seat| in_flight.insert(seat))
            .collect();
        drop(in_flight);
        Ok(Picked {
            seats,
            reserved,
            picking,
        })
    }

    /// This process's latest map of `event`: `read`, or the cached map if it is
    /// as new and has changes this process noted since.
    fn latest_map(&self, event: &EventId, read: Arc<SeatMap>) -> Arc<SeatMap> {
        self.maps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(event)
            .filter(|cached| cached.taken_at >= read.taken_at)
            .cloned()
            .unwrap_or(read)
    }

    /// The fast store's atomic step of a hold: every seat or none, within the
    /// pass's limit. Returns the seats' ids.
    async fn take(
        &self,
        event: &Event,
        pass: &Pass,
        order: Uuid,
        seats: &[SeatRef],
        now: OffsetDateTime,
    ) -> Result<Vec<String>, BookingError> {
        let venue = Venue::of(&event.spec);
        let ids: Vec<String> = seats.iter().map(|&s| venue.id(s).to_string()).collect();
        let ask = HoldAsk {
            order,
            holder: Holder::new(pass.key, pass.token_id),
            pass: PassTerms::new(
                pass.key,
                pass.expires_at_ms,
                event.spec.admission.pass_seconds,
            ),
            seats: ids,
            max_per_holder: event.spec.max_seats_per_user,
            now_ms: unix_ms(now),
        };
        let hold = async || match self.seats.hold(event.id(), &ask).await {
            Ok(outcome) => Ok(outcome),
            Err(e) => Err(self
                .undo_unanswered_hold(event.id(), order, &ask.holder, &ask.seats, e)
                .await),
        };
        let mut outcome = hold().await?;
        if outcome == HoldOutcome::NeedsRebuild {
            self.rebuild(event.id(), false).await?;
            outcome = hold().await?;
        }
        match outcome {
            HoldOutcome::Held(counts) => {
                self.note_counts(event.id(), counts);
                self.note_seats(event.id(), &ask.seats, SeatState::Held);
                Ok(ask.seats)
            }
            HoldOutcome::Taken(taken) => Err(BookingError::SeatsUnavailable(taken)),
            HoldOutcome::LimitExceeded => Err(BookingError::LimitExceeded),
            HoldOutcome::PassEnded => Err(BookingError::InvalidPass),
            HoldOutcome::NeedsRebuild => {
                Err(BackendError::unavailable("redis", "seat state missing after a rebuild").into())
            }
        }
    }

    /// A hold that got no answer may still have been made: the script ran and
    /// its reply came too late. It is undone before the error is answered, so
    /// that a 503 leaves no seat held for an order that will never be written.
    /// (The release frees only this order's seats; if it gets no answer either,
    /// it still runs after the hold, or the reaper undoes the hold later.)
    async fn undo_unanswered_hold(
        &self,
        event: &EventId,
        order: Uuid,
        holder: &Holder,
        ids: &[String],
        error: BackendError,
    ) -> BackendError {
        match self.seats.release(event, order, holder, ids).await {
            Ok(()) => self.note_released(event, ids),
            Err(undo) => {
                tracing::warn!(%order, error = %undo, "could not undo a hold that got no answer; the reaper will")
            }
        }
        error
    }

    /// Writes the pending order of seats just taken and schedules its expiry;
    /// if the order cannot be written, the hold is undone before answering.
    async fn record_hold(
        &self,
        event: &Event,
        pass: &Pass,
        id: Uuid,
        seats: &[SeatRef],
        ids: Vec<String>,
        now: OffsetDateTime,
    ) -> Result<Order, BookingError> {
        let venue = Venue::of(&event.spec);
        let holder = Holder::new(pass.key, pass.token_id);
        let hold_for = Duration::from_secs(u64::from(event.spec.hold_seconds));
        let order = Order {
            id,
            event: event.id().clone(),
            holder,
            status: OrderStatus::Pending,
            seats: ids,
            // Prices and the per-holder limit are bounded at creation: this cannot overflow.
            amount_cents: seats.iter().map(|&s| venue.price_cents(s)).sum(),
            created_at: now,
            expires_at: now + hold_for,
        };
        let due = ExpiryDue {
            event: event.id().clone(),
            order: id,
        };
        // The order and its timer are written side by side: a timer whose order
        // was refused finds no order when it fires, and does nothing.
        let (inserted, scheduled) = tokio::join!(
            self.orders.insert_order(&order),
            self.delays.schedule_expiry(&due, hold_for)
        );
        if let Err(e) = inserted {
            // Undo the hold before answering: the two stores never disagree past this request.
            match self
                .seats
                .release(event.id(), id, &order.holder, &order.seats)
                .await
            {
                Ok(()) => self.note_released(event.id(), &order.seats),
                Err(undo) => {
                    tracing::error!(order = %id, error = %undo, "could not undo a hold whose order was not written")
                }
            }
            return Err(match e {
                InsertOrderError::SeatsTaken(taken) => BookingError::SeatsUnavailable(taken),
                InsertOrderError::Backend(b) => BookingError::Backend(b),
            });
        }
        if let Err(e) = scheduled {
            tracing::warn!(order = %id, error = %e, "no expiry timer; the sweeper will expire the hold");
        }
        metrics::counter!("anteroom_holds_total", "event" => event.id().to_string()).increment(1);
        metrics::counter!("anteroom_seats_held_total", "event" => event.id().to_string())
            .increment(seats.len() as u64);
        Ok(order)
    }

    /// The order, if it exists and belongs to the holder of `pass`.
    pub async fn order(&self, id: Uuid, pass: &Pass) -> Result<Order, BookingError> {
        let order = self.orders.order(id).await?.ok_or(BookingError::NotFound)?;
        if order.event != pass.event || order.holder != Holder::new(pass.key, pass.token_id) {
            return Err(BookingError::NotFound);
        }
        Ok(order)
    }

    #[tracing::instrument(skip_all, fields(order = %id))]
    pub async fn pay(
        &self,
        id: Uuid,
        pass: &Pass,
        payment_ref: &str,
    ) -> Result<Order, BookingError> {
        let order = self.order(id, pass).await?;
        match order.status {
            OrderStatus::Paid => {
                // A repeated payment also repairs a sale the fast store missed.
                self.follow_sale(&order).await;
                return Ok(order);
            }
            OrderStatus::Expired | OrderStatus::Cancelled => return Err(BookingError::Expired),
            OrderStatus::Pending => {}
        }
        match self
            .orders
            .transition(id, OrderStatus::Paid, Some(payment_ref))
            .await?
        {
            Transition::Changed(order) => {
                self.follow_sale(&order).await;
                metrics::counter!("anteroom_orders_total", "event" => order.event.to_string(), "outcome" => "paid")
                    .increment(1);
                Ok(order)
            }
            Transition::Unchanged(order) if order.status == OrderStatus::Paid => Ok(order),
            Transition::Unchanged(order) => {
                if order.status == OrderStatus::Pending {
                    // Its hold ran out and no timer has fired yet: expire it now.
                    self.expire(&ExpiryDue {
                        event: order.event.clone(),
                        order: id,
                    })
                    .await?;
                }
                Err(BookingError::Expired)
            }
            Transition::NotFound => Err(BookingError::NotFound),
        }
    }

    #[tracing::instrument(skip_all, fields(order = %id))]
    pub async fn cancel(&self, id: Uuid, pass: &Pass) -> Result<Order, BookingError> {
        let order = self.order(id, pass).await?;
        let order = match order.status {
            OrderStatus::Pending => match self
                .orders
                .transition(id, OrderStatus::Cancelled, None)
                .await?
            {
                Transition::Changed(order) => {
                    self.follow_end(&order).await?;
                    metrics::counter!("anteroom_orders_total", "event" => order.event.to_string(), "outcome" => "cancelled")
                        .increment(1);
                    order
                }
                Transition::Unchanged(order) => order,
                Transition::NotFound => return Err(BookingError::NotFound),
            },
            _ => order,
        };
        match order.status {
            OrderStatus::Cancelled => Ok(order),
            OrderStatus::Paid => Err(BookingError::AlreadyPaid),
            OrderStatus::Expired | OrderStatus::Pending => Err(BookingError::Expired),
        }
    }

    /// Expires the order if it is still pending; frees its seats if it ended
    /// without a sale. Idempotent, so a redelivered timer is harmless.
    pub async fn expire(&self, due: &ExpiryDue) -> BackendResult<()> {
        let order = match self
            .orders
            .transition(due.order, OrderStatus::Expired, None)
            .await?
        {
            Transition::Changed(order) => {
                metrics::counter!("anteroom_orders_total", "event" => order.event.to_string(), "outcome" => "expired")
                    .increment(1);
                order
            }
            Transition::Unchanged(order) => order,
            Transition::NotFound => return Ok(()),
        };
        if !order.status.is_live() {
            self.follow_end(&order).await?;
        }
        Ok(())
    }

    /// Expires every pending order whose hold ended a while ago: the safety net
    /// under the delay queue. Returns how many it expired.
    pub async fn expire_overdue(&self) -> BackendResult<usize> {
        let overdue = self.orders.overdue(SWEEP_GRACE, SWEEP_BATCH).await?;
        for due in &overdue {
            self.expire(due).await?;
        }
        Ok(overdue.len())
    }

    /// The fast store follows an ended order: its held seats are free again.
    async fn follow_end(&self, order: &Order) -> BackendResult<()> {
        self.seats
            .release(&order.event, order.id, &order.holder, &order.seats)
            .await?;
        self.note_released(&order.event, &order.seats);
        Ok(())
    }

    /// The fast store follows a sale. The record already says paid, so a
    /// failure here is repaired from the record rather than reported.
    async fn follow_sale(&self, order: &Order) {
        let outcome = self
            .seats
            .sell(&order.event, order.id, &order.holder, &order.seats)
            .await;
        if outcome.is_ok() {
            self.unfollowed_sales().remove(&order.id);
        }
        let repair = match outcome {
            Ok(SellOutcome::Sold) => None,
            Ok(SellOutcome::NeedsRebuild) => Some(false),
            Ok(SellOutcome::Lost) => {
                tracing::error!(order = %order.id, "a paid order's seats were not held in the fast store; rebuilding it");
                Some(true)
            }
            Err(e) => {
                tracing::error!(order = %order.id, error = %e, "could not mark seats sold; the record has the sale, the next sweep repairs the seat state");
                self.unfollowed_sales().insert(order.id, order.clone());
                None
            }
        };
        if let Some(force) = repair
            && let Err(e) = self.rebuild(&order.event, force).await
        {
            tracing::error!(event = %order.event, error = %e, "could not rebuild the seat state");
        }
        self.note_seats(&order.event, &order.seats, SeatState::Sold);
        // The last sale sells out the event: this process says so at once, the others at their next refresh.
        if let Err(e) = self.fresh_counts(&order.event).await {
            tracing::debug!(event = %order.event, error = %e, "could not refresh seat counts after a sale");
        }
    }

    fn unfollowed_sales(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Order>> {
        self.unfollowed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows again every sale the fast store missed; returns how many it now has.
    pub async fn repair_unfollowed_sales(&self) -> usize {
        let missed: Vec<Order> = self.unfollowed_sales().values().cloned().collect();
        for order in &missed {
            self.follow_sale(order).await;
        }
        let still_missed = self.unfollowed_sales();
        missed
            .iter()
            .filter(|order| !still_missed.contains_key(&order.id))
            .count()
    }

    /// Rebuilds the event's seat state from the durable record.
    pub async fn rebuild(&self, event: &EventId, force: bool) -> BackendResult<()> {
        let live = self.orders.live_seats(event).await?;
        tracing::info!(%event, live = live.len(), force, "rebuilding seat state from the record");
        metrics::counter!("anteroom_seat_rebuilds_total", "event" => event.to_string())
            .increment(1);
        self.seats
            .rebuild(event, &live, force, unix_ms(self.clock.now()))
            .await
    }

    /// Reconciles holds that outlived their hold with the record: a hold whose
    /// order never reached it (the process died in between) is undone, and one
    /// whose order ended or was paid is brought in line. Returns how many it
    /// fixed. Each event on its own: one whose store fails (its Redis master
    /// failing over) is logged and tried again at the next sweep, and stops
    /// no other event's.
    pub async fn reap_stale_holds(&self) -> usize {
        let mut fixed = 0;
        for event in self.catalog.all() {
            match self.reap_stale_holds_of(&event).await {
                Ok(n) => fixed += n,
                Err(e) => {
                    tracing::warn!(event = %event.id(), error = %e, "could not reap the event's stale holds")
                }
            }
        }
        fixed
    }

    async fn reap_stale_holds_of(&self, event: &Event) -> BackendResult<usize> {
        let hold = Duration::from_secs(u64::from(event.spec.hold_seconds)) + REAP_GRACE;
        let before = unix_ms(self.clock.now() - hold);
        let mut fixed = 0;
        for held in self.seats.holds_before(event.id(), before).await? {
            match self.orders.order(held.order).await? {
                Some(order) if order.status == OrderStatus::Pending => {
                    self.expire(&ExpiryDue {
                        event: order.event.clone(),
                        order: order.id,
                    })
                    .await?;
                }
                Some(order) if order.status == OrderStatus::Paid => self.follow_sale(&order).await,
                Some(order) => self.follow_end(&order).await?,
                None => {
                    tracing::warn!(order = %held.order, "undoing a hold whose order was never written");
                    self.seats
                        .release(event.id(), held.order, &held.holder, &held.seats)
                        .await?;
                    self.note_released(event.id(), &held.seats);
                }
            }
            fixed += 1;
        }
        Ok(fixed)
    }

    /// The seat map, at most `MAP_MAX_AGE` old.
    pub async fn seat_map(&self, event: &Event) -> BackendResult<Arc<SeatMap>> {
        let cached = self
            .maps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(event.id())
            .cloned();
        let now = self.clock.instant();
        if let Some(map) = cached.filter(|m| now.duration_since(m.taken_at) < MAP_MAX_AGE) {
            return Ok(map);
        }
        self.read_seat_map(event).await
    }

    /// The seat map read from the fast store now (and cached), whatever the cache holds.
    async fn read_seat_map(&self, event: &Event) -> BackendResult<Arc<SeatMap>> {
        let taken_at = self.clock.instant();
        let taken = match self.seats.seat_states(event.id()).await? {
            Some(taken) => taken,
            None => {
                self.rebuild(event.id(), false).await?;
                self.seats
                    .seat_states(event.id())
                    .await?
                    .unwrap_or_default()
            }
        };
        let venue = Venue::of(&event.spec);
        // Work in proportion to the seats taken, not to the venue.
        let mut states =
            vec![SeatState::Free; usize::try_from(event.spec.seats_total()).unwrap_or(0)];
        for (id, state) in taken {
            if let Some(slot) = venue
                .parse(&id)
                .and_then(|seat| states.get_mut(venue.index(seat)))
            {
                *slot = state;
            }
        }
        let map = Arc::new(SeatMap { taken_at, states });
        let mut maps = self.maps.write().unwrap_or_else(|p| p.into_inner());
        // A slower read that began earlier must not replace a newer map (and the changes noted in it).
        if maps
            .get(event.id())
            .is_none_or(|cached| cached.taken_at <= taken_at)
        {
            maps.insert(event.id().clone(), map.clone());
        }
        Ok(map)
    }

    /// The compact seat map at the store's current version, or only what
    /// changed after `since` (a version the client has) while the store keeps
    /// those changes. The same version shows the same states on every process.
    pub async fn versioned_map(
        &self,
        event: &Event,
        since: Option<u64>,
    ) -> BackendResult<VersionedAnswer> {
        // Without a client version, the changes since this process's own copy bring it up to date.
        let base = match since {
            Some(_) => None,
            None => self
                .versioned
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(event.id())
                .cloned(),
        };
        let asked = since.or(base.as_ref().map(|map| map.version()));
        let max_changes = event.spec.seats_total() / CHANGE_COST_IN_SEATS;
        let read = match self
            .seats
            .seats_since(event.id(), asked, max_changes)
            .await?
        {
            Some(read) => read,
            None => {
                self.rebuild(event.id(), false).await?;
                self.seats
                    .seats_since(event.id(), asked, max_changes)
                    .await?
                    .ok_or_else(|| {
                        BackendError::unavailable("redis", "seat state missing after a rebuild")
                    })?
            }
        };
        let venue = Venue::of(&event.spec);
        let map = match (read, base) {
            (SeatsAt::Changed { version, seats }, Some(base)) => {
                if seats.is_empty() && version == base.version() {
                    return Ok(VersionedAnswer::Whole(base));
                }
                Arc::new(base.changed(&venue, version, &seats))
            }
            (SeatsAt::Changed { version, seats }, None) => {
                return Ok(VersionedAnswer::Changes { version, seats });
            }
            (SeatsAt::Taken { version, seats }, _) => {
                Arc::new(VersionedSeats::with_taken(&venue, version, &seats))
            }
        };
        let mut kept = self.versioned.write().unwrap_or_else(|p| p.into_inner());
        // A slower read of an earlier version must not replace a newer copy.
        if kept
            .get(event.id())
            .is_none_or(|copy| copy.version() < map.version())
        {
            kept.insert(event.id().clone(), map.clone());
        }
        Ok(VersionedAnswer::Whole(map))
    }

    /// Shows a change this process made in its cached map at once; other
    /// processes see it when their map is next read (within `MAP_MAX_AGE`).
    fn note_seats(&self, event: &EventId, seats: &[String], state: SeatState) {
        self.patch_map(event, seats, |slot| *slot = state);
    }

    /// Seats a release may have freed. A release compares the order first, so it
    /// may have freed nothing (a late or repeated timer): a sold seat stays sold.
    fn note_released(&self, event: &EventId, seats: &[String]) {
        self.patch_map(event, seats, |slot| {
            if *slot == SeatState::Held {
                *slot = SeatState::Free;
            }
        });
    }

    /// Seats another process took: held or sold, this process cannot tell which.
    fn note_taken(&self, event: &EventId, seats: &[String]) {
        self.patch_map(event, seats, |slot| {
            if *slot == SeatState::Free {
                *slot = SeatState::Held;
            }
        });
    }

    fn patch_map(&self, event: &EventId, seats: &[String], patch: impl Fn(&mut SeatState)) {
        let Some(event) = self.catalog.get(event) else {
            return;
        };
        let venue = Venue::of(&event.spec);
        let mut maps = self.maps.write().unwrap_or_else(|p| p.into_inner());
        let Some(map) = maps.get_mut(event.id()) else {
            return;
        };
        let map = Arc::make_mut(map);
        for seat in seats.iter().filter_map(|id| venue.parse(id)) {
            if let Some(slot) = map.states.get_mut(venue.index(seat)) {
                patch(slot);
            }
        }
    }

    /// Held and sold seats as this process last saw them (refreshed twice a second).
    pub fn counts(&self, event: &EventId) -> SeatCounts {
        self.counts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(event)
            .copied()
            .unwrap_or_default()
    }

    fn note_counts(&self, event: &EventId, counts: SeatCounts) {
        self.counts
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(event.clone(), counts);
    }

    /// Seats neither held nor sold.
    pub fn seats_available(&self, event: &Event) -> u64 {
        let c = self.counts(event.id());
        event.spec.seats_total().saturating_sub(c.held + c.sold)
    }

    /// Every seat is sold: nobody waits for nothing.
    pub fn sold_out(&self, event: &Event) -> bool {
        self.counts(event.id()).sold >= event.spec.seats_total()
    }

    /// Fresh counts from the fast store (rebuilt first if missing), for stats.
    pub async fn fresh_counts(&self, event: &EventId) -> BackendResult<SeatCounts> {
        let counts = match self.seats.seat_counts(event).await? {
            Some(counts) => counts,
            None => {
                self.rebuild(event, false).await?;
                self.seats.seat_counts(event).await?.unwrap_or_default()
            }
        };
        self.note_counts(event, counts);
        Ok(counts)
    }

    pub async fn order_counts(&self, event: &EventId) -> BackendResult<(u64, u64)> {
        self.orders.order_counts(event).await
    }

    /// Refreshes every event's counts, all at once (one whose store is slow
    /// delays no other's); a missing seat state is rebuilt here, so that a
    /// flushed store recovers without waiting for a hold.
    pub async fn refresh_counts(&self) {
        let events = self.catalog.all();
        futures_util::future::join_all(events.iter().map(|event| self.refresh_counts_of(event)))
            .await;
    }

    async fn refresh_counts_of(&self, event: &Event) {
        match self.fresh_counts(event.id()).await {
            Ok(c) => {
                let id = event.id().to_string();
                metrics::gauge!("anteroom_seats_held", "event" => id.clone()).set(c.held as f64);
                metrics::gauge!("anteroom_seats_sold", "event" => id).set(c.sold as f64);
            }
            Err(e) => {
                tracing::debug!(event = %event.id(), error = %e, "could not refresh seat counts")
            }
        }
    }
}
