//! RFC 9111 §4.1 (secondary keys: Vary).

use crate::common;

use cachio_core::policy::vary;
use common::*;
use http::HeaderMap;
use http::header::{ACCEPT, ACCEPT_ENCODING, ACCEPT_LANGUAGE, HeaderName};

fn names(resp: &[(&str, &str)]) -> Option<Vec<HeaderName>> {
    vary::vary_names(&headers(resp))
}

/// Whether a request with `later` matches a response stored for a request with `original`.
fn same(nominated: &[HeaderName], original: &[(&str, &str)], later: &[(&str, &str)]) -> bool {
    let stored = vary::request_values(&headers(original), nominated);
    vary::matches(nominated, &stored, &headers(later))
}

#[test]
fn rfc9111_4_1_vary_names_are_lowercased_deduplicated_and_read_from_every_line() {
    assert_eq!(
        names(&[
            ("vary", "Accept-Encoding, ACCEPT"),
            ("vary", "accept-encoding , Accept-Language")
        ]),
        Some(vec![ACCEPT_ENCODING, ACCEPT, ACCEPT_LANGUAGE])
    );
    assert_eq!(names(&[]), Some(vec![]));
    assert_eq!(names(&[("vary", " , ")]), Some(vec![]));
}

#[test]
fn rfc9111_4_1_vary_star_always_fails_to_match() {
    assert_eq!(names(&[("vary", "*")]), None);
    assert_eq!(
        names(&[("vary", "accept"), ("vary", "accept-language, *")]),
        None
    );
}

#[test]
fn rfc9111_4_1_a_vary_member_that_is_no_field_name_can_never_match() {
    assert_eq!(names(&[("vary", "accept, not a name")]), None);
}

#[test]
fn rfc9111_4_1_whitespace_differences_match() {
    let n = [ACCEPT_ENCODING];
    assert!(same(
        &n,
        &[("accept-encoding", "gzip,br")],
        &[("accept-encoding", "gzip , \tbr ")]
    ));
}

/// Language ranges, content codings and parameter names are case-insensitive (RFC 9110
/// §12.5.3, §12.5.4), so case and the spacing of parameters are normalised away; order is not.
#[test]
fn rfc9111_4_1_accept_language_and_encoding_match_whatever_their_case() {
    let lang = [ACCEPT_LANGUAGE];
    assert!(same(
        &lang,
        &[("accept-language", "en-GB, de;q=0.5")],
        &[("accept-language", "EN-gb ,De ; Q = 0.5")]
    ));
    assert!(!same(
        &lang,
        &[("accept-language", "en, de")],
        &[("accept-language", "de, en")]
    ));
    assert!(!same(
        &lang,
        &[("accept-language", "de;q=0.5")],
        &[("accept-language", "de;q=0.6")]
    ));
    let enc = [ACCEPT_ENCODING];
    assert!(same(
        &enc,
        &[("accept-encoding", "gzip, br")],
        &[("accept-encoding", "GZip, BR")]
    ));
    // Other fields keep their case: a value may be case-sensitive.
    assert!(!same(
        &[ACCEPT],
        &[("accept", "text/html;level=A")],
        &[("accept", "text/html;level=a")]
    ));
}

#[test]
fn rfc9111_4_1_combined_field_lines_match_one_line() {
    let n = [ACCEPT_LANGUAGE];
    assert!(same(
        &n,
        &[("accept-language", "en, de")],
        &[("accept-language", "en"), ("accept-language", "de")]
    ));
}

#[test]
fn rfc9111_4_1_every_field_line_is_compared_not_only_the_first() {
    // http-cache-semantics compares the first line only and calls these equal.
    let n = [ACCEPT_ENCODING];
    assert!(!same(
        &n,
        &[("accept-encoding", "gzip"), ("accept-encoding", "br")],
        &[("accept-encoding", "gzip"), ("accept-encoding", "zstd")]
    ));
    assert!(!same(
        &n,
        &[("accept-encoding", "gzip")],
        &[("accept-encoding", "gzip"), ("accept-encoding", "br")]
    ));
}

#[test]
fn rfc9111_4_1_different_values_do_not_match() {
    let n = [ACCEPT_LANGUAGE];
    assert!(!same(
        &n,
        &[("accept-language", "en")],
        &[("accept-language", "de")]
    ));
    // Order is kept: reordering is only allowed where the field says it is insignificant.
    assert!(!same(
        &n,
        &[("accept-language", "en, de")],
        &[("accept-language", "de, en")]
    ));
}

#[test]
fn rfc9111_4_1_an_absent_field_only_matches_an_absent_field() {
    let n = [ACCEPT_LANGUAGE];
    assert!(same(&n, &[], &[]));
    assert!(!same(&n, &[], &[("accept-language", "en")]));
    assert!(!same(&n, &[("accept-language", "en")], &[]));
    assert!(!same(&n, &[("accept-language", "")], &[]));
}

#[test]
fn rfc9111_4_1_commas_inside_quoted_strings_are_not_list_separators() {
    let h: HeaderMap = headers(&[("x-pref", "a=\"1, 2\" ,b")]);
    let v = vary::normalize(&h, &HeaderName::from_static("x-pref")).unwrap();
    assert_eq!(v, "a=\"1, 2\", b");
}

#[test]
fn rfc9111_4_1_every_nominated_field_must_match() {
    let n = [ACCEPT_ENCODING, ACCEPT_LANGUAGE];
    let original = [("accept-encoding", "gzip"), ("accept-language", "en")];
    assert!(same(&n, &original, &original));
    assert!(!same(
        &n,
        &original,
        &[("accept-encoding", "gzip"), ("accept-language", "de")]
    ));
    assert!(!same(
        &n,
        &original,
        &[("accept-encoding", "br"), ("accept-language", "en")]
    ));
    // Fields not nominated do not matter.
    assert!(same(
        &n,
        &original,
        &[
            ("accept-encoding", "gzip"),
            ("accept-language", "en"),
            ("user-agent", "x")
        ]
    ));
}

#[test]
fn rfc9111_4_1_stored_values_of_another_length_never_match() {
    let n = [ACCEPT_ENCODING, ACCEPT_LANGUAGE];
    let stored = vary::request_values(&headers(&[]), &n[..1]);
    assert!(!vary::matches(&n, &stored, &headers(&[])));
}

#[test]
fn rfc9111_4_1_normalize_is_idempotent() {
    let h = headers(&[
        ("accept", " text/html ,, application/json;q=0.9 "),
        ("accept", "*/*"),
    ]);
    let once = vary::normalize(&h, &ACCEPT).unwrap();
    assert_eq!(once, "text/html, application/json;q=0.9, */*");
    let again = vary::normalize(&headers(&[("accept", once.to_str().unwrap())]), &ACCEPT).unwrap();
    assert_eq!(once, again);
}

#[test]
fn rfc9110_5_3_a_quoted_string_split_across_lines_reads_like_the_combined_line() {
    let n = [HeaderName::from_static("x-pref")];
    // The second line starts inside the quoted string the first one opened: its " , " is text.
    assert!(same(
        &n,
        &[("x-pref", "a=\"3"), ("x-pref", "4 , 5\", b")],
        &[("x-pref", "a=\"3, 4 , 5\", b")]
    ));
}
