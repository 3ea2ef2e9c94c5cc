//! The disk tier behind memory (`--disk-dir`): entries survive a restart.

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
