//! Anteroom: a virtual waiting room with seat booking.
//!
//! `domain` holds the pure rules, `ports` the traits the core needs, `services`
//! the use-cases, `adapters` the backends, `http` and `worker` the entrances.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod http;
pub mod ports;
pub mod services;
pub mod tasks;
pub mod telemetry;
pub mod worker;
