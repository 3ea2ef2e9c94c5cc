//! RFC 9111 §4.4: unsafe methods invalidate stored responses.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use cachio::CacheLayer;
use support::flaky::{Faults, Flaky};
use support::{Harness, Seen, memory, ok, reply};

/// GETs are cacheable and numbered; other methods answer with what `unsafe_reply` gives.
fn origin(unsafe_reply: fn(&Seen) -> support::Reply) -> impl Fn(&Seen) -> support::Reply {
    move |s| {
        if s.method == "GET" {
            reply(200)
                .cc("max-age=100")
                .body(format!("{} #{}", s.path(), s.n))
        } else {
            unsafe_reply(s)
        }
    }
}

#[tokio::test]
async fn rfc9111_4_4_unsafe_methods_invalidate_target_uri() {
    let h = Harness::private(origin(|_| reply(204))).await;
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let before = h.get("/r").await;
        assert!(h.get("/r").await.is_hit(), "{method}");
        let res = h.send(h.req("/r").method(method)).await;
        assert_eq!(res.status, 204);
        assert_eq!(res.cache_status(), "cachio; fwd=method; fwd-status=204");
        let after = h.get("/r").await;
        assert!(!after.is_hit(), "{method}: {}", after.cache_status());
        assert_ne!(after.body, before.body, "{method}");
    }
}

#[tokio::test]
async fn rfc9111_4_4_invalidation_targets_only_that_uri() {
    let h = Harness::private(origin(|_| reply(200))).await;
    h.get("/r").await;
    h.get("/r?q=1").await;
    h.get("/other").await;
    h.send(h.req("/r").method("POST")).await;
    assert!(!h.get("/r").await.is_hit());
    assert!(h.get("/r?q=1").await.is_hit());
    assert!(h.get("/other").await.is_hit());
}

#[tokio::test]
async fn rfc9111_4_4_same_origin_location_and_content_location_invalidated() {
    let h = Harness::private(|s| {
        if s.method == "GET" {
            reply(200).cc("max-age=100").body(format!("#{}", s.n))
        } else {
            let port = s
                .header("host")
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .to_owned();
            reply(201).header("location", "/created").header(
                "content-location",
                &format!("http://127.0.0.1:{port}/described"),
            )
        }
    })
    .await;
    for path in ["/created", "/described", "/untouched"] {
        h.get(path).await;
        assert!(h.get(path).await.is_hit());
    }
    let res = h.send(h.req("/collection").method("POST")).await;
    assert_eq!(res.status, 201);
    assert!(!h.get("/created").await.is_hit());
    assert!(!h.get("/described").await.is_hit());
    assert!(h.get("/untouched").await.is_hit());
}

#[tokio::test]
async fn rfc9111_4_4_cross_origin_location_not_invalidated() {
    // Two origins behind caches sharing one store.
    let store = memory();
    let other = Harness::with(CacheLayer::private(store.clone()), origin(|_| reply(200))).await;
    other.get("/a").await;
    let other_url = other.url("/a");
    let h = Harness::with(CacheLayer::private(store), move |s| {
        if s.method == "GET" {
            reply(200).cc("max-age=100").body("x")
        } else {
            reply(200)
                .header("location", &other_url)
                .header("content-location", &other_url)
        }
    })
    .await;
    h.get("/a").await;
    h.send(h.req("/a").method("POST")).await;
    assert!(
        !h.get("/a").await.is_hit(),
        "the target itself is invalidated"
    );
    let hit = other.get("/a").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(other.count(), 1);
}

#[tokio::test]
async fn rfc9111_4_4_error_response_does_not_invalidate() {
    let h = Harness::private(|s| match (s.method.as_str(), s.path()) {
        ("GET", _) => ok("x").cc("max-age=100"),
        (_, "/r404") => reply(404),
        _ => reply(500),
    })
    .await;
    for path in ["/r404", "/r500"] {
        h.get(path).await;
        let res = h.send(h.req(path).method("DELETE")).await;
        assert!(res.status.is_client_error() || res.status.is_server_error());
        let hit = h.get(path).await;
        assert!(hit.is_hit(), "{path}: {}", hit.cache_status());
    }
    assert_eq!(h.count(), 4);
}

#[tokio::test]
async fn rfc9111_4_4_invalidation_removes_every_variant() {
    let h = Harness::private(|s| {
        if s.method == "GET" {
            let lang = s.header("accept-language").unwrap_or("none").to_owned();
            reply(200)
                .cc("max-age=100")
                .header("vary", "accept-language")
                .body(lang)
        } else {
            reply(204)
        }
    })
    .await;
    let get = |lang: &str| h.send(h.req("/r").header("accept-language", lang));
    get("en").await;
    get("de").await;
    assert!(get("en").await.is_hit());
    assert!(get("de").await.is_hit());
    h.send(h.req("/r").method("PUT")).await;
    assert!(!get("en").await.is_hit());
    assert!(!get("de").await.is_hit());
}

#[tokio::test]
async fn rfc9111_4_4_safe_methods_do_not_invalidate() {
    let h = Harness::private(origin(|_| reply(200))).await;
    h.get("/r").await;
    let res = h.send(h.req("/r").method("OPTIONS")).await;
    assert_eq!(res.cache_status(), "cachio; fwd=method; fwd-status=200");
    assert!(h.get("/r").await.is_hit());
}

/// A response that was on its way when an unsafe request changed the resource may describe it
/// as it was before: it reaches its caller but is not stored, so the invalidation (RFC 9111 §4.4)
/// is not undone by a fetch that started before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_a_response_fetched_across_an_invalidation_is_not_stored() {
    use std::sync::Arc;
    let release = Arc::new(tokio::sync::Notify::new());
    let h = {
        let release = release.clone();
        Arc::new(
            Harness::private(move |s| match (s.method.as_str(), s.n) {
                ("GET", 1) => ok("before").cc("max-age=100").hold(release.clone()),
                ("GET", _) => ok("after").cc("max-age=100"),
                _ => reply(204),
            })
            .await,
        )
    };
    let early = {
        let h = h.clone();
        tokio::spawn(async move { h.get("/r").await })
    };
    support::eventually("the GET to reach the origin", || h.count() == 1).await;
    let post = h.send(h.req("/r").method("POST")).await;
    assert_eq!(post.status, 204);
    release.notify_one();
    let early = early.await.expect("the early GET");
    assert_eq!(
        early.text(),
        "before",
        "the response still reaches its caller"
    );

    let next = h.get("/r").await;
    assert!(
        !next.is_hit(),
        "the pre-change response was stored: {}",
        next.cache_status()
    );
    assert_eq!(next.text(), "after");
    assert_eq!(h.count(), 3);
    let then = h.get("/r").await;
    assert!(then.is_hit(), "{}", then.cache_status());
    assert_eq!(then.text(), "after");
}

#[tokio::test]
async fn rfc9111_4_4_invalidating_by_hand_removes_every_variant_of_that_uri_only() {
    let h = Harness::private(|s| {
        let lang = s.header("accept-language").unwrap_or("none").to_owned();
        reply(200)
            .cc("max-age=100")
            .header("vary", "accept-language")
            .body(format!("{} {lang} #{}", s.path(), s.n))
    })
    .await;
    let get = |path: &'static str, lang: &'static str| {
        h.send(h.req(path).header("accept-language", lang))
    };
    get("/r", "en").await;
    get("/r", "de").await;
    get("/other", "en").await;
    assert!(get("/r", "en").await.is_hit());
    assert!(get("/r", "de").await.is_hit());

    let req = h.req("/r").body(()).unwrap();
    h.svc.invalidate(&req).await.expect("the store removes it");
    assert_eq!(h.svc.stats().snapshot().invalidations, 1);
    for lang in ["en", "de"] {
        let res = get("/r", lang).await;
        assert!(!res.is_hit(), "{lang}: {}", res.cache_status());
        assert!(
            res.text().starts_with(&format!("/r {lang} ")),
            "{}",
            res.text()
        );
    }
    assert!(get("/other", "en").await.is_hit(), "another URI stays");
    assert_eq!(h.count(), 5);
}

/// A layer whose origin holds its first response ("before") until released and answers "after"
/// from then on; `remove` runs with the layer and a request for the URI while that first response
/// is on its way. The response is passed on and not stored; the next one is.
async fn removed_while_on_its_way<F, Fut>(remove: F)
where
    F: FnOnce(CacheLayer<cachio::MemoryStore>, http::Request<()>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let release = Arc::new(tokio::sync::Notify::new());
    let layer = CacheLayer::private(memory());
    let h = {
        let release = release.clone();
        Arc::new(
            Harness::with(layer.clone(), move |s| match s.n {
                1 => ok("before").cc("max-age=100").hold(release.clone()),
                _ => ok("after").cc("max-age=100"),
            })
            .await,
        )
    };
    let early = {
        let h = h.clone();
        tokio::spawn(async move { h.get("/r").await })
    };
    support::eventually("the GET to reach the origin", || h.count() == 1).await;
    // Through the layer: it shares what is in flight with the services it made.
    remove(layer, h.req("/r").body(()).unwrap()).await;
    release.notify_one();
    assert_eq!(early.await.expect("the early GET").text(), "before");

    let next = h.get("/r").await;
    assert!(!next.is_hit(), "{}", next.cache_status());
    assert_eq!(next.text(), "after");
    assert!(
        h.get("/r").await.is_hit(),
        "a fetch after the removal is stored"
    );
}

#[tokio::test]
async fn rfc9111_4_4_a_response_on_its_way_when_invalidated_by_hand_is_not_stored() {
    removed_while_on_its_way(|layer, req| async move {
        layer.invalidate(&req).await.expect("the store removes it");
    })
    .await;
}

#[tokio::test]
async fn rfc9111_4_4_an_invalidation_while_a_variant_is_indexed_leaves_no_variant_reachable() {
    let version = Arc::new(AtomicUsize::new(0));
    let store = Flaky::new();
    let faults = store.faults.clone();
    let h = {
        let version = version.clone();
        Harness::with(CacheLayer::private(store.clone()), move |s| {
            if s.method != "GET" {
                version.fetch_add(1, SeqCst);
                return reply(204);
            }
            let lang = s.header("accept-language").unwrap_or("-");
            reply(200)
                .cc("max-age=100")
                .header("vary", "Accept-Language")
                .body(format!("{lang} v{}", version.load(SeqCst)))
        })
        .await
    };
    let h = Arc::new(h);
    let get = |lang: &'static str| {
        let h = h.clone();
        async move { h.send(h.req("/r").header("accept-language", lang)).await }
    };
    assert_eq!(get("de").await.text(), "de v0");
    assert!(get("de").await.is_hit());

    // The `en` variant is written, and its index waits; the resource changes meanwhile.
    faults.hold_index.store(true, SeqCst);
    let en = tokio::spawn(get("en"));
    faults.reached.notified().await;
    let post = {
        let h = h.clone();
        tokio::spawn(async move { h.send(h.req("/r").method("POST")).await })
    };
    support::settle().await;
    faults.release.notify_one();
    assert_eq!(post.await.unwrap().status, 204);
    assert_eq!(
        en.await.unwrap().text(),
        "en v0",
        "fetched before the change"
    );
    support::settle().await;

    for lang in ["de", "en"] {
        let res = get(lang).await;
        assert_eq!(
            res.text(),
            format!("{lang} v1"),
            "{lang}: a response from before the change came back: {}",
            res.cache_status()
        );
    }
}

/// An origin whose `GET /r` varies on `Accept-Language` and says which version it is; unsafe
/// requests change the version. A `GET` for `held` waits for `hold` before it answers (its body
/// made when it arrived).
fn versioned(
    version: Arc<AtomicUsize>,
    held: &'static str,
    hold: Arc<tokio::sync::Notify>,
) -> impl Fn(&Seen) -> support::Reply + Send + Sync + 'static {
    move |s: &Seen| {
        if s.method != "GET" {
            version.fetch_add(1, SeqCst);
            return reply(204);
        }
        let lang = s.header("accept-language").unwrap_or("-");
        let r = reply(200)
            .cc("max-age=100")
            .header("vary", "Accept-Language")
            .body(format!("{lang} v{}", version.load(SeqCst)));
        if lang == held {
            r.hold(hold.clone())
        } else {
            r
        }
    }
}

#[tokio::test]
async fn rfc9111_4_4_a_variant_index_read_before_an_invalidation_is_not_written_back() {
    let version = Arc::new(AtomicUsize::new(0));
    let hold = Arc::new(tokio::sync::Notify::new());
    let h = Arc::new(Harness::private(versioned(version.clone(), "de", hold.clone())).await);
    let get = |lang: &'static str| {
        let h = h.clone();
        async move { h.send(h.req("/r").header("accept-language", lang)).await }
    };
    assert_eq!(get("en").await.text(), "en v0");

    // `de` fetches (and is held at the origin); `fr`, which read the same variant index, waits
    // for that fetch. The resource changes meanwhile.
    let de = tokio::spawn(get("de"));
    support::eventually("the de request at the origin", || h.count() == 2).await;
    let fr = tokio::spawn(get("fr"));
    support::settle().await;
    assert_eq!(h.send(h.req("/r").method("POST")).await.status, 204);
    hold.notify_one();
    assert_eq!(
        de.await.unwrap().text(),
        "de v0",
        "fetched before the change"
    );
    // The `de` response was not stored, so `fr` goes to the origin itself, after the change.
    assert_eq!(fr.await.unwrap().text(), "fr v1");
    support::settle().await;

    let en = get("en").await;
    assert_eq!(
        en.text(),
        "en v1",
        "a variant from before the change came back: {}",
        en.cache_status()
    );
}

/// Holds the next commit of the kind `hold` names until a `POST /r` was sent meanwhile, then
/// lets it land and holds it again before the cache looks at it: whenever the `POST` has had its
/// answer, every `GET` for `langs` must find the resource as the `POST` left it.
async fn commit_across_an_invalidation(
    h: &Arc<Harness<Flaky>>,
    faults: &Faults,
    hold: fn(&Faults) -> &AtomicBool,
    fetch: &'static str,
    langs: &[&'static str],
) {
    let get = |lang: &'static str| {
        let h = h.clone();
        async move { h.send(h.req("/r").header("accept-language", lang)).await }
    };
    let check = |res: support::Got, lang: &str| {
        assert_eq!(
            res.text(),
            format!("{lang} v1"),
            "{lang}: a response from before the change came back: {}",
            res.cache_status()
        );
    };
    hold(faults).store(true, SeqCst);
    faults.linger.store(true, SeqCst);
    let fetched = tokio::spawn(get(fetch));
    faults.reached.notified().await;
    let post = {
        let h = h.clone();
        tokio::spawn(async move { h.send(h.req("/r").method("POST")).await })
    };
    support::settle().await;
    faults.release.notify_one();
    faults.reached.notified().await;
    // The commit has landed and not yet looked for invalidations.
    if post.is_finished() {
        for &lang in langs {
            check(get(lang).await, lang);
        }
    }
    faults.release.notify_one();
    assert_eq!(post.await.unwrap().status, 204);
    assert_eq!(
        fetched.await.unwrap().text(),
        format!("{fetch} v0"),
        "fetched before the change"
    );
    support::settle().await;
    for &lang in langs {
        check(get(lang).await, lang);
    }
}

#[tokio::test]
async fn rfc9111_4_4_a_variant_index_read_while_an_invalidation_removes_it_is_not_written_back() {
    let version = Arc::new(AtomicUsize::new(0));
    let store = Flaky::new();
    let h = Arc::new(
        Harness::with(
            CacheLayer::private(store.clone()),
            versioned(
                version.clone(),
                "none",
                Arc::new(tokio::sync::Notify::new()),
            ),
        )
        .await,
    );
    let get = |lang: &'static str| {
        let h = h.clone();
        async move { h.send(h.req("/r").header("accept-language", lang)).await }
    };
    assert_eq!(get("de").await.text(), "de v0");

    // The resource changes; the invalidation has begun but not yet removed the variant index.
    store.faults.hold_delete.store(true, SeqCst);
    let post = {
        let h = h.clone();
        tokio::spawn(async move { h.send(h.req("/r").method("POST")).await })
    };
    store.faults.reached.notified().await;
    // `fr` begins now, reads the index that is about to go, and fetches the new version.
    let fr = tokio::spawn(get("fr"));
    support::eventually("the fr request at the origin", || h.count() == 3).await;
    support::settle().await;
    store.faults.release.notify_one();
    assert_eq!(post.await.unwrap().status, 204);
    assert_eq!(fr.await.unwrap().text(), "fr v1");
    support::settle().await;
    // Neither the old index nor the variant it lists comes back.
    for lang in ["de", "fr", "de"] {
        let res = get(lang).await;
        assert_eq!(
            res.text(),
            format!("{lang} v1"),
            "{lang}: a response from before the change came back: {}",
            res.cache_status()
        );
    }
}

#[tokio::test]
async fn rfc9111_4_4_a_variant_index_committed_across_an_invalidation_is_never_served() {
    let version = Arc::new(AtomicUsize::new(0));
    let never = Arc::new(tokio::sync::Notify::new());
    let store = Flaky::new();
    let h = Arc::new(
        Harness::with(
            // Requests that meet the held fetch wait for it only briefly.
            CacheLayer::private(store.clone()).coalesce_timeout(Duration::from_millis(50)),
            versioned(version.clone(), "none", never),
        )
        .await,
    );
    let get = h.send(h.req("/r").header("accept-language", "de")).await;
    assert_eq!(get.text(), "de v0");
    let langs = ["de", "fr", "de", "en"];
    commit_across_an_invalidation(&h, &store.faults, |f| &f.hold_index, "en", &langs).await;
}

#[tokio::test]
async fn rfc9111_4_4_a_response_committed_across_an_invalidation_is_never_served() {
    let version = Arc::new(AtomicUsize::new(0));
    let store = Flaky::new();
    let h = Arc::new(
        Harness::with(
            CacheLayer::private(store.clone()).coalesce_timeout(Duration::from_millis(50)),
            move |s: &Seen| {
                if s.method != "GET" {
                    version.fetch_add(1, SeqCst);
                    return reply(204);
                }
                let lang = s.header("accept-language").unwrap_or("-");
                reply(200)
                    .cc("max-age=100")
                    .body(format!("{lang} v{}", version.load(SeqCst)))
            },
        )
        .await,
    );
    let faults = &store.faults;
    commit_across_an_invalidation(&h, faults, |f| &f.hold_response, "en", &["en", "en"]).await;
}

#[tokio::test]
async fn purging_removes_every_entry_that_matches_its_variants_included_and_nothing_else() {
    let store = memory();
    let layer = CacheLayer::shared(store.clone());
    let h = Harness::with(layer.clone(), |s| {
        let lang = s.header("accept-language").unwrap_or("-").to_owned();
        let tag = if s.path().ends_with("/tagged") {
            "all hot"
        } else {
            "all cold"
        };
        reply(200)
            .cc("max-age=100")
            .header("vary", "accept-language")
            .header("surrogate-key", tag)
            .body(format!("{} {lang} #{}", s.path(), s.n))
    })
    .await;
    let get = |path: &'static str, lang: &'static str| {
        h.send(h.req(path).header("accept-language", lang))
    };
    for (path, lang) in [
        ("/users/1", "en"),
        ("/users/1", "de"),
        ("/users/2", "en"),
        ("/usersettings", "en"),
        ("/docs/tagged", "en"),
        ("/docs/plain", "en"),
    ] {
        get(path, lang).await;
        assert!(get(path, lang).await.is_hit(), "{path} {lang} is stored");
    }
    let stored = h.count();

    let prefix = h.url("/users/");
    let n = layer
        .purge(move |key, _| key.starts_with(&prefix))
        .await
        .expect("the memory store enumerates its entries");
    // Two URLs: each a variant index and its variants (two and one).
    assert_eq!(n, 5, "{n} entries purged");
    for (path, lang) in [("/users/1", "en"), ("/users/1", "de"), ("/users/2", "en")] {
        assert!(!get(path, lang).await.is_hit(), "{path} {lang} is gone");
    }
    assert!(
        get("/usersettings", "en").await.is_hit(),
        "not under /users/"
    );

    let hot = |_: &str, meta: &cachio::core::Meta| {
        meta.as_response().is_some_and(|res| {
            res.headers()
                .get("surrogate-key")
                .is_some_and(|v| v.as_bytes().ends_with(b" hot"))
        })
    };
    assert_eq!(layer.purge(hot).await.expect("purged"), 1);
    assert!(!get("/docs/tagged", "en").await.is_hit());
    assert!(get("/docs/plain", "en").await.is_hit());
    assert_eq!(h.count(), stored + 4, "the purged ones were fetched again");
}

#[tokio::test]
async fn a_response_on_its_way_during_a_purge_is_not_stored() {
    removed_while_on_its_way(|layer, _| async move {
        // Nothing is stored yet: the store finds nothing to remove, but the fetch is on its way.
        assert_eq!(layer.purge(|_, _| true).await.expect("purged"), 0);
    })
    .await;
}

#[tokio::test]
async fn a_store_that_cannot_enumerate_its_entries_refuses_a_purge_and_keeps_caching() {
    let layer = CacheLayer::private(Flaky::new());
    let h = Harness::with(layer.clone(), origin(|_| reply(204))).await;
    h.get("/r").await;
    let err = layer
        .purge(|_, _| true)
        .await
        .expect_err("Flaky has no purge");
    assert_eq!(err.kind(), cachio::core::store::ErrorKind::Unsupported);
    assert_eq!(layer.stats().snapshot().store_errors, 0, "not a failure");
    assert!(h.get("/r").await.is_hit(), "nothing removed");
}
