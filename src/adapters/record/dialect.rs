//! What differs between PostgreSQL and SQLite for the record, in one place:
//! the clock, how times, lists and UUIDs are stored, and the few words of SQL
//! the two spell differently. Everything else (`$n` parameters, `ON CONFLICT`
//! on a partial index, `RETURNING`, `FILTER`, `->>`) both understand.
//!
//! The record is generic over the sqlx database rather than on `sqlx::Any`,
//! which binds neither UUIDs nor times.

use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Postgres, Row, Sqlite};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{from_unix_ms, unix_ms};

/// A query with its arguments, for database `DB`.
pub type Statement<'q, DB> = Query<'q, DB, <DB as Database>::Arguments>;

/// `DB` binds a `T` as a query parameter.
///
/// Stated on the database (not on `T`), so that a supertrait of [`Dialect`]
/// carries it: the record's code then needs no bound per type it binds.
pub trait Binds<T>: Database {
    fn bind_to(query: Statement<'_, Self>, value: T) -> Statement<'_, Self>;
}

impl<DB: Database, T: for<'t> Encode<'t, DB> + sqlx::Type<DB>> Binds<T> for DB {
    fn bind_to(query: Statement<'_, Self>, value: T) -> Statement<'_, Self> {
        query.bind(value)
    }
}

/// `DB` reads a `T` out of a named column (see [`Binds`] for why on `DB`).
pub trait Reads<T>: Database {
    fn read(row: &Self::Row, column: &str) -> Result<T, sqlx::Error>;
}

impl<DB: Database, T: for<'r> Decode<'r, DB> + sqlx::Type<DB>> Reads<T> for DB
where
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    fn read(row: &Self::Row, column: &str) -> Result<T, sqlx::Error> {
        row.try_get(column)
    }
}

/// `DB` stores a `T` in a column and reads it back, `NULL` as `None`.
pub trait Column<T>: Binds<T> + Binds<Option<T>> + Reads<T> + Reads<Option<T>> {}

impl<DB, T> Column<T> for DB where DB: Binds<T> + Binds<Option<T>> + Reads<T> + Reads<Option<T>> {}

/// `DB`'s connections run queries.
pub trait Runs: Database {
    fn on(connection: &mut Self::Connection) -> impl Executor<'_, Database = Self>;
}

impl<DB: Database> Runs for DB
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    fn on(connection: &mut Self::Connection) -> impl Executor<'_, Database = Self> {
        connection
    }
}

/// A database the record runs on, and how its SQL differs.
pub trait Dialect:
    Database<Arguments: IntoArguments<Self>>
    + Runs
    + Column<String>
    + Column<i32>
    + Column<i64>
    + Column<f64>
    + Column<bool>
    + Column<Vec<u8>>
    + Column<Uuid>
    + for<'a> Binds<&'a str>
    + for<'a> Binds<&'a [u8]>
{
    /// How errors name this backend.
    const SERVICE: &'static str;
    /// The database's clock, encoded as the time columns are: every
    /// compare-and-set on time reads this one clock, never a process's.
    const NOW: &'static str;
    /// The literal for true, spelled as the partial indexes over flags spell it
    /// (a query uses such an index only if it repeats its condition).
    const TRUE: &'static str;
    /// The larger of two values.
    const GREATEST: &'static str;

    /// [`Self::NOW`] less `seconds`, a parameter holding a number of seconds.
    fn now_minus(seconds: &str) -> String;
    /// A `FROM` item `list (value, position)` over `param`, a parameter holding
    /// a JSON array of strings; `position` counts from 1.
    fn list(param: &str) -> String;
    /// The JSON array of `value` over a group's rows in `order` (`[]` for none), as text.
    fn json_array(value: &str, order: &str) -> String;
    /// A `FROM` item `elements (value)` over `param`, a parameter holding a JSON
    /// array: one row per element, whose fields `value ->> n` reads as text.
    fn json_rows(param: &str) -> String;
    /// A UUID column's value from its text (`expr`, hyphenated).
    fn uuid_of_text(expr: &str) -> String;
    /// A time column's value from unix milliseconds (`expr`, a number or its text).
    fn time_of_ms(expr: &str) -> String;
    /// Binds a time as the time columns store it.
    fn bind_time(query: Statement<'_, Self>, at: Option<OffsetDateTime>) -> Statement<'_, Self>;
    /// Reads a time column.
    fn read_time(row: &Self::Row, column: &str) -> Result<Option<OffsetDateTime>, sqlx::Error>;
    /// How many rows a statement inserted, changed or deleted.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

impl Dialect for Postgres {
    const SERVICE: &'static str = "postgres";
    const NOW: &'static str = "now()";
    const TRUE: &'static str = "TRUE";
    const GREATEST: &'static str = "GREATEST";

    fn now_minus(seconds: &str) -> String {
        format!("now() - make_interval(secs => {seconds})")
    }

    fn list(param: &str) -> String {
        format!("json_array_elements_text({param}::json) WITH ORDINALITY AS list (value, position)")
    }

    fn json_array(value: &str, order: &str) -> String {
        format!("COALESCE(json_agg({value} ORDER BY {order}), '[]')::text")
    }

    fn json_rows(param: &str) -> String {
        format!("json_array_elements(CAST({param} AS json)) AS elements (value)")
    }

    fn uuid_of_text(expr: &str) -> String {
        format!("CAST({expr} AS UUID)")
    }

    fn time_of_ms(expr: &str) -> String {
        format!("(TIMESTAMPTZ 'epoch' + CAST({expr} AS BIGINT) * INTERVAL '1 millisecond')")
    }

    fn bind_time(query: Statement<'_, Self>, at: Option<OffsetDateTime>) -> Statement<'_, Self> {
        query.bind(at)
    }

    fn read_time(row: &Self::Row, column: &str) -> Result<Option<OffsetDateTime>, sqlx::Error> {
        row.try_get(column)
    }

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}

impl Dialect for Sqlite {
    const SERVICE: &'static str = "sqlite";
    // Unix milliseconds, as the embedded schema stores times.
    const NOW: &'static str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";
    const TRUE: &'static str = "1";
    const GREATEST: &'static str = "MAX";

    fn now_minus(seconds: &str) -> String {
        format!("({} - CAST({seconds} * 1000 AS INTEGER))", Self::NOW)
    }

    fn list(param: &str) -> String {
        format!("(SELECT value, key + 1 AS position FROM json_each({param})) AS list")
    }

    fn json_array(value: &str, order: &str) -> String {
        format!("json_group_array({value} ORDER BY {order})")
    }

    fn json_rows(param: &str) -> String {
        format!("json_each({param}) AS elements")
    }

    // sqlx stores a UUID in SQLite as its 16 bytes.
    fn uuid_of_text(expr: &str) -> String {
        format!("unhex(replace({expr}, '-', ''))")
    }

    // The embedded schema stores times as unix milliseconds.
    fn time_of_ms(expr: &str) -> String {
        format!("CAST({expr} AS INTEGER)")
    }

    fn bind_time(query: Statement<'_, Self>, at: Option<OffsetDateTime>) -> Statement<'_, Self> {
        query.bind(at.map(unix_ms))
    }

    fn read_time(row: &Self::Row, column: &str) -> Result<Option<OffsetDateTime>, sqlx::Error> {
        let ms: Option<i64> = row.try_get(column)?;
        ms.map(|ms| {
            from_unix_ms(ms).ok_or_else(|| sqlx::Error::ColumnDecode {
                index: column.to_owned(),
                source: format!("{ms} ms is not a representable time").into(),
            })
        })
        .transpose()
    }

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}
