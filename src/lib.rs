//! cachio: an HTTP cache for the tower ecosystem.
//!
//! cachio puts an RFC 9111 cache in front of any `tower::Service<http::Request<B>>`: a hyper
//! client, an axum handler's upstream, a gateway's origin. [`Client`] is a ready HTTP and HTTPS
//! client with the cache built in, and the `reqwest` feature puts the same cache in a reqwest
//! client as a middleware.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cachio::client::Error> {
//! let client = cachio::Client::new("./http-cache")?;
//! let page = client.get("https://www.example.com/").await?.into_body().text().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Under your own service, [`CacheLayer`]:
//!
//! ```
//! use bytes::Bytes;
//! use cachio::{CacheLayer, MemoryStore};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let origin = service_fn(|_req: http::Request<Full<Bytes>>| async {
//!     Ok::<_, std::convert::Infallible>(
//!         http::Response::builder()
//!             .header("cache-control", "max-age=300")
//!             .body(Full::new(Bytes::from_static(b"hello")))
//!             .unwrap(),
//!     )
//! });
//! let client = ServiceBuilder::new()
//!     .layer(CacheLayer::private(MemoryStore::new(64 * 1024 * 1024)))
//!     .service(origin);
//! let res = client.oneshot(http::Request::get("http://example.com/").body(Full::default()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), 200);
//! # }
//! ```
//!
//! # A cache that outlives the process
//!
//! [`embedded`] opens the embedded default: 64 MiB of memory in front of a disk directory with a
//! 1 GiB budget ([`Embedded::builder`] sets others). What one run of a program stores, the next
//! run serves from disk without asking the origin again.
//!
//! ```
//! use bytes::Bytes;
//! use cachio::CacheLayer;
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, service_fn};
//!
//! # fn main() -> Result<(), cachio::StoreError> {
//! # let origin = service_fn(|_req: http::Request<Full<Bytes>>| async {
//! #     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
//! # });
//! # let dir = tempfile::tempdir().unwrap();
//! # let dir = dir.path().join("my-app-cache");
//! let client = ServiceBuilder::new()
//!     .layer(CacheLayer::private(cachio::embedded(&dir)?))
//!     .service(origin);
//! # Ok(())
//! # }
//! ```
//!
//! The two tiers are plain stores: [`Tiered`] puts any store in front of any other, and
//! [`DiskStore`] and [`MemoryStore`] work on their own too.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `memory` | yes | [`MemoryStore`], the in-memory store (`cachio-moka`) |
//! | `disk` | yes | [`DiskStore`], the persistent on-disk store (`cachio-fjall`) |
//! | `redis` | no | `RedisStore` and `FleetStore` (`cachio-redis`): a store shared by many machines, and memory over it with invalidations sent to every node |
//! | `redis-tls` | no | `redis`, and TLS to Redis (`rediss://` URLs) through rustls (`cachio-redis`'s `tls`) |
//! | `tls` | yes | [`tls`]: the TLS setup of [`Client`] (rustls, trusted roots, client certificates, ALPN) for other hyper clients |
//! | `client` | yes | [`Client`], a ready HTTP and HTTPS client with the cache built in (`memory`, `disk`, `tls`) |
//! | `memory` + `disk` | yes | [`embedded`], [`Embedded`], [`EmbeddedStore`]: memory in front of disk |
//! | `reqwest` | no | `cachio::reqwest` (`cachio-reqwest`): the cache as a `reqwest-middleware` middleware |
//! | `archive` | no | `cachio::archive` (`cachio-archive`): HAR export and import, WARC export, of any store that lists its entries |
//! | `cassette` | no | `cachio::cassette` (`cachio-cassette`): record HTTP to readable files and replay it in tests |
//!
//! # Crates
//!
//! - [`core`] (`cachio-core`): the caching policy and the storage traits, no I/O; [`Tiered`].
//! - `cachio-tower`: [`CacheLayer`], the tower layer, re-exported here.
//! - `cachio-moka`: the memory store, re-exported as [`MemoryStore`].
//! - `cachio-fjall`: the disk store, re-exported as [`DiskStore`].
//! - `cachio-reqwest`: the reqwest middleware, re-exported as `cachio::reqwest` (feature `reqwest`).
//! - `cachio-cassette`: record and replay, re-exported as `cachio::cassette` (feature `cassette`).

// On docs.rs, each item gated by a feature says which one.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "client")]
pub mod client;
#[cfg(all(feature = "memory", feature = "disk"))]
mod embedded;
#[cfg(feature = "tls")]
pub mod tls;

#[cfg(feature = "client")]
pub use client::Client;

pub use cachio_core as core;
pub use cachio_core::clock::{Clock, ManualClock, SystemClock};
#[expect(deprecated)]
pub use cachio_core::policy::Mode;
pub use cachio_core::policy::{Policy, Sharing};
pub use cachio_core::store::{Store, StoreError, StoreWriter};
pub use cachio_core::tiered::Tiered;
pub use cachio_tower::{
    CACHE_STATUS, Cache, CacheLayer, CacheMode, CacheStats, ResponseBody, ResponseFuture,
    StatsSnapshot,
};

#[cfg(feature = "memory")]
pub use cachio_moka::{MokaStore as MemoryStore, MokaStoreBuilder as MemoryStoreBuilder};

#[cfg(feature = "disk")]
pub use cachio_fjall::{
    Durability, FjallStore as DiskStore, FjallStoreBuilder as DiskStoreBuilder, OnDamage, ReadMode,
};

#[cfg(feature = "redis")]
pub use cachio_redis::{
    Broadcast, FleetStore, RedisBody, RedisStats, RedisStore, RedisStoreBuilder, RedisWriter,
};

#[cfg(feature = "reqwest")]
pub use cachio_reqwest as reqwest;

#[cfg(feature = "archive")]
pub use cachio_archive as archive;
#[cfg(feature = "cassette")]
pub use cachio_cassette as cassette;

#[cfg(all(feature = "memory", feature = "disk"))]
pub use embedded::{Embedded, EmbeddedBuilder, EmbeddedStore, embedded};
