//! A crawler whose cache outlives it: run it twice, and the second run never asks the origin.
//!
//! The program starts a small HTTPS site on 127.0.0.1 (an index linking to 50 pages, each page
//! linking to its neighbours; every response fresh for a day, the even pages with an `ETag`, the
//! odd ones with `Last-Modified`), then crawls it from the index with eight requests in flight
//! through a [`cachio::Client`]: a private cache over `cachio::embedded`, memory in front of a
//! disk directory.
//!
//! ```text
//! cargo run -p crawler    # every page from the origin, stored in memory and on disk
//! cargo run -p crawler    # every page from disk: the origin receives no request
//! ```
//!
//! The site's certificate (for the IP address 127.0.0.1) is signed by a certificate authority
//! made at start with `rcgen`, which the client trusts instead of the system's roots: nothing
//! leaves the machine. The CA is new each run; the stored responses do not depend on it.
//!
//! The site listens on a port the system picks, so its URLs change from run to run, and a cache
//! keys responses by URL. The client therefore keys each request to the site by its path on a
//! fixed name, `https://site.test/page/7` for `https://127.0.0.1:PORT/page/7` (see
//! [`stable_key`]): the entries a run stores are those the next run looks up, whatever port it
//! gets. The client still connects to 127.0.0.1 and the port of the run.
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
use cachio::CACHE_STATUS;
use cachio::core::key::primary_key;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LAST_MODIFIED};
use http::{Request, Response, StatusCode, request};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::PrivatePkcs8KeyDer;

type BoxError = Box<dyn Error + Send + Sync>;

/// The origin the cache keys the site's responses under, whatever port the site listens on.
const KEY_ORIGIN: &str = "https://site.test";

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

/// The site's TLS configuration (HTTP/2 and HTTP/1.1 by ALPN) with a certificate for 127.0.0.1,
/// and the PEM of the certificate authority, made for this run, that signed it.
fn site_tls() -> Result<(ServerConfig, String), BoxError> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "cachio crawler example CA");
    let ca_key = KeyPair::generate()?;
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])?.signed_by(&key, &issuer)?;
    let key = PrivatePkcs8KeyDer::from(key.serialize_der()).into();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((config, ca_pem))
}

/// Serves the site over HTTPS on an ephemeral port of 127.0.0.1, counting the requests in
/// `received`.
async fn start_site(tls: ServerConfig, received: Arc<AtomicUsize>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    tokio::spawn(async move {
        loop {
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    eprintln!("site: accept failed: {e}");
                    continue;
                }
            };
            let (acceptor, received) = (acceptor.clone(), received.clone());
            tokio::spawn(async move {
                let stream = match acceptor.accept(tcp).await {
                    Ok(stream) => stream,
                    Err(e) => return eprintln!("site: TLS handshake failed: {e}"),
                };
                let svc = service_fn(move |req| serve(req, received.clone()));
                if let Err(e) = auto::Builder::new(TokioExecutor::new())
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

// ---- the client ---------------------------------------------------------------------------------

/// The cache key of a request: for the site at `addr`, [`KEY_ORIGIN`] followed by the path and
/// query, so that a run finds what an earlier run stored though the site's port has changed; for
/// any other origin (the crawler asks none), the usual key.
fn stable_key(addr: SocketAddr) -> impl Fn(&request::Parts) -> String + Send + Sync + 'static {
    let site = addr.to_string();
    move |req| match req.uri.authority() {
        Some(authority) if authority.as_str() == site => {
            let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
            format!("{KEY_ORIGIN}{path}")
        }
        _ => primary_key(req),
    }
}

/// A client with its cache in `dir` that trusts only the CA in `ca_pem`, keying the site's
/// responses with [`stable_key`].
fn client(dir: &Path, ca_pem: &str, site: SocketAddr) -> Result<cachio::Client, BoxError> {
    cachio::Client::builder(dir)
        .tls_built_in_root_certs(false)
        .root_certificate_pem(ca_pem.as_bytes())
        .user_agent("cachio-crawler-example")
        .layer(move |cache| cache.cache_name("crawler").key_fn(stable_key(site)))
        .build()
        .map_err(|e| format!("cannot open the cache in {}: {e}", dir.display()).into())
}

// ---- the crawler --------------------------------------------------------------------------------

/// One fetched page.
struct Fetched {
    body: Bytes,
    /// Served from the cache without contacting the origin.
    hit: bool,
}

/// Fetches `url` through `client` and reads the body to the end (which is what stores it).
async fn fetch(client: &cachio::Client, url: String) -> Result<Fetched, BoxError> {
    let res = client.get(&url).await?;
    if res.status() != StatusCode::OK {
        return Err(format!("GET {url}: {}", res.status()).into());
    }
    let hit = res
        .headers()
        .get(CACHE_STATUS)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').any(|p| p.trim() == "hit"));
    let body = res.into_body().bytes().await?;
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

// ---- the program --------------------------------------------------------------------------------

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
    let (tls, ca_pem) = site_tls()?;
    let addr = start_site(tls, received.clone()).await?;
    let client = client(&dir, &ca_pem, addr)?;
    println!(
        "crawling https://{addr} (cached as {KEY_ORIGIN}) through the cache in {} ({})",
        dir.display(),
        if warm { "from an earlier run" } else { "new" }
    );

    // Breadth first from the index, each page once, CONCURRENCY requests in flight (polled
    // together in this task; the connections run on the runtime's threads).
    let start = Instant::now();
    let mut queue = VecDeque::from(["/".to_owned()]);
    let mut seen: HashSet<String> = queue.iter().cloned().collect();
    let mut in_flight = FuturesUnordered::new();
    let (mut pages, mut hits, mut bytes) = (0, 0, 0);
    while !queue.is_empty() || !in_flight.is_empty() {
        while in_flight.len() < CONCURRENCY
            && let Some(path) = queue.pop_front()
        {
            in_flight.push(fetch(&client, format!("https://{addr}{path}")));
        }
        let Some(page) = in_flight.next().await else {
            break;
        };
        let page = page?;
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
    let stats = client.stats().snapshot();

    println!(
        "{pages} pages, {:.1} KiB, in {:.1} ms: {hits} from the cache, {} from the origin",
        bytes as f64 / 1024.0,
        elapsed.as_secs_f64() * 1e3,
        pages - hits
    );
    println!(
        "the origin received {received} requests; the cache counted {} hits, {} misses, {} stores",
        stats.hits, stats.misses, stats.stores
    );
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
