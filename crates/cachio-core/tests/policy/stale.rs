//! RFC 9111 §4.2.4 (serving stale), RFC 5861 (stale-while-revalidate, stale-if-error), and how
//! long an entry is worth keeping.

use crate::common;

use cachio_core::policy::{Policy, Verdict};
use common::*;

#[test]
fn rfc9111_4_2_4_a_stale_response_is_not_served_without_permission() {
    let p = Policy::shared();
    let m = stored(&p, &[("cache-control", "max-age=60")]);
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(61)).verdict,
        Verdict::Revalidate
    );
    assert!(!p.stale_if_error(&Default::default(), &m, t(61)));
}

#[test]
fn rfc5861_3_stale_while_revalidate_window() {
    // http-cache-semantics has no stale-while-revalidate.
    let p = Policy::shared();
    let m = stored(
        &p,
        &[("cache-control", "max-age=600, stale-while-revalidate=30")],
    );
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(599)).verdict,
        Verdict::Fresh
    );
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(600)).verdict,
        Verdict::StaleWhileRevalidate
    );
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(630)).verdict,
        Verdict::StaleWhileRevalidate
    );
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(631)).verdict,
        Verdict::Revalidate
    );
}

#[test]
fn rfc5861_3_stale_while_revalidate_yields_to_prohibitions() {
    for (p, cc) in [
        (
            Policy::private(),
            "max-age=60, stale-while-revalidate=600, must-revalidate",
        ),
        (
            Policy::private(),
            "max-age=60, stale-while-revalidate=600, no-cache",
        ),
        (
            Policy::shared(),
            "max-age=60, stale-while-revalidate=600, proxy-revalidate",
        ),
        (Policy::shared(), "s-maxage=60, stale-while-revalidate=600"),
    ] {
        let m = stored(&p, &[("cache-control", cc)]);
        assert_eq!(
            p.evaluate(&Default::default(), &m, t(70)).verdict,
            Verdict::Revalidate,
            "{cc}"
        );
    }
}

#[test]
fn rfc5861_3_the_request_can_refuse_a_stale_response() {
    let p = Policy::private();
    let m = stored(
        &p,
        &[("cache-control", "max-age=60, stale-while-revalidate=600")],
    );
    for req in ["no-cache", "max-age=5", "min-fresh=1"] {
        assert_eq!(
            p.evaluate(&req_cc(req), &m, t(70)).verdict,
            Verdict::Revalidate,
            "{req}"
        );
    }
}

#[test]
fn rfc5861_4_stale_if_error_window() {
    // The example of RFC 5861 §4.1: fresh for 600 s, usable on error 1200 s beyond.
    let p = Policy::shared();
    let m = stored(&p, &[("cache-control", "max-age=600, stale-if-error=1200")]);
    let none = Default::default();
    assert_eq!(p.evaluate(&none, &m, t(900)).verdict, Verdict::Revalidate);
    assert!(p.stale_if_error(&none, &m, t(900)));
    assert!(p.stale_if_error(&none, &m, t(1800)));
    assert!(!p.stale_if_error(&none, &m, t(1801)));
}

#[test]
fn rfc5861_4_stale_if_error_as_a_request_directive() {
    let p = Policy::private();
    let m = stored(&p, &[("cache-control", "max-age=60")]);
    assert!(p.stale_if_error(&req_cc("stale-if-error=100"), &m, t(160)));
    assert!(!p.stale_if_error(&req_cc("stale-if-error=100"), &m, t(161)));
    assert!(!p.stale_if_error(&req_cc(""), &m, t(61)));
}

#[test]
fn rfc5861_4_the_larger_of_request_and_response_windows_applies() {
    let p = Policy::private();
    let m = stored(&p, &[("cache-control", "max-age=60, stale-if-error=10")]);
    assert!(p.stale_if_error(&req_cc("stale-if-error=100"), &m, t(150)));
    assert!(!p.stale_if_error(&req_cc("stale-if-error=5"), &m, t(71)));
    assert!(p.stale_if_error(&req_cc("stale-if-error=5"), &m, t(70)));
}

#[test]
fn rfc9111_5_2_2_2_stale_if_error_never_overrides_must_revalidate() {
    let p = Policy::shared();
    for cc in [
        "max-age=60, stale-if-error=600, must-revalidate",
        "max-age=60, stale-if-error=600, no-cache",
        "s-maxage=60, stale-if-error=600",
    ] {
        let m = stored(&p, &[("cache-control", cc)]);
        assert!(
            !p.stale_if_error(&req_cc("stale-if-error=600"), &m, t(70)),
            "{cc}"
        );
    }
}

#[test]
fn rfc9111_4_2_4_max_stale_lets_the_client_take_a_stale_response() {
    let p = Policy::private();
    let m = stored(&p, &[("cache-control", "max-age=60")]);
    let e = p.evaluate(&req_cc("max-stale=100"), &m, t(100));
    assert_eq!(e.verdict, Verdict::StaleAllowed);
    assert!(e.ttl_secs() < 0);
}

// ---- retention ------------------------------------------------------------------------------

#[test]
fn retention_covers_freshness_and_every_stale_window() {
    let p = Policy::private()
        .validator_retention(secs(0))
        .stale_retention(secs(0));
    let m = stored(
        &p,
        &[(
            "cache-control",
            "max-age=100, stale-while-revalidate=50, stale-if-error=300",
        )],
    );
    assert_eq!(p.retention(&m, t(0)), secs(400));
    assert_eq!(p.retention(&m, t(150)), secs(250));
    assert_eq!(p.retention(&m, t(400)), secs(0));
}

#[test]
fn retention_of_a_response_with_validators_includes_the_validator_retention() {
    let p = Policy::private()
        .validator_retention(secs(1000))
        .stale_retention(secs(0));
    let m = stored(&p, &[("cache-control", "max-age=100"), ("etag", "\"a\"")]);
    assert_eq!(p.retention(&m, t(0)), secs(1100));
    let plain = stored(&p, &[("cache-control", "max-age=100")]);
    assert_eq!(p.retention(&plain, t(0)), secs(100));
    assert_eq!(p.retention(&plain, t(100)), secs(0));
}

#[test]
fn retention_ignores_stale_windows_that_may_not_be_used() {
    let p = Policy::private()
        .validator_retention(secs(0))
        .stale_retention(secs(0));
    let m = stored(
        &p,
        &[(
            "cache-control",
            "max-age=100, stale-if-error=300, must-revalidate",
        )],
    );
    assert_eq!(p.retention(&m, t(0)), secs(100));
}

/// By default a private cache keeps any response a day past its own windows (for `max-stale` and
/// the offline modes, RFC 9111 §5.2.1.2), a shared cache nothing.
#[test]
fn rfc9111_5_2_1_2_default_stale_retention_is_a_day_in_a_private_cache_and_none_in_a_shared_one() {
    let day = secs(24 * 3600);
    let private = Policy::private();
    let m = stored(&private, &[("cache-control", "max-age=100")]);
    assert_eq!(private.retention(&m, t(0)), secs(100) + day);
    assert_eq!(private.retention(&m, t(500)), day);
    let never_fresh = stored(&private, &[]);
    assert_eq!(private.retention(&never_fresh, t(0)), day);

    let shared = Policy::shared();
    let m = stored(&shared, &[("cache-control", "max-age=100")]);
    assert_eq!(shared.retention(&m, t(0)), secs(100));
    assert_eq!(shared.retention(&m, t(500)), secs(0));
    let never_fresh = stored(&shared, &[]);
    assert_eq!(shared.retention(&never_fresh, t(0)), secs(0));
}

#[test]
fn retention_adds_the_configured_stale_retention() {
    let p = Policy::private()
        .validator_retention(secs(0))
        .stale_retention(secs(60));
    let m = stored(&p, &[("cache-control", "max-age=100")]);
    assert_eq!(p.retention(&m, t(0)), secs(160));
    assert_eq!(p.retention(&m, t(500)), secs(60));
}

#[test]
fn rfc9111_4_2_4_grace_serves_stale_when_disconnected_within_its_window() {
    let p = Policy::shared().grace(std::time::Duration::from_secs(100));
    let m = stored(&p, &[("cache-control", "max-age=60")]);
    assert!(p.stale_if_error(&Default::default(), &m, t(160)));
    assert!(!p.stale_if_error(&Default::default(), &m, t(161)));
    // Kept long enough to be served within the grace period.
    assert!(p.retention(&m, t(0)) >= std::time::Duration::from_secs(160));
    // Without a grace period the same response is not served stale on error.
    let strict = Policy::shared();
    assert!(!strict.stale_if_error(
        &Default::default(),
        &stored(&strict, &[("cache-control", "max-age=60")]),
        t(61)
    ));
}

#[test]
fn rfc9111_4_2_4_grace_yields_to_must_revalidate() {
    let p = Policy::shared().grace(std::time::Duration::from_secs(100));
    let m = stored(&p, &[("cache-control", "max-age=60, must-revalidate")]);
    assert!(!p.stale_if_error(&Default::default(), &m, t(61)));
}
