//! Property-style tests: thousands of random and malformed inputs through every parser and the
//! whole policy. Nothing may panic, delta-seconds stay within 2^31 (RFC 9111 §1.2.2), and a few
//! invariants hold. The generator is a seeded xorshift, so failures reproduce.

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cachio_core::cache_control::{self, CacheControl, DELTA_SECONDS_MAX};
use cachio_core::meta::{self, Meta};
use cachio_core::policy::status::{CacheStatus, Fwd};
use cachio_core::policy::{self, Policy, vary};
use common::*;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

/// How many times more inputs to try than the default (`CACHIO_ROBUSTNESS_SCALE`, 1 by default),
/// and a seed offset (`CACHIO_ROBUSTNESS_SEED`) to explore other inputs.
fn scale(n: usize) -> usize {
    let k: usize = std::env::var("CACHIO_ROBUSTNESS_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    n * k.max(1)
}

fn rng(seed: u64) -> Rng {
    let offset: u64 = std::env::var("CACHIO_ROBUSTNESS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Rng((seed ^ offset.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A field value: pieces of real syntax, odd numbers, separators, quotes and raw bytes.
    fn value(&mut self) -> HeaderValue {
        const PIECES: &[&str] = &[
            "max-age",
            "s-maxage",
            "max-stale",
            "min-fresh",
            "no-cache",
            "no-store",
            "private",
            "public",
            "must-revalidate",
            "proxy-revalidate",
            "must-understand",
            "immutable",
            "stale-while-revalidate",
            "stale-if-error",
            "only-if-cached",
            "no-transform",
            "MAX-AGE",
            "Private",
            "=",
            "=",
            ",",
            ",",
            ", ",
            " ",
            "\t",
            "\"",
            "\"",
            "\\",
            ";",
            "?1",
            "?0",
            "(",
            ")",
            ":",
            "*",
            "-",
            ".",
            "0",
            "1",
            "60",
            "-1",
            "1.5",
            "2147483648",
            "99999999999999999999999999",
            "999999999999999",
            "W/",
            "\"v1\"",
            "gzip",
            "br",
            "accept-encoding",
            "Accept-Language",
            "set-cookie",
            "x-a",
            "GMT",
            "Tue, ",
            "14 Nov 2023 ",
            "22:13:20",
            " GMT",
            "Tuesday, 14-Nov-23 22:13:20 GMT",
            "Tue Nov 14 22:13:20 2023",
            "sun, 06 nov 1994 08:49:37 gmt",
            "/",
            "//",
            "..",
            "?",
            "#",
            "http://a.example",
            "https://b.example:8443",
            "/p/../q",
            "%2F",
            "\u{e9}",
        ];
        let mut out: Vec<u8> = Vec::new();
        let parts = self.below(12);
        for _ in 0..parts {
            if self.below(4) == 0 {
                // A raw byte a header value may hold: HTAB, visible ASCII, obs-text.
                let b = match self.below(3) {
                    0 => b'\t',
                    1 => 0x20 + self.below(0x5f) as u8,
                    _ => 0x80 + self.below(0x80) as u8,
                };
                out.push(b);
            } else {
                out.extend_from_slice(self.pick(PIECES).as_bytes());
            }
        }
        HeaderValue::from_bytes(&out).expect("only bytes a field value may hold")
    }

    fn time(&mut self) -> SystemTime {
        match self.below(6) {
            0 => UNIX_EPOCH,
            1 => UNIX_EPOCH + Duration::from_secs(u64::MAX / 4),
            2 => UNIX_EPOCH + Duration::from_secs(253_402_300_799 + self.below(1000) as u64),
            _ => t(self.below(100_000) as u64),
        }
    }

    fn headers(&mut self, names: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for _ in 0..self.below(10) {
            let name = HeaderName::from_bytes(self.pick(names).as_bytes()).unwrap();
            h.append(name, self.value());
        }
        h
    }
}

const RESPONSE_FIELDS: &[&str] = &[
    "cache-control",
    "cache-control",
    "cdn-cache-control",
    "expires",
    "date",
    "last-modified",
    "age",
    "vary",
    "etag",
    "set-cookie",
    "connection",
    "pragma",
    "location",
    "content-location",
    "content-length",
    "x-a",
    "keep-alive",
];
const REQUEST_FIELDS: &[&str] = &[
    "cache-control",
    "pragma",
    "authorization",
    "accept-encoding",
    "accept-language",
    "if-none-match",
    "if-modified-since",
    "set-cookie",
    "x-a",
];

#[test]
fn rfc9111_5_2_cache_control_parsing_never_panics_and_saturates() {
    let mut rng = rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..scale(20_000) {
        let a = rng.value();
        let b = rng.value();
        let cc = CacheControl::parse([&a, &b]);
        for v in [
            cc.max_age,
            cc.s_maxage,
            cc.min_fresh,
            cc.stale_while_revalidate,
            cc.stale_if_error,
        ] {
            assert!(v.is_none_or(|v| v <= DELTA_SECONDS_MAX), "{a:?} {b:?}");
        }
        assert!(
            cc.max_stale
                .flatten()
                .is_none_or(|v| v <= DELTA_SECONDS_MAX)
        );
        if let Some(t) = CacheControl::parse_targeted([&a, &b]) {
            assert!(t.max_age.is_none_or(|v| v <= DELTA_SECONDS_MAX));
        }
        let mut h = HeaderMap::new();
        h.append("pragma", a);
        let _ = cache_control::pragma_no_cache(&h);
    }
}

#[test]
fn rfc9111_4_1_vary_parsing_never_panics_and_normalize_is_idempotent() {
    let mut rng = rng(0x0123_4567_89ab_cdef);
    let name = HeaderName::from_static("accept-encoding");
    for _ in 0..scale(20_000) {
        let mut h = HeaderMap::new();
        for _ in 0..1 + rng.below(3) {
            h.append(http::header::VARY, rng.value());
            h.append(name.clone(), rng.value());
        }
        if let Some(names) = vary::vary_names(&h) {
            let values = vary::request_values(&h, &names);
            assert!(vary::matches(&names, &values, &h));
        }
        let once = vary::normalize(&h, &name).unwrap();
        let mut again = HeaderMap::new();
        again.append(name.clone(), once.clone());
        assert_eq!(vary::normalize(&again, &name).unwrap(), once, "{h:?}");
    }
}

#[test]
fn rfc9110_5_6_7_date_parsing_never_panics_and_round_trips() {
    let mut rng = rng(0xdead_beef_cafe_f00d);
    for _ in 0..scale(20_000) {
        let _ = meta::parse_http_date(&rng.value());
    }
    for _ in 0..scale(5_000) {
        let secs = rng.next() % 253_402_300_800;
        let when = UNIX_EPOCH + Duration::from_secs(secs);
        let v = meta::fmt_http_date(when);
        assert_eq!(v.len(), 29, "{v:?}");
        assert_eq!(meta::parse_http_date(&v), Some(when));
        let lower = HeaderValue::from_str(&v.to_str().unwrap().to_lowercase()).unwrap();
        assert_eq!(meta::parse_http_date(&lower), Some(when));
    }
    // Out-of-range times are clamped, never a panic.
    let _ = meta::fmt_http_date(UNIX_EPOCH + Duration::from_secs(u64::MAX / 2));
}

#[test]
fn rfc9111_the_whole_policy_never_panics_on_random_exchanges() {
    let mut rng = rng(0x5151_5151_a5a5_a5a5);
    let policies = [
        Policy::private(),
        Policy::shared(),
        Policy::shared()
            .heuristic_percent(u32::MAX)
            .heuristic_max(Duration::MAX)
            .validator_retention(Duration::MAX)
            .stale_retention(Duration::MAX),
    ];
    let statuses = [100, 200, 203, 204, 206, 301, 302, 304, 404, 418, 500, 599];
    let methods = [Method::GET, Method::HEAD, Method::POST, Method::DELETE];
    for _ in 0..scale(5_000) {
        let p = rng.pick(&policies);
        let status = StatusCode::from_u16(*rng.pick(&statuses)).unwrap();
        let method = rng.pick(&methods).clone();
        let req = rng.headers(REQUEST_FIELDS);
        let resp = rng.headers(RESPONSE_FIELDS);
        let (t1, t2, now) = (rng.time(), rng.time(), rng.time());
        let _ = p.storable(&method, &req, status, &resp);
        let m = p.to_meta(&req, status, Version::HTTP_11, &resp, t1, t2);
        assert!(meta::parse_http_date(m.headers().get("date").unwrap()).is_some());
        let req_cc = policy::request_directives(&req);
        let e = p.evaluate(&req_cc, &m, now);
        let _ = e.ttl_secs();
        let _ = p.stale_if_error(&req_cc, &m, now);
        let _ = p.retention(&m, now);
        let _ = policy::conditional_headers(m.headers());
        let _ = policy::client_not_modified(&req, &m);
        let _ = policy::not_modified_headers(m.headers());
        let h304 = rng.headers(RESPONSE_FIELDS);
        if let Some(merged) = p.merge_not_modified(&m, &h304, now, now) {
            assert!(meta::parse_http_date(merged.headers().get("date").unwrap()).is_some());
            let _ = p.evaluate(&req_cc, &merged, now);
        }
        let target: Uri = "https://a.example/b/c?d".parse().unwrap();
        let uris = policy::invalidation_uris(&target, &resp);
        assert_eq!(uris[0], target);
        let back = Meta::decode(&Meta::Response(m).encode()).unwrap();
        assert!(back.as_response().is_some());
    }
}

#[test]
fn rfc9211_cache_status_is_always_a_valid_field_value() {
    let mut rng = rng(0x7777_1234_0000_0001);
    for _ in 0..scale(5_000) {
        let text = String::from_utf8_lossy(rng.value().as_bytes()).into_owned();
        let ttl = rng.next() as i64;
        let s = CacheStatus::forward(text.clone(), Fwd::Stale)
            .fwd_status(304)
            .ttl(ttl)
            .key(text.clone())
            .detail(text.clone())
            .to_header_value();
        assert!(s.to_str().is_ok(), "{s:?}");
        let h = CacheStatus::hit(text, ttl).to_header_value();
        assert!(h.to_str().is_ok());
    }
}

/// The stored format read back from damaged bytes (a bad disk sector, a Redis record another
/// program wrote): every cut is an error, and no flipped byte or garbage makes `decode` panic. What
/// decodes is a head every part of the cache can use: the policy, the served map, and storing it
/// again.
#[test]
fn store_format_damaged_bytes_are_an_error_or_a_usable_head_never_a_panic() {
    let mut rng = rng(0x0bad_5ec7_0bad_5ec7);
    let policies = [Policy::private(), Policy::shared()];
    let budget = cachio_core::backend::served::MapBudget::new(1 << 30);
    let mut decoded = 0;
    for round in 0..scale(300) {
        let p = rng.pick(&policies);
        let req = rng.headers(REQUEST_FIELDS);
        let resp = rng.headers(RESPONSE_FIELDS);
        let (t1, t2, now) = (rng.time(), rng.time(), rng.time());
        let m = p.to_meta(&req, StatusCode::OK, Version::HTTP_11, &resp, t1, t2);
        let bytes = Meta::Response(m).encode();
        if round % 10 == 0 {
            for cut in 0..bytes.len() {
                assert!(
                    Meta::decode(&bytes[..cut]).is_err(),
                    "a cut at {cut} decoded"
                );
            }
        }
        let mut damaged = bytes.clone();
        for _ in 0..64 {
            damaged.copy_from_slice(&bytes);
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(damaged.len());
                damaged[at] ^= 1 << rng.below(8);
            }
            decoded += usable(p, &damaged, &budget, now) as usize;
        }
        // Garbage behind a valid prefix: the magic, the format version and a kind byte.
        let mut garbage = bytes[..7].to_vec();
        garbage.extend((0..rng.below(200)).map(|_| rng.next() as u8));
        usable(p, &garbage, &budget, now);
    }
    // Flips inside header values, times and statuses still decode: the checks above ran on them.
    assert!(decoded > 1_000, "only {decoded} damaged heads decoded");
}

/// Decodes `bytes` and, when they decode, uses the head as the cache would.
fn usable(
    p: &Policy,
    bytes: &[u8],
    budget: &cachio_core::backend::served::MapBudget,
    now: SystemTime,
) -> bool {
    let Ok(meta) = Meta::decode(bytes) else {
        return false;
    };
    // Stored again, it reads back the same (times past the year 294 000 come back clamped).
    let encoded = meta.encode();
    let again = Meta::decode(&encoded).expect("a decoded head encodes to bytes that decode");
    assert_eq!(again.encode(), encoded);
    let Some(m) = meta.as_response() else {
        return true;
    };
    let e = p.evaluate(&CacheControl::default(), m, now);
    let _ = (e.ttl_secs(), p.retention(m, now));
    let _ = p.stale_if_error(&CacheControl::default(), m, now);
    if cachio_core::backend::served::keep_headers(m, budget) {
        let age = policy::age_value(e.age);
        let served = cachio_core::backend::served::hit_headers(
            m,
            age.clone(),
            HeaderValue::from_static("hit"),
        );
        // The stored lines, with the current `Age` in place of stored ones, and `Cache-Status`.
        let stored_ages = m
            .fields()
            .iter()
            .filter(|l| l.name_bytes() == b"age")
            .count();
        assert_eq!(served.len(), m.fields().len() - stored_ages + 2);
        assert_eq!(served.get_all("age").iter().collect::<Vec<_>>(), [&age]);
        assert_eq!(
            served.get_all("cache-status").iter().next_back().unwrap(),
            "hit"
        );
    }
    let _ = policy::conditional_headers(&m.fields().to_header_map(0));
    true
}
