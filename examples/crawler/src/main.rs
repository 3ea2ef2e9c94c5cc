//! A crawler whose cache outlives it: run it twice, and the second run never asks the origin.
//!
//! The program starts a small site on 127.0.0.1 (an index linking to 50 pages, each page linking
//! to its neighbours; every response fresh for a day, the even pages with an `ETag`, the odd ones
//! with `Last-Modified`), then crawls it from the index with eight requests in flight, through a
//! hyper-util client behind `CacheLayer::private` over `cachio::embedded`: memory in front of a
//! disk directory.
//!
//! ```text
//! cargo run -p crawler    # every page from the origin, stored in memory and on disk
//! cargo run -p crawler    # every page from disk: the origin receives no request
//! ```
//!
//! The cache lives in `./cachio-crawler-cache`, or in the directory given as the first argument
//! or in `CACHIO_CRAWLER_DIR`. The program exits non-zero if it finds fewer pages than the site
//! has, or if a run with a cache from an earlier run sent any request to the origin.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::error::Error;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use cachio::{CACHE_STATUS, CacheLayer};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LAST_MODIFIED};
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
use tokio::task::JoinSet;
use tower::{Service, ServiceBuilder, ServiceExt};

type BoxError = Box<dyn Error + Send + Sync>;

/// The site's URL. Its port changes with every run, but the cache key is the URL, so the client
/// resolves this name to wherever the site listens (see [`resolve_to`]).
const SITE: &str = "http://site.test";

/// The number of pages the index links to.
const PAGES: usize = 50;

/// The requests in flight at once.
const CONCURRENCY: usize = 8;

/// The cache directory unless the first argument or `CACHIO_CRAWLER_DIR` names another.
const DEFAULT_DIR: &str = "cachio-crawler-cache";

// ---- the site -----------------------------------------------------------------------------------

/// The HTML of `/` (the index) or `/page/N`, or `None` for any other path.
fn page(path: &str) -> Option<String> {
    if path == "/" {
        let links: String = (1..=PAGES)
            .map(|n| format!("<li><a href=\"/page/{n}\">page {n}</a></li>\n"))
            .collect();
        return Some(format!(
            "<!doctype html><title>index</title><ul>\n{links}</ul>\n"
        ));
    }
    let n: usize = path.strip_prefix("/page/")?.parse().ok()?;
    if !(1..=PAGES).contains(&n) {
        return None;
    }
    let prev = if n == 1 { PAGES } else { n - 1 };
    let next = if n == PAGES { 1 } else { n + 1 };
    // Between 1 and 40 KiB of text, so the pages differ in size.
    let text = "All work and no play makes a cache a dull store. ".repeat(20 + n * 997 % 800);
    Some(format!(
        "<!doctype html><title>page {n}</title>\n<a href=\"/\">index</a> \
         <a href=\"/page/{prev}\">previous</a> <a href=\"/page/{next}\">next</a>\n<p>{text}</p>\n"
    ))
}

/// Answers a request for the site, counting it in `received`.
async fn serve(
    req: Request<Incoming>,
    received: Arc<AtomicUsize>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    received.fetch_add(1, Ordering::Relaxed);
    let path = req.uri().path();
    let Some(html) = page(path) else {
        let res = Response::builder().status(StatusCode::NOT_FOUND);
        return Ok(res.body(Full::default()).expect("a valid response"));
    };
    // Every response is fresh for a day. The index and the even pages carry an entity tag (and
    // answer a matching conditional request with 304), the odd pages a modification date.
    let res = Response::builder()
        .header(CONTENT_TYPE, "text/html; charset=utf-8")
        .header(CACHE_CONTROL, "max-age=86400");
    let res = if path == "/" || path.ends_with(['0', '2', '4', '6', '8']) {
        let etag = format!("\"{:x}\"", html.len());
        if req
            .headers()
            .get(IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == etag.as_bytes())
        {
            let res = res.status(StatusCode::NOT_MODIFIED).header(ETAG, etag);
            return Ok(res.body(Full::default()).expect("a valid response"));
        }
        res.header(ETAG, etag)
    } else {
        res.header(LAST_MODIFIED, "Mon, 01 Jan 2024 00:00:00 GMT")
    };
    Ok(res.body(Full::from(html)).expect("a valid response"))
}

/// Serves the site on an ephemeral port of 127.0.0.1, counting the requests in `received`.
async fn start_site(received: Arc<AtomicUsize>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("site: accept failed: {e}");
                    continue;
                }
            };
            let received = received.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| serve(req, received.clone()));
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    eprintln!("site: connection failed: {e}");
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

// ---- the crawler --------------------------------------------------------------------------------

/// One fetched page.
struct Fetched {
    body: Bytes,
    /// Served from the cache without contacting the origin.
    hit: bool,
}

/// Fetches `path` through `client` and reads the body to the end (which is what stores it).
async fn fetch<S, B>(client: S, path: String) -> Result<Fetched, BoxError>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let req = Request::get(format!("{SITE}{path}")).body(Empty::new())?;
    let res = client.oneshot(req).await.map_err(Into::into)?;
    if res.status() != StatusCode::OK {
        return Err(format!("GET {path}: {}", res.status()).into());
    }
    let hit = res
        .headers()
        .get(CACHE_STATUS)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').any(|p| p.trim() == "hit"));
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(Into::into)?
        .to_bytes();
    Ok(Fetched { body, hit })
}

/// The site-local links (`href="/..."`) of an HTML page.
fn links(html: &[u8]) -> Vec<String> {
    let html = String::from_utf8_lossy(html);
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|link| link.starts_with('/'))
        .map(str::to_owned)
        .collect()
}

/// The cache directory and the command that runs the program again with it.
fn cache_dir() -> (PathBuf, String) {
    match std::env::args_os().nth(1) {
        Some(dir) => {
            let again = format!("cargo run -p crawler -- {}", dir.to_string_lossy());
            (dir.into(), again)
        }
        None => {
            let dir = std::env::var_os("CACHIO_CRAWLER_DIR").unwrap_or(DEFAULT_DIR.into());
            (dir.into(), "cargo run -p crawler".to_owned())
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

async fn run() -> Result<(), BoxError> {
    let (dir, again) = cache_dir();
    let warm = has_entries(&dir);
    let received = Arc::new(AtomicUsize::new(0));
    let addr = start_site(received.clone()).await?;

    let store = cachio::embedded(&dir)
        .map_err(|e| format!("cannot open the cache in {}: {e}", dir.display()))?;
    let connector = HttpConnector::new_with_resolver(resolve_to(addr));
    let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(connector);
    let client = ServiceBuilder::new()
        .layer(CacheLayer::private(store))
        .service(client);
    println!(
        "crawling {SITE} (on {addr}) through the cache in {} ({})",
        dir.display(),
        if warm { "from an earlier run" } else { "new" }
    );

    // Breadth first from the index, each page once, CONCURRENCY requests in flight.
    let start = Instant::now();
    let mut queue = VecDeque::from(["/".to_owned()]);
    let mut seen: HashSet<String> = queue.iter().cloned().collect();
    let mut in_flight = JoinSet::new();
    let (mut pages, mut hits, mut bytes) = (0, 0, 0);
    while !queue.is_empty() || !in_flight.is_empty() {
        while in_flight.len() < CONCURRENCY
            && let Some(path) = queue.pop_front()
        {
            in_flight.spawn(fetch(client.clone(), path));
        }
        let Some(done) = in_flight.join_next().await else {
            break;
        };
        let page = done??;
        pages += 1;
        hits += usize::from(page.hit);
        bytes += page.body.len();
        for link in links(&page.body) {
            if seen.insert(link.clone()) {
                queue.push_back(link);
            }
        }
    }
    let elapsed = start.elapsed();
    let received = received.load(Ordering::Relaxed);

    println!(
        "{pages} pages, {:.1} KiB, in {:.1} ms: {hits} from the cache, {} from the origin",
        bytes as f64 / 1024.0,
        elapsed.as_secs_f64() * 1e3,
        pages - hits
    );
    println!("the origin received {received} requests");
    if pages != PAGES + 1 {
        return Err(format!("found {pages} pages, the site has {}", PAGES + 1).into());
    }
    if warm {
        if received > 0 {
            return Err(format!(
                "a run with a cache from an earlier run sent {received} requests to the origin \
                 (entries stay fresh for a day: if the last run is older, remove {} and run twice \
                 again)",
                dir.display()
            )
            .into());
        }
        println!(
            "every page came from disk; start over: rm -r {}",
            dir.display()
        );
    } else {
        println!("stored in {}; run it again: {again}", dir.display());
    }
    Ok(())
}
