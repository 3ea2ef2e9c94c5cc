//! Archives of what a cachio store holds: HAR 1.2 export and import ([`har`]) and WARC/1.1
//! export ([`warc`]), for any [`Store`](cachio_core::store::Store) that can list its entries
//! ([`Store::scan`](cachio_core::store::Store::scan)).
//!
//! - A `.har` opens in browsers' developer tools, mitmproxy, Charles and Postman, and reads as
//!   a diff in a pull request; a `.har` saved from a browser loads into a store and is served
//!   by `CacheLayer` as if it had been fetched.
//! - A `.warc.gz` is what web archives keep and read (warcio, pywb, the `warc` crate): a
//!   crawler that caches with cachio gets an archive of what it fetched.
//!
//! Bodies stream: an export reads each body from the store chunk by chunk and writes it as it
//! goes; an import holds one entry at a time.
//!
//! # Example
//!
//! Store a response with the layer, export the store as a HAR, import it into another store:
//!
//! ```
//! use bytes::Bytes;
//! use cachio_archive::har::{ImportOptions, export_har, import_har};
//! use cachio_core::Store;
//! use cachio_moka::MokaStore;
//! use cachio_tower::CacheLayer;
//! use http_body_util::{BodyExt, Full};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let origin = service_fn(|_req: http::Request<Full<Bytes>>| async {
//!     Ok::<_, std::convert::Infallible>(
//!         http::Response::builder()
//!             .header("cache-control", "max-age=3600")
//!             .header("content-type", "text/plain")
//!             .body(Full::new(Bytes::from_static(b"hello")))
//!             .unwrap(),
//!     )
//! });
//! let store = MokaStore::new(1 << 20);
//! let client = CacheLayer::private(store.clone()).layer(origin);
//! let req = http::Request::get("https://example.com/").body(Full::default())?;
//! client.oneshot(req).await?.into_body().collect().await?;
//! # store.run_pending_tasks().await;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("cache.har");
//! export_har(&store, std::fs::File::create(&path)?, |_, _| {}).await?;
//!
//! let copy = MokaStore::new(1 << 20);
//! let summary = import_har(&path, &copy, &ImportOptions::new(), |_, _| {}).await?;
//! assert_eq!(summary.imported, 1);
//! assert!(copy.get("https://example.com/").await?.is_some());
//! # Ok(())
//! # }
//! ```

pub mod catalog;
mod error;
pub mod har;
mod stream;
pub mod warc;

pub use error::{ArchiveError, EntryRef};

/// What an export wrote.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachio_archive::ArchiveError> {
/// let store = cachio_moka::MokaStore::new(1 << 20);
/// let summary = cachio_archive::har::export_har(&store, Vec::new(), |_, _| {}).await?;
/// assert_eq!((summary.entries, summary.body_bytes), (0, 0));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportSummary {
    /// The responses written.
    pub entries: u64,
    /// Their body bytes.
    pub body_bytes: u64,
}
