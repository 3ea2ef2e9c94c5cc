//! [`ClientBuilder`]: a client's store, mode, trust, limits and cache options.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use cachio_core::store::Store;
use cachio_tower::{CacheLayer, CacheStats};
use http::header::HeaderValue;
use http::{Request, Response};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::decompression::DecompressionLayer;
use tower_http::follow_redirect::FollowRedirectLayer;
use tower_http::follow_redirect::policy::{FilterCredentials, PolicyExt};

use super::redirect::Limit;
use super::transport::Transport;
use super::{
    Body, BoxError, Client, Error, Inner, Invalidate, RequestBody, ResponseFuture, Settled,
};
use crate::tls::TlsConfig;

/// The redirects a client follows by default, as browsers and most HTTP clients do.
pub const DEFAULT_MAX_REDIRECTS: usize = 10;

/// How long a client waits for a response by default: 30 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The options a client is built with; [`Client::builder`] makes one.
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// # fn main() -> Result<(), cachio::client::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let dir = dir.path();
/// let client = cachio::Client::builder(dir)
///     .timeout(Duration::from_secs(10))
///     .max_redirects(5)
///     .user_agent("my-crawler/1.0")
///     .layer(|cache| cache.cache_name("my-crawler").max_object_size(16 << 20))
///     .build()?;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct ClientBuilder {
    dir: PathBuf,
    store: Option<BuildWith>,
    settings: Settings,
}

/// Builds the client over the store given to [`ClientBuilder::store`].
type BuildWith = Box<dyn FnOnce(Settings) -> Result<Built, Error> + Send>;

/// One call of [`ClientBuilder::layer`].
type SetOptions = Box<dyn FnOnce(CacheLayer<()>) -> CacheLayer<()> + Send>;

/// What the stack is built from, whatever the store.
struct Settings {
    shared: bool,
    options: Vec<SetOptions>,
    tls: TlsConfig,
    timeout: Option<Duration>,
    max_redirects: usize,
    user_agent: HeaderValue,
    /// The first bad option given, reported by `build`.
    invalid: Option<Error>,
}

/// A client's parts, once built.
pub(super) struct Built {
    pub(super) inner: Inner,
    pub(super) stats: Arc<CacheStats>,
    pub(super) invalidate: Invalidate,
    pub(super) settled: Settled,
}

impl ClientBuilder {
    pub(super) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            store: None,
            settings: Settings {
                shared: false,
                options: Vec::new(),
                tls: TlsConfig::new(),
                timeout: Some(DEFAULT_TIMEOUT),
                max_redirects: DEFAULT_MAX_REDIRECTS,
                user_agent: HeaderValue::from_static(concat!("cachio/", env!("CARGO_PKG_VERSION"))),
                invalid: None,
            },
        }
    }

    /// Keeps the cache in `store` instead of the embedded store in the builder's directory
    /// (which is then not opened): a [`MemoryStore`](crate::MemoryStore) for a cache that ends
    /// with the program, a fleet's store, any [`Store`].
    pub fn store<St: Store>(mut self, store: St) -> Self {
        self.store = Some(Box::new(move |settings: Settings| settings.build(store)));
        self
    }

    /// A shared cache, as a gateway's (RFC 9111 §3.5): it does not store `private` responses nor
    /// those to requests with `Authorization`. A client is a private cache by default.
    pub fn shared(mut self) -> Self {
        self.settings.shared = true;
        self
    }

    /// Also trusts the certificate authorities in `pem` (PEM text, one or more `CERTIFICATE`
    /// blocks): a company's CA, a test's own. Call it again for more.
    pub fn root_certificate_pem(mut self, pem: &[u8]) -> Self {
        match std::mem::take(&mut self.settings.tls).root_certificate_pem(pem) {
            Ok(tls) => self.settings.tls = tls,
            Err(err) => {
                self.settings.invalid.get_or_insert(Error::builder(err));
            }
        }
        self
    }

    /// Whether to trust the built-in roots, both sets (on by default): the Mozilla roots that
    /// ship with cachio (`webpki-roots`) and those the operating system trusts. Turn them off to
    /// trust only the roots given with [`root_certificate_pem`](Self::root_certificate_pem).
    pub fn tls_built_in_root_certs(mut self, on: bool) -> Self {
        self.settings.tls = self.settings.tls.built_in_roots(on);
        self
    }

    /// Whether to trust the Mozilla roots that ship with cachio (on by default).
    pub fn tls_built_in_webpki_certs(mut self, on: bool) -> Self {
        self.settings.tls = self.settings.tls.built_in_webpki_roots(on);
        self
    }

    /// Whether to trust the roots the operating system trusts (on by default).
    pub fn tls_built_in_native_certs(mut self, on: bool) -> Self {
        self.settings.tls = self.settings.tls.built_in_native_roots(on);
        self
    }

    /// How long the origin has to answer each request sent to it, from the connection attempt
    /// to the response's head ([`DEFAULT_TIMEOUT`] by default; each hop of a redirect has its
    /// own); `None` waits for ever. An answer from the cache sets no timer, and a stale response
    /// the origin does not validate in time is served if its rules allow (`stale-if-error`,
    /// [`grace`](crate::CacheLayer::grace)). The body is not timed: it streams at the origin's
    /// pace.
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.settings.timeout = timeout.into();
        self
    }

    /// The most redirects to follow for one request ([`DEFAULT_MAX_REDIRECTS`] by default); one
    /// more is an error ([`Error::is_redirect`]). Zero turns following off: a `3xx` is returned
    /// as it is.
    pub fn max_redirects(mut self, max: usize) -> Self {
        self.settings.max_redirects = max;
        self
    }

    /// The `User-Agent` sent to origins with the requests that have none (`cachio/VERSION` by
    /// default). It is added after the cache, so the cache matches `Vary: User-Agent` on the
    /// field as the caller sent it, which stands for the same default in every request.
    pub fn user_agent<V>(mut self, value: V) -> Self
    where
        V: TryInto<HeaderValue>,
        V::Error: Into<BoxError>,
    {
        match value.try_into() {
            Ok(value) => self.settings.user_agent = value,
            Err(e) => {
                let err = Error::builder(format!("the user agent: {}", e.into()));
                self.settings.invalid.get_or_insert(err);
            }
        }
        self
    }

    /// Sets the cache's options, as on a [`CacheLayer`]: `cache_name`, `max_object_size`,
    /// `grace`, `key_fn`, `ttl_override`, `policy`, `clock`... Called again, each call applies
    /// in turn.
    pub fn layer<F>(mut self, options: F) -> Self
    where
        F: FnOnce(CacheLayer<()>) -> CacheLayer<()> + Send + 'static,
    {
        self.settings.options.push(Box::new(options));
        self
    }

    /// Opens the store (the embedded one in the builder's directory, unless another was given)
    /// and builds the client.
    ///
    /// This blocks while the embedded store opens and the system's root certificates are read:
    /// call it at start-up, or inside `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    ///
    /// When the embedded store cannot be opened, a root certificate or the user agent is
    /// invalid, or no root is left to trust ([`Error::is_builder`]).
    pub fn build(mut self) -> Result<Client, Error> {
        // Checked before the store opens, so a bad option does not hold a directory's lock.
        if let Some(err) = self.settings.invalid.take() {
            return Err(err);
        }
        let built = match self.store {
            Some(build) => build(self.settings)?,
            None => {
                let store = crate::embedded(&self.dir).map_err(Error::builder)?;
                self.settings.build(store)?
            }
        };
        Ok(Client {
            inner: built.inner,
            stats: built.stats,
            invalidate: built.invalidate,
            settled: built.settled,
        })
    }
}

impl Settings {
    /// The stack, outermost first: redirects (each hop a request of its own through the cache,
    /// so each is stored under its own URL), decompression (so the cache stores and validates
    /// the bytes the origin sent), the cache, the timeout of each request to the origin (a hit
    /// sets no timer), and the transport.
    fn build<St: Store>(self, store: St) -> Result<Built, Error> {
        let options = if self.shared {
            CacheLayer::shared(())
        } else {
            CacheLayer::private(())
        };
        let options = self.options.into_iter().fold(options, |layer, f| f(layer));
        let cache = options.with_store(store);
        let stats = cache.stats();
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(self.timeout);
        let connector = self.tls.https_connector(http).map_err(Error::builder)?;
        let transport = Transport::new(connector, self.user_agent);
        let redirects = Limit::new(self.max_redirects)
            .and::<_, RequestBody, BoxError>(FilterCredentials::new());
        let stack = ServiceBuilder::new()
            .layer(FollowRedirectLayer::with_policy(redirects).preserve_extensions(true))
            .map_response(|res: Response<_>| res.map(Body::new))
            .layer(DecompressionLayer::new())
            .layer(cache.clone())
            .option_layer(self.timeout.map(tower::timeout::TimeoutLayer::new))
            .service(transport);
        let writes = cache.clone();
        let settled: Settled = Arc::new(move || {
            let cache = writes.clone();
            Box::pin(async move { cache.settled().await })
        });
        let invalidate: Invalidate = Arc::new(move |req| {
            let cache = cache.clone();
            Box::pin(async move { cache.invalidate(&req).await })
        });
        // Every service of the stack is ready at once (hyper's pool waits for a connection in
        // the request's future) and a clone is reference counts: each request calls a clone of
        // its own, and skips `Oneshot`'s state when the clone is ready as it is asked.
        let inner: Inner = Arc::new(move |req: Request<RequestBody>| -> ResponseFuture {
            let mut svc = stack.clone();
            match svc.poll_ready(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(Ok(())) => Box::pin(svc.call(req)),
                Poll::Ready(Err(err)) => Box::pin(std::future::ready(Err(err))),
                Poll::Pending => Box::pin(svc.oneshot(req)),
            }
        });
        Ok(Built {
            inner,
            stats,
            invalidate,
            settled,
        })
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("dir", &self.dir)
            .field("shared", &self.settings.shared)
            .field("timeout", &self.settings.timeout)
            .field("max_redirects", &self.settings.max_redirects)
            .finish_non_exhaustive()
    }
}
