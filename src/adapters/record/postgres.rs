//! Opening the record on PostgreSQL. Each namespace is its own schema, so that
//! deployments and test runs share a server without seeing each other.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Postgres};

use super::{PostgresRecord, SqlRecord, db_error};
use crate::ports::{BackendError, BackendResult};

/// How long an operation waits for a connection (a new one, or an idle one
/// that must answer a ping) before it fails with a clear 503.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl PostgresRecord {
    /// Connects, creates the namespace's schema if needed and applies migrations.
    pub async fn connect(url: &str, namespace: &str) -> BackendResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(db_error::<Postgres>)?;
        let mut setup = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(db_error::<Postgres>)?;
        // The namespace is validated as [a-z0-9_]: safe to quote into DDL.
        let ddl = format!("CREATE SCHEMA IF NOT EXISTS \"{namespace}\"");
        sqlx::query(sqlx::AssertSqlSafe(ddl))
            .execute(&mut setup)
            .await
            .map_err(db_error::<Postgres>)?;
        setup.close().await.map_err(db_error::<Postgres>)?;

        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.options([("search_path", namespace)]))
            .await
            .map_err(db_error::<Postgres>)?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| BackendError::unavailable("postgres", e))?;
        Ok(SqlRecord::new(pool))
    }
}
