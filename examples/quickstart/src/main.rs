//! cachio in front of a hyper client.
//!
//! A local origin serves a few URLs with different caching header fields; a hyper-util client
//! behind `CacheLayer::private` fetches each of them twice and prints, per fetch, what the cache
//! did (read from the `Cache-Status` field, RFC 9211), the status and the time taken.
//!
//! Run it with `cargo run -p quickstart`. It exits non-zero if the cache did not do what the
//! header fields ask for.

use std::convert::Infallible;
use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cachio::{CACHE_STATUS, CacheLayer, MemoryStore};
use http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, ETAG, IF_NONE_MATCH, VARY};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder, ServiceExt};

type BoxError = Box<dyn Error + Send + Sync>;

/// The entity tag of `/validated`.
const ETAG_V1: &str = "\"v1\"";

/// The origin: one handler per URL, each with its own caching header fields.
async fn origin(
    req: Request<Incoming>,
    hits: Arc<AtomicUsize>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    hits.fetch_add(1, Ordering::Relaxed);
    let res = Response::builder();
    let res = match req.uri().path() {
        // Fresh for a minute: the second fetch never reaches the origin.
        "/fresh" => res
            .header(CACHE_CONTROL, "max-age=60")
            .body(Full::from("fresh for a minute")),
        // Stored, but validated before every use: the second fetch is a conditional request
        // answered with 304, and the stored body is served.
        "/validated"
            if req
                .headers()
                .get(IF_NONE_MATCH)
                .is_some_and(|v| v == ETAG_V1) =>
        {
            res.status(StatusCode::NOT_MODIFIED)
                .header(CACHE_CONTROL, "no-cache")
                .header(ETAG, ETAG_V1)
                .body(Full::default())
        }
        "/validated" => res
            .header(CACHE_CONTROL, "no-cache")
            .header(ETAG, ETAG_V1)
            .body(Full::from("validated on every use")),
        // One stored response per language.
        "/greeting" => {
            let greeting = match req.headers().get(ACCEPT_LANGUAGE).map(|v| v.as_bytes()) {
                Some(b"fr") => "bonjour",
                _ => "hello",
            };
            res.header(CACHE_CONTROL, "max-age=60")
                .header(VARY, "accept-language")
                .body(Full::from(greeting))
        }
        // Never stored.
        "/no-store" => res
            .header(CACHE_CONTROL, "no-store")
            .body(Full::from("never stored")),
        _ => res.status(StatusCode::NOT_FOUND).body(Full::default()),
    };
    Ok(res.expect("a valid response"))
}

/// Serves [`origin`] on an ephemeral port of 127.0.0.1, counting the requests in `hits`.
async fn start_origin(hits: Arc<AtomicUsize>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("origin: accept failed: {e}");
                    continue;
                }
            };
            let hits = hits.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| origin(req, hits.clone()));
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

/// What the cache did with one fetch, read from `Cache-Status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Served from the cache without contacting the origin.
    Hit,
    /// Served from the cache after the origin answered `304 Not Modified`.
    Revalidated,
    /// Fetched from the origin.
    Miss,
}

impl Outcome {
    /// Reads the entry of the cache nearest to the client (the last one), e.g.
    /// `cachio; hit; ttl=60` or `cachio; fwd=uri-miss; fwd-status=200; stored`.
    fn from_cache_status(value: &str) -> Self {
        let ours = value.rsplit(',').next().unwrap_or_default();
        let mut params = ours.split(';').skip(1).map(str::trim);
        if params.clone().any(|p| p == "hit") {
            Self::Hit
        } else if params.any(|p| p == "fwd-status=304") {
            Self::Revalidated
        } else {
            Self::Miss
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::Hit => "HIT",
            Self::Revalidated => "REVALIDATED",
            Self::Miss => "MISS",
        })
    }
}

/// A duration in µs below a millisecond, in ms above.
struct Elapsed(Duration);

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0.as_secs_f64() * 1e6;
        let s = if micros < 1000.0 {
            format!("{micros:.0} µs")
        } else {
            format!("{:.2} ms", micros / 1000.0)
        };
        f.pad(&s)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let hits = Arc::new(AtomicUsize::new(0));
    let addr = start_origin(hits.clone()).await?;
    println!("origin listening on http://{addr}\n");

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut client = ServiceBuilder::new()
        .layer(CacheLayer::private(MemoryStore::new(16 << 20)))
        .service(client);

    // (path, Accept-Language, what the first and the second fetch must be)
    let plan = [
        ("/fresh", None, [Outcome::Miss, Outcome::Hit]),
        ("/validated", None, [Outcome::Miss, Outcome::Revalidated]),
        ("/greeting", Some("en"), [Outcome::Miss, Outcome::Hit]),
        ("/greeting", Some("fr"), [Outcome::Miss, Outcome::Hit]),
        ("/no-store", None, [Outcome::Miss, Outcome::Miss]),
    ];
    let mut failures = Vec::new();
    for (path, lang, expected) in plan {
        for want in expected {
            let mut req = Request::get(format!("http://{addr}{path}"));
            if let Some(lang) = lang {
                req = req.header(ACCEPT_LANGUAGE, lang);
            }
            let req = req.body(Empty::new())?;

            let start = Instant::now();
            let res = client.ready().await?.call(req).await?;
            let status = res.status();
            let cache_status = res
                .headers()
                .get(CACHE_STATUS)
                .ok_or("the response has no Cache-Status")?
                .to_str()?
                .to_owned();
            let body = res.into_body().collect().await?.to_bytes();
            let elapsed = Elapsed(start.elapsed());

            let got = Outcome::from_cache_status(&cache_status);
            let target = format!("{path} {}", lang.unwrap_or_default());
            println!(
                "{got:<11}  {status}  {elapsed:>9}  GET {target:<13} {:>3} B  cache-status: {cache_status}",
                body.len()
            );
            if got != want {
                failures.push(format!(
                    "GET {target}: expected {want}, got {got} ({cache_status})"
                ));
            }
        }
    }

    let received = hits.load(Ordering::Relaxed);
    println!("\nthe origin received {received} requests for 10 fetches");
    if received != 7 {
        failures.push(format!(
            "the origin received {received} requests, expected 7"
        ));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n").into())
    }
}
