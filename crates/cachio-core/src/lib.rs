//! The HTTP caching policy of cachio and the storage traits its backends implement.
//!
//! This crate does no I/O and knows nothing of tokio or tower: it is pure functions over `http`
//! types and a [`Clock`](clock::Clock).
//!
//! - [`cache_control`] parses `Cache-Control`, `Pragma` and `CDN-Cache-Control`.
//! - [`policy`] decides what may be stored, what is fresh, how to validate, what to invalidate,
//!   and writes `Cache-Status` (RFC 9111, RFC 5861, RFC 9211, RFC 9213).
//! - [`key`] computes cache keys.
//! - [`range`] answers a `Range` request from a stored complete response.
//! - [`meta`] is what a store keeps about an entry, with a versioned binary encoding.
//! - [`store`] holds the [`Store`] and [`StoreWriter`] traits.
//! - [`tiered`] makes two stores one: memory in front of disk or Redis.
//! - [`backend`] holds the building blocks of stores and proxies (key locks, hop-by-hop fields,
//!   stable hashes); a program that only uses the cache does not need it.

pub mod backend;
pub mod cache_control;
pub mod clock;
mod date;
mod fields;
pub mod key;
pub mod meta;
pub mod policy;
pub mod range;
pub mod store;
pub mod tiered;

pub use meta::{Meta, ResponseMeta, VaryIndex};
#[expect(deprecated)]
pub use policy::Mode;
pub use policy::{Policy, Sharing};
pub use store::{ErrorKind, Hit, Store, StoreError, StoreWriter};
