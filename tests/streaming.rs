//! Bodies stream through the cache: a miss is not buffered, memory stays bounded, only complete
//! bodies are stored.

#[allow(dead_code, reason = "each test file uses part of the support module")]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cachio::CacheLayer;
use http_body_util::BodyExt;
use support::{Harness, memory, ok, reply};
use tokio::sync::Notify;
use tokio::time::timeout;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

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

/// `len` bytes of a pattern that shows misplaced or repeated chunks.
fn pattern(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251 % 256) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Whether the cache holds a response for `path` (asked with `only-if-cached`, so the origin is
/// never contacted).
async fn is_stored<St: cachio::Store>(h: &Harness<St>, path: &str) -> bool {
    support::settle().await;
    let res = h
        .send(h.req(path).header("cache-control", "only-if-cached"))
        .await;
    res.status != 504
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_body_streams_through_a_miss_in_bounded_memory() {
    const CHUNK: usize = 64 * KIB;
    const TOTAL: usize = 256 * MIB;
    let go = Arc::new(Notify::new());
    let origin_done = Arc::new(AtomicBool::new(false));
    let layer = CacheLayer::private(memory()).max_object_size(MIB as u64);
    let h = Harness::with(layer, {
        let go = go.clone();
        let origin_done = origin_done.clone();
        move |_| {
            let go = go.clone();
            let origin_done = origin_done.clone();
            // No Content-Length: the cache learns the size only as the body passes.
            ok("").cc("max-age=600").stream(move |feed| async move {
                let chunk = Bytes::from(vec![b'x'; CHUNK]);
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

    let rss_before = proc_status("VmRSS:");
    let hwm_before = proc_status("VmHWM:");
    let res = timeout(Duration::from_secs(10), h.call(h.req("/big")))
        .await
        .expect("the head arrives before the body is complete")
        .expect("the request succeeds");
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let first = timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the first chunk arrives while the origin waits")
        .expect("a frame")
        .expect("no error");
    let mut received = first.into_data().expect("data").len();
    assert!(received > 0);
    assert!(
        !origin_done.load(Ordering::SeqCst),
        "the origin had not finished"
    );
    go.notify_one();

    let mut max_rss = proc_status("VmRSS:");
    let mut frames = 0u64;
    while let Some(frame) = timeout(Duration::from_secs(30), body.frame())
        .await
        .expect("the body keeps flowing")
    {
        let frame = frame.expect("no error");
        if let Some(data) = frame.data_ref() {
            assert!(data.iter().all(|b| *b == b'x'));
            received += data.len();
        }
        frames += 1;
        if frames.is_multiple_of(256) {
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
    // Larger than max_object_size: not stored.
    assert!(!is_stored(&h, "/big").await);
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn body_that_fits_is_stored_exactly() {
    let data = pattern(3 * MIB + 12_345);
    let h = Harness::private({
        let data = data.clone();
        move |s| {
            let data = data.clone();
            let r = ok("").cc("max-age=600");
            let r = if s.path() == "/with-length" {
                r.header("content-length", &data.len().to_string())
            } else {
                r
            };
            // Uneven chunks, with small ones that a store may merge.
            r.stream(move |feed| async move {
                let sizes = [1, 7, 100, 4096, 65_536, 3, 200_000];
                let mut at = 0;
                for size in sizes.iter().cycle() {
                    if at == data.len() {
                        break;
                    }
                    let end = (at + size).min(data.len());
                    if !feed.send(data.slice(at..end)).await {
                        return;
                    }
                    at = end;
                }
            })
        }
    })
    .await;
    for path in ["/chunked", "/with-length"] {
        let miss = h.get(path).await;
        assert_eq!(miss.body, data, "{path}: the miss body");
        assert!(
            miss.cache_status().ends_with("stored"),
            "{path}: {}",
            miss.cache_status()
        );
        let hit = h.get(path).await;
        assert!(hit.is_hit(), "{path}: {}", hit.cache_status());
        assert_eq!(hit.body.len(), data.len(), "{path}");
        assert!(hit.body == data, "{path}: the hit body differs");
    }
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn caller_dropping_body_early_leaves_no_entry() {
    // A fill its caller leaves is finished within `fill_after_disconnect`: zero stops it.
    let layer = CacheLayer::private(memory()).fill_after_disconnect(0);
    let h = Harness::with(layer, |_| {
        ok("").cc("max-age=600").stream(|feed| async move {
            for _ in 0..64 {
                if !feed.send(Bytes::from(vec![b'y'; 16 * KIB])).await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    })
    .await;
    let res = h.call(h.req("/r")).await.unwrap();
    let mut body = res.into_body();
    let frame = body.frame().await.unwrap().unwrap();
    assert!(frame.is_data());
    drop(body);
    assert!(!is_stored(&h, "/r").await);
    let again = h.get("/r").await;
    assert!(!again.is_hit());
    assert_eq!(again.body.len(), 64 * 16 * KIB);
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn complete_body_stored_even_if_caller_never_polls_the_end() {
    let h = Harness::private(|_| ok("exactly this").cc("max-age=600")).await;
    let res = h.call(h.req("/r")).await.unwrap();
    let mut body = res.into_body();
    let mut got = Vec::new();
    // Read only as many bytes as Content-Length says, then drop the body without waiting for
    // its end.
    while got.len() < 12 {
        let frame = body.frame().await.unwrap().unwrap();
        got.extend_from_slice(frame.data_ref().unwrap());
    }
    drop(body);
    assert_eq!(got, b"exactly this");
    // The commit runs on a task of its own: wait for it (each try settles first).
    let mut stored = false;
    for _ in 0..50 {
        if is_stored(&h, "/r").await {
            stored = true;
            break;
        }
    }
    assert!(stored, "the complete body was committed");
    assert_eq!(h.get("/r").await.text(), "exactly this");
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn body_over_declared_limit_streams_but_is_not_stored() {
    let layer = CacheLayer::private(memory()).max_object_size(1000);
    let big = pattern(5000);
    let h = Harness::with(layer, {
        let big = big.clone();
        move |s| {
            let big = big.clone();
            if s.path() == "/declared" {
                ok("").cc("max-age=600").body(big)
            } else {
                ok("").cc("max-age=600").stream(move |feed| async move {
                    for c in big.chunks(100) {
                        feed.send(Bytes::copy_from_slice(c)).await;
                    }
                })
            }
        }
    })
    .await;
    let res = h.get("/declared").await;
    assert_eq!(res.body, big);
    assert!(
        !res.cache_status().contains("stored"),
        "{}",
        res.cache_status()
    );
    assert!(!is_stored(&h, "/declared").await);
    let res = h.get("/undeclared").await;
    assert_eq!(res.body, big);
    assert!(!is_stored(&h, "/undeclared").await);
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn body_failing_mid_stream_reaches_caller_as_error_and_is_not_stored() {
    let h = Harness::private(|s| {
        if s.n == 1 {
            reply(200).cc("max-age=600").fail_after("partial")
        } else {
            ok("whole").cc("max-age=600")
        }
    })
    .await;
    let res = h.call(h.req("/r")).await.unwrap();
    let mut body = res.into_body();
    let mut saw_error = false;
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            saw_error = true;
            break;
        }
    }
    assert!(saw_error, "the caller learns the body is incomplete");
    drop(body);
    assert!(!is_stored(&h, "/r").await);
    assert_eq!(h.get("/r").await.text(), "whole");
}
