//! A million people waiting at once (issue 16 item 5): the line grows to each
//! size in turn while everyone already in it polls exactly when the service's
//! `poll_after_ms` says. At each size, once everyone has polled at least once
//! more: the polls' rate and latency, the service's CPU time per poll, and what
//! one waiting person costs in Redis, in RabbitMQ and in the service.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::api::{Admin, ApiError, EventShape};
use crate::client::Connection;
use crate::report::{Latencies, Route, RouteSummary};

pub struct WaitingOptions {
    pub addr: SocketAddr,
    pub admin: Admin,
    /// The line's sizes to measure at, smallest first.
    pub sizes: Vec<u64>,
    pub connections: usize,
    /// How long each size is measured: longer than the longest `poll_after_ms`.
    pub measure: Duration,
    /// Where the memory is read from (each is optional: what is not given is not reported).
    pub redis_url: Option<String>,
    pub namespace: Option<String>,
    pub service_pid: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct SizeReport {
    pub waiting: u64,
    pub polls: u64,
    pub polls_per_second: f64,
    pub poll: Option<RouteSummary>,
    /// Polls sent more than a second after they were due: the generator's own lag.
    pub late_polls: u64,
    pub service_cpu_micros_per_poll: Option<f64>,
    pub redis_bytes_per_person: Option<f64>,
    pub rabbitmq_bytes_per_person: Option<f64>,
    pub service_rss_bytes_per_person: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct WaitingReport {
    pub event: String,
    pub sizes: Vec<SizeReport>,
}

#[derive(Deserialize)]
struct Placed {
    token: String,
    poll_after_ms: Option<u64>,
}

#[derive(Deserialize)]
struct Polled {
    poll_after_ms: Option<u64>,
}

/// What the drivers share: how many have joined, and which size is being measured.
struct Shared {
    /// People who may still join (the target size so far).
    target: AtomicU64,
    joined: AtomicU64,
    join_failures: AtomicU64,
    /// The index of the size being measured, or `NOT_MEASURING`.
    measuring: AtomicUsize,
    stop: AtomicBool,
}

const NOT_MEASURING: usize = usize::MAX;
/// A poll this late is counted as the generator's lag, not the service's.
const LATE: Duration = Duration::from_secs(1);

/// One driver's people: each with the instant their next poll is due.
struct Driver {
    conn: Connection,
    due: BinaryHeap<Reverse<(Instant, usize)>>,
    tokens: Vec<String>,
    latencies: Vec<Latencies>,
    polls: Vec<u64>,
    late: Vec<u64>,
}

impl Driver {
    fn schedule(&mut self, index: usize, after_ms: Option<u64>) {
        let after = Duration::from_millis(after_ms.unwrap_or(2_000));
        self.due.push(Reverse((Instant::now() + after, index)));
    }

    async fn run(mut self, shared: Arc<Shared>, event: String) -> Self {
        let join_path = format!("/api/events/{event}/queue");
        while !shared.stop.load(Relaxed) {
            let next_due = self.due.peek().map(|Reverse((at, _))| *at);
            if let Some(at) = next_due.filter(|at| *at <= Instant::now()) {
                let Some(Reverse((_, index))) = self.due.pop() else {
                    continue;
                };
                self.poll(index, at, &shared).await;
                continue;
            }
            // Nobody due: join someone while the line is short of its size.
            let joining = shared.joined.fetch_add(1, Relaxed) < shared.target.load(Relaxed);
            if joining {
                self.join(&join_path, &shared).await;
                continue;
            }
            shared.joined.fetch_sub(1, Relaxed);
            let wait = next_due.map_or(Duration::from_millis(20), |at| {
                at.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(20))
            });
            tokio::time::sleep(wait).await;
        }
        self
    }

    async fn join(&mut self, path: &str, shared: &Shared) {
        match self.conn.send(Method::POST, path, None, None).await {
            Ok(answer) if answer.status == StatusCode::CREATED => {
                match answer.json::<Placed>(&Method::POST, path) {
                    Ok(placed) => {
                        self.tokens.push(placed.token);
                        self.schedule(self.tokens.len() - 1, placed.poll_after_ms);
                    }
                    Err(_) => _ = shared.join_failures.fetch_add(1, Relaxed),
                }
            }
            _ => {
                shared.join_failures.fetch_add(1, Relaxed);
                shared.joined.fetch_sub(1, Relaxed);
            }
        }
    }

    async fn poll(&mut self, index: usize, due: Instant, shared: &Shared) {
        let path = format!("/api/queue/{}", self.tokens[index]);
        let late = due.elapsed() > LATE;
        let answer = self.conn.send(Method::GET, &path, None, None).await;
        let (after_ms, took) = match answer {
            Ok(a) if a.status == StatusCode::OK => (
                a.json::<Polled>(&Method::GET, &path)
                    .ok()
                    .and_then(|p| p.poll_after_ms),
                Some(a.took),
            ),
            _ => (None, None),
        };
        let size = shared.measuring.load(Relaxed);
        if size != NOT_MEASURING
            && let Some(took) = took
        {
            self.latencies[size].record(Route::Poll, took);
            self.polls[size] += 1;
            self.late[size] += u64::from(late);
        }
        self.schedule(index, after_ms);
    }
}

/// CPU time (user + system) a process has used, in microseconds.
fn cpu_micros(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports CPU time in clock ticks of 100 per second on every platform it runs on here.
    Some(ticks * 10_000)
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Bytes of every Redis key of the event (its keys share the `{namespace:event}` tag).
fn redis_bytes(url: &str, namespace: &str, event: &str) -> Option<u64> {
    let pattern = format!("{{{namespace}:{event}}}*");
    let keys = command_output("redis-cli", &["-u", url, "--scan", "--pattern", &pattern])?;
    let mut total = 0;
    for key in keys.lines().filter(|k| !k.is_empty()) {
        let usage = command_output(
            "redis-cli",
            &["-u", url, "MEMORY", "USAGE", key, "SAMPLES", "0"],
        )?;
        total += usage.trim().parse::<u64>().unwrap_or(0);
    }
    Some(total)
}

/// Memory of the event's line queue, as RabbitMQ reports it (none before it is declared).
fn rabbitmq_bytes(namespace: &str, event: &str) -> Option<u64> {
    let listing = command_output(
        "rabbitmqctl",
        &["list_queues", "name", "memory", "--no-table-headers", "-q"],
    )?;
    let name = format!("{namespace}.line.{event}");
    let memory = listing.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next()? == name).then(|| parts.next()?.parse().ok())?
    });
    Some(memory.unwrap_or(0))
}

/// Bytes per person between two readings (`None` when either is missing).
fn per_person(now: Option<u64>, before: Option<u64>, people: u64) -> Option<f64> {
    Some(now?.saturating_sub(before?) as f64 / people as f64)
}

pub async fn run(options: WaitingOptions) -> Result<WaitingReport, ApiError> {
    let mut conn = Connection::new(options.addr);
    // Admission far slower than arrivals: everyone stays in the line, and polls
    // as rarely as the service lets someone far from the front poll.
    let shape = EventShape {
        seats: 10_000,
        per_second: 0.001,
        max_active: 1,
        hold_seconds: 60,
        max_seats_per_user: 1,
        abandon_seconds: 600,
        paused: false,
        challenge_bits: 0,
    };
    let event = options
        .admin
        .create_event(&mut conn, "waiting", shape)
        .await?;
    let namespace = options.namespace.clone().unwrap_or_default();
    let redis = |event: &str| {
        options
            .redis_url
            .as_deref()
            .and_then(|url| redis_bytes(url, &namespace, event))
    };
    let rss_before = options.service_pid.and_then(rss_bytes);
    let redis_before = redis(&event);
    let rabbitmq_before = rabbitmq_bytes(&namespace, &event);
    let shared = Arc::new(Shared {
        target: AtomicU64::new(0),
        joined: AtomicU64::new(0),
        join_failures: AtomicU64::new(0),
        measuring: AtomicUsize::new(NOT_MEASURING),
        stop: AtomicBool::new(false),
    });
    let drivers: Vec<_> = (0..options.connections)
        .map(|_| {
            let driver = Driver {
                conn: Connection::new(options.addr),
                due: BinaryHeap::new(),
                tokens: Vec::new(),
                latencies: options.sizes.iter().map(|_| Latencies::default()).collect(),
                polls: vec![0; options.sizes.len()],
                late: vec![0; options.sizes.len()],
            };
            tokio::spawn(driver.run(shared.clone(), event.clone()))
        })
        .collect();
    let mut windows = Vec::new();
    for (index, &size) in options.sizes.iter().enumerate() {
        shared.target.store(size, Relaxed);
        let started = Instant::now();
        loop {
            let waiting = options.admin.stats(&mut conn, &event).await?.waiting;
            eprintln!(
                "  waiting: {waiting}/{size} ({} joins failed)",
                shared.join_failures.load(Relaxed)
            );
            if waiting >= size {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        eprintln!(
            "waiting: {size} in the line after {:.0} s; measuring for {} s",
            started.elapsed().as_secs_f64(),
            options.measure.as_secs()
        );
        let cpu_before = options.service_pid.and_then(cpu_micros);
        shared.measuring.store(index, Relaxed);
        let window = Instant::now();
        tokio::time::sleep(options.measure).await;
        shared.measuring.store(NOT_MEASURING, Relaxed);
        let seconds = window.elapsed().as_secs_f64();
        let cpu = options
            .service_pid
            .and_then(cpu_micros)
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        let memory = (
            redis(&event),
            rabbitmq_bytes(&namespace, &event),
            options.service_pid.and_then(rss_bytes),
        );
        windows.push((seconds, cpu, memory));
    }
    shared.stop.store(true, Relaxed);
    let mut merged: Vec<(Latencies, u64, u64)> = options
        .sizes
        .iter()
        .map(|_| (Latencies::default(), 0, 0))
        .collect();
    for driver in drivers {
        if let Ok(driver) = driver.await {
            for (i, latencies) in driver.latencies.into_iter().enumerate() {
                merged[i].0.merge(latencies);
                merged[i].1 += driver.polls[i];
                merged[i].2 += driver.late[i];
            }
        }
    }
    let sizes = options
        .sizes
        .iter()
        .zip(merged)
        .zip(windows)
        .map(
            |(
                (&waiting, (latencies, polls, late)),
                (seconds, cpu, (redis_now, rabbit_now, rss_now)),
            )| {
                SizeReport {
                    waiting,
                    polls,
                    polls_per_second: polls as f64 / seconds,
                    poll: latencies.summary().into_iter().next(),
                    late_polls: late,
                    service_cpu_micros_per_poll: cpu
                        .filter(|_| polls > 0)
                        .map(|c| c as f64 / polls as f64),
                    redis_bytes_per_person: per_person(redis_now, redis_before, waiting),
                    rabbitmq_bytes_per_person: per_person(rabbit_now, rabbitmq_before, waiting),
                    service_rss_bytes_per_person: per_person(rss_now, rss_before, waiting),
                }
            },
        )
        .collect();
    Ok(WaitingReport { event, sizes })
}

pub fn print(report: &WaitingReport) {
    let figure = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.0}"));
    println!(
        "waiting | polls/s | poll p50 ms | poll p99 ms | late polls | service CPU µs/poll | Redis B/person | RabbitMQ B/person | service RSS B/person"
    );
    for size in &report.sizes {
        println!(
            "{} | {:.0} | {} | {} | {} | {} | {} | {} | {}",
            size.waiting,
            size.polls_per_second,
            size.poll
                .as_ref()
                .map_or("—".into(), |p| format!("{:.1}", p.p50_ms)),
            size.poll
                .as_ref()
                .map_or("—".into(), |p| format!("{:.1}", p.p99_ms)),
            size.late_polls,
            size.service_cpu_micros_per_poll
                .map_or("—".into(), |v| format!("{v:.1}")),
            figure(size.redis_bytes_per_person),
            figure(size.rabbitmq_bytes_per_person),
            figure(size.service_rss_bytes_per_person),
        );
    }
}
