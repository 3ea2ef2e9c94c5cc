//! The disk tier, side by side with http-cache-tower's disk managers, in two parts.
//!
//! 1. A disk hit (criterion): the same response (`Cache-Control: max-age=3600`, ten other
//!    realistic header fields) for bodies of 1 KiB, 100 KiB and 1 MiB, served by cachio from a
//!    `DiskStore` alone, by cachio from the tiered store when the memory tier cannot hold the body
//!    (so every hit reads the disk tier), and by http-cache-tower from its redb manager (the
//!    default of http-cache) and its cacache manager. Each store has its own directory in the
//!    system temporary directory; the files are in the OS page cache, as for any recently used
//!    entry. One iteration sends a GET and reads the whole body.
//!
//! 2. A miss streamed to disk: a body of 256 MiB (`CACHIO_BENCH_DISK_MIB` sets another size in
//!    MiB, e.g. 1024; 0 skips this part), sent by the origin in 64 KiB chunks of unknown total
//!    length and read to the end by the caller while the cache stores it; once from an origin as
//!    fast as the caller reads, once from one paced at 100 MB/s. Printed: time to first byte,
//!    total time, peak resident set growth (`VmHWM`), in how many runs a second request did not
//!    reach the origin (the body was stored), and how long that second request took. Each run is
//!    a child process of this binary so that its peak is its own.
//!
//! Run with `cargo bench --bench disk -- --warm-up-time 1 --measurement-time 3`. Without
//! `--bench` (as `cargo test --benches` runs it) each benchmark runs once and the miss uses 8 MiB.

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::{Future, Ready, ready};
use std::path::Path;
use std::pin::Pin;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use cachio::{CACHE_STATUS, CacheLayer, DiskStore, MemoryStore, Store, Tiered};
use criterion::{Criterion, Throughput};
use http::{HeaderValue, Request, Response, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty};
use http_cache::{CACacheManager, RedbManager};
use http_cache_tower::HttpCacheLayer;
use tower::{Layer, Service, ServiceExt};

mod common;
use common::{Prebuilt, fetch, origin, proc_status};

// ---- part 1: a disk hit -----------------------------------------------------------------------

/// A disk store of 1 GiB in `dir`.
fn disk(dir: &Path) -> DiskStore {
    DiskStore::builder(dir)
        .budget_bytes(1 << 30)
        .open()
        .unwrap()
}

/// Stores the response in a cachio cache and checks that the next request is a hit.
async fn warm_cachio<S, B>(name: &str, svc: &S, uri: &'static str, size: usize)
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>> + Clone,
    S::Error: Debug,
    B: Body,
    B::Error: Debug,
{
    fetch(svc, uri).await;
    let res = fetch(svc, uri).await;
    let status = res.headers()[CACHE_STATUS].to_str().unwrap();
    assert!(
        status.split(';').any(|p| p.trim() == "hit"),
        "cachio ({name}): the warm request is not a hit: {status}"
    );
    assert_eq!(res.body().len(), size);
}

fn disk_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let uri = "http://origin.example/api/items?page=1";
    for (label, size) in [("1KiB", 1 << 10), ("100KiB", 100 << 10), ("1MiB", 1 << 20)] {
        let dirs: [tempfile::TempDir; 4] = std::array::from_fn(|_| tempfile::tempdir().unwrap());

        let alone_origin = Prebuilt::new(size);
        let alone = CacheLayer::private(disk(dirs[0].path())).layer(origin(alone_origin.clone()));

        // A memory tier whose object limit (512 bytes) is below every body: every hit misses
        // memory and streams from the disk tier, as the first hit after a restart does.
        let tiered_origin = Prebuilt::new(size);
        let memory = MemoryStore::builder()
            .max_capacity_bytes(64 << 20)
            .max_body_size(512)
            .build();
        let tiered = CacheLayer::private(Tiered::new(memory, disk(dirs[1].path())))
            .layer(origin(tiered_origin.clone()));

        let redb_origin = Prebuilt::new(size);
        let redb =
            HttpCacheLayer::new(RedbManager::new(dirs[2].path().join("cache.redb")).unwrap())
                .layer(origin(redb_origin.clone()));

        let cacache_origin = Prebuilt::new(size);
        let cacache = HttpCacheLayer::new(CACacheManager::new(dirs[3].path().to_owned(), true))
            .layer(origin(cacache_origin.clone()));

        // Store the response in each cache and check, outside the timing, that the next request
        // is a hit, and that the tiered store did not keep the body in memory.
        rt.block_on(async {
            warm_cachio("DiskStore", &alone, uri, size).await;
            warm_cachio("tiered", &tiered, uri, size).await;
            let in_memory = tiered.store().first().get(uri).await.unwrap();
            assert!(in_memory.is_none(), "the memory tier kept the body");
            fetch(&redb, uri).await;
            assert_eq!(fetch(&redb, uri).await.body().len(), size);
            fetch(&cacache, uri).await;
            assert_eq!(fetch(&cacache, uri).await.body().len(), size);
        });

        let mut group = c.benchmark_group(format!("disk-hit/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function("cachio DiskStore", |b| {
            b.to_async(&rt).iter(|| fetch(&alone, uri))
        });
        group.bench_function("cachio tiered, memory miss", |b| {
            b.to_async(&rt).iter(|| fetch(&tiered, uri))
        });
        group.bench_function("http-cache-tower redb", |b| {
            b.to_async(&rt).iter(|| fetch(&redb, uri))
        });
        group.bench_function("http-cache-tower cacache", |b| {
            b.to_async(&rt).iter(|| fetch(&cacache, uri))
        });
        group.finish();

        // Every measured request was a hit: the origins saw only the warming miss.
        for (name, prebuilt) in [
            ("cachio DiskStore", &alone_origin),
            ("cachio tiered", &tiered_origin),
            ("http-cache-tower redb", &redb_origin),
            ("http-cache-tower cacache", &cacache_origin),
        ] {
            assert_eq!(
                prebuilt.calls.load(Ordering::Relaxed),
                1,
                "{name} forwarded a request"
            );
        }
        // Close the stores (the disk store syncs and unlocks) before the directories go.
        rt.block_on(async move {
            drop((alone, tiered, redb, cacache));
        });
        drop(dirs);
    }
}

// ---- part 2: a miss streamed to disk ----------------------------------------------------------

/// The size of each chunk the origin sends.
const CHUNK: usize = 64 << 10;

const URI: &str = "http://origin.example/large.bin";

/// A URL with a one-chunk body, fetched once before measuring so that the code, the allocator
/// and the store are warm.
const WARM_URI: &str = "http://origin.example/warm";

/// The pace of the slower origin: 100 MB/s, about a 1 Gbit/s link.
const PACE_MB_PER_SEC: f64 = 100.0;

/// The variants, in the order they are printed.
const VARIANTS: [(&str, &str); 5] = [
    ("bare", "bare origin"),
    ("cachio-disk", "cachio, DiskStore"),
    ("cachio-tiered", "cachio, tiered (64 MiB memory + disk)"),
    ("hct-redb", "http-cache-tower, redb"),
    ("hct-cacache", "http-cache-tower, cacache"),
];

/// A body of `remaining` bytes in chunks of [`CHUNK`] bytes, each in a fresh allocation (as a
/// network origin's would be), with no declared length.
struct Chunks {
    remaining: usize,
    n: u8,
    /// Paces the body at this many bytes per second, if set.
    pace: Option<Pace>,
}

/// When the next chunk of a paced body may go.
struct Pace {
    bytes_per_sec: f64,
    start: tokio::time::Instant,
    sent: usize,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let len = self.remaining.min(CHUNK);
        if let Some(p) = &mut self.pace {
            let due = p.start + Duration::from_secs_f64(p.sent as f64 / p.bytes_per_sec);
            let sleep = p
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
            std::task::ready!(sleep.as_mut().poll(cx));
            p.sleep = None;
            p.sent += len;
        }
        self.remaining -= len;
        self.n = self.n.wrapping_add(1);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![self.n | 1; len])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }
}

/// The origin: a cacheable [`Chunks`] body of `total` bytes; counts its calls (but not those
/// for [`WARM_URI`]).
#[derive(Clone)]
struct StreamOrigin {
    total: usize,
    /// Bytes per second, or 0 for as fast as the caller reads.
    rate: f64,
    calls: Arc<AtomicUsize>,
}

impl Service<Request<Empty<Bytes>>> for StreamOrigin {
    type Response = Response<Chunks>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Empty<Bytes>>) -> Self::Future {
        let remaining = if req.uri().path() == "/warm" {
            CHUNK
        } else {
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.total
        };
        let pace = (self.rate > 0.0).then(|| Pace {
            bytes_per_sec: self.rate,
            start: tokio::time::Instant::now(),
            sent: 0,
            sleep: None,
        });
        let mut res = Response::new(Chunks {
            remaining,
            n: 0,
            pace,
        });
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

/// What one streamed fetch measured.
struct Streamed {
    ttfb: Duration,
    total: Duration,
}

/// Sends a GET for `uri` and reads the body to the end, frame by frame, dropping each.
async fn stream<S, B>(svc: &S, uri: &str, len: usize) -> Streamed
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
    let mut body = std::pin::pin!(res.into_body());
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
    Streamed {
        ttfb: ttfb.unwrap_or(total),
        total,
    }
}

/// Measures one variant: the miss, its peak memory, then a second request (a hit if the body
/// was stored). Prints `RESULT ttfb_us total_us peak_growth stored hit_total_us`.
async fn measure<S, B>(svc: &S, origin: &StreamOrigin)
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>> + Clone,
    S::Error: Debug,
    B: Body,
    B::Error: Debug,
{
    stream(svc, WARM_URI, CHUNK).await;
    let before = proc_status("VmRSS");
    let miss = stream(svc, URI, origin.total).await;
    let peak = proc_status("VmHWM").saturating_sub(before);
    // Outside the measurement: was the body stored? A second request must not reach the origin.
    let again = stream(svc, URI, origin.total).await;
    let stored = origin.calls.load(Ordering::Relaxed) == 1;
    println!(
        "RESULT {} {} {peak} {stored} {}",
        miss.ttfb.as_micros(),
        miss.total.as_micros(),
        again.total.as_micros()
    );
}

/// Runs one variant with a body of `total` bytes.
fn child(variant: &str, total: usize, rate: f64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let origin = StreamOrigin {
            total,
            rate,
            calls: Arc::default(),
        };
        let limit = total as u64;
        let disk = || {
            DiskStore::builder(dir.path())
                .budget_bytes((4 * limit).max(1 << 30))
                .max_object_size(limit)
                .open()
                .unwrap()
        };
        match variant {
            "bare" => measure(&origin, &origin).await,
            "cachio-disk" => {
                let svc = CacheLayer::private(disk())
                    .max_object_size(limit)
                    .layer(origin.clone());
                measure(&svc, &origin).await;
            }
            "cachio-tiered" => {
                let svc = CacheLayer::private(Tiered::new(MemoryStore::new(64 << 20), disk()))
                    .max_object_size(limit)
                    .layer(origin.clone());
                measure(&svc, &origin).await;
            }
            "hct-redb" => {
                let manager = RedbManager::new(dir.path().join("cache.redb")).unwrap();
                let svc = HttpCacheLayer::new(manager).layer(origin.clone());
                measure(&svc, &origin).await;
            }
            "hct-cacache" => {
                let manager = CACacheManager::new(dir.path().to_owned(), true);
                let svc = HttpCacheLayer::new(manager).layer(origin.clone());
                measure(&svc, &origin).await;
            }
            other => panic!("unknown variant {other}"),
        }
    });
}

/// Runs each variant in child processes, for an origin as fast as the caller reads and for one
/// paced at [`PACE_MB_PER_SEC`], and prints the medians.
fn streamed_miss(bench: bool) -> ExitCode {
    let mib: usize = match std::env::var("CACHIO_BENCH_DISK_MIB") {
        Ok(v) => v.parse().expect("CACHIO_BENCH_DISK_MIB is a number of MiB"),
        Err(_) if bench => 256,
        Err(_) => 8,
    };
    if mib == 0 {
        return ExitCode::SUCCESS;
    }
    let runs = if bench { 3 } else { 1 };
    let total = mib << 20;
    let exe = std::env::current_exe().unwrap();
    println!(
        "\nstreamed miss: a {mib} MiB body in {} KiB chunks of unknown total length, read to the end",
        CHUNK >> 10
    );
    println!(
        "(median of {runs} runs, each in its own process; peak = VmHWM at the end minus VmRSS at the \
         start; stored = a second request did not reach the origin; hit = that second request, in the runs \
         that stored the body)"
    );
    for (rate, origin) in [
        (0.0, "an origin as fast as the caller reads".to_owned()),
        (
            PACE_MB_PER_SEC * 1e6,
            format!("an origin paced at {PACE_MB_PER_SEC} MB/s"),
        ),
    ] {
        println!(
            "\n{:<38} {:>11} {:>11} {:>11} {:>12} {:>7} {:>11}",
            origin, "first byte", "total", "throughput", "peak growth", "stored", "hit"
        );
        for (variant, label) in VARIANTS {
            let mut results = Vec::new();
            for _ in 0..runs {
                let out = Command::new(&exe)
                    .arg(format!("--variant={variant}"))
                    .arg(format!("--bytes={total}"))
                    .arg(format!("--rate={rate}"))
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
                results.push(([num(0), num(1), num(2), num(4)], f[3] == "true"));
            }
            let median = |i: usize, stored_only: bool| {
                let mut v: Vec<f64> = results
                    .iter()
                    .filter(|r| r.1 || !stored_only)
                    .map(|r| r.0[i])
                    .collect();
                v.sort_by(f64::total_cmp);
                v.get(v.len() / 2).copied()
            };
            let [ttfb, total_us, peak] = [0, 1, 2].map(|i| median(i, false).unwrap());
            // The second request is a hit only in the runs that stored the body.
            let hit = median(3, true);
            let stored = results.iter().filter(|r| r.1).count();
            let ms = |us: f64| {
                if us < 1000.0 {
                    format!("{us:.0} µs")
                } else {
                    format!("{:.1} ms", us / 1000.0)
                }
            };
            let hit = hit.map_or_else(|| "-".to_owned(), ms);
            println!(
                "{label:<38} {:>11} {:>11} {:>7.0} MB/s {:>8.1} MiB {:>7} {hit:>11}",
                ms(ttfb),
                ms(total_us),
                total as f64 / total_us,
                peak / f64::from(1 << 20),
                format!("{stored}/{runs}"),
            );
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(variant) = args.iter().find_map(|a| a.strip_prefix("--variant=")) {
        let total = args
            .iter()
            .find_map(|a| a.strip_prefix("--bytes="))
            .expect("--bytes=N")
            .parse()
            .expect("--bytes=N");
        let rate = args
            .iter()
            .find_map(|a| a.strip_prefix("--rate="))
            .map_or(0.0, |r| r.parse().expect("--rate=BYTES_PER_SEC"));
        child(variant, total, rate);
        return ExitCode::SUCCESS;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not.
    let bench = args.iter().any(|a| a == "--bench");
    let mut c = Criterion::default().configure_from_args();
    disk_hit(&mut c);
    c.final_summary();
    streamed_miss(bench)
}
