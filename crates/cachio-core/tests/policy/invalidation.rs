//! RFC 9111 §4.4 (invalidating stored responses).

use crate::common;

use cachio_core::policy::{self, invalidates};
use common::*;
use http::{Method, StatusCode, Uri};

fn uris(target: &str, resp: &[(&str, &str)]) -> Vec<String> {
    let target: Uri = target.parse().unwrap();
    policy::invalidation_uris(&target, &headers(resp))
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn rfc9111_4_4_an_unsafe_method_with_a_non_error_status_invalidates() {
    for m in ["POST", "PUT", "DELETE", "PATCH", "PURGE", "X-UNKNOWN"] {
        let m = Method::from_bytes(m.as_bytes()).unwrap();
        for s in [200, 201, 204, 301, 302, 303, 304, 307] {
            assert!(invalidates(&m, StatusCode::from_u16(s).unwrap()), "{m} {s}");
        }
    }
}

#[test]
fn rfc9111_4_4_an_error_status_does_not_invalidate() {
    for s in [400, 404, 409, 500, 503] {
        assert!(
            !invalidates(&Method::POST, StatusCode::from_u16(s).unwrap()),
            "{s}"
        );
    }
}

#[test]
fn rfc9111_4_4_an_interim_response_does_not_invalidate() {
    assert!(!invalidates(&Method::POST, StatusCode::CONTINUE));
    assert!(!invalidates(
        &Method::POST,
        StatusCode::from_u16(103).unwrap()
    ));
}

#[test]
fn rfc9110_9_2_1_safe_methods_never_invalidate() {
    for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
        assert!(policy::is_safe(&m));
        assert!(!invalidates(&m, StatusCode::OK));
    }
    assert!(!policy::is_safe(&Method::POST));
}

#[test]
fn rfc9111_4_4_the_target_uri_is_invalidated() {
    assert_eq!(
        uris("http://a.example/p?q=1", &[]),
        ["http://a.example/p?q=1"]
    );
}

#[test]
fn rfc9111_4_4_location_and_content_location_of_the_same_origin_are_invalidated() {
    assert_eq!(
        uris(
            "https://a.example/items",
            &[
                ("location", "https://a.example/items/7"),
                ("content-location", "/items/7.json")
            ]
        ),
        [
            "https://a.example/items",
            "https://a.example/items/7",
            "https://a.example/items/7.json"
        ]
    );
}

#[test]
fn rfc9111_4_4_another_origin_is_never_invalidated() {
    let target = "https://a.example/x";
    for other in [
        "https://b.example/x",
        "http://a.example/x",
        "https://a.example:8443/x",
        "//b.example/x",
    ] {
        assert_eq!(uris(target, &[("location", other)]), [target], "{other}");
    }
    // The default port is the same origin.
    assert_eq!(
        uris(
            "https://a.example/x",
            &[("location", "https://A.EXAMPLE:443/y")]
        )
        .len(),
        2
    );
}

#[test]
fn rfc3986_5_2_relative_references_are_resolved_against_the_target() {
    let target = "http://a.example/b/c/d?q";
    let cases = [
        ("g", "http://a.example/b/c/g"),
        ("./g", "http://a.example/b/c/g"),
        ("g/", "http://a.example/b/c/g/"),
        ("/g", "http://a.example/g"),
        ("?y", "http://a.example/b/c/d?y"),
        ("g?y", "http://a.example/b/c/g?y"),
        ("g#s", "http://a.example/b/c/g"),
        ("..", "http://a.example/b/"),
        ("../g", "http://a.example/b/g"),
        ("../../g", "http://a.example/g"),
        ("../../../g", "http://a.example/g"),
        ("/./g", "http://a.example/g"),
        ("/a/../g", "http://a.example/g"),
        ("//a.example/z/./y", "http://a.example/z/y"),
        ("http://a.example/x/../y", "http://a.example/y"),
    ];
    for (reference, want) in cases {
        let got = uris(target, &[("content-location", reference)]);
        assert_eq!(got.get(1).map(String::as_str), Some(want), "{reference}");
    }
}

#[test]
fn rfc9111_4_4_unusable_references_are_skipped() {
    let target = "http://a.example/x";
    for bad in ["mailto:x@a.example", "http://[bad", ""] {
        assert_eq!(uris(target, &[("location", bad)]), [target], "{bad:?}");
    }
    // Relative references need an absolute target.
    let got = policy::invalidation_uris(&"/x".parse().unwrap(), &headers(&[("location", "/y")]));
    assert_eq!(got.len(), 1);
}
