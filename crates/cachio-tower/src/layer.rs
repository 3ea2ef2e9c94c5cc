use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cachio_core::clock::{Clock, SystemClock};
use cachio_core::policy::{Mode, Policy};
use http::{request, response};
use tower_layer::Layer;

use crate::service::Cache;

/// A function that computes the cache key of a request.
pub type KeyFn = dyn Fn(&request::Parts) -> String + Send + Sync;

/// A function that may override the freshness lifetime of a response before it is stored.
pub type TtlFn = dyn Fn(&request::Parts, &response::Parts) -> Option<Duration> + Send + Sync;

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

pub(crate) struct Config {
    pub(crate) policy: Policy,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cache_name: String,
    pub(crate) max_object_size: u64,
    pub(crate) key_fn: Option<Arc<KeyFn>>,
    pub(crate) ttl_fn: Option<Arc<TtlFn>>,
    /// Keys with a background revalidation in flight.
    pub(crate) revalidating: Mutex<std::collections::HashSet<String>>,
}

impl Clone for Config {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
            clock: self.clock.clone(),
            cache_name: self.cache_name.clone(),
            max_object_size: self.max_object_size,
            key_fn: self.key_fn.clone(),
            ttl_fn: self.ttl_fn.clone(),
            revalidating: Mutex::default(),
        }
    }
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
                cache_name: "cachio".to_owned(),
                max_object_size: DEFAULT_MAX_OBJECT_SIZE,
                key_fn: None,
                ttl_fn: None,
                revalidating: Mutex::default(),
            }),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
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
        self.config_mut().cache_name = name.into();
        self
    }

    /// The largest body stored, in bytes ([`DEFAULT_MAX_OBJECT_SIZE`] by default). A larger
    /// response still streams to the caller; it is just not stored.
    #[must_use]
    pub fn max_object_size(mut self, bytes: u64) -> Self {
        self.config_mut().max_object_size = bytes;
        self
    }

    /// Replaces the cache key function (by default scheme, authority, path and query; see
    /// [`cachio_core::key::primary_key`]). Requests with equal keys share stored responses.
    #[must_use]
    pub fn key_fn<F>(mut self, f: F) -> Self
    where
        F: Fn(&request::Parts) -> String + Send + Sync + 'static,
    {
        self.config_mut().key_fn = Some(Arc::new(f));
        self
    }

    /// Overrides the freshness lifetime of the responses for which `f` returns `Some`, in place
    /// of the one their header fields give. The response must still be storable.
    #[must_use]
    pub fn ttl_override<F>(mut self, f: F) -> Self
    where
        F: Fn(&request::Parts, &response::Parts) -> Option<Duration> + Send + Sync + 'static,
    {
        self.config_mut().ttl_fn = Some(Arc::new(f));
        self
    }

    /// The cap on heuristic freshness (RFC 9111 §4.2.2); one day by default.
    #[must_use]
    pub fn heuristic_max(mut self, max: Duration) -> Self {
        let c = self.config_mut();
        c.policy = c.policy.clone().heuristic_max(max);
        self
    }

    /// The clock the cache reads time from ([`SystemClock`] by default); tests use
    /// [`cachio_core::clock::ManualClock`].
    #[must_use]
    pub fn clock<C: Clock>(mut self, clock: C) -> Self {
        self.config_mut().clock = Arc::new(clock);
        self
    }

    /// Private or shared.
    pub fn mode(&self) -> Mode {
        self.config.policy.mode()
    }
}

impl<S, St: Clone> Layer<S> for CacheLayer<St> {
    type Service = Cache<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        Cache {
            inner,
            store: self.store.clone(),
            config: self.config.clone(),
        }
    }
}

impl<St> fmt::Debug for CacheLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("mode", &self.config.policy.mode())
            .field("cache_name", &self.config.cache_name)
            .field("max_object_size", &self.config.max_object_size)
            .finish_non_exhaustive()
    }
}
