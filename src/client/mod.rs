//! A ready HTTP client with the cache built in: [`Client`].
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cachio::client::Error> {
//! let client = cachio::Client::new("./http-cache")?;
//! let res = client.get("https://www.example.com/index.html").await?;
//! println!("{:?}", res.headers()["cache-status"]);
//! let page = res.into_body().text().await?;
//! # Ok(())
//! # }
//! ```
//!
//! A request passes, in order: the redirects (tower-http's `FollowRedirect`), the decompression
//! (tower-http's `Decompression`), the cache ([`CacheLayer`](crate::CacheLayer)), the timeout of
//! a request to the origin (tower's `Timeout`), and hyper's pooled client over rustls. So:
//!
//! - each hop of a redirect is a request of its own through the cache, stored under its own URL
//!   as RFC 9111 keys responses: a stored `301` or `308` sends the next request straight on to
//!   its target without asking the origin;
//! - the cache stores the bytes the origin sent, compressed as they came, so `Vary:
//!   Accept-Encoding`, validators and `Content-Length` stay those of the stored bytes; the
//!   caller gets them decompressed (gzip, deflate, brotli), without `Content-Encoding`;
//! - TLS trusts the Mozilla roots that ship with cachio (`webpki-roots`) and the roots the
//!   operating system trusts, both at once: a certificate is accepted when it chains to either
//!   set. The built-in set makes HTTPS work where the system has no roots (a slim container); the
//!   system's set adds what an organisation trusts (a company CA). Neither overrides the other,
//!   so a root that the system has removed but the built-in set still holds stays trusted: turn
//!   a set off with [`ClientBuilder::tls_built_in_webpki_certs`] or
//!   [`ClientBuilder::tls_built_in_native_certs`] when that matters. HTTP/2 or HTTP/1.1 is
//!   chosen by ALPN; the server name (SNI) is the URL's host. This TLS setup is
//!   [`crate::tls::TlsConfig`], for other clients to share.

mod body;
mod builder;
mod error;
mod redirect;
mod transport;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use cachio_core::store::StoreError;
use cachio_tower::CacheStats;
use http::{Request, Response, Uri};

pub use body::Body;
use body::RequestBody;
pub use builder::{ClientBuilder, DEFAULT_MAX_REDIRECTS, DEFAULT_TIMEOUT};
pub use error::Error;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The future of a request through the stack.
type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

/// The whole stack, behind one function: the store's type does not show in the client's.
type Inner = Arc<dyn Fn(Request<RequestBody>) -> ResponseFuture + Send + Sync>;

/// Removes what the cache holds for a request's URL.
type Invalidate = Arc<
    dyn Fn(Request<()>) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>
        + Send
        + Sync,
>;

/// Completes once the cache's writes in the background are done.
type Settled = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// An HTTP client with an RFC 9111 cache built in, over HTTP and HTTPS.
///
/// [`Client::new`] keeps the cache in a directory (the [embedded](crate::embedded) store: memory
/// in front of disk), as a private cache: what one run of a program fetched, the next run is
/// served from disk. [`Client::builder`] sets the rest. Cloning is cheap: clones share the
/// cache and the connection pool.
///
/// Every response carries `Cache-Status` (RFC 9211): `cachio; hit`, or `cachio; fwd=...`.
///
/// # Example
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachio::client::Error> {
/// let client = cachio::Client::new("./http-cache")?;
/// for _ in 0..2 {
///     let res = client.get("https://www.example.com/").await?;
///     println!("{} {:?}", res.status(), res.headers()["cache-status"]);
///     res.into_body().bytes().await?; // read to the end: a complete body is stored
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Inner,
    stats: Arc<CacheStats>,
    invalidate: Invalidate,
    settled: Settled,
}

impl Client {
    /// A private cache in directory `dir` (created if needed) with the default options: see
    /// [`ClientBuilder`].
    ///
    /// This blocks while the store opens: call it at start-up, or inside
    /// `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    ///
    /// When the directory cannot be opened (another program has it open, it cannot be
    /// created), or no root certificate could be found.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        Self::builder(dir).build()
    }

    /// A builder whose store is the embedded one in directory `dir`, unless
    /// [`ClientBuilder::store`] gives another.
    pub fn builder(dir: impl Into<PathBuf>) -> ClientBuilder {
        ClientBuilder::new(dir.into())
    }

    /// Fetches `url` with `GET`.
    ///
    /// The response comes when its head has; the body streams ([`Body`]). Read it to its end
    /// for the cache to store it.
    ///
    /// # Errors
    ///
    /// When `url` is not an absolute `http` or `https` URL, or as [`request`](Self::request).
    pub fn get(
        &self,
        url: &str,
    ) -> impl Future<Output = Result<Response<Body>, Error>> + Send + 'static {
        let req = url.parse::<Uri>().map_err(Error::url).map(|uri| {
            // `GET` is a new request's method: only the URI is set.
            let mut req = Request::new(RequestBody::default());
            *req.uri_mut() = uri;
            req
        });
        self.send(req)
    }

    /// Sends `req`, any method, with any body (`String`, `Vec<u8>`, `http_body_util::Full`...).
    /// A [`CacheMode`](crate::CacheMode) in its extensions changes how it uses the cache.
    ///
    /// # Errors
    ///
    /// When the URI is not absolute `http` or `https`, no connection could be made, TLS failed
    /// (the error names the host and the reason), the origin did not answer within the timeout,
    /// or the redirects went past the limit.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = cachio::Client::new("./http-cache")?;
    /// let mut req = http::Request::get("https://www.example.com/").body(String::new())?;
    /// req.extensions_mut().insert(cachio::CacheMode::OnlyIfCached); // never the network
    /// let res = client.request(req).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn request<B>(
        &self,
        req: Request<B>,
    ) -> impl Future<Output = Result<Response<Body>, Error>> + Send + 'static
    where
        B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        self.send(Ok(req.map(RequestBody::new)))
    }

    /// The future of one request: built here, so that it owns what it needs and can be spawned.
    fn send(
        &self,
        req: Result<Request<RequestBody>, Error>,
    ) -> impl Future<Output = Result<Response<Body>, Error>> + Send + 'static {
        let sent = req
            .and_then(|req| {
                let uri = req.uri();
                let web = matches!(uri.scheme_str(), Some("http" | "https"));
                if web && uri.authority().is_some_and(|a| !a.as_str().is_empty()) {
                    Ok(req)
                } else {
                    Err(Error::url(uri.to_string()))
                }
            })
            .map(|req| (self.inner)(req));
        async move { sent?.await.map_err(Error::from_stack) }
    }

    /// The cache's counters: hits, misses, revalidations, stores...
    pub fn stats(&self) -> Arc<CacheStats> {
        self.stats.clone()
    }

    /// Removes what the cache holds for `url` (every `Vary` variant), as a `POST` to it would:
    /// for a resource changed by other paths than this client. A response to it on its way
    /// from the origin is passed on and not stored.
    ///
    /// # Errors
    ///
    /// When `url` is not an absolute `http` or `https` URL, or the store failed to remove them.
    pub async fn invalidate(&self, url: &str) -> Result<(), Error> {
        let uri: Uri = url.parse().map_err(Error::url)?;
        let req = Request::get(uri).body(()).map_err(Error::url)?;
        (self.invalidate)(req).await.map_err(Error::store)
    }
}

impl Client {
    /// Completes once every response this client began to store is stored. A response is stored
    /// on a task of its own once its body has been read to the end, and a tokio runtime that
    /// shuts down drops that task: a program awaits this before it returns from `main` (or
    /// drops its runtime), then drops its clients, which closes the disk store and syncs it.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachio::client::Error> {
    /// let client = cachio::Client::new("./http-cache")?;
    /// let res = client.get("https://www.example.com/").await?;
    /// res.into_body().bytes().await?;
    /// // Before exit: the response is committed, then the store closes with the client.
    /// client.settled().await;
    /// drop(client);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn settled(&self) {
        (self.settled)().await;
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}
