//! A 256 MiB body, sent by the origin in 64 KiB chunks of unknown total length, read to the end
//! by the caller: time to first byte, total time and peak resident set growth (`VmHWM`) for the
//! bare origin, for cachio when the body is larger than its object limit (it streams through and
//! is not stored), for cachio storing it (the tee keeps the chunks as they pass), and for
//! http-cache-tower (which reads the whole body before answering).
//!
//! Each variant runs in a child process of this binary so that its peak is its own. Run with
//! `cargo bench --bench streaming`.

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use cachio::{CACHE_STATUS, CacheLayer, MemoryStore, MemoryStoreBuilder};
use http::{HeaderValue, Request, Response, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty};
use http_cache::{MokaCache, MokaManager};
use http_cache_tower::HttpCacheLayer;
use tower::{Layer, Service, ServiceExt};

mod common;
use common::proc_status;

/// The body size.
const TOTAL: usize = 256 << 20;

/// The size of each chunk the origin sends.
const CHUNK: usize = 64 << 10;

const URI: &str = "http://origin.example/large.bin";

/// A URL with a small body ([`WARM_LEN`]), fetched once before measuring so that the code is warm.
const WARM_URI: &str = "http://origin.example/warm";

/// The warm body's size: small, so that every variant starts from the same heap. A cache keeps
/// the body it warms with; were it a 64 KiB chunk, the bare origin alone would have freed one,
/// and its first measured chunk would reuse memory already faulted in while a cache's takes
/// fresh pages (about 35 µs of page faults per 64 KiB on a virtual machine), which is no work of
/// the cache's.
const WARM_LEN: usize = 1024;

/// The number of runs (processes) per variant; the table shows the medians.
const RUNS: usize = 3;

/// The variants, in the order they are printed.
const VARIANTS: [(&str, &str); 4] = [
    ("bare", "bare origin"),
    ("cachio-passthrough", "cachio, over its 1 MiB object limit"),
    ("cachio-stored", "cachio, stored in a 1 GiB MemoryStore"),
    ("http-cache-tower", "http-cache-tower, MokaManager"),
];

/// A body of `remaining` bytes in chunks of [`CHUNK`] bytes, each in a fresh allocation (as a
/// network origin's would be), with no declared length.
struct Chunks {
    remaining: usize,
    n: u8,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let len = self.remaining.min(CHUNK);
        self.remaining -= len;
        self.n = self.n.wrapping_add(1);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![self.n | 1; len])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }
}

/// The origin: a cacheable [`Chunks`] body; counts its calls.
#[derive(Clone, Default)]
struct Origin(Arc<AtomicUsize>);

impl Service<Request<Empty<Bytes>>> for Origin {
    type Response = Response<Chunks>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Empty<Bytes>>) -> Self::Future {
        let remaining = if req.uri().path() == "/warm" {
            WARM_LEN
        } else {
            self.0.fetch_add(1, Ordering::Relaxed);
            TOTAL
        };
        let mut res = Response::new(Chunks { remaining, n: 0 });
        let headers = res.headers_mut();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=3600"),
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        ready(Ok(res))
    }
}

/// What one fetch measured.
struct Fetch {
    ttfb: Duration,
    total: Duration,
    headers: http::HeaderMap,
}

/// Sends a GET for `uri` and reads the body to the end, frame by frame, dropping each.
async fn fetch<S, B>(svc: &S, uri: &str, len: usize) -> Fetch
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>> + Clone,
    S::Error: Debug,
    B: Body,
    B::Error: Debug,
{
    let start = Instant::now();
    let res = svc
        .clone()
        .oneshot(Request::get(uri).body(Empty::new()).unwrap())
        .await
        .unwrap();
    let (head, body) = res.into_parts();
    let mut body = std::pin::pin!(body);
    let mut ttfb = None;
    let mut read = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            ttfb.get_or_insert_with(|| start.elapsed());
            read += data.remaining();
        }
    }
    let total = start.elapsed();
    assert_eq!(read, len, "the body was cut short");
    Fetch {
        ttfb: ttfb.unwrap_or(total),
        total,
        headers: head.headers,
    }
}

/// Runs one variant and prints `RESULT ttfb_us total_us peak_growth stored`.
fn child(variant: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let origin = Origin::default();
        let small = MemoryStore::new(64 << 20);
        let large: MemoryStore = MemoryStoreBuilder::default()
            .max_capacity_bytes(1 << 30)
            .max_body_size(512 << 20)
            .build();
        let hct = HttpCacheLayer::new(MokaManager::new(MokaCache::new(100))).layer(origin.clone());
        let passthrough = CacheLayer::private(small)
            .max_object_size(1 << 20)
            .layer(origin.clone());
        let stored = CacheLayer::private(large)
            .max_object_size(512 << 20)
            .layer(origin.clone());

        match variant {
            "bare" => fetch(&origin, WARM_URI, WARM_LEN).await,
            "cachio-passthrough" => fetch(&passthrough, WARM_URI, WARM_LEN).await,
            "cachio-stored" => fetch(&stored, WARM_URI, WARM_LEN).await,
            "http-cache-tower" => fetch(&hct, WARM_URI, WARM_LEN).await,
            other => panic!("unknown variant {other}"),
        };
        let before = proc_status("VmRSS");
        let fetch = match variant {
            "bare" => fetch(&origin, URI, TOTAL).await,
            "cachio-passthrough" => fetch(&passthrough, URI, TOTAL).await,
            "cachio-stored" => fetch(&stored, URI, TOTAL).await,
            "http-cache-tower" => fetch(&hct, URI, TOTAL).await,
            other => panic!("unknown variant {other}"),
        };
        let peak = proc_status("VmHWM").saturating_sub(before);

        // Outside the measurement: was the body stored? A second request must not reach the
        // origin, and must be a hit.
        let is_stored = match variant {
            "bare" => false,
            "cachio-passthrough" | "cachio-stored" => {
                let svc = if variant == "cachio-stored" {
                    &stored
                } else {
                    &passthrough
                };
                let status = fetch.headers[CACHE_STATUS].to_str().unwrap().to_owned();
                let again = self::fetch(svc, URI, TOTAL).await;
                let hit = again.headers[CACHE_STATUS].to_str().unwrap();
                println!("first: {status}; second: {hit}");
                hit.split(';').any(|p| p.trim() == "hit")
            }
            _ => {
                self::fetch(&hct, URI, TOTAL).await;
                origin.0.load(Ordering::Relaxed) == 1
            }
        };
        println!(
            "RESULT {} {} {peak} {is_stored}",
            fetch.ttfb.as_micros(),
            fetch.total.as_micros()
        );
    });
}

fn main() -> ExitCode {
    if let Some(variant) =
        std::env::args().find_map(|a| a.strip_prefix("--variant=").map(str::to_owned))
    {
        child(&variant);
        return ExitCode::SUCCESS;
    }

    let exe = std::env::current_exe().unwrap();
    println!(
        "streaming: a {} MiB body in {} KiB chunks of unknown total length, read to the end",
        TOTAL >> 20,
        CHUNK >> 10
    );
    println!(
        "(median of {RUNS} runs, each in its own process; peak = VmHWM at the end minus VmRSS at the start)\n"
    );
    println!(
        "{:<40} {:>11} {:>11} {:>11} {:>12} {:>7}",
        "variant", "first byte", "total", "throughput", "peak growth", "stored"
    );
    for (variant, label) in VARIANTS {
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            let out = Command::new(&exe)
                .arg(format!("--variant={variant}"))
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let Some(result) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
                eprintln!(
                    "{variant} failed:\n{stdout}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                return ExitCode::FAILURE;
            };
            let f: Vec<&str> = result.split_whitespace().collect();
            let num = |i: usize| f[i].parse::<f64>().unwrap();
            runs.push(([num(0), num(1), num(2)], f[3] == "true"));
        }
        let median = |i: usize| {
            let mut v: Vec<f64> = runs.iter().map(|r| r.0[i]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (ttfb, total, peak) = (median(0), median(1), median(2));
        let stored = if runs.iter().all(|r| r.1) {
            "yes"
        } else if runs.iter().any(|r| r.1) {
            "some"
        } else {
            "no"
        };
        let ms = |us: f64| {
            if us < 1000.0 {
                format!("{us:.0} µs")
            } else {
                format!("{:.1} ms", us / 1000.0)
            }
        };
        println!(
            "{label:<40} {:>11} {:>11} {:>7.0} MB/s {:>8.1} MiB {stored:>7}",
            ms(ttfb),
            ms(total),
            TOTAL as f64 / total,
            peak / (1 << 20) as f64,
        );
    }
    ExitCode::SUCCESS
}
