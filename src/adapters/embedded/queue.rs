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

use super::writer::{Write, Writer};
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
    /// Publishes go to disk with the key-value store's journal, in its transactions.
    writer: Writer,
    published: Arc<Notify>,
}

impl EmbeddedQueue {
    /// Opens the queues; leases of a previous run are void.
    pub async fn open(pool: SqlitePool, writer: Writer) -> BackendResult<Self> {
        sqlx::query("UPDATE queue_messages SET lease = NULL WHERE lease IS NOT NULL")
            .execute(&pool)
            .await
            .map_err(sql_error)?;
        Ok(Self {
            pool,
            writer,
            published: Arc::new(Notify::new()),
        })
    }

    fn line(event: &EventId) -> String {
        format!("line.{event}")
    }

    async fn publish(
        &self,
        queue: &str,
        payloads: Vec<String>,
        visible_at: i64,
    ) -> BackendResult<()> {
        self.writer
            .send(Write::Publish {
                queue: queue.to_owned(),
                payloads,
                visible_at,
            })
            .wait()
            .await?;
        self.published.notify_waiters();
        Ok(())
    }

    fn consumer<M: QueueMessage>(&self, queue: String, prefetch: u16) -> Box<dyn Consumer<M>> {
        Box::new(SqliteConsumer {
            pool: self.pool.clone(),
            published: self.published.clone(),
            queue,
            lease: Uuid::new_v4().to_string(),
            leased: 0,
            prefetch: usize::from(prefetch),
            message: PhantomData,
        })
    }
}

#[async_trait]
impl LineQueue for EmbeddedQueue {
    async fn publish(&self, event: &EventId, messages: &[LineMessage]) -> BackendResult<()> {
        let payloads = vec![LineBatch(messages.to_vec()).encode()];
        EmbeddedQueue::publish(self, &Self::line(event), payloads, 0).await
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
        EmbeddedQueue::publish(self, EXPIRY_QUEUE, vec![batch.encode()], visible_at).await
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
    /// Messages leased and not yet acknowledged or given back: counted here,
    /// since a lease is this consumer's own and ends with the process.
    leased: usize,
    prefetch: usize,
    message: PhantomData<fn() -> M>,
}

impl<M: QueueMessage> SqliteConsumer<M> {
    /// Leases up to `max` visible messages, the earliest due first and then the
    /// oldest: the order of the ready index, so nothing is sorted however long the line.
    async fn lease(&mut self, max: usize) -> BackendResult<Vec<Delivered<M>>> {
        let room = self.prefetch.saturating_sub(self.leased).min(max);
        if room == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "UPDATE queue_messages SET lease = ?1 WHERE id IN (
                 SELECT id FROM queue_messages WHERE queue = ?2 AND lease IS NULL AND visible_at <= ?3
                 ORDER BY visible_at, id LIMIT ?4)
             RETURNING id, payload",
        )
        .bind(&self.lease)
        .bind(&self.queue)
        .bind(now_ms())
        .bind(room as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(sql_error)?;
        self.leased += rows.len();
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
        let acked =
            sqlx::query("DELETE FROM queue_messages WHERE id IN (SELECT value FROM json_each(?))")
                .bind(ids)
                .execute(&self.pool)
                .await
                .map_err(sql_error)?;
        self.leased = self.leased.saturating_sub(acked.rows_affected() as usize);
        Ok(())
    }

    async fn retry(&mut self, tag: u64) -> BackendResult<()> {
        let given_back =
            sqlx::query("UPDATE queue_messages SET lease = NULL WHERE id = ? AND lease = ?")
                .bind(tag as i64)
                .bind(&self.lease)
                .execute(&self.pool)
                .await
                .map_err(sql_error)?;
        self.leased = self
            .leased
            .saturating_sub(given_back.rows_affected() as usize);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Tasks;

    async fn queue() -> EmbeddedQueue {
        let path =
            std::env::temp_dir().join(format!("anteroom-queue-{}.db", Uuid::new_v4().simple()));
        let pool = super::super::open_database(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let writer = Writer::start(pool.clone(), &Tasks::new());
        EmbeddedQueue::open(pool, writer).await.unwrap()
    }

    fn orders(batches: &[Delivered<ExpiryBatch>]) -> Vec<Uuid> {
        batches
            .iter()
            .flat_map(|b| b.message.orders.clone())
            .collect()
    }

    #[tokio::test]
    async fn a_consumer_holds_at_most_its_prefetch_until_it_acknowledges_or_gives_back() {
        let queue = queue().await;
        let event = EventId::parse("prefetch").unwrap();
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            queue
                .schedule_expiries(&event, &[*id], Duration::ZERO)
                .await
                .unwrap();
        }
        // Due later than the rest though published first among the due: never early.
        let later = Uuid::new_v4();
        queue
            .schedule_expiries(&event, &[later], Duration::from_secs(600))
            .await
            .unwrap();
        let mut consumer = queue.expiries(2).await.unwrap();
        let first = consumer.receive(Duration::ZERO, 10).await.unwrap();
        assert_eq!(
            orders(&first),
            ids[..2],
            "the oldest first, no more than the prefetch"
        );
        assert!(
            consumer
                .receive(Duration::ZERO, 10)
                .await
                .unwrap()
                .is_empty()
        );
        consumer.ack(&[first[0].tag]).await.unwrap();
        let second = consumer.receive(Duration::ZERO, 10).await.unwrap();
        assert_eq!(
            orders(&second),
            ids[2..3],
            "one acknowledged, one more delivered"
        );
        consumer.retry(first[1].tag).await.unwrap();
        let again = consumer.receive(Duration::ZERO, 10).await.unwrap();
        assert_eq!(
            orders(&again),
            ids[1..2],
            "a message given back comes back first"
        );
        consumer.ack(&[first[1].tag, second[0].tag]).await.unwrap();
        let rest = consumer.receive(Duration::ZERO, 10).await.unwrap();
        assert_eq!(orders(&rest), ids[3..], "the timer not yet due stays");
    }
}
