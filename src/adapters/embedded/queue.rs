//! Durable in-process queues on SQLite (embedded mode): the events' lines and
//! the expiry timers. A publish is durable when it returns; a message is leased
//! to one consumer and deleted when acknowledged; leases do not survive a
//! restart, so whatever was not acknowledged is delivered again.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::SqlitePool;
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::domain::{EventId, unix_ms};
use crate::ports::{
    BackendError, BackendResult, Consumer, DelayQueue, Delivered, ExpiryBatch, ExpiryConsumer,
    LineBatch, LineConsumer, LineMessage, LineQueue, QueueMessage,
};

fn sql_error(e: sqlx::Error) -> BackendError {
    crate::adapters::sql_error("sqlite queue", e)
}

/// The embedded queue's timers run on the machine's clock, as a broker's TTLs run on the
/// broker's: like those, they are not the app's clock to move.
fn now_ms() -> i64 {
    unix_ms(OffsetDateTime::now_utc())
}

/// A consumer with nothing to do looks again at least this often (for timers coming due).
const IDLE_LOOK: Duration = Duration::from_millis(100);
const EXPIRY_QUEUE: &str = "expiry";

pub struct EmbeddedQueue {
    pool: SqlitePool,
    published: Arc<Notify>,
}

impl EmbeddedQueue {
    /// Opens the queues; leases of a previous run are void.
    pub async fn open(pool: SqlitePool) -> BackendResult<Self> {
        sqlx::query("UPDATE queue_messages SET lease = NULL WHERE lease IS NOT NULL")
            .execute(&pool)
            .await
            .map_err(sql_error)?;
        Ok(Self {
            pool,
            published: Arc::new(Notify::new()),
        })
    }

    fn line(event: &EventId) -> String {
        format!("line.{event}")
    }

    async fn publish(
        &self,
        queue: &str,
        payloads: &[String],
        visible_at: i64,
    ) -> BackendResult<()> {
        let mut tx = self.pool.begin().await.map_err(sql_error)?;
        for payload in payloads {
            sqlx::query("INSERT INTO queue_messages (queue, payload, visible_at) VALUES (?, ?, ?)")
                .bind(queue)
                .bind(payload)
                .bind(visible_at)
                .execute(&mut *tx)
                .await
                .map_err(sql_error)?;
        }
        tx.commit().await.map_err(sql_error)?;
        self.published.notify_waiters();
        Ok(())
    }

    fn consumer<M: QueueMessage>(&self, queue: String, prefetch: u16) -> Box<dyn Consumer<M>> {
        Box::new(SqliteConsumer {
            pool: self.pool.clone(),
            published: self.published.clone(),
            queue,
            lease: Uuid::new_v4().to_string(),
            prefetch: usize::from(prefetch),
            message: PhantomData,
        })
    }
}

#[async_trait]
impl LineQueue for EmbeddedQueue {
    async fn publish(&self, event: &EventId, messages: &[LineMessage]) -> BackendResult<()> {
        let payloads = [LineBatch(messages.to_vec()).encode()];
        EmbeddedQueue::publish(self, &Self::line(event), &payloads, 0).await
    }

    async fn consume(&self, event: &EventId, prefetch: u16) -> BackendResult<Box<LineConsumer>> {
        Ok(self.consumer(Self::line(event), prefetch))
    }

    async fn ping(&self) -> BackendResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(sql_error)?;
        Ok(())
    }
}

#[async_trait]
impl DelayQueue for EmbeddedQueue {
    async fn schedule_expiries(
        &self,
        event: &EventId,
        orders: &[Uuid],
        after: Duration,
    ) -> BackendResult<()> {
        let visible_at = now_ms() + i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
        let batch = ExpiryBatch {
            event: event.clone(),
            orders: orders.to_vec(),
        };
        EmbeddedQueue::publish(self, EXPIRY_QUEUE, &[batch.encode()], visible_at).await
    }

    async fn expiries(&self, prefetch: u16) -> BackendResult<Box<ExpiryConsumer>> {
        Ok(self.consumer(EXPIRY_QUEUE.to_owned(), prefetch))
    }
}

struct SqliteConsumer<M> {
    pool: SqlitePool,
    published: Arc<Notify>,
    queue: String,
    lease: String,
    prefetch: usize,
    message: PhantomData<fn() -> M>,
}

impl<M: QueueMessage> SqliteConsumer<M> {
    /// Leases up to `max` visible messages, oldest first.
    async fn lease(&mut self, max: usize) -> BackendResult<Vec<Delivered<M>>> {
        let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM queue_messages WHERE lease = ?")
            .bind(&self.lease)
            .fetch_one(&self.pool)
            .await
            .map_err(sql_error)?;
        let room = self.prefetch.saturating_sub(held as usize).min(max);
        if room == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "UPDATE queue_messages SET lease = ?1 WHERE id IN (
                 SELECT id FROM queue_messages WHERE queue = ?2 AND lease IS NULL AND visible_at <= ?3 ORDER BY id LIMIT ?4)
             RETURNING id, payload",
        )
        .bind(&self.lease)
        .bind(&self.queue)
        .bind(now_ms())
        .bind(room as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(sql_error)?;
        let mut delivered = Vec::with_capacity(rows.len());
        let mut malformed = Vec::new();
        for (id, payload) in rows {
            match M::decode(payload.as_bytes()) {
                Some(message) => delivered.push(Delivered {
                    message,
                    tag: id as u64,
                }),
                None => {
                    tracing::warn!(queue = %self.queue, id, "dropping a malformed message");
                    malformed.push(id as u64);
                }
            }
        }
        self.ack(&malformed).await?;
        Ok(delivered)
    }
}

#[async_trait]
impl<M: QueueMessage> Consumer<M> for SqliteConsumer<M> {
    async fn receive(&mut self, wait: Duration, max: usize) -> BackendResult<Vec<Delivered<M>>> {
        let deadline = tokio::time::Instant::now() + wait;
        let notify = self.published.clone();
        loop {
            // Registered before looking, so a publish in between is not missed.
            let published = notify.notified();
            let delivered = self.lease(max).await?;
            let now = tokio::time::Instant::now();
            if !delivered.is_empty() || now >= deadline {
                return Ok(delivered);
            }
            let _ = tokio::time::timeout((deadline - now).min(IDLE_LOOK), published).await;
        }
    }

    async fn ack(&mut self, tags: &[u64]) -> BackendResult<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let ids = serde_json::to_string(tags)
            .map_err(|e| BackendError::bug_caused_by("delivery tags did not serialize", e))?;
        sqlx::query("DELETE FROM queue_messages WHERE id IN (SELECT value FROM json_each(?))")
            .bind(ids)
            .execute(&self.pool)
            .await
            .map_err(sql_error)?;
        Ok(())
    }

    async fn retry(&mut self, tag: u64) -> BackendResult<()> {
        sqlx::query("UPDATE queue_messages SET lease = NULL WHERE id = ?")
            .bind(tag as i64)
            .execute(&self.pool)
            .await
            .map_err(sql_error)?;
        Ok(())
    }

    async fn close(self: Box<Self>) {
        let released = sqlx::query("UPDATE queue_messages SET lease = NULL WHERE lease = ?")
            .bind(&self.lease)
            .execute(&self.pool)
            .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "could not release a consumer's leases; they return at the next start");
        }
    }
}
