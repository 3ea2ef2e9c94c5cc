//! The layer and its options.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cachio_core::clock::{Clock, SystemClock};
use cachio_core::policy::{Policy, Sharing};
use cachio_core::store::{Store, StoreError};
use http::{request, response};
use tower_layer::Layer;

use crate::config::{Config, Ctx};
use crate::hooks::{KeyFn, TtlFn};
use crate::invalidate;
use crate::service::Cache;
use crate::stats::CacheStats;

/// How long a request waits for another's fetch of the same key by default: 10 seconds.
pub const DEFAULT_COALESCE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a key whose response could not be stored skips coalescing by default: 10 seconds.
pub const DEFAULT_HIT_FOR_MISS: Duration = Duration::from_secs(10);

/// How many bytes of a fetch in flight are kept in memory by default for the requests that wait
/// on it: 4 MiB.
pub const DEFAULT_FILL_WINDOW: u64 = 4 * 1024 * 1024;

/// The most bytes of bodies whose commits may be running at once by default: 8 MiB.
pub const DEFAULT_WRITE_BACKLOG: u64 = 8 * 1024 * 1024;

/// The default largest body stored: 64 MiB.
pub const DEFAULT_MAX_OBJECT_SIZE: u64 = 64 * 1024 * 1024;

/// A tower [`Layer`] that puts an RFC 9111 HTTP cache in front of a service.
///
/// [`CacheLayer::private`] gives the cache of one client (an API client, a crawler);
/// [`CacheLayer::shared`] the cache of a gateway serving many users. The store decides where
/// entries live (`cachio-moka` for memory).
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use cachio_moka::MokaStore;
/// use cachio_tower::CacheLayer;
/// use http_body_util::Full;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let origin = service_fn(|_req: http::Request<Full<Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(
///         http::Response::builder()
///             .header("cache-control", "max-age=60")
///             .body(Full::new(Bytes::from_static(b"hello")))
///             .unwrap(),
///     )
/// });
/// let client = ServiceBuilder::new()
///     .layer(CacheLayer::private(MokaStore::new(64 * 1024 * 1024)).cache_name("my-client"))
///     .service(origin);
///
/// let res = client.oneshot(http::Request::get("http://example.com/").body(Full::default()).unwrap()).await.unwrap();
/// assert_eq!(res.headers()["cache-status"], "my-client; fwd=uri-miss; fwd-status=200; stored");
/// # }
/// ```
#[derive(Clone)]
pub struct CacheLayer<St> {
    pub(crate) store: St,
    pub(crate) config: Arc<Config>,
}

impl<St> CacheLayer<St> {
    /// A private cache (one user's) over `store`.
    pub fn private(store: St) -> Self {
        Self::new(store, Policy::private())
    }

    /// A shared cache (a gateway's) over `store`.
    pub fn shared(store: St) -> Self {
        Self::new(store, Policy::shared())
    }

    /// A cache over `store` following `policy`.
    pub fn new(store: St, policy: Policy) -> Self {
        Self {
            store,
            config: Arc::new(Config {
                policy,
                clock: Arc::new(SystemClock),
                name: "cachio".to_owned(),
                max_object_size: DEFAULT_MAX_OBJECT_SIZE,
                key_fn: None,
                ttl_fn: None,
                coalesce: true,
                coalesce_timeout: DEFAULT_COALESCE_TIMEOUT,
                hit_for_miss: DEFAULT_HIT_FOR_MISS,
                fill_window: DEFAULT_FILL_WINDOW,
                fill_after_disconnect: None,
                write_backlog: DEFAULT_WRITE_BACKLOG,
                default_mode: crate::CacheMode::Default,
                store_all: false,
                flights: Arc::default(),
                invalidations: Arc::default(),
                stats: Arc::default(),
                writes: Arc::default(),
                recorded: OnceLock::new(),
            }),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        let config = Arc::make_mut(&mut self.config);
        // A changed configuration is another one (services made before may have used this one).
        config.recorded = OnceLock::new();
        config
    }

    /// Replaces the caching policy (heuristics, retention, variants; see [`Policy`]). The mode of
    /// the new policy replaces the one the constructor chose.
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> Self {
        self.config_mut().policy = policy;
        self
    }

    /// The name this cache gives itself in `Cache-Status` (RFC 9211); `cachio` by default.
    #[must_use]
    pub fn cache_name(mut self, name: impl Into<String>) -> Self {
        self.config_mut().name = name.into();
        self
    }

    /// The largest body stored, in bytes ([`DEFAULT_MAX_OBJECT_SIZE`] by default). A larger
    /// response still streams to the caller; it is just not stored.
    #[must_use]
    pub fn max_object_size(mut self, bytes: u64) -> Self {
        self.config_mut().max_object_size = bytes;
        self
    }

    /// Replaces the cache key (by default scheme, authority, path and query; see
    /// [`cachio_core::key::primary_key`]) with the one `key` computes. Requests with equal keys
    /// share stored responses.
    #[must_use]
    pub fn key_by<K: KeyFn>(mut self, key: K) -> Self {
        self.config_mut().key_fn = Some(Arc::new(key));
        self
    }

    /// [`key_by`](Self::key_by) for a closure, whose argument's type this signature gives.
    #[must_use]
    pub fn key_fn<F>(self, f: F) -> Self
    where
        F: Fn(&request::Parts) -> String + Send + Sync + 'static,
    {
        self.key_by(f)
    }

    /// Overrides the freshness lifetime of the responses for which `ttl` returns `Some`, in place
    /// of the one their header fields give. The response must still be storable.
    #[must_use]
    pub fn ttl_by<T: TtlFn>(mut self, ttl: T) -> Self {
        self.config_mut().ttl_fn = Some(Arc::new(ttl));
        self
    }

    /// [`ttl_by`](Self::ttl_by) for a closure, whose arguments' types this signature gives.
    #[must_use]
    pub fn ttl_override<F>(self, f: F) -> Self
    where
        F: Fn(&request::Parts, &response::Parts) -> Option<Duration> + Send + Sync + 'static,
    {
        self.ttl_by(f)
    }

    /// The cap on heuristic freshness (RFC 9111 §4.2.2); one day by default.
    #[must_use]
    pub fn heuristic_max(mut self, max: Duration) -> Self {
        let c = self.config_mut();
        c.policy = c.policy.clone().heuristic_max(max);
        self
    }

    /// Whether concurrent requests for one key share one origin fetch (on by default).
    ///
    /// While a cacheable fetch for a key is in flight, further requests for that key wait for it
    /// and are answered from the stored result (`Cache-Status: ...; collapsed`). If the response
    /// cannot be stored, the waiters go to the origin at once and the key skips coalescing for
    /// [`hit_for_miss`](Self::hit_for_miss). Waiting is bounded by
    /// [`coalesce_timeout`](Self::coalesce_timeout).
    #[must_use]
    pub fn coalesce(mut self, on: bool) -> Self {
        self.config_mut().coalesce = on;
        self
    }

    /// The longest a request waits for another's fetch before going to the origin itself
    /// ([`DEFAULT_COALESCE_TIMEOUT`] by default).
    #[must_use]
    pub fn coalesce_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().coalesce_timeout = timeout;
        self
    }

    /// How many bytes of a fetch in flight are kept in memory for the requests that wait on it
    /// ([`DEFAULT_FILL_WINDOW`] by default).
    ///
    /// A request that joins a fetch in flight streams its body from the first byte as it
    /// arrives, at its own pace, from a window of the latest chunks. A request that falls more
    /// than this behind the fetch (a slow reader) waits for the entry to be stored and reads the
    /// rest from the store; the fetch never waits for it. The window bounds the memory a fetch
    /// takes whatever the number and speed of its waiters; zero makes every waiter read from the
    /// stored entry once it is committed.
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    /// use cachio_tower::CacheLayer;
    ///
    /// let layer = CacheLayer::shared(MokaStore::new(1 << 30)).fill_window(16 << 20);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn fill_window(mut self, bytes: u64) -> Self {
        self.config_mut().fill_window = bytes;
        self
    }

    /// The largest body that is still fetched into the store after the client that asked for it
    /// went away, when no other request waits on it (by default the
    /// [`max_object_size`](Self::max_object_size)).
    ///
    /// When the caller drops a miss's body mid-way, a task reads the rest from the origin into
    /// the store while requests wait on it, or while the body (its `Content-Length`, or the bytes
    /// so far) is within `bytes`; past that the fetch stops and nothing is stored. The next
    /// request is then a hit instead of a second fetch. Zero stops every fetch whose client went
    /// away and that nobody waits on.
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    /// use cachio_tower::CacheLayer;
    ///
    /// let layer = CacheLayer::shared(MokaStore::new(1 << 30)).fill_after_disconnect(8 << 20);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn fill_after_disconnect(mut self, bytes: u64) -> Self {
        self.config_mut().fill_after_disconnect = Some(bytes);
        self
    }

    /// The most bytes of bodies whose commits may be running at once
    /// ([`DEFAULT_WRITE_BACKLOG`] by default).
    ///
    /// A body seen to its end is committed on a task of its own, and its client may go on
    /// before the commit is done (an HTTP/1 server stops polling a body once its
    /// `Content-Length` is sent). A store slower than the traffic would then gather commits,
    /// and the bodies they hold, without end. Past this many bytes of bodies being committed,
    /// responses are passed on without being stored (`Cache-Status` without `stored`) until
    /// the store catches up: the bound keeps the memory the cache takes under a write load
    /// stated, whatever the speed of the store.
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    /// use cachio_tower::CacheLayer;
    ///
    /// let layer = CacheLayer::shared(MokaStore::new(1 << 30)).write_backlog(32 << 20);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn write_backlog(mut self, bytes: u64) -> Self {
        self.config_mut().write_backlog = bytes;
        self
    }

    /// How long a key whose response could not be stored is sent straight to the origin without
    /// waiting on other requests ([`DEFAULT_HIT_FOR_MISS`] by default; zero turns it off).
    #[must_use]
    pub fn hit_for_miss(mut self, ttl: Duration) -> Self {
        self.config_mut().hit_for_miss = ttl;
        self
    }

    /// How long past freshness a stored response may be served when the origin fails or answers
    /// 5xx (zero by default); see [`Policy::grace`].
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        let c = self.config_mut();
        c.policy = c.policy.clone().grace(grace);
        self
    }

    /// The mode of the requests that carry no [`CacheMode`](crate::CacheMode) extension
    /// ([`CacheMode::Default`](crate::CacheMode::Default) unless set): a program that replays
    /// recorded traffic sets [`CacheMode::OnlyIfCached`](crate::CacheMode::OnlyIfCached) once
    /// here instead of on every request.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    /// use cachio_tower::{CacheLayer, CacheMode};
    ///
    /// let offline = CacheLayer::private(MokaStore::new(1 << 20)).default_mode(CacheMode::OnlyIfCached);
    /// ```
    #[must_use]
    pub fn default_mode(mut self, mode: crate::CacheMode) -> Self {
        self.config_mut().default_mode = mode;
        self
    }

    /// Whether to store every complete `GET` response, also those RFC 9111 §3 says not to
    /// (`no-store`, `private` in a shared cache, a status without freshness); off by default.
    /// For stores that record traffic to replay it, not for caches: such an entry has no
    /// freshness, so it is served only in the modes that serve whatever is stored
    /// ([`CacheMode::ForceCache`](crate::CacheMode::ForceCache),
    /// [`CacheMode::OnlyIfCached`](crate::CacheMode::OnlyIfCached)). Partial (`206`), `304`,
    /// interim responses and `Vary: *` are never stored; an entry the rules would not keep is
    /// given a year. A shared cache ignores it: it never keeps one user's private response where
    /// another could be served it.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    /// use cachio_tower::{CacheLayer, CacheMode};
    ///
    /// let recorder = CacheLayer::private(MokaStore::new(1 << 20))
    ///     .store_all(true)
    ///     .default_mode(CacheMode::ForceCache);
    /// ```
    #[must_use]
    pub fn store_all(mut self, on: bool) -> Self {
        self.config_mut().store_all = on;
        self
    }

    /// This configuration over another store: the options set so far carry over. For code that
    /// sets a cache's options before it knows its store (a client builder, say).
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    /// use cachio_tower::CacheLayer;
    ///
    /// let options = CacheLayer::private(()).cache_name("crawler");
    /// let layer = options.with_store(MokaStore::new(64 * 1024 * 1024));
    /// assert!(format!("{layer:?}").contains("crawler"));
    /// ```
    #[must_use]
    pub fn with_store<S2>(mut self, store: S2) -> CacheLayer<S2> {
        // Another store is another cache: its own fetches in flight, its own counters.
        let config = self.config_mut();
        config.flights = Arc::default();
        config.invalidations = Arc::default();
        config.stats = Arc::default();
        config.writes = Arc::default();
        CacheLayer {
            store,
            config: self.config,
        }
    }

    /// The counters of this cache, shared with every service it makes.
    pub fn stats(&self) -> Arc<CacheStats> {
        self.config.stats.clone()
    }

    /// Completes once no write this cache started on a task of its own is running: the commit
    /// of every response whose body was read to its end, every background revalidation
    /// (`stale-while-revalidate`). Shared by the clones of the layer and the services it made.
    ///
    /// A client may have the last byte of a response before the cache has committed it, and a
    /// tokio runtime that shuts down drops the tasks still running, so a program that stops
    /// serving awaits this (bounded by a timeout of its choice) before it drops its runtime,
    /// then closes or syncs its store (see the store's documentation). Under a steady load it
    /// may not complete: stop taking requests first.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use cachio_moka::MokaStore;
    /// use cachio_tower::CacheLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let layer = CacheLayer::shared(MokaStore::new(64 * 1024 * 1024));
    /// // ... serve with `layer`, then stop taking requests ...
    /// if tokio::time::timeout(Duration::from_secs(10), layer.settled()).await.is_err() {
    ///     eprintln!("some responses were not stored");
    /// }
    /// # }
    /// ```
    pub async fn settled(&self) {
        self.config.writes.settled().await;
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// Removes the stored responses that `req` would be answered with: those of its URL, every
    /// `Vary` variant, as a `POST` or `DELETE` to it would (RFC 9111 §4.4). A response to it that
    /// is on its way from the origin when this is called is passed on and not stored. Use it
    /// when a resource changed by other paths than requests through this cache.
    ///
    /// The key is the request's, as the cache computes it: the default key takes the scheme and
    /// authority from an absolute URI or from `Host`, and a [key function](Self::key_fn) sees
    /// `req` as it would see a request to the cache.
    ///
    /// # Errors
    ///
    /// When the store fails to remove them (the failure also counts in
    /// [`StatsSnapshot::store_errors`](crate::StatsSnapshot::store_errors)).
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    /// use cachio_tower::CacheLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let layer = CacheLayer::private(MokaStore::new(64 * 1024 * 1024));
    /// // ... after an update to the resource made elsewhere:
    /// layer
    ///     .invalidate(&http::Request::get("https://api.example.com/users/7").body(())?)
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn invalidate<B>(&self, req: &http::Request<B>) -> Result<(), StoreError>
    where
        St: Store,
    {
        let (parts, ()) = invalidate::request_parts(req);
        invalidate::invalidate(&self.store, &self.config, &parts).await
    }

    /// Removes every stored entry for which `matches(key, meta)` holds and returns how many went:
    /// purges by URL prefix, by surrogate key (a header the origin tags its responses with), or
    /// by anything else the stored metadata tells.
    ///
    /// `key` is the store's key: the [primary key](cachio_core::key::primary_key) of a URL
    /// (`https://api.example.com/users/7`), or that key followed by a NUL byte and a suffix for
    /// each of its `Vary` variants, so a prefix match on a URL's key takes its variants with it.
    /// `meta` is a stored response ([`Meta::as_response`](cachio_core::Meta::as_response)) or a
    /// URL's list of variants.
    ///
    /// Like [`invalidate`](Self::invalidate), it is ordered with the responses on their way from
    /// the origin: none whose request came before the purge is stored after it, whatever its
    /// key. (The store alone knows which keys go, so every fetch in flight is passed on
    /// unstored; a purge is rare enough for that.)
    ///
    /// # Errors
    ///
    /// When the store fails, or is one that cannot enumerate its entries
    /// ([`ErrorKind::Unsupported`](cachio_core::store::ErrorKind::Unsupported)).
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    /// use cachio_tower::CacheLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let layer = CacheLayer::shared(MokaStore::new(64 * 1024 * 1024));
    /// // Everything under /users/, and every response tagged `Surrogate-Key: users`.
    /// let under = layer
    ///     .purge(|key, _| key.starts_with("https://api.example.com/users/"))
    ///     .await?;
    /// let tagged = layer
    ///     .purge(|_, meta| {
    ///         meta.as_response().is_some_and(|res| {
    ///             res.headers()
    ///                 .get_all("surrogate-key")
    ///                 .iter()
    ///                 .any(|v| v.as_bytes().split(|b| *b == b' ').any(|t| t == b"users"))
    ///         })
    ///     })
    ///     .await?;
    /// assert_eq!(under + tagged, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn purge<F>(&self, matches: F) -> Result<u64, StoreError>
    where
        St: Store,
        F: Fn(&str, &cachio_core::Meta) -> bool + Send + Sync + 'static,
    {
        invalidate::purge(&self.store, &self.config, matches).await
    }

    /// The clock the cache reads time from ([`SystemClock`] by default); tests use
    /// [`cachio_core::clock::ManualClock`].
    ///
    /// Over a fleet store (`cachio-redis`) it also times each fetch against the purges of
    /// every node, which Redis times by its own clock: a fetch that began before a purge is not
    /// stored. A clock behind the real time makes every fetch look older than a recent purge,
    /// and nothing purged is stored again until the clock passes it (after a prefix or tag
    /// purge, nothing at all): keep the real clock there. One set ahead keeps storing, but its
    /// fetches in flight are then no longer ordered with purges.
    #[must_use]
    pub fn clock<C: Clock>(mut self, clock: C) -> Self {
        self.config_mut().clock = Arc::new(clock);
        self
    }

    /// Private or shared.
    pub fn sharing(&self) -> Sharing {
        self.config.policy.sharing()
    }

    /// Private or shared.
    #[deprecated(note = "renamed to `sharing`")]
    pub fn mode(&self) -> Sharing {
        self.sharing()
    }
}

impl<S, St: Clone> Layer<S> for CacheLayer<St> {
    type Service = Cache<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        // The `metrics` handles are registered here, once, with the recorder current now.
        self.config.recorded();
        Cache::new(
            inner,
            Ctx {
                store: self.store.clone(),
                config: self.config.clone(),
            },
        )
    }
}

impl<St> fmt::Debug for CacheLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("sharing", &self.config.policy.sharing())
            .field("cache_name", &self.config.cache_name())
            .field("max_object_size", &self.config.max_object_size)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_layer_names_itself_in_its_hit_statuses() {
        let store = cachio_moka::MokaStore::new(1 << 20);
        let a = super::CacheLayer::private(store.clone()).cache_name("a");
        let b = super::CacheLayer::private(store).cache_name("b");
        assert_eq!(a.config.hit_status(60), "a; hit; ttl=60");
        assert_eq!(b.config.hit_status(60), "b; hit; ttl=60");
        assert_eq!(a.config.hit_status(-3), "a; hit; ttl=-3");
        assert_eq!(b.config.cache_name(), "b");
    }

    /// A client that has the last byte before the commit ran: `settled` waits for the commit.
    #[tokio::test(flavor = "current_thread")]
    async fn settled_waits_for_a_commit_the_client_did_not_wait_for() {
        use bytes::Bytes;
        use cachio_core::store::Store;
        use http_body_util::{BodyExt, Full};
        use tower::{ServiceExt, service_fn};
        use tower_layer::Layer;

        let store = cachio_moka::MokaStore::new(1 << 20);
        let layer = super::CacheLayer::shared(store.clone());
        let origin = service_fn(|_req: http::Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .header("cache-control", "max-age=60")
                    .header("content-length", "5")
                    .body(Full::new(Bytes::from_static(b"hello")))
                    .unwrap(),
            )
        });
        let req = http::Request::get("http://example.com/settle")
            .body(Full::default())
            .unwrap();
        let res = layer.layer(origin).oneshot(req).await.unwrap();
        let mut body = res.into_body();
        // Every byte, without polling the end: the commit is spawned, not yet run (one thread).
        let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(data, "hello");
        drop(body);
        assert_eq!(layer.stats().snapshot().stores, 0);

        layer.settled().await;
        assert_eq!(layer.stats().snapshot().stores, 1);
        let stored = store.get("http://example.com/settle").await.unwrap();
        assert!(stored.is_some(), "the entry is committed");
        // Nothing running: completes at once.
        layer.settled().await;
    }
}
