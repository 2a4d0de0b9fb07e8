//! The durable record (events, lines, orders and their seats) on an SQL
//! database: PostgreSQL for the servers, SQLite in embedded mode. Each query is
//! written once; what the two databases spell differently is in `dialect.rs`.

pub mod dialect;
mod postgres;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Pool, Postgres, Sqlite};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::door::WindowLimit;
use crate::domain::gate::parse_return_origins;
use crate::domain::prequeue::{draw_from_bytes, draw_to_bytes};
use crate::domain::{
    Access, Admission, CodeHash, Currency, Difficulty, Event, EventId, EventPatch, EventSpec,
    Holder, Order, OrderStatus, Origin, Section, TokenKind, Venue, unix_ms,
};
use crate::ports::{
    BackendError, BackendResult, CodeCounts, CodeRecords, EventRepository, ExpiryDue,
    InsertEventError, InsertOrderError, LineRecord, LineRecords, LiveSeat, OrderRepository,
    PassKeyRecords, Reserved, Transition,
};
use dialect::{Binds, Dialect, Reads, Statement};

pub use postgres::ACQUIRE_TIMEOUT;

/// The window stored with an event that has no address limit (the column needs one).
const ADDRESS_WINDOW_WHEN_OFF: u64 = 60;

/// Origins as the record keeps them: their text, in a JSON list.
fn origin_texts(origins: &[Origin]) -> Vec<String> {
    origins.iter().map(|o| o.as_str().to_owned()).collect()
}

/// The record on database `D`: the servers' one or embedded mode's one.
pub struct SqlRecord<D: Dialect> {
    pool: Pool<D>,
}

pub type PostgresRecord = SqlRecord<Postgres>;
pub type SqliteRecord = SqlRecord<Sqlite>;

/// What the database answered, by what the caller can do about it.
fn db_error<D: Dialect>(e: sqlx::Error) -> BackendError {
    super::sql_error(D::SERVICE, e)
}

/// A value in the record that no version of Anteroom writes, or one it cannot store.
fn malformed<D: Dialect>(what: impl std::fmt::Display) -> BackendError {
    BackendError::bug(format!("{} record: {what}", D::SERVICE))
}

/// Binding a statement's parameters, whatever the dialect.
trait Bind<D: Dialect>: Sized {
    fn arg<T>(self, value: T) -> Self
    where
        D: Binds<T>;

    fn time(self, at: impl Into<Option<OffsetDateTime>>) -> Self;

    /// A list, as the JSON array that [`Dialect::list`] reads.
    fn list(self, items: &[String]) -> BackendResult<Self> {
        let json = serde_json::to_string(items).map_err(malformed::<D>)?;
        Ok(self.arg(json))
    }

    /// A list that may be absent (`NULL`), as [`Bind::list`] binds it.
    fn optional_list(self, items: Option<&[String]>) -> BackendResult<Self> {
        let json = items
            .map(serde_json::to_string)
            .transpose()
            .map_err(malformed::<D>)?;
        Ok(self.arg(json))
    }

    /// A count, stored as a signed 64-bit integer.
    fn count(self, n: u64) -> BackendResult<Self> {
        Ok(self.arg(i64::try_from(n).map_err(malformed::<D>)?))
    }
}

impl<D: Dialect> Bind<D> for Statement<'_, D> {
    fn arg<T>(self, value: T) -> Self
    where
        D: Binds<T>,
    {
        D::bind_to(self, value)
    }

    fn time(self, at: impl Into<Option<OffsetDateTime>>) -> Self {
        D::bind_time(self, at.into())
    }
}

/// A row of `D`, read column by column.
struct Fields<'r, D: Dialect>(&'r D::Row);

impl<D: Dialect> Fields<'_, D> {
    fn get<T>(&self, column: &str) -> BackendResult<T>
    where
        D: Reads<T>,
    {
        D::read(self.0, column).map_err(db_error::<D>)
    }

    fn optional_time(&self, column: &str) -> BackendResult<Option<OffsetDateTime>> {
        D::read_time(self.0, column).map_err(db_error::<D>)
    }

    fn time(&self, column: &str) -> BackendResult<OffsetDateTime> {
        self.optional_time(column)?
            .ok_or_else(|| malformed::<D>(format!("{column} is null")))
    }

    /// A size or count, stored as INTEGER (sizes are validated far below `i32::MAX`).
    fn size(&self, column: &str) -> BackendResult<u32> {
        u32::try_from(self.get::<i32>(column)?).map_err(malformed::<D>)
    }

    fn count(&self, column: &str) -> BackendResult<Option<u64>> {
        self.get::<Option<i64>>(column)?
            .map(|n| u64::try_from(n).map_err(malformed::<D>))
            .transpose()
    }

    fn event_id(&self) -> BackendResult<EventId> {
        EventId::parse(&self.get::<String>("event_id")?).map_err(malformed::<D>)
    }
}

impl<D: Dialect> SqlRecord<D> {
    /// The record on a pool whose database is migrated.
    pub fn new(pool: Pool<D>) -> Self {
        Self { pool }
    }

    /// Closes the pool once its connections are returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn connection(&self) -> BackendResult<PoolConnection<D>> {
        self.pool.acquire().await.map_err(db_error::<D>)
    }

    /// Runs one statement outside a transaction.
    async fn run(&self, statement: Statement<'_, D>) -> BackendResult<()> {
        let mut db = self.connection().await?;
        statement
            .execute(D::on(&mut db))
            .await
            .map_err(db_error::<D>)?;
        Ok(())
    }

    /// Runs one statement outside a transaction, for its rows.
    async fn rows(&self, statement: Statement<'_, D>) -> BackendResult<Vec<D::Row>> {
        let mut db = self.connection().await?;
        statement
            .fetch_all(D::on(&mut db))
            .await
            .map_err(db_error::<D>)
    }

    /// Runs one statement outside a transaction, for the row it returns if
    /// any (it returns at most one: a key's, or `RETURNING` one row's).
    async fn row(&self, statement: Statement<'_, D>) -> BackendResult<Option<D::Row>> {
        Ok(self.rows(statement).await?.into_iter().next())
    }

    /// Runs one statement outside a transaction, for the one row it returns.
    async fn one(&self, statement: Statement<'_, D>) -> BackendResult<D::Row> {
        self.row(statement)
            .await?
            .ok_or_else(|| malformed::<D>("a statement returned no row"))
    }

    async fn load(&self, only: Option<&EventId>) -> BackendResult<Vec<Event>> {
        let id = only.map(|id| id.as_str().to_owned());
        // Events first: sections commit with their event, so every event read here
        // finds its sections in the second query.
        let rows = self
            .rows(
                sqlx::query(
                    "SELECT id, name, venue, starts_at, on_sale_at, hold_seconds, max_seats_per_user,
                            per_second, max_active, pass_seconds, abandon_seconds, paused, currency,
                            join_challenge_bits, access, address_places, address_window_seconds,
                            return_origins, prequeue_seed
                     FROM events WHERE CAST($1 AS TEXT) IS NULL OR id = $1 ORDER BY starts_at, id",
                )
                .arg(id.clone()),
            )
            .await?;
        let section_rows = self
            .rows(
                sqlx::query(
                    "SELECT event_id, id, name, price_cents, rows, seats_per_row FROM sections
                     WHERE CAST($1 AS TEXT) IS NULL OR event_id = $1 ORDER BY event_id, position",
                )
                .arg(id),
            )
            .await?;
        let mut sections: HashMap<String, Vec<Section>> = HashMap::new();
        for row in &section_rows {
            let row = Fields::<D>(row);
            sections
                .entry(row.get("event_id")?)
                .or_default()
                .push(Section {
                    id: row.get("id")?,
                    name: row.get("name")?,
                    price_cents: row.get("price_cents")?,
                    rows: row.size("rows")?,
                    seats_per_row: row.size("seats_per_row")?,
                });
        }
        rows.iter()
            .map(|row| {
                let row = Fields::<D>(row);
                let id: String = row.get("id")?;
                let seed: Vec<u8> = row.get("prequeue_seed")?;
                let currency: String = row.get("currency")?;
                let access: String = row.get("access")?;
                let address_places = row.size("address_places")?;
                let return_origins: Vec<String> =
                    serde_json::from_str(&row.get::<String>("return_origins")?)
                        .map_err(malformed::<D>)?;
                Ok(Event {
                    spec: EventSpec {
                        id: EventId::parse(&id).map_err(malformed::<D>)?,
                        name: row.get("name")?,
                        venue: row.get("venue")?,
                        starts_at: row.time("starts_at")?,
                        on_sale_at: row.optional_time("on_sale_at")?,
                        hold_seconds: row.size("hold_seconds")?,
                        max_seats_per_user: row.size("max_seats_per_user")?,
                        admission: Admission {
                            per_second: row.get("per_second")?,
                            max_active: u64::try_from(row.get::<i64>("max_active")?)
                                .map_err(malformed::<D>)?,
                            pass_seconds: row.size("pass_seconds")?,
                            abandon_seconds: row.size("abandon_seconds")?,
                        },
                        paused: row.get("paused")?,
                        currency: Currency::parse(&currency).map_err(malformed::<D>)?,
                        join_challenge: Difficulty::parse(row.size("join_challenge_bits")?.into())
                            .map_err(malformed::<D>)?,
                        access: Access::parse(&access).map_err(malformed::<D>)?,
                        address_limit: (address_places > 0)
                            .then(|| -> BackendResult<WindowLimit> {
                                Ok(WindowLimit {
                                    per_window: address_places.into(),
                                    window_seconds: row.size("address_window_seconds")?.into(),
                                })
                            })
                            .transpose()?,
                        return_origins: parse_return_origins(&return_origins)
                            .map_err(malformed::<D>)?,
                        sections: sections.remove(&id).unwrap_or_default(),
                    },
                    prequeue_seed: seed
                        .try_into()
                        .map_err(|_| malformed::<D>("a pre-queue seed is not 32 bytes"))?,
                })
            })
            .collect()
    }

    async fn load_order(&self, id: Uuid) -> BackendResult<Option<Order>> {
        let sql = format!(
            "SELECT o.id, o.event_id, o.holder, o.status, o.amount_cents, o.created_at, o.expires_at,
                    (SELECT {seats} FROM order_seats s JOIN seats USING (event_id, seat_id)
                     WHERE s.order_id = o.id) AS seats
             FROM orders o WHERE o.id = $1",
            seats = D::json_array("seat_id", "seats.position"),
        );
        let row = self.row(sqlx::query(AssertSqlSafe(sql)).arg(id)).await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let row = Fields::<D>(&row);
        let status: String = row.get("status")?;
        let seats: String = row.get("seats")?;
        Ok(Some(Order {
            id: row.get("id")?,
            event: row.event_id()?,
            holder: Holder::from_stored(row.get("holder")?),
            status: OrderStatus::parse(&status)
                .ok_or_else(|| malformed::<D>(format!("unknown order status {status:?}")))?,
            seats: serde_json::from_str(&seats).map_err(malformed::<D>)?,
            amount_cents: row.get("amount_cents")?,
            created_at: row.time("created_at")?,
            expires_at: row.time("expires_at")?,
        }))
    }
}

#[async_trait]
impl<D: Dialect> EventRepository for SqlRecord<D> {
    async fn insert_event(&self, event: &Event) -> Result<(), InsertEventError> {
        let s = &event.spec;
        let mut tx = self.pool.begin().await.map_err(db_error::<D>)?;
        let sql = format!(
            "INSERT INTO events (id, name, venue, starts_at, on_sale_at, hold_seconds, max_seats_per_user,
                                 per_second, max_active, pass_seconds, abandon_seconds, paused, currency,
                                 join_challenge_bits, access, address_places, address_window_seconds,
                                 return_origins, prequeue_seed, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                     $19, {now}, {now})
             ON CONFLICT (id) DO NOTHING RETURNING id",
            now = D::NOW,
        );
        let inserted = sqlx::query(AssertSqlSafe(sql))
            .arg(s.id.as_str())
            .arg(s.name.as_str())
            .arg(s.venue.as_str())
            .time(s.starts_at)
            .time(s.on_sale_at)
            .arg(i64::from(s.hold_seconds))
            .arg(i64::from(s.max_seats_per_user))
            .arg(s.admission.per_second)
            .arg(i64::try_from(s.admission.max_active).unwrap_or(i64::MAX))
            .arg(i64::from(s.admission.pass_seconds))
            .arg(i64::from(s.admission.abandon_seconds))
            .arg(s.paused)
            .arg(s.currency.code())
            .arg(i64::from(s.join_challenge.bits()))
            .arg(s.access.as_str())
            .count(s.address_limit.map_or(0, |l| l.per_window))?
            .count(
                s.address_limit
                    .map_or(ADDRESS_WINDOW_WHEN_OFF, |l| l.window_seconds),
            )?
            .list(&origin_texts(&s.return_origins))?
            .arg(event.prequeue_seed.as_slice())
            .fetch_optional(D::on(&mut tx))
            .await
            .map_err(db_error::<D>)?;
        if inserted.is_none() {
            return Err(InsertEventError::Exists);
        }
        for (position, section) in s.sections.iter().enumerate() {
            sqlx::query(
                "INSERT INTO sections (event_id, position, id, name, price_cents, rows, seats_per_row)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .arg(s.id.as_str())
            .arg(i64::try_from(position).map_err(malformed::<D>)?)
            .arg(section.id.as_str())
            .arg(section.name.as_str())
            .arg(section.price_cents)
            .arg(i64::from(section.rows))
            .arg(i64::from(section.seats_per_row))
            .execute(D::on(&mut tx))
            .await
            .map_err(db_error::<D>)?;
        }
        let venue = Venue::of(s);
        let seat_ids: Vec<String> = venue
            .seats()
            .map(|seat| venue.id(seat).to_string())
            .collect();
        let sql = format!(
            "INSERT INTO seats (event_id, seat_id, position) SELECT $1, value, position FROM {}",
            D::list("$2"),
        );
        sqlx::query(AssertSqlSafe(sql))
            .arg(s.id.as_str())
            .list(&seat_ids)?
            .execute(D::on(&mut tx))
            .await
            .map_err(db_error::<D>)?;
        tx.commit().await.map_err(db_error::<D>)?;
        Ok(())
    }

    async fn update_event(&self, id: &EventId, patch: EventPatch) -> BackendResult<Option<Event>> {
        let max_active = patch
            .admission
            .max_active
            .map(|m| i64::try_from(m).unwrap_or(i64::MAX));
        // Off is 0 places (the window is then left as it was).
        let (address_places, address_window) = match patch.address_limit {
            None => (None, None),
            Some(None) => (Some(0), None),
            Some(Some(limit)) => (
                Some(i64::try_from(limit.per_window).map_err(malformed::<D>)?),
                Some(i64::try_from(limit.window_seconds).map_err(malformed::<D>)?),
            ),
        };
        let sql = format!(
            "UPDATE events SET per_second = COALESCE($2, per_second), max_active = COALESCE($3, max_active),
                               paused = COALESCE($4, paused),
                               join_challenge_bits = COALESCE($5, join_challenge_bits),
                               access = COALESCE($6, access),
                               address_places = COALESCE($7, address_places),
                               address_window_seconds = COALESCE($8, address_window_seconds),
                               return_origins = COALESCE($9, return_origins),
                               updated_at = {}
             WHERE id = $1 RETURNING id",
            D::NOW,
        );
        let updated = self
            .row(
                sqlx::query(AssertSqlSafe(sql))
                    .arg(id.as_str())
                    .arg(patch.admission.per_second)
                    .arg(max_active)
                    .arg(patch.paused)
                    .arg(patch.join_challenge.map(|bits| i64::from(bits.bits())))
                    .arg(patch.access.map(|a| a.as_str().to_owned()))
                    .arg(address_places)
                    .arg(address_window)
                    .optional_list(patch.return_origins.as_deref().map(origin_texts).as_deref())?,
            )
            .await?;
        if updated.is_none() {
            return Ok(None);
        }
        Ok(self.load(Some(id)).await?.pop())
    }

    async fn list_events(&self) -> BackendResult<Vec<Event>> {
        self.load(None).await
    }

    async fn setting_or_insert(&self, name: &str, candidate: &str) -> BackendResult<String> {
        self.run(
            sqlx::query(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .arg(name)
            .arg(candidate),
        )
        .await?;
        let row = self
            .one(sqlx::query("SELECT value FROM settings WHERE name = $1").arg(name))
            .await?;
        Fields::<D>(&row).get("value")
    }

    async fn ping(&self) -> BackendResult<()> {
        self.run(sqlx::query("SELECT 1")).await
    }
}

#[async_trait]
impl<D: Dialect> LineRecords for SqlRecord<D> {
    async fn open_line(&self, event: &EventId, reserved: Reserved) -> BackendResult<bool> {
        let inserted = self
            .row(
                sqlx::query(
                    "INSERT INTO lines (event_id, regular_reserved, prequeue_reserved)
                     VALUES ($1, $2, $3) ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                )
                .arg(event.as_str())
                .count(reserved.regular)?
                .count(reserved.prequeue)?,
            )
            .await?;
        Ok(inserted.is_some())
    }

    async fn reserve(&self, event: &EventId, kind: TokenKind, at_least: u64) -> BackendResult<u64> {
        let column = match kind {
            TokenKind::Regular => "regular_reserved",
            TokenKind::PreQueue => "prequeue_reserved",
        };
        let sql = format!(
            "INSERT INTO lines (event_id, {column}) VALUES ($1, $2) ON CONFLICT (event_id)
             DO UPDATE SET {column} = {greatest}(lines.{column}, excluded.{column}) RETURNING {column}",
            greatest = D::GREATEST,
        );
        let row = self
            .one(
                sqlx::query(AssertSqlSafe(sql))
                    .arg(event.as_str())
                    .count(at_least)?,
            )
            .await?;
        Ok(Fields::<D>(&row).count(column)?.unwrap_or(0))
    }

    async fn record_prequeue(&self, event: &EventId, size: u64) -> BackendResult<()> {
        self.run(
            sqlx::query(
                "INSERT INTO lines (event_id, prequeue_size) VALUES ($1, $2) ON CONFLICT (event_id)
                 DO UPDATE SET prequeue_size = COALESCE(lines.prequeue_size, excluded.prequeue_size)",
            )
            .arg(event.as_str())
            .count(size)?,
        )
        .await
    }

    async fn record_draw(&self, event: &EventId, draw: &[u32]) -> BackendResult<Vec<u32>> {
        let row = self
            .one(
                sqlx::query(
                    "INSERT INTO lines (event_id, draw) VALUES ($1, $2) ON CONFLICT (event_id)
                     DO UPDATE SET draw = COALESCE(lines.draw, excluded.draw) RETURNING draw",
                )
                .arg(event.as_str())
                .arg(draw_to_bytes(draw)),
            )
            .await?;
        let recorded: Vec<u8> = Fields::<D>(&row).get("draw")?;
        Ok(draw_from_bytes(&recorded))
    }

    async fn line_record(&self, event: &EventId) -> BackendResult<LineRecord> {
        let row = self
            .row(
                sqlx::query(
                    "SELECT regular_reserved, prequeue_reserved, prequeue_size, draw
                     FROM lines WHERE event_id = $1",
                )
                .arg(event.as_str()),
            )
            .await?;
        let Some(row) = row else {
            return Ok(LineRecord::default());
        };
        let row = Fields::<D>(&row);
        let draw: Option<Vec<u8>> = row.get("draw")?;
        Ok(LineRecord {
            reserved: Reserved {
                regular: row.count("regular_reserved")?.unwrap_or(0),
                prequeue: row.count("prequeue_reserved")?.unwrap_or(0),
            },
            prequeue: row.count("prequeue_size")?,
            draw: draw.as_deref().map(draw_from_bytes),
        })
    }
}

#[async_trait]
impl<D: Dialect> PassKeyRecords for SqlRecord<D> {
    async fn note_signing(&self, kid: &str, jwk: &str, now_ms: i64) -> BackendResult<()> {
        let sql = format!(
            "INSERT INTO signing_keys (kid, jwk, last_signed_ms) VALUES ($1, $2, $3) ON CONFLICT (kid)
             DO UPDATE SET last_signed_ms = {greatest}(signing_keys.last_signed_ms, excluded.last_signed_ms)",
            greatest = D::GREATEST,
        );
        self.run(
            sqlx::query(AssertSqlSafe(sql))
                .arg(kid)
                .arg(jwk)
                .arg(now_ms),
        )
        .await
    }

    async fn keys_signing_since(&self, since_ms: i64) -> BackendResult<Vec<String>> {
        let rows = self
            .rows(
                sqlx::query("SELECT jwk FROM signing_keys WHERE last_signed_ms >= $1 ORDER BY kid")
                    .arg(since_ms),
            )
            .await?;
        rows.iter().map(|row| Fields::<D>(row).get("jwk")).collect()
    }
}

#[async_trait]
impl<D: Dialect> OrderRepository for SqlRecord<D> {
    async fn insert_orders(&self, orders: &[Order]) -> Vec<Result<(), InsertOrderError>> {
        match self.insert_group(orders).await {
            Ok(outcomes) => outcomes,
            // Refused whole for what one order holds (a seat the venue does not
            // have, say): each order again on its own, so that only that one
            // fails; one after the other, so that the earlier keeps a seat two want.
            Err(BackendError::Bug(_)) if orders.len() > 1 => {
                let mut outcomes = Vec::with_capacity(orders.len());
                for order in orders {
                    outcomes.push(match self.insert_group(std::slice::from_ref(order)).await {
                        Ok(mut outcome) => outcome.pop().unwrap_or_else(|| {
                            Err(malformed::<D>("an insert of one order answered nothing").into())
                        }),
                        Err(e) => Err(e.into()),
                    });
                }
                outcomes
            }
            Err(e) => orders.iter().map(|_| Err(e.clone().into())).collect(),
        }
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
        // One compare-and-set decides between payment, cancellation and expiry,
        // all by the database's clock, so that no two processes' clocks disagree.
        let sql = format!(
            "UPDATE orders SET status = $2, ended_at = {now}, payment_ref = COALESCE($3, payment_ref)
             WHERE id = $1 AND status = 'pending'
               AND CASE $2 WHEN 'paid' THEN expires_at > {now} WHEN 'expired' THEN expires_at <= {now}
                           ELSE TRUE END
             RETURNING id",
            now = D::NOW,
        );
        let mut tx = self.pool.begin().await.map_err(db_error::<D>)?;
        let changed = sqlx::query(AssertSqlSafe(sql))
            .arg(id)
            .arg(to.as_str())
            .arg(payment_ref.map(str::to_owned))
            .fetch_optional(D::on(&mut tx))
            .await
            .map_err(db_error::<D>)?
            .is_some();
        if changed && !to.is_live() {
            sqlx::query("UPDATE order_seats SET live = FALSE WHERE order_id = $1")
                .arg(id)
                .execute(D::on(&mut tx))
                .await
                .map_err(db_error::<D>)?;
        }
        tx.commit().await.map_err(db_error::<D>)?;
        Ok(match self.load_order(id).await? {
            None => Transition::NotFound,
            Some(order) if changed => Transition::Changed(order),
            Some(order) => Transition::Unchanged(order),
        })
    }

    async fn live_seats(&self, event: &EventId) -> BackendResult<Vec<LiveSeat>> {
        let sql = format!(
            "SELECT s.seat_id, o.id, o.holder, o.status FROM order_seats s JOIN orders o ON o.id = s.order_id
             WHERE s.event_id = $1 AND s.live = {}",
            D::TRUE,
        );
        let rows = self
            .rows(sqlx::query(AssertSqlSafe(sql)).arg(event.as_str()))
            .await?;
        rows.iter()
            .map(|row| {
                let row = Fields::<D>(row);
                let status: String = row.get("status")?;
                Ok(LiveSeat {
                    seat: row.get("seat_id")?,
                    order: row.get("id")?,
                    holder: Holder::from_stored(row.get("holder")?),
                    sold: status == OrderStatus::Paid.as_str(),
                })
            })
            .collect()
    }

    async fn overdue(&self, grace: Duration, limit: i64) -> BackendResult<Vec<ExpiryDue>> {
        let sql = format!(
            "SELECT id, event_id FROM orders WHERE status = 'pending' AND expires_at < {}
             ORDER BY expires_at LIMIT $2",
            D::now_minus("$1"),
        );
        let rows = self
            .rows(
                sqlx::query(AssertSqlSafe(sql))
                    .arg(grace.as_secs_f64())
                    .arg(limit),
            )
            .await?;
        rows.iter()
            .map(|row| {
                let row = Fields::<D>(row);
                Ok(ExpiryDue {
                    event: row.event_id()?,
                    order: row.get("id")?,
                })
            })
            .collect()
    }

    async fn order_counts(&self, event: &EventId) -> BackendResult<(u64, u64)> {
        let row = self
            .one(
                sqlx::query(
                    "SELECT COUNT(*) FILTER (WHERE status = 'paid') AS paid,
                            COUNT(*) FILTER (WHERE status = 'expired') AS expired
                     FROM orders WHERE event_id = $1",
                )
                .arg(event.as_str()),
            )
            .await?;
        let row = Fields::<D>(&row);
        Ok((
            row.count("paid")?.unwrap_or(0),
            row.count("expired")?.unwrap_or(0),
        ))
    }
}

/// Codes written per statement: one JSON list parameter each (SQLite's limit
/// on parameters never applies), a few hundred kilobytes.
const CODES_PER_STATEMENT: usize = 20_000;

#[async_trait]
impl<D: Dialect> CodeRecords for SqlRecord<D> {
    async fn insert_codes(&self, event: &EventId, codes: &[CodeHash]) -> BackendResult<u64> {
        // `WHERE` before `ON CONFLICT`: SQLite would read the conflict clause as a join's.
        let sql = format!(
            "INSERT INTO event_codes (event_id, code_hash)
             SELECT CAST($1 AS TEXT), value FROM {} WHERE 1 = 1
             ON CONFLICT (event_id, code_hash) DO NOTHING",
            D::list("$2"),
        );
        let mut tx = self.pool.begin().await.map_err(db_error::<D>)?;
        let mut inserted = 0;
        for chunk in codes.chunks(CODES_PER_STATEMENT) {
            let hashes: Vec<String> = chunk.iter().map(|c| c.as_str().to_owned()).collect();
            let done = sqlx::query(AssertSqlSafe(sql.clone()))
                .arg(event.as_str())
                .list(&hashes)?
                .execute(D::on(&mut tx))
                .await
                .map_err(db_error::<D>)?;
            inserted += D::rows_affected(&done);
        }
        tx.commit().await.map_err(db_error::<D>)?;
        Ok(inserted)
    }

    async fn code_used(&self, event: &EventId, code: &CodeHash) -> BackendResult<Option<bool>> {
        let row = self
            .row(
                sqlx::query(
                    "SELECT used_at IS NOT NULL AS used FROM event_codes
                     WHERE event_id = $1 AND code_hash = $2",
                )
                .arg(event.as_str())
                .arg(code.as_str()),
            )
            .await?;
        row.map(|row| Fields::<D>(&row).get("used")).transpose()
    }

    async fn mark_code_used(&self, event: &EventId, code: &CodeHash) -> BackendResult<()> {
        let sql = format!(
            "UPDATE event_codes SET used_at = {} WHERE event_id = $1 AND code_hash = $2 AND used_at IS NULL",
            D::NOW
        );
        self.run(
            sqlx::query(AssertSqlSafe(sql))
                .arg(event.as_str())
                .arg(code.as_str()),
        )
        .await
    }

    async fn code_counts(&self, event: &EventId) -> BackendResult<CodeCounts> {
        let row = self
            .one(
                sqlx::query(
                    "SELECT COUNT(*) AS issued, COUNT(used_at) AS used
                     FROM event_codes WHERE event_id = $1",
                )
                .arg(event.as_str()),
            )
            .await?;
        let row = Fields::<D>(&row);
        Ok(CodeCounts {
            issued: row.count("issued")?.unwrap_or(0),
            used: row.count("used")?.unwrap_or(0),
        })
    }
}

impl<D: Dialect> SqlRecord<D> {
    /// Inserts `orders` in one transaction, one statement per table. An order
    /// with a seat live in another order (the unique index's conflict, checked
    /// inside the statement) is taken out again before the commit and answered
    /// with those seats; the others commit.
    async fn insert_group(
        &self,
        orders: &[Order],
    ) -> BackendResult<Vec<Result<(), InsertOrderError>>> {
        let order_rows: Vec<serde_json::Value> = orders
            .iter()
            .map(|o| {
                serde_json::json!([
                    o.id,
                    o.event.as_str(),
                    o.holder.as_str(),
                    o.status.as_str(),
                    o.amount_cents,
                    unix_ms(o.created_at),
                    unix_ms(o.expires_at),
                ])
            })
            .collect();
        let seat_rows: Vec<serde_json::Value> = orders
            .iter()
            .flat_map(|o| {
                o.seats
                    .iter()
                    .map(|seat| serde_json::json!([o.id, o.event.as_str(), seat]))
            })
            .collect();
        let json = |rows: &[serde_json::Value]| serde_json::to_string(rows).map_err(malformed::<D>);
        let mut tx = self.pool.begin().await.map_err(db_error::<D>)?;
        // The event and each seat are looked up, not referenced by foreign
        // keys (PostgreSQL's migration 0009): one that is not there reads NULL
        // and the group is refused outright, as a key would refuse it, without
        // a trigger and a row lock on the event and the seat for every order.
        let sql = format!(
            "INSERT INTO orders (id, event_id, holder, status, amount_cents, created_at, expires_at)
             SELECT {id}, (SELECT e.id FROM events e WHERE e.id = value ->> 1), value ->> 2,
                    value ->> 3, CAST(value ->> 4 AS BIGINT), {created}, {expires}
             FROM {rows}",
            id = D::uuid_of_text("value ->> 0"),
            created = D::time_of_ms("value ->> 5"),
            expires = D::time_of_ms("value ->> 6"),
            rows = D::json_rows("$1"),
        );
        sqlx::query(AssertSqlSafe(sql))
            .arg(json(&order_rows)?)
            .execute(D::on(&mut tx))
            .await
            .map_err(db_error::<D>)?;
        // `WHERE TRUE`: SQLite would read an `ON CONFLICT` right after the
        // `FROM` as a join's constraint.
        let sql = format!(
            "INSERT INTO order_seats (order_id, event_id, seat_id)
             SELECT {id}, value ->> 1,
                    (SELECT s.seat_id FROM seats s WHERE s.event_id = value ->> 1 AND s.seat_id = value ->> 2)
             FROM {rows} WHERE TRUE
             ON CONFLICT (event_id, seat_id) WHERE live = {live} DO NOTHING
             RETURNING order_id, seat_id",
            id = D::uuid_of_text("value ->> 0"),
            rows = D::json_rows("$1"),
            live = D::TRUE,
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .arg(json(&seat_rows)?)
            .fetch_all(D::on(&mut tx))
            .await
            .map_err(db_error::<D>)?;
        let mut inserted: HashMap<Uuid, HashSet<String>> = HashMap::new();
        for row in &rows {
            let row = Fields::<D>(row);
            inserted
                .entry(row.get("order_id")?)
                .or_default()
                .insert(row.get("seat_id")?);
        }
        let outcomes: Vec<Result<(), InsertOrderError>> = orders
            .iter()
            .map(|o| {
                let seats = inserted.get(&o.id);
                let taken: Vec<String> = o
                    .seats
                    .iter()
                    .filter(|seat| !seats.is_some_and(|s| s.contains(*seat)))
                    .cloned()
                    .collect();
                if taken.is_empty() {
                    Ok(())
                } else {
                    Err(InsertOrderError::SeatsTaken(taken))
                }
            })
            .collect();
        let refused: Vec<String> = orders
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| outcome.is_err())
            .map(|(o, _)| o.id.to_string())
            .collect();
        if !refused.is_empty() {
            // Their seats that did go in go with them (ON DELETE CASCADE).
            let sql = format!(
                "DELETE FROM orders WHERE id IN (SELECT {} FROM {})",
                D::uuid_of_text("value"),
                D::list("$1"),
            );
            sqlx::query(AssertSqlSafe(sql))
                .list(&refused)?
                .execute(D::on(&mut tx))
                .await
                .map_err(db_error::<D>)?;
        }
        tx.commit().await.map_err(db_error::<D>)?;
        Ok(outcomes)
    }
}
