//! The few API.md calls the benchmarks make besides the load itself.

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::client::{ClientError, Connection};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0} answered {1}: {2}")]
    Status(String, StatusCode, String),
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Stats {
    pub waiting: u64,
    pub admitted_total: u64,
    pub held_seats: u64,
    pub sold_seats: u64,
    pub available_seats: u64,
    pub orders_paid: u64,
}

impl Stats {
    pub fn sold_out(&self) -> bool {
        self.available_seats == 0 && self.held_seats == 0
    }
}

#[derive(Debug, Deserialize)]
pub struct Seat {
    pub id: String,
    pub state: String,
}

#[derive(Debug, Deserialize)]
struct SeatMap {
    seats: Vec<Seat>,
}

/// How the benchmarks configure the events they create.
#[derive(Debug, Clone, Copy)]
pub struct EventShape {
    pub seats: u64,
    pub per_second: f64,
    pub max_active: u64,
    pub hold_seconds: u32,
    pub max_seats_per_user: u32,
    pub abandon_seconds: u32,
    pub paused: bool,
    /// The join challenge's difficulty (0: off).
    pub challenge_bits: u32,
}

/// Rows of 100 seats in one section (a partial last row when `seats` is not a multiple).
const SEATS_PER_ROW: u64 = 100;

impl EventShape {
    fn sections(&self) -> serde_json::Value {
        let full_rows = self.seats / SEATS_PER_ROW;
        let rest = self.seats % SEATS_PER_ROW;
        let mut sections = Vec::new();
        if full_rows > 0 {
            sections.push(json!({"id": "A", "name": "Floor", "price_cents": 5000, "rows": full_rows, "seats_per_row": SEATS_PER_ROW}));
        }
        if rest > 0 {
            sections.push(json!({"id": "B", "name": "Balcony", "price_cents": 3000, "rows": 1, "seats_per_row": rest}));
        }
        serde_json::Value::Array(sections)
    }
}

pub struct Admin {
    token: String,
}

impl Admin {
    pub fn new(token: String) -> Self {
        Self { token }
    }

    async fn call(
        &self,
        conn: &mut Connection,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        expect: StatusCode,
    ) -> Result<crate::client::Answer, ApiError> {
        let body = body.map(|b| b.to_string().into_bytes());
        let answer = conn.send(method, path, Some(&self.token), body).await?;
        if answer.status != expect {
            return Err(ApiError::Status(
                path.to_owned(),
                answer.status,
                String::from_utf8_lossy(&answer.body).into(),
            ));
        }
        Ok(answer)
    }

    /// Creates an event with a fresh id starting with `prefix`; returns the id.
    pub async fn create_event(
        &self,
        conn: &mut Connection,
        prefix: &str,
        shape: EventShape,
    ) -> Result<String, ApiError> {
        let id = format!(
            "{prefix}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let body = json!({
            "id": id,
            "name": format!("Benchmark {id}"),
            "venue": "Bench Arena",
            "starts_at": "2030-01-01T20:00:00Z",
            "hold_seconds": shape.hold_seconds,
            "max_seats_per_user": shape.max_seats_per_user,
            "paused": shape.paused,
            "admission": {
                "per_second": shape.per_second,
                "max_active": shape.max_active,
                "pass_seconds": 3_600,
                "abandon_seconds": shape.abandon_seconds,
            },
            "sections": shape.sections(),
            "join_challenge": { "bits": shape.challenge_bits },
        });
        self.call(
            conn,
            Method::POST,
            "/api/admin/events",
            Some(body),
            StatusCode::CREATED,
        )
        .await?;
        Ok(id)
    }

    pub async fn set_paused(
        &self,
        conn: &mut Connection,
        event: &str,
        paused: bool,
    ) -> Result<(), ApiError> {
        let path = format!("/api/admin/events/{event}");
        self.call(
            conn,
            Method::PATCH,
            &path,
            Some(json!({"paused": paused})),
            StatusCode::OK,
        )
        .await?;
        Ok(())
    }

    pub async fn stats(&self, conn: &mut Connection, event: &str) -> Result<Stats, ApiError> {
        let path = format!("/api/admin/events/{event}/stats");
        let answer = self
            .call(conn, Method::GET, &path, None, StatusCode::OK)
            .await?;
        Ok(answer.json(&Method::GET, &path)?)
    }
}

/// The seat map as `id → state`, with the ids that appeared more than once.
pub async fn seat_map(
    conn: &mut Connection,
    event: &str,
) -> Result<(HashMap<String, String>, Vec<String>), ApiError> {
    let path = format!("/api/events/{event}/seats");
    let answer = conn.send(Method::GET, &path, None, None).await?;
    if answer.status != StatusCode::OK {
        return Err(ApiError::Status(
            path,
            answer.status,
            String::from_utf8_lossy(&answer.body).into(),
        ));
    }
    let map: SeatMap = answer.json(&Method::GET, &path)?;
    let mut states = HashMap::with_capacity(map.seats.len());
    let mut repeated = Vec::new();
    for seat in map.seats {
        if states.insert(seat.id.clone(), seat.state).is_some() {
            repeated.push(seat.id);
        }
    }
    Ok((states, repeated))
}
