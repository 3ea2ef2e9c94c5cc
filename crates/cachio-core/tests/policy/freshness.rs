//! RFC 9111 §4.2 (freshness), §4.2.1 (lifetime), §4.2.2 (heuristics), §5.3 (Expires),
//! §1.2.2 (delta-seconds).

use crate::common;

use std::time::Duration;

use cachio_core::cache_control::DELTA_SECONDS_MAX;
use cachio_core::policy::{Policy, Verdict};
use common::*;
use http::StatusCode;

fn lifetime(p: &Policy, resp: &[(&str, &str)]) -> Duration {
    p.freshness_lifetime(&stored(p, resp))
}

#[test]
fn rfc9111_4_2_1_max_age_is_the_freshness_lifetime() {
    let p = Policy::private();
    assert_eq!(lifetime(&p, &[("cache-control", "max-age=60")]), secs(60));
    assert_eq!(lifetime(&p, &[("cache-control", "max-age=0")]), secs(0));
}

#[test]
fn rfc9111_4_2_1_s_maxage_wins_in_a_shared_cache_only() {
    let resp = [("cache-control", "max-age=60, s-maxage=600")];
    assert_eq!(lifetime(&Policy::shared(), &resp), secs(600));
    assert_eq!(lifetime(&Policy::private(), &resp), secs(60));
}

#[test]
fn rfc9111_4_2_1_expires_minus_date() {
    let p = Policy::private();
    let resp = [("expires", date(300))];
    let resp: Vec<(&str, &str)> = resp.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(lifetime(&p, &resp), secs(300));
}

#[test]
fn rfc9111_4_2_1_expires_is_measured_from_the_origin_date_not_the_receipt_time() {
    // The origin's clock says Date = T0 and Expires = T0 + 100; we received it at T0 + 40 by
    // our clock. The lifetime is 100 s; the 40 s show up as age (§4.2.3).
    let p = Policy::private();
    let m = stored_at(&p, &[("date", &date(0)), ("expires", &date(100))], 40, 40);
    assert_eq!(p.freshness_lifetime(&m), secs(100));
    assert_eq!(p.current_age(&m, t(40)), secs(40));
}

#[test]
fn rfc9111_4_2_1_expires_without_date_uses_the_receipt_time() {
    let p = Policy::private();
    let m = raw_meta(&[("expires", &date(100))], 30, 30);
    assert_eq!(p.freshness_lifetime(&m), secs(70));
}

#[test]
fn rfc9111_5_3_max_age_overrides_expires() {
    let p = Policy::private();
    let e = date(1000);
    assert_eq!(
        lifetime(&p, &[("expires", &e), ("cache-control", "max-age=10")]),
        secs(10)
    );
}

#[test]
fn rfc9111_5_3_s_maxage_overrides_expires_in_a_shared_cache() {
    let e = date(1000);
    let resp = [("expires", e.as_str()), ("cache-control", "s-maxage=10")];
    assert_eq!(lifetime(&Policy::shared(), &resp), secs(10));
    assert_eq!(lifetime(&Policy::private(), &resp), secs(1000));
}

#[test]
fn rfc9111_5_3_invalid_expires_means_already_expired() {
    let p = Policy::private();
    for bad in [
        "0",
        "-1",
        "never",
        "Tue, 14 Nov 2023 22:13:20",
        "Tue, 14 Nov 2023 22:13:20 PST",
        "Thu, 18 Aug 2050 02:01:18 UTC",
        "Thu, 18 Aug 50 02:01:18 GMT",
        "Thu 18 Aug 2050 02:01:18 GMT",
        "Thu, 18  Aug  2050 02:01:18 GMT",
        "Thu, 18-Aug-2050 02:01:18 GMT",
        "Thu, 18 Aug 2050 02.01.18 GMT",
        "Thu, 18 Aug 2050 2:01:18 GMT",
    ] {
        let m = stored(
            &p,
            &[("expires", bad), ("last-modified", &date_before(10_000))],
        );
        // Not even a heuristic: the response has an (invalid) explicit expiration time.
        assert_eq!(p.freshness_lifetime(&m), secs(0), "{bad}");
        assert_eq!(
            p.evaluate(&Default::default(), &m, t(0)).verdict,
            Verdict::Revalidate,
            "{bad}"
        );
    }
}

/// RFC 9110 §5.6.7: a recipient reads all three date formats; a day name that does not match
/// the date (which adds nothing) does not make the date invalid.
#[test]
fn rfc9111_5_3_expires_in_each_date_format_and_with_a_wrong_day_name() {
    let p = Policy::private();
    let imf = date(100);
    // `Tue, 14 Nov 2023 22:13:20 GMT` → `Tuesday, 14-Nov-23 …` and `Tue Nov 14 … 2023`.
    let words: Vec<&str> = imf.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    let [day, dd, mon, yyyy, time, _gmt] = words[..] else {
        panic!("{imf}")
    };
    let full = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ]
    .into_iter()
    .find(|f| f.starts_with(day))
    .unwrap();
    let rfc850 = format!("{full}, {dd}-{mon}-{} {time} GMT", &yyyy[2..]);
    let asctime = format!("{day} {mon} {dd:>2} {time} {yyyy}");
    let other_day = if day == "Mon" { "Fri" } else { "Mon" };
    let wrong_day = imf.replacen(day, other_day, 1);
    for expires in [imf.clone(), rfc850, asctime, wrong_day] {
        let m = stored(&p, &[("date", &date(0)), ("expires", &expires)]);
        assert_eq!(p.freshness_lifetime(&m), secs(100), "{expires}");
    }
}

#[test]
fn rfc9111_5_3_expires_in_the_past_is_stale() {
    let p = Policy::private();
    let m = stored(&p, &[("expires", &date_before(60))]);
    assert_eq!(p.freshness_lifetime(&m), secs(0));
}

#[test]
fn rfc9111_4_2_1_two_expires_lines_make_the_response_stale() {
    let p = Policy::private();
    let (a, b) = (date(100), date(200));
    assert_eq!(lifetime(&p, &[("expires", &a), ("expires", &b)]), secs(0));
}

#[test]
fn rfc9111_4_2_1_a_repeated_max_age_uses_the_first() {
    let p = Policy::private();
    assert_eq!(
        lifetime(&p, &[("cache-control", "max-age=30, max-age=3000")]),
        secs(30)
    );
    assert_eq!(
        lifetime(
            &p,
            &[
                ("cache-control", "max-age=30"),
                ("cache-control", "max-age=3000")
            ]
        ),
        secs(30)
    );
}

#[test]
fn rfc9111_4_2_1_invalid_max_age_is_stale() {
    let p = Policy::private();
    for cc in [
        "max-age=abc",
        "max-age=-1",
        "max-age=1.5",
        "max-age",
        "max-age=",
        "max-age=6 0",
    ] {
        assert_eq!(lifetime(&p, &[("cache-control", cc)]), secs(0), "{cc}");
    }
}

#[test]
fn rfc9111_1_2_2_huge_delta_seconds_saturate_at_2_pow_31() {
    let p = Policy::shared();
    assert_eq!(
        lifetime(
            &p,
            &[("cache-control", "max-age=99999999999999999999999999999")]
        ),
        secs(DELTA_SECONDS_MAX)
    );
    assert_eq!(
        lifetime(&p, &[("cache-control", "s-maxage=2147483649")]),
        secs(2_147_483_648)
    );
    assert_eq!(
        lifetime(&p, &[("cache-control", "max-age=2147483647")]),
        secs(2_147_483_647)
    );
}

#[test]
fn rfc9111_5_2_the_quoted_form_of_max_age_is_accepted() {
    let p = Policy::private();
    assert_eq!(
        lifetime(&p, &[("cache-control", "max-age=\"60\"")]),
        secs(60)
    );
}

#[test]
fn rfc9111_4_2_1_conflicting_directives_take_the_most_restrictive() {
    let p = Policy::shared();
    let m = stored(&p, &[("cache-control", "max-age=600, no-cache")]);
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(1)).verdict,
        Verdict::Revalidate
    );
    assert!(
        p.storable(
            &http::Method::GET,
            &Default::default(),
            StatusCode::OK,
            &headers(&[("cache-control", "public, private, max-age=60")]),
        )
        .is_err()
    );
    assert!(
        p.storable(
            &http::Method::GET,
            &Default::default(),
            StatusCode::OK,
            &headers(&[("cache-control", "max-age=60, no-store")]),
        )
        .is_err()
    );
}

#[test]
fn rfc9111_4_2_2_heuristic_is_a_fraction_of_the_time_since_last_modified() {
    let p = Policy::private().heuristic_percent(10);
    assert_eq!(
        lifetime(&p, &[("last-modified", &date_before(1000))]),
        secs(100)
    );
    let p = Policy::private().heuristic_percent(25);
    assert_eq!(
        lifetime(&p, &[("last-modified", &date_before(1000))]),
        secs(250)
    );
}

#[test]
fn rfc9111_4_2_2_heuristic_is_capped() {
    let p = Policy::private().heuristic_max(secs(3600));
    // 10% of 100 days is 10 days, capped at one hour.
    assert_eq!(
        lifetime(&p, &[("last-modified", &date_before(100 * 86_400))]),
        secs(3600)
    );
    // The default cap is one day.
    assert_eq!(
        lifetime(
            &Policy::private(),
            &[("last-modified", &date_before(100 * 86_400))]
        ),
        secs(86_400)
    );
}

#[test]
fn rfc9111_4_2_2_no_heuristic_when_explicit_expiration_is_present() {
    let p = Policy::private();
    let lm = date_before(100_000);
    assert_eq!(
        lifetime(
            &p,
            &[("last-modified", &lm), ("cache-control", "max-age=5")]
        ),
        secs(5)
    );
    assert_eq!(
        lifetime(&p, &[("last-modified", &lm), ("expires", &date_before(1))]),
        secs(0)
    );
}

#[test]
fn rfc9111_4_2_2_heuristic_only_for_heuristically_cacheable_or_public_responses() {
    let p = Policy::shared();
    let lm = date_before(1000);
    let found = stored_status(
        &p,
        StatusCode::FOUND,
        &[("date", &date(0)), ("last-modified", &lm)],
        0,
        0,
    );
    assert_eq!(p.freshness_lifetime(&found), secs(0));
    let public = stored_status(
        &p,
        StatusCode::FOUND,
        &[
            ("date", &date(0)),
            ("last-modified", &lm),
            ("cache-control", "public"),
        ],
        0,
        0,
    );
    assert_eq!(p.freshness_lifetime(&public), secs(100));
    let gone = stored_status(
        &p,
        StatusCode::GONE,
        &[("date", &date(0)), ("last-modified", &lm)],
        0,
        0,
    );
    assert_eq!(p.freshness_lifetime(&gone), secs(100));
}

#[test]
fn rfc9111_4_2_2_percent_zero_turns_heuristics_off() {
    let p = Policy::private().heuristic_percent(0);
    assert_eq!(
        lifetime(&p, &[("last-modified", &date_before(1000))]),
        secs(0)
    );
}

#[test]
fn rfc9111_4_2_2_last_modified_after_date_gives_no_heuristic() {
    let p = Policy::private();
    assert_eq!(lifetime(&p, &[("last-modified", &date(1000))]), secs(0));
}

#[test]
fn rfc9111_4_2_2_heuristic_arithmetic_never_overflows() {
    let p = Policy::private()
        .heuristic_percent(u32::MAX)
        .heuristic_max(Duration::MAX);
    // No Date: the receipt time is used, and it is far in the future.
    let far = u64::MAX / 4;
    let m = cachio_core::meta::ResponseMeta::new(
        StatusCode::OK,
        http::Version::HTTP_11,
        headers(&[("last-modified", "Thu, 01 Jan 1970 00:00:01 GMT")]),
        Vec::new(),
        at(far),
        at(far),
    );
    let l = p.freshness_lifetime(&m);
    assert!(l > secs(far));
    let _ = p.evaluate(&Default::default(), &m, at(far));
    let _ = p.retention(&m, at(far));
}

#[test]
fn rfc9111_4_2_fresh_means_lifetime_greater_than_age() {
    let p = Policy::private();
    let m = stored(&p, &[("cache-control", "max-age=60")]);
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(59)).verdict,
        Verdict::Fresh
    );
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(60)).verdict,
        Verdict::Revalidate
    );
}

#[test]
fn rfc9111_4_2_no_explicit_freshness_and_no_heuristic_is_stale_at_once() {
    let p = Policy::private();
    let m = stored(&p, &[("etag", "\"a\"")]);
    assert_eq!(p.freshness_lifetime(&m), secs(0));
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(0)).verdict,
        Verdict::Revalidate
    );
}

#[test]
fn rfc9111_4_2_dates_are_matched_case_insensitively() {
    let p = Policy::private();
    let upper = date(100).to_uppercase();
    let lower = date(100).to_lowercase();
    assert_eq!(lifetime(&p, &[("expires", &upper)]), secs(100));
    assert_eq!(lifetime(&p, &[("expires", &lower)]), secs(100));
}

#[test]
fn rfc9110_5_6_7_obsolete_date_formats_are_accepted() {
    let p = Policy::private();
    // T0 + 100 = Tue, 14 Nov 2023 22:15:00 GMT
    assert_eq!(date(100), "Tue, 14 Nov 2023 22:15:00 GMT");
    assert_eq!(
        lifetime(&p, &[("expires", "Tuesday, 14-Nov-23 22:15:00 GMT")]),
        secs(100)
    );
    assert_eq!(
        lifetime(&p, &[("expires", "Tue Nov 14 22:15:00 2023")]),
        secs(100)
    );
}

#[test]
fn rfc9111_4_2_an_operator_ttl_override_replaces_the_header_lifetime() {
    let p = Policy::private();
    let m = stored(&p, &[("cache-control", "max-age=5")]).with_ttl_override(Some(secs(500)));
    assert_eq!(p.freshness_lifetime(&m), secs(500));
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(100)).verdict,
        Verdict::Fresh
    );
}
