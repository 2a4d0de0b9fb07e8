//! Use-cases over the ports: the event catalog, the line, admission, booking, readiness.

pub mod admission;
pub mod booking;
pub mod catalog;
pub mod codes;
pub mod door;
pub mod group_commit;
pub mod line;
pub mod pass_keys;
pub mod readiness;
pub mod refusals;
