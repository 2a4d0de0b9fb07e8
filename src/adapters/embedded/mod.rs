//! Embedded mode: every backend in-process, made durable by one SQLite file.

pub mod keyspace;
pub mod queue;
pub mod record;

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::ports::{BackendError, BackendResult};

/// Opens (creating if missing) the SQLite database in WAL mode and applies its migrations.
pub async fn open_database(url: &str) -> BackendResult<SqlitePool> {
    let failed = |e: &dyn std::fmt::Display| BackendError::new("sqlite", e);
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| failed(&e))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // With WAL, NORMAL survives a process crash; only a power loss can lose the last commits.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await.map_err(|e| failed(&e))?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await.map_err(|e| failed(&e))?;
    Ok(pool)
}
