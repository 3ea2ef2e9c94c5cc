//! What several benches share: a prebuilt response answered from memory, a GET read to the end,
//! and the process's memory figures.

#![allow(dead_code, reason = "each bench uses part of these helpers")]

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::ready;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body::Body;
use http_body_util::{BodyExt, Empty, Full};
use tower::{Service, ServiceExt, service_fn};

/// A prebuilt response, answered from memory, and the number of times it was asked for.
pub struct Prebuilt {
    pub body: Bytes,
    pub headers: HeaderMap,
    pub calls: AtomicUsize,
}

impl Prebuilt {
    pub fn new(size: usize) -> Arc<Self> {
        let now = SystemTime::now();
        let date = |t: SystemTime| HeaderValue::try_from(httpdate::fmt_http_date(t)).unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(size)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=3600"),
            ),
            (header::DATE, date(now)),
            (
                header::LAST_MODIFIED,
                date(now - Duration::from_secs(86_400)),
            ),
            (
                header::ETAG,
                HeaderValue::from_static("\"5f3c-1a2b3c4d5e6f\""),
            ),
            (header::SERVER, HeaderValue::from_static("nginx/1.27.0")),
            (
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000; includeSubDomains"),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ] {
            headers.insert(name, value);
        }
        headers.insert(
            "x-request-id",
            HeaderValue::from_static("7f9c2ba4-e88f-11ee-a7d5-0242ac120002"),
        );
        Arc::new(Self {
            body: Bytes::from(vec![b'x'; size]),
            headers,
            calls: AtomicUsize::new(0),
        })
    }
}

/// The bare inner service: a `service_fn` that clones the prebuilt body and header fields into a
/// response.
pub fn origin(
    prebuilt: Arc<Prebuilt>,
) -> impl Service<
    Request<Empty<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    service_fn(move |_req: Request<Empty<Bytes>>| {
        prebuilt.calls.fetch_add(1, Ordering::Relaxed);
        let mut res = Response::new(Full::new(prebuilt.body.clone()));
        *res.headers_mut() = prebuilt.headers.clone();
        ready(Ok::<_, Infallible>(res))
    })
}

/// Sends a GET for `uri` and reads the whole body.
pub async fn fetch<S, B>(svc: &S, uri: &'static str) -> Response<Bytes>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>> + Clone,
    S::Error: Debug,
    B: Body,
    B::Error: Debug,
{
    let req = Request::get(uri).body(Empty::new()).unwrap();
    let (head, body) = svc.clone().oneshot(req).await.unwrap().into_parts();
    Response::from_parts(head, body.collect().await.unwrap().to_bytes())
}

/// A field of `/proc/self/status` (`VmRSS`, `VmHWM`), in bytes.
pub fn proc_status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}
