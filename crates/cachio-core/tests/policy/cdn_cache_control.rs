//! RFC 9213 (targeted cache-control fields: CDN-Cache-Control).

use crate::common;

use cachio_core::cache_control::CacheControl;
use cachio_core::policy::{CDN_CACHE_CONTROL, NotStorable, Policy, Verdict};
use common::*;
use http::header::HeaderName;
use http::{HeaderValue, Method, StatusCode};

fn storable(p: &Policy, resp: &[(&str, &str)]) -> Result<(), NotStorable> {
    p.storable(&Method::GET, &headers(&[]), StatusCode::OK, &headers(resp))
}

fn lifetime(p: &Policy, resp: &[(&str, &str)]) -> std::time::Duration {
    p.freshness_lifetime(&stored(p, resp))
}

fn targeted(v: &str) -> Option<CacheControl> {
    CacheControl::parse_targeted([&HeaderValue::from_str(v).unwrap()])
}

#[test]
fn rfc9213_3_1_the_targeted_field_overrides_cache_control() {
    let resp = [
        ("cache-control", "max-age=60, s-maxage=120"),
        ("cdn-cache-control", "max-age=600"),
    ];
    assert_eq!(lifetime(&Policy::shared(), &resp), secs(600));
    // A private cache has no target list by default.
    assert_eq!(lifetime(&Policy::private(), &resp), secs(60));
}

#[test]
fn rfc9213_3_1_a_cdn_may_store_what_cache_control_forbids() {
    let resp = [
        ("cache-control", "no-store"),
        ("cdn-cache-control", "max-age=600"),
    ];
    assert_eq!(storable(&Policy::shared(), &resp), Ok(()));
    assert_eq!(
        storable(&Policy::private(), &resp),
        Err(NotStorable::NoStore)
    );
}

#[test]
fn rfc9213_3_1_a_field_of_unknown_directives_still_silences_cache_control() {
    let resp = [("cache-control", "no-store"), ("cdn-cache-control", "none")];
    assert_eq!(storable(&Policy::shared(), &resp), Ok(()));
}

#[test]
fn rfc9213_2_2_expires_is_ignored_when_a_targeted_field_is_used() {
    let e = date(1000);
    let resp = [
        ("expires", e.as_str()),
        ("cdn-cache-control", "must-revalidate"),
    ];
    assert_eq!(lifetime(&Policy::shared(), &resp), secs(0));
    assert_eq!(lifetime(&Policy::private(), &resp), secs(1000));
    // No Expires to make a 302 storable either.
    assert_eq!(
        Policy::shared().storable(
            &Method::GET,
            &headers(&[]),
            StatusCode::FOUND,
            &headers(&resp)
        ),
        Err(NotStorable::Status)
    );
}

#[test]
fn rfc9213_2_2_without_the_field_cache_control_applies() {
    assert_eq!(
        lifetime(&Policy::shared(), &[("cache-control", "s-maxage=120")]),
        secs(120)
    );
}

#[test]
fn rfc9213_2_1_an_empty_field_is_ignored() {
    let resp = [("cache-control", "max-age=60"), ("cdn-cache-control", "")];
    assert_eq!(lifetime(&Policy::shared(), &resp), secs(60));
    assert_eq!(targeted("  "), None);
}

#[test]
fn rfc9213_2_1_an_invalid_field_is_ignored() {
    for bad in [
        "Max-Age=600",
        "max-age=600,",
        "max-age=600 public",
        "max-age=\"600",
        "max-age=600, , public",
        "private=\"a\" x",
        "max-age=1234567890123456",
    ] {
        let resp = [("cache-control", "max-age=60"), ("cdn-cache-control", bad)];
        assert_eq!(lifetime(&Policy::shared(), &resp), secs(60), "{bad}");
        assert_eq!(targeted(bad), None, "{bad}");
    }
}

#[test]
fn rfc9213_2_1_a_value_of_the_wrong_type_is_not_consumed() {
    let c =
        targeted("max-age=1.5, s-maxage=\"60\", stale-if-error=-1, no-store=?0, public").unwrap();
    assert_eq!(c.max_age, None);
    assert_eq!(c.s_maxage, None);
    assert_eq!(c.stale_if_error, None);
    assert!(!c.no_store);
    assert!(c.public);
    // The field is valid, so Cache-Control is still ignored.
    let resp = [
        ("cache-control", "max-age=60"),
        ("cdn-cache-control", "max-age=1.5"),
    ];
    assert_eq!(
        lifetime(&Policy::shared().heuristic_percent(0), &resp),
        secs(0)
    );
}

#[test]
fn rfc9213_2_1_a_repeated_key_keeps_its_last_value() {
    assert_eq!(
        targeted("max-age=10, max-age=20").unwrap().max_age,
        Some(20)
    );
}

#[test]
fn rfc9213_2_1_parameters_on_directives_are_ignored() {
    let c = targeted("max-age=60;foo=bar, private;x").unwrap();
    assert_eq!(c.max_age, Some(60));
    assert!(c.private);
}

#[test]
fn rfc9213_2_1_field_lines_are_combined() {
    let a = HeaderValue::from_static("max-age=60");
    let b = HeaderValue::from_static("stale-while-revalidate=30");
    let c = CacheControl::parse_targeted([&a, &b]).unwrap();
    assert_eq!(c.max_age, Some(60));
    assert_eq!(c.stale_while_revalidate, Some(30));
}

#[test]
fn rfc9213_2_1_huge_integers_saturate_at_2_pow_31() {
    assert_eq!(
        targeted("max-age=999999999999999").unwrap().max_age,
        Some(2_147_483_648)
    );
}

#[test]
fn rfc9213_2_2_the_required_directives_are_obeyed() {
    let p = Policy::shared();
    assert_eq!(
        storable(&p, &[("cdn-cache-control", "no-store")]),
        Err(NotStorable::NoStore)
    );
    assert_eq!(
        storable(&p, &[("cdn-cache-control", "private")]),
        Err(NotStorable::Private)
    );
    let m = stored(&p, &[("cdn-cache-control", "max-age=600, no-cache")]);
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(1)).verdict,
        Verdict::Revalidate
    );
    let m = stored(
        &p,
        &[(
            "cdn-cache-control",
            "max-age=60, must-revalidate, stale-while-revalidate=60",
        )],
    );
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(70)).verdict,
        Verdict::Revalidate
    );
    let m = stored(
        &p,
        &[("cdn-cache-control", "max-age=60, stale-while-revalidate=60")],
    );
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(70)).verdict,
        Verdict::StaleWhileRevalidate
    );
    // private="field" removes just that field.
    let m = stored(
        &p,
        &[
            ("cdn-cache-control", "max-age=60, private=\"x-user\""),
            ("x-user", "u"),
        ],
    );
    assert!(!m.headers().contains_key("x-user"));
}

#[test]
fn rfc9213_2_2_the_first_valid_field_of_the_target_list_wins() {
    let example = HeaderName::from_static("examplecdn-cache-control");
    let p = Policy::shared().targeted_fields(vec![example, CDN_CACHE_CONTROL]);
    let both = [
        ("examplecdn-cache-control", "max-age=30"),
        ("cdn-cache-control", "max-age=600"),
        ("cache-control", "max-age=60"),
    ];
    assert_eq!(lifetime(&p, &both), secs(30));
    let invalid_first = [
        ("examplecdn-cache-control", "MAX-AGE=30"),
        ("cdn-cache-control", "max-age=600"),
        ("cache-control", "max-age=60"),
    ];
    assert_eq!(lifetime(&p, &invalid_first), secs(600));
    let only_second = [
        ("cdn-cache-control", "max-age=600"),
        ("cache-control", "max-age=60"),
    ];
    assert_eq!(lifetime(&p, &only_second), secs(600));
}

#[test]
fn rfc9213_2_2_fields_off_the_target_list_change_nothing() {
    let p = Policy::shared().targeted_fields(vec![]);
    let resp = [
        ("cdn-cache-control", "max-age=600"),
        ("cache-control", "max-age=60"),
    ];
    assert_eq!(lifetime(&p, &resp), secs(60));
    let p = Policy::shared().targeted_fields(vec![HeaderName::from_static("other-cache-control")]);
    assert_eq!(lifetime(&p, &resp), secs(60));
    // And they are stored and passed through untouched.
    let m = stored(&p, &resp);
    assert_eq!(values(m.headers(), "cdn-cache-control"), ["max-age=600"]);
}
