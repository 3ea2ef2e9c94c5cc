//! Record HTTP once, then replay it offline: a cassette as a test fixture.
//!
//! A local origin stands in for an API at `http://api.test`. A reqwest client with the cassette
//! as its cache middleware fetches three URLs from it and records them in a directory of readable
//! files. The origin is then stopped, and a second client replays the same URLs from the files
//! alone; a URL that was never recorded gets a `504` naming it and the closest recordings.
//!
//! ```text
//! cargo run -p replay                 # records into ./cachio-replay-cassette, then replays
//! cat cachio-replay-cassette/*.json   # what a recording looks like
//! ```
//!
//! The directory is the first argument, or `./cachio-replay-cassette`. Each run records it again;
//! recording identical responses leaves the files as they were. The program exits non-zero if a
//! replay differs from its recording.

use std::convert::Infallible;
use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use bytes::Bytes;
use cachio::cassette::{Cassette, Mode, Unmatched};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

type BoxError = Box<dyn Error + Send + Sync>;

/// The API's URL: the client resolves `api.test` to the local origin while recording.
const API: &str = "http://api.test";

/// The `Date` the origin sends: fixed, so recording again changes nothing.
const DATE: &str = "Fri, 04 Dec 2026 12:00:00 GMT";

/// The stand-in for the API.
async fn api(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let res = Response::builder().header("date", DATE);
    let res = match req.uri().path() {
        "/users/7" => res
            .header("content-type", "application/json")
            .header("cache-control", "max-age=60")
            .body(Full::from("{\"id\": 7, \"name\": \"Ada\"}\n")),
        "/users/8" => res
            .header("content-type", "application/json")
            // Not stored by a cache; recorded all the same.
            .header("cache-control", "no-store")
            .body(Full::from("{\"id\": 8, \"name\": \"Grace\"}\n")),
        "/health" => res
            .header("content-type", "text/plain")
            .body(Full::from("ok\n")),
        _ => res.status(404).body(Full::from("")),
    };
    Ok(res.expect("a valid response"))
}

/// Starts the origin; it runs until the returned task is aborted.
async fn start_origin() -> Result<(SocketAddr, tokio::task::JoinHandle<()>), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(
                http1::Builder::new().serve_connection(TokioIo::new(tcp), service_fn(api)),
            );
        }
    });
    Ok((addr, task))
}

/// A reqwest client with the cassette in front of it; `origin` is where `api.test` is while
/// recording (none when replaying: nothing may reach the network).
fn client(
    cassette: &Cassette,
    origin: Option<SocketAddr>,
) -> Result<reqwest_middleware::ClientWithMiddleware, BoxError> {
    let mut http = reqwest::Client::builder();
    if let Some(addr) = origin {
        http = http.resolve("api.test", addr);
    }
    Ok(reqwest_middleware::ClientBuilder::new(http.build()?)
        .with(cachio::reqwest::Cache::new(cassette.layer()))
        .build())
}

/// Fetches `path`: its status, body and `Cache-Status`.
async fn fetch(
    client: &reqwest_middleware::ClientWithMiddleware,
    path: &str,
) -> Result<(u16, String, Option<Unmatched>), BoxError> {
    let res = client.get(format!("{API}{path}")).send().await?;
    let status = res.status().as_u16();
    let unmatched = Unmatched::from_headers(res.headers());
    let cache = res
        .headers()
        .get_all("cache-status")
        .iter()
        .map(|v| v.to_str().unwrap_or("?").to_owned())
        .collect::<Vec<_>>()
        .join(", ");
    let body = res.text().await?;
    let first_line = body.lines().next().unwrap_or_default();
    println!("  GET {path:<10} {status}  {first_line:<44} [{cache}]");
    Ok((status, body, unmatched))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool, BoxError> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map_or_else(|| "cachio-replay-cassette".into(), PathBuf::from);
    let paths = ["/users/7", "/users/8", "/health"];

    println!("recording into {} (origin running)", dir.display());
    let (addr, origin) = start_origin().await?;
    let recording = Cassette::open(&dir, Mode::Record)?;
    let live = client(&recording, Some(addr))?;
    let mut recorded = Vec::new();
    for path in paths {
        recorded.push(fetch(&live, path).await?);
    }
    origin.abort();
    let _ = origin.await;

    println!("replaying (origin stopped)");
    let replaying = Cassette::open(&dir, Mode::Replay)?;
    let offline = client(&replaying, None)?;
    let mut same = true;
    for (path, (status, body, _)) in paths.iter().zip(&recorded) {
        let (s, b, _) = fetch(&offline, path).await?;
        same &= s == *status && b == *body;
    }
    let (status, _, unmatched) = fetch(&offline, "/users/9").await?;
    match unmatched {
        Some(u) if status == 504 => {
            println!("the answer names what is missing and what is recorded:");
            print!("  {}", u.to_string().replace('\n', "\n  ").trim_end());
            println!();
        }
        _ => same = false,
    }
    if !same {
        eprintln!("a replay differed from its recording");
    }
    Ok(same)
}
