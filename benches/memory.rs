//! Memory per stored entry: fills a cache with N responses of a 1 KiB body and eleven header
//! fields (about 1.35 KB of response each), one URL each, and reports the growth of the
//! process's resident set (`VmRSS`) per entry, for cachio's `MemoryStore` and for
//! http-cache-tower's moka manager.
//!
//! Each variant runs in a child process of this binary, so that one variant's freed memory does
//! not serve the next one's allocations. The origin is either in-process (a service that builds
//! each response in fresh allocations) or a hyper server on 127.0.0.1 reached through a
//! hyper-util client (the header values and body chunks are then slices of hyper's read buffers).
//!
//! A last variant reads every stored entry once more after the fill: each read entry then also
//! keeps the header map its hits serve (the store's budget for them is raised so that every one
//! fits), and its weight includes those maps' estimated bytes.
//!
//! Run with `cargo bench --bench memory`; `CACHIO_BENCH_ENTRIES` sets N (default 100 000).

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::{Ready, ready};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use cachio::{CacheLayer, MemoryStore};
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body::Body;
use http_body_util::{BodyExt, Empty, Full};
use http_cache::{MokaCache, MokaManager};
use http_cache_tower::HttpCacheLayer;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::{Layer, Service, ServiceExt};

/// The body size of every response.
const BODY: usize = 1024;

/// The variants, in the order they are printed.
const VARIANTS: [(&str, &str); 5] = [
    ("cachio", "cachio MemoryStore, in-process origin"),
    (
        "http-cache-tower",
        "http-cache-tower MokaManager, in-process origin",
    ),
    ("cachio-hyper", "cachio MemoryStore, hyper origin"),
    (
        "http-cache-tower-hyper",
        "http-cache-tower MokaManager, hyper origin",
    ),
    ("cachio-read", "cachio MemoryStore, every entry read once"),
];

/// Response `i` of the origin, built in fresh allocations as a network origin's would be.
fn response(i: u64) -> Response<Full<Bytes>> {
    let now = SystemTime::now();
    let date = |t: SystemTime| HeaderValue::try_from(httpdate::fmt_http_date(t)).unwrap();
    let owned = |s: String| HeaderValue::try_from(s).unwrap();
    let mut headers = HeaderMap::with_capacity(11);
    for (name, value) in [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (header::CONTENT_LENGTH, HeaderValue::from(BODY)),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=3600"),
        ),
        (header::DATE, date(now)),
        (
            header::LAST_MODIFIED,
            date(now - Duration::from_secs(86_400)),
        ),
        (header::ETAG, owned(format!("\"{i:x}-1a2b3c4d5e6f\""))),
        (header::SERVER, HeaderValue::from_static("nginx/1.27.0")),
        (
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ),
        (
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ] {
        headers.insert(name, value);
    }
    headers.insert(
        "x-request-id",
        owned(format!("7f9c2ba4-e88f-11ee-a7d5-{i:012x}")),
    );
    let mut res = Response::new(Full::new(Bytes::from(vec![b'a' + (i % 26) as u8; BODY])));
    *res.headers_mut() = headers;
    res
}

/// The number in a path `/items/{i}`.
fn item(uri: &http::Uri) -> u64 {
    uri.path()
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The in-process origin.
#[derive(Clone, Copy)]
struct Origin;

impl<B> Service<Request<B>> for Origin {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(response(item(req.uri()))))
    }
}

/// Serves [`Origin`] on an ephemeral port of 127.0.0.1; returns its base URL.
async fn start_hyper_origin() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req| Origin.call(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// Sends GET `{base}/items/{i}` for every `i < n` and reads every body.
async fn fill<S, B>(svc: S, base: &str, n: u64)
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>> + Clone,
    S::Error: Debug,
    B: Body,
    B::Error: Debug,
{
    for i in 0..n {
        let req = Request::get(format!("{base}/items/{i}"))
            .body(Empty::new())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert!(res.status().is_success());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), BODY);
    }
}

/// The resident set size of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Runs one variant and prints `RESULT entries rss_growth weight fill_ms`.
fn child(variant: &str, n: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let hyper_origin = variant.ends_with("-hyper");
        let base = if hyper_origin {
            start_hyper_origin().await
        } else {
            "http://origin.example".to_owned()
        };
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        // Room for every entry: no eviction, and moka's frequency sketch is never enabled.
        let capacity = n * 8192 + (64 << 20);
        let store = if variant == "cachio-read" {
            MemoryStore::builder()
                .max_capacity_bytes(capacity)
                .header_map_share(0.5)
                .build()
        } else {
            MemoryStore::new(capacity)
        };
        let hct_cache: MokaCache<String, Arc<Vec<u8>>> = MokaCache::new(2 * n + 1000);

        let before = rss();
        let start = Instant::now();
        match variant {
            "cachio" => fill(CacheLayer::private(store.clone()).layer(Origin), &base, n).await,
            "cachio-hyper" => {
                fill(CacheLayer::private(store.clone()).layer(client), &base, n).await
            }
            "cachio-read" => {
                let cache = CacheLayer::private(store.clone()).layer(Origin);
                fill(cache.clone(), &base, n).await;
                fill(cache, &base, n).await;
            }
            "http-cache-tower" => {
                let layer = HttpCacheLayer::new(MokaManager::new(hct_cache.clone()));
                fill(layer.layer(Origin), &base, n).await;
            }
            "http-cache-tower-hyper" => {
                let layer = HttpCacheLayer::new(MokaManager::new(hct_cache.clone()));
                fill(layer.layer(client), &base, n).await;
            }
            other => panic!("unknown variant {other}"),
        }
        let elapsed = start.elapsed();
        let (entries, weight) = if variant.starts_with("cachio") {
            store.run_pending_tasks().await;
            (
                store.entry_count(),
                store.weighted_size() + store.header_map_bytes(),
            )
        } else {
            hct_cache.run_pending_tasks().await;
            (hct_cache.entry_count(), 0)
        };
        let growth = rss().saturating_sub(before);
        assert_eq!(entries, n, "{variant}: not every response was stored");
        println!("RESULT {entries} {growth} {weight} {}", elapsed.as_millis());
    });
}

fn main() -> ExitCode {
    let n: u64 = std::env::var("CACHIO_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    if let Some(variant) =
        std::env::args().find_map(|a| a.strip_prefix("--variant=").map(str::to_owned))
    {
        child(&variant, n);
        return ExitCode::SUCCESS;
    }

    let exe = std::env::current_exe().unwrap();
    println!("memory per entry: {n} responses of {BODY} B bodies + 11 header fields, one URL each");
    println!(
        "(resident set growth after the fill and moka's pending tasks, each variant in its own process)\n"
    );
    println!(
        "{:<48} {:>9} {:>12} {:>12} {:>14} {:>9}",
        "variant", "entries", "RSS growth", "bytes/entry", "weight/entry", "fill"
    );
    for (variant, label) in VARIANTS {
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
        let f: Vec<u64> = result
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let (entries, growth, weight, ms) = (f[0], f[1], f[2], f[3]);
        let weight = if weight == 0 {
            "-".to_owned()
        } else {
            format!("{:.0} B", weight as f64 / entries as f64)
        };
        println!(
            "{label:<48} {entries:>9} {:>9.1} MiB {:>10.0} B {weight:>14} {:>6} ms",
            growth as f64 / (1 << 20) as f64,
            growth as f64 / entries as f64,
            ms
        );
    }
    ExitCode::SUCCESS
}
