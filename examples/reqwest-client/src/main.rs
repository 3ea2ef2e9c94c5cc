//! cachio inside a reqwest client, as a reqwest-middleware middleware.
//!
//! A local origin serves one URL, fresh for a minute; a `reqwest_middleware` client with
//! `cachio::reqwest::Cache::private` over a memory store fetches it twice and prints what the
//! cache did each time (read from the `Cache-Status` field, RFC 9211): a miss, then a hit that
//! never reaches the origin.
//!
//! ```text
//! cargo run -p reqwest-client
//! ```
//!
//! No network is needed: the origin listens on 127.0.0.1. The program exits non-zero if the
//! second fetch is not a hit.

use std::convert::Infallible;
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use cachio::MemoryStore;
use cachio::reqwest::Cache;
use http::{Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The origin: every URL is fresh for a minute. `received` counts its requests.
async fn origin(
    req: Request<Incoming>,
    received: Arc<AtomicUsize>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    received.fetch_add(1, Ordering::SeqCst);
    let body = format!("the resource at {}\n", req.uri().path());
    let res = Response::builder()
        .header(header::CACHE_CONTROL, "max-age=60")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::from(body))
        .expect("a valid response");
    Ok(res)
}

/// Serves [`origin`] on an ephemeral port of 127.0.0.1.
async fn start_origin(received: Arc<AtomicUsize>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let received = received.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| origin(req, received.clone()));
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    eprintln!("origin: connection failed: {e}");
                }
            });
        }
    });
    Ok(addr)
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn Error + Send + Sync>> {
    let received = Arc::new(AtomicUsize::new(0));
    let addr = start_origin(received.clone()).await?;
    let url = format!("http://{addr}/articles/42");

    let cache = Cache::private(MemoryStore::new(64 << 20));
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(cache.clone())
        .build();

    let mut statuses = Vec::new();
    for fetch in 1..=2 {
        let started = Instant::now();
        let res = client.get(&url).send().await?;
        let status = res
            .headers()
            .get(cachio::CACHE_STATUS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let code = res.status();
        let body = res.text().await?;
        let hit = status.split(';').any(|p| p.trim() == "hit");
        println!(
            "fetch {fetch}: {:<4} {code} {:>8.0} µs  {body:?}\n         Cache-Status: {status}",
            if hit { "HIT" } else { "MISS" },
            started.elapsed().as_secs_f64() * 1e6,
        );
        statuses.push(hit);
    }
    let origin_requests = received.load(Ordering::SeqCst);
    println!("the origin received {origin_requests} request(s)");
    let stats = cache.stats().snapshot();
    println!(
        "the cache counted {} hit(s), {} miss(es)",
        stats.hits, stats.misses
    );

    if statuses != [false, true] || origin_requests != 1 {
        eprintln!("expected a miss, then a hit that does not reach the origin");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
