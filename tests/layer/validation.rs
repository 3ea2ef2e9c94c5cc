//! RFC 9111 §4.3: validation, 304 merging, and conditional requests answered from the cache.

use crate::support;

use support::{Harness, http_date, ok, reply};

#[tokio::test]
async fn rfc9111_4_3_1_stale_etag_sends_if_none_match_and_304_serves_stored() {
    let h = Harness::private(|s| {
        if s.n == 1 {
            ok("the stored body")
                .cc("max-age=10")
                .header("etag", "\"v1\"")
                .header("x-version", "1")
        } else {
            reply(304)
                .header("etag", "\"v1\"")
                .cc("max-age=100")
                .header("x-version", "2")
                .header("x-new", "added")
        }
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    let res = h.get("/r").await;
    assert_eq!(h.count(), 2);
    let seen = h.origin.last();
    assert_eq!(seen.header("if-none-match"), Some("\"v1\""));
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "the stored body");
    assert_eq!(
        res.header("x-version"),
        Some("2"),
        "304 fields replace stored ones"
    );
    assert_eq!(res.header("x-new"), Some("added"), "304 fields are added");
    assert_eq!(res.header("cache-control"), Some("max-age=100"));
    assert_eq!(res.header("content-length"), Some("15"));
    assert_eq!(
        res.cache_status(),
        "cachio; fwd=stale; fwd-status=304; ttl=100"
    );
    // The entry is fresh again with the new lifetime.
    h.advance(90);
    let hit = h.get("/r").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(hit.text(), "the stored body");
    assert_eq!(hit.header("x-new"), Some("added"));
    assert_eq!(hit.age(), Some(90));
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_4_3_1_last_modified_sends_if_modified_since() {
    let lm = http_date(-3600);
    let h = Harness::private(move |s| {
        if s.header("if-modified-since").is_some() {
            // The 304 names the validator it selects (RFC 9111 §4.3.4).
            reply(304).cc("max-age=10").header("last-modified", &lm)
        } else {
            ok("body").cc("max-age=10").header("last-modified", &lm)
        }
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    let res = h.get("/r").await;
    assert_eq!(h.count(), 2);
    assert_eq!(
        h.origin.last().header("if-modified-since"),
        Some(http_date(-3600).as_str())
    );
    assert_eq!(h.origin.last().header("if-none-match"), None);
    assert_eq!(res.text(), "body");
    assert!(
        res.cache_status().contains("fwd-status=304"),
        "{}",
        res.cache_status()
    );
}

#[tokio::test]
async fn rfc9111_4_3_3_full_response_replaces_entry() {
    let h = Harness::private(|s| {
        let body = if s.n == 1 {
            "version one"
        } else {
            "version two"
        };
        ok(body)
            .cc("max-age=10")
            .header("etag", &format!("\"v{}\"", s.n.min(2)))
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    let res = h.get("/r").await;
    assert_eq!(h.origin.last().header("if-none-match"), Some("\"v1\""));
    assert_eq!(res.text(), "version two");
    assert_eq!(
        res.cache_status(),
        "cachio; fwd=stale; fwd-status=200; stored"
    );
    let hit = h.get("/r").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(hit.text(), "version two");
    assert_eq!(hit.header("etag"), Some("\"v2\""));
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_4_3_2_client_if_none_match_on_fresh_entry_answered_from_cache() {
    let h = Harness::private(|_| ok("body").cc("max-age=100").header("etag", "\"abc\"")).await;
    h.get("/r").await;
    // Weak comparison: W/"abc" matches "abc".
    for tag in ["\"abc\"", "W/\"abc\"", "\"zzz\", W/\"abc\"", "*"] {
        let res = h.send(h.req("/r").header("if-none-match", tag)).await;
        assert_eq!(res.status, 304, "{tag}");
        assert!(res.body.is_empty());
        assert_eq!(res.header("etag"), Some("\"abc\""));
        assert!(res.is_hit(), "{}", res.cache_status());
    }
    let res = h
        .send(h.req("/r").header("if-none-match", "\"other\""))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "body");
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn rfc9111_4_3_2_client_if_modified_since_on_fresh_entry_answered_from_cache() {
    let h = Harness::private(|_| {
        ok("body")
            .cc("max-age=100")
            .header("last-modified", &http_date(-100))
    })
    .await;
    h.get("/r").await;
    let res = h
        .send(h.req("/r").header("if-modified-since", &http_date(-50)))
        .await;
    assert_eq!(res.status, 304);
    let res = h
        .send(h.req("/r").header("if-modified-since", &http_date(-200)))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "body");
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn rfc9111_4_3_2_client_condition_not_forwarded_when_cache_validates() {
    // The client's own validator is for its copy; the cache validates its own entry.
    let h = Harness::private(|s| {
        if s.header("if-none-match") == Some("\"v1\"") {
            reply(304).header("etag", "\"v1\"").cc("max-age=10")
        } else {
            ok("body").header("etag", "\"v1\"").cc("max-age=10")
        }
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    let res = h.send(h.req("/r").header("if-none-match", "\"old\"")).await;
    assert_eq!(h.origin.last().header("if-none-match"), Some("\"v1\""));
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "body");
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_3_2_multi_valued_fields_after_304_merge() {
    let h = Harness::private(|s| match s.n {
        1 => ok("x")
            .cc("max-age=10")
            .header("etag", "\"v1\"")
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .header("link", "</a.css>; rel=preload")
            .header("link", "</b.js>; rel=preload"),
        // A 304 without the multi-valued fields keeps them whole.
        2 => reply(304).header("etag", "\"v1\"").cc("max-age=10"),
        // A 304 with new lines for one of them replaces all of its lines.
        _ => reply(304)
            .header("etag", "\"v1\"")
            .cc("max-age=10")
            .header("link", "</c.css>; rel=preload")
            .header("link", "</d.js>; rel=preload"),
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    let res = h.get("/r").await;
    assert!(res.cache_status().contains("fwd-status=304"));
    assert_eq!(res.all("set-cookie"), ["a=1", "b=2"]);
    assert_eq!(
        res.all("link"),
        ["</a.css>; rel=preload", "</b.js>; rel=preload"]
    );
    let hit = h.get("/r").await;
    assert!(hit.is_hit());
    assert_eq!(hit.all("set-cookie"), ["a=1", "b=2"]);
    assert_eq!(
        hit.all("link"),
        ["</a.css>; rel=preload", "</b.js>; rel=preload"]
    );
    h.advance(20);
    let res = h.get("/r").await;
    assert_eq!(h.count(), 3);
    assert_eq!(res.all("set-cookie"), ["a=1", "b=2"]);
    assert_eq!(
        res.all("link"),
        ["</c.css>; rel=preload", "</d.js>; rel=preload"]
    );
    let hit = h.get("/r").await;
    assert!(hit.is_hit());
    assert_eq!(
        hit.all("link"),
        ["</c.css>; rel=preload", "</d.js>; rel=preload"]
    );
    assert_eq!(h.count(), 3);
}

#[tokio::test]
async fn rfc9111_3_2_a_304_updates_content_encoding_and_keeps_the_stored_bytes() {
    let h = Harness::private(|s| match s.n {
        1 => ok("stored bytes")
            .cc("max-age=10")
            .header("etag", "\"v1\"")
            .header("content-encoding", "x-old"),
        _ => reply(304)
            .header("etag", "\"v1\"")
            .cc("max-age=10")
            .header("content-encoding", "x-new"),
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    let res = h.get("/r").await;
    assert!(res.cache_status().contains("fwd-status=304"));
    assert_eq!(res.all("content-encoding"), ["x-new"]);
    assert_eq!(res.text(), "stored bytes");
    let hit = h.get("/r").await;
    assert!(hit.is_hit());
    assert_eq!(hit.all("content-encoding"), ["x-new"]);
    assert_eq!(hit.text(), "stored bytes");
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_4_3_4_304_for_another_representation_refetches() {
    let h = Harness::private(|s| match s.n {
        1 => ok("one").cc("max-age=10").header("etag", "\"a\""),
        // A 304 whose strong validator is not the stored one does not select it.
        2 => reply(304).header("etag", "\"b\"").cc("max-age=10"),
        _ => ok("two").cc("max-age=10").header("etag", "\"b\""),
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    let res = h.get("/r").await;
    assert_eq!(h.count(), 3);
    assert_eq!(
        h.origin.last().header("if-none-match"),
        None,
        "the retry is unconditional"
    );
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "two");
    let hit = h.get("/r").await;
    assert!(hit.is_hit());
    assert_eq!(hit.text(), "two");
}

#[tokio::test]
async fn rfc9111_4_3_4_a_304_without_validators_answers_the_cache_s_own_validation() {
    // Against RFC 9110 §15.4.5 the origin leaves the validators out of its 304s. The cache's
    // request carried the stored response's own validators, so the 304 can only be about it.
    let h = Harness::private(|s| match s.n {
        1 => ok("stored")
            .cc("max-age=10")
            .header("etag", "\"a\"")
            .header("last-modified", &http_date(-3600)),
        _ => reply(304).cc("max-age=100").header("x-fresh", "yes"),
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    let res = h.get("/r").await;
    assert_eq!(h.count(), 2, "no second, unconditional request");
    assert_eq!(h.origin.last().header("if-none-match"), Some("\"a\""));
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "stored");
    assert_eq!(res.header("x-fresh"), Some("yes"));
    assert_eq!(
        res.header("etag"),
        Some("\"a\""),
        "the stored validator is kept"
    );
    // Freshened with the 304's lifetime.
    h.advance(90);
    let hit = h.get("/r").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(hit.text(), "stored");
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_4_3_head_on_stale_entry_validates_with_get() {
    let h = Harness::private(|s| {
        if s.header("if-none-match").is_some() {
            reply(304).header("etag", "\"v1\"").cc("max-age=10")
        } else {
            ok("body").header("etag", "\"v1\"").cc("max-age=10")
        }
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    let head = h.send(h.req("/r").method("HEAD")).await;
    assert_eq!(h.count(), 2);
    assert_eq!(h.origin.last().method, "GET");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let hit = h.get("/r").await;
    assert!(hit.is_hit());
    assert_eq!(hit.text(), "body");
}

#[tokio::test]
async fn rfc9111_4_3_3_head_on_stale_entry_with_new_representation() {
    // The cache validates with a GET; a full 200 answers the HEAD without its body and replaces
    // the stored response (it is a response to a GET).
    let h = Harness::private(|s| {
        let body = if s.n == 1 {
            "version one"
        } else {
            "version two!"
        };
        ok(body)
            .cc("max-age=10")
            .header("etag", &format!("\"v{}\"", s.n))
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    let head = h.send(h.req("/r").method("HEAD")).await;
    assert_eq!(h.origin.last().method, "GET");
    assert_eq!(head.status, 200);
    assert!(
        head.body.is_empty(),
        "a HEAD response has no body: {:?}",
        head.body
    );
    assert_eq!(head.header("etag"), Some("\"v2\""));
    assert_eq!(head.header("content-length"), Some("12"));
    // The body is stored by a task of its own: wait for it, without asking the origin.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let hit = h
            .send(
                h.req("/r")
                    .header("cache-control", "only-if-cached, max-stale"),
            )
            .await;
        assert!(hit.is_hit(), "{}", hit.cache_status());
        if hit.text() == "version two!" {
            break;
        }
        assert_eq!(hit.text(), "version one");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new response was never stored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn a_hot_entry_serves_what_a_304_merged_and_then_what_replaced_it() {
    // The memory store keeps the header map of an entry that is hit; a 304 merge and a new
    // response must both show through it.
    let h = Harness::private(|s| match s.n {
        1 => ok("first")
            .cc("max-age=10")
            .header("etag", "\"v1\"")
            .header("x-version", "1"),
        2 => reply(304)
            .header("etag", "\"v1\"")
            .cc("max-age=10")
            .header("x-version", "2"),
        _ => ok("second")
            .cc("max-age=10")
            .header("etag", "\"v2\"")
            .header("x-version", "3"),
    })
    .await;
    h.get("/r").await;
    for age in 0..3 {
        h.advance(1);
        let hit = h.get("/r").await;
        assert!(hit.is_hit(), "{}", hit.cache_status());
        assert_eq!(hit.header("x-version"), Some("1"));
        assert_eq!(hit.age(), Some(age + 1));
    }
    h.advance(20);
    assert_eq!(h.get("/r").await.header("x-version"), Some("2"));
    for _ in 0..2 {
        let hit = h.get("/r").await;
        assert!(hit.is_hit(), "{}", hit.cache_status());
        assert_eq!(hit.header("x-version"), Some("2"));
        assert_eq!(hit.text(), "first");
        assert_eq!(hit.age(), Some(0));
    }
    h.advance(20);
    let res = h.get("/r").await;
    assert_eq!(res.text(), "second");
    for _ in 0..2 {
        let hit = h.get("/r").await;
        assert!(hit.is_hit(), "{}", hit.cache_status());
        assert_eq!(hit.header("x-version"), Some("3"));
        assert_eq!(hit.header("etag"), Some("\"v2\""));
        assert_eq!(hit.text(), "second");
    }
    assert_eq!(h.count(), 3);
}

/// A `304` that sets a cookie answers one user's revalidation: in a shared cache the cookie goes
/// to that user and is not merged into the stored response, which later hits serve to everyone
/// (RFC 9111 §3.2 with §3: what may not be stored is not stored by an update either).
#[tokio::test]
async fn rfc9111_3_2_shared_a_304_setting_a_cookie_is_not_merged_into_the_stored_response() {
    let h = Harness::shared(|s| {
        if s.n == 2 {
            reply(304)
                .header("etag", "\"v1\"")
                .cc("max-age=100")
                .header("set-cookie", "session=user-a")
        } else {
            ok("body").cc("max-age=10").header("etag", "\"v1\"")
        }
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    let a = h.get("/r").await;
    assert_eq!(h.count(), 2);
    assert_eq!(a.text(), "body");
    assert_eq!(
        a.header("set-cookie"),
        Some("session=user-a"),
        "the user's own cookie"
    );
    let b = h.get("/r").await;
    assert_eq!(
        b.header("set-cookie"),
        None,
        "another user got the cookie: {b:?}"
    );
    assert_eq!(b.text(), "body");
    // The merged response was not stored: the next request went to the origin, and what that
    // stored (without a cookie) serves the one after.
    assert_eq!(h.count(), 3);
    let c = h.get("/r").await;
    assert!(c.is_hit(), "{}", c.cache_status());
    assert_eq!(c.header("set-cookie"), None);
}

/// The same for a `304` that makes the response `private`: a shared cache serves the merged
/// response to the user who asked, and no longer to others (RFC 9111 §5.2.2.7).
#[tokio::test]
async fn rfc9111_5_2_2_7_shared_a_304_marking_the_response_private_ends_its_reuse() {
    let h = Harness::shared(|s| {
        if s.n == 1 {
            ok("body").cc("max-age=10").header("etag", "\"v1\"")
        } else {
            reply(304)
                .header("etag", "\"v1\"")
                .cc("private, max-age=100")
        }
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    let a = h.get("/r").await;
    assert_eq!(a.text(), "body");
    assert_eq!(h.count(), 2);
    let b = h.get("/r").await;
    assert!(
        !b.is_hit(),
        "a private response was reused: {}",
        b.cache_status()
    );
    assert_eq!(h.count(), 3);
}

/// A stale response without validators cannot be validated with a conditional `GET`, so a `HEAD`
/// for it goes on as a `HEAD`, and its `200` freshens the stored response (RFC 9111 §4.3.5): the
/// new fields replace the stored ones, the fields it lacks are kept, and the body, which was not
/// sent again, serves the `GET` that follows.
#[tokio::test]
async fn rfc9111_4_3_5_a_head_freshens_a_stale_response_without_validators() {
    let h = Harness::private(|s| {
        if s.method == "HEAD" {
            ok("")
                .header("content-length", "5")
                .cc("max-age=1000")
                .header("x-version", "2")
        } else {
            ok("hello")
                .cc("max-age=10")
                .header("x-version", "1")
                .header("x-kept", "yes")
        }
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    let head = h.send(h.req("/r").method("HEAD")).await;
    assert_eq!(h.count(), 2);
    assert_eq!(
        h.origin.last().method,
        "HEAD",
        "the HEAD was passed on as a HEAD"
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("x-version"), Some("2"));
    assert_eq!(
        head.header("x-kept"),
        Some("yes"),
        "a stored field the HEAD lacks is kept"
    );
    assert!(
        head.cache_status().contains("fwd-status=200"),
        "{}",
        head.cache_status()
    );

    let get = h.get("/r").await;
    assert!(get.is_hit(), "{}", get.cache_status());
    assert_eq!(get.text(), "hello");
    assert_eq!(get.header("x-version"), Some("2"));
    assert_eq!(get.header("cache-control"), Some("max-age=1000"));
    assert_eq!(h.count(), 2);
}

/// A `HEAD` response whose `Content-Length` or validators differ from the stored response's
/// describes another representation: the stored response is not used again (RFC 9111 §4.3.5),
/// and the `HEAD` gets the origin's answer as it came.
#[tokio::test]
async fn rfc9111_4_3_5_a_head_for_another_representation_invalidates_the_stored_response() {
    for (field, value) in [("content-length", "6"), ("etag", "\"v2\"")] {
        let h = Harness::private(move |s| {
            if s.method == "HEAD" {
                ok("")
                    .header(field, value)
                    .cc("max-age=1000")
                    .header("x-version", "2")
            } else {
                ok("hello")
                    .cc("max-age=10")
                    .header("x-version", format!("{}", s.n).as_str())
            }
        })
        .await;
        h.get("/r").await;
        h.advance(20);
        let head = h.send(h.req("/r").method("HEAD")).await;
        assert_eq!(h.origin.last().method, "HEAD");
        assert_eq!(
            head.header(field),
            Some(value),
            "{field}: the origin's answer"
        );
        assert_eq!(head.header("x-version"), Some("2"));

        let get = h.get("/r").await;
        assert!(
            !get.is_hit(),
            "{field}: the old response was reused: {}",
            get.cache_status()
        );
        assert_eq!(h.count(), 3, "{field}");
        assert_eq!(get.header("x-version"), Some("3"));
    }
}

/// A `HEAD` response that sets a cookie answers one user: in a shared cache it is not merged into
/// the stored response (RFC 9111 §4.3.5 with §3), and the stored response is not kept either.
#[tokio::test]
async fn rfc9111_4_3_5_shared_a_head_setting_a_cookie_is_not_merged() {
    let h = Harness::shared(|s| {
        if s.method == "HEAD" {
            ok("")
                .header("content-length", "5")
                .cc("max-age=1000")
                .header("set-cookie", "session=user-a")
        } else {
            ok("hello").cc("max-age=10")
        }
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    let head = h.send(h.req("/r").method("HEAD")).await;
    assert_eq!(head.header("set-cookie"), Some("session=user-a"));
    let get = h.get("/r").await;
    assert_eq!(get.header("set-cookie"), None, "{get:?}");
    assert!(!get.is_hit(), "{}", get.cache_status());
}

/// A 304 answers for the response that was validated. When another request stored a new
/// response while the validation was on its way, the 304 must not merge the old response's
/// fields (its `ETag`, its `Content-Length`) into the new one: a hit would then serve the new
/// body under the old head (RFC 9111 §4.3.4: the 304 selects the stored response it validates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_3_4_a_304_does_not_update_a_response_stored_while_it_was_on_its_way() {
    use std::sync::Arc;
    let release = Arc::new(tokio::sync::Notify::new());
    let h = {
        let release = release.clone();
        Arc::new(
            Harness::private(move |s| match s.n {
                1 => ok("one").cc("max-age=10").header("etag", "\"v1\""),
                // The validation of "one": held until the new version is stored.
                2 => reply(304)
                    .header("etag", "\"v1\"")
                    .cc("max-age=100")
                    .hold(release.clone()),
                _ => ok("version two").cc("max-age=100").header("etag", "\"v2\""),
            })
            .await,
        )
    };
    h.get("/r").await;
    h.advance(20);
    let validating = {
        let h = h.clone();
        tokio::spawn(async move { h.get("/r").await })
    };
    support::eventually("the validation to reach the origin", || h.count() == 2).await;
    let reload = h
        .send(h.req("/r").extension(cachio::CacheMode::Reload))
        .await;
    assert_eq!(reload.text(), "version two");
    release.notify_one();
    let validated = validating.await.expect("the validating request");
    assert_eq!(
        validated.text(),
        "one",
        "the 304 answers for the response it validated"
    );

    let hit = h.get("/r").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(hit.text(), "version two");
    assert_eq!(
        hit.header("etag"),
        Some("\"v2\""),
        "the old head on the new body"
    );
    assert_eq!(hit.header("content-length"), Some("11"));
}
