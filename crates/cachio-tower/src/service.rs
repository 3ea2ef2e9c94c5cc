//! The cache service: it reads the request, and dispatches it to the phase that answers it.
//!
//! A fresh hit from a store that answers at once is served in [`Service::call`]; every other
//! request is one async function, [`handle`], which hands the request's state ([`Incoming`]) to
//! [`lookup`](crate::lookup), then [`serve`](crate::serve), [`coalesce`](crate::coalesce),
//! [`revalidate`](crate::revalidate) or [`capture`](crate::capture).

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use cachio_core::cache_control::CacheControl;
use cachio_core::meta::{Meta, VaryIndex};
use cachio_core::policy::status::{CacheStatus, Fwd};
use cachio_core::policy::{self, Verdict};
use cachio_core::store::{Store, StoreError};
use http::header::HeaderName;
use http::{Method, Request, Response, request};
use http_body::Body;
use tower_service::Service;

use crate::background::{Stale, spawn_revalidation};
use crate::body::{BoxError, ResponseBody};
use crate::capture::fetch_and_store;
use crate::coalesce::{self, Coalesced};
use crate::config::{Config, Ctx};
use crate::future::ResponseFuture;
use crate::invalidate::{self, forward_unsafe};
use crate::lookup::{Found, Lookup, Read, lookup};
use crate::mode::CacheMode;
use crate::revalidate::{reload_head, revalidate};
use crate::serve::{gateway_timeout, serve_fresh, serve_stored};
use crate::stats::Event;

/// The `Cache-Status` field name (RFC 9211).
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// A service that answers requests from a cache when it may, and otherwise calls the inner service
/// and stores what it may. Made by [`CacheLayer`](crate::CacheLayer).
///
/// # Example
///
/// ```
/// use cachio_moka::MokaStore;
/// use cachio_tower::{Cache, CacheLayer};
/// use tower::Layer;
///
/// let origin = tower::service_fn(|_req: http::Request<http_body_util::Empty<bytes::Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
/// });
/// let cache: Cache<_, MokaStore> = CacheLayer::private(MokaStore::new(1 << 20)).layer(origin);
/// ```
#[derive(Clone)]
pub struct Cache<S, St> {
    inner: S,
    /// The store and the configuration, behind one pointer: a clone of the service (one per
    /// request, often) counts one reference.
    cx: Arc<Ctx<St>>,
}

impl<S, St> Cache<S, St> {
    pub(crate) fn new(inner: S, cx: Ctx<St>) -> Self {
        Self {
            inner,
            cx: Arc::new(cx),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.cx.store
    }

    /// The counters of this cache (shared with the layer that made it and its clones).
    pub fn stats(&self) -> Arc<crate::CacheStats> {
        self.cx.config.stats.clone()
    }

    /// Removes the stored responses that `req` would be answered with, as
    /// [`CacheLayer::invalidate`](crate::CacheLayer::invalidate) does.
    ///
    /// # Errors
    ///
    /// When the store fails to remove them.
    pub async fn invalidate<B>(&self, req: &Request<B>) -> Result<(), StoreError>
    where
        St: Store,
    {
        let (parts, ()) = invalidate::request_parts(req);
        invalidate::invalidate(&self.cx.store, &self.cx.config, &parts).await
    }

    /// Removes every stored entry for which `matches(key, meta)` holds, as
    /// [`CacheLayer::purge`](crate::CacheLayer::purge) does.
    ///
    /// # Errors
    ///
    /// When the store fails, or cannot enumerate its entries.
    pub async fn purge<F>(&self, matches: F) -> Result<u64, StoreError>
    where
        St: Store,
        F: Fn(&str, &Meta) -> bool + Send + Sync + 'static,
    {
        invalidate::purge(&self.cx.store, &self.cx.config, matches).await
    }

    /// The inner service, consuming the cache.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug, St> fmt::Debug for Cache<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("inner", &self.inner)
            .field("sharing", &self.cx.config.policy.sharing())
            .field("cache_name", &self.cx.config.cache_name())
            .finish_non_exhaustive()
    }
}

impl<S, St, ReqB, ResB> Service<Request<ReqB>> for Cache<S, St>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Default + Send + 'static,
    ResB: OriginBody,
    St: Store,
{
    type Response = Response<ResponseBody<ResB, St>>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let mode = request_mode(&self.cx.config, &req);
        if mode != CacheMode::Default || !matches!(*req.method(), Method::GET | Method::HEAD) {
            let (cx, inner) = self.take();
            return ResponseFuture::boxed(Box::pin(handle(cx, inner, req)));
        }
        // A store that answers at once (memory) lets a fresh hit be served here, with no future
        // to allocate. The inner service is not called, so it stays ready for the next request.
        let (parts, body) = req.into_parts();
        let cc = policy::request_directives(&parts.headers);
        // Taken before the store is read: what the read finds is checked against the
        // invalidations made after it.
        let since = self.cx.config.invalidations.mark();
        let key = self.cx.config.key(&parts);
        let first = match self.cx.store.try_get(&key) {
            Some(Ok(Some(hit))) => match serve_fresh(&self.cx.config, &parts, &cc, hit) {
                Ok(res) => {
                    self.cx.config.fresh_hit();
                    return ResponseFuture::ready(Ok(res));
                }
                // Not a plain fresh hit: the usual path takes it from here with what the store
                // gave, so the store is not asked twice.
                Err(hit) => Some(Ok(Some(hit))),
            },
            read => read,
        };
        let (cx, inner) = self.take();
        cx.config.count(Event::Request);
        let req = Incoming {
            parts,
            mode,
            key,
            cc,
            since,
        };
        ResponseFuture::boxed(Box::pin(handle_key(cx, inner, (req, body), first)))
    }
}

impl<S: Clone, St: Clone> Cache<S, St> {
    /// The inner service that was made ready (a clone left behind) and what a request's future
    /// needs of the cache.
    fn take(&mut self) -> (Arc<Ctx<St>>, S) {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        (self.cx.clone(), inner)
    }
}

fn request_mode<B>(config: &Config, req: &Request<B>) -> CacheMode {
    req.extensions()
        .get::<CacheMode>()
        .copied()
        .unwrap_or(config.default_mode)
}

/// A `GET` or `HEAD` the cache may answer, as it goes from phase to phase: its head, its mode and
/// directives, the key it is stored under, and the invalidation mark taken before the store was
/// first read ([`Invalidations::mark`](crate::invalidate::Invalidations::mark)). Its body travels
/// beside it to the phase that forwards it: the phases read the request while they wait, and a
/// body need not be `Sync`.
pub(crate) struct Incoming {
    pub(crate) parts: request::Parts,
    pub(crate) mode: CacheMode,
    pub(crate) key: String,
    /// The request's `Cache-Control` directives.
    pub(crate) cc: CacheControl,
    pub(crate) since: u64,
}

impl Incoming {
    /// Whether the request must be answered without the origin (RFC 9111 §5.2.1.7).
    fn only_if_cached(&self) -> bool {
        self.mode == CacheMode::OnlyIfCached || self.cc.only_if_cached
    }
}

/// A response of the cache.
pub(crate) type Res<ResB, St> = Response<ResponseBody<ResB, St>>;

/// What the request paths need of the inner service: the bounds of `Cache`'s `Service` impl,
/// said once.
pub(crate) trait Origin<ReqB, ResB>:
    Service<Request<ReqB>, Response = Response<ResB>, Future: Send + 'static, Error: Send + 'static>
    + Send
    + 'static
{
}

impl<T, ReqB, ResB> Origin<ReqB, ResB> for T
where
    T: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
    T::Future: Send + 'static,
    T::Error: Send + 'static,
{
}

/// What the request paths need of the inner service's response bodies.
pub(crate) trait OriginBody:
    Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

impl<T> OriginBody for T
where
    T: Body<Data = Bytes> + Send + 'static,
    T::Error: Into<BoxError>,
{
}

/// A request the fast path of `call` does not take: another mode, another method.
async fn handle<S, St, ReqB, ResB>(
    cx: Arc<Ctx<St>>,
    inner: S,
    req: Request<ReqB>,
) -> Result<Res<ResB, St>, S::Error>
where
    S: Origin<ReqB, ResB> + Clone,
    ReqB: Default + Send + 'static,
    ResB: OriginBody,
    St: Store,
{
    let mode = request_mode(&cx.config, &req);
    cx.config.count(Event::Request);
    if mode == CacheMode::NoStore || !matches!(*req.method(), Method::GET | Method::HEAD) {
        cx.config.count(Event::Bypass);
    }
    match *req.method() {
        // An unsafe request invalidates what it changes (RFC 9111 §4.4) even when it bypasses the
        // cache: the stored responses serve later requests.
        ref m if !policy::is_safe(m) => {
            let fwd = if mode == CacheMode::NoStore {
                Fwd::Bypass
            } else {
                Fwd::Method
            };
            return Box::pin(forward_unsafe(&cx, inner, req, fwd)).await;
        }
        _ if mode == CacheMode::NoStore => {
            return Box::pin(forward(inner, req, cx.status(Fwd::Bypass))).await;
        }
        Method::GET | Method::HEAD => {}
        _ => return Box::pin(forward(inner, req, cx.status(Fwd::Method))).await,
    }

    let (parts, body) = req.into_parts();
    let req = Incoming {
        key: cx.config.key(&parts),
        cc: policy::request_directives(&parts.headers),
        since: cx.config.invalidations.mark(),
        parts,
        mode,
    };
    handle_key(cx, inner, (req, body), None).await
}

/// A `GET` or `HEAD` the cache may answer, from its key on; `first` is the store's answer when it
/// has been read already.
async fn handle_key<S, St, ReqB, ResB>(
    cx: Arc<Ctx<St>>,
    inner: S,
    (req, body): (Incoming, ReqB),
    first: Option<Read<St::Body>>,
) -> Result<Res<ResB, St>, S::Error>
where
    S: Origin<ReqB, ResB> + Clone,
    ReqB: Default + Send + 'static,
    ResB: OriginBody,
    St: Store,
{
    if req.mode == CacheMode::Reload {
        if req.only_if_cached() {
            return Ok(gateway_timeout(&cx));
        }
        cx.config.count(Event::Miss);
        if req.parts.method == Method::HEAD {
            return Box::pin(reload_head(&cx, inner, (req, body))).await;
        }
        let fetch = fetch_and_store(&cx, inner, (req, body), (Fwd::Request, None), None);
        return Box::pin(fetch).await;
    }

    // What the request needs from the origin, if anything.
    let next = match lookup(&cx, &req.key, &req.parts, first).await {
        Lookup::Found(found) => match use_stored(&cx, &req, found) {
            Use::Serve(res, None) => return Ok(res),
            Use::Serve(res, Some(stale)) => {
                spawn_revalidation(&cx, inner, &req, stale);
                return Ok(res);
            }
            Use::Validate(found) => Next::Revalidate(found),
        },
        // `uri-miss` whatever the request's directives: `request` says a fresh response was
        // there to refuse (RFC 9211 §2.2).
        Lookup::UriMiss => Next::Fetch(Fwd::UriMiss, None),
        Lookup::VaryMiss { index } => Next::Fetch(Fwd::VaryMiss, Some(index)),
    };
    if req.only_if_cached() {
        return Ok(gateway_timeout(&cx));
    }

    // Coalescing: one fetch per key at a time; the others wait for its stored result.
    let (next, guard) = match Box::pin(coalesce::coalesce(&cx, &req, next)).await {
        Coalesced::Served(res) => return Ok(res),
        Coalesced::Go(next, guard) => (next, guard),
    };
    match next {
        // The slow paths live in boxes of their own, so the future of every request (a hit's
        // included) stays small.
        Next::Revalidate(found) => {
            Box::pin(revalidate(&cx, inner, (req, body), found, guard)).await
        }
        Next::Fetch(fwd, index) => {
            cx.config.count(Event::Miss);
            Box::pin(fetch_and_store(
                &cx,
                inner,
                (req, body),
                (fwd, index),
                guard,
            ))
            .await
        }
    }
}

/// What a request does with the stored response its lookup found.
enum Use<ResB, St: Store> {
    /// Answer with it; and, when it is stale but may be served while revalidated (RFC 5861 §3),
    /// revalidate it in the background.
    Serve(Res<ResB, St>, Option<Stale>),
    /// Validate it with the origin first.
    Validate(Found<St::Body>),
}

/// Serves `found` if the request may use it as it is (RFC 9111 §4.2).
fn use_stored<ResB, St: Store>(
    cx: &Ctx<St>,
    req: &Incoming,
    found: Found<St::Body>,
) -> Use<ResB, St> {
    let eval = cx
        .config
        .policy
        .evaluate(&req.cc, found.response(), found.at);
    if !servable(req.mode, eval.verdict) {
        return Use::Validate(found);
    }
    // `only-if-cached` never goes to the origin, not even in the background.
    let background = eval.verdict == Verdict::StaleWhileRevalidate
        && req.mode == CacheMode::Default
        && !req.only_if_cached();
    cx.config.count(Event::Hit);
    if eval.verdict != Verdict::Fresh && eval.lifetime <= eval.age {
        cx.config.count(Event::Stale);
    }
    let status = cx.config.hit_status(eval.ttl_secs());
    let Found {
        meta,
        body,
        variant_key,
        index,
        ..
    } = found;
    let stored = meta.as_response().expect("lookup only finds responses");
    let res = serve_stored(&req.parts, stored, eval.age, body, status);
    let stale = background.then(|| Stale {
        store_key: variant_key.unwrap_or_else(|| req.key.clone()),
        meta,
        index,
    });
    Use::Serve(res, stale)
}

/// What a request needs from the origin.
pub(crate) enum Next<B> {
    /// A stored response to validate.
    Revalidate(Found<B>),
    /// Nothing usable stored.
    Fetch(Fwd, Option<VaryIndex>),
}

/// Whether a stored response with `verdict` may answer a request in `mode` without the origin.
pub(crate) fn servable(mode: CacheMode, verdict: Verdict) -> bool {
    match mode {
        CacheMode::ForceCache | CacheMode::OnlyIfCached => true,
        CacheMode::NoCache => false,
        _ => matches!(
            verdict,
            Verdict::Fresh | Verdict::StaleAllowed | Verdict::StaleWhileRevalidate
        ),
    }
}

/// Passes a request on untouched and marks the response.
async fn forward<S, St, ReqB, ResB>(
    mut inner: S,
    req: Request<ReqB>,
    status: CacheStatus,
) -> Result<Res<ResB, St>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body<Data = Bytes>,
    St: Store,
{
    let res = inner.call(req).await?;
    let status = status.fwd_status(res.status().as_u16());
    let (mut head, body) = res.into_parts();
    head.headers.append(CACHE_STATUS, status.to_header_value());
    Ok(Response::from_parts(head, ResponseBody::passthrough(body)))
}
