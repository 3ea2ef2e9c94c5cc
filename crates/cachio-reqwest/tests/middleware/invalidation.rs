//! RFC 9111 §4.4: invalidation by unsafe methods, and by hand.

use crate::support::{Harness, ok, reply};

#[tokio::test]
async fn rfc9111_4_4_post_put_and_delete_invalidate_the_target_uri() {
    let h = Harness::private(|s| match s.method.as_str() {
        "GET" => ok("resource").cc("max-age=600"),
        _ => reply(204),
    })
    .await;
    for (i, method) in ["POST", "PUT", "DELETE"].into_iter().enumerate() {
        let path = format!("/items/{i}");
        let before = h.count();
        assert!(!h.get(&path).await.is_hit());
        assert!(h.get(&path).await.is_hit(), "{method}");
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let res = h.send(h.client.request(method.clone(), h.url(&path))).await;
        assert_eq!(res.status, 204);
        assert!(
            res.cache_status().contains("fwd=method"),
            "{}",
            res.cache_status()
        );
        assert_eq!(h.origin.last().method, method);
        let after = h.get(&path).await;
        assert!(!after.is_hit(), "{method}: {}", after.cache_status());
        // The GET that stored it, the unsafe request, and the GET after it.
        assert_eq!(h.count(), before + 3, "{method}");
    }
}

#[tokio::test]
async fn rfc9111_4_4_an_error_response_to_an_unsafe_method_invalidates_nothing() {
    let h = Harness::private(|s| match s.method.as_str() {
        "GET" => ok("resource").cc("max-age=600"),
        _ => reply(500),
    })
    .await;
    h.get("/items/1").await;
    let res = h.send(h.client.delete(h.url("/items/1"))).await;
    assert_eq!(res.status, 500);
    assert!(h.get("/items/1").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_4_4_invalidate_by_hand_removes_the_stored_response() {
    let h = Harness::private(|_| ok("resource").cc("max-age=600")).await;
    h.get("/items/2").await;
    assert!(h.get("/items/2").await.is_hit());
    let req = h.client.get(h.url("/items/2")).build().unwrap();
    h.cache.invalidate(&req).await.unwrap();
    assert!(!h.get("/items/2").await.is_hit());
    assert_eq!(h.count(), 2);
}
