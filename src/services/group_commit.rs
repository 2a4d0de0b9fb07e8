//! Group commit: the writes of many concurrent requests made durable together.
//!
//! Each caller submits one item under a key (the event, say) and waits for its
//! own answer. Each key has its own committer: a task that takes whatever is
//! queued for its key (up to a group's size), commits it in one go and answers
//! each item. An idle committer adds no wait: the first item goes at once, and
//! the items that arrive while groups are in flight queue up and go out
//! together, so groups grow with the load by themselves.
//!
//! Keys are committed apart so that one key's slow commits hold back only its
//! own items: one event's line being restored, or its calls waiting out their
//! timeout, leave the other events' joins and holds to go on as before.
//!
//! The seat holds, the order record and the expiry timers are wrapped here,
//! behind their own ports: the services that use them see one write per request.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use crate::domain::{EventId, Holder, Order, OrderStatus};
use crate::ports::{
    BackendError, BackendResult, DelayQueue, ExpiryConsumer, ExpiryDue, HeldOrder, HoldAsk,
    HoldOutcome, InsertOrderError, LiveSeat, OrderRepository, SeatCounts, SeatState, SeatStore,
    SeatsAt, SellOutcome, Transition,
};
use crate::tasks::Tasks;

/// How large a group gets and how many of one key's are committed at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_group: usize,
    pub in_flight: usize,
}

/// How long a key's committer waits for more items, with none in flight,
/// before it ends: keys come and go (an event's sale ends), their committers
/// with them. The next item for the key starts a new one.
const IDLE_COMMITTER: Duration = Duration::from_secs(60);

struct Submitted<T, R> {
    item: T,
    reply: oneshot::Sender<R>,
}

type Commit<K, T, R> = dyn Fn(K, Vec<T>) -> BoxFuture<'static, Vec<R>> + Send + Sync;

/// Commits items of type `T` in groups, each key's apart; each item is
/// answered with its own `R`. The committers end when idle or when the tasks
/// they were started on stop, not when this is dropped.
pub struct GroupCommit<K, T, R> {
    shared: Arc<Shared<K, T, R>>,
}

struct Shared<K, T, R> {
    group: &'static str,
    limits: Limits,
    tasks: Tasks,
    commit: Box<Commit<K, T, R>>,
    /// Each key's running committer, by the queue it takes from.
    committers: Mutex<HashMap<K, Queue<T, R>>>,
}

type Queue<T, R> = mpsc::Sender<Submitted<T, R>>;

impl<K, T, R> GroupCommit<K, T, R>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    /// Commits on `tasks`: `commit` gets a key and a group of its items and
    /// returns one answer per item, in order. When `tasks` stop, no item is
    /// taken any more, and those already taken are still committed and
    /// answered. `group` labels what is committed in the metrics: the groups'
    /// sizes (`anteroom_group_commit_size{group}`) and how long each took to
    /// commit (`anteroom_group_commit_seconds{group}`: where a request's wait
    /// goes).
    pub fn start<F, Fut>(group: &'static str, limits: Limits, tasks: &Tasks, commit: F) -> Self
    where
        F: Fn(K, Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        Self {
            shared: Arc::new(Shared {
                group,
                limits,
                tasks: tasks.clone(),
                commit: Box::new(move |key, items| Box::pin(commit(key, items))),
                committers: Mutex::default(),
            }),
        }
    }

    /// Commits `item` with whatever else is queued under `key`; returns its
    /// answer once its group is committed. The key is copied only to start
    /// a committer.
    pub async fn submit(&self, key: &K, item: T) -> BackendResult<R> {
        let (reply, answer) = oneshot::channel();
        let mut submitted = Submitted { item, reply };
        loop {
            if self.shared.tasks.is_stopping() {
                return Err(BackendError::unavailable("anteroom", "shutting down"));
            }
            match Shared::committer(&self.shared, key).send(submitted).await {
                Ok(()) => break,
                // Its committer ended between the lookup and the send (idle,
                // or stopping): the next lookup starts another or says so.
                // Yielding first lets the ending committer's task run.
                Err(mpsc::error::SendError(unsent)) => {
                    submitted = unsent;
                    tokio::task::yield_now().await;
                }
            }
        }
        answer.await.map_err(|_| {
            BackendError::bug("a write was dropped before its group commit answered it")
        })
    }

    /// Keys with a committer running (for tests).
    #[cfg(test)]
    fn committers(&self) -> usize {
        self.shared.lock().len()
    }
}

impl<K, T, R> Shared<K, T, R>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Queue<T, R>>> {
        self.committers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The queue of `key`'s committer, which is started if none runs.
    fn committer(shared: &Arc<Self>, key: &K) -> Queue<T, R> {
        let mut committers = shared.lock();
        // A committer whose queue is closed takes nothing more: one that is
        // ending, or one that ended without retiring (its task panicked).
        if let Some(requests) = committers.get(key)
            && !requests.is_closed()
        {
            return requests.clone();
        }
        let limits = shared.limits;
        let (requests, queued) = mpsc::channel(limits.max_group * limits.in_flight);
        committers.insert(key.clone(), requests.clone());
        let own = requests.downgrade();
        shared
            .tasks
            .spawn(commit_groups(shared.clone(), key.clone(), own, queued));
        requests
    }

    /// Forgets `key`'s committer if it is still the one taking from `own`
    /// (a later one of the same key stays): `own` is a weak handle on the
    /// committer's queue, to tell it from a later one's.
    fn retire(&self, key: &K, own: &mpsc::WeakSender<Submitted<T, R>>) {
        let mut committers = self.lock();
        let mine = own.upgrade();
        if committers
            .get(key)
            .zip(mine.as_ref())
            .is_some_and(|(requests, mine)| requests.same_channel(mine))
        {
            committers.remove(key);
        }
    }
}

/// One key's committer: takes groups from `queued` and commits them, up to
/// the limits' number at once, until its queue closes and is drained.
async fn commit_groups<K, T, R>(
    shared: Arc<Shared<K, T, R>>,
    key: K,
    own: mpsc::WeakSender<Submitted<T, R>>,
    mut queued: mpsc::Receiver<Submitted<T, R>>,
) where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    let limits = shared.limits;
    let group_name = shared.group;
    let in_flight = Arc::new(Semaphore::new(limits.in_flight));
    loop {
        let next = tokio::select! {
            // In this order: a stop is seen even while items keep coming, and
            // the committer retires only when none is queued.
            biased;
            // Nothing is taken after this; what was taken is still committed:
            // its callers are waiting for the answer.
            _ = shared.tasks.stopping(), if !queued.is_closed() => {
                queued.close();
                continue;
            }
            next = queued.recv() => next,
            _ = tokio::time::sleep(IDLE_COMMITTER), if !queued.is_closed() => {
                // Only with nothing in flight, so that a new committer for the
                // key rarely commits beside this one's last groups. An item
                // sent between the retiring and the close is still taken and
                // committed here, maybe beside the new committer's first
                // group: the key's limit is then passed by that one group. A
                // send after the close fails, and its caller looks the key up
                // again.
                if in_flight.available_permits() == limits.in_flight {
                    shared.retire(&key, &own);
                    queued.close();
                }
                continue;
            }
        };
        let Some(first) = next else { return };
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        // Whatever queued while the groups in flight were being committed.
        let mut group = vec![first];
        while group.len() < limits.max_group {
            match queued.try_recv() {
                Ok(submitted) => group.push(submitted),
                Err(_) => break,
            }
        }
        metrics::histogram!("anteroom_group_commit_size", "group" => group_name)
            .record(group.len() as f64);
        let (items, replies): (Vec<T>, Vec<_>) =
            group.into_iter().map(|s| (s.item, s.reply)).unzip();
        let committing = (shared.commit)(key.clone(), items);
        shared.tasks.spawn(async move {
            let started = Instant::now();
            let answers = committing.await;
            metrics::histogram!("anteroom_group_commit_seconds", "group" => group_name)
                .record(started.elapsed());
            if answers.len() != replies.len() {
                tracing::error!(
                    group = group_name,
                    items = replies.len(),
                    answers = answers.len(),
                    "a group commit answered a different number of items"
                );
            }
            for (reply, answer) in replies.into_iter().zip(answers) {
                // The caller may have gone; its write stands regardless.
                let _ = reply.send(answer);
            }
            drop(permit);
        });
    }
}

/// Seat holds grouped: the holds of one event asked for while a group is in
/// flight go to the fast store in one call. A hold costs Redis mostly per call
/// (the script's dispatch, its keys, its fences, a new version of the seat
/// map), and the service one round trip per call. Two in flight, as the joins.
const HOLD_GROUPS: Limits = Limits {
    max_group: 128,
    in_flight: 2,
};
/// Order inserts grouped: several holds' orders in one transaction. One
/// group in flight: a group costs mostly per group (a transaction, its
/// commit's flush), and the holds reach it in bursts (a group of holds answered
/// by Redis at once), so while one group commits the next burst gathers
/// behind it. The price: a slow commit holds back every order behind it until
/// it ends (docs/benchmarks.md: with the holds grouped, one in flight cost
/// 133–145 µs of the servers' CPU per hold against 165–198 with two).
const ORDER_GROUPS: Limits = Limits {
    max_group: 256,
    in_flight: 1,
};
/// Expiry timers grouped: one message (per event) for the timers of several
/// holds; one in flight, as the orders (one confirm per group).
const TIMER_GROUPS: Limits = Limits {
    max_group: 512,
    in_flight: 1,
};

/// The order record, with concurrent inserts committed together (each still
/// answered on its own: a refused order fails alone). Everything else goes
/// straight to the record.
pub struct GroupCommittedOrders {
    record: Arc<dyn OrderRepository>,
    /// One key: the orders of every event go to one database.
    inserts: GroupCommit<(), Order, Result<(), InsertOrderError>>,
}

impl GroupCommittedOrders {
    pub fn start(record: Arc<dyn OrderRepository>, tasks: &Tasks) -> Self {
        Self::with_limits(record, ORDER_GROUPS, tasks)
    }

    fn with_limits(record: Arc<dyn OrderRepository>, limits: Limits, tasks: &Tasks) -> Self {
        let inserts = GroupCommit::start("order", limits, tasks, {
            let record = record.clone();
            move |(), orders: Vec<Order>| {
                let record = record.clone();
                async move { record.insert_orders(&orders).await }
            }
        });
        Self { record, inserts }
    }
}

#[async_trait]
impl OrderRepository for GroupCommittedOrders {
    async fn insert_orders(&self, orders: &[Order]) -> Vec<Result<(), InsertOrderError>> {
        self.record.insert_orders(orders).await
    }

    async fn insert_order(&self, order: &Order) -> Result<(), InsertOrderError> {
        self.inserts.submit(&(), order.clone()).await?
    }

    async fn order(&self, id: Uuid) -> BackendResult<Option<Order>> {
        self.record.order(id).await
    }

    async fn transition(
        &self,
        id: Uuid,
        to: OrderStatus,
        payment_ref: Option<&str>,
    ) -> BackendResult<Transition> {
        self.record.transition(id, to, payment_ref).await
    }

    async fn live_seats(&self, event: &EventId) -> BackendResult<Vec<LiveSeat>> {
        self.record.live_seats(event).await
    }

    async fn overdue(&self, grace: Duration, limit: i64) -> BackendResult<Vec<ExpiryDue>> {
        self.record.overdue(grace, limit).await
    }

    async fn order_counts(&self, event: &EventId) -> BackendResult<(u64, u64)> {
        self.record.order_counts(event).await
    }
}

/// The fast store's seats, with concurrent holds of one event made in one
/// atomic step (each still answered on its own: a hold refused fails alone).
/// Everything else goes straight to the store.
pub struct GroupCommittedSeats {
    store: Arc<dyn SeatStore>,
    holds: GroupCommit<EventId, HoldAsk, BackendResult<HoldOutcome>>,
}

impl GroupCommittedSeats {
    pub fn start(store: Arc<dyn SeatStore>, tasks: &Tasks) -> Self {
        Self::with_limits(store, HOLD_GROUPS, tasks)
    }

    fn with_limits(store: Arc<dyn SeatStore>, limits: Limits, tasks: &Tasks) -> Self {
        let holds = GroupCommit::start("hold", limits, tasks, {
            let store = store.clone();
            move |event: EventId, asks: Vec<HoldAsk>| {
                let store = store.clone();
                async move { hold_all(&*store, &event, &asks).await }
            }
        });
        Self { store, holds }
    }
}

/// One call for a group of one event's holds; each hold answered with its own
/// outcome, or the call's error.
async fn hold_all(
    store: &dyn SeatStore,
    event: &EventId,
    asks: &[HoldAsk],
) -> Vec<BackendResult<HoldOutcome>> {
    match store.hold_group(event, asks).await {
        Ok(outcomes) if outcomes.len() == asks.len() => outcomes.into_iter().map(Ok).collect(),
        Ok(_) => vec![
            Err(BackendError::bug(
                "a group of holds answered a different number"
            ));
            asks.len()
        ],
        Err(e) => vec![Err(e); asks.len()],
    }
}

#[async_trait]
impl SeatStore for GroupCommittedSeats {
    async fn hold_group(
        &self,
        event: &EventId,
        asks: &[HoldAsk],
    ) -> BackendResult<Vec<HoldOutcome>> {
        self.store.hold_group(event, asks).await
    }

    async fn hold(&self, event: &EventId, ask: &HoldAsk) -> BackendResult<HoldOutcome> {
        self.holds.submit(event, ask.clone()).await?
    }

    async fn release(
        &self,
        event: &EventId,
        order: Uuid,
        holder: &Holder,
        seats: &[String],
    ) -> BackendResult<()> {
        self.store.release(event, order, holder, seats).await
    }

    async fn sell(
        &self,
        event: &EventId,
        order: Uuid,
        holder: &Holder,
        seats: &[String],
    ) -> BackendResult<SellOutcome> {
        self.store.sell(event, order, holder, seats).await
    }

    async fn rebuild(
        &self,
        event: &EventId,
        live: &[LiveSeat],
        force: bool,
        now_ms: i64,
    ) -> BackendResult<()> {
        self.store.rebuild(event, live, force, now_ms).await
    }

    async fn holds_before(&self, event: &EventId, before_ms: i64) -> BackendResult<Vec<HeldOrder>> {
        self.store.holds_before(event, before_ms).await
    }

    async fn seat_states(
        &self,
        event: &EventId,
    ) -> BackendResult<Option<HashMap<String, SeatState>>> {
        self.store.seat_states(event).await
    }

    async fn seat_counts(&self, event: &EventId) -> BackendResult<Option<SeatCounts>> {
        self.store.seat_counts(event).await
    }

    async fn seats_since(
        &self,
        event: &EventId,
        since: Option<u64>,
        max_changes: u64,
    ) -> BackendResult<Option<SeatsAt>> {
        self.store.seats_since(event, since, max_changes).await
    }
}

/// The expiry timers, with the timers of concurrent holds of one event
/// published as one message and confirmed together; each hold is answered
/// once its own timer is confirmed.
pub struct GroupCommittedTimers {
    queue: Arc<dyn DelayQueue>,
    /// Keyed by event and delay: one message carries one event's orders, and
    /// each event's delay queue has its TTL.
    timers: GroupCommit<(EventId, Duration), Uuid, BackendResult<()>>,
}

impl GroupCommittedTimers {
    pub fn start(queue: Arc<dyn DelayQueue>, tasks: &Tasks) -> Self {
        Self::with_limits(queue, TIMER_GROUPS, tasks)
    }

    fn with_limits(queue: Arc<dyn DelayQueue>, limits: Limits, tasks: &Tasks) -> Self {
        let timers = GroupCommit::start("timer", limits, tasks, {
            let queue = queue.clone();
            move |(event, after): (EventId, Duration), orders: Vec<Uuid>| {
                let queue = queue.clone();
                async move {
                    let published = queue.schedule_expiries(&event, &orders, after).await;
                    vec![published; orders.len()]
                }
            }
        });
        Self { queue, timers }
    }
}

#[async_trait]
impl DelayQueue for GroupCommittedTimers {
    async fn schedule_expiries(
        &self,
        event: &EventId,
        orders: &[Uuid],
        after: Duration,
    ) -> BackendResult<()> {
        self.queue.schedule_expiries(event, orders, after).await
    }

    async fn schedule_expiry(&self, due: &ExpiryDue, after: Duration) -> BackendResult<()> {
        self.timers
            .submit(&(due.event.clone(), after), due.order)
            .await?
    }

    async fn expiries(&self, prefetch: u16) -> BackendResult<Box<ExpiryConsumer>> {
        self.queue.expiries(prefetch).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use futures_util::future::join_all;
    use time::OffsetDateTime;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::domain::{Holder, TokenKey};
    use crate::ports::{Consumer, Delivered, ExpiryBatch};

    /// The order record in memory, with the record's rules: a seat is in at
    /// most one live order, and an order refused for it is refused alone. Its
    /// commits can be held at a gate, to see what queues behind them.
    #[derive(Default)]
    struct MemoryOrders {
        orders: Mutex<BTreeMap<Uuid, Order>>,
        /// The size of each group inserted, in order.
        groups: Mutex<Vec<usize>>,
        /// When set, each group waits for a permit before it is inserted.
        gate: Option<Semaphore>,
    }

    impl MemoryOrders {
        fn gated() -> Self {
            Self {
                gate: Some(Semaphore::new(0)),
                ..Self::default()
            }
        }

        fn open_gate(&self) {
            if let Some(gate) = &self.gate {
                gate.add_permits(Semaphore::MAX_PERMITS / 2);
            }
        }

        fn orders(&self) -> std::sync::MutexGuard<'_, BTreeMap<Uuid, Order>> {
            self.orders.lock().unwrap()
        }
    }

    #[async_trait]
    impl OrderRepository for MemoryOrders {
        async fn insert_orders(&self, orders: &[Order]) -> Vec<Result<(), InsertOrderError>> {
            if let Some(gate) = &self.gate {
                gate.acquire().await.expect("the gate stays").forget();
            }
            self.groups.lock().unwrap().push(orders.len());
            let mut stored = self.orders();
            orders
                .iter()
                .map(|order| {
                    let taken: Vec<String> = order
                        .seats
                        .iter()
                        .filter(|seat| {
                            stored.values().any(|o| {
                                o.event == order.event
                                    && o.status.is_live()
                                    && o.seats.contains(seat)
                            })
                        })
                        .cloned()
                        .collect();
                    if !taken.is_empty() {
                        return Err(InsertOrderError::SeatsTaken(taken));
                    }
                    stored.insert(order.id, order.clone());
                    Ok(())
                })
                .collect()
        }

        async fn order(&self, id: Uuid) -> BackendResult<Option<Order>> {
            Ok(self.orders().get(&id).cloned())
        }

        async fn transition(
            &self,
            id: Uuid,
            to: OrderStatus,
            _payment_ref: Option<&str>,
        ) -> BackendResult<Transition> {
            let now = OffsetDateTime::now_utc();
            let mut stored = self.orders();
            let Some(order) = stored.get_mut(&id) else {
                return Ok(Transition::NotFound);
            };
            let allowed = order.status == OrderStatus::Pending
                && match to {
                    OrderStatus::Paid => order.expires_at > now,
                    OrderStatus::Expired => order.expires_at <= now,
                    _ => true,
                };
            if !allowed {
                return Ok(Transition::Unchanged(order.clone()));
            }
            order.status = to;
            Ok(Transition::Changed(order.clone()))
        }

        async fn live_seats(&self, event: &EventId) -> BackendResult<Vec<LiveSeat>> {
            Ok(self
                .orders()
                .values()
                .filter(|o| o.event == *event && o.status.is_live())
                .flat_map(|o| {
                    o.seats.iter().map(|seat| LiveSeat {
                        seat: seat.clone(),
                        order: o.id,
                        holder: o.holder.clone(),
                        sold: o.status == OrderStatus::Paid,
                    })
                })
                .collect())
        }

        async fn overdue(&self, grace: Duration, limit: i64) -> BackendResult<Vec<ExpiryDue>> {
            let before = OffsetDateTime::now_utc() - grace;
            Ok(self
                .orders()
                .values()
                .filter(|o| o.status == OrderStatus::Pending && o.expires_at < before)
                .take(usize::try_from(limit).unwrap_or(0))
                .map(|o| ExpiryDue {
                    event: o.event.clone(),
                    order: o.id,
                })
                .collect())
        }

        async fn order_counts(&self, event: &EventId) -> BackendResult<(u64, u64)> {
            let stored = self.orders();
            let count = |status| {
                stored
                    .values()
                    .filter(|o| o.event == *event && o.status == status)
                    .count() as u64
            };
            Ok((count(OrderStatus::Paid), count(OrderStatus::Expired)))
        }
    }

    fn order(seats: &[&str]) -> Order {
        let now = OffsetDateTime::now_utc();
        Order {
            id: Uuid::new_v4(),
            event: EventId::parse("sale").unwrap(),
            holder: Holder::new(TokenKey::regular(1), Uuid::new_v4()),
            status: OrderStatus::Pending,
            seats: seats.iter().map(|s| s.to_string()).collect(),
            amount_cents: 100,
            created_at: now,
            expires_at: now + Duration::from_secs(60),
        }
    }

    const ONE_AT_A_TIME: Limits = Limits {
        max_group: 100,
        in_flight: 1,
    };

    /// Orders committed one group at a time into a record that holds every
    /// write until its gate is opened.
    struct Gated {
        tasks: Tasks,
        memory: Arc<MemoryOrders>,
        orders: Arc<GroupCommittedOrders>,
    }

    impl Gated {
        fn new() -> Self {
            let tasks = Tasks::new();
            let memory = Arc::new(MemoryOrders::gated());
            let orders = Arc::new(GroupCommittedOrders::with_limits(
                memory.clone(),
                ONE_AT_A_TIME,
                &tasks,
            ));
            Self {
                tasks,
                memory,
                orders,
            }
        }

        /// Inserts `order` in a task of its own, as a hold's request would.
        fn insert(&self, order: Order) -> tokio::task::JoinHandle<Result<(), InsertOrderError>> {
            let orders = self.orders.clone();
            tokio::spawn(async move { orders.insert_order(&order).await })
        }
    }

    /// Lets every spawned task run until it waits (the test runtime has one thread).
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn the_first_order_goes_at_once_and_those_arriving_meanwhile_go_together() {
        let gated = Gated::new();
        let first = gated.insert(order(&["A-1-1"]));
        settle().await;
        // The first is being committed alone; ten more queue behind it.
        let behind: Vec<_> = (2..=11)
            .map(|n| gated.insert(order(&[&format!("A-1-{n}")])))
            .collect();
        settle().await;
        gated.memory.open_gate();
        first.await.unwrap().unwrap();
        for inserted in join_all(behind).await {
            inserted.unwrap().unwrap();
        }
        assert_eq!(*gated.memory.groups.lock().unwrap(), [1, 10]);
        assert_eq!(gated.memory.orders().len(), 11);
        gated.tasks.stop(Duration::from_secs(5)).await;
    }

    #[tokio::test]
    async fn an_order_refused_in_a_group_fails_alone_and_the_others_commit() {
        let gated = Gated::new();
        let first = gated.insert(order(&["A-1-1"]));
        settle().await;
        let group = [
            order(&["A-1-2"]),
            order(&["A-1-1", "A-1-3"]), // A-1-1 is the first order's
            order(&["A-1-4", "A-1-2"]), // A-1-2 goes to an order earlier in the group
            order(&["A-1-5"]),
        ];
        let answers: Vec<_> = group.iter().cloned().map(|o| gated.insert(o)).collect();
        settle().await;
        gated.memory.open_gate();
        first.await.unwrap().unwrap();
        let answers: Vec<_> = join_all(answers)
            .await
            .into_iter()
            .map(|a| a.unwrap().map_err(|e| e.to_string()))
            .collect();
        assert_eq!(
            answers,
            [
                Ok(()),
                Err(InsertOrderError::SeatsTaken(vec!["A-1-1".into()]).to_string()),
                Err(InsertOrderError::SeatsTaken(vec!["A-1-2".into()]).to_string()),
                Ok(()),
            ]
        );
        assert_eq!(*gated.memory.groups.lock().unwrap(), [1, 4]);
        {
            let stored = gated.memory.orders();
            assert!(stored.contains_key(&group[0].id) && stored.contains_key(&group[3].id));
            assert!(!stored.contains_key(&group[1].id) && !stored.contains_key(&group[2].id));
        }
        gated.tasks.stop(Duration::from_secs(5)).await;
    }

    #[tokio::test]
    async fn stopping_commits_what_was_taken_and_refuses_what_comes_after() {
        let gated = Gated::new();
        let taken = [
            gated.insert(order(&["A-1-1"])),
            gated.insert(order(&["A-1-2"])),
        ];
        settle().await;
        let stopped = tokio::spawn({
            let tasks = gated.tasks.clone();
            async move { tasks.stop(Duration::from_secs(5)).await }
        });
        settle().await;
        gated.memory.open_gate();
        for inserted in join_all(taken).await {
            inserted.unwrap().unwrap();
        }
        assert!(stopped.await.unwrap(), "the committer ended");
        assert!(matches!(
            gated.orders.insert_order(&order(&["A-1-3"])).await,
            Err(InsertOrderError::Backend(BackendError::Unavailable(_)))
        ));
        assert_eq!(gated.memory.orders().len(), 2);
    }

    /// Expiry timers in memory: each scheduled group is one message, delivered
    /// once its delay has run out and kept until acknowledged.
    #[derive(Default)]
    struct MemoryTimers {
        messages: Arc<Mutex<Vec<(u64, std::time::Instant, ExpiryBatch)>>>,
        /// Scheduling for this event fails, as a broker that refuses it would.
        refused: Option<EventId>,
    }

    #[async_trait]
    impl DelayQueue for MemoryTimers {
        async fn schedule_expiries(
            &self,
            event: &EventId,
            orders: &[Uuid],
            after: Duration,
        ) -> BackendResult<()> {
            if self.refused.as_ref() == Some(event) {
                return Err(BackendError::unavailable("memory", "refused"));
            }
            let mut messages = self.messages.lock().unwrap();
            let tag = messages.len() as u64 + 1;
            let batch = ExpiryBatch {
                event: event.clone(),
                orders: orders.to_vec(),
            };
            messages.push((tag, std::time::Instant::now() + after, batch));
            Ok(())
        }

        async fn expiries(&self, _prefetch: u16) -> BackendResult<Box<ExpiryConsumer>> {
            Ok(Box::new(MemoryExpiries(self.messages.clone())))
        }
    }

    struct MemoryExpiries(Arc<Mutex<Vec<(u64, std::time::Instant, ExpiryBatch)>>>);

    #[async_trait]
    impl Consumer<ExpiryBatch> for MemoryExpiries {
        async fn receive(
            &mut self,
            _wait: Duration,
            max: usize,
        ) -> BackendResult<Vec<Delivered<ExpiryBatch>>> {
            let now = std::time::Instant::now();
            Ok(self
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, due, _)| *due <= now)
                .take(max)
                .map(|(tag, _, message)| Delivered {
                    message: message.clone(),
                    tag: *tag,
                })
                .collect())
        }

        async fn ack(&mut self, tags: &[u64]) -> BackendResult<()> {
            self.0
                .lock()
                .unwrap()
                .retain(|(tag, _, _)| !tags.contains(tag));
            Ok(())
        }

        async fn retry(&mut self, _tag: u64) -> BackendResult<()> {
            Ok(())
        }

        async fn close(self: Box<Self>) {}
    }

    #[tokio::test]
    async fn concurrent_timers_go_as_one_message_per_event_each_answered_with_its_own() {
        let tasks = Tasks::new();
        let memory = Arc::new(MemoryTimers {
            refused: Some(EventId::parse("down").unwrap()),
            ..MemoryTimers::default()
        });
        let timers = GroupCommittedTimers::with_limits(memory.clone(), ONE_AT_A_TIME, &tasks);
        let due = |event: &str| ExpiryDue {
            event: EventId::parse(event).unwrap(),
            order: Uuid::new_v4(),
        };
        let dues = [due("a"), due("b"), due("a"), due("down"), due("a")];
        let answers = join_all(
            dues.iter()
                .map(|d| timers.schedule_expiry(d, Duration::ZERO)),
        )
        .await;
        let answered: Vec<bool> = answers.iter().map(Result::is_ok).collect();
        assert_eq!(answered, [true, true, true, false, true]);

        let mut consumer = timers.expiries(64).await.unwrap();
        let delivered = consumer.receive(Duration::ZERO, 64).await.unwrap();
        let mut messages: Vec<(String, Vec<Uuid>)> = delivered
            .iter()
            .map(|d| (d.message.event.to_string(), d.message.orders.clone()))
            .collect();
        messages.sort();
        assert_eq!(
            messages,
            [
                (
                    "a".to_owned(),
                    vec![dues[0].order, dues[2].order, dues[4].order]
                ),
                ("b".to_owned(), vec![dues[1].order]),
            ]
        );
        let tags: Vec<u64> = delivered.iter().map(|d| d.tag).collect();
        consumer.ack(&tags).await.unwrap();
        assert!(
            consumer
                .receive(Duration::ZERO, 64)
                .await
                .unwrap()
                .is_empty()
        );
        tasks.stop(Duration::from_secs(5)).await;
    }

    /// The fast store's seats in memory: a seat goes to the first hold that
    /// asks for it. Records each call's event and number of holds.
    #[derive(Default)]
    struct MemorySeats {
        taken: Mutex<HashMap<(EventId, String), Uuid>>,
        calls: Mutex<Vec<(String, usize)>>,
        /// Holds for this event fail, as a store that is down would.
        refused: Option<EventId>,
        /// Holds for this event wait for a permit, as on a node failing over.
        stuck: Option<(EventId, Semaphore)>,
    }

    #[async_trait]
    impl SeatStore for MemorySeats {
        async fn hold_group(
            &self,
            event: &EventId,
            asks: &[HoldAsk],
        ) -> BackendResult<Vec<HoldOutcome>> {
            if self.refused.as_ref() == Some(event) {
                return Err(BackendError::unavailable("memory", "refused"));
            }
            if let Some((_, gate)) = self.stuck.as_ref().filter(|(stuck, _)| stuck == event) {
                gate.acquire().await.expect("the gate stays").forget();
            }
            self.calls
                .lock()
                .unwrap()
                .push((event.to_string(), asks.len()));
            let mut taken = self.taken.lock().unwrap();
            Ok(asks
                .iter()
                .map(|ask| {
                    let gone: Vec<String> = ask
                        .seats
                        .iter()
                        .filter(|seat| taken.contains_key(&(event.clone(), (*seat).clone())))
                        .cloned()
                        .collect();
                    if !gone.is_empty() {
                        return HoldOutcome::Taken(gone);
                    }
                    for seat in &ask.seats {
                        taken.insert((event.clone(), seat.clone()), ask.order);
                    }
                    HoldOutcome::Held(SeatCounts::default())
                })
                .collect())
        }

        async fn release(
            &self,
            _: &EventId,
            _: Uuid,
            _: &Holder,
            _: &[String],
        ) -> BackendResult<()> {
            Err(BackendError::bug("not used by these tests"))
        }

        async fn sell(
            &self,
            _: &EventId,
            _: Uuid,
            _: &Holder,
            _: &[String],
        ) -> BackendResult<SellOutcome> {
            Err(BackendError::bug("not used by these tests"))
        }

        async fn rebuild(&self, _: &EventId, _: &[LiveSeat], _: bool, _: i64) -> BackendResult<()> {
            Err(BackendError::bug("not used by these tests"))
        }

        async fn holds_before(&self, _: &EventId, _: i64) -> BackendResult<Vec<HeldOrder>> {
            Err(BackendError::bug("not used by these tests"))
        }

        async fn seat_states(
            &self,
            _: &EventId,
        ) -> BackendResult<Option<HashMap<String, SeatState>>> {
            Err(BackendError::bug("not used by these tests"))
        }

        async fn seat_counts(&self, _: &EventId) -> BackendResult<Option<SeatCounts>> {
            Err(BackendError::bug("not used by these tests"))
        }

        async fn seats_since(
            &self,
            _: &EventId,
            _: Option<u64>,
            _: u64,
        ) -> BackendResult<Option<SeatsAt>> {
            Err(BackendError::bug("not used by these tests"))
        }
    }

    #[tokio::test]
    async fn concurrent_holds_go_as_one_call_per_event_each_answered_with_its_own() {
        let tasks = Tasks::new();
        let memory = Arc::new(MemorySeats {
            refused: Some(EventId::parse("down").unwrap()),
            ..MemorySeats::default()
        });
        let seats = GroupCommittedSeats::with_limits(memory.clone(), ONE_AT_A_TIME, &tasks);
        let holds = [
            ("a", hold_of("A-1-1")),
            ("b", hold_of("A-1-1")),
            ("a", hold_of("A-1-1")), // the first hold's, earlier in the same call
            ("down", hold_of("A-1-2")),
            ("a", hold_of("A-1-2")),
        ];
        let events: Vec<EventId> = holds
            .iter()
            .map(|(e, _)| EventId::parse(e).unwrap())
            .collect();
        let answers = join_all(
            holds
                .iter()
                .zip(&events)
                .map(|((_, ask), event)| seats.hold(event, ask)),
        )
        .await;
        let answers: Vec<Result<HoldOutcome, String>> = answers
            .into_iter()
            .map(|a| a.map_err(|e| e.to_string()))
            .collect();
        let held = Ok(HoldOutcome::Held(SeatCounts::default()));
        assert_eq!(
            answers,
            [
                held.clone(),
                held.clone(),
                Ok(HoldOutcome::Taken(vec!["A-1-1".to_owned()])),
                Err(BackendError::unavailable("memory", "refused").to_string()),
                held,
            ]
        );
        let mut calls = memory.calls.lock().unwrap().clone();
        calls.sort();
        assert_eq!(calls, [("a".to_owned(), 3), ("b".to_owned(), 1)]);
        tasks.stop(Duration::from_secs(5)).await;
    }

    fn hold_of(seat: &str) -> HoldAsk {
        HoldAsk {
            order: Uuid::new_v4(),
            holder: Holder::new(TokenKey::regular(1), Uuid::new_v4()),
            pass: crate::ports::PassTerms::new(TokenKey::regular(1), 0, 600),
            seats: vec![seat.to_owned()],
            max_per_holder: 4,
            now_ms: 0,
        }
    }

    // Paused time: were the holds elsewhere held back, the runtime would go
    // idle and jump to their deadline at once.
    #[tokio::test(start_paused = true)]
    async fn an_events_stuck_holds_hold_back_only_that_events_holds() {
        let tasks = Tasks::new();
        let stuck = EventId::parse("stuck").unwrap();
        let memory = Arc::new(MemorySeats {
            stuck: Some((stuck.clone(), Semaphore::new(0))),
            ..MemorySeats::default()
        });
        let seats = Arc::new(GroupCommittedSeats::with_limits(
            memory.clone(),
            ONE_AT_A_TIME,
            &tasks,
        ));
        let hold = |event: &EventId, seat: &str| {
            let (seats, event, ask) = (seats.clone(), event.clone(), hold_of(seat));
            tokio::spawn(async move { seats.hold(&event, &ask).await })
        };
        let first = hold(&stuck, "A-1-1");
        settle().await;
        // The stuck event's call takes its one place in flight; the next
        // waits behind it.
        let behind = hold(&stuck, "A-1-2");
        settle().await;
        let elsewhere = EventId::parse("elsewhere").unwrap();
        for seat in ["A-1-1", "A-1-2"] {
            let answer = tokio::time::timeout(Duration::from_secs(10), hold(&elsewhere, seat))
                .await
                .expect("another event's hold is answered while one event is stuck");
            assert_eq!(
                answer.unwrap().unwrap(),
                HoldOutcome::Held(SeatCounts::default())
            );
        }
        assert!(!first.is_finished() && !behind.is_finished());

        if let Some((_, gate)) = &memory.stuck {
            gate.add_permits(2);
        }
        for held in [first, behind] {
            let answer = held.await.unwrap();
            assert_eq!(answer.unwrap(), HoldOutcome::Held(SeatCounts::default()));
        }
        assert_eq!(
            *memory.calls.lock().unwrap(),
            [
                ("elsewhere".to_owned(), 1),
                ("elsewhere".to_owned(), 1),
                ("stuck".to_owned(), 1),
                ("stuck".to_owned(), 1),
            ]
        );
        tasks.stop(Duration::from_secs(5)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_events_committer_ends_and_its_next_hold_starts_another() {
        let tasks = Tasks::new();
        let memory = Arc::new(MemorySeats::default());
        let seats = GroupCommittedSeats::with_limits(memory.clone(), ONE_AT_A_TIME, &tasks);
        let [a, b] = ["a", "b"].map(|e| EventId::parse(e).unwrap());
        seats.hold(&a, &hold_of("A-1-1")).await.unwrap();
        seats.hold(&b, &hold_of("A-1-1")).await.unwrap();
        assert_eq!(seats.holds.committers(), 2);

        tokio::time::sleep(IDLE_COMMITTER / 2).await;
        seats.hold(&b, &hold_of("A-1-2")).await.unwrap();
        tokio::time::sleep(IDLE_COMMITTER / 2 + Duration::from_secs(1)).await;
        assert_eq!(seats.holds.committers(), 1, "only b's is left: it was busy");

        let again = seats.hold(&a, &hold_of("A-1-1")).await.unwrap();
        assert_eq!(again, HoldOutcome::Taken(vec!["A-1-1".to_owned()]));
        assert_eq!(seats.holds.committers(), 2);
        tasks.stop(Duration::from_secs(5)).await;
    }

    #[tokio::test]
    async fn a_committer_whose_queue_closed_without_retiring_is_replaced() {
        let tasks = Tasks::new();
        let memory = Arc::new(MemorySeats::default());
        let seats = GroupCommittedSeats::with_limits(memory.clone(), ONE_AT_A_TIME, &tasks);
        let event = EventId::parse("a").unwrap();
        // What a committer that ended without retiring leaves: its entry,
        // with a queue nobody takes from.
        let (requests, queued) = mpsc::channel(1);
        drop(queued);
        seats.holds.shared.lock().insert(event.clone(), requests);

        // A bound on a hang, not a measure of speed: a submit that kept
        // finding the closed queue would go round for ever.
        let held = tokio::time::timeout(
            Duration::from_secs(10),
            seats.hold(&event, &hold_of("A-1-1")),
        )
        .await
        .expect("the hold is answered");
        assert_eq!(held.unwrap(), HoldOutcome::Held(SeatCounts::default()));
        assert_eq!(seats.holds.committers(), 1);
        tasks.stop(Duration::from_secs(5)).await;
    }
}
