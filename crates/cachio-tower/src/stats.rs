use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use metrics::Counter;

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
    pub(crate) backlogged: AtomicU64,
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
    /// Store operations that failed (each turned into a miss or nothing stored). A commit a
    /// fleet store refused because the resource was purged since its request is not one: the
    /// store counts it (`RedisStats::invalidated` in `cachio-redis`).
    pub store_errors: u64,
    /// Responses that would have been stored but were passed on unstored because the store was
    /// behind on its commits ([`CacheLayer::write_backlog`](crate::CacheLayer::write_backlog)).
    pub backlogged: u64,
}

impl StatsSnapshot {
    /// Sets the layer's counters of the cache named `cache` in the current `metrics` recorder to
    /// these values (`Counter::absolute`), under the names and labels the layer counts them by.
    ///
    /// For a recorder that is read now and then (a metrics endpoint): the layer then needs no
    /// recorder of its own while it serves, and a hit touches only its thread's counters.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_tower::StatsSnapshot;
    ///
    /// let snapshot = StatsSnapshot::default();
    /// // With a recorder installed (globally or with `metrics::with_local_recorder`), this sets
    /// // `cachio_hits_total{cache="api"}` and the others.
    /// snapshot.record("api");
    /// ```
    pub fn record(&self, cache: &str) {
        for (name, help) in DESCRIPTIONS {
            metrics::describe_counter!(name, metrics::Unit::Count, help);
        }
        let set = |name: &'static str, value: u64| {
            metrics::counter!(name, "cache" => cache.to_owned()).absolute(value);
        };
        let revalidations = |kind: &'static str, value: u64| {
            metrics::counter!("cachio_revalidations_total", "cache" => cache.to_owned(), "kind" => kind)
                .absolute(value);
        };
        set("cachio_requests_total", self.requests);
        set("cachio_hits_total", self.hits);
        set("cachio_misses_total", self.misses);
        set("cachio_stale_total", self.stale);
        revalidations("foreground", self.revalidations);
        revalidations("background", self.background_revalidations);
        set("cachio_not_modified_total", self.not_modified);
        set("cachio_coalesced_total", self.coalesced);
        set("cachio_stores_total", self.stores);
        set("cachio_stored_bytes_total", self.stored_bytes);
        set("cachio_bypassed_total", self.bypassed);
        set("cachio_invalidations_total", self.invalidations);
        set("cachio_store_errors_total", self.store_errors);
        set("cachio_backlogged_total", self.backlogged);
    }
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
            backlogged: sum(|s| &s.backlogged),
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

/// What the layer counts: each event adds one to a counter of [`CacheStats`] and to its
/// `metrics` counter (see [`Recorded`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    Request,
    Hit,
    Miss,
    Stale,
    Revalidation,
    BackgroundRevalidation,
    NotModified,
    Coalesced,
    Bypass,
    Invalidation,
    StoreError,
    Backlogged,
}

/// The layer's counters as handles of the `metrics` facade, registered once, with the recorder
/// in place then, under a `cache` label (the cache name). Each increments without a lookup; with
/// no recorder installed each is a no-op.
pub(crate) struct Recorded {
    requests: Counter,
    hits: Counter,
    misses: Counter,
    stale: Counter,
    revalidations: Counter,
    background_revalidations: Counter,
    not_modified: Counter,
    coalesced: Counter,
    stores: Counter,
    stored_bytes: Counter,
    bypassed: Counter,
    invalidations: Counter,
    store_errors: Counter,
    backlogged: Counter,
}

/// The names and descriptions of the counters the layer records, as `metrics` sees them.
const DESCRIPTIONS: [(&str, &str); 13] = [
    (
        "cachio_requests_total",
        "Requests that reached the cache layer.",
    ),
    (
        "cachio_hits_total",
        "Requests answered from the store without the origin.",
    ),
    (
        "cachio_misses_total",
        "Requests that found nothing usable stored.",
    ),
    (
        "cachio_stale_total",
        "Stale responses served (max-stale, stale-while-revalidate, stale-if-error, grace).",
    ),
    (
        "cachio_revalidations_total",
        "Conditional requests sent to validate a stored response.",
    ),
    (
        "cachio_not_modified_total",
        "304 answers that freshened a stored response.",
    ),
    (
        "cachio_coalesced_total",
        "Requests that waited for another request's fetch of the same key.",
    ),
    ("cachio_stores_total", "Responses written to the store."),
    (
        "cachio_stored_bytes_total",
        "Body bytes written to the store.",
    ),
    (
        "cachio_bypassed_total",
        "Requests passed through the cache.",
    ),
    (
        "cachio_invalidations_total",
        "Invalidations by unsafe methods (RFC 9111 section 4.4).",
    ),
    ("cachio_store_errors_total", "Store operations that failed."),
    (
        "cachio_backlogged_total",
        "Responses passed on unstored because the store was behind on its commits.",
    ),
];

impl Recorded {
    /// Registers the counters of the cache named `cache` with the current recorder.
    pub(crate) fn register(cache: &str) -> Self {
        for (name, help) in DESCRIPTIONS {
            metrics::describe_counter!(name, metrics::Unit::Count, help);
        }
        let cache = cache.to_owned();
        let counter = |name: &'static str| metrics::counter!(name, "cache" => cache.clone());
        let revalidations = |kind: &'static str| metrics::counter!("cachio_revalidations_total", "cache" => cache.clone(), "kind" => kind);
        Self {
            requests: counter("cachio_requests_total"),
            hits: counter("cachio_hits_total"),
            misses: counter("cachio_misses_total"),
            stale: counter("cachio_stale_total"),
            revalidations: revalidations("foreground"),
            background_revalidations: revalidations("background"),
            not_modified: counter("cachio_not_modified_total"),
            coalesced: counter("cachio_coalesced_total"),
            stores: counter("cachio_stores_total"),
            stored_bytes: counter("cachio_stored_bytes_total"),
            bypassed: counter("cachio_bypassed_total"),
            invalidations: counter("cachio_invalidations_total"),
            store_errors: counter("cachio_store_errors_total"),
            backlogged: counter("cachio_backlogged_total"),
        }
    }
}

impl CacheStats {
    /// Counts `event` in this thread's stripe and in its `metrics` counter.
    pub(crate) fn count(&self, recorded: &Recorded, event: Event) {
        let s = self.local();
        let (atomic, counter) = match event {
            Event::Request => (&s.requests, &recorded.requests),
            Event::Hit => (&s.hits, &recorded.hits),
            Event::Miss => (&s.misses, &recorded.misses),
            Event::Stale => (&s.stale, &recorded.stale),
            Event::Revalidation => (&s.revalidations, &recorded.revalidations),
            Event::BackgroundRevalidation => (
                &s.background_revalidations,
                &recorded.background_revalidations,
            ),
            Event::NotModified => (&s.not_modified, &recorded.not_modified),
            Event::Coalesced => (&s.coalesced, &recorded.coalesced),
            Event::Bypass => (&s.bypassed, &recorded.bypassed),
            Event::Invalidation => (&s.invalidations, &recorded.invalidations),
            Event::StoreError => (&s.store_errors, &recorded.store_errors),
            Event::Backlogged => (&s.backlogged, &recorded.backlogged),
        };
        bump(atomic);
        counter.increment(1);
    }

    /// Counts a fresh hit served at once: one request and one hit.
    pub(crate) fn fresh_hit(&self, recorded: &Recorded) {
        bump(&self.local().fresh_hits);
        recorded.requests.increment(1);
        recorded.hits.increment(1);
    }

    /// Counts a response written to the store, of `len` body bytes.
    pub(crate) fn stored(&self, recorded: &Recorded, len: u64) {
        let s = self.local();
        bump(&s.stores);
        add(&s.stored_bytes, len);
        recorded.stores.increment(1);
        recorded.stored_bytes.increment(len);
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

    /// The counters of every series named `cachio_*` in `recorder`, as `name{labels} value`.
    fn recorded(snapshotter: &metrics_util::debugging::Snapshotter) -> Vec<String> {
        let mut out: Vec<String> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| {
                let metrics_util::debugging::DebugValue::Counter(n) = value else {
                    return None;
                };
                let key = key.key();
                let labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                Some(format!("{}{{{}}} {n}", key.name(), labels.join(",")))
            })
            .collect();
        out.sort();
        out
    }

    #[tokio::test]
    async fn the_counters_reach_the_metrics_recorder() {
        use http_body_util::{BodyExt, Full};
        use tower::{Layer, ServiceExt};

        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let origin = tower::service_fn(|_req: http::Request<Full<bytes::Bytes>>| async {
            let res = http::Response::builder()
                .header("cache-control", "max-age=60")
                .body(Full::from("hello"))
                .unwrap();
            Ok::<_, std::convert::Infallible>(res)
        });
        let layer =
            crate::CacheLayer::private(cachio_moka::MokaStore::new(1 << 20)).cache_name("api");
        // The handles are registered when the service is made: they count into this recorder
        // from then on, wherever the requests run.
        let cache = metrics::with_local_recorder(&recorder, || layer.layer(origin));
        for _ in 0..3 {
            let req = http::Request::get("http://example.com/a")
                .body(Full::default())
                .unwrap();
            let res = cache.clone().oneshot(req).await.unwrap();
            res.into_body().collect().await.unwrap();
        }
        let got = recorded(&snapshotter);
        for want in [
            "cachio_requests_total{cache=api} 3",
            "cachio_hits_total{cache=api} 2",
            "cachio_misses_total{cache=api} 1",
            "cachio_stores_total{cache=api} 1",
            "cachio_stored_bytes_total{cache=api} 5",
            "cachio_revalidations_total{cache=api,kind=foreground} 0",
            "cachio_revalidations_total{cache=api,kind=background} 0",
            "cachio_store_errors_total{cache=api} 0",
        ] {
            assert!(got.iter().any(|l| l == want), "{want} not in {got:#?}");
        }
        let snap = layer.stats().snapshot();
        assert_eq!((snap.requests, snap.hits, snap.misses), (3, 2, 1));
    }

    #[test]
    fn each_stripe_has_a_cache_line_of_its_own() {
        assert_eq!(align_of::<Stripe>(), 128);
        assert_eq!(size_of::<Stripe>(), 128);
    }
}
