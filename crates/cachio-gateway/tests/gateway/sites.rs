//! Several sites routed by `Host` over one store, and cache keys shaped by headers, cookies and
//! the query.

use crate::support;

use std::time::Duration;

use cachio_gateway::{Config, Gateway, KeyOptions, Site};
use http::{HeaderName, Response};
use support::{Got, Origin, Running, client, full, send};

/// An origin that names itself, the target, and the request's `Cookie` and `Accept-Language`
/// in its body; cacheable for ten minutes and tagged `all`.
async fn origin(name: &'static str) -> Origin {
    Origin::start(move |req| async move {
        let h = |n: &str| {
            req.headers()
                .get(n)
                .map_or("-", |v| v.to_str().unwrap())
                .to_owned()
        };
        let body = format!(
            "{name} {} cookie={} lang={}",
            req.uri(),
            h("cookie"),
            h("accept-language")
        );
        Response::builder()
            .header("cache-control", "max-age=600")
            .header("surrogate-key", "all")
            .body(full(body))
            .unwrap()
    })
    .await
}

/// A request to `gw` with `Host: host` and more headers.
async fn at(gw: &Running, host: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut all = vec![("host", host)];
    all.extend_from_slice(headers);
    send(&client(), method, &gw.url(path), &all).await
}

/// Waits until the gateway answers `path` on `host` from its store, without asking the origin
/// (`only-if-cached`); returns the stored response.
async fn stored(gw: &Running, host: &str, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut all = vec![("cache-control", "only-if-cached")];
    all.extend_from_slice(headers);
    for _ in 0..400 {
        let got = at(gw, host, "GET", path, &all).await;
        if got.status == 200 {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{host}{path} {headers:?} was never stored");
}

/// Whether the gateway holds `path` on `host` now.
async fn holds(gw: &Running, host: &str, path: &str) -> bool {
    at(
        gw,
        host,
        "GET",
        path,
        &[("cache-control", "only-if-cached")],
    )
    .await
    .status
        == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sites_keep_their_caches_and_purge_tokens_apart() {
    let (a, b) = (origin("A").await, origin("B").await);
    let gw = Running::start(Gateway::sites([
        Site::new("site-a", a.url())
            .hosts(["a.test"])
            .purge_token(Some("token-a".into())),
        Site::new("site-b", b.url())
            .hosts(["b.test", "www.b.test"])
            .purge_token(Some("token-b".into())),
    ]))
    .await;

    let got = at(&gw, "a.test", "GET", "/p", &[]).await;
    assert!(got.body.starts_with(b"A /p"), "{:?}", got.body);
    assert!(
        got.cache_status().starts_with("site-a;"),
        "{}",
        got.cache_status()
    );
    let got = at(&gw, "www.b.test", "GET", "/p", &[]).await;
    assert!(got.body.starts_with(b"B /p"), "{:?}", got.body);
    assert!(
        got.cache_status().starts_with("site-b;"),
        "{}",
        got.cache_status()
    );
    assert!(
        stored(&gw, "a.test", "/p", &[])
            .await
            .body
            .starts_with(b"A /p")
    );
    assert!(
        stored(&gw, "www.b.test", "/p", &[])
            .await
            .body
            .starts_with(b"B /p")
    );
    assert_eq!((a.state.count(), b.state.count()), (1, 1));

    // Site A's token does not purge site B.
    let res = at(
        &gw,
        "www.b.test",
        "PURGE",
        "/p",
        &[("x-purge-token", "token-a")],
    )
    .await;
    assert_eq!(res.status, 403);
    let url = "/_cachio/purge/tag?tag=all";
    let res = at(
        &gw,
        "www.b.test",
        "POST",
        url,
        &[("x-purge-token", "token-a")],
    )
    .await;
    assert_eq!(res.status, 403);
    assert!(holds(&gw, "www.b.test", "/p").await);

    // A purge on A, by URL or by tag, leaves B's entry with the same path and tag.
    let res = at(
        &gw,
        "a.test",
        "PURGE",
        "/p",
        &[("x-purge-token", "token-a")],
    )
    .await;
    assert_eq!(
        (res.status.as_u16(), &res.body[..]),
        (200, &b"{\"purged\":1}\n"[..])
    );
    assert!(!holds(&gw, "a.test", "/p").await);
    assert!(holds(&gw, "www.b.test", "/p").await);
    at(&gw, "a.test", "GET", "/p", &[]).await;
    stored(&gw, "a.test", "/p", &[]).await;
    let res = at(&gw, "a.test", "POST", url, &[("x-purge-token", "token-a")]).await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert!(!holds(&gw, "a.test", "/p").await);
    assert!(holds(&gw, "www.b.test", "/p").await);
    assert_eq!(b.state.count(), 1);

    // The port does not choose the site, nor the case (the key keeps the port, as a URL does).
    let got = at(&gw, "B.test:8080", "GET", "/port", &[]).await;
    assert!(got.body.starts_with(b"B /port"), "{:?}", got.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_prefixes_unknown_hosts_and_the_default_site() {
    let (shop, api, other) = (
        origin("shop").await,
        origin("api").await,
        origin("other").await,
    );
    let sites = || {
        [
            Site::new("shop", shop.url()).hosts(["shop.test"]),
            Site::new("api", api.url())
                .hosts(["shop.test"])
                .path_prefix("/api/"),
        ]
    };
    let gw = Running::start(Gateway::sites(sites())).await;
    for (path, who) in [
        ("/api", "api"),
        ("/api/x", "api"),
        ("/apis", "shop"),
        ("/x", "shop"),
    ] {
        let got = at(&gw, "shop.test", "GET", path, &[]).await;
        assert!(
            got.body.starts_with(format!("{who} {path}").as_bytes()),
            "{path}: {:?}",
            got.body
        );
    }
    let got = at(&gw, "elsewhere.test", "GET", "/x", &[]).await;
    assert_eq!(got.status, 421);
    let got = at(&gw, "elsewhere.test", "PURGE", "/x", &[]).await;
    assert_eq!(got.status, 421);
    assert_eq!(other.state.count(), 0);

    let mut with_default = sites().to_vec();
    with_default.push(
        Site::new("other", other.url())
            .hosts(["other.test"])
            .default_site(true),
    );
    let gw = Running::start(Gateway::sites(with_default)).await;
    let got = at(&gw, "elsewhere.test", "GET", "/x", &[]).await;
    assert_eq!(got.status, 200);
    assert!(got.body.starts_with(b"other /x"), "{:?}", got.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_sorted_query_parameters_share_an_entry() {
    let o = origin("o").await;
    let key = KeyOptions::new()
        .drop_query("utm_*")
        .drop_query("fbclid")
        .sort_query(true);
    let gw = Running::start(Gateway::builder(o.url()).cache_key(key).debug_key(true)).await;
    let host = "shop.test";

    let got = at(&gw, host, "GET", "/p?utm_source=a", &[]).await;
    assert!(
        got.body.starts_with(b"o /p?utm_source=a"),
        "the origin sees the query"
    );
    assert_eq!(
        got.cache_status(),
        "cachio; fwd=uri-miss; fwd-status=200; stored; key=\"http://shop.test/p\""
    );
    stored(&gw, host, "/p?utm_source=b&fbclid=1", &[]).await;
    let got = at(&gw, host, "GET", "/p?utm_source=b", &[]).await;
    assert!(got.cache_status().contains("hit"), "{}", got.cache_status());
    assert_eq!(o.state.count(), 1);
    assert!(
        !holds(&gw, host, "/p?x=1").await,
        "other parameters stay in the key"
    );

    at(&gw, host, "GET", "/q?a=1&b=2", &[]).await;
    let got = stored(&gw, host, "/q?b=2&a=1", &[]).await;
    assert!(got.body.starts_with(b"o /q?a=1&b=2"), "{:?}", got.body);
    assert!(
        got.cache_status()
            .ends_with("key=\"http://shop.test/q?a=1&b=2\""),
        "{}",
        got.cache_status()
    );
    assert_eq!(o.state.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_cookies_and_headers_split_entries() {
    let o = origin("o").await;
    let key = KeyOptions::new()
        .cookie("currency")
        .header(HeaderName::from_static("accept-language"));
    let gw = Running::start(
        Gateway::sites([Site::new("shop", o.url())
            .hosts(["shop.test"])
            .cache_key(key)
            .purge_token(Some("t".into()))])
        .debug_key(true),
    )
    .await;
    let (eur, usd) = (
        [("cookie", "session=1; currency=EUR")],
        [("cookie", "currency=USD; session=2")],
    );

    at(&gw, "shop.test", "GET", "/p", &eur).await;
    at(&gw, "shop.test", "GET", "/p", &usd).await;
    assert_eq!(o.state.count(), 2, "two cookie values, two entries");
    let got = stored(&gw, "shop.test", "/p", &eur).await;
    assert!(
        got.body.ends_with(b"cookie=session=1; currency=EUR lang=-"),
        "{:?}",
        got.body
    );
    assert!(
        got.cache_status()
            .ends_with("key=\"[shop]http://shop.test/p h:accept-language c:currency=EUR\""),
        "{}",
        got.cache_status()
    );
    let got = stored(&gw, "shop.test", "/p", &usd).await;
    assert!(
        got.body.ends_with(b"currency=USD; session=2 lang=-"),
        "{:?}",
        got.body
    );
    // Another session with the same currency shares the entry.
    let got = stored(&gw, "shop.test", "/p", &[("cookie", "currency=EUR")]).await;
    assert!(got.body.ends_with(b"currency=EUR lang=-"), "{:?}", got.body);

    at(&gw, "shop.test", "GET", "/h", &[("accept-language", "de")]).await;
    at(&gw, "shop.test", "GET", "/h", &[("accept-language", "fr")]).await;
    assert_eq!(o.state.count(), 4, "two languages, two entries");
    let got = stored(&gw, "shop.test", "/h", &[("accept-language", "fr")]).await;
    assert!(got.body.ends_with(b"lang=fr"), "{:?}", got.body);

    // A purge of the URL takes every cookie value's entry.
    let res = at(&gw, "shop.test", "PURGE", "/p", &[("x-purge-token", "t")]).await;
    assert_eq!(res.status, 200);
    for c in [&eur, &usd] {
        let res = at(
            &gw,
            "shop.test",
            "GET",
            "/p",
            &[c[0], ("cache-control", "only-if-cached")],
        )
        .await;
        assert_eq!(res.status, 504, "{c:?} purged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_cookie_still_gets_no_heuristic_freshness() {
    // Only Last-Modified: heuristically fresh, except for a request with Cookie.
    let o = Origin::start(|_req| async move {
        Response::builder()
            .header("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT")
            .body(full("page"))
            .unwrap()
    })
    .await;
    let key = KeyOptions::new().cookie("currency");
    let gw = Running::start(Gateway::builder(o.url()).cache_key(key)).await;
    let plain = at(&gw, "shop.test", "GET", "/plain", &[]).await;
    assert!(
        plain.cache_status().contains("stored"),
        "{}",
        plain.cache_status()
    );
    for _ in 0..2 {
        let got = at(&gw, "shop.test", "GET", "/c", &[("cookie", "currency=EUR")]).await;
        assert!(
            !got.cache_status().contains("stored"),
            "{}",
            got.cache_status()
        );
    }
    assert_eq!(
        o.state.count(),
        3,
        "the responses to requests with a Cookie were not stored"
    );
}

#[test]
fn site_tables_and_their_errors() {
    let err = |toml: &str| {
        Config::from_toml(toml)
            .and_then(|c| c.builder())
            .and_then(|b| b.build())
            .unwrap_err()
            .to_string()
    };
    let e = err("[[site]]\nname = \"a\"\nupstream = \"http://127.0.0.1:1\"\n");
    assert!(e.contains("site `a`") && e.contains("no host"), "{e}");
    let e = err("[[site]]\nname = \"a\"\nhost = [\"a.test\"]\n");
    assert!(e.contains("site `a`") && e.contains("no upstream"), "{e}");
    let e = err(
        "[[site]]\nname = \"a\"\nhost = [\"x.test\"]\nupstream = \"http://127.0.0.1:1\"\n\
         [[site]]\nname = \"b\"\nhost = [\"X.test\"]\nupstream = \"http://127.0.0.1:2\"\n",
    );
    assert!(
        e.contains("host `x.test` is in two sites, `a` and `b`"),
        "{e}"
    );
    let e = err("upstream = \"http://127.0.0.1:1\"\n\
         [[site]]\nhost = [\"x.test\"]\nupstream = \"http://127.0.0.1:2\"\n");
    assert!(e.contains("not both"), "{e}");
    let e = err(
        "[[site]]\nname = \"a\"\nhost = [\"a.test\"]\nupstream = \"http://127.0.0.1:1\"\ndefault = true\n\
         [[site]]\nname = \"b\"\nhost = [\"b.test\"]\nupstream = \"http://127.0.0.1:2\"\ndefault = true\n",
    );
    assert!(e.contains("only one site can be the default"), "{e}");

    let ok = Config::from_toml(
        "key-drop-query = [\"utm_*\"]\n\
         [[site]]\nhost = [\"a.test\"]\nupstream = \"http://127.0.0.1:1\"\n\
         path-prefix = \"/api\"\nkey-cookies = [\"currency\"]\nkey-sort-query = true\n",
    )
    .unwrap();
    assert!(ok.builder().unwrap().build().is_ok());
}
