//! Black-box tests through HTTP against real Redis, RabbitMQ and PostgreSQL.
//! Each test spawns its own app in a fresh namespace of a fresh database.

mod admission;
mod events;
mod faults;
mod helpers;
mod ops;
mod orders;
mod prequeue;
mod proxy;
mod queue;
