//! The only place that knows fred, lapin and sqlx.

pub mod amqp;
pub mod redis;
pub mod sql;
