//! The durable record on PostgreSQL. Each namespace is its own schema, so that
//! deployments and test runs share a server without seeing each other.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool, Row};
use time::OffsetDateTime;

use uuid::Uuid;

use crate::domain::prequeue::{draw_from_bytes, draw_to_bytes};
use crate::domain::{
    Admission, AdmissionPatch, Currency, Event, EventId, EventSpec, Holder, Order, OrderStatus,
    Section, TokenKind, Venue,
};
use crate::ports::{
    BackendError, BackendResult, EventRepository, ExpiryDue, InsertEventError, InsertOrderError,
    LineRecord, LineRecords, LiveSeat, OrderRepository, Reserved, Transition,
};

/// How long an operation waits for a connection (a new one, or an idle one
/// that must answer a ping) before it fails with a clear 503.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

fn unavailable(e: impl std::fmt::Display) -> BackendError {
    BackendError::new("postgres", e)
}

pub struct PgEvents {
    pool: PgPool,
}

impl PgEvents {
    /// Closes the pool once its connections are returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

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
            .acquire_timeout(ACQUIRE_TIMEOUT)
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
                    max_active, pass_seconds, abandon_seconds, paused, currency, prequeue_seed
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
                        currency: Currency::parse(row.try_get("currency").map_err(unavailable)?)
                            .map_err(unavailable)?,
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
                                 per_second, max_active, pass_seconds, abandon_seconds, paused, currency,
                                 prequeue_seed)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
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
        .bind(s.currency.code())
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
        let venue = Venue::of(s);
        let seat_ids: Vec<String> = venue
            .seats()
            .map(|seat| venue.id(seat).to_string())
            .collect();
        sqlx::query(
            "INSERT INTO seats (event_id, seat_id, position)
             SELECT $1, seat_id, position::int FROM UNNEST($2::text[]) WITH ORDINALITY AS s (seat_id, position)",
        )
        .bind(s.id.as_str())
        .bind(seat_ids)
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

#[async_trait]
impl LineRecords for PgEvents {
    async fn open_line(&self, event: &EventId, reserved: Reserved) -> BackendResult<bool> {
        let count = |places: u64| i64::try_from(places).map_err(unavailable);
        let inserted = sqlx::query(
            "INSERT INTO lines (event_id, regular_reserved, prequeue_reserved) VALUES ($1, $2, $3)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event.as_str())
        .bind(count(reserved.regular)?)
        .bind(count(reserved.prequeue)?)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn reserve(&self, event: &EventId, kind: TokenKind, at_least: u64) -> BackendResult<u64> {
        let column = match kind {
            TokenKind::Regular => "regular_reserved",
            TokenKind::PreQueue => "prequeue_reserved",
        };
        let sql = format!(
            "INSERT INTO lines (event_id, {column}) VALUES ($1, $2) ON CONFLICT (event_id)
             DO UPDATE SET {column} = GREATEST(lines.{column}, excluded.{column}) RETURNING {column}"
        );
        let reserved: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(event.as_str())
            .bind(i64::try_from(at_least).map_err(unavailable)?)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        u64::try_from(reserved).map_err(unavailable)
    }

    async fn record_prequeue(&self, event: &EventId, size: u64) -> BackendResult<()> {
        sqlx::query(
            "INSERT INTO lines (event_id, prequeue_size) VALUES ($1, $2) ON CONFLICT (event_id)
             DO UPDATE SET prequeue_size = COALESCE(lines.prequeue_size, excluded.prequeue_size)",
        )
        .bind(event.as_str())
        .bind(i64::try_from(size).map_err(unavailable)?)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn record_draw(&self, event: &EventId, draw: &[u32]) -> BackendResult<Vec<u32>> {
        let recorded: Vec<u8> = sqlx::query_scalar(
            "INSERT INTO lines (event_id, draw) VALUES ($1, $2) ON CONFLICT (event_id)
             DO UPDATE SET draw = COALESCE(lines.draw, excluded.draw) RETURNING draw",
        )
        .bind(event.as_str())
        .bind(draw_to_bytes(draw))
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(draw_from_bytes(&recorded))
    }

    async fn line_record(&self, event: &EventId) -> BackendResult<LineRecord> {
        let row = sqlx::query(
            "SELECT regular_reserved, prequeue_reserved, prequeue_size, draw FROM lines WHERE event_id = $1",
        )
        .bind(event.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let Some(row) = row else {
            return Ok(LineRecord::default());
        };
        let count = |column: &str| -> BackendResult<Option<u64>> {
            let value: Option<i64> = row.try_get(column).map_err(unavailable)?;
            value
                .map(|v| u64::try_from(v).map_err(unavailable))
                .transpose()
        };
        let draw: Option<Vec<u8>> = row.try_get("draw").map_err(unavailable)?;
        Ok(LineRecord {
            reserved: Reserved {
                regular: count("regular_reserved")?.unwrap_or(0),
                prequeue: count("prequeue_reserved")?.unwrap_or(0),
            },
            prequeue: count("prequeue_size")?,
            draw: draw.as_deref().map(draw_from_bytes),
        })
    }
}

const ORDER_COLUMNS: &str =
    "o.id, o.event_id, o.holder, o.status, o.amount_cents, o.created_at, o.expires_at,
     ARRAY(SELECT seat_id FROM order_seats s JOIN seats USING (event_id, seat_id)
           WHERE s.order_id = o.id ORDER BY seats.position) AS seats";

fn order_from(row: &sqlx::postgres::PgRow) -> BackendResult<Order> {
    let status: String = row.try_get("status").map_err(unavailable)?;
    let event: String = row.try_get("event_id").map_err(unavailable)?;
    Ok(Order {
        id: row.try_get("id").map_err(unavailable)?,
        event: EventId::parse(&event).map_err(unavailable)?,
        holder: Holder::from_stored(row.try_get("holder").map_err(unavailable)?),
        status: OrderStatus::parse(&status)
            .ok_or_else(|| unavailable(format!("unknown order status {status:?}")))?,
        seats: row.try_get("seats").map_err(unavailable)?,
        amount_cents: row.try_get("amount_cents").map_err(unavailable)?,
        created_at: row.try_get("created_at").map_err(unavailable)?,
        expires_at: row.try_get("expires_at").map_err(unavailable)?,
    })
}

impl PgEvents {
    async fn load_order(&self, id: Uuid) -> BackendResult<Option<Order>> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders o WHERE o.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(order_from).transpose()
    }
}

#[async_trait]
impl OrderRepository for PgEvents {
    async fn insert_order(&self, order: &Order) -> Result<(), InsertOrderError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO orders (id, event_id, holder, status, amount_cents, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(order.id)
        .bind(order.event.as_str())
        .bind(order.holder.as_str())
        .bind(order.status.as_str())
        .bind(order.amount_cents)
        .bind(order.created_at)
        .bind(order.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let seats =
            sqlx::query("INSERT INTO order_seats (order_id, event_id, seat_id) SELECT $1, $2, UNNEST($3::text[])")
                .bind(order.id)
                .bind(order.event.as_str())
                .bind(&order.seats)
                .execute(&mut *tx)
                .await;
        match seats {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.constraint() == Some("seat_live_unique") => {
                drop(tx);
                let taken: Vec<String> = sqlx::query_scalar(
                    "SELECT seat_id FROM order_seats WHERE event_id = $1 AND live AND seat_id = ANY($2)",
                )
                .bind(order.event.as_str())
                .bind(&order.seats)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
                return Err(InsertOrderError::SeatsTaken(taken));
            }
            Err(e) => return Err(unavailable(e).into()),
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(())
    }

    async fn order(&self, id: Uuid) -> BackendResult<Option<Order>> {
        self.load_order(id).await
    }

    async fn transition(
        &self,
        id: Uuid,
        to: OrderStatus,
        payment_ref: Option<&str>,
    ) -> BackendResult<Transition> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // One compare-and-set decides between payment, cancellation and expiry,
        // all by the database's clock, so that no two processes' clocks disagree.
        let changed = sqlx::query(
            "UPDATE orders SET status = $2, ended_at = now(), payment_ref = COALESCE($3, payment_ref)
             WHERE id = $1 AND status = 'pending'
               AND CASE $2 WHEN 'paid' THEN expires_at > now() WHEN 'expired' THEN expires_at <= now() ELSE TRUE END",
        )
        .bind(id)
        .bind(to.as_str())
        .bind(payment_ref)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected()
            == 1;
        if changed && !to.is_live() {
            sqlx::query("UPDATE order_seats SET live = FALSE WHERE order_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(match self.load_order(id).await? {
            None => Transition::NotFound,
            Some(order) if changed => Transition::Changed(order),
            Some(order) => Transition::Unchanged(order),
        })
    }

    async fn live_seats(&self, event: &EventId) -> BackendResult<Vec<LiveSeat>> {
        let rows = sqlx::query(
            "SELECT s.seat_id, o.id, o.holder, o.status FROM order_seats s JOIN orders o ON o.id = s.order_id
             WHERE s.event_id = $1 AND s.live",
        )
        .bind(event.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status").map_err(unavailable)?;
                Ok(LiveSeat {
                    seat: row.try_get("seat_id").map_err(unavailable)?,
                    order: row.try_get("id").map_err(unavailable)?,
                    holder: Holder::from_stored(row.try_get("holder").map_err(unavailable)?),
                    sold: status == OrderStatus::Paid.as_str(),
                })
            })
            .collect()
    }

    async fn overdue(&self, grace: Duration, limit: i64) -> BackendResult<Vec<ExpiryDue>> {
        let rows = sqlx::query(
            "SELECT id, event_id FROM orders
             WHERE status = 'pending' AND expires_at < now() - make_interval(secs => $1)
             ORDER BY expires_at LIMIT $2",
        )
        .bind(grace.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let event: String = row.try_get("event_id").map_err(unavailable)?;
                Ok(ExpiryDue {
                    event: EventId::parse(&event).map_err(unavailable)?,
                    order: row.try_get("id").map_err(unavailable)?,
                })
            })
            .collect()
    }

    async fn order_counts(&self, event: &EventId) -> BackendResult<(u64, u64)> {
        let (paid, expired): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE status = 'paid'), COUNT(*) FILTER (WHERE status = 'expired')
             FROM orders WHERE event_id = $1",
        )
        .bind(event.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok((paid.max(0) as u64, expired.max(0) as u64))
    }
}
