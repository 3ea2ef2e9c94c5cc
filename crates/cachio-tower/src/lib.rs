//! The tower layer of cachio: an RFC 9111 HTTP cache in front of any
//! `Service<http::Request<B>>`.
//!
//! ```
//! use bytes::Bytes;
//! use cachio_moka::MokaStore;
//! use cachio_tower::CacheLayer;
//! use http_body_util::{BodyExt, Full};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let origin = service_fn(|_req: http::Request<Full<Bytes>>| async {
//!     Ok::<_, std::convert::Infallible>(
//!         http::Response::builder()
//!             .header("cache-control", "max-age=60")
//!             .body(Full::new(Bytes::from_static(b"hello")))
//!             .unwrap(),
//!     )
//! });
//! let mut client = ServiceBuilder::new()
//!     .layer(CacheLayer::private(MokaStore::new(64 << 20)))
//!     .service(origin);
//!
//! for expected in ["cachio; fwd=uri-miss; fwd-status=200; stored", "cachio; hit; ttl=60"] {
//!     let req = http::Request::get("http://example.com/").body(Full::default()).unwrap();
//!     let res = client.ready().await.unwrap().call(req).await.unwrap();
//!     assert_eq!(res.headers()["cache-status"], expected);
//!     assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hello");
//! }
//! # }
//! ```
//!
//! See [`CacheLayer`] for the options and [`CacheMode`] for per-request modes.

mod background;
mod body;
mod capture;
mod coalesce;
mod config;
mod fill;
mod future;
mod hooks;
mod invalidate;
mod layer;
mod lookup;
mod mode;
mod outcome;
mod revalidate;
mod serve;
mod service;
mod stats;

pub use body::{BoxError, ResponseBody};
pub use future::ResponseFuture;
pub use hooks::{KeyFn, TtlFn};
pub use layer::{
    CacheLayer, DEFAULT_COALESCE_TIMEOUT, DEFAULT_FILL_WINDOW, DEFAULT_HIT_FOR_MISS,
    DEFAULT_MAX_OBJECT_SIZE, DEFAULT_WRITE_BACKLOG,
};
pub use mode::CacheMode;
pub use outcome::StoreOutcome;
pub use service::{CACHE_STATUS, Cache};
pub use stats::{CacheStats, StatsSnapshot};

pub use cachio_core as core;
#[expect(deprecated)]
pub use cachio_core::policy::Mode;
pub use cachio_core::policy::{Policy, Sharing};
