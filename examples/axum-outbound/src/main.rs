//! An axum app that calls an upstream API through a cached client.
//!
//! The handler of `GET /weather/{city}` asks an upstream API (another local axum server) for the
//! forecast through a hyper-util client behind `CacheLayer::private`, kept in the app's state.
//! The upstream answers with `Cache-Control: max-age=30`, so repeated requests for a city are
//! answered from the cache and reach the upstream once.
//!
//! Run it with `cargo run -p axum-outbound`.

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use cachio::{CACHE_STATUS, Cache, CacheLayer, MemoryStore};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};

type BoxError = Box<dyn Error + Send + Sync>;

/// A hyper-util client with a memory cache in front.
type CachedClient = Cache<Client<HttpConnector, Empty<Bytes>>, MemoryStore>;

/// The header field in which the app tells what the cache did with its upstream request.
const UPSTREAM_CACHE_STATUS: &str = "x-upstream-cache-status";

#[derive(Clone)]
struct AppState {
    /// The upstream API, e.g. `http://127.0.0.1:4000`.
    upstream: String,
    client: CachedClient,
}

/// `GET /weather/{city}`: the upstream's forecast, streamed through.
async fn weather(
    State(state): State<AppState>,
    Path(city): Path<String>,
) -> Result<Response, (StatusCode, String)> {
    let bad_gateway = |e: BoxError| (StatusCode::BAD_GATEWAY, e.to_string());
    let req = Request::get(format!("{}/forecast/{city}", state.upstream))
        .body(Empty::new())
        .map_err(|e| bad_gateway(e.into()))?;
    let res = state
        .client
        .oneshot(req)
        .await
        .map_err(|e| bad_gateway(e.into()))?;
    if !res.status().is_success() {
        return Err((
            StatusCode::BAD_GATEWAY,
            format!("upstream: {}", res.status()),
        ));
    }
    let cache_status = res.headers().get(CACHE_STATUS).cloned();
    let mut out = Body::new(res.into_body()).into_response();
    if let Some(v) = cache_status {
        out.headers_mut().insert(UPSTREAM_CACHE_STATUS, v);
    }
    Ok(out)
}

/// The upstream API: `GET /forecast/{city}`, fresh for 30 seconds; counts its requests.
fn upstream(hits: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route(
            "/forecast/{city}",
            get(
                |State(hits): State<Arc<AtomicUsize>>, Path(city): Path<String>| async move {
                    hits.fetch_add(1, Ordering::Relaxed);
                    (
                        [(CACHE_CONTROL, HeaderValue::from_static("max-age=30"))],
                        format!("{city}: sunny, 21 °C"),
                    )
                },
            ),
        )
        .with_state(hits)
}

/// Serves `app` on an ephemeral port of 127.0.0.1 and returns its base URL.
async fn serve(app: Router) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("server failed: {e}");
        }
    });
    Ok(base)
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
    let upstream = serve(upstream(hits.clone())).await?;

    let client = Client::builder(TokioExecutor::new()).build_http();
    let client = CacheLayer::private(MemoryStore::new(32 << 20)).layer(client);
    let app = Router::new()
        .route("/weather/{city}", get(weather))
        .with_state(AppState { upstream, client });
    let app = serve(app).await?;
    println!("app listening on {app}\n");

    // A plain client playing the app's users.
    let users = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for (city, upstream_hits) in [("paris", 1), ("paris", 1), ("paris", 1), ("oslo", 2)] {
        let res = users
            .request(Request::get(format!("{app}/weather/{city}")).body(Empty::new())?)
            .await?;
        let status = res.status();
        let cache_status = res
            .headers()
            .get(UPSTREAM_CACHE_STATUS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        let body = res.into_body().collect().await?.to_bytes();
        let seen = hits.load(Ordering::Relaxed);
        println!(
            "GET /weather/{city:<6} {status}  {:<22} upstream requests: {seen}  (upstream cache-status: {cache_status})",
            String::from_utf8_lossy(&body),
        );
        if status != StatusCode::OK || seen != upstream_hits {
            return Err(format!(
                "GET /weather/{city}: {status} with {seen} upstream requests, expected 200 with {upstream_hits}"
            )
            .into());
        }
    }
    Ok(())
}
