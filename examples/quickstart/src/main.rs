//! cachio in front of a hyper client, with a cache that outlives the program.
//!
//! A local origin serves a few URLs with different caching header fields; a hyper-util client
//! behind `CacheLayer::private` over `cachio::embedded` (memory in front of a disk directory)
//! fetches each of them twice and prints, per fetch, what the cache did (read from the
//! `Cache-Status` field, RFC 9211), where the body came from, the status and the time taken.
//!
//! Run it twice:
//!
//! ```text
//! cargo run -p quickstart    # misses, then hits from memory; the entries go to disk too
//! cargo run -p quickstart    # hits from disk: the origin is asked only to revalidate
//! ```
//!
//! The cache lives in `./cachio-quickstart-cache`, or in the directory given as the first
//! argument or in `CACHIO_QUICKSTART_DIR`; delete it to start over. The program exits non-zero
//! if the cache did not do what the header fields ask for.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cachio::{CACHE_STATUS, CacheLayer};
use http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, ETAG, IF_NONE_MATCH, VARY};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder, ServiceExt};

type BoxError = Box<dyn Error + Send + Sync>;

/// The origin's URL. Its port changes with every run, but the cache key is the URL, so the
/// client resolves this name to wherever the origin listens (see [`resolve_to`]).
const ORIGIN: &str = "http://origin.test";

/// The cache directory unless the first argument or `CACHIO_QUICKSTART_DIR` names another.
const DEFAULT_DIR: &str = "cachio-quickstart-cache";

/// The entity tag of `/validated`.
const ETAG_V1: &str = "\"v1\"";

/// The requests the origin received, per path.
type Received = Arc<Mutex<BTreeMap<String, usize>>>;

/// The origin: one handler per URL, each with its own caching header fields.
async fn origin(
    req: Request<Incoming>,
    received: Received,
) -> Result<Response<Full<Bytes>>, Infallible> {
    *received
        .lock()
        .unwrap()
        .entry(req.uri().path().to_owned())
        .or_default() += 1;
    let res = Response::builder();
    let res = match req.uri().path() {
        // Fresh for a day: fetched once, then served by the cache, in this run and the next.
        "/fresh" => res
            .header(CACHE_CONTROL, "max-age=86400")
            .body(Full::from("fresh for a day")),
        // Stored, but validated before every use: the origin answers a conditional request with
        // 304 and the stored body is served.
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
            res.header(CACHE_CONTROL, "max-age=86400")
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

/// Serves [`origin`] on an ephemeral port of 127.0.0.1, counting the requests in `received`.
async fn start_origin(received: Received) -> std::io::Result<SocketAddr> {
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

/// A DNS resolver for the client that resolves every name to `addr`.
fn resolve_to(
    addr: SocketAddr,
) -> impl Service<Name, Response = std::iter::Once<SocketAddr>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(move |_: Name| std::future::ready(Ok(std::iter::once(addr))))
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

use Outcome::{Hit, Miss, Revalidated};

impl Outcome {
    /// Reads the entry of the cache nearest to the client (the last one), e.g.
    /// `cachio; hit; ttl=60` or `cachio; fwd=uri-miss; fwd-status=200; stored`.
    fn from_cache_status(value: &str) -> Self {
        let ours = value.rsplit(',').next().unwrap_or_default();
        let mut params = ours.split(';').skip(1).map(str::trim);
        if params.clone().any(|p| p == "hit") {
            Hit
        } else if params.any(|p| p == "fwd-status=304") {
            Revalidated
        } else {
            Miss
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Hit => "HIT",
            Revalidated => "REVALIDATED",
            Miss => "MISS",
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

/// The cache directory and the command that runs the program again with it.
fn cache_dir() -> (PathBuf, String) {
    match std::env::args_os().nth(1) {
        Some(dir) => {
            let again = format!("cargo run -p quickstart -- {}", dir.to_string_lossy());
            (dir.into(), again)
        }
        None => {
            let dir = std::env::var_os("CACHIO_QUICKSTART_DIR").unwrap_or(DEFAULT_DIR.into());
            (dir.into(), "cargo run -p quickstart".to_owned())
        }
    }
}

/// Whether `dir` holds something already: a cache from an earlier run.
fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
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

/// What one run asks of the cache: (path, Accept-Language, what the two fetches must be:
/// [in a first run, in later runs]).
type Plan = [(&'static str, Option<&'static str>, [[Outcome; 2]; 2]); 5];

const PLAN: Plan = [
    ("/fresh", None, [[Miss, Hit], [Hit, Hit]]),
    (
        "/validated",
        None,
        [[Miss, Revalidated], [Revalidated, Revalidated]],
    ),
    ("/greeting", Some("en"), [[Miss, Hit], [Hit, Hit]]),
    ("/greeting", Some("fr"), [[Miss, Hit], [Hit, Hit]]),
    ("/no-store", None, [[Miss, Miss], [Miss, Miss]]),
];

async fn run() -> Result<(), BoxError> {
    let (dir, again) = cache_dir();
    let warm = has_entries(&dir);
    let received = Received::default();
    let addr = start_origin(received.clone()).await?;
    println!("origin {ORIGIN} listening on {addr}");

    // 64 MiB of memory in front of the directory (1 GiB budget). The memory tier starts empty in
    // every run; the disk keeps what earlier runs stored.
    let store = cachio::embedded(&dir)
        .map_err(|e| format!("cannot open the cache in {}: {e}", dir.display()))?;
    println!(
        "cache in {} ({})\n",
        dir.display(),
        if warm { "from an earlier run" } else { "new" }
    );

    let connector = HttpConnector::new_with_resolver(resolve_to(addr));
    let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(connector);
    let mut client = ServiceBuilder::new()
        .layer(CacheLayer::private(store))
        .service(client);

    let mut failures = Vec::new();
    let mut seen = HashSet::new();
    let mut from_disk = 0;
    for (path, lang, expected) in PLAN {
        for want in expected[usize::from(warm)] {
            // The memory tier starts empty, so the first hit of a URL in this run is read from
            // disk (and copied into memory as it streams).
            let first_fetch = seen.insert((path, lang));
            let (got, line) = fetch(&mut client, path, lang, first_fetch).await?;
            from_disk += usize::from(got == Hit && first_fetch);
            if got != want {
                failures.push(format!("{line}: expected {want}"));
            }
        }
    }
    failures.extend(check_origin(&received, warm));

    if !failures.is_empty() {
        if warm {
            failures.push(format!(
                "(entries stay fresh for a day: if the last run is older, remove {} and run twice again)",
                dir.display()
            ));
        }
        return Err(failures.join("\n").into());
    }
    if warm {
        println!(
            "{from_disk} responses came from disk, stored by an earlier run; /fresh and /greeting never reached the origin"
        );
        println!("start over: rm -r {}", dir.display());
    } else {
        println!("stored in {}; run it again: {again}", dir.display());
    }
    Ok(())
}

/// Fetches `path` through the cache and prints one line: what the cache did, where the body came
/// from, the status and the time taken. Returns what the cache did and a short description.
async fn fetch<S, B>(
    client: &mut S,
    path: &str,
    lang: Option<&str>,
    first_fetch: bool,
) -> Result<(Outcome, String), BoxError>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: hyper::body::Body,
    B::Error: Into<BoxError>,
{
    let mut req = Request::get(format!("{ORIGIN}{path}"));
    if let Some(lang) = lang {
        req = req.header(ACCEPT_LANGUAGE, lang);
    }
    let req = req.body(Empty::new())?;

    let start = Instant::now();
    let res = client
        .ready()
        .await
        .map_err(Into::into)?
        .call(req)
        .await
        .map_err(Into::into)?;
    let status = res.status();
    let cache_status = res
        .headers()
        .get(CACHE_STATUS)
        .ok_or("the response has no Cache-Status")?
        .to_str()?
        .to_owned();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(Into::into)?
        .to_bytes();
    let elapsed = Elapsed(start.elapsed());

    let got = Outcome::from_cache_status(&cache_status);
    let from = match got {
        Hit if first_fetch => "disk",
        Hit => "memory",
        Revalidated => "origin 304",
        Miss => "origin",
    };
    let target = format!("{path} {}", lang.unwrap_or_default());
    println!(
        "{got:<11}  {from:<10}  {status}  {elapsed:>9}  GET {target:<13} {:>3} B  cache-status: {cache_status}",
        body.len()
    );
    Ok((got, format!("GET {target}: got {got} ({cache_status})")))
}

/// Prints what the origin received, and says what is wrong with it, if anything.
fn check_origin(received: &Received, warm: bool) -> Option<String> {
    let received = received.lock().unwrap().clone();
    let total: usize = received.values().sum();
    let per_path: Vec<String> = received.iter().map(|(p, n)| format!("{p} {n}")).collect();
    println!(
        "\nthe origin received {total} requests ({})",
        per_path.join(", ")
    );
    // A first run: each URL once, plus the revalidation and the unstored repeat. Later runs: only
    // the revalidations and the unstored URL; the max-age URLs come from disk.
    let expected = if warm { 4 } else { 7 };
    (total != expected)
        .then(|| format!("the origin received {total} requests, expected {expected}"))
}
