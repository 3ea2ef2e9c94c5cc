//! A real HTTP/1.1 origin on 127.0.0.1 that can be stopped and started again on its port, and
//! the three ways to send requests through a cassette: the layer over a hyper client,
//! `cachio::Client` and the reqwest middleware.

#![allow(dead_code, reason = "the large-body test uses part of the support")]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use cachio_cassette::Cassette;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::{Service, ServiceBuilder, ServiceExt};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The `Date` every response of the origin carries, so that recording again gives the same files.
pub const DATE: &str = "Fri, 04 Dec 2026 12:00:00 GMT";

pub const MIB: u64 = 1024 * 1024;

/// The body of `/big`: 64 MiB.
pub const BIG: u64 = 64 * MIB;

/// The byte at `offset` of `/big`.
pub fn pattern(offset: u64) -> u8 {
    (offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// A response body made as it is read, in 64 KiB chunks, never whole in memory.
pub struct Pattern {
    at: u64,
    len: u64,
}

impl http_body::Body for Pattern {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.at >= self.len {
            return Poll::Ready(None);
        }
        let n = (self.len - self.at).min(64 * 1024);
        let chunk: Vec<u8> = (self.at..self.at + n).map(pattern).collect();
        self.at += n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.at >= self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.at)
    }
}

type OriginBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> OriginBody {
    Full::new(b.into()).boxed()
}

/// What the origin answers.
fn answer(req: &Request<Incoming>) -> Response<OriginBody> {
    let path = req.uri().path();
    let mut res = Response::builder().header("date", DATE);
    let body = match path {
        "/text" => {
            res = res
                .header("content-type", "text/plain; charset=utf-8")
                .header("set-cookie", "theme=dark; Path=/")
                .header("cache-control", "max-age=60")
                .header("link", "</a.css>; rel=preload")
                .header("set-cookie", "lang=en; Path=/")
                .header("link", "</b.js>; rel=preload")
                .header("x-origin", "yes");
            full("hello, recorded world\n")
        }
        "/json" => {
            res = res
                .header("content-type", "application/json")
                .header("etag", "\"v1\"");
            full("{\"id\": 7, \"name\": \"Ada\"}\n")
        }
        "/binary" => {
            res = res.header("content-type", "application/octet-stream");
            full(Bytes::from_static(b"\x00\x01\xfe\xff binary \r\n"))
        }
        "/no-store" => {
            res = res.header("cache-control", "no-store");
            full("not for caches, but recorded\n")
        }
        "/not-found" => {
            res = res.status(StatusCode::NOT_FOUND);
            full("no such thing\n")
        }
        "/vary" => {
            let lang = req
                .headers()
                .get("accept-language")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            res = res.header("vary", "accept-language");
            full(format!("language: {lang}\n"))
        }
        "/secret" => {
            res = res
                .header("set-cookie", "session=secret-set-cookie; HttpOnly")
                .header("x-api-key", "secret-api-key")
                .header("x-visible", "fine");
            full("nothing to hide\n")
        }
        "/per-user" => {
            res = res.header("vary", "authorization");
            full("for one user\n")
        }
        "/big" => {
            res = res
                .header("content-type", "application/octet-stream")
                .header("content-length", BIG.to_string());
            Pattern { at: 0, len: BIG }.boxed()
        }
        _ => {
            res = res.status(StatusCode::NOT_FOUND);
            full("")
        }
    };
    res.body(body).expect("a valid response")
}

/// A running origin.
pub struct Origin {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Origin {
    /// An origin on a free port.
    pub async fn start() -> Origin {
        Self::on(0).await
    }

    /// An origin on `port` (0: any free port).
    pub async fn on(port: u16) -> Origin {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the origin");
        let addr = listener.local_addr().expect("its address");
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let server = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let counter = counter.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let res = answer(&req);
                        async move { Ok::<_, Infallible>(res) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Origin { addr, hits, server }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The requests it answered.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops it: its listener and every connection are closed.
    pub async fn stop(self) {
        self.server.abort();
        let _ = self.server.await;
    }
}

/// A response as a test compares it: status, every header line in order but the cache's own
/// (`Age`, `Cache-Status`), and the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub status: u16,
    pub lines: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
    /// The whole header map, for the fields the comparison leaves out.
    pub headers: HeaderMap,
}

impl Seen {
    pub fn new(status: u16, headers: &HeaderMap, body: Bytes) -> Self {
        let lines = headers
            .iter()
            .filter(|(n, _)| *n != "age" && *n != "cache-status")
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        Self {
            status,
            lines,
            body,
            headers: headers.clone(),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The layer over a real hyper client: the tower way.
pub async fn via_layer(cassette: &Cassette, url: &str, headers: &[(&str, &str)]) -> Seen {
    let http = HyperClient::builder(TokioExecutor::new()).build(HttpConnector::new());
    let svc = ServiceBuilder::new().layer(cassette.layer()).service(http);
    let mut req = Request::get(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req.body(Empty::<Bytes>::new()).expect("a request");
    let res = svc.oneshot(req).await.expect("a response");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res
        .into_body()
        .collect()
        .await
        .expect("the body")
        .to_bytes();
    Seen::new(status, &headers, body)
}

/// `cachio::Client` with the cassette as its store.
pub fn client(cassette: &Cassette, dir: &Path) -> cachio::Client {
    let options = cassette.clone();
    cachio::Client::builder(dir)
        .store(cassette.clone())
        .layer(move |layer| options.configure(layer))
        .build()
        .expect("a client")
}

pub async fn via_client(client: &cachio::Client, url: &str, headers: &[(&str, &str)]) -> Seen {
    let mut req = Request::get(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let res = client
        .request(req.body(String::new()).expect("a request"))
        .await
        .expect("a response");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().bytes().await.expect("the body");
    Seen::new(status, &headers, body)
}

/// reqwest with the cassette's layer as its middleware.
pub fn reqwest(cassette: &Cassette) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(cachio_reqwest::Cache::new(cassette.layer()))
        .build()
}

pub async fn via_reqwest(
    client: &reqwest_middleware::ClientWithMiddleware,
    url: &str,
    headers: &[(&str, &str)],
) -> Seen {
    let mut req = client.get(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let res = req.send().await.expect("a response");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.bytes().await.expect("the body");
    Seen::new(status, &headers, body)
}

/// Every file of `dir` and its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read the cassette")
        .map(|e| {
            let e = e.expect("an entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read a file"),
            )
        })
        .collect()
}

/// Calls a service once it is ready.
pub async fn call<S, R>(svc: &mut S, req: R) -> Result<S::Response, S::Error>
where
    S: Service<R>,
{
    svc.ready().await?.call(req).await
}
