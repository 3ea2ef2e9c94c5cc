//! RFC 9111 §3 (storing responses), §3.1 (storing header fields), §3.5 (authenticated requests).

use crate::common;

use cachio_core::policy::{NotStorable, Policy};
use common::*;
use http::{HeaderMap, Method, StatusCode, Version};

fn storable(
    policy: &Policy,
    method: Method,
    req: &[(&str, &str)],
    status: u16,
    resp: &[(&str, &str)],
) -> Result<(), NotStorable> {
    policy.storable(
        &method,
        &headers(req),
        StatusCode::from_u16(status).unwrap(),
        &headers(resp),
    )
}

fn get(policy: &Policy, status: u16, resp: &[(&str, &str)]) -> Result<(), NotStorable> {
    storable(policy, Method::GET, &[], status, resp)
}

#[test]
fn rfc9111_3_only_understood_methods_are_stored() {
    let p = Policy::private();
    let resp = [("cache-control", "max-age=60")];
    assert_eq!(get(&p, 200, &resp), Ok(()));
    for m in [Method::POST, Method::HEAD, Method::PUT, Method::DELETE] {
        assert_eq!(
            storable(&p, m.clone(), &[], 200, &resp),
            Err(NotStorable::Method),
            "{m}"
        );
    }
}

#[test]
fn rfc9111_3_status_must_be_final() {
    let p = Policy::shared();
    let resp = [("cache-control", "max-age=60")];
    assert_eq!(get(&p, 100, &resp), Err(NotStorable::Status));
    assert_eq!(get(&p, 103, &resp), Err(NotStorable::Status));
}

#[test]
fn rfc9110_15_a_status_code_outside_100_to_599_is_invalid_and_not_stored() {
    let p = Policy::shared();
    let resp = [("cache-control", "max-age=60")];
    assert_eq!(get(&p, 600, &resp), Err(NotStorable::Status));
    assert_eq!(get(&p, 999, &resp), Err(NotStorable::Status));
    assert_eq!(get(&p, 599, &resp), Ok(()));
}

#[test]
fn rfc9111_3_partial_and_not_modified_are_not_understood_so_not_stored() {
    let p = Policy::shared();
    let resp = [("cache-control", "max-age=60")];
    assert_eq!(get(&p, 206, &resp), Err(NotStorable::Status));
    assert_eq!(get(&p, 304, &resp), Err(NotStorable::Status));
}

#[test]
fn rfc9111_3_heuristically_cacheable_status_needs_no_explicit_freshness() {
    let p = Policy::shared();
    for status in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
        assert_eq!(get(&p, status, &[]), Ok(()), "{status}");
    }
    for status in [201, 302, 303, 307, 400, 403, 500, 502, 503, 504] {
        assert_eq!(get(&p, status, &[]), Err(NotStorable::Status), "{status}");
    }
}

#[test]
fn rfc9111_3_explicit_freshness_makes_other_final_statuses_storable() {
    let p = Policy::shared();
    assert_eq!(get(&p, 500, &[("cache-control", "max-age=5")]), Ok(()));
    assert_eq!(get(&p, 302, &[("expires", &date(60))]), Ok(()));
    assert_eq!(get(&p, 307, &[("cache-control", "public")]), Ok(()));
    assert_eq!(get(&p, 303, &[("cache-control", "s-maxage=5")]), Ok(()));
}

#[test]
fn rfc9111_3_an_invalid_expires_still_counts_as_present() {
    // §3 asks for "an Expires header field"; §5.3 makes an invalid one mean "already expired".
    let p = Policy::shared();
    assert_eq!(get(&p, 302, &[("expires", "0")]), Ok(()));
    let m = stored_status(
        &p,
        StatusCode::FOUND,
        &[("date", &date(0)), ("expires", "0")],
        0,
        0,
    );
    assert_eq!(p.freshness_lifetime(&m), secs(0));
}

#[test]
fn rfc9111_3_s_maxage_is_explicit_freshness_only_for_a_shared_cache() {
    let resp = [("cache-control", "s-maxage=60")];
    assert_eq!(get(&Policy::shared(), 302, &resp), Ok(()));
    assert_eq!(
        get(&Policy::private(), 302, &resp),
        Err(NotStorable::Status)
    );
}

#[test]
fn rfc9111_3_private_directive_makes_a_private_cache_store_it() {
    let resp = [("cache-control", "private")];
    assert_eq!(get(&Policy::private(), 302, &resp), Ok(()));
    assert_eq!(
        get(&Policy::shared(), 302, &resp),
        Err(NotStorable::Private)
    );
}

#[test]
fn rfc9111_3_qualified_private_is_a_private_directive_too() {
    let resp = [("cache-control", "private=\"x-user\"")];
    assert_eq!(get(&Policy::private(), 302, &resp), Ok(()));
}

#[test]
fn rfc9111_5_2_2_5_response_no_store_is_never_stored() {
    for p in [Policy::private(), Policy::shared()] {
        assert_eq!(
            get(&p, 200, &[("cache-control", "max-age=60, no-store")]),
            Err(NotStorable::NoStore)
        );
        assert_eq!(
            get(
                &p,
                200,
                &[("cache-control", "public"), ("cache-control", "NO-STORE")]
            ),
            Err(NotStorable::NoStore)
        );
    }
}

#[test]
fn rfc9111_5_2_1_5_request_no_store_prevents_storing() {
    let p = Policy::private();
    assert_eq!(
        storable(
            &p,
            Method::GET,
            &[("cache-control", "no-store")],
            200,
            &[("cache-control", "max-age=60")]
        ),
        Err(NotStorable::NoStore)
    );
}

#[test]
fn rfc9111_5_2_2_7_unqualified_private_is_not_stored_by_a_shared_cache() {
    let resp = [("cache-control", "private, max-age=60")];
    assert_eq!(
        get(&Policy::shared(), 200, &resp),
        Err(NotStorable::Private)
    );
    assert_eq!(get(&Policy::private(), 200, &resp), Ok(()));
}

#[test]
fn rfc9111_5_2_2_7_qualified_private_lets_a_shared_cache_store_the_rest() {
    let d = date(0);
    let resp = [
        ("date", d.as_str()),
        (
            "cache-control",
            "max-age=60, private=\"X-User, set-cookie\"",
        ),
        ("x-user", "alice"),
        ("content-type", "text/plain"),
    ];
    let shared = Policy::shared();
    assert_eq!(get(&shared, 200, &resp), Ok(()));
    let m = stored_at(&shared, &resp, 0, 0);
    assert!(!m.headers().contains_key("x-user"));
    assert_eq!(values(m.headers(), "content-type"), ["text/plain"]);
    // A private cache keeps them.
    let m = stored_at(&Policy::private(), &resp, 0, 0);
    assert_eq!(values(m.headers(), "x-user"), ["alice"]);
}

#[test]
fn rfc9111_5_2_2_4_qualified_no_cache_fields_are_not_stored_by_any_cache() {
    let resp = [
        ("cache-control", "max-age=60, no-cache=\"Set-Cookie\""),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
        ("etag", "\"v1\""),
    ];
    for p in [Policy::private(), Policy::shared().store_set_cookie(true)] {
        assert_eq!(get(&p, 200, &resp), Ok(()));
        let m = stored_at(&p, &resp, 0, 0);
        assert!(!m.headers().contains_key("set-cookie"));
        assert_eq!(values(m.headers(), "etag"), ["\"v1\""]);
        // The qualified form does not force revalidation of the rest.
        let e = p.evaluate(&Default::default(), &m, t(10));
        assert_eq!(e.verdict, cachio_core::policy::Verdict::Fresh);
    }
}

#[test]
fn rfc9111_5_2_2_3_must_understand_overrides_no_store_for_an_understood_status() {
    let p = Policy::shared();
    let resp = [("cache-control", "must-understand, no-store, max-age=60")];
    assert_eq!(get(&p, 200, &resp), Ok(()));
    assert_eq!(get(&p, 404, &resp), Ok(()));
}

#[test]
fn rfc9111_5_2_2_3_must_understand_with_an_unknown_status_is_not_stored() {
    let p = Policy::shared();
    assert_eq!(
        get(
            &p,
            299,
            &[("cache-control", "must-understand, no-store, max-age=60")]
        ),
        Err(NotStorable::MustUnderstand)
    );
    assert_eq!(
        get(&p, 418, &[("cache-control", "must-understand, max-age=60")]),
        Err(NotStorable::MustUnderstand)
    );
    // Partial content is not implemented, so it is not understood either.
    assert_eq!(
        get(&p, 206, &[("cache-control", "must-understand, max-age=60")]),
        Err(NotStorable::Status)
    );
}

#[test]
fn rfc9111_3_5_authorization_prevents_shared_storage() {
    let req = [("authorization", "Bearer x")];
    let resp = [("cache-control", "max-age=60")];
    assert_eq!(
        storable(&Policy::shared(), Method::GET, &req, 200, &resp),
        Err(NotStorable::Authorization)
    );
    assert_eq!(
        storable(&Policy::private(), Method::GET, &req, 200, &resp),
        Ok(())
    );
}

#[test]
fn rfc9111_3_5_public_s_maxage_and_must_revalidate_allow_authorized_responses() {
    let req = [("authorization", "Bearer x")];
    // Each with a lifetime: without one a shared cache does not store it (§4.2.2, below).
    for cc in [
        "public, max-age=60",
        "s-maxage=60",
        "must-revalidate, max-age=60",
    ] {
        assert_eq!(
            storable(
                &Policy::shared(),
                Method::GET,
                &req,
                200,
                &[("cache-control", cc)]
            ),
            Ok(()),
            "{cc}"
        );
    }
    // proxy-revalidate is not one of them.
    assert_eq!(
        storable(
            &Policy::shared(),
            Method::GET,
            &req,
            200,
            &[("cache-control", "proxy-revalidate, max-age=60")]
        ),
        Err(NotStorable::Authorization)
    );
}

#[test]
fn rfc9111_4_2_2_a_shared_cache_gives_no_heuristic_freshness_to_a_response_to_credentials() {
    let shared = Policy::shared();
    let lm = ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT");
    let public = ("cache-control", "public");
    // Without credentials: storable, with heuristic freshness.
    assert_eq!(get(&shared, 200, &[lm]), Ok(()));
    let cookie = [("cookie", "session=1")];
    let auth = [("authorization", "Bearer x")];
    // (`Authorization` without `public` is refused earlier, by §3.5.)
    type Fields<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Fields<'_>, Fields<'_>); 6] = [
        (&cookie, &[lm]),
        (&cookie, &[("etag", "\"v1\"")]),
        (&cookie, &[public]),
        (&cookie, &[public, lm]),
        (&auth, &[public]),
        (&auth, &[public, lm]),
    ];
    for (req, resp) in cases {
        assert_eq!(
            storable(&shared, Method::GET, req, 200, resp),
            Err(NotStorable::Credentials),
            "{req:?} {resp:?}"
        );
    }
    // A lifetime the origin states is enough.
    for req in [&cookie, &auth] {
        for resp in [
            &[("cache-control", "public, max-age=60")][..],
            &[("cache-control", "s-maxage=60")],
            &[public, ("expires", "Mon, 01 Jan 2024 00:00:00 GMT")],
            &[("cdn-cache-control", "public, max-age=60")],
        ] {
            assert_eq!(
                storable(&shared, Method::GET, req, 200, resp),
                Ok(()),
                "{req:?} {resp:?}"
            );
        }
    }
    // A private cache is one user's: its heuristics stay.
    assert_eq!(
        storable(&Policy::private(), Method::GET, &cookie, 200, &[lm]),
        Ok(())
    );
    assert_eq!(NotStorable::Credentials.as_str(), "credentials");
}

#[test]
fn rfc9111_4_1_vary_star_is_never_stored() {
    let p = Policy::private();
    assert_eq!(
        get(&p, 200, &[("cache-control", "max-age=60"), ("vary", "*")]),
        Err(NotStorable::VaryStar)
    );
    assert_eq!(
        get(
            &p,
            200,
            &[("vary", "accept"), ("vary", "Accept-Language, *")]
        ),
        Err(NotStorable::VaryStar)
    );
}

#[test]
fn rfc9111_3_shared_cache_skips_set_cookie_unless_configured() {
    let resp = [("cache-control", "max-age=60"), ("set-cookie", "s=1")];
    assert_eq!(
        get(&Policy::shared(), 200, &resp),
        Err(NotStorable::SetCookie)
    );
    assert_eq!(
        get(&Policy::shared().store_set_cookie(true), 200, &resp),
        Ok(())
    );
    assert_eq!(get(&Policy::private(), 200, &resp), Ok(()));
}

#[test]
fn rfc9111_3_1_connection_and_the_fields_it_lists_are_not_stored() {
    let resp = [
        ("connection", "close, X-Hop"),
        ("x-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("te", "trailers"),
        ("trailer", "x-checksum"),
        ("proxy-authenticate", "Basic"),
        ("proxy-authentication-info", "x"),
        ("x-end-to-end", "kept"),
    ];
    let m = stored_at(&Policy::shared(), &resp, 0, 0);
    for gone in [
        "connection",
        "x-hop",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "te",
        "trailer",
        "proxy-authenticate",
        "proxy-authentication-info",
    ] {
        assert!(!m.headers().contains_key(gone), "{gone} was stored");
    }
    assert_eq!(values(m.headers(), "x-end-to-end"), ["kept"]);
}

#[test]
fn rfc9111_3_1_every_other_field_is_stored_whole_with_multi_valued_fields_kept() {
    // http-cache-semantics keeps only the last Set-Cookie and Link lines: we keep them all.
    let d = date(0);
    let resp = [
        ("date", d.as_str()),
        ("set-cookie", "a=1; Path=/"),
        ("link", "</a.css>; rel=preload"),
        ("set-cookie", "b=2, c=3"),
        ("link", "</b.js>; rel=preload"),
        ("x-unknown-extension", "v"),
        ("cache-control", "max-age=60"),
    ];
    let m = stored_at(&Policy::private(), &resp, 0, 0);
    assert_eq!(
        values(m.headers(), "set-cookie"),
        ["a=1; Path=/", "b=2, c=3"]
    );
    assert_eq!(
        values(m.headers(), "link"),
        ["</a.css>; rel=preload", "</b.js>; rel=preload"]
    );
    assert_eq!(values(m.headers(), "x-unknown-extension"), ["v"]);
    assert_eq!(m.headers().len(), resp.len());
}

#[test]
fn rfc9110_6_6_1_a_missing_date_is_added_as_an_imf_fixdate() {
    let m = stored_at(&Policy::private(), &[("cache-control", "max-age=60")], 0, 3);
    // T0 + 3 = 2023-11-14T22:13:23Z; http-cache-semantics writes "+0000" instead of "GMT".
    assert_eq!(
        values(m.headers(), "date"),
        ["Tue, 14 Nov 2023 22:13:23 GMT"]
    );
}

#[test]
fn rfc9110_6_6_1_an_invalid_date_is_replaced_by_the_receipt_time() {
    let m = stored_at(
        &Policy::private(),
        &[("date", "yesterday"), ("cache-control", "max-age=60")],
        0,
        3,
    );
    assert_eq!(values(m.headers(), "date"), [date(3)]);
}

#[test]
fn rfc9110_6_6_1_a_valid_date_is_kept() {
    let m = stored_at(
        &Policy::private(),
        &[("date", &date_before(5)), ("cache-control", "max-age=60")],
        0,
        3,
    );
    assert_eq!(values(m.headers(), "date"), [date_before(5)]);
}

#[test]
fn rfc9111_4_1_the_request_values_vary_names_are_recorded() {
    let p = Policy::private();
    let req = headers(&[
        ("accept-encoding", "gzip ,br"),
        ("accept-language", "en"),
        ("accept-language", "de"),
    ]);
    let resp = headers(&[
        ("vary", "Accept-Encoding, Accept-Language"),
        ("vary", "x-absent"),
    ]);
    let m = p.to_meta(&req, StatusCode::OK, Version::HTTP_11, &resp, t(0), t(0));
    let got: Vec<Option<&str>> = m
        .vary_values()
        .iter()
        .map(|v| v.as_ref().map(|v| v.to_str().unwrap()))
        .collect();
    assert_eq!(got, [Some("gzip, br"), Some("en, de"), None]);
}

#[test]
fn rfc9111_3_1_stored_status_and_version_are_kept() {
    let p = Policy::private();
    let m = p.to_meta(
        &HeaderMap::new(),
        StatusCode::GONE,
        Version::HTTP_2,
        &headers(&[]),
        t(0),
        t(1),
    );
    assert_eq!(m.status(), StatusCode::GONE);
    assert_eq!(m.version(), Version::HTTP_2);
    assert_eq!(m.request_time(), t(0));
    assert_eq!(m.response_time(), t(1));
}
