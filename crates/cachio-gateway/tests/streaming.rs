//! A body far larger than the object limit streams through with bounded memory.
//!
//! Alone in its test binary: it measures the peak resident memory (VmHWM) of the process.

mod support;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use cachio_gateway::Gateway;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use support::{Origin, Running, client};

/// 1 GiB, 16 times the object limit below.
const BODY: u64 = 1 << 30;
const CHUNK: usize = 64 << 10;

/// The same chunk over and over: the origin itself holds one chunk, whatever the length.
struct Repeat {
    chunk: Bytes,
    left: u64,
}

impl Body for Repeat {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len() as u64);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_streams_through_with_bounded_memory() {
    let chunk = Bytes::from(vec![7u8; CHUNK]);
    let origin = Origin::start(move |_req| {
        let chunk = chunk.clone();
        async move {
            Response::builder()
                .header("cache-control", "max-age=600")
                .header("content-length", BODY.to_string())
                .body(Repeat { chunk, left: BODY }.boxed())
                .unwrap()
        }
    })
    .await;
    let gw = Running::start(Gateway::builder(origin.url()).max_object_bytes(8 << 20)).await;
    let c = client();
    // Warm up the connections and the allocator before the baseline.
    let res = c.get(gw.url("/warm").parse().unwrap()).await.unwrap();
    drop(res);

    let before = vm_hwm_kib();
    let started = std::time::Instant::now();
    let res = c.get(gw.url("/big").parse().unwrap()).await.unwrap();
    assert_eq!(res.status(), 200);
    let status = res.headers()["cache-status"].to_str().unwrap().to_owned();
    assert!(!status.contains("stored"), "too large to store: {status}");
    let mut body = res.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            total += data.len() as u64;
        }
    }
    let growth_mib = (vm_hwm_kib() - before) / 1024;
    eprintln!(
        "{} MiB in {:.1} s, peak RSS growth {growth_mib} MiB",
        BODY >> 20,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(total, BODY);
    assert!(growth_mib < 128, "peak RSS grew by {growth_mib} MiB");
}
