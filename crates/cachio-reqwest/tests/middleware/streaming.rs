//! Bodies stream through the middleware: a miss is not buffered, memory stays bounded, a hit
//! streams from the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cachio_reqwest::{CacheLayer, CacheMode};
use tokio::sync::Notify;
use tokio::time::timeout;

use crate::support::{Harness, KIB, MIB, memory, ok, pattern};

/// A field of `/proc/self/status`, in bytes (Linux).
fn proc_status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of kB");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_large_body_streams_through_a_miss_in_bounded_memory() {
    const CHUNK: usize = 256 * KIB;
    const TOTAL: usize = 256 * MIB;
    let go = Arc::new(Notify::new());
    let origin_done = Arc::new(AtomicBool::new(false));
    // One chunk of the pattern, sent again and again: each position tells which byte it is.
    let chunk = pattern(CHUNK);
    let layer = CacheLayer::private(memory()).max_object_size(MIB as u64);
    let h = Harness::with(layer, {
        let (go, origin_done, chunk) = (go.clone(), origin_done.clone(), chunk.clone());
        move |_| {
            let (go, origin_done, chunk) = (go.clone(), origin_done.clone(), chunk.clone());
            // No Content-Length: the cache learns the size only as the body passes.
            ok("").cc("max-age=600").stream(move |feed| async move {
                if !feed.send(chunk.clone()).await {
                    return;
                }
                go.notified().await;
                for _ in 1..TOTAL / CHUNK {
                    if !feed.send(chunk.clone()).await {
                        return;
                    }
                }
                origin_done.store(true, Ordering::SeqCst);
            })
        }
    })
    .await;

    let started = Instant::now();
    let rss_before = proc_status("VmRSS:");
    let hwm_before = proc_status("VmHWM:");
    let mut res = timeout(Duration::from_secs(10), h.get_req("/big").send())
        .await
        .expect("the head arrives before the body is complete")
        .expect("the request succeeds");
    assert_eq!(res.status(), 200);
    let first = timeout(Duration::from_secs(10), res.chunk())
        .await
        .expect("the first chunk arrives while the origin waits")
        .expect("no error")
        .expect("a chunk");
    assert!(!first.is_empty());
    assert!(
        !origin_done.load(Ordering::SeqCst),
        "the origin had not finished"
    );
    go.notify_one();

    let mut received = 0;
    let mut check = |data: &Bytes| {
        for (i, b) in data.iter().enumerate() {
            let at = (received + i) % CHUNK;
            assert_eq!(*b, chunk[at], "byte {} differs", received + i);
        }
        received += data.len();
    };
    check(&first);
    let mut max_rss = proc_status("VmRSS:");
    let mut chunks = 1u64;
    while let Some(data) = timeout(Duration::from_secs(30), res.chunk())
        .await
        .expect("the body keeps flowing")
        .expect("no error")
    {
        check(&data);
        chunks += 1;
        if chunks.is_multiple_of(64) {
            max_rss = max_rss.max(proc_status("VmRSS:"));
        }
    }
    assert_eq!(received, TOTAL);
    assert!(origin_done.load(Ordering::SeqCst));
    let hwm_after = proc_status("VmHWM:");
    max_rss = max_rss.max(proc_status("VmRSS:"));
    let limit = 64 * MIB as u64;
    assert!(
        max_rss.saturating_sub(rss_before) < limit,
        "RSS grew by {} MiB",
        (max_rss - rss_before) >> 20
    );
    assert!(
        hwm_after.saturating_sub(hwm_before.max(rss_before)) < limit,
        "peak RSS grew by {} MiB",
        (hwm_after - hwm_before.max(rss_before)) >> 20
    );
    // Larger than max_object_size: passed on, not stored.
    let again = h
        .send(h.get_req("/big").with_extension(CacheMode::OnlyIfCached))
        .await;
    assert_eq!(again.status, 504);
    assert_eq!(h.count(), 1);
    eprintln!("256 MiB through a miss in {:?}", started.elapsed());
}

#[tokio::test]
async fn rfc9111_3_a_body_that_fits_is_stored_whole_and_a_hit_streams_it() {
    let data = pattern(3 * MIB + 12_345);
    let h = Harness::private({
        let data = data.clone();
        move |_| {
            let data = data.clone();
            ok("").cc("max-age=600").stream(move |feed| async move {
                for c in data.chunks(64 * KIB) {
                    if !feed.send(data.slice_ref(c)).await {
                        return;
                    }
                }
            })
        }
    })
    .await;
    let miss = h.get("/r").await;
    assert!(miss.body == data, "the miss body differs");
    assert!(
        miss.cache_status().ends_with("stored"),
        "{}",
        miss.cache_status()
    );
    let mut hit = h.get_req("/r").send().await.unwrap();
    assert!(
        hit.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("hit")
    );
    let mut got = Vec::with_capacity(data.len());
    let mut chunks = 0;
    while let Some(c) = hit.chunk().await.unwrap() {
        got.extend_from_slice(&c);
        chunks += 1;
    }
    assert!(got == data, "the hit body differs");
    assert!(
        chunks > 1,
        "the hit comes as the chunks stored, not one buffer"
    );
    assert_eq!(h.count(), 1);
}
