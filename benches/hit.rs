//! A memory hit: the same response served by the bare inner service, by cachio from a
//! `MemoryStore`, and by http-cache-tower from its moka manager, for bodies of 1 KiB, 100 KiB and
//! 1 MiB (`Cache-Control: max-age=3600`, ten other realistic header fields).
//!
//! One iteration sends a GET and reads the whole body. Run with
//! `cargo bench --bench hit -- --warm-up-time 1 --measurement-time 3`.

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::ready;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cachio::{CACHE_STATUS, CacheLayer, MemoryStore};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body::Body;
use http_body_util::{BodyExt, Empty, Full};
use http_cache::{MokaCache, MokaManager};
use http_cache_tower::HttpCacheLayer;
use tower::{Layer, Service, ServiceExt, service_fn};

/// A prebuilt response, answered from memory, and the number of times it was asked for.
struct Prebuilt {
    body: Bytes,
    headers: HeaderMap,
    calls: AtomicUsize,
}

impl Prebuilt {
    fn new(size: usize) -> Arc<Self> {
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
fn origin(
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
async fn fetch<S, B>(svc: &S, uri: &'static str) -> Response<Bytes>
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

fn hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (label, size) in [("1KiB", 1 << 10), ("100KiB", 100 << 10), ("1MiB", 1 << 20)] {
        let uri = "http://origin.example/api/items?page=1";

        let bare = origin(Prebuilt::new(size));
        let cachio_origin = Prebuilt::new(size);
        let cachio =
            CacheLayer::private(MemoryStore::new(64 << 20)).layer(origin(cachio_origin.clone()));
        let hct_origin = Prebuilt::new(size);
        let hct = HttpCacheLayer::new(MokaManager::new(MokaCache::new(1_000)))
            .layer(origin(hct_origin.clone()));
        // Store the response in both caches and check, outside the timing, that the next request
        // is a hit in each.
        rt.block_on(async {
            fetch(&cachio, uri).await;
            let res = fetch(&cachio, uri).await;
            let status = res.headers()[CACHE_STATUS].to_str().unwrap();
            assert!(
                status.split(';').any(|p| p.trim() == "hit"),
                "cachio: the warm request is not a hit: {status}"
            );
            assert_eq!(res.body().len(), size);

            fetch(&hct, uri).await;
            let res = fetch(&hct, uri).await;
            assert_eq!(res.body().len(), size);
            assert_eq!(
                hct_origin.calls.load(Ordering::Relaxed),
                1,
                "http-cache-tower: the warm request reached the origin"
            );
        });

        let mut group = c.benchmark_group(format!("hit/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function("bare", |b| b.to_async(&rt).iter(|| fetch(&bare, uri)));
        group.bench_function("cachio", |b| b.to_async(&rt).iter(|| fetch(&cachio, uri)));
        group.bench_function("http-cache-tower", |b| {
            b.to_async(&rt).iter(|| fetch(&hct, uri))
        });
        group.finish();

        // Every measured cache request was a hit: the origins saw only the warming miss.
        assert_eq!(
            cachio_origin.calls.load(Ordering::Relaxed),
            1,
            "cachio forwarded a request"
        );
        assert_eq!(
            hct_origin.calls.load(Ordering::Relaxed),
            1,
            "http-cache-tower forwarded a request"
        );
    }
}

criterion_group!(benches, hit);
criterion_main!(benches);
