//! A memory hit through a reqwest-middleware client: cachio-reqwest against http-cache-reqwest
//! (its moka manager), and plain reqwest with no cache fetching from the origin, for bodies of
//! 1 KiB and 100 KiB (`Cache-Control: max-age=3600`, ten other realistic header fields). The
//! origin is a hyper server on 127.0.0.1.
//!
//! One iteration sends a GET and reads the whole body. Run with `cargo bench --bench reqwest`.
//!
//! Criterion measures each client in turn; the bench then measures the three interleaved
//! (rounds of [`BATCH`] requests to each, in rotating order) and prints the median time per
//! request of each and the ratios between them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachio::{CACHE_STATUS, MemoryStore};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::Full;
use http_cache_reqwest::{HttpCache, HttpCacheOptions, MokaCache, MokaManager};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use reqwest_middleware::ClientWithMiddleware;

mod common;
use common::Prebuilt;

/// The body sizes measured.
const SIZES: [(&str, usize); 2] = [("1KiB", 1 << 10), ("100KiB", 100 << 10)];

/// Requests per client in one interleaved round.
const BATCH: u32 = 2_000;

/// Interleaved rounds per body size.
const ROUNDS: usize = 15;

/// Requests the origin received, per path.
type Received = Arc<Mutex<HashMap<String, usize>>>;

/// Serves `GET /<name>/<size>` with a [`Prebuilt`] response of `size` bytes.
async fn start_origin(received: Received) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let responses: HashMap<usize, Arc<Prebuilt>> = SIZES
        .iter()
        .map(|&(_, size)| (size, Prebuilt::new(size)))
        .collect();
    let responses = Arc::new(responses);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (received, responses) = (received.clone(), responses.clone());
            let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let path = req.uri().path().to_owned();
                *received.lock().unwrap().entry(path.clone()).or_default() += 1;
                let size: usize = path.rsplit('/').next().unwrap().parse().unwrap();
                let pre = &responses[&size];
                let mut res = http::Response::new(Full::new(pre.body.clone()));
                *res.headers_mut() = pre.headers.clone();
                std::future::ready(Ok::<_, Infallible>(res))
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// The clients compared.
#[derive(Clone)]
enum Client {
    Plain(reqwest::Client),
    Middleware(ClientWithMiddleware),
}

impl Client {
    /// GET `url`, read to the end; its `Cache-Status` and body length.
    async fn fetch(&self, url: &str) -> (Option<String>, usize) {
        let res = match self {
            Client::Plain(c) => c.get(url).send().await.unwrap(),
            Client::Middleware(c) => c.get(url).send().await.unwrap(),
        };
        assert!(res.status().is_success());
        let status = res
            .headers()
            .get(CACHE_STATUS)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.bytes().await.unwrap();
        (status, body.len())
    }

    /// The mean time of one request in a batch of [`BATCH`].
    async fn batch(&self, url: &str) -> Duration {
        let start = Instant::now();
        for _ in 0..BATCH {
            std::hint::black_box(self.fetch(url).await);
        }
        start.elapsed() / BATCH
    }
}

/// The three clients, by name.
fn clients() -> [(&'static str, Client); 3] {
    let cachio = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(cachio_reqwest::Cache::private(MemoryStore::new(64 << 20)))
        .build();
    let hcr = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(http_cache_reqwest::Cache(HttpCache {
            mode: http_cache_reqwest::CacheMode::Default,
            manager: MokaManager::new(MokaCache::new(1_000)),
            options: HttpCacheOptions::default(),
        }))
        .build();
    [
        ("cachio-reqwest", Client::Middleware(cachio)),
        ("http-cache-reqwest", Client::Middleware(hcr)),
        ("reqwest (no cache)", Client::Plain(reqwest::Client::new())),
    ]
}

fn reqwest_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let received = Received::default();
    let addr = rt.block_on(start_origin(received.clone()));
    let clients = clients();
    let url = |name: &str, size: usize| format!("http://{addr}/{}/{size}", name.replace(' ', "-"));

    let mut figures = Vec::new();
    for (label, size) in SIZES {
        // Store the response in both caches, and check outside the timing that the next request
        // is a hit in each.
        rt.block_on(async {
            for (name, client) in &clients[..2] {
                let url = url(name, size);
                client.fetch(&url).await;
                let (status, len) = client.fetch(&url).await;
                assert_eq!(len, size);
                if *name == "cachio-reqwest" {
                    let status = status.expect("a Cache-Status");
                    assert!(status.contains("hit"), "{name}: not a hit: {status}");
                }
                let path = format!("/{name}/{size}");
                assert_eq!(received.lock().unwrap()[&path], 1, "{name}: not a hit");
            }
        });

        let mut group = c.benchmark_group(format!("reqwest/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        for (name, client) in &clients {
            let url = url(name, size);
            group.bench_function(*name, |b| b.to_async(&rt).iter(|| client.fetch(&url)));
        }
        group.finish();

        // Interleaved: each round runs every client, starting with a different one.
        let mut times: [Vec<Duration>; 3] = Default::default();
        rt.block_on(async {
            for round in 0..ROUNDS {
                for k in 0..clients.len() {
                    let i = (round + k) % clients.len();
                    let (name, client) = &clients[i];
                    times[i].push(client.batch(&url(name, size)).await);
                }
            }
        });
        let medians = times.map(|mut t| {
            t.sort();
            t[t.len() / 2]
        });
        figures.push((label, medians));

        // Every measured cache request was a hit: the origin saw only the warming miss.
        for (name, _) in &clients[..2] {
            let path = format!("/{name}/{size}");
            assert_eq!(
                received.lock().unwrap()[&path],
                1,
                "{name} forwarded a request"
            );
        }
    }

    println!(
        "\nA memory hit through reqwest-middleware, medians of {ROUNDS} interleaved rounds of {BATCH} requests:"
    );
    println!(
        "{:<8} {:>16} {:>20} {:>20} {:>14} {:>14}",
        "body",
        "cachio-reqwest",
        "http-cache-reqwest",
        "reqwest (no cache)",
        "hcr / cachio",
        "plain / cachio"
    );
    for (label, [cachio, hcr, plain]) in figures {
        let us = |d: Duration| format!("{:.2} µs", d.as_secs_f64() * 1e6);
        let ratio = |d: Duration| format!("{:.1}×", d.as_secs_f64() / cachio.as_secs_f64());
        println!(
            "{label:<8} {:>16} {:>20} {:>20} {:>14} {:>14}",
            us(cachio),
            us(hcr),
            us(plain),
            ratio(hcr),
            ratio(plain)
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = reqwest_hit
}
criterion_main!(benches);
