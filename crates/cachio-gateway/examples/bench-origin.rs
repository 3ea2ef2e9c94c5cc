//! The origin `scripts/bench-gateway` and `scripts/soak-gateway` put the caches in front of:
//! answers every `GET` with `Cache-Control: max-age=3600` and a body of 1 KiB, or of `N` bytes
//! (up to 16 MiB) when the query is `size=N`.
//!
//! `cargo run --release -p cachio-gateway --example bench-origin -- 127.0.0.1:9000`

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("bench-origin listening on {}", listener.local_addr()?);
    let body = Bytes::from(vec![b'x'; MAX_SIZE]);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let body = body.slice(..size(req.uri()));
                async move {
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header("cache-control", "max-age=3600")
                            .header("content-type", "application/octet-stream")
                            .body(Full::new(body))
                            .expect("a valid response"),
                    )
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The largest body served.
const MAX_SIZE: usize = 16 << 20;

/// The body size a request asks for with `size=N` in its query (1 KiB without).
fn size(uri: &http::Uri) -> usize {
    uri.query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|p| p.strip_prefix("size=")?.parse::<usize>().ok())
        .unwrap_or(1024)
        .min(MAX_SIZE)
}
