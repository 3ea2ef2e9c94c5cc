//! RFC 9111 §4.2: freshness lifetime and age.

use crate::support;

use std::time::Duration;

use cachio::{CacheLayer, Policy};
use support::{Harness, http_date, memory, ok};

#[tokio::test]
async fn rfc9111_4_2_1_max_age() {
    let h = Harness::private(|_| ok("x").cc("max-age=100")).await;
    h.get("/r").await;
    h.advance(99);
    let fresh = h.get("/r").await;
    assert!(fresh.is_hit(), "{}", fresh.cache_status());
    assert_eq!(h.count(), 1);
    h.advance(2);
    let stale = h.get("/r").await;
    assert!(!stale.is_hit(), "{}", stale.cache_status());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_5_2_2_10_s_maxage_in_shared_cache() {
    let h = Harness::shared(|_| ok("x").cc("max-age=10, s-maxage=100")).await;
    h.get("/r").await;
    h.advance(50);
    assert!(h.get("/r").await.is_hit());
    h.advance(51);
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_5_2_2_10_s_maxage_ignored_by_private_cache() {
    let h = Harness::private(|_| ok("x").cc("max-age=10, s-maxage=100")).await;
    h.get("/r").await;
    h.advance(5);
    assert!(h.get("/r").await.is_hit());
    h.advance(45);
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_5_2_2_10_s_maxage_alone_does_not_make_private_cache_store() {
    // Only a shared cache treats s-maxage as explicit freshness; a 302 has no heuristic.
    let h = Harness::private(|_| {
        support::reply(302)
            .header("location", "/x")
            .cc("s-maxage=100")
    })
    .await;
    h.get("/r").await;
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_4_2_1_expires_minus_date() {
    // The origin's clock says the response is 20 s old already: fresh for 100 − 20 more.
    let h = Harness::private(|_| {
        ok("x")
            .header("date", &http_date(-20))
            .header("expires", &http_date(80))
    })
    .await;
    let miss = h.get("/r").await;
    assert!(
        miss.cache_status().ends_with("stored"),
        "{}",
        miss.cache_status()
    );
    h.advance(79);
    let hit = h.get("/r").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(hit.age(), Some(99));
    h.advance(2);
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_5_2_2_1_max_age_overrides_expires() {
    let h =
        Harness::private(|_| ok("x").cc("max-age=10").header("expires", &http_date(1000))).await;
    h.get("/r").await;
    h.advance(11);
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_5_3_invalid_expires_is_stale() {
    let h = Harness::private(|s| {
        let r = ok("x").header("expires", "0");
        if s.path() == "/lm" {
            // An invalid Expires is explicit (stale) freshness: no heuristic either.
            r.header("last-modified", &http_date(-10 * 24 * 3600))
        } else {
            r
        }
    })
    .await;
    for path in ["/r", "/lm"] {
        h.get(path).await;
        let again = h.get(path).await;
        assert!(!again.is_hit(), "{path}: {}", again.cache_status());
    }
    assert_eq!(h.count(), 4);
}

#[tokio::test]
async fn rfc9111_4_2_2_heuristic_freshness_is_a_tenth_of_date_minus_last_modified() {
    let h = Harness::private(|_| ok("x").header("last-modified", &http_date(-1000))).await;
    h.get("/r").await;
    h.advance(99);
    let hit = h.get("/r").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(hit.cache_status(), "cachio; hit; ttl=1");
    h.advance(2);
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_4_2_2_heuristic_freshness_is_capped() {
    let layer = CacheLayer::private(memory()).heuristic_max(Duration::from_secs(60));
    let h = Harness::with(layer, |_| {
        ok("x").header("last-modified", &http_date(-100 * 24 * 3600))
    })
    .await;
    h.get("/r").await;
    h.advance(59);
    let hit = h.get("/r").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(hit.cache_status(), "cachio; hit; ttl=1");
    h.advance(2);
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_4_2_2_no_heuristic_without_last_modified() {
    // A private cache keeps it for the offline modes and `max-stale`, but it is never fresh.
    let h = Harness::private(|_| ok("x")).await;
    h.get("/r").await;
    let again = h.get("/r").await;
    assert!(!again.is_hit(), "{}", again.cache_status());
    assert_eq!(h.count(), 2);

    // Without a stale retention it is not even stored.
    let layer =
        CacheLayer::private(memory()).policy(Policy::private().stale_retention(Duration::ZERO));
    let h = Harness::with(layer, |_| ok("x")).await;
    let miss = h.get("/r").await;
    assert!(
        !miss.cache_status().contains("stored"),
        "{}",
        miss.cache_status()
    );
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}

/// Web cache deception: `/account/profile.css` answered with the account page, with only a
/// `Last-Modified`. A shared cache gives no heuristic freshness to a response to a request with
/// credentials, so the next client never gets it; an explicit lifetime is still honoured.
#[tokio::test]
async fn rfc9111_4_2_2_shared_cache_uses_no_heuristic_for_a_request_with_cookie_or_authorization() {
    let h = Harness::shared(|s| {
        let whom = s.header("cookie").or(s.header("authorization"));
        let body = whom.map_or_else(|| "anonymous".to_owned(), |w| format!("account of {w}"));
        let r = ok("")
            .body(body)
            .header("last-modified", &http_date(-100_000));
        if s.path() == "/explicit.css" {
            r.cc("max-age=60")
        } else {
            r
        }
    })
    .await;
    for (i, (name, value)) in [
        ("cookie", "session=alice"),
        ("authorization", "Bearer alice"),
    ]
    .into_iter()
    .enumerate()
    {
        let path = format!("/account/profile{i}.css");
        let own = h.send(h.req(&path).header(name, value)).await;
        assert_eq!(own.text(), format!("account of {value}"));
        assert!(
            !own.cache_status().contains("stored"),
            "{name}: {}",
            own.cache_status()
        );
        let other = h.get(&path).await;
        assert_eq!(other.text(), "anonymous", "{name}");
        assert!(!other.is_hit(), "{name}: {}", other.cache_status());
    }
    assert_eq!(h.count(), 4);
    // Without credentials the heuristic applies as before.
    h.get("/public.css").await;
    assert!(h.get("/public.css").await.is_hit());
    // With an explicit lifetime a response to a request with a cookie is stored.
    h.send(h.req("/explicit.css").header("cookie", "session=alice"))
        .await;
    assert!(h.get("/explicit.css").await.is_hit());
    assert_eq!(h.count(), 6);
}

#[tokio::test]
async fn rfc9111_4_2_2_heuristic_percent_zero_turns_heuristics_off() {
    let layer = CacheLayer::shared(memory()).policy(Policy::shared().heuristic_percent(0));
    let h = Harness::with(layer, |_| {
        ok("x").header("last-modified", &http_date(-100_000))
    })
    .await;
    h.get("/r").await;
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc8246_immutable_not_revalidated_on_reload() {
    let h = Harness::private(|s| {
        if s.path() == "/immutable" {
            ok("x").cc("max-age=100, immutable")
        } else {
            ok("x").cc("max-age=100")
        }
    })
    .await;
    let reload = |p: &str| h.req(p).header("cache-control", "max-age=0");
    h.get("/immutable").await;
    h.advance(10);
    let hit = h.send(reload("/immutable")).await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(h.count(), 1);
    h.get("/mutable").await;
    h.advance(10);
    assert!(!h.send(reload("/mutable")).await.is_hit());
    assert_eq!(h.count(), 3);
}

#[tokio::test]
async fn rfc9111_4_2_3_age_is_resident_time() {
    let h = Harness::private(|_| ok("x").cc("max-age=100")).await;
    let miss = h.get("/r").await;
    assert_eq!(miss.age(), None);
    let hit = h.get("/r").await;
    assert_eq!(hit.age(), Some(0));
    h.advance(7);
    let hit = h.get("/r").await;
    assert_eq!(hit.age(), Some(7));
    assert_eq!(hit.cache_status(), "cachio; hit; ttl=93");
}

#[tokio::test]
async fn rfc9111_4_2_3_age_adds_upstream_age() {
    let h = Harness::private(|_| ok("x").cc("max-age=100").header("age", "30")).await;
    let miss = h.get("/r").await;
    assert_eq!(
        miss.age(),
        Some(30),
        "the upstream Age passes through a miss"
    );
    h.advance(5);
    let hit = h.get("/r").await;
    assert_eq!(hit.age(), Some(35));
    assert_eq!(hit.all("age").len(), 1);
    h.advance(65);
    assert!(!h.get("/r").await.is_hit(), "30 + 70 s is no longer fresh");
}

#[tokio::test]
async fn rfc9111_4_2_3_apparent_age_from_date() {
    let h = Harness::private(|_| ok("x").cc("max-age=100").header("date", &http_date(-40))).await;
    h.get("/r").await;
    h.advance(3);
    let hit = h.get("/r").await;
    assert_eq!(hit.age(), Some(43));
    assert_eq!(hit.cache_status(), "cachio; hit; ttl=57");
}

#[tokio::test]
async fn rfc9111_4_2_3_age_includes_response_delay() {
    // The origin takes 4 s to answer and says the response was 10 s old when it left it.
    let h = Harness::private(|_| {
        ok("x")
            .cc("max-age=100")
            .header("age", "10")
            .slow(Duration::from_secs(4))
    })
    .await;
    h.get("/r").await;
    h.advance(1);
    let hit = h.get("/r").await;
    assert_eq!(hit.age(), Some(15));
}

/// A fresh hit is remembered for the clock's reading (a hit on the same entry at the same reading
/// is fresh for the same reasons); what it did not judge is judged afresh at that same reading: a
/// request with directives of its own (RFC 9111 §5.2.1), an entry replaced meanwhile, and another
/// layer over the same store with another policy (§5.2.2.10).
#[tokio::test]
async fn rfc9111_4_2_a_fresh_hit_answers_only_what_it_judged() {
    let store = memory();
    let by_path = |p: &http::request::Parts| p.uri.path().to_owned();
    let h = Harness::with(CacheLayer::private(store.clone()).key_fn(by_path), |s| {
        ok("")
            .cc("max-age=100, s-maxage=0")
            .body(format!("#{}", s.n))
    })
    .await;
    let gateway = Harness::with_clock(
        CacheLayer::shared(store).key_fn(by_path),
        h.clock.clone(),
        |_| ok("gateway").cc("max-age=100"),
    )
    .await;
    h.get("/r").await;
    h.advance(10);
    for _ in 0..3 {
        let hit = h.get("/r").await;
        assert!(hit.is_hit(), "{}", hit.cache_status());
        assert_eq!((hit.text(), hit.header("age")), ("#1", Some("10")));
    }
    for directive in ["max-age=5", "min-fresh=200", "no-cache"] {
        let res = h.send(h.req("/r").header("cache-control", directive)).await;
        assert!(!res.is_hit(), "{directive}: {}", res.cache_status());
    }
    assert_eq!(h.count(), 4);
    // Each of those replaced the entry; the last one is served.
    let hit = h.get("/r").await;
    assert_eq!((hit.text(), hit.header("age")), ("#4", Some("0")));

    // Shared, the same entry is stale (`s-maxage=0`).
    let shared = gateway.get("/r").await;
    assert!(!shared.is_hit(), "{}", shared.cache_status());
    assert_eq!(shared.text(), "gateway");

    // What the gateway stored replaced it, and is what the private layer serves.
    let replaced = h.get("/r").await;
    assert!(replaced.is_hit(), "{}", replaced.cache_status());
    assert_eq!(
        (replaced.text(), replaced.header("age")),
        ("gateway", Some("0"))
    );
    assert_eq!(h.count(), 4);
}
