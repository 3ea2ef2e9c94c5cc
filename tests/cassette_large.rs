//! A 64 MiB body records and replays with bounded memory: it streams to its file and back.
//! Alone in its binary, so that no other test's memory counts in the figures.

#[path = "cassette/support.rs"]
mod support;

use bytes::Bytes;
use cachio_cassette::{Cassette, Mode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use support::{BIG, MIB, Origin, pattern};
use tower::{ServiceBuilder, ServiceExt};

/// A field of `/proc/self/status`, in bytes.
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

/// Fetches `url` through the cassette's layer, checks every byte of the body as it streams, and
/// returns how much the resident and peak memory grew meanwhile.
async fn fetch(cassette: &Cassette, url: &str) -> (u64, u64) {
    let http = HyperClient::builder(TokioExecutor::new()).build(HttpConnector::new());
    let svc = ServiceBuilder::new().layer(cassette.layer()).service(http);
    let rss_before = proc_status("VmRSS:");
    let hwm_before = proc_status("VmHWM:");
    let req = http::Request::get(url).body(Empty::<Bytes>::new()).unwrap();
    let res = svc.oneshot(req).await.expect("a response");
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut at = 0u64;
    let mut max_rss = rss_before;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("no error mid-body");
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for (i, b) in data.iter().enumerate() {
            assert_eq!(*b, pattern(at + i as u64), "byte {}", at + i as u64);
        }
        at += data.len() as u64;
        if at % (4 * MIB) < data.len() as u64 {
            max_rss = max_rss.max(proc_status("VmRSS:"));
        }
    }
    assert_eq!(at, BIG, "the whole body");
    max_rss = max_rss.max(proc_status("VmRSS:"));
    let hwm_after = proc_status("VmHWM:");
    (
        max_rss.saturating_sub(rss_before),
        hwm_after.saturating_sub(hwm_before.max(rss_before)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_body_records_and_replays_with_bounded_memory() {
    let limit = 24 * MIB;
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let url = origin.url("/big");

    let recording = Cassette::open(dir.path(), Mode::Record).unwrap();
    let (rss, peak) = fetch(&recording, &url).await;
    eprintln!(
        "recording 64 MiB: RSS +{} KiB, peak +{} KiB",
        rss >> 10,
        peak >> 10
    );
    assert!(
        rss < limit && peak < limit,
        "recording grew RSS by {rss} B, peak by {peak} B"
    );
    origin.stop().await;
    let body_files: Vec<u64> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "body"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    assert_eq!(body_files, [BIG], "the body is recorded whole");

    let replaying = Cassette::open(dir.path(), Mode::Replay).unwrap();
    let (rss, peak) = fetch(&replaying, &url).await;
    eprintln!(
        "replaying 64 MiB: RSS +{} KiB, peak +{} KiB",
        rss >> 10,
        peak >> 10
    );
    assert!(
        rss < limit && peak < limit,
        "replaying grew RSS by {rss} B, peak by {peak} B"
    );
}
