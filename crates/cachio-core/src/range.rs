//! Range requests answered from a stored complete response (RFC 9110 §14).
//!
//! A cache may answer a `Range` request from a stored `200` whose length it knows: with a `206`
//! holding the one requested range, or a `416` when the range lies past the end. What this
//! module does not answer (several ranges, another unit, a failed `If-Range`, a `Range` that
//! does not parse) is answered with the whole response, which RFC 9110 §14.2 allows: a server
//! may ignore `Range`.
//!
//! # Example
//!
//! ```
//! use cachio_core::range::{Answer, answer};
//! use http::{HeaderMap, HeaderValue, Method, header};
//!
//! let mut req = HeaderMap::new();
//! req.insert(header::RANGE, HeaderValue::from_static("bytes=-3"));
//! let stored = HeaderMap::new();
//! assert_eq!(answer(&Method::GET, &req, &stored, Some(10)), Answer::Part { start: 7, end: 9 });
//! ```

use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, Method, header};

use crate::meta;

/// How to answer a request from a stored complete response of known length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// With the whole response: no `Range`, or one this cache does not serve.
    Whole,
    /// With a `206` of the bytes `start..=end`.
    Part {
        /// The first byte.
        start: u64,
        /// The last byte (inclusive).
        end: u64,
    },
    /// With a `416`: the range starts past the end of the representation.
    Unsatisfiable,
}

/// How to answer `method` with `req` headers from a stored `200` with `stored` headers and a body
/// of `len` bytes (`None` when the length is unknown: then always [`Answer::Whole`]).
///
/// Only `GET` has range handling (§14.2). One byte range is served (`first-last`, `first-`,
/// `-suffix`, §14.1.2), with `last` clamped to the end; an `If-Range` must match the stored
/// strong `ETag` or be the stored `Last-Modified` date when that is a strong validator (§13.1.5).
pub fn answer(method: &Method, req: &HeaderMap, stored: &HeaderMap, len: Option<u64>) -> Answer {
    let (Some(len), true) = (len, method == Method::GET) else {
        return Answer::Whole;
    };
    let mut ranges = req.get_all(header::RANGE).iter();
    let (Some(range), None) = (ranges.next(), ranges.next()) else {
        return Answer::Whole;
    };
    if let Some(if_range) = req.get(header::IF_RANGE)
        && !if_range_matches(if_range, stored)
    {
        return Answer::Whole;
    }
    // Unit names are case-insensitive (§14.1).
    let Some(spec) = range.to_str().ok().map(str::trim).and_then(|r| {
        r.get(..6)
            .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
            .map(|_| &r[6..])
    }) else {
        return Answer::Whole;
    };
    if spec.contains(',') {
        return Answer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Answer::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // A suffix: the last `n` bytes.
        let Some(n) = digits(last) else {
            return Answer::Whole;
        };
        if n == 0 || len == 0 {
            return Answer::Unsatisfiable;
        }
        return Answer::Part {
            start: len - n.min(len),
            end: len - 1,
        };
    }
    let Some(first) = digits(first) else {
        return Answer::Whole;
    };
    let last = if last.is_empty() {
        None
    } else {
        match digits(last) {
            Some(l) if l >= first => Some(l),
            // `last` before `first`, or not a number: the field is invalid, so ignored.
            _ => return Answer::Whole,
        }
    };
    if first >= len {
        return Answer::Unsatisfiable;
    }
    Answer::Part {
        start: first,
        end: last.map_or(len - 1, |l| l.min(len - 1)),
    }
}

/// The `Content-Range` of a part (`bytes 0-499/1234`) or of a 416 (`bytes */1234`).
pub fn content_range(answer: Answer, len: u64) -> Option<HeaderValue> {
    let text = match answer {
        Answer::Whole => return None,
        Answer::Part { start, end } => format!("bytes {start}-{end}/{len}"),
        Answer::Unsatisfiable => format!("bytes */{len}"),
    };
    HeaderValue::from_str(&text).ok()
}

/// Digits only (no sign, no space inside), as `1*DIGIT`; `None` on overflow.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// RFC 9110 §13.1.5: an entity tag matches by strong comparison; a date matches when it is the
/// stored `Last-Modified` exactly and that is a strong validator (at least a second before the
/// stored `Date`).
fn if_range_matches(if_range: &HeaderValue, stored: &HeaderMap) -> bool {
    let value = if_range.as_bytes().trim_ascii();
    if value.starts_with(b"\"") {
        return stored
            .get_all(header::ETAG)
            .iter()
            .any(|t| t.as_bytes().trim_ascii() == value);
    }
    if value.starts_with(b"W/") {
        return false;
    }
    let (Some(date), Some(lm)) = (
        meta::parse_http_date(if_range),
        stored.get(header::LAST_MODIFIED),
    ) else {
        return false;
    };
    let Some(lm) = meta::parse_http_date(lm) else {
        return false;
    };
    let strong = stored
        .get(header::DATE)
        .and_then(meta::parse_http_date)
        .and_then(|d: SystemTime| d.duration_since(lm).ok())
        .is_some_and(|gap| gap.as_secs() >= 1);
    strong && date == lm
}
