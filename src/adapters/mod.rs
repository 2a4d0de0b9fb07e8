//! The only place that knows fred, lapin and sqlx.

pub mod amqp;
pub mod embedded;
pub mod redis;
pub mod sql;
