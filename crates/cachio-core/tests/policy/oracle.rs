//! A differential test against `http-cache-semantics`, on ordinary cases where that crate is
//! right: storability, freshness lifetime and freshness at several instants must agree.
//!
//! It is deliberately not used where it is known to be wrong (multi-valued fields, 304 merges,
//! the `Date` format, `Vary` over several lines, RFC 5861 directives) or where it implements an
//! older rule (it has no apparent age, stores `POST`/`HEAD`, gives `proxy-revalidate` no
//! freshness, treats responses with cookies as stale in shared mode, and stores `Vary: *`
//! responses with a zero lifetime where we do not store them at all).

use crate::common;

use std::time::{Duration, SystemTime};

use cachio_core::policy::{Policy, Verdict};
use common::*;
use http::{Request, Response, StatusCode, Version};
use http_cache_semantics::{BeforeRequest, CacheOptions, CachePolicy};

struct Case {
    name: &'static str,
    shared: bool,
    req: Vec<(&'static str, String)>,
    status: u16,
    resp: Vec<(&'static str, String)>,
}

fn case(name: &'static str, shared: bool, status: u16, resp: &[(&'static str, &str)]) -> Case {
    Case {
        name,
        shared,
        req: Vec::new(),
        status,
        resp: resp.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
    }
}

fn with_req(mut c: Case, req: &[(&'static str, &str)]) -> Case {
    c.req = req.iter().map(|(n, v)| (*n, (*v).to_owned())).collect();
    c
}

fn both(name: &'static str, status: u16, resp: &[(&'static str, &str)]) -> [Case; 2] {
    [
        case(name, false, status, resp),
        case(name, true, status, resp),
    ]
}

/// Our policy, set up like the oracle: 10% heuristic without a cap.
fn ours(shared: bool) -> Policy {
    let p = if shared {
        Policy::shared()
    } else {
        Policy::private()
    };
    p.heuristic_percent(10)
        .heuristic_max(Duration::from_secs(100 * 365 * 86_400))
        .store_set_cookie(true)
}

fn theirs(c: &Case, req: &Request<()>, res: &Response<()>, now: SystemTime) -> CachePolicy {
    CachePolicy::new_options(
        req,
        res,
        now,
        CacheOptions {
            shared: c.shared,
            cache_heuristic: 0.1,
            ..CacheOptions::default()
        },
    )
}

fn cases() -> Vec<Case> {
    let d0 = date(0);
    let d = d0.as_str();
    let exp300 = date(300);
    let lm = date_before(10_000);
    let mut all = Vec::new();
    all.extend(both(
        "max-age",
        200,
        &[("date", d), ("cache-control", "max-age=60")],
    ));
    all.extend(both(
        "s-maxage over max-age",
        200,
        &[("date", d), ("cache-control", "max-age=60, s-maxage=600")],
    ));
    all.extend(both(
        "no-store",
        200,
        &[("date", d), ("cache-control", "no-store, max-age=60")],
    ));
    all.extend(both(
        "private",
        200,
        &[("date", d), ("cache-control", "private, max-age=60")],
    ));
    all.extend(both(
        "public",
        200,
        &[("date", d), ("cache-control", "public, max-age=60")],
    ));
    all.extend(both(
        "expires - date",
        200,
        &[("date", d), ("expires", &exp300)],
    ));
    all.extend(both(
        "invalid expires",
        200,
        &[("date", d), ("expires", "0")],
    ));
    all.extend(both(
        "max-age over expires",
        200,
        &[
            ("date", d),
            ("expires", &exp300),
            ("cache-control", "max-age=30"),
        ],
    ));
    all.extend(both(
        "heuristic",
        200,
        &[("date", d), ("last-modified", &lm)],
    ));
    all.extend(both(
        "no heuristic with expires",
        200,
        &[("date", d), ("last-modified", &lm), ("expires", "0")],
    ));
    all.extend(both(
        "age header",
        200,
        &[("date", d), ("age", "20"), ("cache-control", "max-age=60")],
    ));
    all.extend(both(
        "no-cache",
        200,
        &[("date", d), ("cache-control", "no-cache, max-age=60")],
    ));
    all.extend(both(
        "must-revalidate",
        200,
        &[
            ("date", d),
            ("cache-control", "must-revalidate, max-age=60"),
        ],
    ));
    for status in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
        all.extend(both(
            "heuristically cacheable status",
            status,
            &[("date", d), ("last-modified", &lm)],
        ));
    }
    for status in [302, 303, 307, 400, 403] {
        all.extend(both(
            "status not cacheable by default",
            status,
            &[("date", d)],
        ));
    }
    for status in [302, 307] {
        all.extend(both(
            "explicit freshness on a redirect",
            status,
            &[("date", d), ("cache-control", "max-age=60")],
        ));
    }
    for cc in [
        "max-age=60",
        "public, max-age=60",
        "s-maxage=60",
        "must-revalidate, max-age=60",
    ] {
        for shared in [false, true] {
            all.push(with_req(
                case(
                    "authorization",
                    shared,
                    200,
                    &[("date", d), ("cache-control", cc)],
                ),
                &[("authorization", "Bearer t")],
            ));
        }
    }
    for shared in [false, true] {
        all.push(with_req(
            case(
                "request no-store",
                shared,
                200,
                &[("date", d), ("cache-control", "max-age=60")],
            ),
            &[("cache-control", "no-store")],
        ));
    }
    all
}

#[test]
fn oracle_storable_lifetime_and_freshness_agree_with_http_cache_semantics() {
    let cases = cases();
    assert!(cases.len() > 60);
    let mut compared_lifetimes = 0;
    for c in &cases {
        let what = format!("{} (shared: {}, status {})", c.name, c.shared, c.status);
        let mut rb = Request::get("http://a.example/x");
        for (n, v) in &c.req {
            rb = rb.header(*n, v.as_str());
        }
        let req = rb.body(()).unwrap();
        let mut res = Response::builder().status(c.status);
        for (n, v) in &c.resp {
            res = res.header(*n, v.as_str());
        }
        let res = res.body(()).unwrap();
        let received = t(0);
        let oracle = theirs(c, &req, &res, received);
        let policy = ours(c.shared);
        let status = StatusCode::from_u16(c.status).unwrap();

        let storable = policy
            .storable(req.method(), req.headers(), status, res.headers())
            .is_ok();
        assert_eq!(storable, oracle.is_storable(), "storable: {what}");
        if !storable {
            continue;
        }
        let meta = policy.to_meta(
            req.headers(),
            status,
            Version::HTTP_11,
            res.headers(),
            received,
            received,
        );
        let lifetime = policy.freshness_lifetime(&meta);
        // The oracle folds `no-cache` into a zero lifetime; we keep the lifetime and answer
        // "revalidate". Only the verdicts are comparable there.
        let compare_ttl = c.name != "no-cache";
        if compare_ttl {
            let ttl0 = oracle.time_to_live(received);
            let age0 = policy.current_age(&meta, received);
            assert_eq!(
                lifetime.saturating_sub(age0),
                ttl0,
                "ttl at receipt: {what}"
            );
            compared_lifetimes += 1;
        }
        let l = lifetime.as_secs();
        for offset in [0, 1, l / 2, l.saturating_sub(1), l, l + 1, l + 100] {
            let now = t(offset);
            let ttl = policy
                .freshness_lifetime(&meta)
                .saturating_sub(policy.current_age(&meta, now));
            if compare_ttl {
                assert_eq!(ttl, oracle.time_to_live(now), "ttl at +{offset}: {what}");
            }
            let fresh = policy.evaluate(&Default::default(), &meta, now).verdict == Verdict::Fresh;
            let oracle_fresh = matches!(oracle.before_request(&req, now), BeforeRequest::Fresh(_));
            assert_eq!(fresh, oracle_fresh, "fresh at +{offset}: {what}");
        }
    }
    assert!(compared_lifetimes > 30, "{compared_lifetimes}");
}
