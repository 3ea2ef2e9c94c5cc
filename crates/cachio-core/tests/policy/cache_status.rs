//! RFC 9211 (the Cache-Status response header field).

use cachio_core::policy::status::{CacheStatus, Fwd};

/// Checks a Cache-Status value against the RFC 8941 List grammar: members of an sf-token or
/// sf-string with parameters whose values are bare items. Returns the members' names and
/// parameter names.
fn parse_list(v: &str) -> Vec<(String, Vec<(String, String)>)> {
    let b = v.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let bare = |i: &mut usize| -> String {
        let start = *i;
        match b[*i] {
            b'"' => {
                *i += 1;
                while b[*i] != b'"' {
                    assert!((0x20..0x7f).contains(&b[*i]), "non-printable in string");
                    if b[*i] == b'\\' {
                        assert!(matches!(b[*i + 1], b'"' | b'\\'), "bad escape");
                        *i += 1;
                    }
                    *i += 1;
                }
                *i += 1;
            }
            b'-' | b'0'..=b'9' => {
                *i += 1;
                while *i < b.len() && b[*i].is_ascii_digit() {
                    *i += 1;
                }
                assert!(*i - start <= 16, "integer too long");
            }
            b'?' => {
                assert!(matches!(b[*i + 1], b'0' | b'1'));
                *i += 2;
            }
            c if c.is_ascii_alphabetic() || c == b'*' => {
                while *i < b.len()
                    && (b[*i].is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b[*i]))
                {
                    *i += 1;
                }
            }
            c => panic!("not a bare item at {start}: {:?}", c as char),
        }
        v[start..*i].to_owned()
    };
    loop {
        let name = bare(&mut i);
        assert!(!name.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '?']));
        let mut params = Vec::new();
        while i < b.len() && b[i] == b';' {
            i += 1;
            while b[i] == b' ' {
                i += 1;
            }
            let start = i;
            assert!(b[i].is_ascii_lowercase() || b[i] == b'*', "bad key");
            while i < b.len()
                && (b[i].is_ascii_lowercase() || b[i].is_ascii_digit() || b"_-.*".contains(&b[i]))
            {
                i += 1;
            }
            let key = v[start..i].to_owned();
            let value = if i < b.len() && b[i] == b'=' {
                i += 1;
                bare(&mut i)
            } else {
                "?1".to_owned()
            };
            params.push((key, value));
        }
        out.push((name, params));
        if i == b.len() {
            return out;
        }
        assert_eq!(&v[i..i + 2], ", ");
        i += 2;
    }
}

fn param<'a>(v: &'a [(String, Vec<(String, String)>)], key: &str) -> Option<&'a str> {
    v[0].1
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn rfc9211_2_1_a_hit_with_its_ttl() {
    let v = CacheStatus::hit("cachio", 42).to_header_value();
    assert_eq!(v, "cachio; hit; ttl=42");
    let l = parse_list(v.to_str().unwrap());
    assert_eq!(param(&l, "hit"), Some("?1"));
    assert_eq!(param(&l, "fwd"), None);
}

#[test]
fn rfc9211_2_2_every_fwd_reason_is_a_token() {
    let all = [
        (Fwd::Bypass, "bypass"),
        (Fwd::Method, "method"),
        (Fwd::UriMiss, "uri-miss"),
        (Fwd::VaryMiss, "vary-miss"),
        (Fwd::Miss, "miss"),
        (Fwd::Request, "request"),
        (Fwd::Stale, "stale"),
        (Fwd::Partial, "partial"),
    ];
    for (fwd, token) in all {
        assert_eq!(fwd.as_str(), token);
        let v = CacheStatus::forward("cachio", fwd).to_header_value();
        let l = parse_list(v.to_str().unwrap());
        assert_eq!(param(&l, "fwd"), Some(token));
        assert_eq!(param(&l, "hit"), None, "hit and fwd are exclusive");
    }
}

#[test]
fn rfc9211_2_3_fwd_status_stored_and_collapsed_go_with_fwd() {
    let v = CacheStatus::forward("cachio", Fwd::Stale)
        .fwd_status(304)
        .stored(true)
        .collapsed(true)
        .ttl(60)
        .to_header_value();
    assert_eq!(
        v,
        "cachio; fwd=stale; fwd-status=304; ttl=60; stored; collapsed"
    );
    parse_list(v.to_str().unwrap());
    // On a hit they mean nothing and are left out.
    let v = CacheStatus::hit("cachio", 5)
        .fwd_status(200)
        .stored(true)
        .collapsed(true)
        .to_header_value();
    assert_eq!(v, "cachio; hit; ttl=5");
}

#[test]
fn rfc9211_2_4_ttl_is_negative_when_stale_and_fits_an_sf_integer() {
    assert_eq!(
        CacheStatus::hit("c", -30).to_header_value(),
        "c; hit; ttl=-30"
    );
    let v = CacheStatus::hit("c", i64::MIN).to_header_value();
    assert_eq!(v, "c; hit; ttl=-999999999999999");
    let v = CacheStatus::hit("c", i64::MAX).to_header_value();
    assert_eq!(v, "c; hit; ttl=999999999999999");
    parse_list(v.to_str().unwrap());
}

#[test]
fn rfc9211_2_the_cache_name_is_a_token_or_else_a_string() {
    let cases = [
        ("ExampleCache", "ExampleCache"),
        ("cache-3.example.com", "cache-3.example.com"),
        ("Example CDN", "\"Example CDN\""),
        ("10.0.0.1", "\"10.0.0.1\""),
        ("a\"b\\c", "\"a\\\"b\\\\c\""),
        ("café", "\"caf\""),
        ("", "\"\""),
    ];
    for (name, want) in cases {
        let v = CacheStatus::hit(name, 1).to_header_value();
        let s = v.to_str().unwrap();
        assert_eq!(s, format!("{want}; hit; ttl=1"), "{name:?}");
        parse_list(s);
    }
}

#[test]
fn rfc9211_2_7_key_is_a_string() {
    let v = CacheStatus::forward("cachio", Fwd::UriMiss)
        .key("https://a.example/p?q=\"1\"")
        .to_header_value();
    assert_eq!(
        v,
        "cachio; fwd=uri-miss; key=\"https://a.example/p?q=\\\"1\\\"\""
    );
    parse_list(v.to_str().unwrap());
}

#[test]
fn rfc9211_2_8_detail_is_a_token_or_a_string() {
    let v = CacheStatus::hit("cachio", 1)
        .detail("MEMORY")
        .to_header_value();
    assert_eq!(v, "cachio; hit; ttl=1; detail=MEMORY");
    let v = CacheStatus::hit("cachio", 1)
        .detail("stale if error")
        .to_header_value();
    assert_eq!(v, "cachio; hit; ttl=1; detail=\"stale if error\"");
    parse_list(v.to_str().unwrap());
}

#[test]
fn rfc9211_2_accessors_report_what_was_built() {
    let hit = CacheStatus::hit("c", 1);
    assert!(hit.is_hit());
    assert_eq!(hit.fwd_reason(), None);
    let miss = CacheStatus::forward("c", Fwd::VaryMiss);
    assert!(!miss.is_hit());
    assert_eq!(miss.fwd_reason(), Some(Fwd::VaryMiss));
}
