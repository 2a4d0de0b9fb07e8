//! The spike: `people` arrive within a few seconds, join, poll exactly as
//! `poll_after_ms` says, and once admitted hold seats, then pay, cancel or walk
//! away; at the end the books are checked.
//!
//! A person costs a scheduled entry, not a task: a few hundred driver tasks,
//! each with its own keep-alive connection, take whoever is due next — so a
//! million people fit in one process on two cores.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::api::{self, Admin, EventShape};
use crate::challenge;
use crate::client::{Answer, Connection};
use crate::report::{Latencies, Route, RouteSummary, print_latencies};
use crate::service_metrics::{self, ServiceLatency};

#[derive(Debug, Clone)]
pub struct SpikeOptions {
    pub addr: SocketAddr,
    pub admin_token: String,
    pub people: u64,
    pub connections: usize,
    pub arrival: Duration,
    pub shape: EventShape,
}

/// How long to wait for the last holds to expire before checking the books.
const SETTLE_SLACK: Duration = Duration::from_secs(15);
/// Answers worth showing when something unexpected came back.
const PROBLEMS_KEPT: usize = 20;
/// When the service asks to come back later (429, 503) without saying when.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);

/// The next thing a person does, and when.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: Instant,
    person: u64,
    step: Step,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Join,
    Poll(Box<str>),
}

/// What each person does once admitted: decided from the person's number, so
/// that two runs with the same options do the same.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Pay,
    Cancel,
    WalkAway,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64: a cheap, well-spread hash of the person's number.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn plan_of(person: u64) -> Plan {
    match mix(person) % 100 {
        0..85 => Plan::Pay,
        85..90 => Plan::Cancel,
        _ => Plan::WalkAway,
    }
}

fn seats_wanted(person: u64, max: u32) -> u32 {
    1 + (mix(person ^ 0x5eed) % u64::from(max.clamp(1, 4))) as u32
}

#[derive(Default)]
struct Counters {
    joined: AtomicU64,
    join_sold_out: AtomicU64,
    retried: AtomicU64,
    /// Join challenges solved (one per 428 answered).
    challenges_solved: AtomicU64,
    polls: AtomicU64,
    admitted: AtomicU64,
    read_sold_out: AtomicU64,
    read_expired: AtomicU64,
    holds: AtomicU64,
    hold_unavailable: AtomicU64,
    paid: AtomicU64,
    pay_expired: AtomicU64,
    cancelled: AtomicU64,
    walked_away: AtomicU64,
    errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

#[derive(Debug, Clone)]
struct PaidOrder {
    order_id: String,
    seats: Vec<String>,
    pass: String,
}

#[derive(Deserialize)]
struct StatusBody {
    state: String,
    token: Option<String>,
    pass: Option<String>,
    poll_after_ms: Option<u64>,
}

#[derive(Deserialize)]
struct OrderBody {
    order_id: String,
    status: String,
    seats: Vec<String>,
}

struct Shared {
    options: SpikeOptions,
    event: String,
    started: Instant,
    next_arrival: AtomicU64,
    /// Microseconds from the start to the last join answered: the join phase.
    last_join_us: AtomicU64,
    unfinished: AtomicU64,
    schedule: Mutex<BinaryHeap<Reverse<Due>>>,
    counters: Counters,
    paid: Mutex<Vec<PaidOrder>>,
    problems: Mutex<Vec<String>>,
}

enum Next {
    Due(Due),
    Wait(Instant),
    Done,
}

impl Shared {
    fn arrival_of(&self, person: u64) -> Instant {
        let share = person as f64 / self.options.people as f64;
        self.started + self.options.arrival.mul_f64(share)
    }

    /// The next step due: half the drivers serve arrivals first and half the
    /// scheduled polls first, so that neither starves when the other is saturated.
    fn next(&self, now: Instant, arrivals_first: bool) -> Next {
        let mut wake = now + Duration::from_millis(10);
        if arrivals_first && let Some(due) = self.arrival(now, &mut wake) {
            return Next::Due(due);
        }
        {
            let mut schedule = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(Reverse(due)) = schedule.peek() {
                if due.at <= now {
                    let Reverse(due) = schedule.pop().expect("peeked");
                    return Next::Due(due);
                }
                wake = wake.min(due.at);
            }
        }
        if !arrivals_first && let Some(due) = self.arrival(now, &mut wake) {
            return Next::Due(due);
        }
        if self.unfinished.load(Relaxed) == 0 {
            Next::Done
        } else {
            Next::Wait(wake)
        }
    }

    /// The next person to arrive, if one is due; else lowers `wake` to the next arrival.
    fn arrival(&self, now: Instant, wake: &mut Instant) -> Option<Due> {
        loop {
            let person = self.next_arrival.load(Relaxed);
            if person >= self.options.people {
                return None;
            }
            let at = self.arrival_of(person);
            if at > now {
                *wake = (*wake).min(at);
                return None;
            }
            if self
                .next_arrival
                .compare_exchange(person, person + 1, Relaxed, Relaxed)
                .is_ok()
            {
                return Some(Due {
                    at,
                    person,
                    step: Step::Join,
                });
            }
        }
    }

    fn schedule(&self, after: Duration, person: u64, step: Step) {
        let due = Due {
            at: Instant::now() + after,
            person,
            step,
        };
        self.schedule
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Reverse(due));
    }

    fn finish(&self) {
        self.unfinished.fetch_sub(1, Relaxed);
    }

    fn problem(&self, what: String) {
        bump(&self.counters.errors);
        let mut problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        if problems.len() < PROBLEMS_KEPT {
            problems.push(what);
        }
    }

    fn unexpected(&self, route: Route, answer: &Answer) {
        self.problem(format!(
            "{}: {} {}",
            route.name(),
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ));
    }
}

/// One driver: a connection working through whoever is due.
struct Driver {
    shared: Arc<Shared>,
    arrivals_first: bool,
    conn: Connection,
    latencies: Latencies,
}

impl Driver {
    async fn run(mut self) -> Latencies {
        loop {
            match self.shared.next(Instant::now(), self.arrivals_first) {
                Next::Due(Due {
                    person,
                    step: Step::Join,
                    ..
                }) => self.join(person).await,
                Next::Due(Due {
                    person,
                    step: Step::Poll(token),
                    ..
                }) => self.poll(person, token).await,
                Next::Wait(until) => tokio::time::sleep_until(until.into()).await,
                Next::Done => return self.latencies,
            }
        }
    }

    async fn call(
        &mut self,
        route: Route,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Option<Answer> {
        let body = body.map(|b| b.to_string().into_bytes());
        match self.conn.send(method, path, bearer, body).await {
            Ok(answer) => {
                self.latencies.record(route, answer.took);
                Some(answer)
            }
            Err(e) => {
                self.shared.problem(e.to_string());
                None
            }
        }
    }

    fn retry_after(answer: &Answer) -> Option<Duration> {
        matches!(
            answer.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
        .then_some(DEFAULT_RETRY)
    }

    async fn join(&mut self, person: u64) {
        let path = format!("/api/events/{}/queue", self.shared.event);
        // A visitor id makes a retried join idempotent: the same place, never two.
        let mut body = json!({ "visitor": format!("person-{person}") });
        let answer = loop {
            let Some(answer) = self
                .call(Route::Join, Method::POST, &path, None, Some(body.clone()))
                .await
            else {
                return self.shared.schedule(DEFAULT_RETRY, person, Step::Join);
            };
            if answer.status != StatusCode::PRECONDITION_REQUIRED {
                break answer;
            }
            // The event asks for a proof of work: the 428 carries a fresh challenge.
            let asked = match answer.json::<challenge::Asked>(&Method::POST, &path) {
                Ok(asked) => asked,
                Err(e) => {
                    self.shared.problem(e.to_string());
                    return self.shared.finish();
                }
            };
            let solving = asked.challenge.clone();
            let Ok(nonce) =
                tokio::task::spawn_blocking(move || challenge::solve(&solving, asked.bits)).await
            else {
                self.shared
                    .problem("the challenge's solver panicked".into());
                return self.shared.finish();
            };
            bump(&self.shared.counters.challenges_solved);
            body["challenge"] = asked.challenge.into();
            body["nonce"] = nonce.into();
        };
        let since_start =
            u64::try_from(self.shared.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.shared.last_join_us.fetch_max(since_start, Relaxed);
        match answer.status {
            StatusCode::CREATED | StatusCode::OK => {
                match answer.json::<StatusBody>(&Method::POST, &path) {
                    Ok(status) => {
                        bump(&self.shared.counters.joined);
                        match status.token.clone() {
                            Some(token) => self.follow(person, token.into(), status).await,
                            None => {
                                self.shared.unexpected(Route::Join, &answer);
                                self.shared.finish();
                            }
                        }
                    }
                    Err(e) => {
                        self.shared.problem(e.to_string());
                        self.shared.finish();
                    }
                }
            }
            StatusCode::GONE => {
                bump(&self.shared.counters.join_sold_out);
                self.shared.finish();
            }
            _ => match Self::retry_after(&answer) {
                Some(after) => {
                    bump(&self.shared.counters.retried);
                    self.shared.schedule(after, person, Step::Join);
                }
                None => {
                    self.shared.unexpected(Route::Join, &answer);
                    self.shared.finish();
                }
            },
        }
    }

    async fn poll(&mut self, person: u64, token: Box<str>) {
        let path = format!("/api/queue/{token}");
        let Some(answer) = self.call(Route::Poll, Method::GET, &path, None, None).await else {
            return self
                .shared
                .schedule(DEFAULT_RETRY, person, Step::Poll(token));
        };
        bump(&self.shared.counters.polls);
        if let Some(after) = Self::retry_after(&answer) {
            bump(&self.shared.counters.retried);
            return self.shared.schedule(after, person, Step::Poll(token));
        }
        match (
            answer.status,
            answer.json::<StatusBody>(&Method::GET, &path),
        ) {
            (StatusCode::OK, Ok(status)) => self.follow(person, token, status).await,
            _ => {
                self.shared.unexpected(Route::Poll, &answer);
                self.shared.finish();
            }
        }
    }

    /// Acts on a join's or a poll's answer.
    async fn follow(&mut self, person: u64, token: Box<str>, status: StatusBody) {
        let counters = &self.shared.counters;
        match (status.state.as_str(), status.pass) {
            ("waiting" | "pre_queue", _) => {
                let after = Duration::from_millis(status.poll_after_ms.unwrap_or(1_000));
                return self.shared.schedule(after, person, Step::Poll(token));
            }
            ("admitted", Some(pass)) => {
                bump(&counters.admitted);
                self.shop(person, &pass).await;
                // Done: end the pass so that its place under max_active goes to the next person.
                let path = format!("/api/queue/{token}");
                if let Some(answer) = self
                    .call(Route::Leave, Method::DELETE, &path, None, None)
                    .await
                    && answer.status != StatusCode::OK
                {
                    self.shared.unexpected(Route::Leave, &answer);
                }
            }
            ("sold_out", _) => bump(&counters.read_sold_out),
            ("expired", _) => bump(&counters.read_expired),
            (state, _) => self
                .shared
                .problem(format!("person {person} read the state {state:?}")),
        }
        self.shared.finish();
    }

    async fn shop(&mut self, person: u64, pass: &str) {
        let path = format!("/api/events/{}/holds", self.shared.event);
        let wanted = seats_wanted(person, self.shared.options.shape.max_seats_per_user);
        // Fewer seats when no block of the size wanted is left.
        let mut order = None;
        for count in [wanted, 1] {
            let body = json!({ "best_available": { "count": count } });
            let Some(answer) = self
                .call(Route::Hold, Method::POST, &path, Some(pass), Some(body))
                .await
            else {
                return;
            };
            match answer.status {
                StatusCode::CREATED => {
                    order = answer
                        .json::<OrderBody>(&Method::POST, &path)
                        .map_err(|e| self.shared.problem(e.to_string()))
                        .ok();
                    break;
                }
                StatusCode::CONFLICT => continue,
                _ => return self.shared.unexpected(Route::Hold, &answer),
            }
        }
        let counters = &self.shared.counters;
        let Some(order) = order else {
            return bump(&counters.hold_unavailable);
        };
        bump(&counters.holds);
        let path = format!("/api/orders/{}", order.order_id);
        match plan_of(person) {
            Plan::WalkAway => bump(&self.shared.counters.walked_away),
            Plan::Cancel => {
                let Some(answer) = self
                    .call(Route::Cancel, Method::DELETE, &path, Some(pass), None)
                    .await
                else {
                    return;
                };
                match answer.status {
                    StatusCode::OK => bump(&self.shared.counters.cancelled),
                    _ => self.shared.unexpected(Route::Cancel, &answer),
                }
            }
            Plan::Pay => {
                let body = json!({ "payment_ref": format!("bench-{person}") });
                let pay = format!("{path}/pay");
                let Some(answer) = self
                    .call(Route::Pay, Method::POST, &pay, Some(pass), Some(body))
                    .await
                else {
                    return;
                };
                match (answer.status, answer.json::<OrderBody>(&Method::POST, &pay)) {
                    (StatusCode::OK, Ok(paid)) if paid.status == "paid" => {
                        bump(&self.shared.counters.paid);
                        let paid = PaidOrder {
                            order_id: paid.order_id,
                            seats: paid.seats,
                            pass: pass.to_owned(),
                        };
                        self.shared
                            .paid
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(paid);
                    }
                    (StatusCode::GONE, _) => bump(&self.shared.counters.pay_expired),
                    _ => self.shared.unexpected(Route::Pay, &answer),
                }
            }
        }
    }
}

#[derive(Debug, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, serde::Serialize)]
pub struct SpikeReport {
    pub event: String,
    pub people: u64,
    pub seats: u64,
    pub connections: usize,
    pub wall_seconds: f64,
    pub join_seconds: f64,
    pub joins_per_second: f64,
    pub polls_per_second: f64,
    pub holds_per_second: f64,
    pub admission_to_sold_out_seconds: Option<f64>,
    pub outcomes: HashMap<&'static str, u64>,
    pub latencies: Vec<RouteSummary>,
    /// The same requests as the service timed them (its `/metrics` histogram).
    pub service_latencies: Vec<ServiceLatency>,
    pub problems: Vec<String>,
    pub checks: Vec<Check>,
}

impl SpikeReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// When admission started and when the event sold out, as seen by the monitor.
#[derive(Default)]
struct Milestones {
    first_admission: Option<Instant>,
    sold_out: Option<Instant>,
}

/// The routes whose latency the service's own histogram reports beside the generator's.
const SERVICE_ROUTES: [(&str, &str); 5] = [
    ("POST", "/api/events/{id}/queue"),
    ("GET", "/api/queue/{token}"),
    ("POST", "/api/events/{id}/best_available"),
    ("POST", "/api/events/{id}/holds"),
    ("POST", "/api/orders/{order_id}/pay"),
];

pub async fn run(options: SpikeOptions) -> Result<SpikeReport, api::ApiError> {
    let admin = Admin::new(options.admin_token.clone());
    let mut conn = Connection::new(options.addr);
    let metrics_before = service_metrics::read(&mut conn).await?;
    let event = admin
        .create_event(&mut conn, "spike", options.shape)
        .await?;
    eprintln!(
        "spike: {} people for {} seats on event {event}, arriving within {:?}, {} connections",
        options.people, options.shape.seats, options.arrival, options.connections
    );
    let shared = Arc::new(Shared {
        event: event.clone(),
        started: Instant::now(),
        next_arrival: AtomicU64::new(0),
        last_join_us: AtomicU64::new(0),
        unfinished: AtomicU64::new(options.people),
        schedule: Mutex::new(BinaryHeap::new()),
        counters: Counters::default(),
        paid: Mutex::new(Vec::new()),
        problems: Mutex::new(Vec::new()),
        options: options.clone(),
    });
    let drivers: Vec<_> = (0..options.connections)
        .map(|index| {
            let driver = Driver {
                shared: shared.clone(),
                arrivals_first: index % 2 == 1,
                conn: Connection::new(options.addr),
                latencies: Latencies::default(),
            };
            tokio::spawn(driver.run())
        })
        .collect();
    let milestones = Arc::new(Mutex::new(Milestones::default()));
    let monitor = tokio::spawn(monitor(shared.clone(), admin, conn, milestones.clone()));
    let mut latencies = Latencies::default();
    for driver in drivers {
        if let Ok(l) = driver.await {
            latencies.merge(l);
        }
    }
    let wall = shared.started.elapsed();
    let (admin, mut conn) = monitor.await.map_err(|e| {
        api::ApiError::Status(
            "monitor".into(),
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )
    })?;
    let milestones = std::mem::take(&mut *milestones.lock().unwrap_or_else(|p| p.into_inner()));
    let checks = check_books(&shared, &admin, &mut conn).await?;
    let c = &shared.counters;
    let outcomes: HashMap<&'static str, u64> = [
        ("joined", &c.joined),
        ("join_sold_out", &c.join_sold_out),
        ("retried", &c.retried),
        ("challenges_solved", &c.challenges_solved),
        ("admitted", &c.admitted),
        ("read_sold_out", &c.read_sold_out),
        ("read_expired", &c.read_expired),
        ("holds", &c.holds),
        ("hold_unavailable", &c.hold_unavailable),
        ("paid", &c.paid),
        ("pay_expired", &c.pay_expired),
        ("cancelled", &c.cancelled),
        ("walked_away", &c.walked_away),
        ("errors", &c.errors),
    ]
    .into_iter()
    .map(|(name, counter)| (name, counter.load(Relaxed)))
    .collect();
    let latencies = latencies.summary();
    let metrics_after = service_metrics::read(&mut conn).await?;
    let service_latencies = SERVICE_ROUTES
        .iter()
        .map(|(method, route)| {
            ServiceLatency::between(&metrics_before, &metrics_after, route, method)
        })
        .filter(|latency| latency.count > 0)
        .collect();
    let count_of = |route: &str| {
        latencies
            .iter()
            .find(|s| s.route == route)
            .map_or(0, |s| s.count)
    };
    let join_seconds = shared.last_join_us.load(Relaxed) as f64 / 1e6;
    let report = SpikeReport {
        event,
        people: options.people,
        seats: options.shape.seats,
        connections: options.connections,
        wall_seconds: wall.as_secs_f64(),
        join_seconds,
        joins_per_second: count_of("join") as f64 / join_seconds.max(1e-9),
        polls_per_second: count_of("poll") as f64 / wall.as_secs_f64(),
        holds_per_second: count_of("hold") as f64 / wall.as_secs_f64(),
        admission_to_sold_out_seconds: match (milestones.first_admission, milestones.sold_out) {
            (Some(first), Some(sold_out)) => Some((sold_out - first).as_secs_f64()),
            _ => None,
        },
        outcomes,
        latencies,
        service_latencies,
        problems: shared
            .problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
        checks,
    };
    Ok(report)
}

/// Prints progress every second and notes when admission started and when the event sold out.
async fn monitor(
    shared: Arc<Shared>,
    admin: Admin,
    mut conn: Connection,
    milestones: Arc<Mutex<Milestones>>,
) -> (Admin, Connection) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_joined = 0;
    let mut last_polls = 0;
    while shared.unfinished.load(Relaxed) > 0 {
        tick.tick().await;
        let stats = admin.stats(&mut conn, &shared.event).await;
        let now = Instant::now();
        let c = &shared.counters;
        let (joined, polls) = (c.joined.load(Relaxed), c.polls.load(Relaxed));
        let line = match &stats {
            Ok(s) => format!(
                "waiting {} admitted {} sold {}/{} held {}",
                s.waiting, s.admitted_total, s.sold_seats, shared.options.shape.seats, s.held_seats
            ),
            Err(e) => format!("stats unavailable: {e}"),
        };
        eprintln!(
            "[{:>4}s] joined {}/{} (+{}/s) polls +{}/s paid {} errors {} | {line}",
            shared.started.elapsed().as_secs(),
            joined,
            shared.options.people,
            joined - last_joined,
            polls - last_polls,
            c.paid.load(Relaxed),
            c.errors.load(Relaxed),
        );
        (last_joined, last_polls) = (joined, polls);
        if let Ok(stats) = stats {
            let mut m = milestones.lock().unwrap_or_else(|p| p.into_inner());
            if stats.admitted_total > 0 {
                m.first_admission.get_or_insert(now);
            }
            if stats.sold_out() {
                m.sold_out.get_or_insert(now);
            }
        }
    }
    (admin, conn)
}

/// The books: nothing sold twice, nothing lost, everything adds up.
async fn check_books(
    shared: &Shared,
    admin: &Admin,
    conn: &mut Connection,
) -> Result<Vec<Check>, api::ApiError> {
    let event = &shared.event;
    let seats_total = shared.options.shape.seats;
    // Holds people walked away from end by expiry; wait for them.
    let settle_by = Instant::now()
        + Duration::from_secs(u64::from(shared.options.shape.hold_seconds))
        + SETTLE_SLACK;
    let mut stats = admin.stats(conn, event).await?;
    while stats.held_seats > 0 && Instant::now() < settle_by {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stats = admin.stats(conn, event).await?;
    }
    // The seat map may lag by a second (API.md).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (map, repeated) = api::seat_map(conn, event).await?;
    let paid = shared
        .paid
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut checks = Vec::new();
    let mut check = |name, ok, detail: String| checks.push(Check { name, ok, detail });

    let sum = stats.sold_seats + stats.held_seats + stats.available_seats;
    check(
        "seats add up",
        sum == seats_total,
        format!(
            "sold {} + held {} + available {} = {sum} of {seats_total}",
            stats.sold_seats, stats.held_seats, stats.available_seats
        ),
    );
    check(
        "no hold left behind",
        stats.held_seats == 0,
        format!("{} seats still held", stats.held_seats),
    );

    let mut owner: HashMap<&str, &str> = HashMap::new();
    let mut twice = Vec::new();
    for order in &paid {
        for seat in &order.seats {
            if let Some(first) = owner.insert(seat, &order.order_id) {
                twice.push(format!("{seat} in {first} and {}", order.order_id));
            }
        }
    }
    check(
        "no seat sold twice",
        twice.is_empty(),
        if twice.is_empty() {
            format!("{} seats in {} paid orders", owner.len(), paid.len())
        } else {
            twice.join("; ")
        },
    );
    check(
        "every paid seat is counted sold",
        owner.len() as u64 == stats.sold_seats,
        format!(
            "paid orders hold {} seats, stats say {} sold",
            owner.len(),
            stats.sold_seats
        ),
    );
    check(
        "every payment is recorded",
        paid.len() as u64 == stats.orders_paid,
        format!(
            "{} payments answered 200, stats say {} orders paid",
            paid.len(),
            stats.orders_paid
        ),
    );

    let sold_on_map = map.values().filter(|s| *s == "sold").count() as u64;
    let not_sold: Vec<&str> = owner
        .keys()
        .filter(|seat| map.get(**seat).is_none_or(|s| s != "sold"))
        .copied()
        .collect();
    check(
        "seat map agrees",
        repeated.is_empty()
            && map.len() as u64 == seats_total
            && sold_on_map == stats.sold_seats
            && not_sold.is_empty(),
        format!(
            "{} seats on the map ({} repeated), {sold_on_map} sold, {} paid seats not shown sold",
            map.len(),
            repeated.len(),
            not_sold.len()
        ),
    );

    let mut unpaid = Vec::new();
    for order in &paid {
        let path = format!("/api/orders/{}", order.order_id);
        let answer = conn
            .send(Method::GET, &path, Some(&order.pass), None)
            .await?;
        let status = answer
            .json::<OrderBody>(&Method::GET, &path)
            .map(|o| o.status)
            .unwrap_or_default();
        if answer.status != StatusCode::OK || status != "paid" {
            unpaid.push(format!(
                "{} reads {} {status}",
                order.order_id, answer.status
            ));
        }
    }
    check(
        "every paid order reads paid",
        unpaid.is_empty(),
        if unpaid.is_empty() {
            format!("{} orders read back", paid.len())
        } else {
            unpaid.join("; ")
        },
    );

    let demand_exceeded_supply = shared.counters.join_sold_out.load(Relaxed)
        + shared.counters.read_sold_out.load(Relaxed)
        > 0;
    if demand_exceeded_supply {
        check(
            "sold out",
            stats.sold_out() && stats.sold_seats == seats_total,
            format!("{} of {seats_total} sold", stats.sold_seats),
        );
    }
    let errors = shared.counters.errors.load(Relaxed);
    check(
        "no unexpected answer",
        errors == 0,
        format!("{errors} unexpected answers or failed requests"),
    );
    let distinct: HashSet<&str> = paid.iter().map(|o| o.order_id.as_str()).collect();
    check(
        "order ids are unique",
        distinct.len() == paid.len(),
        format!("{} ids for {} orders", distinct.len(), paid.len()),
    );
    Ok(checks)
}

pub fn print(report: &SpikeReport) {
    println!(
        "\nspike on {}: {} people, {} seats, {} connections, {:.1} s",
        report.event, report.people, report.seats, report.connections, report.wall_seconds
    );
    println!(
        "joins/s {:.0} (over {:.1} s)   polls/s {:.0}   holds/s {:.1}   admission to sold out: {}",
        report.joins_per_second,
        report.join_seconds,
        report.polls_per_second,
        report.holds_per_second,
        report
            .admission_to_sold_out_seconds
            .map_or("not reached".into(), |s| format!("{s:.1} s"))
    );
    let mut outcomes: Vec<_> = report.outcomes.iter().collect();
    outcomes.sort();
    println!(
        "{}",
        outcomes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    print_latencies(&report.latencies, report.wall_seconds);
    println!("as the service timed them (its histogram's bucket bounds):");
    let bound = |ms: Option<f64>| ms.map_or("—".into(), |ms| format!("≤ {ms} ms"));
    for latency in &report.service_latencies {
        println!(
            "  {:<40} {:>9}  p50 {:<12} p99 {}",
            latency.route,
            latency.count,
            bound(latency.p50_ms_at_most),
            bound(latency.p99_ms_at_most)
        );
    }
    for problem in &report.problems {
        println!("  unexpected: {problem}");
    }
    for check in &report.checks {
        println!(
            "{} {}: {}",
            if check.ok { "ok  " } else { "FAIL" },
            check.name,
            check.detail
        );
    }
}
