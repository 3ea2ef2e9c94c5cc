//! The whole stack: `CacheLayer` over a real hyper origin on 127.0.0.1, one module per part of
//! RFC 9111 (and RFC 5861, 9211, 9213), each test named after its section.
//!
//! One test binary for all of them: each binary links the whole dependency tree, so one binary
//! instead of fifteen keeps the build small and quick. A test that measures the process's own
//! memory lives in a binary of its own (`tests/streaming.rs`).

#[path = "../support/mod.rs"]
mod support;

mod cache_status;
mod cdn_cache_control;
mod coalescing;
mod concurrent;
mod directives;
#[cfg(all(feature = "memory", feature = "disk"))]
mod disk;
mod fill;
mod freshness;
mod invalidation;
mod key;
mod model;
mod modes;
mod range;
mod robustness;
mod stale;
mod storing;
mod validation;
mod vary;
