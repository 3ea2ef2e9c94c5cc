use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what a cache did, shared by every clone of a [`CacheLayer`](crate::CacheLayer) and
/// the services it made.
///
/// # Example
///
/// ```
/// use cachio_moka::MokaStore;
/// use cachio_tower::CacheLayer;
///
/// let layer = CacheLayer::shared(MokaStore::new(1 << 20));
/// let stats = layer.stats();
/// assert_eq!(stats.snapshot().hits, 0);
/// ```
#[derive(Debug, Default)]
pub struct CacheStats {
    pub(crate) requests: AtomicU64,
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) revalidations: AtomicU64,
    pub(crate) background_revalidations: AtomicU64,
    pub(crate) not_modified: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) stores: AtomicU64,
    pub(crate) stored_bytes: AtomicU64,
    pub(crate) bypassed: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) store_errors: AtomicU64,
}

/// A copy of the counters of [`CacheStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Requests that reached the cache.
    pub requests: u64,
    /// Requests answered from the store without contacting the origin.
    pub hits: u64,
    /// Requests that found nothing usable stored and went to the origin.
    pub misses: u64,
    /// Stale responses served (within `max-stale`, `stale-while-revalidate`, `stale-if-error` or
    /// the grace period).
    pub stale: u64,
    /// Conditional requests sent to validate a stored response in the request's path.
    pub revalidations: u64,
    /// Revalidations run in the background (`stale-while-revalidate`).
    pub background_revalidations: u64,
    /// `304 Not Modified` answers that freshened a stored response.
    pub not_modified: u64,
    /// Requests that waited for another request's fetch of the same key instead of going to the
    /// origin themselves.
    pub coalesced: u64,
    /// Responses written to the store (complete bodies committed).
    pub stores: u64,
    /// Body bytes written to the store.
    pub stored_bytes: u64,
    /// Requests passed through (`CacheMode::NoStore`, methods the cache does not answer).
    pub bypassed: u64,
    /// Invalidations by unsafe methods (RFC 9111 §4.4).
    pub invalidations: u64,
    /// Store operations that failed (each turned into a miss or nothing stored).
    pub store_errors: u64,
}

impl CacheStats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: r(&self.requests),
            hits: r(&self.hits),
            misses: r(&self.misses),
            stale: r(&self.stale),
            revalidations: r(&self.revalidations),
            background_revalidations: r(&self.background_revalidations),
            not_modified: r(&self.not_modified),
            coalesced: r(&self.coalesced),
            stores: r(&self.stores),
            stored_bytes: r(&self.stored_bytes),
            bypassed: r(&self.bypassed),
            invalidations: r(&self.invalidations),
            store_errors: r(&self.store_errors),
        }
    }
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
