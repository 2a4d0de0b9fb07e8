//! Use-cases over the ports: the event catalog, the line, and admission.

pub mod admission;
pub mod booking;
pub mod catalog;
pub mod line;

use time::OffsetDateTime;

pub fn now_ms(now: OffsetDateTime) -> i64 {
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
