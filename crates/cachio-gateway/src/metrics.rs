//! The gateway's metrics: the cache layer's counters and the gateway's own, kept by a Prometheus
//! recorder of the `metrics` facade that belongs to the gateway (not installed globally), and
//! rendered in the Prometheus text format for `/_cachio/metrics`.

use std::time::Duration;

use metrics::{Counter, Histogram, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// The name of the origin latency histogram.
const LATENCY: &str = "cachio_origin_request_duration_seconds";

/// The upper bounds of the origin latency histogram's buckets, in seconds.
const LATENCY_BOUNDS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

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

/// The gateway's recorder, and the handles of its own counters (the cache layer registers its
/// own in the same recorder when the proxy's service is made).
pub(crate) struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Responses by status class: 1xx to 5xx, then anything else.
    responses: [Counter; 6],
    origin_latency: Histogram,
    origin_errors: [Counter; 3],
    purges: [Counter; 3],
    purged_entries: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A recorder with the gateway's counters of the cache named `cache` registered in it.
    pub(crate) fn new(cache: &str) -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(LATENCY.to_owned()), &LATENCY_BOUNDS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        let cache = cache.to_owned();
        let (responses, origin_latency, origin_errors, purges, purged_entries) =
            metrics::with_local_recorder(&recorder, || {
                describe();
                let by = |name: &'static str, label: &'static str, value: &'static str| metrics::counter!(name, "cache" => cache.clone(), label => value);
                (
                    ["1xx", "2xx", "3xx", "4xx", "5xx", "other"]
                        .map(|c| by("cachio_gateway_responses_total", "class", c)),
                    metrics::histogram!(LATENCY, "cache" => cache.clone()),
                    ["connect", "timeout", "other"]
                        .map(|k| by("cachio_origin_errors_total", "kind", k)),
                    ["url", "prefix", "tag"].map(|k| by("cachio_purges_total", "kind", k)),
                    metrics::counter!("cachio_purged_entries_total", "cache" => cache.clone()),
                )
            });
        Self {
            recorder,
            handle,
            responses,
            origin_latency,
            origin_errors,
            purges,
            purged_entries,
        }
    }

    pub(crate) fn response(&self, status: http::StatusCode) {
        let class = (status.as_u16() / 100) as usize;
        let i = if (1..=5).contains(&class) {
            class - 1
        } else {
            5
        };
        self.responses[i].increment(1);
    }

    pub(crate) fn origin_latency(&self, d: Duration) {
        self.origin_latency.record(d.as_secs_f64());
    }

    pub(crate) fn origin_error(&self, kind: OriginError) {
        self.origin_errors[kind as usize].increment(1);
    }

    pub(crate) fn purge(&self, kind: PurgeKind, removed: u64) {
        self.purges[kind as usize].increment(1);
        self.purged_entries.increment(removed);
    }

    /// The Prometheus text exposition of everything the gateway counts, with the store's sizes
    /// and counters read now, and what `more` records (the cache layer's counters).
    pub(crate) fn render(&self, store: &dyn StoreGauges, more: impl FnOnce()) -> String {
        metrics::with_local_recorder(&self.recorder, || {
            more();
            for t in store.tiers() {
                metrics::gauge!("cachio_store_bytes", "tier" => t.name).set(t.bytes as f64);
                metrics::gauge!("cachio_store_capacity_bytes", "tier" => t.name)
                    .set(t.capacity as f64);
                metrics::gauge!("cachio_store_entries", "tier" => t.name).set(t.entries as f64);
            }
            metrics::counter!("cachio_evictions_total").absolute(store.evictions());
            store.record_extra();
        });
        self.handle.render()
    }
}

/// Describes the gateway's series and the store's to the current recorder.
fn describe() {
    let counters = [
        (
            "cachio_gateway_responses_total",
            "Responses sent by the proxy, by status class.",
        ),
        (
            "cachio_origin_errors_total",
            "Calls to the origin that failed, by cause.",
        ),
        ("cachio_purges_total", "Purge requests served, by kind."),
        ("cachio_purged_entries_total", "Entries removed by purges."),
        ("cachio_evictions_total", "Entries evicted to make room."),
        (
            "cachio_fleet_subscriptions_total",
            "Subscriptions to the fleet's invalidations made (each empties the memory tier).",
        ),
        (
            "cachio_fleet_invalidations_published_total",
            "Invalidation messages published to the fleet.",
        ),
        (
            "cachio_fleet_publish_failures_total",
            "Invalidation messages that could not be published.",
        ),
        (
            "cachio_fleet_invalidations_received_total",
            "Invalidation messages received from other nodes.",
        ),
        (
            "cachio_redis_timeouts_total",
            "Redis calls that did not answer within the timeout.",
        ),
        (
            "cachio_redis_unavailable_total",
            "Redis calls that found Redis unreachable.",
        ),
        (
            "cachio_redis_refused_total",
            "Redis calls refused at once by the open circuit breaker.",
        ),
        (
            "cachio_redis_errors_total",
            "Redis calls answered with an error.",
        ),
        (
            "cachio_redis_corrupt_total",
            "Redis entries found corrupt or incomplete (and removed).",
        ),
        (
            "cachio_redis_breaker_opened_total",
            "Times the Redis circuit breaker opened.",
        ),
        (
            "cachio_redis_invalidated_total",
            "Writes refused because a purge on some node came after their request (nothing stored).",
        ),
        (
            "cachio_disk_corrupt_total",
            "Disk tier entries found damaged when read (and removed).",
        ),
        (
            "cachio_disk_write_failures_total",
            "Writes the disk tier's database refused (a full disk), after which it is read-only.",
        ),
        (
            "cachio_disk_reopens_total",
            "Times the disk tier reopened its database after a failed write.",
        ),
    ];
    for (name, help) in counters {
        metrics::describe_counter!(name, Unit::Count, help);
    }
    metrics::describe_histogram!(
        LATENCY,
        Unit::Seconds,
        "Time from sending a request to the origin to its response head (or error)."
    );
    metrics::describe_gauge!(
        "cachio_store_bytes",
        Unit::Bytes,
        "Bytes held by each storage tier."
    );
    metrics::describe_gauge!(
        "cachio_store_capacity_bytes",
        Unit::Bytes,
        "The byte budget of each storage tier."
    );
    metrics::describe_gauge!(
        "cachio_store_entries",
        Unit::Count,
        "Entries held by each storage tier."
    );
    metrics::describe_gauge!(
        "cachio_disk_read_only",
        "Whether the disk tier refuses writes now, after a failed write (it reopens once there is room)."
    );
    metrics::describe_gauge!(
        "cachio_disk_moved_aside",
        "Whether the disk tier's directory was found damaged at start, moved aside and started empty."
    );
    metrics::describe_gauge!(
        "cachio_fleet_subscribed",
        "Whether this node is subscribed to the fleet's invalidations (and so uses its cache)."
    );
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
    /// Records the store's own counters and gauges, if it has any, in the current recorder.
    fn record_extra(&self) {}
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

    fn record_extra(&self) {
        let disk = self.second();
        metrics::gauge!("cachio_disk_read_only").set(f64::from(u8::from(disk.is_read_only())));
        metrics::gauge!("cachio_disk_moved_aside")
            .set(f64::from(u8::from(disk.moved_aside().is_some())));
        metrics::counter!("cachio_disk_corrupt_total").absolute(disk.corrupt_entries());
        metrics::counter!("cachio_disk_write_failures_total").absolute(disk.write_failures());
        metrics::counter!("cachio_disk_reopens_total").absolute(disk.reopens());
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

    fn record_extra(&self) {
        let fleet = self.stats();
        metrics::gauge!("cachio_fleet_subscribed").set(f64::from(u8::from(fleet.subscribed)));
        let redis = self.redis().stats();
        for (name, value) in [
            ("cachio_fleet_subscriptions_total", fleet.subscriptions),
            (
                "cachio_fleet_invalidations_published_total",
                fleet.published,
            ),
            (
                "cachio_fleet_publish_failures_total",
                fleet.publish_failures,
            ),
            ("cachio_fleet_invalidations_received_total", fleet.received),
            ("cachio_redis_timeouts_total", redis.timeouts),
            ("cachio_redis_unavailable_total", redis.unavailable),
            ("cachio_redis_refused_total", redis.refused),
            ("cachio_redis_errors_total", redis.errors),
            ("cachio_redis_corrupt_total", redis.corrupt),
            ("cachio_redis_breaker_opened_total", redis.breaker_opened),
            ("cachio_redis_invalidated_total", redis.invalidated),
        ] {
            metrics::counter!(name).absolute(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new("c");
        m.origin_latency(Duration::from_micros(500));
        m.origin_latency(Duration::from_millis(7));
        m.origin_latency(Duration::from_secs(120));
        let out = m.render(&cachio_moka::MokaStore::new(1 << 20), || {});
        let x = LATENCY;
        assert!(
            out.contains(&format!("{x}_bucket{{cache=\"c\",le=\"0.001\"}} 1\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{x}_bucket{{cache=\"c\",le=\"0.01\"}} 2\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{x}_bucket{{cache=\"c\",le=\"60\"}} 2\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{x}_bucket{{cache=\"c\",le=\"+Inf\"}} 3\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{x}_count{{cache=\"c\"}} 3\n")),
            "{out}"
        );
    }

    #[test]
    fn status_classes() {
        let m = Metrics::new("c");
        m.response(http::StatusCode::OK);
        m.response(http::StatusCode::BAD_GATEWAY);
        let out = m.render(&cachio_moka::MokaStore::new(1 << 20), || {});
        assert!(
            out.contains("cachio_gateway_responses_total{cache=\"c\",class=\"2xx\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("cachio_gateway_responses_total{cache=\"c\",class=\"5xx\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("cachio_store_capacity_bytes{tier=\"memory\"} 1048576\n"),
            "{out}"
        );
    }
}
