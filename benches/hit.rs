//! A memory hit: the same response served by the bare inner service, by cachio from a
//! `MemoryStore`, and by http-cache-tower from its moka manager, for bodies of 1 KiB, 100 KiB and
//! 1 MiB (`Cache-Control: max-age=3600`, ten other realistic header fields).
//!
//! One iteration sends a GET and reads the whole body. Run with
//! `cargo bench --bench hit -- --warm-up-time 1 --measurement-time 3`.
//!
//! Criterion measures each service in turn, so a machine whose speed drifts between them (a
//! shared or virtual one) skews their ratio. The bench therefore ends with the ratio of cachio to
//! the bare service measured interleaved: rounds of [`BATCH`] requests to each, in alternating
//! order, and the median and quartiles of the per-round ratios.
//!
//! For a profiler, `--profile=layer` (or `--profile=bare`) runs only 1 KiB hits through cachio (or
//! the bare service), `CACHIO_BENCH_HITS` of them (2 000 000 by default):
//! `valgrind --tool=callgrind <bench binary> --profile=layer` with `CACHIO_BENCH_HITS=100000`
//! gives the instructions per hit as the total over the hits.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cachio::{CACHE_STATUS, CacheLayer, MemoryStore};
use criterion::{Criterion, Throughput, criterion_group};
use http_cache::{MokaCache, MokaManager};
use http_cache_tower::HttpCacheLayer;
use tower::Layer;

mod common;
use common::{Prebuilt, fetch, origin};

fn hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (label, size) in [("1KiB", 1 << 10), ("100KiB", 100 << 10), ("1MiB", 1 << 20)] {
        let uri = "http://origin.example/api/items?page=1";

        let bare = origin(Prebuilt::new(size));
        let cachio_origin = Prebuilt::new(size);
        let cachio =
            CacheLayer::private(MemoryStore::new(64 << 20)).layer(origin(cachio_origin.clone()));
        let hct_origin = Prebuilt::new(size);
        let hct = HttpCacheLayer::new(MokaManager::new(MokaCache::new(1_000)))
            .layer(origin(hct_origin.clone()));
        // Store the response in both caches and check, outside the timing, that the next request
        // is a hit in each.
        rt.block_on(async {
            fetch(&cachio, uri).await;
            let res = fetch(&cachio, uri).await;
            let status = res.headers()[CACHE_STATUS].to_str().unwrap();
            assert!(
                status.split(';').any(|p| p.trim() == "hit"),
                "cachio: the warm request is not a hit: {status}"
            );
            assert_eq!(res.body().len(), size);

            fetch(&hct, uri).await;
            let res = fetch(&hct, uri).await;
            assert_eq!(res.body().len(), size);
            assert_eq!(
                hct_origin.calls.load(Ordering::Relaxed),
                1,
                "http-cache-tower: the warm request reached the origin"
            );
        });

        let mut group = c.benchmark_group(format!("hit/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function("bare", |b| b.to_async(&rt).iter(|| fetch(&bare, uri)));
        group.bench_function("cachio", |b| b.to_async(&rt).iter(|| fetch(&cachio, uri)));
        group.bench_function("http-cache-tower", |b| {
            b.to_async(&rt).iter(|| fetch(&hct, uri))
        });
        group.finish();

        // Every measured cache request was a hit: the origins saw only the warming miss.
        assert_eq!(
            cachio_origin.calls.load(Ordering::Relaxed),
            1,
            "cachio forwarded a request"
        );
        assert_eq!(
            hct_origin.calls.load(Ordering::Relaxed),
            1,
            "http-cache-tower forwarded a request"
        );
    }
}

/// Requests per service in one interleaved round.
const BATCH: u32 = 20_000;

/// Interleaved rounds per body size.
const ROUNDS: usize = 31;

/// The cost of a cachio hit relative to the bare service, measured interleaved (see the module
/// documentation) and printed; `_c` is unused, the function runs in criterion's group for its
/// place in the output.
fn interleaved_ratio(_c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let uri = "http://origin.example/api/items?page=1";
    println!(
        "\ncachio hit / bare service, interleaved ({ROUNDS} rounds of {BATCH} requests each):"
    );
    println!(
        "{:<8} {:>10} {:>10} {:>8} {:>16}",
        "body", "bare", "cachio", "ratio", "quartiles"
    );
    for (label, size) in [("1KiB", 1 << 10), ("100KiB", 100 << 10), ("1MiB", 1 << 20)] {
        let bare = origin(Prebuilt::new(size));
        let cachio_origin = Prebuilt::new(size);
        let cachio =
            CacheLayer::private(MemoryStore::new(64 << 20)).layer(origin(cachio_origin.clone()));
        let (mut bare_t, mut cachio_t, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        rt.block_on(async {
            // Warm both, and store the response.
            batch(&bare, uri).await;
            batch(&cachio, uri).await;
            for round in 0..ROUNDS {
                let (b, c) = if round % 2 == 0 {
                    let b = batch(&bare, uri).await;
                    (b, batch(&cachio, uri).await)
                } else {
                    let c = batch(&cachio, uri).await;
                    (batch(&bare, uri).await, c)
                };
                bare_t.push(b);
                cachio_t.push(c);
                ratios.push(c.as_secs_f64() / b.as_secs_f64());
            }
        });
        assert_eq!(
            cachio_origin.calls.load(Ordering::Relaxed),
            1,
            "cachio forwarded a request"
        );
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        ratios.sort_by(f64::total_cmp);
        let q = |f: f64| ratios[((ratios.len() - 1) as f64 * f).round() as usize];
        println!(
            "{label:<8} {:>7.0} ns {:>7.0} ns {:>7.2}× {:>7.2}–{:.2}×",
            median(&mut bare_t).as_nanos(),
            median(&mut cachio_t).as_nanos(),
            q(0.5),
            q(0.25),
            q(0.75)
        );
    }
}

/// The mean time of one request in a batch of [`BATCH`].
async fn batch<S, B>(svc: &S, uri: &'static str) -> Duration
where
    S: tower::Service<
            http::Request<http_body_util::Empty<bytes::Bytes>>,
            Response = http::Response<B>,
        > + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let start = Instant::now();
    for _ in 0..BATCH {
        std::hint::black_box(fetch(svc, uri).await);
    }
    start.elapsed() / BATCH
}

/// Hits of 1 KiB and nothing else, for a profiler (see the module documentation).
fn profile(what: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let uri = "http://origin.example/api/items?page=1";
    let hits: u32 = std::env::var("CACHIO_BENCH_HITS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000_000);
    let bare = origin(Prebuilt::new(1 << 10));
    let cachio =
        CacheLayer::private(MemoryStore::new(64 << 20)).layer(origin(Prebuilt::new(1 << 10)));
    rt.block_on(async {
        fetch(&cachio, uri).await;
        for _ in 0..hits {
            if what == "bare" {
                std::hint::black_box(fetch(&bare, uri).await);
            } else {
                std::hint::black_box(fetch(&cachio, uri).await);
            }
        }
    });
}

criterion_group!(benches, hit, interleaved_ratio);

fn main() {
    if let Some(what) =
        std::env::args().find_map(|a| a.strip_prefix("--profile=").map(str::to_owned))
    {
        profile(&what);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
