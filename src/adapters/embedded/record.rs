//! The durable record on SQLite (embedded mode): events, seats and orders.
//! Same contract as the PostgreSQL adapter; one process, so one clock.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::prequeue::{draw_from_bytes, draw_to_bytes};
use crate::domain::{
    Admission, AdmissionPatch, Currency, Event, EventId, EventSpec, Holder, Order, OrderStatus,
    Section, TokenKind, Venue, from_unix_ms, unix_ms,
};
use crate::ports::{
    AnyError, BackendError, BackendResult, EventRepository, ExpiryDue, InsertEventError,
    InsertOrderError, LineRecord, LineRecords, LiveSeat, OrderRepository, Reserved, Transition,
};

fn unavailable(e: impl Into<AnyError>) -> BackendError {
    BackendError::unavailable("sqlite", e)
}

fn from_ms(ms: i64) -> BackendResult<OffsetDateTime> {
    from_unix_ms(ms).ok_or_else(|| unavailable(format!("{ms} ms is not a representable time")))
}

fn now_ms() -> i64 {
    unix_ms(OffsetDateTime::now_utc())
}

fn get<'r, T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>>(
    row: &'r SqliteRow,
    column: &str,
) -> BackendResult<T> {
    row.try_get(column).map_err(unavailable)
}

fn small(v: i64) -> BackendResult<u32> {
    u32::try_from(v).map_err(unavailable)
}

pub struct SqliteRecord {
    pool: SqlitePool,
}

impl SqliteRecord {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    async fn load(&self, only: Option<&EventId>) -> BackendResult<Vec<Event>> {
        let id = only.map(|e| e.as_str().to_owned());
        let rows =
            sqlx::query("SELECT * FROM events WHERE ?1 IS NULL OR id = ?1 ORDER BY starts_at, id")
                .bind(&id)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
        let section_rows = sqlx::query(
            "SELECT * FROM sections WHERE ?1 IS NULL OR event_id = ?1 ORDER BY event_id, position",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let mut sections: HashMap<String, Vec<Section>> = HashMap::new();
        for row in &section_rows {
            sections
                .entry(get(row, "event_id")?)
                .or_default()
                .push(Section {
                    id: get(row, "id")?,
                    name: get(row, "name")?,
                    price_cents: get(row, "price_cents")?,
                    rows: small(get(row, "rows")?)?,
                    seats_per_row: small(get(row, "seats_per_row")?)?,
                });
        }
        rows.iter()
            .map(|row| {
                let id: String = get(row, "id")?;
                let seed: Vec<u8> = get(row, "prequeue_seed")?;
                let on_sale_at: Option<i64> = get(row, "on_sale_at")?;
                Ok(Event {
                    spec: EventSpec {
                        id: EventId::parse(&id).map_err(unavailable)?,
                        name: get(row, "name")?,
                        venue: get(row, "venue")?,
                        starts_at: from_ms(get(row, "starts_at")?)?,
                        on_sale_at: on_sale_at.map(from_ms).transpose()?,
                        hold_seconds: small(get(row, "hold_seconds")?)?,
                        max_seats_per_user: small(get(row, "max_seats_per_user")?)?,
                        admission: Admission {
                            per_second: get(row, "per_second")?,
                            max_active: u64::try_from(get::<i64>(row, "max_active")?)
                                .map_err(unavailable)?,
                            pass_seconds: small(get(row, "pass_seconds")?)?,
                            abandon_seconds: small(get(row, "abandon_seconds")?)?,
                        },
                        paused: get(row, "paused")?,
                        currency: Currency::parse(&get::<String>(row, "currency")?)
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

    async fn load_order(&self, id: Uuid) -> BackendResult<Option<Order>> {
        let Some(row) = sqlx::query("SELECT * FROM orders WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let seats: Vec<String> = sqlx::query_scalar(
            "SELECT s.seat_id FROM order_seats s JOIN seats USING (event_id, seat_id) WHERE s.order_id = ? ORDER BY seats.position",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let status: String = get(&row, "status")?;
        let event: String = get(&row, "event_id")?;
        Ok(Some(Order {
            id,
            event: EventId::parse(&event).map_err(unavailable)?,
            holder: Holder::from_stored(get(&row, "holder")?),
            status: OrderStatus::parse(&status)
                .ok_or_else(|| unavailable(format!("unknown order status {status:?}")))?,
            seats,
            amount_cents: get(&row, "amount_cents")?,
            created_at: from_ms(get(&row, "created_at")?)?,
            expires_at: from_ms(get(&row, "expires_at")?)?,
        }))
    }
}

#[async_trait]
impl EventRepository for SqliteRecord {
    async fn insert_event(&self, event: &Event) -> Result<(), InsertEventError> {
        let s = &event.spec;
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let inserted = sqlx::query(
            "INSERT INTO events (id, name, venue, starts_at, on_sale_at, hold_seconds, max_seats_per_user,
                                 per_second, max_active, pass_seconds, abandon_seconds, paused, currency,
                                 prequeue_seed)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(s.id.as_str())
        .bind(&s.name)
        .bind(&s.venue)
        .bind(unix_ms(s.starts_at))
        .bind(s.on_sale_at.map(unix_ms))
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
        for (position, section) in s.sections.iter().enumerate() {
            sqlx::query("INSERT INTO sections (event_id, position, id, name, price_cents, rows, seats_per_row) VALUES (?, ?, ?, ?, ?, ?, ?)")
                .bind(s.id.as_str())
                .bind(position as i64)
                .bind(&section.id)
                .bind(&section.name)
                .bind(section.price_cents)
                .bind(i64::from(section.rows))
                .bind(i64::from(section.seats_per_row))
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        let venue = Venue::of(s);
        let seat_ids: Vec<String> = venue
            .seats()
            .map(|seat| venue.id(seat).to_string())
            .collect();
        let ids = serde_json::to_string(&seat_ids).map_err(unavailable)?;
        sqlx::query("INSERT INTO seats (event_id, seat_id, position) SELECT ?, value, key + 1 FROM json_each(?)")
            .bind(s.id.as_str())
            .bind(ids)
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
            "UPDATE events SET per_second = COALESCE(?2, per_second), max_active = COALESCE(?3, max_active),
                               paused = COALESCE(?4, paused) WHERE id = ?1",
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
            "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
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
impl LineRecords for SqliteRecord {
    async fn open_line(&self, event: &EventId, reserved: Reserved) -> BackendResult<bool> {
        let count = |places: u64| i64::try_from(places).map_err(unavailable);
        let inserted = sqlx::query(
            "INSERT INTO lines (event_id, regular_reserved, prequeue_reserved) VALUES (?, ?, ?)
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
            "INSERT INTO lines (event_id, {column}) VALUES (?, ?) ON CONFLICT (event_id)
             DO UPDATE SET {column} = MAX(lines.{column}, excluded.{column}) RETURNING {column}"
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
            "INSERT INTO lines (event_id, prequeue_size) VALUES (?, ?) ON CONFLICT (event_id)
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
            "INSERT INTO lines (event_id, draw) VALUES (?, ?) ON CONFLICT (event_id)
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
            "SELECT regular_reserved, prequeue_reserved, prequeue_size, draw FROM lines WHERE event_id = ?",
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

#[async_trait]
impl OrderRepository for SqliteRecord {
    async fn insert_order(&self, order: &Order) -> Result<(), InsertOrderError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO orders (id, event_id, holder, status, amount_cents, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(order.id)
        .bind(order.event.as_str())
        .bind(order.holder.as_str())
        .bind(order.status.as_str())
        .bind(order.amount_cents)
        .bind(unix_ms(order.created_at))
        .bind(unix_ms(order.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let seats = serde_json::to_string(&order.seats).map_err(unavailable)?;
        let inserted =
            sqlx::query("INSERT INTO order_seats (order_id, event_id, seat_id) SELECT ?, ?, value FROM json_each(?)")
                .bind(order.id)
                .bind(order.event.as_str())
                .bind(&seats)
                .execute(&mut *tx)
                .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                drop(tx);
                let taken: Vec<String> = sqlx::query_scalar(
                    "SELECT seat_id FROM order_seats WHERE event_id = ? AND live = 1 AND seat_id IN (SELECT value FROM json_each(?))",
                )
                .bind(order.event.as_str())
                .bind(&seats)
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
        let now = now_ms();
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // One compare-and-set decides between payment, cancellation and expiry.
        let changed = sqlx::query(
            "UPDATE orders SET status = ?2, ended_at = ?3, payment_ref = COALESCE(?4, payment_ref)
             WHERE id = ?1 AND status = 'pending'
               AND CASE ?2 WHEN 'paid' THEN expires_at > ?3 WHEN 'expired' THEN expires_at <= ?3 ELSE 1 END",
        )
        .bind(id)
        .bind(to.as_str())
        .bind(now)
        .bind(payment_ref)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected()
            == 1;
        if changed && !to.is_live() {
            sqlx::query("UPDATE order_seats SET live = 0 WHERE order_id = ?")
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
             WHERE s.event_id = ? AND s.live = 1",
        )
        .bind(event.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let status: String = get(row, "status")?;
                Ok(LiveSeat {
                    seat: get(row, "seat_id")?,
                    order: get(row, "id")?,
                    holder: Holder::from_stored(get(row, "holder")?),
                    sold: status == OrderStatus::Paid.as_str(),
                })
            })
            .collect()
    }

    async fn overdue(&self, grace: Duration, limit: i64) -> BackendResult<Vec<ExpiryDue>> {
        let before = now_ms() - i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT id, event_id FROM orders WHERE status = 'pending' AND expires_at < ? ORDER BY expires_at LIMIT ?",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let event: String = get(row, "event_id")?;
                Ok(ExpiryDue {
                    event: EventId::parse(&event).map_err(unavailable)?,
                    order: get(row, "id")?,
                })
            })
            .collect()
    }

    async fn order_counts(&self, event: &EventId) -> BackendResult<(u64, u64)> {
        let (paid, expired): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(status = 'paid'), 0), COALESCE(SUM(status = 'expired'), 0) FROM orders WHERE event_id = ?",
        )
        .bind(event.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok((paid.max(0) as u64, expired.max(0) as u64))
    }
}
