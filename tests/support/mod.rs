//! The whole-stack test harness: a real hyper 1 HTTP/1.1 origin on 127.0.0.1, and a hyper-util
//! client behind [`CacheLayer`] pointing at it, both reading time from one [`ManualClock`].
//!
//! Each test file declares `mod support;` and uses the part it needs.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cachio::{Cache, CacheLayer, ManualClock, MemoryStore, ResponseBody, Store};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tower::{ServiceBuilder, ServiceExt};

pub mod flaky;

/// The error type of origin bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The hyper client the cache wraps.
pub type Client = LegacyClient<HttpConnector, Full<Bytes>>;

/// The service under test: the cache in front of the client.
pub type Svc<St> = Cache<Client, St>;

/// The time every test starts at (a whole second, so `Date` loses nothing).
pub const T0: u64 = 1_700_000_000;

/// A manual clock at [`T0`].
pub fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0))
}

/// An HTTP date `secs` seconds from [`T0`] (negative: before it).
pub fn http_date(secs: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(T0.checked_add_signed(secs).expect("date in range"));
    cachio::core::meta::fmt_http_date(t)
        .to_str()
        .expect("dates are ASCII")
        .to_owned()
}

// ---- the origin ---------------------------------------------------------------------------------

/// A request the origin received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// 1 for the first request the origin received, 2 for the second, ...
    pub n: usize,
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
}

impl Seen {
    /// A request header as a string, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// The path and query.
    pub fn path(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    /// Whether the request is conditional (carries `If-None-Match` or `If-Modified-Since`).
    pub fn is_conditional(&self) -> bool {
        self.headers.contains_key(http::header::IF_NONE_MATCH)
            || self.headers.contains_key(http::header::IF_MODIFIED_SINCE)
    }
}

/// What the origin answers: a status, header fields, a body (whole or streamed).
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: UnsyncBoxBody<Bytes, BoxError>,
    delay: Duration,
    hold: Option<Arc<tokio::sync::Notify>>,
}

/// A reply with `status` and an empty body.
pub fn reply(status: u16) -> Reply {
    Reply {
        status: StatusCode::from_u16(status).expect("valid status"),
        headers: Vec::new(),
        body: Empty::new()
            .map_err(|e: Infallible| match e {})
            .boxed_unsync(),
        delay: Duration::ZERO,
        hold: None,
    }
}

/// A `200` reply with `body`.
pub fn ok(body: &'static str) -> Reply {
    reply(200).body(body)
}

impl Reply {
    /// Adds a header field line (repeat it for a multi-line field).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((
            HeaderName::from_bytes(name.as_bytes()).expect("valid name"),
            HeaderValue::from_str(value).expect("valid value"),
        ));
        self
    }

    /// Replaces the status code.
    pub fn status(mut self, status: u16) -> Self {
        self.status = StatusCode::from_u16(status).expect("valid status");
        self
    }

    /// Adds `Cache-Control`.
    pub fn cc(self, value: &str) -> Self {
        self.header("cache-control", value)
    }

    /// Sets the whole body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Full::new(body.into())
            .map_err(|e: Infallible| match e {})
            .boxed_unsync();
        self
    }

    /// Streams the body: `feed` gets the sending end of a channel and runs on its own task; it may
    /// send chunks with delays, wait for signals, and fail the body with [`Feed::fail`].
    /// Dropping the feed ends the body normally.
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

    /// Sets the body to `body` followed by a trailer section with one field, announced in
    /// `Trailer` (hyper sends it when the request carries `TE: trailers`).
    pub fn trailer(self, body: &'static str, name: &'static str, value: &'static str) -> Self {
        let mut this = self.header("trailer", name);
        let mut trailers = HeaderMap::new();
        trailers.insert(name, HeaderValue::from_static(value));
        this.body = Trailed {
            data: Some(Bytes::from_static(body.as_bytes())),
            trailers: Some(trailers),
        }
        .boxed_unsync();
        this
    }

    /// A body that sends `prefix` and then fails (the origin dies mid-body).
    pub fn fail_after(self, prefix: &'static str) -> Self {
        self.stream(move |feed| async move {
            feed.send(Bytes::from_static(prefix.as_bytes())).await;
            tokio::task::yield_now().await;
            feed.fail("origin died mid-body").await;
        })
    }

    /// The origin takes `by` of (manual clock) time to answer: the clock moves on before the
    /// response, and its `Date`, are made.
    pub fn slow(mut self, by: Duration) -> Self {
        self.delay = by;
        self
    }

    /// The origin waits for `signal` before it answers.
    pub fn hold(mut self, signal: Arc<tokio::sync::Notify>) -> Self {
        self.hold = Some(signal);
        self
    }
}

/// The sending end of a streamed origin body.
pub struct Feed {
    tx: mpsc::Sender<Result<Bytes, BoxError>>,
}

impl Feed {
    /// Sends a chunk; `false` when the body is gone (the client hung up).
    pub async fn send(&self, chunk: impl Into<Bytes>) -> bool {
        self.tx.send(Ok(chunk.into())).await.is_ok()
    }

    /// Fails the body: hyper aborts the response mid-body.
    pub async fn fail(self, why: &str) {
        let _ = self.tx.send(Err(why.to_owned().into())).await;
    }
}

/// A body of one chunk and a trailer section.
struct Trailed {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl http_body::Body for Trailed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let frame = match self.data.take() {
            Some(data) => http_body::Frame::data(data),
            None => match self.trailers.take() {
                Some(trailers) => http_body::Frame::trailers(trailers),
                None => return Poll::Ready(None),
            },
        };
        Poll::Ready(Some(Ok(frame)))
    }
}

/// The receiving end: an origin body fed by a [`Feed`].
struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, BoxError>>,
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
            .map(|chunk| chunk.map(|r| r.map(http_body::Frame::data)))
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A hyper HTTP/1.1 server on an ephemeral port of 127.0.0.1 that answers with a per-test closure,
/// counts requests and records what it saw. Every response gets a `Date` from the manual clock
/// unless the closure set one.
pub struct Origin {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Origin {
    /// Starts an origin answering with `handler`.
    pub async fn start<H>(clock: ManualClock, handler: H) -> Self
    where
        H: Fn(&Seen) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let handler: Handler = Arc::new(handler);
        let counter = Arc::new(AtomicUsize::new(0));
        let accept = {
            let seen = seen.clone();
            let tasks = tasks.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let svc = {
                        let seen = seen.clone();
                        let handler = handler.clone();
                        let clock = clock.clone();
                        let counter = counter.clone();
                        hyper::service::service_fn(move |req: Request<Incoming>| {
                            let seen = seen.clone();
                            let handler = handler.clone();
                            let clock = clock.clone();
                            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                            async move {
                                let (parts, _body) = req.into_parts();
                                let s = Seen {
                                    n,
                                    method: parts.method,
                                    uri: parts.uri,
                                    headers: parts.headers,
                                };
                                seen.lock().unwrap().push(s.clone());
                                let r = handler(&s);
                                if let Some(signal) = &r.hold {
                                    signal.notified().await;
                                }
                                if !r.delay.is_zero() {
                                    clock.advance(r.delay);
                                }
                                let mut res = Response::new(r.body);
                                *res.status_mut() = r.status;
                                for (name, value) in r.headers {
                                    res.headers_mut().append(name, value);
                                }
                                if !res.headers().contains_key(http::header::DATE) {
                                    let now: SystemTime = cachio::Clock::now(&clock);
                                    res.headers_mut().insert(
                                        http::header::DATE,
                                        cachio::core::meta::fmt_http_date(now),
                                    );
                                }
                                Ok::<_, Infallible>(res)
                            }
                        })
                    };
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
        Self { addr, seen, tasks }
    }

    /// How many requests the origin has received.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The last request the origin received.
    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the origin saw a request")
    }

    /// Stops the origin: no more connections are accepted and open ones are closed.
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

// ---- the client under test ----------------------------------------------------------------------

/// A response, read to the end.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Got {
    /// A header field as a string, if present (the first line).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// Every line of a header field.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ASCII header"))
            .collect()
    }

    /// Our `Cache-Status` entry (the last one).
    pub fn cache_status(&self) -> &str {
        self.all("cache-status")
            .last()
            .copied()
            .expect("every response carries Cache-Status")
    }

    /// Whether the response was served from the cache.
    pub fn is_hit(&self) -> bool {
        self.cache_status().split("; ").any(|p| p == "hit")
    }

    /// The `Age` header as a number.
    pub fn age(&self) -> Option<u64> {
        self.header("age")
            .map(|a| a.parse().expect("Age is a number"))
    }

    /// The body as a string.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }
}

/// The origin, the clock and the cached client of one test.
pub struct Harness<St = MemoryStore> {
    pub origin: Origin,
    pub clock: ManualClock,
    pub svc: Svc<St>,
}

impl Harness<MemoryStore> {
    /// A private cache over a memory store in front of an origin answering with `handler`.
    pub async fn private<H>(handler: H) -> Self
    where
        H: Fn(&Seen) -> Reply + Send + Sync + 'static,
    {
        Self::with(CacheLayer::private(memory()), handler).await
    }

    /// A shared cache over a memory store in front of an origin answering with `handler`.
    pub async fn shared<H>(handler: H) -> Self
    where
        H: Fn(&Seen) -> Reply + Send + Sync + 'static,
    {
        Self::with(CacheLayer::shared(memory()), handler).await
    }
}

/// A memory store of 64 MiB.
pub fn memory() -> MemoryStore {
    MemoryStore::new(64 << 20)
}

impl<St: Store> Harness<St> {
    /// `layer` (given the harness's clock) in front of an origin answering with `handler`.
    pub async fn with<H>(layer: CacheLayer<St>, handler: H) -> Self
    where
        H: Fn(&Seen) -> Reply + Send + Sync + 'static,
    {
        Self::with_clock(layer, clock(), handler).await
    }

    /// [`with`](Self::with) on a clock the caller keeps (for a handler that reads it).
    pub async fn with_clock<H>(layer: CacheLayer<St>, clock: ManualClock, handler: H) -> Self
    where
        H: Fn(&Seen) -> Reply + Send + Sync + 'static,
    {
        let origin = Origin::start(clock.clone(), handler).await;
        let client: Client = LegacyClient::builder(TokioExecutor::new()).build_http();
        let svc = ServiceBuilder::new()
            .layer(layer.clock(clock.clone()))
            .service(client);
        Self { origin, clock, svc }
    }

    /// The absolute URL of `path` on the origin.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.origin.addr, path)
    }

    /// A request builder for `GET path`.
    pub fn req(&self, path: &str) -> http::request::Builder {
        Request::get(self.url(path))
    }

    /// Sends a request (with an empty body) and returns the response with its body unread.
    pub async fn call(
        &self,
        req: http::request::Builder,
    ) -> Result<Response<ResponseBody<Incoming, St>>, hyper_util::client::legacy::Error> {
        self.svc
            .clone()
            .oneshot(req.body(Full::default()).expect("valid request"))
            .await
    }

    /// Sends a request and reads the response to the end.
    pub async fn send(&self, req: http::request::Builder) -> Got {
        let res = self.call(req).await.expect("the request succeeds");
        let (parts, body) = res.into_parts();
        let collected = body.collect().await.expect("the body is read to the end");
        let trailers = collected.trailers().cloned();
        let got = Got {
            status: parts.status,
            headers: parts.headers,
            body: collected.to_bytes(),
            trailers,
        };
        // Invariants of every response: RFC 9211 §2 and RFC 9111 §5.1.
        assert!(
            got.headers.contains_key("cache-status"),
            "every response carries Cache-Status"
        );
        if got.is_hit() {
            assert_eq!(
                got.all("age").len(),
                1,
                "a response from the cache carries one Age"
            );
        }
        got
    }

    /// `GET path`, read to the end.
    pub async fn get(&self, path: &str) -> Got {
        self.send(self.req(path)).await
    }

    /// How many requests reached the origin.
    pub fn count(&self) -> usize {
        self.origin.count()
    }

    /// Moves the clock on by `secs` seconds.
    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

/// Gives work spawned by the cache (commits, background revalidations) time to land, so that a
/// test that something did *not* happen means something.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Polls `cond` every few milliseconds until it holds, for at most five seconds.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
