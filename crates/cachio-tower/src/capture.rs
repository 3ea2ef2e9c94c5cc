//! Capture (RFC 9111 §3): the decision to store a response from the origin, the tee that writes
//! its body as it streams to the caller, and the commit at its end, which records the variant in
//! the resource's variant index when the response varies (§4.1).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cachio_core::key::{variant_hash, variant_key, variant_key_for_hash};
use cachio_core::meta::{Meta, ResponseMeta, VaryIndex};
use cachio_core::policy::status::Fwd;
use cachio_core::policy::vary;
use cachio_core::store::Store;
use http::{Method, Request, Response, StatusCode, header, request};
use http_body::Body;
use tower_service::Service;

use crate::body::{Capture, CommitFuture, Committed, ResponseBody, commit_entry};
use crate::coalesce::{FlightGuard, Outcome};
use crate::config::{Config, Ctx};
use crate::fill::{Fill, finish_in_background};
use crate::mode::CacheMode;
use crate::outcome::{Signal, StoreOutcome};
use crate::revalidate::remove;
use crate::serve::content_length;
use crate::service::{CACHE_STATUS, Incoming, OriginBody, Res};
use crate::stats::Event;

/// Forwards a request and stores its response if it may (RFC 9111 §3).
pub(crate) async fn fetch_and_store<S, St, ReqB, ResB>(
    cx: &Ctx<St>,
    mut inner: S,
    (req, body): (Incoming, ReqB),
    (fwd, index): (Fwd, Option<VaryIndex>),
    guard: Option<FlightGuard>,
) -> Result<Res<ResB, St>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: OriginBody,
    St: Store,
{
    let Incoming {
        parts, key, since, ..
    } = req;
    let request_time = cx.now();
    let res = inner.call(Request::from_parts(parts.clone(), body)).await?;
    let ex = Exchange {
        parts,
        key: &key,
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

/// Stores the full response a validation brought (RFC 9111 §4.3.3) and answers with it. A `HEAD`
/// was validated with a `GET`: it gets the head alone, and the body is read to the end on a task
/// of its own so that the `GET` response is stored.
pub(crate) async fn answer_full<St, ResB, E>(
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
        finish_in_background(body);
    }
    Ok(Response::from_parts(head, ResponseBody::empty()))
}

/// Reads a body to its end (or its first error), dropping the data.
pub(crate) async fn drain<B: Body>(body: B) {
    let mut body = std::pin::pin!(body);
    while let Some(frame) = std::future::poll_fn(|c| body.as_mut().poll_frame(c)).await {
        if frame.is_err() {
            break;
        }
    }
}

/// Calls `svc` once it is ready.
pub(crate) async fn ready_call<S, R>(svc: &mut S, req: R) -> Result<S::Response, S::Error>
where
    S: Service<R>,
{
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
    svc.call(req).await
}

/// One exchange with the origin on its way into the cache: the request, the key it is stored
/// under, why it went forward, and when.
pub(crate) struct Exchange<'a> {
    pub(crate) parts: request::Parts,
    pub(crate) key: &'a str,
    pub(crate) fwd: Fwd,
    /// The resource's variant index, when the lookup found one.
    pub(crate) index: Option<VaryIndex>,
    pub(crate) request_time: SystemTime,
    /// The layer's invalidation mark when the request went to the origin
    /// ([`Invalidations::mark`](crate::invalidate::Invalidations::mark)).
    pub(crate) since: u64,
    pub(crate) response_time: SystemTime,
    /// The coalescing flight this request leads, if any.
    pub(crate) guard: Option<FlightGuard>,
    /// The key of the stored response this exchange validated, if it did: a response that says
    /// what the resource now is but is not stored in its place removes it ([`supersedes`]).
    pub(crate) replaces: Option<&'a str>,
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
pub(crate) async fn store_response<St, ResB, E>(
    cx: &Ctx<St>,
    ex: Exchange<'_>,
    res: Response<ResB>,
) -> Result<Res<ResB, St>, E>
where
    ResB: OriginBody,
    St: Store,
{
    let (mut head, body) = res.into_parts();
    let status = cx.status(ex.fwd).fwd_status(head.status.as_u16());
    let declared_len = content_length(&head.headers);
    let limit = cx
        .config
        .max_object_size
        .min(cx.store.max_body_size().unwrap_or(u64::MAX));
    let fits = declared_len.is_none_or(|n| n <= limit) && body.size_hint().lower() <= limit;
    let entry = if fits {
        storing(&cx.config, &ex, &head)
    } else {
        None
    };

    let Exchange {
        key,
        index,
        since,
        mut guard,
        replaces,
        ..
    } = ex;
    let worth_storing = entry.is_some();
    let mut capture = None;
    let backlog = cx.config.writes.backlog();
    if entry.is_some() && backlog >= cx.config.write_backlog {
        tracing::debug!(
            backlog,
            "the store is behind on its commits; passed on, not stored"
        );
        cx.config.count(Event::Backlogged);
    } else if let Some((meta, ttl)) = entry {
        let entry = NewEntry {
            meta,
            ttl,
            limit,
            expected: declared_len,
            code: head.status.as_u16(),
        };
        capture = begin_capture(cx, key, entry, index, (guard.take(), since)).await;
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
    let status = status.stored(capture.is_some());
    head.headers.append(CACHE_STATUS, status.to_header_value());
    let body = match capture {
        Some((c, outcome, fill)) => {
            head.extensions.insert(outcome);
            ResponseBody::tee(body, c, fill)
        }
        None => ResponseBody::passthrough(body),
    };
    Ok(Response::from_parts(head, body))
}

/// The storing decision (RFC 9111 §3): the stored head a response gets, and how long the store
/// keeps it, when it may be stored and is worth it. Only `GET` responses are stored: a `HEAD`
/// response has no body.
fn storing(
    config: &Config,
    ex: &Exchange<'_>,
    head: &http::response::Parts,
) -> Option<(ResponseMeta, Duration)> {
    let parts = &ex.parts;
    let policy = &config.policy;
    let mode = parts
        .extensions
        .get::<CacheMode>()
        .copied()
        .unwrap_or(config.default_mode);
    let storable = parts.method == Method::GET
        && mode != CacheMode::NoStore
        && (policy
            .storable(&parts.method, &parts.headers, head.status, &head.headers)
            .is_ok()
            || (store_all(config) && recordable(head.status, &head.headers)));
    if !storable {
        return None;
    }
    let mut meta = policy.to_meta(
        &parts.headers,
        head.status,
        head.version,
        &head.headers,
        ex.request_time,
        ex.response_time,
    );
    if let Some(f) = &config.ttl_fn {
        meta = meta.with_ttl_override(f.ttl(parts, head));
    }
    let mut ttl = policy.retention(&meta, ex.response_time);
    if store_all(config) && ttl.is_zero() {
        ttl = STORE_ALL_RETENTION;
    }
    (!ttl.is_zero()).then_some((meta, ttl))
}

/// How long an entry stored only because of [`CacheLayer::store_all`](crate::CacheLayer::store_all)
/// is kept by stores that expire entries.
const STORE_ALL_RETENTION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Whether [`CacheLayer::store_all`](crate::CacheLayer::store_all) is in force: in a private
/// cache only, since a shared cache never keeps one user's private response for another.
fn store_all(config: &Config) -> bool {
    config.store_all && config.policy.sharing() == cachio_core::policy::Sharing::Private
}

/// Whether [`CacheLayer::store_all`](crate::CacheLayer::store_all) stores a response of `status`
/// with `headers`: a final, complete response whose variants can be told apart.
fn recordable(status: StatusCode, headers: &http::HeaderMap) -> bool {
    !(status.is_informational()
        || status.as_u16() > 599
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED)
        && vary::vary_names(headers).is_some()
}

/// A response on its way into the store: its head, how long the store keeps it, the bounds its
/// body must keep, and its status code (for the requests waiting on its flight).
struct NewEntry {
    meta: ResponseMeta,
    ttl: Duration,
    /// The largest body stored.
    limit: u64,
    /// The `Content-Length` it declared.
    expected: Option<u64>,
    code: u16,
}

/// Opens a writer for a response and prepares what its commit does: write the entry and, for a
/// resource that varies, record the variant in the resource's index (RFC 9111 §4.1).
async fn begin_capture<St: Store>(
    cx: &Ctx<St>,
    key: &str,
    entry: NewEntry,
    index: Option<VaryIndex>,
    (guard, since): (Option<FlightGuard>, u64),
) -> Option<(Capture<St>, StoreOutcome, Option<Arc<Fill>>)> {
    let NewEntry {
        meta,
        ttl,
        limit,
        expected,
        code,
    } = entry;
    let names = meta
        .fields()
        .get_all(&header::VARY)
        .next()
        .map(|_| vary::vary_names(&meta.fields().to_header_map(0)).unwrap_or_default())
        .unwrap_or_default();
    let primary = key.to_owned();
    let (store_key, index) = if names.is_empty() {
        (primary.clone(), None)
    } else {
        // Find the current index when the lookup did not give one (a reload, say).
        let index = match index {
            Some(i) => Some(i),
            None => match cx.store.get(&primary).await {
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
    let writer = match cx.store.begin(&store_key) {
        Ok(w) => w,
        Err(e) => {
            cx.config.count(Event::StoreError);
            tracing::warn!(key = store_key, error = %e, "cache store refused a write");
            return None;
        }
    };
    let meta = Arc::new(Meta::Response(meta));
    // The requests waiting on this fetch stream its body from here on.
    let fill = guard.as_ref().map(|g| {
        let window = cx.config.fill_window;
        let fill = Fill::new(
            (meta.clone(), store_key.clone()),
            (code, since),
            expected,
            window,
        );
        let fill = Arc::new(fill);
        g.publish(fill.clone());
        fill
    });
    let after_disconnect = cx
        .config
        .fill_after_disconnect
        .unwrap_or(cx.config.max_object_size);
    let commit = Commit {
        store: cx.store.clone(),
        config: cx.config.clone(),
        meta,
        ttl,
        primary,
        store_key,
        index,
        since,
        guard,
        code,
    };
    let commit = Box::new(
        move |writer: St::Writer, len: u64, signal: Signal| -> CommitFuture {
            Box::pin(commit.run(writer, len, signal))
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
            writes: cx.config.writes.clone(),
            after_disconnect,
        },
        outcome,
        fill,
    ))
}

/// What the commit at the end of a captured body does: write the entry, record its variant, and
/// tell the requests waiting on its flight.
struct Commit<St> {
    store: St,
    config: Arc<Config>,
    meta: Arc<Meta>,
    ttl: Duration,
    /// The resource's key, under which its variant index is stored.
    primary: String,
    /// The key the response is stored under: the primary key, or a variant key.
    store_key: String,
    /// The variant index to record the response in, with the hash of its variant.
    index: Option<(VaryIndex, u64)>,
    /// The invalidation mark of the request that fetched it.
    since: u64,
    guard: Option<FlightGuard>,
    code: u16,
}

impl<St: Store> Commit<St> {
    async fn run(self, writer: St::Writer, len: u64, signal: Signal) {
        let Self {
            store,
            config,
            meta,
            ttl,
            primary,
            store_key,
            index,
            since,
            guard,
            code,
        } = self;
        // A change to the resource (RFC 9111 §4.4) since the request went out: the response may
        // describe it as it was before. (Checked again once committed, for a change that lands
        // meanwhile.)
        let invalidated = || config.invalidations.invalidated_since(&primary, since);
        // The check and the writes are one step for invalidations of the key: none removes the
        // entry between them, to have it land afterwards.
        let _writing = config.invalidations.write_lock(&primary).await;
        if invalidated() {
            tracing::debug!(
                key = primary,
                "invalidated while it was fetched; not stored"
            );
            return;
        }
        match commit_entry(writer, meta, Some(ttl), &store_key).await {
            Committed::Stored => {}
            // Counted by the store that refused it (a fleet's purge since the request).
            Committed::Refused => return,
            Committed::Failed => {
                config.count(Event::StoreError);
                return;
            }
        }
        if invalidated() {
            let _ = store.delete(&store_key).await;
            return;
        }
        config.stored(len);
        signal.stored();
        config.flights.clear_pass(&primary);
        if let Some((index, hash)) = index {
            let max_variants = config.policy.variant_limit();
            let written = record_variant(&store, &primary, (index, hash), ttl, max_variants).await;
            // An invalidation that removed the index while the variant was written must not find
            // it back: the index lists the variants stored before it.
            if written && invalidated() {
                let _ = store.delete(&primary).await;
                let _ = store.delete(&store_key).await;
                return;
            }
        }
        // Waiters look the entry up only now that it (and its variant index) is visible.
        if let Some(g) = guard {
            g.finish(Outcome::Stored(code));
        }
    }
}

/// Records the variant of hash `hash` in the resource's variant index (RFC 9111 §4.1) and writes
/// the index under `primary`, removing the oldest variants past `max_variants`. The index lives a
/// day longer than the variant just stored. Whether the store took the index's write.
async fn record_variant<St: Store>(
    store: &St,
    primary: &str,
    (mut index, hash): (VaryIndex, u64),
    ttl: Duration,
    max_variants: usize,
) -> bool {
    index.variants.retain(|h| *h != hash);
    index.variants.push(hash);
    while index.variants.len() > max_variants {
        let old = index.variants.remove(0);
        let _ = store
            .delete(&variant_key_for_hash(primary, index.epoch, old))
            .await;
    }
    let index_ttl = ttl.saturating_add(Duration::from_secs(24 * 3600));
    match store.begin(primary) {
        Ok(w) => {
            let index = Arc::new(Meta::Variants(index));
            commit_entry(w, index, Some(index_ttl), primary).await;
            true
        }
        Err(e) => {
            tracing::warn!(key = primary, error = %e, "cache store refused the variant index");
            false
        }
    }
}

/// A new variant index's epoch: a number no earlier index of the resource had, in all likelihood.
fn new_epoch() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(SystemTime::now())
}
