//! Test helpers: an origin and a gateway on 127.0.0.1 ephemeral ports, and a client.

#![allow(dead_code, reason = "each test file uses a part of the helpers")]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cachio_gateway::{Gateway, GatewayBuilder};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

/// What the origin saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: http::Method,
    /// The request target exactly as it arrived.
    pub target: String,
    pub headers: HeaderMap,
}

/// Counters an origin keeps.
#[derive(Default)]
pub struct OriginState {
    pub count: AtomicUsize,
    pub inflight: AtomicUsize,
    pub max_inflight: AtomicUsize,
    pub seen: Mutex<Vec<Seen>>,
}

impl OriginState {
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::SeqCst)
    }
    pub fn max_inflight(&self) -> usize {
        self.max_inflight.load(Ordering::SeqCst)
    }
    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the origin saw a request")
    }
}

type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync,
>;

/// An origin server: counts requests and in-flight requests, records what it saw, and answers
/// with `handler`. `kill` stops it: the listener closes and open connections are cut.
pub struct Origin {
    pub addr: SocketAddr,
    pub state: Arc<OriginState>,
    tasks: Option<JoinSet<()>>,
}

impl Origin {
    pub async fn start<F, Fut>(handler: F) -> Origin
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(OriginState::default());
        let mut tasks = JoinSet::new();
        let st = state.clone();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let st = st.clone();
                conns.spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        let st = st.clone();
                        async move {
                            st.count.fetch_add(1, Ordering::SeqCst);
                            let now = st.inflight.fetch_add(1, Ordering::SeqCst) + 1;
                            st.max_inflight.fetch_max(now, Ordering::SeqCst);
                            st.seen.lock().unwrap().push(Seen {
                                method: req.method().clone(),
                                target: req.uri().to_string(),
                                headers: req.headers().clone(),
                            });
                            let res = handler(req).await;
                            st.inflight.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(res)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Origin {
            addr,
            state,
            tasks: Some(tasks),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the origin: its listener closes (connections are refused) and open connections
    /// are cut.
    pub async fn kill(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
}

/// A gateway serving on an ephemeral port.
pub struct Running {
    pub addr: SocketAddr,
    pub gateway: Gateway,
    shutdown: Option<oneshot::Sender<()>>,
    pub served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    pub async fn start(builder: GatewayBuilder) -> Running {
        let gateway = builder.build().expect("the gateway builds");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let served = tokio::spawn(cachio_gateway::serve(listener, gateway.router(), async {
            let _ = rx.await;
        }));
        Running {
            addr,
            gateway,
            shutdown: Some(tx),
            served: Some(served),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Signals the graceful shutdown.
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build_http()
}

/// A response read to the end.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn cache_status(&self) -> &str {
        self.headers
            .get("cache-status")
            .map_or("", |v| v.to_str().unwrap())
    }
}

pub async fn send(
    client: &Client<HttpConnector, Empty<Bytes>>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> Got {
    let mut req = Request::builder().method(method).uri(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let res = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .expect("the gateway answers");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("the body arrives").to_bytes();
    Got {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(client: &Client<HttpConnector, Empty<Bytes>>, url: &str) -> Got {
    send(client, "GET", url, &[]).await
}

/// Polls `cond` every few milliseconds until it holds; panics after `secs` seconds.
pub async fn eventually(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A gate the origin waits at until the test opens it (or a safety timeout passes).
#[derive(Clone)]
pub struct Gate(Arc<tokio::sync::watch::Sender<bool>>);

impl Gate {
    pub fn closed() -> Gate {
        Gate(Arc::new(tokio::sync::watch::channel(false).0))
    }
    pub fn open(&self) {
        self.0.send_replace(true);
    }
    pub fn close(&self) {
        self.0.send_replace(false);
    }
    pub async fn wait(&self, safety: Duration) {
        let mut rx = self.0.subscribe();
        let _ = tokio::time::timeout(safety, rx.wait_for(|open| *open)).await;
    }
}

pub fn ok(cache_control: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .header("cache-control", cache_control)
        .body(full(body))
        .unwrap()
}
