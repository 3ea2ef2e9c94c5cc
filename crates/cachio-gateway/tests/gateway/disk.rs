//! The disk tier behind memory (`--disk-dir`): entries survive a restart, and a damaged
//! directory is moved aside instead of keeping the gateway from starting.

use crate::support;

use std::time::Duration;

use cachio_gateway::Gateway;
use support::{Origin, Running, client, eventually, ok, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_on_disk_are_served_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(|_req| async { ok("max-age=600", "kept on disk") }).await;
    let builder = || {
        Gateway::builder(origin.url())
            .memory_bytes(8 << 20)
            .disk(dir.path(), 64 << 20)
    };
    let c = client();
    let mut gw = Running::start(builder()).await;
    // The same Host both times: the key is the URL the client asked for, not the port.
    let host = [("host", "cdn.example.test")];
    let url = gw.url("/d");
    assert_eq!(send(&c, "GET", &url, &host).await.body, "kept on disk");
    let stats = gw.gateway.stats();
    eventually("stored", 10, || stats.snapshot().stores == 1).await;
    assert!(
        send(&c, "GET", &url, &host)
            .await
            .cache_status()
            .contains("hit")
    );
    let metrics = gw.gateway.metrics();
    assert!(
        metrics.contains("cachio_store_capacity_bytes{tier=\"disk\"} 67108864"),
        "{metrics}"
    );
    assert!(metrics.contains("cachio_disk_moved_aside 0"), "{metrics}");

    // Stop the gateway and let go of the store, then start again on the same directory.
    gw.signal_shutdown();
    gw.served.take().unwrap().await.unwrap().unwrap();
    drop(gw);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let gateway = loop {
        match builder().build() {
            Ok(g) => break g,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "cannot reopen: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    drop(gateway);
    let gw = Running::start(builder()).await;
    let got = send(&c, "GET", &gw.url("/d"), &host).await;
    assert_eq!(got.body, "kept on disk");
    assert!(got.cache_status().contains("hit"), "{}", got.cache_status());
    assert_eq!(origin.state.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_directory_is_moved_aside_and_the_metrics_say_so() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    // A file where the directory should be: what a bad restore can leave.
    std::fs::write(&dir, b"not a cache").unwrap();
    let origin = Origin::start(|_req| async { ok("max-age=600", "fetched again") }).await;
    let gw = Running::start(
        Gateway::builder(origin.url())
            .memory_bytes(8 << 20)
            .disk(&dir, 64 << 20),
    )
    .await;
    let c = client();
    assert_eq!(
        send(&c, "GET", &gw.url("/a"), &[]).await.body,
        "fetched again"
    );
    let metrics = gw.gateway.metrics();
    assert!(metrics.contains("cachio_disk_moved_aside 1"), "{metrics}");
    assert!(metrics.contains("cachio_disk_read_only 0"), "{metrics}");
    assert!(metrics.contains("cachio_disk_corrupt_total 0"), "{metrics}");
    let aside: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cache.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(root.path().join(&aside[0])).unwrap(),
        b"not a cache"
    );
    assert!(dir.is_dir(), "started with an empty directory");
}
