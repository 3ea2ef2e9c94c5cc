//! RFC 9111 §3: which responses are stored.

use crate::support;

use cachio::{CacheLayer, Policy};
use support::{Harness, http_date, memory, ok, reply};

#[tokio::test]
async fn rfc9111_3_get_response_stored() {
    let h = Harness::private(|_| ok("hello").cc("max-age=60")).await;
    let first = h.get("/r").await;
    assert_eq!(first.text(), "hello");
    assert_eq!(
        first.cache_status(),
        "cachio; fwd=uri-miss; fwd-status=200; stored"
    );
    let second = h.get("/r").await;
    assert_eq!(second.text(), "hello");
    assert!(second.is_hit(), "{}", second.cache_status());
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn rfc9111_3_post_response_not_stored() {
    let h = Harness::private(|s| {
        ok("posted")
            .cc("max-age=60")
            .header("x-n", &s.n.to_string())
    })
    .await;
    for n in 1..=2 {
        let res = h.send(h.req("/r").method("POST")).await;
        assert_eq!(res.header("x-n"), Some(n.to_string().as_str()));
        assert!(!res.is_hit());
    }
    // Nor does a POST response answer a later GET.
    let get = h.get("/r").await;
    assert!(!get.is_hit());
    assert_eq!(h.count(), 3);
}

#[tokio::test]
async fn rfc9111_3_head_answered_from_stored_get() {
    let h = Harness::private(|_| ok("twelve bytes").cc("max-age=60")).await;
    h.get("/r").await;
    let head = h.send(h.req("/r").method("HEAD")).await;
    assert_eq!(head.status, 200);
    assert!(head.is_hit(), "{}", head.cache_status());
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("12"));
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn rfc9111_3_head_response_not_stored_as_get() {
    let h = Harness::private(|s| {
        let r = ok("body").cc("max-age=60");
        if s.method == "HEAD" {
            r.header("x-was", "head")
        } else {
            r
        }
    })
    .await;
    let head = h.send(h.req("/r").method("HEAD")).await;
    assert!(!head.is_hit());
    let get = h.get("/r").await;
    assert_eq!(get.text(), "body");
    assert_eq!(get.header("x-was"), None);
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_4_2_2_default_cacheable_statuses_stored_with_heuristic_freshness() {
    const CODES: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];
    let h = Harness::private(|s| {
        let code: u16 = s.path()[1..].parse().unwrap();
        let r = reply(code).header("last-modified", &http_date(-10 * 24 * 3600));
        if code == 204 {
            r
        } else {
            r.body(format!("status {code}"))
        }
    })
    .await;
    for code in CODES {
        let miss = h.get(&format!("/{code}")).await;
        assert_eq!(miss.status, code);
        assert!(
            miss.cache_status().ends_with("; stored"),
            "{code}: {}",
            miss.cache_status()
        );
        // One day of heuristic freshness (10% of ten days); an hour later it is still fresh.
        h.advance(3600);
        let hit = h.get(&format!("/{code}")).await;
        assert_eq!(hit.status, code);
        assert!(hit.is_hit(), "{code}: {}", hit.cache_status());
        assert_eq!(hit.body, miss.body, "{code}");
    }
    assert_eq!(h.count(), CODES.len());
}

#[tokio::test]
async fn rfc9111_3_other_statuses_stored_only_with_explicit_freshness() {
    let h = Harness::private(|s| {
        let lm = http_date(-10 * 24 * 3600);
        match s.path() {
            "/302" => reply(302)
                .header("location", "/x")
                .header("last-modified", &lm),
            "/500" => reply(500).header("last-modified", &lm).body("oops"),
            "/302-explicit" => reply(302).header("location", "/x").cc("max-age=60"),
            "/500-explicit" => reply(500).cc("max-age=60").body("oops"),
            _ => reply(400),
        }
    })
    .await;
    for path in ["/302", "/500"] {
        h.get(path).await;
        let again = h.get(path).await;
        assert!(!again.is_hit(), "{path}: {}", again.cache_status());
    }
    assert_eq!(h.count(), 4);
    for path in ["/302-explicit", "/500-explicit"] {
        h.get(path).await;
        let again = h.get(path).await;
        assert!(again.is_hit(), "{path}: {}", again.cache_status());
    }
    assert_eq!(h.count(), 6);
}

#[tokio::test]
async fn rfc9111_3_partial_content_never_stored() {
    let h = Harness::private(|_| {
        reply(206)
            .cc("max-age=60")
            .header("content-range", "bytes 0-4/10")
            .body("01234")
    })
    .await;
    for _ in 0..2 {
        let res = h.send(h.req("/r").header("range", "bytes=0-4")).await;
        assert_eq!(res.status, 206);
        assert!(!res.is_hit());
        assert!(!res.cache_status().contains("stored"));
    }
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_5_2_2_5_response_no_store_not_stored() {
    let h = Harness::private(|_| ok("secret").cc("no-store, max-age=60")).await;
    h.get("/r").await;
    let again = h.get("/r").await;
    assert!(!again.is_hit());
    assert!(!again.cache_status().contains("stored"));
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_3_private_not_stored_in_shared_cache() {
    let h = Harness::shared(|_| ok("mine").cc("private, max-age=60")).await;
    h.get("/r").await;
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_5_2_2_7_private_stored_in_private_cache() {
    let h = Harness::private(|_| ok("mine").cc("private, max-age=60")).await;
    h.get("/r").await;
    let hit = h.get("/r").await;
    assert!(hit.is_hit());
    assert_eq!(hit.text(), "mine");
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn rfc9111_3_5_authorization_in_shared_cache_needs_explicit_permission() {
    let h = Harness::shared(|s| match s.path() {
        "/plain" => ok("x").cc("max-age=60"),
        "/public" => ok("x").cc("public, max-age=60"),
        "/s-maxage" => ok("x").cc("s-maxage=60"),
        "/must-revalidate" => ok("x").cc("max-age=60, must-revalidate"),
        _ => reply(404),
    })
    .await;
    let auth = |path: &str| h.req(path).header("authorization", "Bearer abc");
    h.send(auth("/plain")).await;
    assert!(
        !h.send(auth("/plain")).await.is_hit(),
        "Authorization without permission"
    );
    assert_eq!(h.count(), 2);
    for path in ["/public", "/s-maxage", "/must-revalidate"] {
        h.send(auth(path)).await;
        let again = h.send(auth(path)).await;
        assert!(again.is_hit(), "{path}: {}", again.cache_status());
    }
    assert_eq!(h.count(), 5);
}

#[tokio::test]
async fn rfc9111_3_5_authorization_stored_in_private_cache() {
    let h = Harness::private(|_| ok("x").cc("max-age=60")).await;
    let auth = || h.req("/r").header("authorization", "Bearer abc");
    h.send(auth()).await;
    assert!(h.send(auth()).await.is_hit());
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn shared_cache_does_not_store_set_cookie_by_default() {
    let h = Harness::shared(|_| ok("x").cc("max-age=60").header("set-cookie", "id=1")).await;
    h.get("/r").await;
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn shared_cache_stores_set_cookie_when_allowed() {
    let layer = CacheLayer::shared(memory()).policy(Policy::shared().store_set_cookie(true));
    let h = Harness::with(layer, |_| {
        ok("x").cc("max-age=60").header("set-cookie", "id=1")
    })
    .await;
    h.get("/r").await;
    let hit = h.get("/r").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(hit.header("set-cookie"), Some("id=1"));
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn rfc9111_5_2_2_3_must_understand_stores_understood_status_despite_no_store() {
    let h = Harness::private(|s| match s.path() {
        "/understood" => ok("x").cc("must-understand, no-store, max-age=60"),
        // 299 is no status this cache implements.
        _ => reply(299)
            .cc("must-understand, no-store, max-age=60")
            .body("x"),
    })
    .await;
    h.get("/understood").await;
    assert!(h.get("/understood").await.is_hit());
    assert_eq!(h.count(), 1);
    h.get("/unknown").await;
    assert!(!h.get("/unknown").await.is_hit());
    assert_eq!(h.count(), 3);
}

#[tokio::test]
async fn rfc9111_3_unknown_status_with_explicit_freshness_stored_without_must_understand() {
    let h = Harness::private(|_| reply(299).cc("max-age=60").body("x")).await;
    h.get("/r").await;
    assert!(h.get("/r").await.is_hit());
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn rfc9111_3_3_incomplete_response_not_stored() {
    let h = Harness::private(|s| {
        if s.n == 1 {
            ok("").cc("max-age=60").fail_after("the first half")
        } else {
            ok("whole").cc("max-age=60")
        }
    })
    .await;
    let res = h.call(h.req("/r")).await.expect("the head arrives");
    let err = http_body_util::BodyExt::collect(res.into_body()).await;
    assert!(err.is_err(), "the body must fail");
    support::settle().await;
    let next = h.get("/r").await;
    assert!(!next.is_hit(), "{}", next.cache_status());
    assert_eq!(next.text(), "whole");
    assert_eq!(h.count(), 2);
    assert!(h.get("/r").await.is_hit());
}

#[tokio::test]
async fn rfc9111_3_3_content_length_mismatch_not_stored() {
    let h = Harness::private(|s| {
        if s.n == 1 {
            // Declares 100 bytes and sends 10: hyper cuts the connection.
            ok("ten bytes!")
                .cc("max-age=60")
                .header("content-length", "100")
        } else {
            ok("whole").cc("max-age=60")
        }
    })
    .await;
    if let Ok(res) = h.call(h.req("/r")).await {
        let body = http_body_util::BodyExt::collect(res.into_body()).await;
        assert!(body.is_err(), "a short body must fail");
    }
    support::settle().await;
    let next = h.get("/r").await;
    assert!(!next.is_hit(), "{}", next.cache_status());
    assert_eq!(next.text(), "whole");
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_3_1_multi_valued_fields_intact_on_hit() {
    let h = Harness::private(|_| {
        ok("x")
            .cc("max-age=60")
            .header("set-cookie", "a=1; Path=/")
            .header("set-cookie", "b=2, c=3")
            .header("link", "</style.css>; rel=preload")
            .header("link", "</app.js>; rel=preload")
    })
    .await;
    let miss = h.get("/r").await;
    let hit = h.get("/r").await;
    assert!(hit.is_hit());
    assert_eq!(hit.all("set-cookie"), ["a=1; Path=/", "b=2, c=3"]);
    assert_eq!(
        hit.all("link"),
        ["</style.css>; rel=preload", "</app.js>; rel=preload"]
    );
    assert_eq!(hit.all("set-cookie"), miss.all("set-cookie"));
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn rfc9111_3_1_hop_by_hop_fields_not_stored() {
    let h = Harness::private(|_| {
        ok("x")
            .cc("max-age=60")
            .header("connection", "x-hop")
            .header("x-hop", "1")
            .header("x-end", "2")
    })
    .await;
    h.get("/r").await;
    let hit = h.get("/r").await;
    assert!(hit.is_hit());
    assert_eq!(hit.header("x-hop"), None);
    assert_eq!(hit.header("x-end"), Some("2"));
}

/// A stored entry is a head and a body: a response that ends with trailer fields would be served
/// from the cache without them, so it is passed on whole (its trailers reach the client) and not
/// stored (RFC 9110 §6.5: trailer fields are part of the message).
#[tokio::test]
async fn rfc9110_6_5_a_response_with_trailer_fields_is_passed_on_and_not_stored() {
    let h = Harness::private(|_| {
        reply(200)
            .cc("max-age=100")
            .trailer("body", "x-checksum", "abc")
    })
    .await;
    let first = h.send(h.req("/r").header("te", "trailers")).await;
    assert_eq!(first.text(), "body");
    let trailers = first
        .trailers
        .as_ref()
        .expect("the trailers reached the client");
    assert_eq!(trailers["x-checksum"], "abc");
    let second = h.send(h.req("/r").header("te", "trailers")).await;
    assert!(!second.is_hit(), "{}", second.cache_status());
    assert_eq!(
        second.trailers.as_ref().map(|t| &t["x-checksum"]),
        Some(&"abc".parse().unwrap())
    );
    assert_eq!(h.count(), 2);
}
