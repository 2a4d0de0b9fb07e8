//! The only place that knows fred, lapin and sqlx.

pub mod amqp;
pub mod embedded;
pub mod record;
pub mod redis;
