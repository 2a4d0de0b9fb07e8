//! The only place that knows fred, lapin and sqlx.

pub mod amqp;
pub mod embedded;
pub mod record;
pub mod redis;

use crate::ports::BackendError;

/// sqlx's errors by what the caller can do about them: a row or a value that
/// does not decode, or a constraint the adapter did not expect, is ours to
/// fix (`500`); the connection, the pool and the server's own troubles pass (`503`).
pub(crate) fn sql_error(backend: &'static str, e: sqlx::Error) -> BackendError {
    use sqlx::Error;
    let ours = match &e {
        Error::Database(db) => !matches!(db.kind(), sqlx::error::ErrorKind::Other),
        Error::RowNotFound
        | Error::TypeNotFound { .. }
        | Error::ColumnIndexOutOfBounds { .. }
        | Error::ColumnNotFound(_)
        | Error::ColumnDecode { .. }
        | Error::Encode(_)
        | Error::Decode(_)
        | Error::InvalidArgument(_)
        | Error::InvalidSavePointStatement => true,
        _ => false,
    };
    if ours {
        BackendError::bug_caused_by(
            format!("{backend} refused or returned what Anteroom cannot use"),
            e,
        )
    } else {
        BackendError::unavailable(backend, e)
    }
}
