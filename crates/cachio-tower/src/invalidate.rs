//! Invalidation (RFC 9111 §4.4): what an unsafe request, [`CacheLayer::invalidate`] and
//! [`CacheLayer::purge`] remove, and the log of invalidations by which a fetch that was on its
//! way meanwhile knows not to store what it brings.
//!
//! [`CacheLayer::invalidate`]: crate::CacheLayer::invalidate
//! [`CacheLayer::purge`]: crate::CacheLayer::purge

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use cachio_core::backend::KeyLocks;
use cachio_core::meta::Meta;
use cachio_core::policy::{self, status::Fwd};
use cachio_core::store::{Store, StoreError};
use http::{Request, Response, header, request};
use http_body::Body;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::config::{Config, Ctx};
use crate::service::{CACHE_STATUS, Res};
use crate::stats::Event;

/// The invalidations a cache has made, for the fetches in flight to check before they store
/// what they bring, and the locks that order the two.
#[derive(Default)]
pub(crate) struct Invalidations {
    /// How many invalidations this cache has made; a request notes it before it first reads
    /// the store.
    count: AtomicU64,
    invalidated: Mutex<Invalidated>,
    writes: WriteLocks,
}

impl Invalidations {
    /// The lock that makes an invalidation of `key` (its mark and its removal) and the commit
    /// of a fetch of it (its check for invalidations and its writes) happen one after the other.
    /// Without it, a commit that checked before an invalidation could land after the removal,
    /// and be served until it looked again and removed itself: after the request that
    /// invalidated had its answer.
    pub(crate) async fn write_lock(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.0.lock(key).await
    }

    /// Every write lock, for a purge that may remove any key: see [`write_lock`](Self::write_lock).
    pub(crate) async fn write_lock_all(&self) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        self.writes.0.lock_all().await
    }

    /// A mark of this moment, which a request takes before it first reads the store, for
    /// [`invalidated_since`](Self::invalidated_since).
    pub(crate) fn mark(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Notes that `key` was invalidated (RFC 9111 §4.4).
    pub(crate) fn invalidate(&self, key: &str) {
        let mut inv = self.invalidated.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.count.fetch_add(1, Ordering::AcqRel) + 1;
        if inv.keys.len() >= INVALIDATED_CAPACITY {
            inv.keys.clear();
            inv.floor = n;
        } else {
            inv.keys.insert(key.to_owned(), n);
        }
    }

    /// Notes that every key may have been invalidated: a purge whose keys are known only to the
    /// store. Every fetch that took its mark before counts as invalidated.
    pub(crate) fn invalidate_all(&self) {
        let mut inv = self.invalidated.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.count.fetch_add(1, Ordering::AcqRel) + 1;
        inv.keys.clear();
        inv.floor = n;
    }

    /// Whether `key` may have been invalidated after `mark` was taken: a response fetched since
    /// may describe the resource as it was before the change, and is not to be stored.
    pub(crate) fn invalidated_since(&self, key: &str, mark: u64) -> bool {
        let inv = self.invalidated.lock().unwrap_or_else(|p| p.into_inner());
        inv.floor > mark || inv.keys.get(key).is_some_and(|&n| n > mark)
    }
}

/// [`KeyLocks`] with [`WRITE_LOCKS`] shares: see [`Invalidations::write_lock`].
struct WriteLocks(KeyLocks);

/// How many write locks a layer has: commits of keys that share one wait for each other.
const WRITE_LOCKS: usize = 256;

impl Default for WriteLocks {
    fn default() -> Self {
        Self(KeyLocks::new(WRITE_LOCKS))
    }
}

/// The keys invalidated, each with the count of invalidations that its latest made.
#[derive(Default)]
struct Invalidated {
    keys: HashMap<String, u64>,
    /// Invalidations of keys no longer listed (forgotten, past the capacity) counted up to here.
    floor: u64,
}

/// The most invalidated keys remembered; past it they are all forgotten at once, and every fetch
/// that started before is treated as having seen its key invalidated.
const INVALIDATED_CAPACITY: usize = 16 * 1024;

/// The head of `req`, without its extensions (which need not be `Clone`).
pub(crate) fn request_parts<B>(req: &Request<B>) -> (request::Parts, ()) {
    let mut head = Request::new(());
    *head.method_mut() = req.method().clone();
    *head.uri_mut() = req.uri().clone();
    *head.version_mut() = req.version();
    *head.headers_mut() = req.headers().clone();
    head.into_parts()
}

/// Passes an unsafe request on and invalidates what its response invalidates (RFC 9111 §4.4).
pub(crate) async fn forward_unsafe<S, St, ReqB, ResB>(
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
    let key = config.key(parts);
    config.count(Event::Invalidation);
    // Not while a fetch of the key commits: one that checked for invalidations before this one
    // would land after the removal, visible until it looks again.
    let _writing = config.invalidations.write_lock(&key).await;
    // Noted before the entry goes, so a fetch that commits after the removal sees it even if
    // this request is dropped during the removal.
    config.invalidations.invalidate(&key);
    let removed = store.delete(&key).await.inspect_err(|e| {
        config.count(Event::StoreError);
        tracing::warn!(key, error = %e, "cache invalidation failed");
    });
    // And noted again once it has gone: a request that took its mark after the first note may
    // still have read the entry before the removal reached it (a variant index, say, which it
    // would write back with its own variant, and with it every variant of before the change).
    config.invalidations.invalidate(&key);
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
    let _writing = config.invalidations.write_lock_all().await;
    config.invalidations.invalidate_all();
    let purged = store.purge(matches).await.inspect_err(|e| {
        if e.kind() != cachio_core::store::ErrorKind::Unsupported {
            config.count(Event::StoreError);
            tracing::warn!(error = %e, "cache purge failed");
        }
    });
    config.invalidations.invalidate_all();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_sees_the_invalidations_of_its_key_made_after_its_mark() {
        let inv = Invalidations::default();
        inv.invalidate("earlier");
        let mark = inv.mark();
        assert!(!inv.invalidated_since("earlier", mark), "before the mark");
        inv.invalidate("k");
        assert!(inv.invalidated_since("k", mark));
        assert!(!inv.invalidated_since("other", mark));
        assert!(!inv.invalidated_since("k", inv.mark()), "a later fetch");

        // Past the capacity every key is forgotten, and every earlier fetch counts as invalidated.
        let before = inv.mark();
        for i in 0..=INVALIDATED_CAPACITY {
            inv.invalidate(&i.to_string());
        }
        assert!(inv.invalidated_since("never-invalidated", before));
        assert!(!inv.invalidated_since("never-invalidated", inv.mark()));
    }

    #[test]
    fn a_purge_of_every_key_invalidates_every_earlier_fetch_and_no_later_one() {
        let inv = Invalidations::default();
        inv.invalidate("k");
        let before = inv.mark();
        inv.invalidate_all();
        assert!(inv.invalidated_since("k", before));
        assert!(inv.invalidated_since("never-named", before));
        let after = inv.mark();
        assert!(!inv.invalidated_since("k", after));
        inv.invalidate("k");
        assert!(inv.invalidated_since("k", after), "keys are noted again");
        assert!(!inv.invalidated_since("other", after));
    }
}
