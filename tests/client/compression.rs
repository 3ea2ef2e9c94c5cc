//! Decompression sits outside the cache: the store keeps the bytes the origin sent, compressed,
//! with their `Content-Encoding`, `Vary` and validators; the caller reads them decompressed.

use bytes::Bytes;
use http_body_util::BodyExt;
use tower::{Layer, ServiceExt};

use crate::origin::{self, Listen, handler, reply};
use crate::{client, memory, status};

const TEXT: &str = "All happy families are alike; each unhappy family is unhappy in its own way. \
                    All happy families are alike; each unhappy family is unhappy in its own way.";

async fn stored_compressed_served_decompressed(encoding: &str) {
    let origin = origin::start(
        Listen::http(),
        Some(encoding),
        handler(|req| {
            if req
                .headers()
                .get("if-none-match")
                .is_some_and(|v| v == "\"v1\"")
            {
                return reply(
                    304,
                    &[("etag", "\"v1\""), ("cache-control", "max-age=0")],
                    "",
                );
            }
            reply(
                200,
                &[
                    ("content-type", "text/plain"),
                    ("etag", "\"v1\""),
                    ("cache-control", "max-age=0"),
                ],
                TEXT,
            )
        }),
    )
    .await;
    let store = memory();
    let client = client(&store);
    let url = origin.http("/novel");

    let res = client.get(&url).await.unwrap();
    assert!(
        res.headers().get("content-encoding").is_none(),
        "decompressed for the caller"
    );
    assert_eq!(res.into_body().text().await.unwrap(), TEXT);
    let first = &origin.seen()[0];
    let accepted = first.headers["accept-encoding"].to_str().unwrap();
    assert!(accepted.contains(encoding), "{accepted}");

    // What the store holds, read through a bare layer over the same store, with the request
    // the client sent (the variant is chosen by its Accept-Encoding): the compressed bytes.
    let raw = cachio::CacheLayer::private(store.clone()).layer(tower::service_fn(
        |_: http::Request<String>| async {
            Err::<http::Response<String>, _>("the network is not to be used")
        },
    ));
    let mut req = http::Request::get(&url)
        .header("accept-encoding", accepted)
        .body(String::new())
        .unwrap();
    req.extensions_mut().insert(cachio::CacheMode::OnlyIfCached);
    let stored = raw.oneshot(req).await.unwrap();
    assert_eq!(stored.status(), 200, "stored");
    assert_eq!(stored.headers()["content-encoding"], encoding);
    assert_eq!(stored.headers()["etag"], "\"v1\"");
    let bytes = stored.into_body().collect().await.unwrap().to_bytes();
    assert!(bytes.len() < TEXT.len(), "{} compressed bytes", bytes.len());
    assert_ne!(bytes, Bytes::from_static(TEXT.as_bytes()));

    // Stale at once (max-age=0): validated with the stored ETag, a 304, merged and served.
    let res = client.get(&url).await.unwrap();
    assert!(status(&res).contains("fwd=stale"), "{}", status(&res));
    assert_eq!(res.headers().get("content-encoding"), None);
    assert_eq!(res.into_body().text().await.unwrap(), TEXT);
    let second = &origin.seen()[1];
    assert_eq!(second.headers["if-none-match"], "\"v1\"");
}

#[tokio::test]
async fn rfc9111_4_3_gzip_is_stored_as_received_and_validated_with_its_etag() {
    stored_compressed_served_decompressed("gzip").await;
}

#[tokio::test]
async fn rfc9111_4_3_brotli_is_stored_as_received_and_validated_with_its_etag() {
    stored_compressed_served_decompressed("br").await;
}
