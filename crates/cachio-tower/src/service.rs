use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cachio_core::cache_control::CacheControl;
use cachio_core::key::{primary_key, variant_hash, variant_key, write_primary_key};
use cachio_core::meta::{Meta, ResponseMeta, VaryIndex};
use cachio_core::policy::status::{CacheStatus, Fwd};
use cachio_core::policy::{self, Verdict, vary};
use cachio_core::range;
use cachio_core::store::{Hit, Store, StoreError};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, request};
use http_body::Body;
use tower_service::Service;

use crate::body::{BoxError, Capture, CommitFuture, ResponseBody, commit_entry};
use crate::coalesce::{self, FlightGuard, Join, Outcome};
use crate::future::ResponseFuture;
use crate::layer::{CacheLayer, Config};
use crate::memo;
use crate::mode::CacheMode;
use crate::outcome::{Signal, StoreOutcome};
use crate::stats::Event;

/// The `Cache-Status` field name (RFC 9211).
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// A service that answers requests from a cache when it may, and otherwise calls the inner service
/// and stores what it may. Made by [`CacheLayer`].
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
    pub(crate) inner: S,
    /// The store and the configuration, behind one pointer: a clone of the service (one per
    /// request, often) counts one reference.
    pub(crate) cx: Arc<Ctx<St>>,
}

impl<S, St> Cache<S, St> {
    /// A layer for this service.
    pub fn layer(store: St) -> CacheLayer<St> {
        CacheLayer::private(store)
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

    /// Removes the stored responses that `req` would be answered with, as [`CacheLayer::invalidate`]
    /// does.
    ///
    /// # Errors
    ///
    /// When the store fails to remove them.
    pub async fn invalidate<B>(&self, req: &Request<B>) -> Result<(), StoreError>
    where
        St: Store,
    {
        let (parts, ()) = request_parts(req);
        invalidate(&self.cx.store, &self.cx.config, &parts).await
    }

    /// Removes every stored entry for which `matches(key, meta)` holds, as
    /// [`CacheLayer::purge`] does.
    ///
    /// # Errors
    ///
    /// When the store fails, or cannot enumerate its entries.
    pub async fn purge<F>(&self, matches: F) -> Result<u64, StoreError>
    where
        St: Store,
        F: Fn(&str, &Meta) -> bool + Send + Sync + 'static,
    {
        purge(&self.cx.store, &self.cx.config, matches).await
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
        let mode = request_mode(&req);
        if mode != CacheMode::Default || !matches!(*req.method(), Method::GET | Method::HEAD) {
            let (cx, inner) = self.take();
            return ResponseFuture::boxed(Box::pin(handle(cx, inner, req)));
        }
        // A store that answers at once (memory) lets a fresh hit be served here, with no future
        // to allocate. The inner service is not called, so it stays ready for the next request.
        let (parts, body) = req.into_parts();
        let req_cc = policy::request_directives(&parts.headers);
        // Taken before the store is read: what the read finds is checked against the
        // invalidations made after it.
        let since = self.cx.config.flights.mark();
        // A user's key is made once. The default key is written in a buffer for the read, and
        // made again, owned, only when the request goes on past a fresh hit.
        let (user_key, read) = match &self.cx.config.key_fn {
            Some(f) => {
                let key = f(&parts);
                let read = self.cx.store.try_get(&key);
                (Some(key), read)
            }
            None => (
                None,
                with_primary_key(&parts, |key| self.cx.store.try_get(key)),
            ),
        };
        let first = match read {
            Some(Ok(Some(hit))) => match serve_fresh(&self.cx.config, &parts, &req_cc, hit) {
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
        let key = user_key.unwrap_or_else(|| primary_key(&parts));
        let (cx, inner) = self.take();
        cx.config.count(Event::Request);
        ResponseFuture::boxed(Box::pin(handle_key(
            cx, inner, parts, body, mode, key, req_cc, first, since,
        )))
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

/// The head of `req`, without its extensions (which need not be `Clone`).
pub(crate) fn request_parts<B>(req: &Request<B>) -> (request::Parts, ()) {
    let mut head = Request::new(());
    *head.method_mut() = req.method().clone();
    *head.uri_mut() = req.uri().clone();
    *head.version_mut() = req.version();
    *head.headers_mut() = req.headers().clone();
    head.into_parts()
}

fn request_mode<B>(req: &Request<B>) -> CacheMode {
    req.extensions()
        .get::<CacheMode>()
        .copied()
        .unwrap_or_default()
}

fn request_key(config: &Config, parts: &request::Parts) -> String {
    match &config.key_fn {
        Some(f) => f(parts),
        None => primary_key(parts),
    }
}

/// A store read, as `get` gives it.
type Read<B> = Result<Option<Hit<B>>, StoreError>;

/// Runs `f` with the primary key of `parts`, written in a buffer this thread reuses (a new one
/// when that is in use).
fn with_primary_key<R>(parts: &request::Parts, f: impl FnOnce(&str) -> R) -> R {
    thread_local! {
        static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    KEY.with(|cell| {
        let mut own = String::new();
        let mut shared = cell.try_borrow_mut();
        let buf = match &mut shared {
            Ok(buf) => &mut **buf,
            Err(_) => &mut own,
        };
        buf.clear();
        write_primary_key(parts, buf);
        let out = f(buf);
        // A very long URI does not keep its buffer.
        if buf.capacity() > 4096 {
            *buf = String::new();
        }
        out
    })
}

/// Serves `hit` if it is a response that is fresh for this request (in the default mode), as the
/// usual path would; otherwise gives it back.
#[inline]
fn serve_fresh<ResB, St: Store>(
    config: &Config,
    parts: &request::Parts,
    req_cc: &CacheControl,
    hit: Hit<St::Body>,
) -> Result<Res<ResB, St>, Hit<St::Body>> {
    let Hit { meta, body } = hit;
    let Meta::Response(stored) = &*meta else {
        return Err(Hit { meta, body });
    };
    let now = config.clock.now();
    // What `evaluate` reads of the request: without any, a hit at the same reading of the clock
    // is fresh for the same reasons (see `memo`).
    let plain = req_cc.max_age.is_none()
        && req_cc.min_fresh.is_none()
        && req_cc.max_stale.is_none()
        && !req_cc.no_cache;
    if plain && let Some((age, status)) = memo::get(config.id, &meta, now) {
        return Ok(serve_built(parts, stored, age, body, status));
    }
    let eval = config.policy.evaluate(req_cc, stored, now);
    if eval.verdict != Verdict::Fresh {
        return Err(Hit { meta, body });
    }
    let status = config.hit_status.get(eval.ttl_secs());
    let age = policy::age_value(eval.age);
    if plain {
        memo::put(config.id, &meta, now, &age, &status);
    }
    Ok(serve_built(parts, stored, age, body, status))
}

/// What a request's handling needs of the cache: the store and the configuration.
pub(crate) struct Ctx<St> {
    pub(crate) store: St,
    pub(crate) config: Arc<Config>,
}

impl<St: Store> Ctx<St> {
    fn key(&self, parts: &request::Parts) -> String {
        request_key(&self.config, parts)
    }

    fn now(&self) -> SystemTime {
        self.config.clock.now()
    }

    fn status(&self, fwd: Fwd) -> CacheStatus {
        CacheStatus::forward(self.config.cache_name(), fwd)
    }
}

/// The outcome of looking a request up.
enum Lookup<B> {
    Found {
        meta: Arc<Meta>,
        body: B,
        /// The variant key the response is stored under, for a resource that varies (`None`: the
        /// primary key).
        variant_key: Option<String>,
        index: Option<VaryIndex>,
    },
    UriMiss,
    VaryMiss {
        index: VaryIndex,
    },
}

/// Looks `key` up, starting from `first` when the store has been read already.
async fn lookup<St: Store>(
    cx: &Ctx<St>,
    key: &str,
    headers: &http::HeaderMap,
    first: Option<Read<St::Body>>,
) -> Lookup<St::Body> {
    let store = &cx.store;
    let read = match first {
        Some(read) => read,
        None => store.get(key).await,
    };
    let hit = match read {
        Ok(Some(hit)) => hit,
        Ok(None) => return Lookup::UriMiss,
        Err(e) => {
            cx.config.count(Event::StoreError);
            tracing::warn!(key, error = %e, "cache store read failed; treated as a miss");
            return Lookup::UriMiss;
        }
    };
    match &*hit.meta {
        Meta::Response(_) => Lookup::Found {
            meta: hit.meta,
            body: hit.body,
            variant_key: None,
            index: None,
        },
        Meta::Variants(index) => {
            let index = index.clone();
            drop(hit);
            let values = vary::request_values(headers, &index.names);
            let vkey = variant_key(key, index.epoch, &values);
            // Boxed: a resource that varies is the rarer case, and the future of every lookup
            // would otherwise be as large as two store reads.
            match Box::pin(store.get(&vkey)).await {
                Ok(Some(Hit { meta, body })) => match &*meta {
                    Meta::Response(r) if r.vary_values() == values.as_slice() => Lookup::Found {
                        meta,
                        body,
                        variant_key: Some(vkey),
                        index: Some(index),
                    },
                    _ => Lookup::VaryMiss { index },
                },
                Ok(None) => Lookup::VaryMiss { index },
                Err(e) => {
                    cx.config.count(Event::StoreError);
                    tracing::warn!(key = vkey, error = %e, "cache store read failed; treated as a miss");
                    Lookup::VaryMiss { index }
                }
            }
        }
    }
}

type Res<ResB, St> = Response<ResponseBody<ResB, St>>;

/// What the request paths need of the inner service: the bounds of `Cache`'s `Service` impl,
/// said once.
trait Origin<ReqB, ResB>:
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
trait OriginBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

impl<T> OriginBody for T
where
    T: Body<Data = Bytes> + Send + 'static,
    T::Error: Into<BoxError>,
{
}

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
    let mode = request_mode(&req);
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
    let key = cx.key(&parts);
    let req_cc = policy::request_directives(&parts.headers);
    let since = cx.config.flights.mark();
    handle_key(cx, inner, parts, body, mode, key, req_cc, None, since).await
}

/// A `GET` or `HEAD` the cache may answer, from its key on; `first` is the store's answer when it
/// has been read already.
#[expect(
    clippy::too_many_arguments,
    reason = "the exchange's state, passed along once"
)]
async fn handle_key<S, St, ReqB, ResB>(
    cx: Arc<Ctx<St>>,
    inner: S,
    parts: request::Parts,
    body: ReqB,
    mode: CacheMode,
    key: String,
    req_cc: CacheControl,
    first: Option<Read<St::Body>>,
    since: u64,
) -> Result<Res<ResB, St>, S::Error>
where
    S: Origin<ReqB, ResB> + Clone,
    ReqB: Default + Send + 'static,
    ResB: OriginBody,
    St: Store,
{
    let only_if_cached = mode == CacheMode::OnlyIfCached || req_cc.only_if_cached;

    if mode == CacheMode::Reload {
        if only_if_cached {
            return Ok(gateway_timeout(&cx));
        }
        cx.config.count(Event::Miss);
        if parts.method == Method::HEAD {
            return Box::pin(reload_head(&cx, inner, parts, body, &key)).await;
        }
        return Box::pin(fetch_and_store(
            &cx,
            inner,
            parts,
            body,
            &key,
            Fwd::Request,
            None,
            None,
            since,
        ))
        .await;
    }

    // What the request needs from the origin, if anything.
    let next = match lookup(&cx, &key, &parts.headers, first).await {
        Lookup::Found {
            meta,
            body: stored_body,
            variant_key,
            index,
        } => {
            let store_key = variant_key.as_deref().unwrap_or(&key);
            let Meta::Response(stored) = &*meta else {
                unreachable!("lookup only finds responses")
            };
            let now = cx.now();
            let eval = cx.config.policy.evaluate(&req_cc, stored, now);
            if servable(mode, eval.verdict) {
                // `only-if-cached` never goes to the origin, not even in the background.
                if eval.verdict == Verdict::StaleWhileRevalidate
                    && mode == CacheMode::Default
                    && !only_if_cached
                {
                    let stored = (store_key, meta.clone(), index);
                    spawn_revalidation(&cx, inner, &parts, &key, stored, since);
                }
                cx.config.count(Event::Hit);
                if eval.verdict != Verdict::Fresh && eval.lifetime <= eval.age {
                    cx.config.count(Event::Stale);
                }
                let status = cx.config.hit_status.get(eval.ttl_secs());
                return Ok(serve_stored(&parts, stored, eval.age, stored_body, status));
            }
            if only_if_cached {
                return Ok(gateway_timeout(&cx));
            }
            Next::Revalidate(Found {
                store_key: store_key.to_owned(),
                meta: meta.clone(),
                body: stored_body,
                index,
                at: now,
            })
        }
        // `uri-miss` whatever the request's directives: `request` says a fresh response was
        // there to refuse (RFC 9211 §2.2).
        Lookup::UriMiss => Next::Fetch(Fwd::UriMiss, None),
        Lookup::VaryMiss { index } => Next::Fetch(Fwd::VaryMiss, Some(index)),
    };
    if only_if_cached {
        return Ok(gateway_timeout(&cx));
    }

    // Coalescing: one fetch per key at a time; the others wait for its stored result.
    let mut next = next;
    let mut guard = None;
    if coalescable(&cx, mode, &parts, &req_cc) && !cx.config.flights.is_pass(&key) {
        // A `Range` request waits for a whole fetch in flight (and is then answered from what it
        // stored), but does not lead one: its own answer is a part, which cannot be stored.
        let join = if parts.headers.contains_key(header::RANGE) {
            cx.config.flights.waiter(&key).map(Join::Waiter)
        } else {
            Some(cx.config.flights.join(&key))
        };
        match join {
            None => {}
            Some(Join::Leader(g)) => guard = Some(g),
            Some(Join::Waiter(rx)) => {
                let fwd = match &next {
                    Next::Revalidate(_) => Fwd::Stale,
                    Next::Fetch(fwd, _) => *fwd,
                };
                let waited = wait_for_flight(&cx, rx, &key, &parts, &req_cc, mode, fwd);
                match Box::pin(waited).await {
                    AfterWait::Serve(res) => return Ok(res),
                    // What the other request stored cannot be used as it is (stale already, or
                    // the request asks for validation): validate it, and with it the stale
                    // serving rules (stale-if-error, grace) apply.
                    AfterWait::Revalidate(found) => next = Next::Revalidate(found),
                    // Not storable, failed, timed out, or another variant: go to the origin
                    // without waiting again.
                    AfterWait::Proceed => {}
                }
            }
        }
    }

    match next {
        // The slow paths live in boxes of their own, so the future of every request (a hit's
        // included) stays small.
        Next::Revalidate(found) => {
            Box::pin(revalidate(
                &cx, inner, parts, body, &key, found, &req_cc, guard, since,
            ))
            .await
        }
        Next::Fetch(fwd, index) => {
            cx.config.count(Event::Miss);
            Box::pin(fetch_and_store(
                &cx, inner, parts, body, &key, fwd, index, guard, since,
            ))
            .await
        }
    }
}

/// What a request that waited for another's fetch does next.
enum AfterWait<ResB, St: Store> {
    /// Answer with this (the stored result serves the request).
    Serve(Res<ResB, St>),
    /// A stored response is there but needs validation first (it went stale meanwhile, say).
    Revalidate(Found<St::Body>),
    /// Go to the origin as planned.
    Proceed,
}

/// Waits for another request's fetch of `key` and answers from what it stored, if that serves
/// this request.
async fn wait_for_flight<St: Store, ResB>(
    cx: &Ctx<St>,
    rx: tokio::sync::watch::Receiver<Outcome>,
    key: &str,
    parts: &request::Parts,
    req_cc: &CacheControl,
    mode: CacheMode,
    fwd: Fwd,
) -> AfterWait<ResB, St> {
    cx.config.count(Event::Coalesced);
    let Outcome::Stored(code) = coalesce::wait(rx, cx.config.coalesce_timeout).await else {
        return AfterWait::Proceed;
    };
    let Lookup::Found {
        meta,
        body: stored_body,
        variant_key,
        index,
    } = lookup(cx, key, &parts.headers, None).await
    else {
        return AfterWait::Proceed;
    };
    let Some(stored) = meta.as_response() else {
        return AfterWait::Proceed;
    };
    let now = cx.now();
    let eval = cx.config.policy.evaluate(req_cc, stored, now);
    if !servable(mode, eval.verdict) {
        return AfterWait::Revalidate(Found {
            store_key: variant_key.unwrap_or_else(|| key.to_owned()),
            meta: meta.clone(),
            body: stored_body,
            index,
            at: now,
        });
    }
    let status = cx
        .status(fwd)
        .fwd_status(code)
        .collapsed(true)
        .ttl(eval.ttl_secs());
    AfterWait::Serve(serve_stored(
        parts,
        stored,
        eval.age,
        stored_body,
        status.to_header_value(),
    ))
}

/// What a request needs from the origin.
enum Next<B> {
    /// A stored response to validate.
    Revalidate(Found<B>),
    /// Nothing usable stored.
    Fetch(Fwd, Option<VaryIndex>),
}

/// Whether a stored response with `verdict` may answer a request in `mode` without the origin.
fn servable(mode: CacheMode, verdict: Verdict) -> bool {
    match mode {
        CacheMode::ForceCache | CacheMode::OnlyIfCached => true,
        CacheMode::NoCache => false,
        _ => matches!(
            verdict,
            Verdict::Fresh | Verdict::StaleAllowed | Verdict::StaleWhileRevalidate
        ),
    }
}

/// Whether a request may share another's fetch: a plain `GET` whose response could be stored for
/// everyone asking (no `no-store`, and in a shared cache no credentials of its own).
fn coalescable<St: Store>(
    cx: &Ctx<St>,
    mode: CacheMode,
    parts: &request::Parts,
    req_cc: &CacheControl,
) -> bool {
    cx.config.coalesce
        && parts.method == Method::GET
        && matches!(mode, CacheMode::Default | CacheMode::ForceCache)
        && !req_cc.no_store
        && !req_cc.no_cache
        && !(cx.config.policy.sharing() == cachio_core::Sharing::Shared
            && parts.headers.contains_key(header::AUTHORIZATION))
}

/// A stored response that needs validation before use.
struct Found<B> {
    meta: Arc<Meta>,
    body: B,
    store_key: String,
    index: Option<VaryIndex>,
    /// When it was looked up.
    at: SystemTime,
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

/// Passes an unsafe request on and invalidates what its response invalidates (RFC 9111 §4.4).
async fn forward_unsafe<S, St, ReqB, ResB>(
    cx: &Ctx<St>,
    mut inner: S,
    req: Request<ReqB>,
    fwd: Fwd,
) -> Result<Res<ResB, St>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body<Data = Bytes>,
    St: Store,
{
    let method = req.method().clone();
    let target = absolute_uri(req.uri(), req.headers());
    let res = inner.call(req).await?;
    if policy::invalidates(&method, res.status())
        && let Some(target) = target
    {
        for uri in policy::invalidation_uris(&target, res.headers()) {
            let (parts, ()) = Request::get(uri)
                .body(())
                .map(Request::into_parts)
                .unwrap_or_else(|_| Request::new(()).into_parts());
            let _ = invalidate(&cx.store, &cx.config, &parts).await;
        }
    }
    let status = cx.status(fwd).fwd_status(res.status().as_u16());
    let (mut head, body) = res.into_parts();
    head.headers.append(CACHE_STATUS, status.to_header_value());
    Ok(Response::from_parts(head, ResponseBody::passthrough(body)))
}

/// Removes the stored responses the request `parts` would be answered with: its primary key,
/// which makes every `Vary` variant unreachable too (RFC 9111 §4.4).
pub(crate) async fn invalidate<St: Store>(
    store: &St,
    config: &Config,
    parts: &request::Parts,
) -> Result<(), StoreError> {
    let key = request_key(config, parts);
    config.count(Event::Invalidation);
    // Not while a fetch of the key commits: one that checked for invalidations before this one
    // would land after the removal, visible until it looks again.
    let _writing = config.flights.write_lock(&key).await;
    // Noted before the entry goes, so a fetch that commits after the removal sees it even if
    // this request is dropped during the removal.
    config.flights.invalidate(&key);
    let removed = store.delete(&key).await.inspect_err(|e| {
        config.count(Event::StoreError);
        tracing::warn!(key, error = %e, "cache invalidation failed");
    });
    // And noted again once it has gone: a request that took its mark after the first note may
    // still have read the entry before the removal reached it (a variant index, say, which it
    // would write back with its own variant, and with it every variant of before the change).
    config.flights.invalidate(&key);
    removed
}

/// Removes every stored entry for which `matches(key, meta)` holds, in order with the fetches
/// in flight, as [`invalidate`] does for one key: none begun before it is stored after it.
pub(crate) async fn purge<St, F>(store: &St, config: &Config, matches: F) -> Result<u64, StoreError>
where
    St: Store,
    F: Fn(&str, &Meta) -> bool + Send + Sync + 'static,
{
    // The keys are known only to the store: every commit waits, and every fetch begun before
    // counts as invalidated, whatever its key. Noted before and after the removal, as one key is.
    let _writing = config.flights.write_lock_all().await;
    config.flights.invalidate_all();
    let purged = store.purge(matches).await.inspect_err(|e| {
        if e.kind() != cachio_core::store::ErrorKind::Unsupported {
            config.count(Event::StoreError);
            tracing::warn!(error = %e, "cache purge failed");
        }
    });
    config.flights.invalidate_all();
    purged
}

/// The target URI in absolute form: the request's own, or built from `Host`.
fn absolute_uri(uri: &http::Uri, headers: &http::HeaderMap) -> Option<http::Uri> {
    if uri.scheme().is_some() && uri.authority().is_some() {
        return Some(uri.clone());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("http://{host}{path}").parse().ok()
}

/// Builds a response from a stored one (RFC 9111 §4): the stored header fields, a current `Age`
/// (§5.1), and `Cache-Status`; a `304` when the client's own condition holds (§4.3.2); no body
/// for `HEAD`.
#[inline]
fn serve_stored<ResB, St: Store>(
    parts: &request::Parts,
    stored: &ResponseMeta,
    age: Duration,
    body: St::Body,
    status: HeaderValue,
) -> Res<ResB, St> {
    serve_built(parts, stored, policy::age_value(age), body, status)
}

/// [`serve_stored`] with the `Age` value made.
#[inline]
fn serve_built<ResB, St: Store>(
    parts: &request::Parts,
    stored: &ResponseMeta,
    age: HeaderValue,
    body: St::Body,
    status: HeaderValue,
) -> Res<ResB, St> {
    let fields = &parts.headers;
    let conditional = !fields.is_empty()
        && (fields.contains_key(header::IF_NONE_MATCH)
            || fields.contains_key(header::IF_MODIFIED_SINCE));
    // The usual hit: the whole stored response, built in place.
    if !conditional
        && parts.method != Method::HEAD
        && (fields.is_empty() || !fields.contains_key(header::RANGE))
    {
        let mut res = Response::new(ResponseBody::cached(body));
        *res.status_mut() = stored.status();
        *res.version_mut() = stored.version();
        let empty = std::mem::replace(res.headers_mut(), stored.hit_headers(age, status));
        // A new response's map holds no allocation (no capacity): nothing to free, and its drop
        // costs as much as the rest of the response's assembly.
        if empty.capacity() == 0 {
            std::mem::forget(empty);
        }
        return res;
    }
    let (code, headers, body) = if conditional
        && stored.status() == StatusCode::OK
        && policy::client_not_modified(&parts.headers, stored)
    {
        let mut headers = policy::not_modified_headers(&stored.fields().to_header_map(0));
        headers.insert(header::AGE, age);
        headers.append(CACHE_STATUS, status);
        (StatusCode::NOT_MODIFIED, headers, ResponseBody::empty())
    } else if parts.method == Method::HEAD {
        (
            stored.status(),
            stored.hit_headers(age, status),
            ResponseBody::empty(),
        )
    } else {
        ranged(
            parts,
            stored.status(),
            stored.hit_headers(age, status),
            body,
        )
    };
    let mut res = Response::new(body);
    *res.status_mut() = code;
    *res.version_mut() = stored.version();
    *res.headers_mut() = headers;
    res
}

/// The `Content-Length` a message declares, when it is a number.
fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A stored `200` for a `GET` with `Range` (RFC 9110 §14): a `206` with the one range asked for,
/// streamed from the stored body, or a `416` when it starts past the end; the whole response
/// otherwise (several ranges, a failed `If-Range`, an unknown length), as §14.2 allows.
fn ranged<ResB, St: Store>(
    parts: &request::Parts,
    status: StatusCode,
    mut headers: http::HeaderMap,
    body: St::Body,
) -> (StatusCode, http::HeaderMap, ResponseBody<ResB, St>) {
    if status != StatusCode::OK || !parts.headers.contains_key(header::RANGE) {
        return (status, headers, ResponseBody::cached(body));
    }
    let len = body
        .size_hint()
        .exact()
        .or_else(|| content_length(&headers));
    let Some(len) = len else {
        return (status, headers, ResponseBody::cached(body));
    };
    let answer = range::answer(&parts.method, &parts.headers, &headers, Some(len));
    let Some(content_range) = range::content_range(answer, len) else {
        return (status, headers, ResponseBody::cached(body));
    };
    if let range::Answer::Part { start, end } = answer {
        let n = end - start + 1;
        headers.insert(header::CONTENT_RANGE, content_range);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        return (
            StatusCode::PARTIAL_CONTENT,
            headers,
            ResponseBody::ranged(body, start, n),
        );
    }
    // Past the end: a 416 that says how long the representation is (§15.5.17), with the hit's
    // `Age` and `Cache-Status`.
    let mut h = http::HeaderMap::with_capacity(4);
    h.insert(header::CONTENT_RANGE, content_range);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    for name in [header::AGE, CACHE_STATUS] {
        if let Some(v) = headers.remove(&name) {
            h.insert(name, v);
        }
    }
    (StatusCode::RANGE_NOT_SATISFIABLE, h, ResponseBody::empty())
}

/// `504 Gateway Timeout` for `only-if-cached` with nothing usable stored (RFC 9111 §5.2.1.7).
fn gateway_timeout<ResB, St: Store>(cx: &Ctx<St>) -> Res<ResB, St> {
    let status =
        CacheStatus::forward(cx.config.cache_name(), Fwd::UriMiss).detail("only-if-cached");
    let mut res = Response::new(ResponseBody::empty());
    *res.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    res.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    // The request was not forwarded: say so with a detail rather than a fwd-status.
    res.headers_mut().append(CACHE_STATUS, strip_fwd(status));
    res
}

fn strip_fwd(status: CacheStatus) -> HeaderValue {
    let v = status.to_header_value();
    let s = v.to_str().unwrap_or_default().replace("; fwd=uri-miss", "");
    HeaderValue::from_str(&s).unwrap_or(v)
}

/// Validates a stored response with the origin (RFC 9111 §4.3) and answers from the result.
#[expect(
    clippy::too_many_arguments,
    reason = "the exchange's state, passed along once"
)]
async fn revalidate<S, St, ReqB, ResB>(
    cx: &Ctx<St>,
    mut inner: S,
    parts: request::Parts,
    body: ReqB,
    key: &str,
    found: Found<St::Body>,
    req_cc: &CacheControl,
    guard: Option<FlightGuard>,
    since: u64,
) -> Result<Res<ResB, St>, S::Error>
where
    S: Origin<ReqB, ResB> + Clone,
    ReqB: Default + Send + 'static,
    ResB: OriginBody,
    St: Store,
{
    let Found {
        meta,
        body: stored_body,
        store_key,
        index,
        at,
    } = found;
    let stored = meta.as_response().expect("found entries are responses");
    // RFC 9211 §2.2: `request` when the stored response was fresh but the request (its
    // directives or its cache mode) did not allow its use; `stale` when the response itself needs
    // validation (it is stale, or marked `no-cache`).
    let usable = cx
        .config
        .policy
        .evaluate(&CacheControl::default(), stored, at)
        .verdict;
    let fwd = if usable == Verdict::Fresh {
        Fwd::Request
    } else {
        Fwd::Stale
    };
    let fwd_parts = validation_parts(&parts, stored, false);
    let head_through = fwd_parts.method == Method::HEAD;
    cx.config.count(Event::Revalidation);
    let request_time = cx.now();
    let result = inner.call(Request::from_parts(fwd_parts, body)).await;
    let response_time = cx.now();
    let res = match result {
        Ok(res) => res,
        Err(e) => {
            if cx
                .config
                .policy
                .stale_if_error(req_cc, stored, response_time)
            {
                let stale = (stored, stored_body);
                return Ok(serve_if_error(
                    cx,
                    &parts,
                    req_cc,
                    stale,
                    None,
                    response_time,
                ));
            }
            return Err(e);
        }
    };
    let code = res.status();
    if code == StatusCode::NOT_MODIFIED {
        let merged = apply_not_modified(
            cx,
            &meta,
            &parts.headers,
            res.headers(),
            &store_key,
            request_time,
            response_time,
        )
        .await;
        if let Some(merged) = merged {
            if let Some(g) = guard {
                g.finish(Outcome::Stored(304));
            }
            let status = (fwd, 304);
            return Ok(serve_updated(
                cx,
                &parts,
                &merged,
                stored_body,
                status,
                response_time,
            ));
        }
        // The 304 is not for the stored response (§4.3.4): fetch it whole, without our conditions.
        drop(res);
        let mut retry = parts.clone();
        if parts.method == Method::HEAD {
            retry.method = Method::GET;
        }
        let mut svc = inner.clone();
        let res = ready_call(&mut svc, Request::from_parts(retry, ReqB::default())).await?;
        let ex = Exchange {
            parts,
            key,
            fwd,
            index,
            request_time,
            since,
            response_time: cx.now(),
            guard,
            replaces: Some(&store_key),
        };
        return answer_full(cx, ex, res).await;
    }
    if code.is_server_error()
        && cx
            .config
            .policy
            .stale_if_error(req_cc, stored, response_time)
    {
        drop(res);
        let stale = (stored, stored_body);
        let code = Some(code.as_u16());
        return Ok(serve_if_error(
            cx,
            &parts,
            req_cc,
            stale,
            code,
            response_time,
        ));
    }
    if head_through && code == StatusCode::OK {
        let merged = apply_head(
            cx,
            (&meta, stored_length(stored, &stored_body)),
            &store_key,
            &parts.headers,
            res.headers(),
            (request_time, response_time),
        )
        .await;
        // (A HEAD leads no flight: only GETs are coalesced, so there is no guard to finish.)
        if let Some(merged) = merged {
            let status = (fwd, 200);
            return Ok(serve_updated(
                cx,
                &parts,
                &merged,
                stored_body,
                status,
                response_time,
            ));
        }
    }
    let ex = Exchange {
        parts,
        key,
        fwd,
        index,
        request_time,
        since,
        response_time,
        guard,
        // (A HEAD's 200 that did not freshen the stored response has removed it already.)
        replaces: (!(head_through && code == StatusCode::OK)).then_some(store_key.as_str()),
    };
    if head_through {
        // A `HEAD` response is passed on, and stores nothing.
        return store_response(cx, ex, res).await;
    }
    answer_full(cx, ex, res).await
}

/// Serves a stored response in place of an error from the origin (RFC 5861 §4): a 5xx with
/// status `code`, or no answer at all.
fn serve_if_error<ResB, St: Store>(
    cx: &Ctx<St>,
    parts: &request::Parts,
    req_cc: &CacheControl,
    (stored, body): (&ResponseMeta, St::Body),
    code: Option<u16>,
    now: SystemTime,
) -> Res<ResB, St> {
    let eval = cx.config.policy.evaluate(req_cc, stored, now);
    let mut status = cx.status(Fwd::Stale);
    if let Some(code) = code {
        status = status.fwd_status(code);
    }
    let status = status.ttl(eval.ttl_secs()).detail("stale-if-error");
    cx.config.count(Event::Stale);
    serve_stored(parts, stored, eval.age, body, status.to_header_value())
}

/// Serves a stored response just updated by the origin's answer (`fwd`, with status `code`) to
/// a validation: its fields, the stored body, and the lifetime the update gave it.
fn serve_updated<ResB, St: Store>(
    cx: &Ctx<St>,
    parts: &request::Parts,
    updated: &Meta,
    body: St::Body,
    (fwd, code): (Fwd, u16),
    now: SystemTime,
) -> Res<ResB, St> {
    let Meta::Response(m) = updated else {
        unreachable!("an update gives a response")
    };
    let eval = cx.config.policy.evaluate(&CacheControl::default(), m, now);
    let status = cx.status(fwd).fwd_status(code).ttl(eval.ttl_secs());
    serve_stored(parts, m, eval.age, body, status.to_header_value())
}

/// Updates the stored response `stored` (with its body's length) under `store_key` with a `200`
/// response to a `HEAD` the cache passed on, whose fields are `head` (RFC 9111 §4.3.5); or, when
/// that describes another representation, removes it. Returns the updated response.
async fn apply_head<St: Store>(
    cx: &Ctx<St>,
    (previous, stored_len): (&Meta, Option<u64>),
    store_key: &str,
    req_headers: &http::HeaderMap,
    head: &http::HeaderMap,
    (request_time, response_time): (SystemTime, SystemTime),
) -> Option<Arc<Meta>> {
    let stored = previous.as_response()?;
    let policy = &cx.config.policy;
    let Some(merged) = policy.merge_head(stored, head, stored_len, request_time, response_time)
    else {
        remove(cx, store_key).await;
        return None;
    };
    Some(
        write_update(
            cx,
            store_key,
            req_headers,
            (previous, merged),
            response_time,
        )
        .await,
    )
}

/// The length of a stored body: its `Content-Length`, or what the store says it holds.
fn stored_length<B: Body>(stored: &ResponseMeta, body: &B) -> Option<u64> {
    let declared = stored.fields().get_all(&header::CONTENT_LENGTH).next();
    match declared {
        Some(v) => std::str::from_utf8(v).ok()?.trim().parse().ok(),
        None => body.size_hint().exact(),
    }
}

/// Removes the entry under `store_key` (a store failure is counted and logged).
async fn remove<St: Store>(cx: &Ctx<St>, store_key: &str) {
    if let Err(e) = cx.store.delete(store_key).await {
        cx.config.count(Event::StoreError);
        tracing::warn!(key = store_key, error = %e, "removing a stored response failed");
    }
}

/// The request that validates a stored response (RFC 9111 §4.3.1): a `GET` carrying the stored
/// validators in place of the client's own conditionals, so that a changed response comes whole
/// and is stored. A background validation also drops `Range`: it refreshes the whole response.
///
/// A `HEAD` for a stored response without validators is passed on as a `HEAD` (§4.3.5): a
/// conditional `GET` is not possible, and the `HEAD` response freshens the stored one without its
/// content being sent again.
fn validation_parts(
    parts: &request::Parts,
    stored: &ResponseMeta,
    background: bool,
) -> request::Parts {
    let mut out = parts.clone();
    let conditionals = policy::conditional_headers(&stored.fields().to_header_map(0));
    if background || !conditionals.is_empty() || parts.method != Method::HEAD {
        out.method = Method::GET;
    }
    if !conditionals.is_empty() || background {
        for name in [
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_MATCH,
            header::IF_UNMODIFIED_SINCE,
            header::IF_RANGE,
        ] {
            out.headers.remove(name);
        }
    }
    if background {
        out.headers.remove(header::RANGE);
    }
    for (name, value) in conditionals {
        out.headers.insert(name, value);
    }
    out
}

/// Freshens a stored response with a 304 (RFC 9111 §4.3.4) and writes it back. `None` when the
/// 304 does not select the stored response.
///
/// The 304 answers the validation request, which carried this stored response's own validators
/// whenever it has any (`validation_parts`). A 304 that carries no validator at all (against RFC
/// 9110 §15.4.5, yet common) can then only be about this response, so it selects it, as if it
/// had repeated the stored validators; fetching the response again would cost the origin a
/// second request for what it has just said is unchanged. A 304 with a different validator still
/// selects nothing.
async fn apply_not_modified<St: Store>(
    cx: &Ctx<St>,
    previous: &Meta,
    req_headers: &http::HeaderMap,
    headers_304: &http::HeaderMap,
    store_key: &str,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Option<Arc<Meta>> {
    let stored = previous.as_response()?;
    let repeated;
    // Read from the packed fields: `stored.headers()` would build a map and keep it with the
    // stored head, outside any store's budget.
    let fields = stored.fields();
    let stored_has_validators =
        fields.contains(&header::ETAG) || fields.contains(&header::LAST_MODIFIED);
    let headers_304 = if stored_has_validators && !policy::has_validators(headers_304) {
        let mut h = headers_304.clone();
        for name in [header::ETAG, header::LAST_MODIFIED] {
            for value in fields.get_all(&name) {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    h.append(name.clone(), value);
                }
            }
        }
        repeated = h;
        &repeated
    } else {
        headers_304
    };
    let merged =
        cx.config
            .policy
            .merge_not_modified(stored, headers_304, request_time, response_time)?;
    cx.config.count(Event::NotModified);
    Some(
        write_update(
            cx,
            store_key,
            req_headers,
            (previous, merged),
            response_time,
        )
        .await,
    )
}

/// Writes a stored response updated by a newer response's fields (a 304, RFC 9111 §4.3.4; a
/// `HEAD` response, §4.3.5) back to the store, where it may still be stored, and gives it back
/// to serve.
///
/// The update is the stored response from now on, so the rules for storing a response apply to it
/// as to any (§3): one that the update made unstorable (`no-store`, `private` or a `Set-Cookie`
/// in a shared cache, say) is removed, not kept with those fields for every later request. The
/// request that brought the update gets it all the same: it is that request's own response. A
/// request that asks for nothing to be stored (`no-store`, §5.2.1.5) leaves the entry as it was.
///
/// The update is for the entry that was validated, `previous`: one written under the key since
/// then is left as it is ([`Store::update`]). (A removal takes whatever entry is there: removing
/// is always safe.)
async fn write_update<St: Store>(
    cx: &Ctx<St>,
    store_key: &str,
    req_headers: &http::HeaderMap,
    (previous, m): (&Meta, ResponseMeta),
    now: SystemTime,
) -> Arc<Meta> {
    if policy::request_directives(req_headers).no_store {
        return Arc::new(Meta::Response(m));
    }
    let ttl = retention(cx, &m, now);
    let fields = m.fields().to_header_map(0);
    let storable = cx
        .config
        .policy
        .storable(&Method::GET, req_headers, m.status(), &fields);
    let updated = Arc::new(Meta::Response(m));
    if let Err(why) = storable {
        tracing::debug!(
            key = store_key,
            reason = why.as_str(),
            "an update made the stored response unstorable: removed"
        );
        remove(cx, store_key).await;
        return updated;
    }
    if let Err(e) = cx
        .store
        .update(store_key, previous, updated.clone(), ttl)
        .await
    {
        cx.config.count(Event::StoreError);
        tracing::warn!(key = store_key, error = %e, "writing an updated stored response failed");
    }
    updated
}

/// Stores the full response a validation brought (RFC 9111 §4.3.3) and answers with it. A `HEAD`
/// was validated with a `GET`: it gets the head alone, and the body is read to the end on a task
/// of its own so that the `GET` response is stored.
async fn answer_full<St, ResB, E>(
    cx: &Ctx<St>,
    mut ex: Exchange<'_>,
    res: Response<ResB>,
) -> Result<Res<ResB, St>, E>
where
    ResB: OriginBody,
    St: Store,
{
    if ex.parts.method != Method::HEAD {
        return store_response(cx, ex, res).await;
    }
    ex.parts.method = Method::GET;
    let res = store_response(cx, ex, res).await?;
    let (head, body) = res.into_parts();
    if body.is_capturing() {
        tokio::spawn(drain(body));
    }
    Ok(Response::from_parts(head, ResponseBody::empty()))
}

/// Reads a body to its end (or its first error), dropping the data.
async fn drain<B: Body>(body: B) {
    let mut body = std::pin::pin!(body);
    while let Some(frame) = std::future::poll_fn(|c| body.as_mut().poll_frame(c)).await {
        if frame.is_err() {
            break;
        }
    }
}

async fn ready_call<S, R>(svc: &mut S, req: R) -> Result<S::Response, S::Error>
where
    S: Service<R>,
{
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
    svc.call(req).await
}

/// Forwards a request and stores its response if it may (RFC 9111 §3).
#[allow(clippy::too_many_arguments)]
async fn fetch_and_store<S, St, ReqB, ResB>(
    cx: &Ctx<St>,
    mut inner: S,
    parts: request::Parts,
    body: ReqB,
    key: &str,
    fwd: Fwd,
    index: Option<VaryIndex>,
    guard: Option<FlightGuard>,
    since: u64,
) -> Result<Res<ResB, St>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: OriginBody,
    St: Store,
{
    let request_time = cx.now();
    let res = inner.call(Request::from_parts(parts.clone(), body)).await?;
    let ex = Exchange {
        parts,
        key,
        fwd,
        index,
        request_time,
        since,
        response_time: cx.now(),
        guard,
        replaces: None,
    };
    store_response(cx, ex, res).await
}

/// A `HEAD` in [`CacheMode::Reload`]: passed on, and a `200` updates or invalidates the stored
/// `GET` response the request would have been answered with (RFC 9111 §4.3.5).
async fn reload_head<S, St, ReqB, ResB>(
    cx: &Ctx<St>,
    mut inner: S,
    parts: request::Parts,
    body: ReqB,
    key: &str,
) -> Result<Res<ResB, St>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: OriginBody,
    St: Store,
{
    let request_time = cx.now();
    let since = cx.config.flights.mark();
    let res = inner.call(Request::from_parts(parts.clone(), body)).await?;
    let response_time = cx.now();
    if res.status() == StatusCode::OK
        && let Lookup::Found {
            meta,
            body: stored_body,
            variant_key,
            ..
        } = lookup(cx, key, &parts.headers, None).await
        && let Meta::Response(stored) = &*meta
    {
        apply_head(
            cx,
            (&meta, stored_length(stored, &stored_body)),
            variant_key.as_deref().unwrap_or(key),
            &parts.headers,
            res.headers(),
            (request_time, response_time),
        )
        .await;
    }
    let ex = Exchange {
        parts,
        key,
        fwd: Fwd::Request,
        index: None,
        request_time,
        since,
        response_time,
        guard: None,
        replaces: None,
    };
    store_response(cx, ex, res).await
}

/// How long the store should keep a response (`None`: no limit of ours).
fn retention<St: Store>(cx: &Ctx<St>, meta: &ResponseMeta, now: SystemTime) -> Option<Duration> {
    Some(cx.config.policy.retention(meta, now))
}

/// One exchange with the origin on its way into the cache: the request, the key it is stored
/// under, why it went forward, and when.
struct Exchange<'a> {
    parts: request::Parts,
    key: &'a str,
    fwd: Fwd,
    /// The resource's variant index, when the lookup found one.
    index: Option<VaryIndex>,
    request_time: SystemTime,
    /// The layer's invalidation mark when the request went to the origin
    /// ([`Flights::mark`](crate::coalesce::Flights::mark)).
    since: u64,
    response_time: SystemTime,
    /// The coalescing flight this request leads, if any.
    guard: Option<FlightGuard>,
    /// The key of the stored response this exchange validated, if it did: a response that says
    /// what the resource now is but is not stored in its place removes it ([`supersedes`]).
    replaces: Option<&'a str>,
}

/// Whether a response to a validation says the stored response is no longer the resource's
/// (RFC 9111 §4.3.3: a full response means none of the stored ones is current): a `2xx` but `206`
/// (another part), a `3xx` but `304` (moved), `404` or `410` (gone). Other `4xx` speak of the
/// request (`403`, `429`), and `5xx` of the origin's trouble, so the stored response stays for
/// `stale-if-error`.
fn supersedes(status: StatusCode) -> bool {
    (status.is_success() && status != StatusCode::PARTIAL_CONTENT)
        || (status.is_redirection() && status != StatusCode::NOT_MODIFIED)
        || status == StatusCode::NOT_FOUND
        || status == StatusCode::GONE
}

/// Stores a response from the origin if it may, streaming its body to the caller through a tee.
async fn store_response<St, ResB, E>(
    cx: &Ctx<St>,
    ex: Exchange<'_>,
    res: Response<ResB>,
) -> Result<Res<ResB, St>, E>
where
    ResB: OriginBody,
    St: Store,
{
    let Exchange {
        parts,
        key,
        fwd,
        index,
        request_time,
        since,
        response_time,
        guard,
        replaces,
    } = ex;
    let (mut head, body) = res.into_parts();
    let mut status = cx.status(fwd).fwd_status(head.status.as_u16());
    let policy = &cx.config.policy;
    let mode = parts
        .extensions
        .get::<CacheMode>()
        .copied()
        .unwrap_or_default();

    // A HEAD response has no body to store; only GET responses are stored.
    let storable = parts.method == Method::GET
        && mode != CacheMode::NoStore
        && policy
            .storable(&parts.method, &parts.headers, head.status, &head.headers)
            .is_ok();
    let declared_len = content_length(&head.headers);
    let limit = cx
        .config
        .max_object_size
        .min(cx.store.max_body_size().unwrap_or(u64::MAX));
    let fits = declared_len.is_none_or(|n| n <= limit) && body.size_hint().lower() <= limit;

    let mut capture = None;
    let mut guard = guard;
    let mut worth_storing = false;
    if storable && fits {
        let mut meta = policy.to_meta(
            &parts.headers,
            head.status,
            head.version,
            &head.headers,
            request_time,
            response_time,
        );
        if let Some(f) = &cx.config.ttl_fn {
            meta = meta.with_ttl_override(f(&parts, &head));
        }
        let ttl = cx.config.policy.retention(&meta, response_time);
        if !ttl.is_zero() {
            worth_storing = true;
            let code = head.status.as_u16();
            capture = begin_capture(
                cx,
                key,
                meta,
                ttl,
                index,
                limit,
                declared_len,
                guard.take(),
                (code, since),
            )
            .await;
        }
    }
    if let Some(g) = guard {
        if worth_storing {
            // The store refused the write: let the waiters fetch for themselves.
            g.finish(Outcome::Failed);
        } else {
            // Nothing to wait for: the waiters go to the origin now, and so does the traffic
            // for this key for a while (hit-for-miss).
            cx.config.flights.mark_pass(key, cx.config.hit_for_miss);
            g.finish(Outcome::Pass);
        }
    }
    if capture.is_none()
        && let Some(old) = replaces
        && supersedes(head.status)
    {
        // What the cache holds is outdated and nothing takes its place: it must not stand in
        // for the origin later (`stale-if-error`, `max-stale`) as if the resource had not changed.
        remove(cx, old).await;
    }
    status = status.stored(capture.is_some());
    head.headers.append(CACHE_STATUS, status.to_header_value());
    let body = match capture {
        Some((c, outcome)) => {
            head.extensions.insert(outcome);
            ResponseBody::tee(body, c)
        }
        None => ResponseBody::passthrough(body),
    };
    Ok(Response::from_parts(head, body))
}

/// Opens a writer for a response and prepares what its commit does: write the entry and, for a
/// resource that varies, record the variant in the resource's index (RFC 9111 §4.1).
#[expect(
    clippy::too_many_arguments,
    reason = "the exchange's state, passed along once"
)]
async fn begin_capture<St: Store>(
    cx: &Ctx<St>,
    key: &str,
    meta: ResponseMeta,
    ttl: Duration,
    index: Option<VaryIndex>,
    limit: u64,
    expected: Option<u64>,
    guard: Option<FlightGuard>,
    (code, since): (u16, u64),
) -> Option<(Capture<St>, StoreOutcome)> {
    let names = meta
        .fields()
        .get_all(&header::VARY)
        .next()
        .map(|_| vary::vary_names(&meta.fields().to_header_map(0)).unwrap_or_default())
        .unwrap_or_default();
    let store = cx.store.clone();
    let primary = key.to_owned();
    let max_variants = cx.config.policy.variant_limit();
    let (store_key, index) = if names.is_empty() {
        (primary.clone(), None)
    } else {
        // Find the current index when the lookup did not give one (a reload, say).
        let index = match index {
            Some(i) => Some(i),
            None => match store.get(&primary).await {
                Ok(Some(hit)) => match &*hit.meta {
                    Meta::Variants(i) => Some(i.clone()),
                    Meta::Response(_) => None,
                },
                _ => None,
            },
        };
        let index = match index {
            Some(i) if i.names == names => i,
            _ => VaryIndex::new(names, new_epoch()),
        };
        let hash = variant_hash(meta.vary_values());
        (
            variant_key(&primary, index.epoch, meta.vary_values()),
            Some((index, hash)),
        )
    };
    let writer = match store.begin(&store_key) {
        Ok(w) => w,
        Err(e) => {
            cx.config.count(Event::StoreError);
            tracing::warn!(key = store_key, error = %e, "cache store refused a write");
            return None;
        }
    };
    let meta = Arc::new(Meta::Response(meta));
    let config = cx.config.clone();
    let commit = Box::new(
        move |writer: St::Writer, len: u64, signal: Signal| -> CommitFuture {
            Box::pin(async move {
                // A change to the resource (RFC 9111 §4.4) since the request went out: the response
                // may describe it as it was before. (Checked again once committed, for a change that
                // lands meanwhile.)
                let invalidated = || config.flights.invalidated_since(&primary, since);
                // The check and the writes are one step for invalidations of the key: none removes
                // the entry between them, to have it land afterwards.
                let _writing = config.flights.write_lock(&primary).await;
                if invalidated() {
                    tracing::debug!(
                        key = primary,
                        "invalidated while it was fetched; not stored"
                    );
                    return;
                }
                if !commit_entry(writer, meta, Some(ttl), &store_key).await {
                    config.count(Event::StoreError);
                    return;
                }
                if invalidated() {
                    let _ = store.delete(&store_key).await;
                    return;
                }
                config.stored(len);
                signal.stored();
                config.flights.clear_pass(&primary);
                if let Some((mut index, hash)) = index {
                    index.variants.retain(|h| *h != hash);
                    index.variants.push(hash);
                    while index.variants.len() > max_variants {
                        let old = index.variants.remove(0);
                        let old_key = variant_key_from_hash(&primary, index.epoch, old);
                        let _ = store.delete(&old_key).await;
                    }
                    let index_ttl = ttl.saturating_add(Duration::from_secs(24 * 3600));
                    match store.begin(&primary) {
                        Ok(w) => {
                            commit_entry(
                                w,
                                Arc::new(Meta::Variants(index)),
                                Some(index_ttl),
                                &primary,
                            )
                            .await;
                            // An invalidation that removed the index while the variant was written
                            // must not find it back: the index lists the variants stored before it.
                            if invalidated() {
                                let _ = store.delete(&primary).await;
                                let _ = store.delete(&store_key).await;
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(key = primary, error = %e, "cache store refused the variant index")
                        }
                    }
                }
                // Waiters look the entry up only now that it (and its variant index) is visible.
                if let Some(g) = guard {
                    g.finish(Outcome::Stored(code));
                }
            })
        },
    );
    let (signal, outcome) = Signal::new();
    Some((
        Capture {
            writer,
            written: 0,
            limit,
            expected,
            commit,
            signal,
        },
        outcome,
    ))
}

/// The variant key for a hash already computed (`variant_key` hashes the values itself).
fn variant_key_from_hash(primary: &str, epoch: u64, hash: u64) -> String {
    format!("{primary}\u{0}v{epoch:016x}:{hash:016x}")
}

fn new_epoch() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(SystemTime::now())
}

/// Revalidates a stale response in the background while it is served (RFC 5861 §3). It takes
/// part in coalescing: nothing starts while a fetch of the key is in flight, and requests that
/// cannot use the stale response wait for this one.
fn spawn_revalidation<S, St, ReqB, ResB>(
    cx: &Arc<Ctx<St>>,
    mut inner: S,
    parts: &request::Parts,
    key: &str,
    (store_key, meta, index): (&str, Arc<Meta>, Option<VaryIndex>),
    since: u64,
) where
    S: Origin<ReqB, ResB>,
    ReqB: Default + Send + 'static,
    ResB: OriginBody,
    St: Store,
{
    let Some(stored) = meta.as_response() else {
        return;
    };
    let guard = match cx.config.flights.join(key) {
        Join::Leader(g) => g,
        Join::Waiter(_) => return,
    };
    cx.config.count(Event::BackgroundRevalidation);
    let cx = Arc::clone(cx);
    let fwd_parts = validation_parts(parts, stored, true);
    let key = key.to_owned();
    let store_key = store_key.to_owned();
    let store_parts = {
        let mut p = parts.clone();
        p.method = Method::GET;
        p
    };
    tokio::spawn(async move {
        let request_time = cx.now();
        let res = match inner
            .call(Request::from_parts(fwd_parts, ReqB::default()))
            .await
        {
            Ok(res) => res,
            Err(_) => {
                tracing::debug!(key, "background revalidation failed");
                return;
            }
        };
        let response_time = cx.now();
        if res.status() == StatusCode::NOT_MODIFIED {
            let merged = apply_not_modified(
                &cx,
                &meta,
                &store_parts.headers,
                res.headers(),
                &store_key,
                request_time,
                response_time,
            )
            .await;
            if merged.is_some() {
                guard.finish(Outcome::Stored(304));
            }
            return;
        }
        if res.status().is_server_error() {
            return;
        }
        // A full response: store it by reading it to the end through a tee nobody else reads.
        let ex = Exchange {
            parts: store_parts,
            key: &key,
            fwd: Fwd::Stale,
            index,
            request_time,
            since,
            response_time,
            guard: Some(guard),
            replaces: Some(&store_key),
        };
        let res: Result<Res<ResB, St>, ()> = store_response(&cx, ex, res).await;
        if let Ok(res) = res {
            drain(res.into_body()).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str) -> request::Parts {
        Request::get(uri).body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_key_read_within_a_key_read_gets_a_buffer_of_its_own() {
        let (a, b) = (parts("http://a.example/x"), parts("https://B.example/y?z"));
        let seen = with_primary_key(&a, |outer| {
            let inner = with_primary_key(&b, str::to_owned);
            (outer.to_owned(), inner)
        });
        assert_eq!(seen.0, "http://a.example/x");
        assert_eq!(seen.1, "https://b.example/y?z");
        // The shared buffer is cleared between uses.
        assert_eq!(with_primary_key(&b, str::to_owned), "https://b.example/y?z");
    }
}
