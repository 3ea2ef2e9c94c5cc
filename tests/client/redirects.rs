//! Redirects are followed outside the cache: each hop is a request of its own, stored under its
//! own URL (RFC 9111 §2: the key is the target URI), so a stored `301` sends the next request
//! straight to its target.

use crate::origin::{self, Listen, handler, reply};
use crate::{client, is_hit, is_stored, memory, status};

fn site() -> origin::Handler {
    handler(|req| match req.uri().path() {
        "/old" => reply(
            301,
            &[("location", "/new"), ("cache-control", "max-age=3600")],
            "",
        ),
        "/moved" => reply(308, &[("location", "/new")], ""),
        "/temp" => reply(302, &[("location", "/new")], ""),
        "/new" => reply(200, &[("cache-control", "max-age=60")], "the new page"),
        "/loop-a" => reply(302, &[("location", "/loop-b")], ""),
        "/loop-b" => reply(302, &[("location", "/loop-a")], ""),
        _ => reply(404, &[], ""),
    })
}

#[tokio::test]
async fn rfc9111_2_each_hop_of_a_redirect_is_stored_under_its_own_url() {
    let origin = origin::start(Listen::http(), None, site()).await;
    let client = client(&memory());

    let res = client.get(&origin.http("/old")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.into_body().text().await.unwrap(), "the new page");
    assert_eq!((origin.count("/old"), origin.count("/new")), (1, 1));
    assert!(is_stored(&client, &origin.http("/old")).await, "the 301");
    assert!(is_stored(&client, &origin.http("/new")).await, "its target");

    // Both hops from the cache: the origin hears nothing more.
    let res = client.get(&origin.http("/old")).await.unwrap();
    assert!(is_hit(&res), "{}", status(&res));
    assert_eq!(res.into_body().text().await.unwrap(), "the new page");
    assert_eq!((origin.count("/old"), origin.count("/new")), (1, 1));
}

#[tokio::test]
async fn rfc9111_4_2_2_redirects_with_no_freshness_are_asked_again_but_not_their_target() {
    let origin = origin::start(Listen::http(), None, site()).await;
    let client = client(&memory());
    for _ in 0..2 {
        let res = client.get(&origin.http("/moved")).await.unwrap();
        assert_eq!(res.into_body().text().await.unwrap(), "the new page");
        let res = client.get(&origin.http("/temp")).await.unwrap();
        assert_eq!(res.into_body().text().await.unwrap(), "the new page");
    }
    // A 308 is heuristically cacheable (RFC 9110 §15.4.9), but with no `Last-Modified` a
    // heuristic has nothing to go on; a 302 never is.
    assert_eq!(
        origin.count("/moved"),
        2,
        "a 308 without freshness is asked again"
    );
    assert_eq!(
        origin.count("/temp"),
        2,
        "a 302 without freshness is asked again"
    );
    assert!(!is_stored(&client, &origin.http("/temp")).await);
    assert_eq!(origin.count("/new"), 1, "the target was stored once");
}

#[tokio::test]
async fn a_redirect_loop_stops_at_the_limit_with_an_error() {
    let origin = origin::start(Listen::http(), None, site()).await;
    let client = cachio::Client::builder("unused")
        .store(memory())
        .max_redirects(3)
        .build()
        .unwrap();
    let err = client.get(&origin.http("/loop-a")).await.unwrap_err();
    assert!(err.is_redirect(), "{err:?}");
    assert!(err.to_string().contains("more than 3 redirects"), "{err}");
    assert_eq!(
        origin.count("/loop-a") + origin.count("/loop-b"),
        4,
        "the first and 3 more"
    );
}

#[tokio::test]
async fn no_redirect_is_followed_when_the_limit_is_zero() {
    let origin = origin::start(Listen::http(), None, site()).await;
    let client = cachio::Client::builder("unused")
        .store(memory())
        .max_redirects(0)
        .build()
        .unwrap();
    let res = client.get(&origin.http("/old")).await.unwrap();
    assert_eq!(res.status(), 301);
    assert_eq!(res.headers()["location"], "/new");
    assert_eq!(origin.count("/new"), 0);
}
