use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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
///
/// Each counter is kept in stripes, one per few threads, each on a cache line of its own: a hit
/// on one core does not write a line that the hits on every other core write too. A snapshot adds
/// the stripes up.
pub struct CacheStats {
    stripes: Box<[Stripe]>,
}

/// One stripe of the counters (see [`CacheStats`]).
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Stripe {
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
    /// Fresh hits served in `call`, each one request and one hit: one count instead of two on
    /// the quickest path.
    pub(crate) fresh_hits: AtomicU64,
}

impl Default for CacheStats {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(4, usize::from);
        Self {
            stripes: (0..threads.next_power_of_two().min(64))
                .map(|_| Stripe::default())
                .collect(),
        }
    }
}

impl fmt::Debug for CacheStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.snapshot(), f)
    }
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
        let sum = |c: fn(&Stripe) -> &AtomicU64| {
            self.stripes
                .iter()
                .map(|s| c(s).load(Ordering::Relaxed))
                .fold(0u64, u64::wrapping_add)
        };
        let fresh_hits = sum(|s| &s.fresh_hits);
        StatsSnapshot {
            requests: sum(|s| &s.requests).wrapping_add(fresh_hits),
            hits: sum(|s| &s.hits).wrapping_add(fresh_hits),
            misses: sum(|s| &s.misses),
            stale: sum(|s| &s.stale),
            revalidations: sum(|s| &s.revalidations),
            background_revalidations: sum(|s| &s.background_revalidations),
            not_modified: sum(|s| &s.not_modified),
            coalesced: sum(|s| &s.coalesced),
            stores: sum(|s| &s.stores),
            stored_bytes: sum(|s| &s.stored_bytes),
            bypassed: sum(|s| &s.bypassed),
            invalidations: sum(|s| &s.invalidations),
            store_errors: sum(|s| &s.store_errors),
        }
    }

    /// The stripe this thread counts in.
    pub(crate) fn local(&self) -> &Stripe {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        let i = STRIPE.with(|i| *i) & (self.stripes.len() - 1);
        &self.stripes[i]
    }
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up() {
        let stats = CacheStats::default();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        bump(&stats.local().requests);
                        add(&stats.local().stored_bytes, 3);
                    }
                    for _ in 0..500 {
                        bump(&stats.local().fresh_hits);
                    }
                });
            }
        });
        let snap = stats.snapshot();
        // A fresh hit counts as a request and as a hit.
        assert_eq!(snap.requests, 8000 + 4000);
        assert_eq!(snap.hits, 4000);
        assert_eq!(snap.stored_bytes, 24_000);
        assert_eq!(snap.misses, 0);
    }

    #[test]
    fn each_stripe_has_a_cache_line_of_its_own() {
        assert_eq!(align_of::<Stripe>(), 128);
        assert_eq!(size_of::<Stripe>(), 128);
    }
}
