//! RFC 9111 §5.2 (Cache-Control syntax), §5.2.1 (request directives), §5.2.2 (response
//! directives), §5.4 (Pragma), RFC 8246 (immutable).

use crate::common;

use cachio_core::cache_control::{self, CacheControl};
use cachio_core::policy::{self, Policy, Verdict};
use common::*;
use http::HeaderValue;
use http::header::{HeaderName, SET_COOKIE};

fn cc(lines: &[&str]) -> CacheControl {
    let values: Vec<HeaderValue> = lines
        .iter()
        .map(|l| HeaderValue::from_str(l).unwrap())
        .collect();
    CacheControl::parse(&values)
}

fn verdict(p: &Policy, resp_cc: &str, req: &str, now: u64) -> Verdict {
    let m = stored(p, &[("cache-control", resp_cc)]);
    p.evaluate(&req_cc(req), &m, t(now)).verdict
}

// ---- syntax (§5.2) ------------------------------------------------------------------------

#[test]
fn rfc9111_5_2_directive_names_are_case_insensitive() {
    let c = cc(&["MAX-AGE=5, No-Store, Public, S-MaxAge=7, Must-Revalidate"]);
    assert_eq!(c.max_age, Some(5));
    assert_eq!(c.s_maxage, Some(7));
    assert!(c.no_store && c.public && c.must_revalidate);
}

#[test]
fn rfc9111_5_2_whitespace_and_empty_list_members_are_tolerated() {
    let c = cc(&[" ,, max-age=5 ,\tpublic\t, ,no-cache ,"]);
    assert_eq!(c.max_age, Some(5));
    assert!(c.public && c.no_cache);
}

#[test]
fn rfc9111_5_2_multiple_field_lines_are_one_list() {
    let c = cc(&["max-age=5", "must-revalidate", "private=\"x-a\""]);
    assert_eq!(c.max_age, Some(5));
    assert!(c.must_revalidate);
    assert_eq!(c.private_fields, vec![HeaderName::from_static("x-a")]);
}

#[test]
fn rfc9111_5_2_quoted_arguments_keep_their_commas() {
    let c = cc(&["no-cache=\"Set-Cookie, X-Foo\", max-age=5"]);
    assert!(!c.no_cache);
    assert_eq!(
        c.no_cache_fields,
        vec![SET_COOKIE, HeaderName::from_static("x-foo")]
    );
    assert_eq!(c.max_age, Some(5));
}

#[test]
fn rfc9111_5_2_quoted_pair_escapes_are_removed() {
    let c = cc(&["ext=\"a\\\"b, c\", private=\"x\\-y\""]);
    assert_eq!(c.private_fields, vec![HeaderName::from_static("x-y")]);
    assert!(!c.private);
}

#[test]
fn rfc9111_5_2_an_unreadable_field_list_is_taken_unqualified() {
    // A list we cannot read must not make the response more cacheable than the plain directive.
    assert!(cc(&["private=\"bad name\""]).private);
    assert!(cc(&["no-cache=\"\""]).no_cache);
    assert!(cc(&["no-cache=\"a, b c\""]).no_cache);
}

#[test]
fn rfc9111_5_2_an_unterminated_quote_ends_the_list_without_losing_earlier_directives() {
    let c = cc(&["max-age=5, no-cache=\"set-cookie, public"]);
    assert_eq!(c.max_age, Some(5));
    assert!(!c.public, "text inside the open quote is not a directive");
}

#[test]
fn rfc9111_5_2_3_unknown_directives_are_ignored() {
    let c = cc(&["community=\"UCI\", x-ext, foo=bar, private"]);
    assert!(c.private);
    assert_eq!(
        c,
        CacheControl::parse([&HeaderValue::from_static("private")])
    );
    assert!(cc(&["foo, bar=\"baz\""]).is_empty());
}

#[test]
fn rfc9111_5_2_2_1_max_age_without_a_value_is_invalid_and_stale() {
    assert_eq!(cc(&["max-age"]).max_age, Some(0));
    assert_eq!(cc(&["s-maxage="]).s_maxage, Some(0));
}

// ---- request directives (§5.2.1) ----------------------------------------------------------

#[test]
fn rfc9111_5_2_1_1_request_max_age_limits_the_age() {
    let p = Policy::private();
    assert_eq!(verdict(&p, "max-age=600", "max-age=30", 30), Verdict::Fresh);
    assert_eq!(
        verdict(&p, "max-age=600", "max-age=30", 31),
        Verdict::Revalidate
    );
    assert_eq!(
        verdict(&p, "max-age=600", "max-age=0", 1),
        Verdict::Revalidate
    );
}

#[test]
fn rfc9111_5_2_1_1_request_max_age_without_max_stale_refuses_stale_responses() {
    let p = Policy::private();
    // Stale by 10 s, inside stale-while-revalidate, younger than the request's max-age.
    let resp = "max-age=60, stale-while-revalidate=100";
    assert_eq!(verdict(&p, resp, "", 70), Verdict::StaleWhileRevalidate);
    assert_eq!(verdict(&p, resp, "max-age=600", 70), Verdict::Revalidate);
    assert_eq!(
        verdict(&p, resp, "max-age=600, max-stale=20", 70),
        Verdict::StaleAllowed
    );
}

#[test]
fn rfc9111_5_2_1_2_max_stale_without_a_value_accepts_any_staleness() {
    let p = Policy::private();
    assert_eq!(cc(&["max-stale"]).max_stale, Some(None));
    assert_eq!(
        verdict(&p, "max-age=60", "max-stale", 1_000_000),
        Verdict::StaleAllowed
    );
}

#[test]
fn rfc9111_5_2_1_2_max_stale_with_a_value_limits_the_staleness() {
    let p = Policy::private();
    assert_eq!(cc(&["max-stale=30"]).max_stale, Some(Some(30)));
    assert_eq!(
        verdict(&p, "max-age=60", "max-stale=30", 90),
        Verdict::StaleAllowed
    );
    assert_eq!(
        verdict(&p, "max-age=60", "max-stale=30", 91),
        Verdict::Revalidate
    );
    // Fresh responses are simply fresh.
    assert_eq!(
        verdict(&p, "max-age=60", "max-stale=30", 10),
        Verdict::Fresh
    );
}

#[test]
fn rfc9111_5_2_1_2_max_stale_cannot_override_must_revalidate_or_no_cache() {
    let p = Policy::private();
    assert_eq!(
        verdict(&p, "max-age=60, must-revalidate", "max-stale", 61),
        Verdict::Revalidate
    );
    assert_eq!(
        verdict(&p, "max-age=60, no-cache", "max-stale", 61),
        Verdict::Revalidate
    );
}

#[test]
fn rfc9111_5_2_1_3_min_fresh_asks_for_freshness_left() {
    let p = Policy::private();
    // lifetime 100, age 50: 50 s left; "no less than current age plus min-fresh".
    assert_eq!(
        verdict(&p, "max-age=100", "min-fresh=51", 50),
        Verdict::Revalidate
    );
    assert_eq!(
        verdict(&p, "max-age=100", "min-fresh=50", 50),
        Verdict::Fresh
    );
}

#[test]
fn rfc9111_5_2_1_3_min_fresh_refuses_a_stale_response() {
    let p = Policy::private();
    assert_eq!(
        verdict(
            &p,
            "max-age=10, stale-while-revalidate=100",
            "min-fresh=0",
            20
        ),
        Verdict::Revalidate
    );
}

#[test]
fn rfc9111_5_2_1_4_request_no_cache_forces_validation() {
    let p = Policy::private();
    assert_eq!(
        verdict(&p, "max-age=600", "no-cache", 1),
        Verdict::Revalidate
    );
}

#[test]
fn rfc9111_5_2_1_7_only_if_cached_and_no_transform_are_read() {
    let c = cc(&["only-if-cached, no-transform"]);
    assert!(c.only_if_cached && c.no_transform);
}

#[test]
fn rfc9111_5_2_1_request_directives_come_from_cache_control() {
    let h = headers(&[("cache-control", "max-age=5, min-fresh=3, no-store")]);
    let c = policy::request_directives(&h);
    assert_eq!(c.max_age, Some(5));
    assert_eq!(c.min_fresh, Some(3));
    assert!(c.no_store);
}

// ---- Pragma (§5.4) --------------------------------------------------------------------------

#[test]
fn rfc9111_5_4_pragma_no_cache_counts_without_cache_control() {
    let h = headers(&[("pragma", "No-Cache")]);
    assert!(cache_control::pragma_no_cache(&h));
    assert!(policy::request_directives(&h).no_cache);
    assert!(!policy::request_directives(&headers(&[("pragma", "x-other")])).no_cache);
}

#[test]
fn rfc9111_5_4_pragma_is_ignored_when_cache_control_is_present() {
    let h = headers(&[("pragma", "no-cache"), ("cache-control", "max-age=10")]);
    let c = policy::request_directives(&h);
    assert!(!c.no_cache);
    assert_eq!(c.max_age, Some(10));
}

#[test]
fn rfc9111_5_4_pragma_in_a_response_means_nothing() {
    let p = Policy::private();
    let m = stored(
        &p,
        &[("cache-control", "max-age=60"), ("pragma", "no-cache")],
    );
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(1)).verdict,
        Verdict::Fresh
    );
}

// ---- response directives (§5.2.2) -----------------------------------------------------------

#[test]
fn rfc9111_5_2_2_2_must_revalidate_forbids_serving_stale() {
    let p = Policy::shared();
    let resp = "max-age=60, must-revalidate, stale-while-revalidate=100";
    assert_eq!(verdict(&p, resp, "", 30), Verdict::Fresh);
    assert_eq!(verdict(&p, resp, "", 70), Verdict::Revalidate);
    assert_eq!(verdict(&p, resp, "max-stale", 70), Verdict::Revalidate);
}

#[test]
fn rfc9111_5_2_2_4_unqualified_no_cache_always_revalidates() {
    let p = Policy::private();
    assert_eq!(
        verdict(&p, "no-cache, max-age=600", "", 0),
        Verdict::Revalidate
    );
    assert_eq!(
        verdict(&p, "no-cache, max-age=600, immutable", "", 0),
        Verdict::Revalidate
    );
}

#[test]
fn rfc9111_5_2_2_8_proxy_revalidate_binds_shared_caches_only() {
    let resp = "max-age=60, proxy-revalidate";
    assert_eq!(
        verdict(&Policy::shared(), resp, "max-stale", 70),
        Verdict::Revalidate
    );
    assert_eq!(
        verdict(&Policy::private(), resp, "max-stale", 70),
        Verdict::StaleAllowed
    );
}

#[test]
fn rfc9111_5_2_2_10_s_maxage_implies_proxy_revalidate_in_a_shared_cache() {
    let resp = "s-maxage=60, stale-while-revalidate=100";
    assert_eq!(
        verdict(&Policy::shared(), resp, "", 70),
        Verdict::Revalidate
    );
    assert_eq!(
        verdict(&Policy::shared(), resp, "max-stale", 70),
        Verdict::Revalidate
    );
    // A private cache ignores s-maxage altogether (here: no freshness, but stale is allowed).
    assert_eq!(
        verdict(&Policy::private(), resp, "max-stale", 70),
        Verdict::StaleAllowed
    );
}

#[test]
fn rfc9111_5_2_2_9_public_makes_a_response_heuristically_cacheable() {
    let p = Policy::shared();
    let m = stored_status(
        &p,
        http::StatusCode::TEMPORARY_REDIRECT,
        &[
            ("date", &date(0)),
            ("cache-control", "public"),
            ("last-modified", &date_before(600)),
        ],
        0,
        0,
    );
    assert_eq!(p.freshness_lifetime(&m), secs(60));
}

#[test]
fn rfc8246_a_fresh_immutable_response_ignores_a_reload() {
    let p = Policy::private();
    let resp = "max-age=600, immutable";
    assert_eq!(verdict(&p, resp, "max-age=0", 100), Verdict::Fresh);
    // A forced reload (no-cache) still validates, and a stale one is stale.
    assert_eq!(verdict(&p, resp, "no-cache", 100), Verdict::Revalidate);
    assert_eq!(verdict(&p, resp, "max-age=0", 601), Verdict::Revalidate);
}
