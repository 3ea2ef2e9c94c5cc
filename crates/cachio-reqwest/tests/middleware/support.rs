//! A real hyper HTTP/1.1 origin on 127.0.0.1, and a reqwest-middleware client with the cache in
//! front of it, both reading time from one [`ManualClock`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cachio_core::clock::{Clock, ManualClock};
use cachio_moka::MokaStore;
use cachio_reqwest::{Cache, CacheLayer};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Extensions, Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next, RequestBuilder};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The time every test starts at.
pub const T0: u64 = 1_700_000_000;

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * KIB;

/// A request the origin received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// 1 for the first request the origin received, 2 for the second, ...
    pub n: usize,
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII"))
    }

    pub fn path(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    /// Whether the request went through the middleware after the cache (see [`Tag`]).
    pub fn through_chain(&self) -> bool {
        self.header(TAG) == Some("yes")
    }
}

/// What the origin answers.
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: UnsyncBoxBody<Bytes, BoxError>,
}

pub fn reply(status: u16) -> Reply {
    Reply {
        status: StatusCode::from_u16(status).expect("status"),
        headers: Vec::new(),
        body: Empty::new()
            .map_err(|e: Infallible| match e {})
            .boxed_unsync(),
    }
}

pub fn ok(body: &'static str) -> Reply {
    reply(200).body(body)
}

impl Reply {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        ));
        self
    }

    pub fn cc(self, value: &str) -> Self {
        self.header("cache-control", value)
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Full::new(body.into())
            .map_err(|e: Infallible| match e {})
            .boxed_unsync();
        self
    }

    /// Streams the body from `feed`, run on a task of its own; dropping the feed ends the body.
    pub fn stream<F, Fut>(mut self, feed: F) -> Self
    where
        F: FnOnce(Feed) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(feed(Feed { tx }));
        self.body = ChannelBody { rx }.boxed_unsync();
        self
    }
}

/// The sending end of a streamed origin body.
pub struct Feed {
    tx: mpsc::Sender<Bytes>,
}

impl Feed {
    /// Sends a chunk; `false` when the client hung up.
    pub async fn send(&self, chunk: impl Into<Bytes>) -> bool {
        self.tx.send(chunk.into()).await.is_ok()
    }
}

struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(http_body::Frame::data(c))))
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A hyper server on an ephemeral port of 127.0.0.1 answering with a per-test closure; it
/// records every request (with its body) and dates responses from the manual clock.
pub struct Origin {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    /// Receives each request as it arrives.
    pub arrivals: tokio::sync::Mutex<mpsc::UnboundedReceiver<Seen>>,
}

impl Origin {
    pub async fn start<H>(clock: ManualClock, handler: H) -> Self
    where
        H: Fn(&Seen) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (arrived, arrivals) = mpsc::unbounded_channel();
        let handler: Handler = Arc::new(handler);
        let counter = Arc::new(AtomicUsize::new(0));
        let accept = {
            let (seen, tasks) = (seen.clone(), tasks.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (seen, handler, clock, counter, arrived) = (
                        seen.clone(),
                        handler.clone(),
                        clock.clone(),
                        counter.clone(),
                        arrived.clone(),
                    );
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (seen, handler, clock, counter, arrived) = (
                            seen.clone(),
                            handler.clone(),
                            clock.clone(),
                            counter.clone(),
                            arrived.clone(),
                        );
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes());
                            let s = Seen {
                                n: counter.fetch_add(1, Ordering::SeqCst) + 1,
                                method: parts.method,
                                uri: parts.uri,
                                headers: parts.headers,
                                body: body.unwrap_or_default(),
                            };
                            seen.lock().unwrap().push(s.clone());
                            let _ = arrived.send(s.clone());
                            let r = handler(&s);
                            let mut res = Response::new(r.body);
                            *res.status_mut() = r.status;
                            for (name, value) in r.headers {
                                res.headers_mut().append(name, value);
                            }
                            if !res.headers().contains_key(http::header::DATE) {
                                let now: SystemTime = clock.now();
                                res.headers_mut().insert(
                                    http::header::DATE,
                                    cachio_core::meta::fmt_http_date(now),
                                );
                            }
                            Ok::<_, Infallible>(res)
                        }
                    });
                    let conn = tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                    tasks.lock().unwrap().push(conn.abort_handle());
                }
            })
        };
        tasks.lock().unwrap().push(accept.abort_handle());
        Self {
            addr,
            seen,
            tasks,
            arrivals: tokio::sync::Mutex::new(arrivals),
        }
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }

    /// Waits (at most 10 s) for the next request to arrive.
    pub async fn next_arrival(&self) -> Seen {
        tokio::time::timeout(Duration::from_secs(10), self.arrivals.lock().await.recv())
            .await
            .expect("a request arrives")
            .expect("the origin runs")
    }

    /// No more connections are accepted, and open ones are closed.
    pub fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The header [`Tag`] adds.
pub const TAG: &str = "x-through-chain";

/// A middleware placed after the cache: it marks every request that goes down the chain.
pub struct Tag;

#[async_trait::async_trait]
impl Middleware for Tag {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        req.headers_mut()
            .insert(TAG, HeaderValue::from_static("yes"));
        next.run(req, extensions).await
    }
}

/// A response, read to the end.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub url: reqwest::Url,
    pub body: Bytes,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII"))
    }

    pub fn cache_status(&self) -> &str {
        self.header("cache-status").unwrap_or("")
    }

    pub fn is_hit(&self) -> bool {
        self.cache_status().split(';').any(|p| p.trim() == "hit")
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8")
    }
}

pub fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0))
}

/// The origin and a client with the cache, then [`Tag`], in front of it.
pub struct Harness<St = MokaStore> {
    pub origin: Origin,
    pub clock: ManualClock,
    pub client: ClientWithMiddleware,
    pub cache: Cache<St>,
}

pub fn memory() -> MokaStore {
    MokaStore::new(64 * MIB as u64)
}

impl Harness {
    pub async fn private<H>(handler: H) -> Self
    where
        H: Fn(&Seen) -> Reply + Send + Sync + 'static,
    {
        Self::with(CacheLayer::private(memory()), handler).await
    }
}

impl<St: cachio_core::store::Store> Harness<St> {
    /// `layer` (its clock replaced by the harness's) in a client.
    pub async fn with<H>(layer: CacheLayer<St>, handler: H) -> Self
    where
        H: Fn(&Seen) -> Reply + Send + Sync + 'static,
    {
        Self::build(layer, handler, |cache| cache).await
    }

    /// As [`with`](Self::with), with a last touch to the middleware.
    pub async fn build<H>(
        layer: CacheLayer<St>,
        handler: H,
        finish: impl FnOnce(Cache<St>) -> Cache<St>,
    ) -> Self
    where
        H: Fn(&Seen) -> Reply + Send + Sync + 'static,
    {
        let clock = clock();
        let origin = Origin::start(clock.clone(), handler).await;
        let cache = finish(Cache::new(layer.clock(clock.clone())));
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(cache.clone())
            .with(Tag)
            .build();
        Self {
            origin,
            clock,
            client,
            cache,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.origin.addr)
    }

    pub fn get_req(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }

    pub async fn send(&self, req: RequestBuilder) -> Got {
        read(req.send().await.expect("the request succeeds")).await
    }

    pub async fn get(&self, path: &str) -> Got {
        self.send(self.get_req(path)).await
    }

    pub fn count(&self) -> usize {
        self.origin.count()
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

pub async fn read(res: reqwest::Response) -> Got {
    let status = res.status();
    let headers = res.headers().clone();
    let url = res.url().clone();
    let body = res.bytes().await.expect("the body arrives");
    Got {
        status,
        headers,
        url,
        body,
    }
}

/// `len` bytes of a pattern that shows misplaced or repeated chunks.
pub fn pattern(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251 % 256) as u8)
        .collect::<Vec<u8>>()
        .into()
}
