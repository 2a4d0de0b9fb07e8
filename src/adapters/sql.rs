//! The durable record on PostgreSQL. Each namespace is its own schema, so that
//! deployments and test runs share a server without seeing each other.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool, Row};
use time::OffsetDateTime;

use crate::domain::{Admission, AdmissionPatch, Event, EventId, EventSpec, Section};
use crate::ports::{BackendError, BackendResult, EventRepository, InsertEventError};

fn unavailable(e: impl std::fmt::Display) -> BackendError {
    BackendError::new("postgres", e)
}

pub struct PgEvents {
    pool: PgPool,
}

impl PgEvents {
    /// Connects, creates the namespace's schema if needed and applies migrations.
    pub async fn connect(url: &str, namespace: &str) -> BackendResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(unavailable)?;
        let mut setup = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(unavailable)?;
        // The namespace is validated as [a-z0-9_]: safe to quote into DDL.
        let ddl = format!("CREATE SCHEMA IF NOT EXISTS \"{namespace}\"");
        sqlx::query(sqlx::AssertSqlSafe(ddl))
            .execute(&mut setup)
            .await
            .map_err(unavailable)?;
        setup.close().await.map_err(unavailable)?;

        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options.options([("search_path", namespace)]))
            .await
            .map_err(unavailable)?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(unavailable)?;
        Ok(Self { pool })
    }

    async fn load(&self, only: Option<&EventId>) -> BackendResult<Vec<Event>> {
        let id = only.map(|e| e.as_str().to_owned());
        // Events first: sections commit with their event, so every event read here
        // finds its sections in the second query.
        let rows = sqlx::query(
            "SELECT id, name, venue, starts_at, on_sale_at, hold_seconds, max_seats_per_user, per_second,
                    max_active, pass_seconds, abandon_seconds, paused, prequeue_seed
             FROM events WHERE $1::text IS NULL OR id = $1 ORDER BY starts_at, id",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let section_rows = sqlx::query(
            "SELECT event_id, id, name, price_cents, rows, seats_per_row FROM sections
             WHERE $1::text IS NULL OR event_id = $1 ORDER BY event_id, position",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let mut sections: HashMap<String, Vec<Section>> = HashMap::new();
        for row in section_rows {
            sections
                .entry(row.try_get("event_id").map_err(unavailable)?)
                .or_default()
                .push(Section {
                    id: row.try_get("id").map_err(unavailable)?,
                    name: row.try_get("name").map_err(unavailable)?,
                    price_cents: row.try_get("price_cents").map_err(unavailable)?,
                    rows: positive(row.try_get("rows").map_err(unavailable)?)?,
                    seats_per_row: positive(row.try_get("seats_per_row").map_err(unavailable)?)?,
                });
        }

        rows.into_iter()
            .map(|row| {
                let id: String = row.try_get("id").map_err(unavailable)?;
                let seed: Vec<u8> = row.try_get("prequeue_seed").map_err(unavailable)?;
                let max_active: i64 = row.try_get("max_active").map_err(unavailable)?;
                Ok(Event {
                    spec: EventSpec {
                        id: EventId::parse(&id).map_err(unavailable)?,
                        name: row.try_get("name").map_err(unavailable)?,
                        venue: row.try_get("venue").map_err(unavailable)?,
                        starts_at: row.try_get("starts_at").map_err(unavailable)?,
                        on_sale_at: row
                            .try_get::<Option<OffsetDateTime>, _>("on_sale_at")
                            .map_err(unavailable)?,
                        hold_seconds: positive(row.try_get("hold_seconds").map_err(unavailable)?)?,
                        max_seats_per_user: positive(
                            row.try_get("max_seats_per_user").map_err(unavailable)?,
                        )?,
                        admission: Admission {
                            per_second: row.try_get("per_second").map_err(unavailable)?,
                            max_active: u64::try_from(max_active).map_err(unavailable)?,
                            pass_seconds: positive(
                                row.try_get("pass_seconds").map_err(unavailable)?,
                            )?,
                            abandon_seconds: positive(
                                row.try_get("abandon_seconds").map_err(unavailable)?,
                            )?,
                        },
                        paused: row.try_get("paused").map_err(unavailable)?,
                        sections: sections.remove(&id).unwrap_or_default(),
                    },
                    prequeue_seed: seed
                        .try_into()
                        .map_err(|_| unavailable("a pre-queue seed is not 32 bytes"))?,
                })
            })
            .collect()
    }
}

/// Section sizes are validated far below `i32::MAX` (at most a million seats).
fn as_int(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn positive(v: i32) -> BackendResult<u32> {
    u32::try_from(v).map_err(unavailable)
}

#[async_trait]
impl EventRepository for PgEvents {
    async fn insert_event(&self, event: &Event) -> Result<(), InsertEventError> {
        let s = &event.spec;
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let inserted = sqlx::query(
            "INSERT INTO events (id, name, venue, starts_at, on_sale_at, hold_seconds, max_seats_per_user,
                                 per_second, max_active, pass_seconds, abandon_seconds, paused, prequeue_seed)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(s.id.as_str())
        .bind(&s.name)
        .bind(&s.venue)
        .bind(s.starts_at)
        .bind(s.on_sale_at)
        .bind(i64::from(s.hold_seconds))
        .bind(i64::from(s.max_seats_per_user))
        .bind(s.admission.per_second)
        .bind(i64::try_from(s.admission.max_active).unwrap_or(i64::MAX))
        .bind(i64::from(s.admission.pass_seconds))
        .bind(i64::from(s.admission.abandon_seconds))
        .bind(s.paused)
        .bind(event.prequeue_seed.as_slice())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        if inserted.rows_affected() == 0 {
            return Err(InsertEventError::Exists);
        }
        let positions: Vec<i32> = (0..).take(s.sections.len()).collect();
        let column = |f: fn(&Section) -> String| s.sections.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO sections (event_id, position, id, name, price_cents, rows, seats_per_row)
             SELECT $1, * FROM UNNEST($2::int[], $3::text[], $4::text[], $5::bigint[], $6::int[], $7::int[])",
        )
        .bind(s.id.as_str())
        .bind(positions)
        .bind(column(|x| x.id.clone()))
        .bind(column(|x| x.name.clone()))
        .bind(s.sections.iter().map(|x| x.price_cents).collect::<Vec<_>>())
        .bind(s.sections.iter().map(|x| as_int(x.rows)).collect::<Vec<_>>())
        .bind(s.sections.iter().map(|x| as_int(x.seats_per_row)).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(())
    }

    async fn update_event(
        &self,
        id: &EventId,
        patch: AdmissionPatch,
        paused: Option<bool>,
    ) -> BackendResult<Option<Event>> {
        let max_active = patch
            .max_active
            .map(|m| i64::try_from(m).unwrap_or(i64::MAX));
        let updated = sqlx::query(
            "UPDATE events SET per_second = COALESCE($2, per_second), max_active = COALESCE($3, max_active),
                               paused = COALESCE($4, paused), updated_at = now()
             WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(patch.per_second)
        .bind(max_active)
        .bind(paused)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        Ok(self.load(Some(id)).await?.pop())
    }

    async fn list_events(&self) -> BackendResult<Vec<Event>> {
        self.load(None).await
    }

    async fn setting_or_insert(&self, name: &str, candidate: &str) -> BackendResult<String> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn ping(&self) -> BackendResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
