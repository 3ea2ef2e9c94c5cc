//! The proxy service: the outer layer around the cache. It refuses malformed requests, answers
//! `PURGE`, removes hop-by-hop fields and the headers the gateway drops (the origin client sets
//! the forwarding fields), turns what the cache could not answer into 502/504 (or 400 when the
//! client's body was at fault), appends `Via`, counts responses and writes the access log.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use bytes::Bytes;
use cachio_core::backend::content_length;
use cachio_core::policy::status::{CacheStatus, Fwd};
use cachio_core::store::Store;
use cachio_tower::{CACHE_STATUS, Cache, CacheLayer, ResponseFuture, StoreOutcome};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use tower::Service;
use tracing::Instrument;

use crate::hop::{self, Via};
use crate::hygiene::{self, Dropped};
use crate::interim;
use crate::key::{self, KeyShape};
use crate::metrics::Metrics;
use crate::purge::{self, PurgeSettings};
use crate::upstream::{Upstream, UpstreamError};

/// The `tracing` target of the access log: one event per request at `INFO`.
pub const ACCESS_LOG_TARGET: &str = "cachio_gateway::access";

/// What the proxy, the purge routes and the metrics share.
pub(crate) struct Shared<St> {
    pub(crate) store: St,
    /// The cache's layer: purges go through it, to be ordered with the fetches in flight.
    pub(crate) layer: CacheLayer<St>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) cache_name: String,
    pub(crate) via: Via,
    pub(crate) purge: PurgeSettings,
    /// The request headers removed before the cache (the rewrite headers and the like).
    pub(crate) dropped: Dropped,
    /// Whether the `PURGE` method is answered here (not when the admin routes are separate).
    pub(crate) purge_method: bool,
    /// The site's cache key function (the layer's, when it is not the default one).
    pub(crate) keys: Arc<KeyShape>,
    /// Whether `Cache-Status` shows the key.
    pub(crate) debug_key: bool,
}

/// The proxy: `PURGE`, then the cache over the origin, then error mapping.
pub(crate) struct Proxy<St: Store> {
    pub(crate) cache: Cache<Upstream, St>,
    pub(crate) shared: Arc<Shared<St>>,
}

impl<St: Store> Clone for Proxy<St> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            shared: self.shared.clone(),
        }
    }
}

type Cached<St> =
    ResponseFuture<Response<cachio_tower::ResponseBody<hyper::body::Incoming, St>>, UpstreamError>;

enum Work<St: Store> {
    Purge(Box<Request<Body>>),
    /// The request's body flag is set when reading its body failed.
    Cache(Cached<St>, Option<Arc<AtomicBool>>),
    Refuse(Box<Response<Body>>),
}

impl<St: Store> Service<Request<Body>> for Proxy<St> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The origin client is always ready and never fails to be: only readiness passes on.
        self.cache.poll_ready(cx).map(|_| Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let start = Instant::now();
        let shared = self.shared.clone();
        let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path());
        let log = tracing::enabled!(target: ACCESS_LOG_TARGET, tracing::Level::INFO).then(|| {
            let path = req
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
            (req.method().clone(), path)
        });
        let mut interim = None;
        let mut shown_key = None;
        let work = if let Err(why) = hygiene::check_host(&req) {
            Work::Refuse(Box::new(hygiene::bad_request(why)))
        } else if req.method().as_str() == "PURGE" {
            if shared.purge_method {
                Work::Purge(Box::new(req))
            } else {
                Work::Refuse(Box::new(purge_elsewhere()))
            }
        } else {
            hop::strip(req.headers_mut());
            shared.dropped.strip(req.headers_mut());
            let body_failed = hygiene::watch_body(&mut req);
            // An HTTP/1.1 client gets the origin's interim responses (RFC 9110 §15.2).
            interim = req
                .extensions_mut()
                .remove::<interim::Connection>()
                .filter(|_| req.version() == http::Version::HTTP_11)
                .map(|conn| conn.begin(shared.via.for_version(http::Version::HTTP_11)));
            if let Some(i) = &interim {
                req.extensions_mut().insert(i.sender());
            }
            if shared.debug_key {
                let (parts, body) = req.into_parts();
                shown_key = Some(shared.keys.key(&parts));
                req = Request::from_parts(parts, body);
            }
            Work::Cache(self.cache.call(req), body_failed)
        };
        let fut = async move {
            let mut res = match work {
                Work::Purge(req) => purge::purge_method(shared.clone(), *req).await,
                Work::Cache(fut, body_failed) => match fut.await {
                    Ok(res) => res.map(Body::new),
                    // The origin got no whole request because the client's body was malformed
                    // (or cut short): the client's error.
                    Err(_) if hygiene::body_failed(body_failed.as_ref()) => {
                        hygiene::bad_request("the request body is malformed or incomplete")
                    }
                    Err(e) => error_response(&e, &shared.cache_name),
                },
                Work::Refuse(res) => *res,
            };
            // The interim responses go out before the final one, and no later one after it.
            if let Some(i) = interim {
                i.finish().await;
            }
            if let Some(k) = shown_key {
                with_key(&mut res, &k);
            }
            res.headers_mut()
                .append(header::VIA, shared.via.for_version(http::Version::HTTP_11));
            shared.metrics.response(res.status());
            if let Some((method, path)) = log {
                let cache_status = res.headers().get(CACHE_STATUS).cloned();
                // hyper stops reading a body once it has its `Content-Length`, so a body may never
                // report its end to the log: every announced byte sent makes it complete.
                let length = (method != Method::HEAD)
                    .then(|| content_length(res.headers()))
                    .flatten();
                let entry = AccessLog(Some(Entry {
                    span: tracing::Span::current(),
                    method,
                    path,
                    status: res.status(),
                    cache_status,
                    start,
                    bytes: 0,
                    length,
                    complete: false,
                    outcome: res.extensions().get::<StoreOutcome>().cloned(),
                }));
                res = res.map(|body| {
                    Body::new(Logged {
                        inner: body,
                        log: entry,
                    })
                });
            }
            Ok(res)
        };
        Box::pin(fut.instrument(span))
    }
}

/// Adds the cache key to the response's `Cache-Status` (RFC 9211 §2.6).
fn with_key(res: &mut Response<Body>, k: &str) {
    let Some(status) = res
        .headers()
        .get(CACHE_STATUS)
        .and_then(|v| v.to_str().ok())
    else {
        return;
    };
    let value = format!("{status}; key={}", key::sf_string(k));
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().insert(CACHE_STATUS, v);
    }
}

/// The answer to `PURGE` when the admin routes are served on a listener of their own.
fn purge_elsewhere() -> Response<Body> {
    let mut res = Response::new(Body::from(
        "405 Method Not Allowed: PURGE is served on the admin listener\n",
    ));
    *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The answer when the origin gave none and nothing stored could stand in: 504 for a timeout,
/// 502 for anything else.
fn error_response(e: &UpstreamError, cache_name: &str) -> Response<Body> {
    let (status, body, detail) = match e {
        UpstreamError::Timeout(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            "504 Gateway Timeout: the origin did not answer in time\n",
            "origin-timeout",
        ),
        UpstreamError::Connect(_) => (
            StatusCode::BAD_GATEWAY,
            "502 Bad Gateway: cannot connect to the origin\n",
            "origin-unreachable",
        ),
        UpstreamError::Tls(..) => (
            StatusCode::BAD_GATEWAY,
            "502 Bad Gateway: TLS with the origin failed\n",
            "origin-tls-error",
        ),
        UpstreamError::Other(_) => (
            StatusCode::BAD_GATEWAY,
            "502 Bad Gateway: the origin's connection failed\n",
            "origin-error",
        ),
    };
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        CACHE_STATUS,
        CacheStatus::forward(cache_name, Fwd::Miss)
            .detail(detail)
            .to_header_value(),
    );
    res
}

/// One access log line, written when the response body ends or is dropped (or, when the body is
/// still being stored then, once the store has it or has given up).
struct AccessLog(Option<Entry>);

struct Entry {
    span: tracing::Span,
    method: Method,
    path: String,
    status: StatusCode,
    cache_status: Option<HeaderValue>,
    start: Instant,
    bytes: u64,
    /// The response's `Content-Length` (not for `HEAD`).
    length: Option<u64>,
    complete: bool,
    /// Whether the body reached the store; absent when it was not being stored.
    outcome: Option<StoreOutcome>,
}

impl AccessLog {
    fn entry(&mut self) -> &mut Entry {
        self.0.as_mut().expect("the entry is taken only on drop")
    }
}

impl Entry {
    fn write(&self, stored: bool) {
        let _entered = self.span.enter();
        let cache_status = self
            .cache_status
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::info!(
            target: ACCESS_LOG_TARGET,
            method = %self.method,
            path = %self.path,
            status = self.status.as_u16(),
            cache_status,
            bytes = self.bytes,
            complete = self.complete,
            stored,
            duration_ms = self.start.elapsed().as_secs_f64() * 1e3,
            "request"
        );
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        let Some(entry) = self.0.take() else {
            return;
        };
        match entry.outcome.as_ref().map(StoreOutcome::get) {
            None => entry.write(false),
            Some(Some(stored)) => entry.write(stored),
            // The commit runs on a task of its own; the line waits for its outcome.
            Some(None) => match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        let stored = match &entry.outcome {
                            Some(o) => o.wait().await,
                            None => false,
                        };
                        entry.write(stored);
                    });
                }
                Err(_) => entry.write(false),
            },
        }
    }
}

/// A response body that writes the access log line when it ends or is dropped.
struct Logged {
    inner: Body,
    log: AccessLog,
}

impl Drop for Logged {
    fn drop(&mut self) {
        // hyper may never poll a body that is empty from the start (HEAD, 304).
        if http_body::Body::is_end_stream(&self.inner) {
            self.log.entry().complete = true;
        }
    }
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        let end = match &frame {
            Some(Ok(f)) => {
                let entry = this.log.entry();
                if let Some(d) = f.data_ref() {
                    entry.bytes += d.len() as u64;
                }
                entry.length == Some(entry.bytes) || this.inner.is_end_stream()
            }
            None => true,
            Some(Err(_)) => false,
        };
        if end {
            this.log.entry().complete = true;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
