//! A memory hit: the same response served by the bare inner service, by cachio from a
//! `MemoryStore`, and by http-cache-tower from its moka manager, for bodies of 1 KiB, 100 KiB and
//! 1 MiB (`Cache-Control: max-age=3600`, ten other realistic header fields).
//!
//! One iteration sends a GET and reads the whole body. Run with
//! `cargo bench --bench hit -- --warm-up-time 1 --measurement-time 3`.

use std::sync::atomic::Ordering;

use cachio::{CACHE_STATUS, CacheLayer, MemoryStore};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
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

criterion_group!(benches, hit);
criterion_main!(benches);
