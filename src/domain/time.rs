//! Instants as unix milliseconds: how passes, Redis, SQLite and the log carry time.

use time::OffsetDateTime;

pub fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// `None` outside the range `time` can represent.
pub fn from_unix_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn milliseconds_round_trip() {
        let t = datetime!(2027-06-01 19:00:00.123 UTC);
        assert_eq!(unix_ms(t), 1_811_876_400_123); // date -u -d 2027-06-01T19:00:00Z +%s
        assert_eq!(from_unix_ms(unix_ms(t)), Some(t));
        assert_eq!(from_unix_ms(i64::MAX), None);
    }
}
