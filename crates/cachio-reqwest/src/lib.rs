//! cachio's RFC 9111 HTTP cache as a [`reqwest_middleware::Middleware`].
//!
//! [`Cache`] puts the engine of [`cachio_tower::CacheLayer`] in a reqwest-middleware chain: the
//! same policy (private or shared), the same stores (memory, disk, Redis, or any
//! [`Store`](cachio_core::store::Store)) and the same options, set on a `CacheLayer` and given to
//! [`Cache::new`]. Every response carries `Cache-Status` (RFC 9211).
//!
//! ```
//! use cachio_moka::MokaStore;
//! use cachio_reqwest::Cache;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let url = origin().await;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(Cache::private(MokaStore::new(64 << 20)))
//!     .build();
//!
//! let first = client.get(&url).send().await?;
//! assert_eq!(first.headers()["cache-status"], "cachio; fwd=uri-miss; fwd-status=200; stored");
//! assert_eq!(first.text().await?, "hello");
//!
//! let second = client.get(&url).send().await?;
//! assert_eq!(second.headers()["cache-status"], "cachio; hit; ttl=60");
//! assert_eq!(second.text().await?, "hello");
//! # Ok(())
//! # }
//! # // An origin on 127.0.0.1 that answers every request with a response fresh for 60 s.
//! # async fn origin() -> String {
//! #     use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! #     let url = format!("http://{}/greeting", listener.local_addr().unwrap());
//! #     tokio::spawn(async move {
//! #         while let Ok((mut conn, _)) = listener.accept().await {
//! #             tokio::spawn(async move {
//! #                 let mut buf = [0; 4096];
//! #                 while conn.read(&mut buf).await.is_ok_and(|n| n > 0) {
//! #                     let res = "HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 5\r\n\r\nhello";
//! #                     if conn.write_all(res.as_bytes()).await.is_err() { break; }
//! #                 }
//! #             });
//! #         }
//! #     });
//! #     url
//! # }
//! ```
//!
//! Per request, a [`CacheMode`] extension changes how the cache is used:
//!
//! ```
//! use cachio_reqwest::CacheMode;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! # let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//! #     .with(cachio_reqwest::Cache::private(cachio_moka::MokaStore::new(1 << 20)))
//! #     .build();
//! // Never goes to the network: a stored response, whatever its age, or a 504.
//! let res = client
//!     .get("http://api.example.com/report")
//!     .with_extension(CacheMode::OnlyIfCached)
//!     .send()
//!     .await
//!     .unwrap();
//! assert_eq!(res.status(), 504);
//! # }
//! ```
//!
//! # Bodies
//!
//! Bodies stream both ways. A miss reaches the caller chunk by chunk while it is written to the
//! store, and is stored once read to its end; a hit streams from the store. No body is held whole
//! in memory unless a memory store keeps it. Request bodies pass through as reqwest gives them.
//!
//! # Where requests go
//!
//! The requests the cache sends (misses, validations) go down the rest of the chain: the
//! middleware added after this one, then the client. A `stale-while-revalidate` revalidation
//! (RFC 5861 §3) runs after the stale response has been returned, when that chain is no longer
//! available to it: it goes through the client given to [`Cache::background_client`], or, when
//! none was given, ends at once without reaching the network (the stale response is then served
//! until its window ends, and validated by the request that finds it past it).
//!
//! reqwest follows redirects inside the client, below the middleware: the final response is the
//! one stored, under the URL that was asked for. A client built with
//! `redirect(reqwest::redirect::Policy::none())` lets the cache see, and store, each response.

mod body;
mod forward;
mod middleware;

#[expect(deprecated)]
pub use cachio_tower::Mode;
pub use cachio_tower::{CACHE_STATUS, CacheLayer, CacheMode, CacheStats, Sharing, StatsSnapshot};
pub use middleware::Cache;
