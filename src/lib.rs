//! cachio: an HTTP cache for the tower ecosystem.
//!
//! cachio puts an RFC 9111 cache in front of any `tower::Service<http::Request<B>>`: a hyper
//! client, a reqwest-free API client, an axum handler's upstream, a gateway's origin.
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
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `memory` | yes | [`MemoryStore`], the in-memory store (`cachio-moka`) |
//!
//! # Crates
//!
//! - [`core`] (`cachio-core`): the caching policy and the storage traits, no I/O.
//! - `cachio-tower`: [`CacheLayer`], the tower layer, re-exported here.
//! - `cachio-moka`: the memory store, re-exported as [`MemoryStore`].

pub use cachio_core as core;
pub use cachio_core::clock::{Clock, ManualClock, SystemClock};
pub use cachio_core::policy::{Mode, Policy};
pub use cachio_core::store::{Store, StoreError, StoreWriter};
pub use cachio_tower::{CACHE_STATUS, Cache, CacheLayer, CacheMode, ResponseBody, ResponseFuture};

#[cfg(feature = "memory")]
pub use cachio_moka::{MokaStore as MemoryStore, MokaStoreBuilder as MemoryStoreBuilder};
