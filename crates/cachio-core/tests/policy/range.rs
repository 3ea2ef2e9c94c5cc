//! RFC 9110 §14 (range requests) and §13.1.5 (If-Range), answered from a stored response.

use cachio_core::range::{Answer, answer, content_range};
use http::{HeaderMap, HeaderValue, Method};

fn headers(fields: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in fields {
        h.append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn range(spec: &str, len: u64) -> Answer {
    answer(
        &Method::GET,
        &headers(&[("range", spec)]),
        &HeaderMap::new(),
        Some(len),
    )
}

#[test]
fn rfc9110_14_1_2_first_last_first_open_and_suffix_ranges() {
    assert_eq!(range("bytes=0-4", 10), Answer::Part { start: 0, end: 4 });
    assert_eq!(range("bytes=5-", 10), Answer::Part { start: 5, end: 9 });
    assert_eq!(range("bytes=-3", 10), Answer::Part { start: 7, end: 9 });
    assert_eq!(range("bytes=9-9", 10), Answer::Part { start: 9, end: 9 });
}

#[test]
fn rfc9110_14_1_2_a_last_past_the_end_is_clamped_and_a_long_suffix_is_the_whole() {
    assert_eq!(range("bytes=2-1000", 10), Answer::Part { start: 2, end: 9 });
    assert_eq!(range("bytes=-1000", 10), Answer::Part { start: 0, end: 9 });
}

#[test]
fn rfc9110_14_1_1_the_unit_name_is_case_insensitive_but_other_units_are_ignored() {
    assert_eq!(range("items=0-4", 10), Answer::Whole);
    assert_eq!(range(" bytes=0-4 ", 10), Answer::Part { start: 0, end: 4 });
    assert_eq!(range("Bytes=0-4", 10), Answer::Part { start: 0, end: 4 });
}

#[test]
fn rfc9110_15_5_17_a_range_starting_past_the_end_is_unsatisfiable() {
    assert_eq!(range("bytes=10-", 10), Answer::Unsatisfiable);
    assert_eq!(range("bytes=10-20", 10), Answer::Unsatisfiable);
    assert_eq!(range("bytes=-0", 10), Answer::Unsatisfiable);
    assert_eq!(range("bytes=0-", 0), Answer::Unsatisfiable);
    assert_eq!(
        content_range(Answer::Unsatisfiable, 10).unwrap(),
        "bytes */10"
    );
    assert_eq!(
        content_range(Answer::Part { start: 2, end: 9 }, 10).unwrap(),
        "bytes 2-9/10"
    );
    assert_eq!(content_range(Answer::Whole, 10), None);
}

#[test]
fn rfc9110_14_2_invalid_or_unsupported_ranges_are_ignored() {
    for spec in [
        "bytes=4-2",
        "bytes=a-b",
        "bytes=-",
        "bytes=+1-2",
        "bytes=1 2-3",
        "bytes=0-1,5-6",
        "bytes 0-1",
        "bytes=99999999999999999999999-",
        "",
    ] {
        assert_eq!(range(spec, 10), Answer::Whole, "{spec:?}");
    }
}

#[test]
fn rfc9110_14_2_only_get_has_range_handling_and_the_length_must_be_known() {
    let req = headers(&[("range", "bytes=0-1")]);
    assert_eq!(
        answer(&Method::HEAD, &req, &HeaderMap::new(), Some(10)),
        Answer::Whole
    );
    assert_eq!(
        answer(&Method::GET, &req, &HeaderMap::new(), None),
        Answer::Whole
    );
    let two = headers(&[("range", "bytes=0-1"), ("range", "bytes=2-3")]);
    assert_eq!(
        answer(&Method::GET, &two, &HeaderMap::new(), Some(10)),
        Answer::Whole
    );
}

#[test]
fn rfc9110_13_1_5_if_range_with_an_entity_tag_uses_strong_comparison() {
    let stored = headers(&[("etag", "\"v1\"")]);
    let ask = |if_range: &str| {
        answer(
            &Method::GET,
            &headers(&[("range", "bytes=0-1"), ("if-range", if_range)]),
            &stored,
            Some(10),
        )
    };
    assert_eq!(ask("\"v1\""), Answer::Part { start: 0, end: 1 });
    assert_eq!(ask("\"v2\""), Answer::Whole);
    assert_eq!(ask("W/\"v1\""), Answer::Whole, "weak tags never match");
    let weak = headers(&[("etag", "W/\"v1\"")]);
    assert_eq!(
        answer(
            &Method::GET,
            &headers(&[("range", "bytes=0-1"), ("if-range", "W/\"v1\"")]),
            &weak,
            Some(10)
        ),
        Answer::Whole
    );
}

#[test]
fn rfc9110_13_1_5_if_range_with_a_date_needs_a_strong_last_modified() {
    let lm = "Sat, 21 Nov 2026 08:00:00 GMT";
    let ask = |stored: &HeaderMap, if_range: &str| {
        answer(
            &Method::GET,
            &headers(&[("range", "bytes=0-1"), ("if-range", if_range)]),
            stored,
            Some(10),
        )
    };
    let strong = headers(&[
        ("last-modified", lm),
        ("date", "Sat, 21 Nov 2026 09:00:00 GMT"),
    ]);
    assert_eq!(ask(&strong, lm), Answer::Part { start: 0, end: 1 });
    assert_eq!(ask(&strong, "Sat, 21 Nov 2026 07:00:00 GMT"), Answer::Whole);
    // Modified within the second the response was generated: a weak validator.
    let weak = headers(&[("last-modified", lm), ("date", lm)]);
    assert_eq!(ask(&weak, lm), Answer::Whole);
    // No Date to tell: not known to be strong.
    let unknown = headers(&[("last-modified", lm)]);
    assert_eq!(ask(&unknown, lm), Answer::Whole);
}
