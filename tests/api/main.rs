//! Black-box tests through HTTP. The same tests run against either backend:
//! `ANTEROOM_TEST_BACKEND=servers` (the default: real Redis, RabbitMQ and
//! PostgreSQL) or `embedded` (SQLite, in-process), minus `servers_only`.
//! Each test spawns its own app in a fresh namespace of a fresh database.

mod admission;
mod caching;
mod challenge;
mod codes;
mod disposable;
mod door;
mod embedded_only;
mod events;
mod gate;
mod helpers;
mod ops;
mod orders;
mod passes;
mod prequeue;
mod process;
mod proxy;
mod queue;
mod record;
mod seatmap;
mod servers_only;
mod shutdown;
