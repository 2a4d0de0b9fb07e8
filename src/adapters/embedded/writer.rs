//! Embedded mode's one writer to its SQLite file, for the writes on a join's
//! path: the key-value store's journal and the durable queues' messages. They
//! are written in the order they were sent, many per transaction (group
//! commit), and each sender is answered once its write is on disk. One writer
//! rather than one transaction per caller: SQLite takes one writer at a time,
//! so callers on separate connections would only wait for each other.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::ports::{BackendError, BackendResult};
use crate::tasks::Tasks;

/// Writes taken into one transaction at most.
const MAX_BATCH: usize = 1_000;
/// A snapshot is written in parts of at most this many bytes.
const SNAPSHOT_PART_BYTES: usize = 16 << 20;

pub enum Write {
    /// An entry of the key-value store's journal: a command, or a script by
    /// its id (its source is written once, the first time it is seen).
    Journal {
        name: String,
        args: Vec<u8>,
        script: Option<Arc<str>>,
    },
    /// The whole keyspace, which replaces every journal entry before it.
    Snapshot(Vec<u8>),
    /// Messages for one of the durable queues, visible from `visible_at` (Unix ms).
    Publish {
        queue: String,
        payloads: Vec<String>,
        visible_at: i64,
    },
}

type Sent = (Write, oneshot::Sender<BackendResult<()>>);

/// A handle on the writer; it runs until the last handle is dropped.
#[derive(Clone)]
pub struct Writer(mpsc::UnboundedSender<Sent>);

/// A write's answer: `Ok` once it is on disk.
pub struct Durable(oneshot::Receiver<BackendResult<()>>);

impl Durable {
    pub async fn wait(self) -> BackendResult<()> {
        self.0
            .await
            .map_err(|_| BackendError::bug("the embedded writer stopped"))?
    }
}

impl Writer {
    /// Starts the writer on `tasks`.
    pub fn start(pool: SqlitePool, tasks: &Tasks) -> Self {
        let (sender, writes) = mpsc::unbounded_channel();
        tasks.spawn(write(pool, writes));
        Self(sender)
    }

    /// Queues `write` after every write sent before it.
    pub fn send(&self, write: Write) -> Durable {
        let (done, durable) = oneshot::channel();
        if self.0.send((write, done)).is_err() {
            tracing::error!("the embedded writer is gone");
        }
        Durable(durable)
    }
}

async fn write(pool: SqlitePool, mut writes: mpsc::UnboundedReceiver<Sent>) {
    let mut known_scripts: HashSet<String> = HashSet::new();
    while let Some(first) = writes.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(next) = writes.try_recv()
        {
            batch.push(next);
        }
        let outcome = commit(&pool, &mut known_scripts, batch.iter().map(|(w, _)| w))
            .await
            .map_err(|e| BackendError::unavailable("embedded store", e));
        let snapshotted = batch.iter().any(|(w, _)| matches!(w, Write::Snapshot(_)));
        for (_, done) in batch {
            let _ = done.send(outcome.clone());
        }
        if snapshotted && outcome.is_ok() {
            truncate_wal(&pool).await;
        }
    }
}

async fn commit<'a>(
    pool: &SqlitePool,
    known_scripts: &mut HashSet<String>,
    writes: impl Iterator<Item = &'a Write>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Known only once committed: a script written in a transaction that failed
    // is written again with the next entry that names it.
    let mut new_scripts = Vec::new();
    for write in writes {
        match write {
            Write::Journal { name, args, script } => {
                if let Some(source) = script
                    && !known_scripts.contains(name)
                    && !new_scripts.contains(name)
                {
                    sqlx::query("INSERT OR IGNORE INTO kv_scripts (sha, source) VALUES (?, ?)")
                        .bind(name)
                        .bind(source.as_ref())
                        .execute(&mut *tx)
                        .await?;
                    new_scripts.push(name.clone());
                }
                sqlx::query("INSERT INTO kv_journal (name, args) VALUES (?, ?)")
                    .bind(name)
                    .bind(args)
                    .execute(&mut *tx)
                    .await?;
            }
            Write::Snapshot(data) => snapshot(&mut tx, data).await?,
            Write::Publish {
                queue,
                payloads,
                visible_at,
            } => {
                for payload in payloads {
                    sqlx::query(
                        "INSERT INTO queue_messages (queue, payload, visible_at) VALUES (?, ?, ?)",
                    )
                    .bind(queue)
                    .bind(payload)
                    .bind(visible_at)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
    }
    tx.commit().await?;
    known_scripts.extend(new_scripts);
    Ok(())
}

/// Replaces the journal with `data`: every entry before it was written in this
/// transaction or an earlier one.
async fn snapshot(tx: &mut Transaction<'_, Sqlite>, data: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM kv_journal")
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM kv_snapshot")
        .execute(&mut **tx)
        .await?;
    for (part, bytes) in data.chunks(SNAPSHOT_PART_BYTES).enumerate() {
        sqlx::query("INSERT INTO kv_snapshot (part, data) VALUES (?, ?)")
            .bind(part as i64)
            .bind(bytes)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Copies the write-ahead log into the database and empties it. SQLite's own
/// checkpoints never get to empty it while the service is busy (some
/// connection is always reading), so without this it grows by every snapshot
/// for as long as the process runs, and a restart reads all of it.
async fn truncate_wal(pool: &SqlitePool) {
    let started = Instant::now();
    match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(pool)
        .await
    {
        Ok((busy, pages, copied)) => tracing::debug!(
            emptied = busy == 0,
            pages,
            copied,
            took_ms = started.elapsed().as_millis() as u64,
            "the embedded store checkpointed its write-ahead log"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "the embedded store could not checkpoint its write-ahead log"
        ),
    }
}
