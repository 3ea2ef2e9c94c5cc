//! Request bodies pass through; failures are errors, not panics.

use bytes::Bytes;

use crate::support::{Harness, MIB, ok, pattern, reply};

#[tokio::test]
async fn rfc9110_9_3_3_a_post_body_reaches_the_origin_intact() {
    let h = Harness::private(|s| match s.method.as_str() {
        "POST" => reply(201),
        _ => ok("x").cc("max-age=60"),
    })
    .await;
    let data = pattern(3 * MIB + 17);
    let res = h
        .send(h.client.post(h.url("/upload")).body(data.clone()))
        .await;
    assert_eq!(res.status, 201);
    let seen = h.origin.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body.len(), data.len());
    assert!(seen.body == data, "the body arrived changed");

    // A streamed body (no length known in advance) passes too, chunk by chunk.
    let chunks = data.chunks(100_000).map(Bytes::copy_from_slice).collect();
    let body = reqwest::Body::wrap(Chunks(chunks));
    assert!(body.as_bytes().is_none(), "a streamed body");
    let res = h.send(h.client.post(h.url("/upload")).body(body)).await;
    assert_eq!(res.status, 201);
    assert!(
        h.origin.last().body == data,
        "the streamed body arrived changed"
    );
    assert_eq!(h.count(), 2);
}

/// A body of chunks whose total length it does not tell.
struct Chunks(std::collections::VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|c| Ok(http_body::Frame::data(c))))
    }
}

#[tokio::test]
async fn an_unreachable_origin_is_an_error() {
    let h = Harness::private(|_| ok("x")).await;
    let url = h.url("/r");
    h.origin.stop();
    drop(h.origin);
    let err = h.client.get(url).send().await.expect_err("nothing listens");
    assert!(err.is_connect() || err.is_request(), "{err:?}");
}
