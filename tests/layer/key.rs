//! The cache key (RFC 9111 §2: the target URI), a user key function, and TTL overrides.

use crate::support;

use std::time::Duration;

use cachio::CacheLayer;
use support::{Harness, memory, ok, reply};

fn numbered(s: &support::Seen) -> support::Reply {
    reply(200)
        .cc("max-age=100")
        .body(format!("{} #{}", s.path(), s.n))
}

#[tokio::test]
async fn rfc9111_2_key_includes_path_and_query() {
    let h = Harness::private(numbered).await;
    for path in ["/r", "/r?a=1", "/r?a=2", "/R", "/r/"] {
        let res = h.get(path).await;
        assert!(!res.is_hit(), "{path}");
    }
    assert_eq!(h.count(), 5);
    for path in ["/r", "/r?a=1", "/r?a=2", "/R", "/r/"] {
        let res = h.get(path).await;
        assert!(res.is_hit(), "{path}");
        assert!(
            res.text().starts_with(&format!("{path} #")),
            "{path}: {}",
            res.text()
        );
    }
    assert_eq!(h.count(), 5);
}

#[tokio::test]
async fn rfc9111_2_key_includes_authority() {
    // Two origins (two ports) behind caches sharing one store.
    let store = memory();
    let a = Harness::with(CacheLayer::private(store.clone()), |_| {
        ok("a").cc("max-age=100")
    })
    .await;
    let b = Harness::with(CacheLayer::private(store), |_| ok("b").cc("max-age=100")).await;
    assert_eq!(a.get("/r").await.text(), "a");
    let res = b.get("/r").await;
    assert!(!res.is_hit());
    assert_eq!(res.text(), "b");
    assert_eq!(a.get("/r").await.text(), "a");
    assert_eq!(b.get("/r").await.text(), "b");
    assert_eq!((a.count(), b.count()), (1, 1));
}

#[tokio::test]
async fn rfc9111_2_host_names_differ_even_for_one_server() {
    let h = Harness::private(numbered).await;
    let by_ip = h.get("/r").await;
    let localhost = format!("http://localhost:{}/r", h.origin.addr.port());
    let by_name = h.send(http::Request::get(localhost)).await;
    assert!(!by_name.is_hit());
    assert_ne!(by_ip.body, by_name.body);
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn key_fn_replaces_the_key() {
    let layer = CacheLayer::private(memory()).key_fn(|parts| parts.uri.path().to_owned());
    let h = Harness::with(layer, numbered).await;
    let first = h.get("/r?session=1").await;
    let second = h.get("/r?session=2").await;
    assert!(second.is_hit(), "{}", second.cache_status());
    assert_eq!(second.body, first.body);
    assert!(!h.get("/other?session=1").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn key_fn_is_used_for_invalidation() {
    let layer = CacheLayer::private(memory()).key_fn(|parts| parts.uri.path().to_owned());
    let h = Harness::with(layer, |s| {
        if s.method == "GET" {
            numbered(s)
        } else {
            reply(204)
        }
    })
    .await;
    h.get("/r?x=1").await;
    h.send(h.req("/r?x=2").method("POST")).await;
    assert!(!h.get("/r?x=1").await.is_hit());
}

#[tokio::test]
async fn ttl_override_gives_freshness() {
    let layer = CacheLayer::private(memory()).ttl_override(|req, res| {
        (req.uri.path().starts_with("/api") && res.status == 200).then_some(Duration::from_secs(60))
    });
    let h = Harness::with(layer, |_| ok("no freshness of its own")).await;
    h.get("/api/x").await;
    h.advance(59);
    let hit = h.get("/api/x").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(hit.cache_status(), "cachio; hit; ttl=1");
    h.advance(2);
    assert!(!h.get("/api/x").await.is_hit());
    // Not overridden: not stored.
    h.get("/other").await;
    assert!(!h.get("/other").await.is_hit());
    assert_eq!(h.count(), 4);
}

#[tokio::test]
async fn ttl_override_replaces_max_age() {
    let layer = CacheLayer::private(memory()).ttl_override(|_, _| Some(Duration::from_secs(10)));
    let h = Harness::with(layer, |_| ok("x").cc("max-age=1000")).await;
    h.get("/r").await;
    h.advance(11);
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn ttl_override_does_not_store_what_may_not_be_stored() {
    let layer = CacheLayer::private(memory()).ttl_override(|_, _| Some(Duration::from_secs(60)));
    let h = Harness::with(layer, |_| ok("x").cc("no-store")).await;
    h.get("/r").await;
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}
