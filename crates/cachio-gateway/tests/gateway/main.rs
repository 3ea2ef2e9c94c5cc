//! The gateway binary and router against a real origin on 127.0.0.1. The streaming test measures
//! the process's peak memory, so it has a binary of its own (`tests/streaming.rs`).

#[path = "../support/mod.rs"]
mod support;

mod access_log;
mod certs;
mod cli;
mod coalescing;
mod disk;
mod drain;
#[cfg(all(feature = "redis", feature = "cli"))]
mod fleet_purge;
mod forwarded;
mod https_upstream;
mod hygiene;
mod interim;
mod layer_settings;
mod protocol;
mod purge;
#[cfg(all(feature = "redis", feature = "cli"))]
mod redis;
mod shutdown;
mod sites;
mod soak;
mod stale;
mod tls_listener;
