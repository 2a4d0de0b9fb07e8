//! Embedded mode: every backend in-process, made durable by one SQLite file.

pub mod keyspace;
pub mod queue;
pub mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::ports::{BackendError, BackendResult};

/// Held while a process uses an embedded database: embedded mode is one
/// process, and a second one on the same file would keep its own key-value
/// state. Dropping it releases the file.
pub struct ProcessLock(#[allow(dead_code)] std::fs::File);

/// Takes the database's process lock (`<file>.lock`), or says who has it.
pub fn lock_database(url: &str) -> BackendResult<Option<ProcessLock>> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.starts_with(':') {
        return Ok(None); // in memory: nothing to share
    }
    let lock_path = format!("{path}.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| BackendError::unavailable("sqlite", format!("{lock_path}: {e}")))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(ProcessLock(file))),
        Err(std::fs::TryLockError::WouldBlock) => Err(BackendError::unavailable(
            "sqlite",
            format!(
                "another anteroom is running on {path}: embedded mode is one process (use the servers to run several)"
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(BackendError::unavailable(
            "sqlite",
            format!("{lock_path}: {e}"),
        )),
    }
}

/// Opens (creating if missing) the SQLite database in WAL mode and applies its migrations.
pub async fn open_database(url: &str) -> BackendResult<SqlitePool> {
    let failed = |e: &dyn std::fmt::Display| BackendError::unavailable("sqlite", e.to_string());
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| failed(&e))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // With WAL, NORMAL survives a process crash; only a power loss can lose the last commits.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
        // Whenever a checkpoint empties the write-ahead log, its file shrinks back to this.
        .pragma("journal_size_limit", (64 << 20).to_string());
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(|e| failed(&e))?;
    sqlx::migrate!("./migrations/sqlite")
        .run(&pool)
        .await
        .map_err(|e| failed(&e))?;
    Ok(pool)
}
