//! `cachio::Client` against the bare layer it is built on.
//!
//! 1. A memory hit through `cachio::Client` (redirects, decompression, the cache, boxed behind one
//!    type) against a hit through `CacheLayer` over a bare service (a `service_fn` answering from
//!    memory, whose body is one chunk) and over hyper's client (whose stored body is in the
//!    chunks the network delivered, as the client's is), for bodies of 1 KiB and 100 KiB, each
//!    read whole: criterion's figures, then the ratios measured interleaved (rounds of [`BATCH`]
//!    requests to each, in rotating order, as in `benches/hit.rs`).
//! 2. A 256 MiB miss from a local origin on 127.0.0.1 (HTTP/1.1, 64 KiB chunks, no declared
//!    length), read to the end frame by frame: peak resident set growth (`VmHWM`) for hyper's
//!    client with no cache, for `cachio::Client` when the body is over its object limit, and for
//!    `cachio::Client` storing it in the embedded store (on disk: the body is larger than the
//!    memory tier keeps). Each variant runs in a child process of this binary, so that its peak
//!    is its own.
//!
//! Run with `cargo bench --bench client`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use cachio::{CACHE_STATUS, CacheLayer, Client, MemoryStore};
use criterion::{Criterion, Throughput};
use http::{HeaderValue, Request, Response, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::Layer;

mod common;
use common::{Prebuilt, fetch, origin, proc_status};

/// Requests per service in one interleaved round.
const BATCH: u32 = 20_000;

/// Interleaved rounds per body size.
const ROUNDS: usize = 15;

/// The large body's size, and the chunks it is sent in.
const TOTAL: usize = 256 << 20;
const CHUNK: usize = 64 << 10;

/// The bare layer's URL (its origin is a `service_fn`: the host is never resolved).
const LAYER_URI: &str = "http://origin.example/api/items?page=1";

// ---- a local origin --------------------------------------------------------------------------

/// A body of `remaining` bytes in chunks of [`CHUNK`] bytes, each a fresh allocation, with no
/// declared length.
struct Chunks {
    remaining: usize,
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
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; len])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }
}

/// Serves `/large` as [`Chunks`] and anything else as `prebuilt`, all fresh for an hour.
async fn serve(prebuilt: Arc<Prebuilt>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let prebuilt = prebuilt.clone();
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let res = if req.uri().path() == "/large" {
                    let mut res = Response::new(Chunks { remaining: TOTAL }.boxed_unsync());
                    res.headers_mut().insert(
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("max-age=3600"),
                    );
                    res
                } else {
                    let mut res = Response::new(
                        Full::new(prebuilt.body.clone())
                            .map_err(|e| match e {})
                            .boxed_unsync(),
                    );
                    *res.headers_mut() = prebuilt.headers.clone();
                    res
                };
                async move { Ok::<_, Infallible>(res) }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(tcp), svc));
        }
    });
    addr
}

/// A client over a memory store, with the response at `url` stored.
async fn warm_client(url: &str) -> Client {
    let client = Client::builder("unused")
        .store(MemoryStore::new(64 << 20))
        .build()
        .unwrap();
    for _ in 0..2 {
        let res = client.get(url).await.unwrap();
        let status = res.headers()[CACHE_STATUS].to_str().unwrap().to_owned();
        res.into_body().bytes().await.unwrap();
        if status.contains("; hit") {
            return client;
        }
    }
    panic!("the client does not hit {url}");
}

async fn client_fetch(client: &Client, url: &str) -> Bytes {
    client
        .get(url)
        .await
        .unwrap()
        .into_body()
        .bytes()
        .await
        .unwrap()
}

// ---- the hit ---------------------------------------------------------------------------------

fn hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (label, size) in [("1KiB", 1 << 10), ("100KiB", 100 << 10)] {
        let prebuilt = Prebuilt::new(size);
        let bare = CacheLayer::private(MemoryStore::new(64 << 20)).layer(origin(prebuilt.clone()));
        let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build_http::<Empty<Bytes>>();
        let over_hyper = CacheLayer::private(MemoryStore::new(64 << 20)).layer(hyper);
        let (client, url) = rt.block_on(async {
            fetch(&bare, LAYER_URI).await;
            let addr = serve(prebuilt.clone()).await;
            let url: &'static str = format!("http://{addr}/api/items?page=1").leak();
            fetch(&over_hyper, url).await;
            let res = fetch(&over_hyper, url).await;
            assert!(
                res.headers()[CACHE_STATUS]
                    .to_str()
                    .unwrap()
                    .contains("; hit")
            );
            (warm_client(url).await, url)
        });

        let mut group = c.benchmark_group(format!("client-hit/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function("CacheLayer, bare service", |b| {
            b.to_async(&rt).iter(|| fetch(&bare, LAYER_URI))
        });
        group.bench_function("CacheLayer, hyper client", |b| {
            b.to_async(&rt).iter(|| fetch(&over_hyper, url))
        });
        group.bench_function("cachio::Client", |b| {
            b.to_async(&rt).iter(|| client_fetch(&client, url))
        });
        group.finish();

        // Interleaved: each variant's median time per hit over rounds in rotating order.
        let mut times: [Vec<Duration>; 3] = Default::default();
        let mut ratios: [Vec<f64>; 2] = Default::default();
        rt.block_on(async {
            for round in 0..ROUNDS {
                let mut t = [Duration::ZERO; 3];
                for i in 0..3 {
                    let which = (round + i) % 3;
                    let start = Instant::now();
                    for _ in 0..BATCH {
                        match which {
                            0 => drop(std::hint::black_box(fetch(&bare, LAYER_URI).await)),
                            1 => drop(std::hint::black_box(fetch(&over_hyper, url).await)),
                            _ => drop(std::hint::black_box(client_fetch(&client, url).await)),
                        }
                    }
                    t[which] = start.elapsed() / BATCH;
                }
                for (i, t) in t.iter().enumerate() {
                    times[i].push(*t);
                }
                ratios[0].push(t[2].as_secs_f64() / t[0].as_secs_f64());
                ratios[1].push(t[2].as_secs_f64() / t[1].as_secs_f64());
            }
        });
        assert_eq!(
            client.stats().snapshot().misses,
            1,
            "the client forwarded a measured request"
        );
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2].as_nanos()
        };
        let q = |v: &mut Vec<f64>, f: f64| {
            v.sort_by(f64::total_cmp);
            v[((v.len() - 1) as f64 * f).round() as usize]
        };
        println!(
            "\n{label}, interleaved ({ROUNDS} rounds of {BATCH}): CacheLayer over a bare service {} ns, \
             over hyper's client {} ns, cachio::Client {} ns",
            median(&mut times[0]),
            median(&mut times[1]),
            median(&mut times[2]),
        );
        for (i, what) in [
            "CacheLayer over a bare service",
            "CacheLayer over hyper's client",
        ]
        .iter()
        .enumerate()
        {
            let r = &mut ratios[i];
            println!(
                "  cachio::Client / {what}: {:.2}× (quartiles {:.2}–{:.2}×)",
                q(r, 0.5),
                q(r, 0.25),
                q(r, 0.75)
            );
        }
        println!();
    }
}

// ---- the large miss ------------------------------------------------------------------------------

/// The variants of the large miss, in the order they are printed.
const VARIANTS: [(&str, &str); 3] = [
    ("hyper", "hyper client, no cache"),
    (
        "client-passthrough",
        "cachio::Client, over its object limit",
    ),
    ("client-disk", "cachio::Client, stored on disk"),
];

/// Reads `body` to the end frame by frame; the number of bytes.
async fn drain<B: Body<Error: std::fmt::Debug> + Unpin>(mut body: B) -> usize {
    let mut read = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            read += data.remaining();
        }
    }
    read
}

/// Runs one variant of the large miss and prints `RESULT total_us peak_growth stored`.
fn child(variant: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let addr = serve(Prebuilt::new(1024)).await;
        let small = format!("http://{addr}/warm");
        let url = format!("http://{addr}/large");
        let dir = tempfile::tempdir().unwrap();
        let client = match variant {
            "client-passthrough" => Some(
                Client::builder("unused")
                    .store(MemoryStore::new(64 << 20))
                    .layer(|l| l.max_object_size(1 << 20))
                    .build()
                    .unwrap(),
            ),
            "client-disk" => {
                let store = cachio::Embedded::builder(dir.path())
                    .disk_bytes(4 << 30)
                    .open()
                    .unwrap();
                Some(
                    Client::builder("unused")
                        .store(store)
                        .layer(|l| l.max_object_size(512 << 20))
                        .build()
                        .unwrap(),
                )
            }
            _ => None,
        };
        let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build_http::<Empty<Bytes>>();

        // Warm the code paths with a small body, then measure.
        let get = |url: &str| hyper.get(url.parse().unwrap());
        match &client {
            Some(client) => drop(client_fetch(client, &small).await),
            None => drop(drain(get(&small).await.unwrap().into_body()).await),
        }
        let before = proc_status("VmRSS");
        let start = Instant::now();
        let read = match &client {
            Some(client) => drain(client.get(&url).await.unwrap().into_body()).await,
            None => drain(get(&url).await.unwrap().into_body()).await,
        };
        let total = start.elapsed();
        let peak = proc_status("VmHWM").saturating_sub(before);
        assert_eq!(read, TOTAL, "the body was cut short");

        let stored = match &client {
            Some(client) => {
                let res = client.get(&url).await.unwrap();
                let hit = res.headers()[CACHE_STATUS]
                    .to_str()
                    .unwrap()
                    .contains("; hit");
                drain(res.into_body()).await;
                hit
            }
            None => false,
        };
        println!("RESULT {} {peak} {stored}", total.as_micros());
    });
}

fn large_miss() -> Result<(), String> {
    let exe = std::env::current_exe().unwrap();
    println!(
        "\nA {} MiB miss from an origin on 127.0.0.1 in {} KiB chunks, read to the end",
        TOTAL >> 20,
        CHUNK >> 10
    );
    println!("(each in its own process; peak = VmHWM at the end minus VmRSS at the start)\n");
    println!(
        "{:<40} {:>10} {:>12} {:>7}",
        "variant", "total", "peak growth", "stored"
    );
    for (variant, label) in VARIANTS {
        let out = Command::new(&exe)
            .arg(format!("--variant={variant}"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let Some(result) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
            return Err(format!(
                "{variant} failed:\n{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        };
        let f: Vec<&str> = result.split_whitespace().collect();
        let total_ms = f[0].parse::<f64>().unwrap() / 1000.0;
        let peak = f[1].parse::<f64>().unwrap() / (1 << 20) as f64;
        let stored = if f[2] == "true" { "yes" } else { "no" };
        println!("{label:<40} {total_ms:>7.0} ms {peak:>8.1} MiB {stored:>7}");
    }
    Ok(())
}

fn main() -> ExitCode {
    if let Some(variant) =
        std::env::args().find_map(|a| a.strip_prefix("--variant=").map(str::to_owned))
    {
        child(&variant);
        return ExitCode::SUCCESS;
    }
    if let Some(what) =
        std::env::args().find_map(|a| a.strip_prefix("--profile=").map(str::to_owned))
    {
        // Hits of 1 KiB and nothing else, for a profiler: `--profile=client` or
        // `--profile=layer`, and the number of hits in `CACHIO_BENCH_HITS` (2 000 000 by default).
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let prebuilt = Prebuilt::new(1024);
            let layer =
                CacheLayer::private(MemoryStore::new(64 << 20)).layer(origin(prebuilt.clone()));
            let addr = serve(prebuilt).await;
            let url = format!("http://{addr}/api/items?page=1");
            let client = warm_client(&url).await;
            fetch(&layer, LAYER_URI).await;
            let hits: u32 = std::env::var("CACHIO_BENCH_HITS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(2_000_000);
            for _ in 0..hits {
                if what == "client" {
                    std::hint::black_box(client_fetch(&client, &url).await);
                } else {
                    std::hint::black_box(fetch(&layer, LAYER_URI).await);
                }
            }
        });
        return ExitCode::SUCCESS;
    }
    let mut criterion = Criterion::default().configure_from_args();
    hit(&mut criterion);
    criterion.final_summary();
    match large_miss() {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("{why}");
            ExitCode::FAILURE
        }
    }
}
