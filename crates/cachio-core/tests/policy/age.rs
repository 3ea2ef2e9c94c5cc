//! RFC 9111 §4.2.3 (calculating age) and §5.1 (Age).

use crate::common;

use cachio_core::policy::{Policy, Verdict};
use common::*;

#[test]
fn rfc9111_4_2_3_apparent_age_is_response_time_minus_date() {
    let p = Policy::private();
    // Generated at T0 by the origin's clock, received at T0 + 20 by ours.
    let m = stored_at(&p, &[("date", &date(0))], 20, 20);
    assert_eq!(p.current_age(&m, t(20)), secs(20));
}

#[test]
fn rfc9111_4_2_3_apparent_age_is_never_negative() {
    let p = Policy::private();
    // The origin's clock is ahead of ours.
    let m = stored_at(&p, &[("date", &date(500))], 0, 0);
    assert_eq!(p.current_age(&m, t(0)), secs(0));
    assert_eq!(p.current_age(&m, t(7)), secs(7));
}

#[test]
fn rfc9111_4_2_3_corrected_initial_age_uses_response_delay() {
    let p = Policy::private();
    // Age: 10 from an upstream cache, the request took 5 s: corrected_age_value = 15.
    let m = stored_at(&p, &[("date", &date(10)), ("age", "10")], 5, 10);
    assert_eq!(p.current_age(&m, t(10)), secs(15));
}

#[test]
fn rfc9111_4_2_3_corrected_initial_age_is_the_larger_of_both_estimates() {
    let p = Policy::private();
    // apparent_age = 100 (Date is old) beats corrected_age_value = 3 + 1.
    let m = stored_at(&p, &[("date", &date_before(100)), ("age", "3")], 0, 1);
    assert_eq!(p.current_age(&m, t(1)), secs(101));
    // corrected_age_value = 50 + 0 beats apparent_age = 0.
    let m = stored_at(&p, &[("date", &date(0)), ("age", "50")], 0, 0);
    assert_eq!(p.current_age(&m, t(0)), secs(50));
}

#[test]
fn rfc9111_4_2_3_resident_time_is_added() {
    let p = Policy::private();
    let m = stored_at(&p, &[("date", &date(0)), ("age", "5")], 0, 0);
    assert_eq!(p.current_age(&m, t(0)), secs(5));
    assert_eq!(p.current_age(&m, t(100)), secs(105));
}

#[test]
fn rfc9111_4_2_3_age_counts_towards_freshness() {
    let p = Policy::private();
    let m = stored_at(
        &p,
        &[
            ("date", &date(0)),
            ("age", "50"),
            ("cache-control", "max-age=60"),
        ],
        0,
        0,
    );
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(9)).verdict,
        Verdict::Fresh
    );
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(10)).verdict,
        Verdict::Revalidate
    );
}

#[test]
fn rfc9111_4_2_3_a_clock_going_backwards_does_not_panic_or_go_negative() {
    let p = Policy::private();
    // Received "before" it was requested, and asked about before it was received.
    let m = stored_at(&p, &[("date", &date(5))], 10, 5);
    assert_eq!(p.current_age(&m, t(0)), secs(0));
}

#[test]
fn rfc9111_5_1_a_list_based_age_uses_its_first_member() {
    let p = Policy::private();
    let m = stored_at(&p, &[("date", &date(0)), ("age", "5, 100")], 0, 0);
    assert_eq!(p.current_age(&m, t(0)), secs(5));
    let m = stored_at(
        &p,
        &[("date", &date(0)), ("age", "7"), ("age", "100")],
        0,
        0,
    );
    assert_eq!(p.current_age(&m, t(0)), secs(7));
}

#[test]
fn rfc9111_5_1_an_invalid_age_is_ignored() {
    let p = Policy::private();
    for bad in ["-5", "abc", "1.5", "", "5s", "0x10"] {
        let m = stored_at(&p, &[("date", &date(0)), ("age", bad)], 0, 0);
        assert_eq!(p.current_age(&m, t(3)), secs(3), "{bad:?}");
    }
}

#[test]
fn rfc9111_1_2_2_a_huge_age_saturates_at_2_pow_31() {
    let p = Policy::private();
    let m = stored_at(
        &p,
        &[
            ("date", &date(0)),
            ("age", "123456789012345678901234567890"),
        ],
        0,
        0,
    );
    assert_eq!(p.current_age(&m, t(0)), secs(2_147_483_648));
}

#[test]
fn rfc9211_2_4_ttl_is_negative_when_stale() {
    let p = Policy::private();
    let m = stored(&p, &[("cache-control", "max-age=60")]);
    assert_eq!(p.evaluate(&Default::default(), &m, t(10)).ttl_secs(), 50);
    assert_eq!(p.evaluate(&Default::default(), &m, t(90)).ttl_secs(), -30);
}

#[test]
fn rfc9111_5_1_the_age_sent_is_whole_seconds_saturated_at_2_pow_31() {
    assert_eq!(cachio_core::policy::age_value(secs(0)), "0");
    assert_eq!(
        cachio_core::policy::age_value(std::time::Duration::from_millis(61_900)),
        "61"
    );
    assert_eq!(cachio_core::policy::age_value(secs(u64::MAX)), "2147483648");
}

#[test]
fn rfc9111_5_1_every_age_is_its_decimal_number() {
    // The small ages come from a table written at compile time, the others are formatted.
    for n in 0..3_000u64 {
        assert_eq!(
            cachio_core::policy::age_value(secs(n)),
            n.to_string().as_str(),
            "{n}"
        );
    }
}
