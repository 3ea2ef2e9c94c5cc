//! RFC 9110 §14: range requests answered from a stored complete response, in memory and on disk.

use crate::support;

use bytes::Bytes;
use cachio::CacheLayer;
use support::{Harness, ok};

const BODY: &str = "0123456789";

async fn stored() -> Harness<cachio::MemoryStore> {
    let h = Harness::private(|_| ok(BODY).cc("max-age=60").header("etag", "\"v1\"")).await;
    assert_eq!(h.get("/r").await.text(), BODY);
    h
}

#[tokio::test]
async fn rfc9110_14_2_a_range_of_a_stored_response_is_a_206_from_the_cache() {
    let h = stored().await;
    for (range, part, content_range) in [
        ("bytes=2-5", "2345", "bytes 2-5/10"),
        ("bytes=7-", "789", "bytes 7-9/10"),
        ("bytes=-3", "789", "bytes 7-9/10"),
        ("bytes=0-0", "0", "bytes 0-0/10"),
        ("bytes=8-100", "89", "bytes 8-9/10"),
    ] {
        let res = h.send(h.req("/r").header("range", range)).await;
        assert_eq!(res.status, 206, "{range}");
        assert!(res.is_hit(), "{range}: {}", res.cache_status());
        assert_eq!(res.text(), part, "{range}");
        assert_eq!(res.header("content-range"), Some(content_range));
        let len = part.len().to_string();
        assert_eq!(res.header("content-length"), Some(len.as_str()));
        assert_eq!(res.header("etag"), Some("\"v1\""));
    }
    assert_eq!(h.count(), 1, "every range came from the cache");
}

#[tokio::test]
async fn rfc9110_15_5_17_a_range_past_the_end_is_a_416_with_the_length() {
    let h = stored().await;
    let res = h.send(h.req("/r").header("range", "bytes=10-")).await;
    assert_eq!(res.status, 416);
    assert!(res.is_hit(), "{}", res.cache_status());
    assert!(res.age().is_some());
    assert_eq!(res.header("content-range"), Some("bytes */10"));
    assert_eq!(res.text(), "");
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn rfc9110_14_2_ranges_the_cache_does_not_serve_get_the_whole_response() {
    let h = stored().await;
    for headers in [
        vec![("range", "bytes=0-1,4-5")],
        vec![("range", "bytes=5-2")],
        vec![("range", "lines=1-2")],
        // §13.1.5: an If-Range that does not match asks for the whole representation.
        vec![("range", "bytes=0-1"), ("if-range", "\"v0\"")],
    ] {
        let mut req = h.req("/r");
        for (n, v) in &headers {
            req = req.header(*n, *v);
        }
        let res = h.send(req).await;
        assert_eq!(res.status, 200, "{headers:?}");
        assert_eq!(res.text(), BODY);
        assert_eq!(res.header("content-range"), None);
    }
    // A matching If-Range gets the part.
    let res = h
        .send(
            h.req("/r")
                .header("range", "bytes=0-1")
                .header("if-range", "\"v1\""),
        )
        .await;
    assert_eq!(res.status, 206);
    assert_eq!(res.text(), "01");
    // HEAD has no range handling.
    let head = h
        .send(h.req("/r").method("HEAD").header("range", "bytes=0-1"))
        .await;
    assert_eq!(head.status, 200);
    assert_eq!(h.count(), 1);
}

#[cfg(feature = "disk")]
#[tokio::test]
async fn rfc9110_14_2_a_range_across_the_chunks_of_a_body_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let disk = cachio::DiskStore::open(dir.path()).unwrap();
    // 64 chunks of 1 KiB, each filled with its own index.
    let h = Harness::with(CacheLayer::private(disk), |_| {
        ok("").cc("max-age=60").stream(|feed| async move {
            for i in 0..64u8 {
                if !feed.send(Bytes::from(vec![i; 1024])).await {
                    return;
                }
            }
        })
    })
    .await;
    assert_eq!(h.get("/big").await.body.len(), 64 << 10);
    support::settle().await;
    let res = h
        .send(h.req("/big").header("range", "bytes=1000-5119"))
        .await;
    assert_eq!(res.status, 206, "{}", res.cache_status());
    assert!(res.is_hit());
    assert_eq!(res.header("content-range"), Some("bytes 1000-5119/65536"));
    let want: Vec<u8> = (1000..5120u32).map(|b| (b / 1024) as u8).collect();
    assert_eq!(&res.body[..], &want[..]);
    assert_eq!(h.count(), 1);
}
