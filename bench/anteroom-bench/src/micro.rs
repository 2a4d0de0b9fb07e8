//! Benchmarks of one path each, measured against their own floor in the same run:
//! the admission worker's drain, and a hold against a bare single-row insert.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgPoolOptions;

use crate::api::{Admin, ApiError, EventShape};
use crate::client::Connection;
use crate::report::{Latencies, Route, RouteSummary};

/// Runs `work(index)` for every index in `0..count` over `connections` closed-loop
/// drivers; returns the latencies and the wall time.
async fn closed_loop<F, Fut>(
    addr: SocketAddr,
    connections: usize,
    count: u64,
    label: &str,
    work: F,
) -> (Latencies, Duration)
where
    F: Fn(Connection, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (Connection, Option<Duration>)> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let work = Arc::new(work);
    let started = Instant::now();
    let progress = tokio::spawn(show_progress(label.to_owned(), next.clone(), count));
    let drivers: Vec<_> = (0..connections)
        .map(|_| {
            let (next, work) = (next.clone(), work.clone());
            tokio::spawn(async move {
                let mut conn = Connection::new(addr);
                let mut latencies = Latencies::default();
                loop {
                    let index = next.fetch_add(1, Relaxed);
                    if index >= count {
                        return latencies;
                    }
                    let (back, took) = work(conn, index).await;
                    conn = back;
                    if let Some(took) = took {
                        latencies.record(Route::Hold, took);
                    }
                }
            })
        })
        .collect();
    let mut latencies = Latencies::default();
    for driver in drivers {
        if let Ok(l) = driver.await {
            latencies.merge(l);
        }
    }
    progress.abort();
    (latencies, started.elapsed())
}

async fn show_progress(label: String, done: Arc<AtomicU64>, of: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        eprintln!("  {label}: {}/{of}", done.load(Relaxed).min(of));
    }
}

#[derive(Deserialize)]
struct Joined {
    token: String,
}

#[derive(Deserialize)]
struct Polled {
    state: String,
    pass: Option<String>,
}

/// Joins `people` to `event`; returns their tokens in no particular order.
async fn join_all(
    addr: SocketAddr,
    event: &str,
    people: u64,
    connections: usize,
) -> Result<Vec<String>, ApiError> {
    let tokens = Arc::new(std::sync::Mutex::new(Vec::with_capacity(people as usize)));
    let failures = Arc::new(AtomicU64::new(0));
    let path = format!("/api/events/{event}/queue");
    let (t, f) = (tokens.clone(), failures.clone());
    closed_loop(addr, connections, people, "joined", move |mut conn, _| {
        let (path, tokens, failures) = (path.clone(), t.clone(), f.clone());
        async move {
            match conn.send(Method::POST, &path, None, None).await {
                Ok(a) if a.status == StatusCode::CREATED => {
                    match a.json::<Joined>(&Method::POST, &path) {
                        Ok(j) => tokens
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(j.token),
                        Err(_) => _ = failures.fetch_add(1, Relaxed),
                    }
                }
                _ => _ = failures.fetch_add(1, Relaxed),
            }
            (conn, None)
        }
    })
    .await;
    let failed = failures.load(Relaxed);
    if failed > 0 {
        return Err(ApiError::Status(
            format!("{failed} joins"),
            StatusCode::SERVICE_UNAVAILABLE,
            "failed".into(),
        ));
    }
    Ok(std::mem::take(
        &mut *tokens.lock().unwrap_or_else(|p| p.into_inner()),
    ))
}

#[derive(Debug, serde::Serialize)]
pub struct DrainReport {
    pub people: u64,
    pub seconds: f64,
    pub admitted_per_second: f64,
}

/// Joins `people` to a paused event, then unpauses it with no rate limit to
/// speak of and times the admission worker until everyone is admitted.
pub async fn drain(
    addr: SocketAddr,
    admin: Admin,
    people: u64,
    connections: usize,
) -> Result<DrainReport, ApiError> {
    let mut conn = Connection::new(addr);
    let shape = EventShape {
        seats: 1_000,
        per_second: 100_000_000.0,
        max_active: 1_000_000_000,
        hold_seconds: 60,
        max_seats_per_user: 1,
        // Nobody polls during the drain: nobody may be abandoned either.
        abandon_seconds: 86_400,
        paused: true,
        challenge_bits: 0,
    };
    let event = admin.create_event(&mut conn, "drain", shape).await?;
    eprintln!("drain: joining {people} people to the paused event {event}");
    join_all(addr, &event, people, connections).await?;
    while admin.stats(&mut conn, &event).await?.waiting < people {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("drain: all {people} waiting; admission on");
    admin.set_paused(&mut conn, &event, false).await?;
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let stats = admin.stats(&mut conn, &event).await?;
        if stats.admitted_total >= people {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            eprintln!("  admitted {}/{people}", stats.admitted_total);
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(DrainReport {
        people,
        seconds,
        admitted_per_second: people as f64 / seconds,
    })
}

/// Long enough for a reader of this bench's lines to start a process that
/// reads `/proc` (bench/cpu.py) on a busy machine.
const READING_PAUSE: Duration = Duration::from_millis(500);

#[derive(Debug, serde::Serialize)]
pub struct HoldReport {
    pub holds: u64,
    pub holds_per_second: f64,
    pub inserts_per_second: f64,
    pub ratio: f64,
    pub hold_latency: Vec<RouteSummary>,
}

/// Holds one distinct seat with each of `holds` passes over HTTP, then inserts
/// as many order-shaped rows with bare sqlx through a pool shaped like the service's.
pub async fn hold(
    addr: SocketAddr,
    admin: Admin,
    database_url: &str,
    holds: u64,
    connections: usize,
) -> Result<HoldReport, Box<dyn std::error::Error>> {
    let mut conn = Connection::new(addr);
    let shape = EventShape {
        seats: holds,
        per_second: 100_000_000.0,
        max_active: 1_000_000_000,
        hold_seconds: 600,
        max_seats_per_user: 1,
        abandon_seconds: 86_400,
        paused: false,
        challenge_bits: 0,
    };
    let event = admin.create_event(&mut conn, "hold", shape).await?;
    eprintln!("hold: admitting {holds} people to {event}");
    let tokens = join_all(addr, &event, holds, connections).await?;
    let mut passes = Vec::with_capacity(tokens.len());
    for token in tokens {
        let path = format!("/api/queue/{token}");
        loop {
            let polled: Polled = conn
                .send(Method::GET, &path, None, None)
                .await?
                .json(&Method::GET, &path)?;
            match (polled.state.as_str(), polled.pass) {
                ("admitted", Some(pass)) => break passes.push(pass),
                ("waiting", _) => tokio::time::sleep(Duration::from_millis(50)).await,
                (state, _) => {
                    return Err(
                        format!("a token read {state:?} while waiting for admission").into(),
                    );
                }
            }
        }
    }
    let seats: Vec<String> = (1..=holds)
        .map(|n| format!("A-{}-{}", (n - 1) / 100 + 1, (n - 1) % 100 + 1))
        .collect();
    let work = Arc::new((passes, seats, format!("/api/events/{event}/holds")));
    let failures = Arc::new(AtomicU64::new(0));
    let (w, f) = (work.clone(), failures.clone());
    eprintln!("hold: {holds} holds over {connections} connections");
    // bench/run.sh reads the servers' CPU in this pause and the one after the
    // holds, so that its reading spans the holds and nothing else.
    tokio::time::sleep(READING_PAUSE).await;
    let (latencies, took) = closed_loop(addr, connections, holds, "held", move |mut conn, i| {
        let (work, failures) = (w.clone(), f.clone());
        async move {
            let (passes, seats, path) = &*work;
            let body = json!({ "seats": [seats[i as usize]] })
                .to_string()
                .into_bytes();
            match conn
                .send(Method::POST, path, Some(&passes[i as usize]), Some(body))
                .await
            {
                Ok(a) if a.status == StatusCode::CREATED => (conn, Some(a.took)),
                _ => {
                    failures.fetch_add(1, Relaxed);
                    (conn, None)
                }
            }
        }
    })
    .await;
    if failures.load(Relaxed) > 0 {
        return Err(format!("{} holds failed", failures.load(Relaxed)).into());
    }
    eprintln!("hold: {holds} held in {:.1} s", took.as_secs_f64());
    tokio::time::sleep(READING_PAUSE).await;
    let holds_per_second = holds as f64 / took.as_secs_f64();
    let inserts_per_second = bare_inserts(database_url, holds, connections).await?;
    Ok(HoldReport {
        holds,
        holds_per_second,
        inserts_per_second,
        ratio: holds_per_second / inserts_per_second,
        hold_latency: latencies.summary(),
    })
}

/// The floor of a hold: one order-shaped row inserted per request, through a
/// pool of the service's size, in a scratch schema dropped afterwards.
async fn bare_inserts(
    database_url: &str,
    rows: u64,
    concurrency: usize,
) -> Result<f64, sqlx::Error> {
    // The service's pool: see adapters/record/postgres.rs.
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect(database_url)
        .await?;
    // Only this generated name is spliced into the SQL below.
    let schema = format!("bench_floor_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&pool)
        .await?;
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE {schema}.orders (id uuid PRIMARY KEY, event text NOT NULL, holder text NOT NULL, \
         seats text[] NOT NULL, amount_cents bigint NOT NULL, status text NOT NULL, expires_at timestamptz NOT NULL)"
    )))
    .execute(&pool)
    .await?;
    let insert = format!(
        "INSERT INTO {schema}.orders (id, event, holder, seats, amount_cents, status, expires_at) \
         VALUES ($1, 'floor', $2, $3, 5000, 'pending', now() + interval '10 minutes')"
    );
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (pool, next, insert) = (pool.clone(), next.clone(), insert.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Relaxed) < rows {
                    let id = uuid::Uuid::new_v4();
                    sqlx::query(AssertSqlSafe(insert.as_str()))
                        .bind(id)
                        .bind(id.to_string())
                        .bind(vec![id.to_string()])
                        .execute(&pool)
                        .await?;
                }
                Ok::<_, sqlx::Error>(())
            })
        })
        .collect();
    let mut outcome = Ok(());
    for worker in workers {
        if let Ok(Err(e)) = worker.await {
            outcome = Err(e);
        }
    }
    let per_second = rows as f64 / started.elapsed().as_secs_f64();
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&pool)
        .await?;
    outcome.map(|()| per_second)
}
