//! RFC 9111 §4.3.1–§4.3.4 (validation, freshening) and §3.2 (updating stored header fields).

use crate::common;

use cachio_core::meta::ResponseMeta;
use cachio_core::policy::{self, Policy, Verdict};
use common::*;
use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH};

fn merge(
    p: &Policy,
    stored: &ResponseMeta,
    h304: &[(&str, &str)],
    at: u64,
) -> Option<ResponseMeta> {
    p.merge_not_modified(stored, &headers(h304), t(at), t(at))
}

// ---- §4.3.1 ---------------------------------------------------------------------------------

#[test]
fn rfc9111_4_3_1_validation_sends_the_entity_tag_and_last_modified() {
    let lm = date_before(100);
    let h = headers(&[("etag", "\"v1\""), ("last-modified", &lm)]);
    let c = policy::conditional_headers(&h);
    assert_eq!(
        c,
        vec![
            (IF_NONE_MATCH, "\"v1\"".parse().unwrap()),
            (IF_MODIFIED_SINCE, lm.parse().unwrap()),
        ]
    );
}

#[test]
fn rfc9111_4_3_1_every_stored_entity_tag_is_sent() {
    let h = headers(&[("etag", "W/\"a\""), ("etag", "\"b\"")]);
    let c = policy::conditional_headers(&h);
    assert_eq!(c, vec![(IF_NONE_MATCH, "W/\"a\", \"b\"".parse().unwrap())]);
}

#[test]
fn rfc9111_4_3_1_an_invalid_last_modified_is_not_sent() {
    assert!(policy::conditional_headers(&headers(&[("last-modified", "whenever")])).is_empty());
    assert!(policy::conditional_headers(&headers(&[])).is_empty());
}

// ---- §4.3.2 ---------------------------------------------------------------------------------

fn client_304(req: &[(&str, &str)], resp: &[(&str, &str)]) -> bool {
    let m = stored(&Policy::private(), resp);
    policy::client_not_modified(&headers(req), &m)
}

#[test]
fn rfc9111_4_3_2_if_none_match_uses_weak_comparison() {
    let resp = [("etag", "\"v1\"")];
    assert!(client_304(&[("if-none-match", "\"v1\"")], &resp));
    assert!(client_304(&[("if-none-match", "W/\"v1\"")], &resp));
    assert!(client_304(&[("if-none-match", "\"x\", W/\"v1\"")], &resp));
    assert!(client_304(
        &[("if-none-match", "\"x\""), ("if-none-match", "\"v1\"")],
        &resp
    ));
    assert!(!client_304(&[("if-none-match", "\"v2\"")], &resp));
    assert!(client_304(
        &[("if-none-match", "\"v1\"")],
        &[("etag", "W/\"v1\"")]
    ));
}

#[test]
fn rfc9111_4_3_2_if_none_match_star_matches_any_stored_response() {
    assert!(client_304(&[("if-none-match", "*")], &[]));
}

#[test]
fn rfc9111_4_3_2_entity_tags_may_contain_commas() {
    let resp = [("etag", "\"a,b\"")];
    assert!(client_304(&[("if-none-match", "\"x\", \"a,b\"")], &resp));
    assert!(!client_304(&[("if-none-match", "\"a\", \"b\"")], &resp));
}

#[test]
fn rfc9111_4_3_2_if_none_match_takes_precedence_over_if_modified_since() {
    let resp = [("etag", "\"v1\""), ("last-modified", &date_before(100))];
    let resp: Vec<(&str, &str)> = resp.iter().map(|(n, v)| (*n, *v)).collect();
    // The date alone would say "not modified", the tag says "modified".
    assert!(!client_304(
        &[("if-none-match", "\"v2\""), ("if-modified-since", &date(0))],
        &resp
    ));
}

#[test]
fn rfc9111_4_3_2_if_modified_since_compares_last_modified() {
    let lm = date_before(100);
    let resp = [("last-modified", lm.as_str())];
    assert!(client_304(
        &[("if-modified-since", &date_before(100))],
        &resp
    ));
    assert!(client_304(
        &[("if-modified-since", &date_before(50))],
        &resp
    ));
    assert!(!client_304(
        &[("if-modified-since", &date_before(101))],
        &resp
    ));
    assert!(!client_304(&[("if-modified-since", "not a date")], &resp));
}

#[test]
fn rfc9111_4_3_2_if_modified_since_without_last_modified_uses_date() {
    // stored() sets Date: T0.
    assert!(client_304(&[("if-modified-since", &date(0))], &[]));
    assert!(!client_304(&[("if-modified-since", &date_before(1))], &[]));
}

#[test]
fn rfc9111_4_3_2_if_modified_since_without_date_uses_the_receipt_time() {
    let m = raw_meta(&[], 0, 10);
    assert!(policy::client_not_modified(
        &headers(&[("if-modified-since", &date(10))]),
        &m
    ));
    assert!(!policy::client_not_modified(
        &headers(&[("if-modified-since", &date(9))]),
        &m
    ));
}

#[test]
fn rfc9110_15_4_5_a_generated_304_carries_the_required_fields_only() {
    let h = headers(&[
        ("date", &date(0)),
        ("etag", "\"v1\""),
        ("last-modified", &date_before(10)),
        ("cache-control", "max-age=60"),
        ("expires", &date(60)),
        ("vary", "accept"),
        ("content-location", "/a.en"),
        ("content-type", "text/html"),
        ("content-length", "1234"),
        ("set-cookie", "a=1"),
    ]);
    let out = policy::not_modified_headers(&h);
    for name in [
        "date",
        "etag",
        "cache-control",
        "expires",
        "vary",
        "content-location",
    ] {
        assert_eq!(out.get(name), h.get(name), "{name}");
    }
    for name in [
        "content-type",
        "content-length",
        "set-cookie",
        "last-modified",
    ] {
        assert!(!out.contains_key(name), "{name}");
    }
    // Without an entity tag, Last-Modified helps the recipient update its cache.
    let out = policy::not_modified_headers(&headers(&[("last-modified", &date_before(10))]));
    assert!(out.contains_key("last-modified"));
}

// ---- §4.3.4 selection -----------------------------------------------------------------------

#[test]
fn rfc9111_4_3_4_a_strong_entity_tag_must_match_a_stored_one() {
    let p = Policy::private();
    let m = stored(&p, &[("etag", "\"v1\""), ("cache-control", "max-age=60")]);
    assert!(merge(&p, &m, &[("etag", "\"v1\"")], 100).is_some());
    assert!(merge(&p, &m, &[("etag", "\"v2\"")], 100).is_none());
}

#[test]
fn rfc9111_4_3_4_a_strong_entity_tag_does_not_select_a_weak_stored_one() {
    let p = Policy::private();
    let m = stored(&p, &[("etag", "W/\"v1\"")]);
    assert!(merge(&p, &m, &[("etag", "\"v1\"")], 100).is_none());
}

#[test]
fn rfc9111_4_3_4_weak_entity_tags_match_weakly() {
    let p = Policy::private();
    let m = stored(&p, &[("etag", "\"v1\"")]);
    assert!(merge(&p, &m, &[("etag", "W/\"v1\"")], 100).is_some());
    assert!(merge(&p, &m, &[("etag", "W/\"v2\"")], 100).is_none());
}

#[test]
fn rfc9111_4_3_4_a_last_modified_alone_must_match_the_stored_one() {
    let p = Policy::private();
    let lm = date_before(100);
    let m = stored(&p, &[("last-modified", &lm)]);
    assert!(merge(&p, &m, &[("last-modified", &lm)], 100).is_some());
    assert!(merge(&p, &m, &[("last-modified", &date_before(50))], 100).is_none());
    // The same instant written differently still matches.
    assert!(merge(&p, &m, &[("last-modified", &lm.to_lowercase())], 100).is_some());
    // A stored response without Last-Modified does not correspond to it.
    let etag_only = stored(&p, &[("etag", "\"v1\"")]);
    assert!(merge(&p, &etag_only, &[("last-modified", &lm)], 100).is_none());
}

#[test]
fn rfc9111_4_3_4_no_validator_selects_only_a_stored_response_without_one() {
    let p = Policy::private();
    let plain = stored(&p, &[("cache-control", "max-age=5")]);
    assert!(merge(&p, &plain, &[("cache-control", "max-age=60")], 100).is_some());
    let tagged = stored(&p, &[("etag", "\"v1\"")]);
    assert!(merge(&p, &tagged, &[("cache-control", "max-age=60")], 100).is_none());
}

// ---- §3.2 update ----------------------------------------------------------------------------

#[test]
fn rfc9111_3_2_a_304_field_replaces_every_stored_line_of_that_name() {
    let p = Policy::private();
    let m = stored(
        &p,
        &[
            ("etag", "\"v1\""),
            ("link", "</a>; rel=preload"),
            ("link", "</b>; rel=preload"),
            ("cache-control", "max-age=5"),
        ],
    );
    let merged = merge(
        &p,
        &m,
        &[
            ("etag", "\"v1\""),
            ("link", "</c>; rel=preload"),
            ("cache-control", "max-age=60"),
        ],
        100,
    )
    .unwrap();
    assert_eq!(values(merged.headers(), "link"), ["</c>; rel=preload"]);
    assert_eq!(values(merged.headers(), "cache-control"), ["max-age=60"]);
}

#[test]
fn rfc9111_3_2_multi_valued_fields_stay_whole_on_both_sides() {
    // http-cache-semantics keeps one line per name on a 304 merge.
    let p = Policy::private();
    let m = stored(
        &p,
        &[
            ("etag", "\"v1\""),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("link", "</a>"),
            ("link", "</b>"),
        ],
    );
    let merged = merge(
        &p,
        &m,
        &[
            ("etag", "\"v1\""),
            ("link", "</c>"),
            ("link", "</d>"),
            ("link", "</e>"),
        ],
        100,
    )
    .unwrap();
    assert_eq!(values(merged.headers(), "set-cookie"), ["a=1", "b=2"]);
    assert_eq!(values(merged.headers(), "link"), ["</c>", "</d>", "</e>"]);
}

#[test]
fn rfc9111_3_2_fields_only_in_the_304_are_added() {
    // http-cache-semantics drops them.
    let p = Policy::private();
    let m = stored(&p, &[("etag", "\"v1\"")]);
    let merged = merge(
        &p,
        &m,
        &[
            ("etag", "\"v1\""),
            ("x-new", "1"),
            ("cache-control", "max-age=60"),
        ],
        100,
    )
    .unwrap();
    assert_eq!(values(merged.headers(), "x-new"), ["1"]);
    assert_eq!(values(merged.headers(), "cache-control"), ["max-age=60"]);
}

#[test]
fn rfc9111_3_2_content_length_and_content_range_are_not_updated_content_encoding_is() {
    let p = Policy::private();
    let m = stored(
        &p,
        &[
            ("etag", "\"v1\""),
            ("content-length", "10"),
            ("content-encoding", "gzip"),
            ("content-range", "bytes 0-9/10"),
            ("content-type", "text/plain"),
        ],
    );
    let merged = merge(
        &p,
        &m,
        &[
            ("etag", "\"v1\""),
            ("content-length", "0"),
            ("content-encoding", "br"),
            ("content-range", "bytes 0-0/1"),
            ("content-type", "text/html"),
        ],
        100,
    )
    .unwrap();
    assert_eq!(values(merged.headers(), "content-length"), ["10"]);
    assert_eq!(values(merged.headers(), "content-range"), ["bytes 0-9/10"]);
    // The stored bytes are the ones received, not decoded: the exception §3.2 makes for
    // `Content-Encoding` (a cache that stores decoded content) does not apply.
    assert_eq!(values(merged.headers(), "content-encoding"), ["br"]);
    // Content-* is not a signal by itself (§3.2): Content-Type is updated.
    assert_eq!(values(merged.headers(), "content-type"), ["text/html"]);
}

#[test]
fn rfc9111_3_2_fields_excepted_from_storage_are_not_added() {
    let p = Policy::shared().store_set_cookie(true);
    let m = stored(&p, &[("etag", "\"v1\"")]);
    let merged = merge(
        &p,
        &m,
        &[
            ("etag", "\"v1\""),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authenticate", "Basic"),
            (
                "cache-control",
                "max-age=60, no-cache=\"x-secret\", private=\"x-user\"",
            ),
            ("x-secret", "s"),
            ("x-user", "u"),
        ],
        100,
    )
    .unwrap();
    for gone in [
        "connection",
        "x-hop",
        "keep-alive",
        "proxy-authenticate",
        "x-secret",
        "x-user",
    ] {
        assert!(!merged.headers().contains_key(gone), "{gone}");
    }
}

#[test]
fn rfc9111_4_3_4_a_freshened_response_is_fresh_again() {
    let p = Policy::private();
    let m = stored(&p, &[("etag", "\"v1\""), ("cache-control", "max-age=60")]);
    assert_eq!(
        p.evaluate(&Default::default(), &m, t(100)).verdict,
        Verdict::Revalidate
    );
    let merged = merge(&p, &m, &[("etag", "\"v1\""), ("date", &date(100))], 100).unwrap();
    let e = p.evaluate(&Default::default(), &merged, t(110));
    assert_eq!(e.age, secs(10));
    assert_eq!(e.verdict, Verdict::Fresh);
    assert_eq!(merged.request_time(), t(100));
    assert_eq!(merged.response_time(), t(100));
}

#[test]
fn rfc9111_4_3_4_a_304_without_date_is_dated_when_received() {
    // The stored Date (T0) must not survive, or the response would be 100 s old at once.
    let p = Policy::private();
    let m = stored(&p, &[("etag", "\"v1\""), ("cache-control", "max-age=60")]);
    let merged = merge(&p, &m, &[("etag", "\"v1\"")], 100).unwrap();
    assert_eq!(values(merged.headers(), "date"), [date(100)]);
    assert_eq!(p.current_age(&merged, t(100)), secs(0));
    assert_eq!(
        p.evaluate(&Default::default(), &merged, t(130)).verdict,
        Verdict::Fresh
    );
}

#[test]
fn rfc9111_4_3_4_an_old_age_is_not_carried_over() {
    let p = Policy::private();
    let m = stored(
        &p,
        &[
            ("etag", "\"v1\""),
            ("age", "50"),
            ("cache-control", "max-age=60"),
        ],
    );
    let merged = merge(&p, &m, &[("etag", "\"v1\""), ("date", &date(100))], 100).unwrap();
    assert!(!merged.headers().contains_key("age"));
    assert_eq!(p.current_age(&merged, t(100)), secs(0));
    // An Age on the 304 itself is the new one.
    let merged = merge(
        &p,
        &m,
        &[("etag", "\"v1\""), ("date", &date(100)), ("age", "7")],
        100,
    )
    .unwrap();
    assert_eq!(p.current_age(&merged, t(100)), secs(7));
}

#[test]
fn rfc9111_4_3_4_the_merge_keeps_status_and_vary_values() {
    let p = Policy::private();
    let req = headers(&[("accept-language", "en")]);
    let m = p.to_meta(
        &req,
        http::StatusCode::NOT_FOUND,
        http::Version::HTTP_11,
        &headers(&[
            ("date", &date(0)),
            ("vary", "accept-language"),
            ("etag", "\"x\""),
        ]),
        t(0),
        t(0),
    );
    let merged = merge(&p, &m, &[("etag", "\"x\"")], 10).unwrap();
    assert_eq!(merged.status(), http::StatusCode::NOT_FOUND);
    assert_eq!(merged.vary_values(), m.vary_values());
}

// ---- §4.3.5 ---------------------------------------------------------------------------------

fn merge_head(stored: &ResponseMeta, head: &[(&str, &str)], len: u64) -> Option<ResponseMeta> {
    Policy::private().merge_head(stored, &headers(head), Some(len), t(50), t(50))
}

#[test]
fn rfc9111_4_3_5_a_head_response_without_validators_or_length_updates() {
    let s = stored(
        &Policy::private(),
        &[("cache-control", "max-age=10"), ("x-a", "1")],
    );
    let m = merge_head(&s, &[("cache-control", "max-age=99"), ("x-b", "2")], 5).unwrap();
    assert_eq!(values(m.headers(), "cache-control"), ["max-age=99"]);
    assert_eq!(
        values(m.headers(), "x-a"),
        ["1"],
        "fields the HEAD lacks are kept"
    );
    assert_eq!(values(m.headers(), "x-b"), ["2"]);
}

#[test]
fn rfc9111_4_3_5_content_length_must_be_the_stored_body_s_length() {
    let s = stored(&Policy::private(), &[("content-length", "5")]);
    assert!(merge_head(&s, &[("content-length", "5")], 5).is_some());
    assert!(merge_head(&s, &[("content-length", " 5 ")], 5).is_some());
    assert!(merge_head(&s, &[("content-length", "6")], 5).is_none());
    assert!(merge_head(&s, &[("content-length", "five")], 5).is_none());
    // The stored length stays (§3.2: Content-Length is not updated).
    let m = merge_head(&s, &[("content-length", "5"), ("x", "1")], 5).unwrap();
    assert_eq!(values(m.headers(), "content-length"), ["5"]);
}

#[test]
fn rfc9111_4_3_5_each_validator_received_must_match_the_stored_one() {
    let lm = date_before(100);
    let s = stored(
        &Policy::private(),
        &[("etag", "\"a\", W/\"b\""), ("last-modified", &lm)],
    );
    assert!(merge_head(&s, &[("etag", "W/\"b\""), ("etag", "\"a\"")], 0).is_some());
    assert!(
        merge_head(&s, &[("etag", "\"a\"")], 0).is_none(),
        "a tag missing"
    );
    assert!(
        merge_head(&s, &[("etag", "\"b\", W/\"a\"")], 0).is_none(),
        "weakness differs"
    );
    let only_lm = stored(&Policy::private(), &[("last-modified", &lm)]);
    assert!(merge_head(&only_lm, &[("last-modified", &lm)], 0).is_some());
    assert!(merge_head(&only_lm, &[("last-modified", &date_before(99))], 0).is_none());
    assert!(merge_head(&only_lm, &[("last-modified", "garbage")], 0).is_none());
    // A validator the stored response does not have is another representation's.
    let bare = stored(&Policy::private(), &[("x", "1")]);
    assert!(merge_head(&bare, &[("etag", "\"a\"")], 0).is_none());
    assert!(merge_head(&bare, &[("last-modified", &lm)], 0).is_none());
}

#[test]
fn rfc9111_4_3_5_a_head_without_the_stored_strongest_validator_does_not_update() {
    let lm = date_before(100);
    let s = stored(
        &Policy::private(),
        &[("etag", "\"a\""), ("last-modified", &lm)],
    );
    // The ETag vouches for the body; the date alone may be shared by two bodies of one second.
    assert!(merge_head(&s, &[("etag", "\"a\"")], 0).is_some());
    assert!(merge_head(&s, &[("last-modified", &lm)], 0).is_none());
    assert!(merge_head(&s, &[("x", "1")], 0).is_none());
    let only_lm = stored(&Policy::private(), &[("last-modified", &lm)]);
    assert!(merge_head(&only_lm, &[("x", "1")], 0).is_none());
}

#[test]
fn rfc9111_4_3_5_a_head_200_does_not_update_a_stored_response_of_another_status() {
    let gone = stored_status(
        &Policy::private(),
        http::StatusCode::NOT_FOUND,
        &[("cache-control", "max-age=10")],
        0,
        0,
    );
    assert!(merge_head(&gone, &[("cache-control", "max-age=99")], 0).is_none());
}
