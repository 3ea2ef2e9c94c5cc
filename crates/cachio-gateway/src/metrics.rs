//! The gateway's own counters and the Prometheus text rendering of `/_cachio/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cachio_tower::StatsSnapshot;

/// The upper bounds of the origin latency histogram's buckets, in seconds.
const LATENCY_BOUNDS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A fixed-bucket histogram of durations.
#[derive(Debug)]
pub(crate) struct Histogram {
    /// Counts per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BOUNDS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[LATENCY_BOUNDS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {}", self.count.load(Ordering::Relaxed));
    }
}

/// Why a call to the origin failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OriginError {
    Connect,
    Timeout,
    Other,
}

/// What a purge removed entries by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PurgeKind {
    Url,
    Prefix,
    Tag,
}

/// The gateway's counters, beside the cache layer's [`cachio_tower::CacheStats`].
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Responses by status class: 1xx to 5xx, then anything else.
    responses: [AtomicU64; 6],
    pub(crate) origin_latency: Histogram,
    origin_errors: [AtomicU64; 3],
    purges: [AtomicU64; 3],
    purged_entries: AtomicU64,
}

impl Metrics {
    pub(crate) fn response(&self, status: http::StatusCode) {
        let class = (status.as_u16() / 100) as usize;
        let i = if (1..=5).contains(&class) {
            class - 1
        } else {
            5
        };
        self.responses[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn origin_error(&self, kind: OriginError) {
        self.origin_errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn purge(&self, kind: PurgeKind, removed: u64) {
        self.purges[kind as usize].fetch_add(1, Ordering::Relaxed);
        self.purged_entries.fetch_add(removed, Ordering::Relaxed);
    }
}

/// The size of one storage tier.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tier {
    pub(crate) name: &'static str,
    pub(crate) bytes: u64,
    pub(crate) entries: u64,
    pub(crate) capacity: u64,
}

/// What a store tells the metrics about itself.
pub(crate) trait StoreGauges {
    /// Each tier's size.
    fn tiers(&self) -> Vec<Tier>;
    /// Entries removed to make room, over all tiers that count them.
    fn evictions(&self) -> u64;
    /// Appends the store's own counters, if it has any.
    fn render_extra(&self, out: &mut String) {
        let _ = out;
    }
}

impl StoreGauges for cachio_moka::MokaStore {
    fn tiers(&self) -> Vec<Tier> {
        vec![Tier {
            name: "memory",
            bytes: self.weighted_size(),
            entries: self.entry_count(),
            capacity: self.max_capacity_bytes(),
        }]
    }

    fn evictions(&self) -> u64 {
        cachio_moka::MokaStore::evictions(self)
    }
}

#[cfg(feature = "disk")]
impl StoreGauges for cachio_core::tiered::Tiered<cachio_moka::MokaStore, cachio_fjall::FjallStore> {
    fn tiers(&self) -> Vec<Tier> {
        let mut tiers = self.first().tiers();
        let disk = self.second();
        tiers.push(Tier {
            name: "disk",
            bytes: disk.tracked_bytes(),
            entries: disk.entry_count(),
            capacity: disk.budget_bytes(),
        });
        tiers
    }

    fn evictions(&self) -> u64 {
        // The disk store does not count its evictions (yet): the memory tier's only.
        self.first().evictions()
    }
}

#[cfg(feature = "redis")]
impl StoreGauges for cachio_redis::FleetStore<cachio_moka::MokaStore> {
    fn tiers(&self) -> Vec<Tier> {
        // Redis does not tell this node how much of it the fleet uses: the memory tier only.
        self.local().tiers()
    }

    fn evictions(&self) -> u64 {
        self.local().evictions()
    }

    fn render_extra(&self, out: &mut String) {
        let fleet = self.stats();
        let _ = writeln!(
            out,
            "# HELP cachio_fleet_subscribed Whether this node is subscribed to the fleet's invalidations (and so uses its cache)."
        );
        let _ = writeln!(out, "# TYPE cachio_fleet_subscribed gauge");
        let _ = writeln!(
            out,
            "cachio_fleet_subscribed {}",
            u8::from(fleet.subscribed)
        );
        counter(
            out,
            "cachio_fleet_subscriptions_total",
            "Subscriptions to the fleet's invalidations made (each empties the memory tier).",
            fleet.subscriptions,
        );
        counter(
            out,
            "cachio_fleet_invalidations_published_total",
            "Invalidation messages published to the fleet.",
            fleet.published,
        );
        counter(
            out,
            "cachio_fleet_publish_failures_total",
            "Invalidation messages that could not be published.",
            fleet.publish_failures,
        );
        counter(
            out,
            "cachio_fleet_invalidations_received_total",
            "Invalidation messages received from other nodes.",
            fleet.received,
        );
        let redis = self.redis().stats();
        counter(
            out,
            "cachio_redis_timeouts_total",
            "Redis calls that did not answer within the timeout.",
            redis.timeouts,
        );
        counter(
            out,
            "cachio_redis_unavailable_total",
            "Redis calls that found Redis unreachable.",
            redis.unavailable,
        );
        counter(
            out,
            "cachio_redis_refused_total",
            "Redis calls refused at once by the open circuit breaker.",
            redis.refused,
        );
        counter(
            out,
            "cachio_redis_errors_total",
            "Redis calls answered with an error.",
            redis.errors,
        );
        counter(
            out,
            "cachio_redis_corrupt_total",
            "Redis entries found corrupt or incomplete (and removed).",
            redis.corrupt,
        );
        counter(
            out,
            "cachio_redis_breaker_opened_total",
            "Times the Redis circuit breaker opened.",
            redis.breaker_opened,
        );
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {value}");
}

/// The Prometheus text exposition (format 0.0.4) of everything the gateway counts.
pub(crate) fn render(s: &StatsSnapshot, m: &Metrics, tiers: &[Tier], evictions: u64) -> String {
    let mut out = String::with_capacity(4096);
    counter(
        &mut out,
        "cachio_requests_total",
        "Requests that reached the cache layer.",
        s.requests,
    );
    counter(
        &mut out,
        "cachio_hits_total",
        "Requests answered from the store without the origin.",
        s.hits,
    );
    counter(
        &mut out,
        "cachio_misses_total",
        "Requests that found nothing usable stored.",
        s.misses,
    );
    counter(
        &mut out,
        "cachio_stale_total",
        "Stale responses served (max-stale, stale-while-revalidate, stale-if-error, grace).",
        s.stale,
    );
    let _ = writeln!(
        out,
        "# HELP cachio_revalidations_total Conditional requests sent to validate a stored response."
    );
    let _ = writeln!(out, "# TYPE cachio_revalidations_total counter");
    let _ = writeln!(
        out,
        "cachio_revalidations_total{{kind=\"foreground\"}} {}",
        s.revalidations
    );
    let _ = writeln!(
        out,
        "cachio_revalidations_total{{kind=\"background\"}} {}",
        s.background_revalidations
    );
    counter(
        &mut out,
        "cachio_not_modified_total",
        "304 answers that freshened a stored response.",
        s.not_modified,
    );
    counter(
        &mut out,
        "cachio_coalesced_total",
        "Requests that waited for another request's fetch of the same key.",
        s.coalesced,
    );
    counter(
        &mut out,
        "cachio_stores_total",
        "Responses written to the store.",
        s.stores,
    );
    counter(
        &mut out,
        "cachio_stored_bytes_total",
        "Body bytes written to the store.",
        s.stored_bytes,
    );
    counter(
        &mut out,
        "cachio_bypassed_total",
        "Requests passed through the cache.",
        s.bypassed,
    );
    counter(
        &mut out,
        "cachio_invalidations_total",
        "Invalidations by unsafe methods (RFC 9111 section 4.4).",
        s.invalidations,
    );
    counter(
        &mut out,
        "cachio_store_errors_total",
        "Store operations that failed.",
        s.store_errors,
    );
    counter(
        &mut out,
        "cachio_evictions_total",
        "Entries evicted to make room.",
        evictions,
    );

    let _ = writeln!(
        out,
        "# HELP cachio_store_bytes Bytes held by each storage tier."
    );
    let _ = writeln!(out, "# TYPE cachio_store_bytes gauge");
    for t in tiers {
        let _ = writeln!(out, "cachio_store_bytes{{tier=\"{}\"}} {}", t.name, t.bytes);
    }
    let _ = writeln!(
        out,
        "# HELP cachio_store_capacity_bytes The byte budget of each storage tier."
    );
    let _ = writeln!(out, "# TYPE cachio_store_capacity_bytes gauge");
    for t in tiers {
        let _ = writeln!(
            out,
            "cachio_store_capacity_bytes{{tier=\"{}\"}} {}",
            t.name, t.capacity
        );
    }
    let _ = writeln!(
        out,
        "# HELP cachio_store_entries Entries held by each storage tier."
    );
    let _ = writeln!(out, "# TYPE cachio_store_entries gauge");
    for t in tiers {
        let _ = writeln!(
            out,
            "cachio_store_entries{{tier=\"{}\"}} {}",
            t.name, t.entries
        );
    }

    let _ = writeln!(
        out,
        "# HELP cachio_gateway_responses_total Responses sent by the proxy, by status class."
    );
    let _ = writeln!(out, "# TYPE cachio_gateway_responses_total counter");
    for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx", "other"]
        .iter()
        .enumerate()
    {
        let v = m.responses[i].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "cachio_gateway_responses_total{{class=\"{class}\"}} {v}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP cachio_origin_errors_total Calls to the origin that failed, by cause."
    );
    let _ = writeln!(out, "# TYPE cachio_origin_errors_total counter");
    for (i, kind) in ["connect", "timeout", "other"].iter().enumerate() {
        let v = m.origin_errors[i].load(Ordering::Relaxed);
        let _ = writeln!(out, "cachio_origin_errors_total{{kind=\"{kind}\"}} {v}");
    }
    let _ = writeln!(
        out,
        "# HELP cachio_purges_total Purge requests served, by kind."
    );
    let _ = writeln!(out, "# TYPE cachio_purges_total counter");
    for (i, kind) in ["url", "prefix", "tag"].iter().enumerate() {
        let v = m.purges[i].load(Ordering::Relaxed);
        let _ = writeln!(out, "cachio_purges_total{{kind=\"{kind}\"}} {v}");
    }
    counter(
        &mut out,
        "cachio_purged_entries_total",
        "Entries removed by purges.",
        m.purged_entries.load(Ordering::Relaxed),
    );
    m.origin_latency.render(
        &mut out,
        "cachio_origin_request_duration_seconds",
        "Time from sending a request to the origin to its response head (or error).",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(7));
        h.observe(Duration::from_secs(120));
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.01\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"60\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count 3\n"), "{out}");
    }

    #[test]
    fn status_classes() {
        let m = Metrics::default();
        m.response(http::StatusCode::OK);
        m.response(http::StatusCode::BAD_GATEWAY);
        let out = render(&StatsSnapshot::default(), &m, &[], 0);
        assert!(out.contains("cachio_gateway_responses_total{class=\"2xx\"} 1\n"));
        assert!(out.contains("cachio_gateway_responses_total{class=\"5xx\"} 1\n"));
    }
}
