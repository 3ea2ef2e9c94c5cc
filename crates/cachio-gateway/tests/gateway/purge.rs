//! Purging by URL (the PURGE method and the admin route), by prefix and by tag; the token.

use crate::support;

use cachio_gateway::Gateway;
use http::Response;
use support::{Origin, Running, client, eventually, full, get, send};

/// An origin whose responses are cacheable and tagged after their path: `/t/a` carries
/// `Surrogate-Key: all t-a` and `Cache-Tag: c-a,c-all`.
async fn tagged_origin() -> Origin {
    Origin::start(|req| async move {
        let name = req.uri().path().rsplit('/').next().unwrap_or("").to_owned();
        Response::builder()
            .header("cache-control", "max-age=600")
            .header("surrogate-key", format!("all t-{name}"))
            .header("cache-tag", format!("c-{name},c-all"))
            .body(full(format!("body of {}", req.uri())))
            .unwrap()
    })
    .await
}

async fn warm(gw: &Running, paths: &[&str]) {
    let client = client();
    let stats = gw.gateway.stats();
    let before = stats.snapshot().stores;
    for p in paths {
        get(&client, &gw.url(p)).await;
    }
    let want = before + paths.len() as u64;
    eventually("entries stored", 10, || stats.snapshot().stores == want).await;
    for p in paths {
        assert!(
            get(&client, &gw.url(p))
                .await
                .cache_status()
                .contains("hit"),
            "{p} is cached"
        );
    }
}

async fn is_hit(gw: &Running, path: &str) -> bool {
    get(&client(), &gw.url(path))
        .await
        .cache_status()
        .contains("; hit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_method_needs_the_token_and_removes_the_url() {
    let origin = tagged_origin().await;
    let gw =
        Running::start(Gateway::builder(origin.url()).purge_token(Some("s3cret".into()))).await;
    warm(&gw, &["/p/a", "/p/b"]).await;
    let c = client();

    let res = send(&c, "PURGE", &gw.url("/p/a"), &[]).await;
    assert_eq!(res.status, 401);
    assert!(res.headers.contains_key("www-authenticate"));
    let res = send(
        &c,
        "PURGE",
        &gw.url("/p/a"),
        &[("authorization", "Bearer wrong")],
    )
    .await;
    assert_eq!(res.status, 403);
    assert!(is_hit(&gw, "/p/a").await, "a refused purge removes nothing");

    let res = send(
        &c,
        "PURGE",
        &gw.url("/p/a"),
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body, "{\"purged\":1}\n");
    let count = origin.state.count();
    let got = get(&c, &gw.url("/p/a")).await;
    assert!(
        got.cache_status().contains("fwd=uri-miss"),
        "{}",
        got.cache_status()
    );
    assert_eq!(origin.state.count(), count + 1);
    assert!(is_hit(&gw, "/p/b").await, "other URLs stay");

    let res = send(
        &c,
        "PURGE",
        &gw.url("/p/never"),
        &[("x-purge-token", "s3cret")],
    )
    .await;
    assert_eq!(
        (res.status.as_u16(), &res.body[..]),
        (200, &b"{\"purged\":0}\n"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_purge_by_url_prefix_and_tag() {
    let origin = tagged_origin().await;
    let gw =
        Running::start(Gateway::builder(origin.url()).purge_token(Some("s3cret".into()))).await;
    let c = client();
    let auth = [("x-purge-token", "s3cret")];
    warm(
        &gw,
        &[
            "/u/a?x=1", "/pre/a", "/pre/b", "/other/a", "/t/x", "/t/y", "/t/z",
        ],
    )
    .await;

    // Without the token: refused, nothing removed.
    for route in [
        "/_cachio/purge/url?url=/u/a%3Fx%3D1",
        "/_cachio/purge/prefix?prefix=/pre/",
        "/_cachio/purge/tag?tag=all",
    ] {
        assert_eq!(
            send(&c, "POST", &gw.url(route), &[]).await.status,
            401,
            "{route}"
        );
        assert_eq!(
            send(
                &c,
                "POST",
                &gw.url(route),
                &[("authorization", "Bearer nope")]
            )
            .await
            .status,
            403,
            "{route}"
        );
    }
    assert!(
        is_hit(&gw, "/u/a?x=1").await && is_hit(&gw, "/pre/a").await && is_hit(&gw, "/t/x").await
    );

    // By URL (a path with its query, under the request's Host).
    let res = send(
        &c,
        "POST",
        &gw.url("/_cachio/purge/url?url=/u/a%3Fx%3D1"),
        &auth,
    )
    .await;
    assert_eq!(
        (res.status.as_u16(), &res.body[..]),
        (200, &b"{\"purged\":1}\n"[..])
    );
    assert!(!is_hit(&gw, "/u/a?x=1").await);

    // By prefix.
    let res = send(
        &c,
        "POST",
        &gw.url("/_cachio/purge/prefix?prefix=/pre/"),
        &auth,
    )
    .await;
    assert_eq!(
        (res.status.as_u16(), &res.body[..]),
        (200, &b"{\"purged\":2}\n"[..])
    );
    assert!(!is_hit(&gw, "/pre/a").await);
    assert!(!is_hit(&gw, "/pre/b").await);
    assert!(is_hit(&gw, "/other/a").await);

    // By tag: a Surrogate-Key (space-separated) and a Cache-Tag (comma-separated).
    let res = send(&c, "POST", &gw.url("/_cachio/purge/tag?tag=t-x"), &auth).await;
    assert_eq!(
        (res.status.as_u16(), &res.body[..]),
        (200, &b"{\"purged\":1}\n"[..])
    );
    assert!(!is_hit(&gw, "/t/x").await);
    assert!(is_hit(&gw, "/t/y").await);
    let res = send(&c, "POST", &gw.url("/_cachio/purge/tag?tag=c-y"), &auth).await;
    assert_eq!(res.body, "{\"purged\":1}\n");
    assert!(!is_hit(&gw, "/t/y").await);
    assert!(is_hit(&gw, "/t/z").await);

    let metrics = gw.gateway.metrics();
    assert!(
        metrics.contains("cachio_purges_total{cache=\"cachio\",kind=\"tag\"} 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_purging_is_disabled() {
    let origin = tagged_origin().await;
    let gw = Running::start(Gateway::builder(origin.url())).await;
    warm(&gw, &["/d/a"]).await;
    let c = client();
    for (method, path) in [
        ("PURGE", "/d/a"),
        ("POST", "/_cachio/purge/url?url=/d/a"),
        ("POST", "/_cachio/purge/tag?tag=all"),
    ] {
        let res = send(&c, method, &gw.url(path), &[("x-purge-token", "anything")]).await;
        assert_eq!(res.status, 403, "{method} {path}");
    }
    assert!(is_hit(&gw, "/d/a").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_a_url_removes_every_vary_variant() {
    let origin = Origin::start(|req| async move {
        let lang = req
            .headers()
            .get("accept-language")
            .map_or("none", |v| v.to_str().unwrap())
            .to_owned();
        Response::builder()
            .header("cache-control", "max-age=600")
            .header("vary", "accept-language")
            .body(full(lang))
            .unwrap()
    })
    .await;
    let gw = Running::start(Gateway::builder(origin.url()).purge_token(Some("t".into()))).await;
    let c = client();
    let stats = gw.gateway.stats();
    for lang in ["en", "de"] {
        send(&c, "GET", &gw.url("/v"), &[("accept-language", lang)]).await;
    }
    eventually("two variants stored", 10, || stats.snapshot().stores == 2).await;
    for lang in ["en", "de"] {
        let got = send(&c, "GET", &gw.url("/v"), &[("accept-language", lang)]).await;
        assert!(got.cache_status().contains("hit"));
        assert_eq!(got.body, lang);
    }
    let res = send(&c, "PURGE", &gw.url("/v"), &[("x-purge-token", "t")]).await;
    assert_eq!(res.status, 200);
    for lang in ["en", "de"] {
        let got = send(&c, "GET", &gw.url("/v"), &[("accept-language", lang)]).await;
        assert!(
            !got.cache_status().contains("hit"),
            "{lang}: {}",
            got.cache_status()
        );
    }
}

/// A purge is ordered with the responses on their way: one whose request reached the origin
/// before the purge, and whose body ends after it, describes the resource as it was before the
/// change the purge was sent for. It is passed on, and not stored. Each of the four ways to purge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_on_its_way_during_a_purge_is_not_stored_after_it() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use support::Gate;

    // The resource's version when the request arrives; the body leaves once the gate opens.
    let version = Arc::new(AtomicU64::new(1));
    // How many requests have read the version: the change must come after.
    let read = Arc::new(AtomicU64::new(0));
    let gate = Gate::closed();
    let (v, r, g) = (version.clone(), read.clone(), gate.clone());
    let origin = Origin::start(move |_req| {
        let (v, r, g) = (v.clone(), r.clone(), g.clone());
        async move {
            let seen = v.load(Ordering::SeqCst);
            r.fetch_add(1, Ordering::SeqCst);
            g.wait(Duration::from_secs(20)).await;
            Response::builder()
                .header("cache-control", "max-age=600")
                .header("surrogate-key", "race")
                .body(full(format!("v{seen}")))
                .unwrap()
        }
    })
    .await;
    let gw = Running::start(Gateway::builder(origin.url()).purge_token(Some("t".into()))).await;
    let c = client();
    let auth = [("x-purge-token", "t")];

    for (path, purge) in [
        ("/race/method", ("PURGE", "/race/method")),
        ("/race/url", ("POST", "/_cachio/purge/url?url=/race/url")),
        (
            "/race/prefix/a",
            ("POST", "/_cachio/purge/prefix?prefix=/race/prefix/"),
        ),
        ("/race/tag", ("POST", "/_cachio/purge/tag?tag=race")),
    ] {
        gate.close();
        let before = version.load(Ordering::SeqCst);
        let reads = read.load(Ordering::SeqCst);
        let (c2, url) = (c.clone(), gw.url(path));
        let racing = tokio::spawn(async move { get(&c2, &url).await });
        eventually("the request read the version at the origin", 10, || {
            read.load(Ordering::SeqCst) == reads + 1
        })
        .await;
        // The resource changes, and the purge is sent for that change.
        version.fetch_add(1, Ordering::SeqCst);
        let res = send(&c, purge.0, &gw.url(purge.1), &auth).await;
        assert_eq!(res.status, 200, "{path}: {:?}", res.body);
        gate.open();
        let got = racing.await.unwrap();
        assert_eq!(got.body, format!("v{before}"), "{path}: passed on whole");

        let after = get(&c, &gw.url(path)).await;
        assert_eq!(
            after.body,
            format!("v{}", before + 1),
            "{path}: purged means gone, also for what was on its way ({})",
            after.cache_status()
        );
        assert!(!after.cache_status().contains("; hit"), "{path}");
        // Its client can have the last byte before the store has it: wait for the writes.
        assert!(gw.gateway.settle(Duration::from_secs(10)).await);
        let mut stored = false;
        for _ in 0..40 {
            if is_hit(&gw, path).await {
                stored = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(stored, "{path}: what came after is stored");
    }
}
