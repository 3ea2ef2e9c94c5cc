//! Helpers shared by the integration tests: fixed times, header maps, stored responses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cachio_core::cache_control::CacheControl;
use cachio_core::meta::{self, ResponseMeta};
use cachio_core::policy::Policy;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};

/// The reference instant of every test: 2023-11-14T22:13:20Z.
pub const T0: u64 = 1_700_000_000;

/// `UNIX_EPOCH + secs`.
pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// `T0 + secs`.
pub fn t(secs: u64) -> SystemTime {
    at(T0 + secs)
}

/// An IMF-fixdate for `T0 + secs`.
pub fn date(secs: u64) -> String {
    meta::fmt_http_date(t(secs)).to_str().unwrap().to_owned()
}

/// An IMF-fixdate for `T0 - secs`.
pub fn date_before(secs: u64) -> String {
    meta::fmt_http_date(at(T0 - secs))
        .to_str()
        .unwrap()
        .to_owned()
}

/// A header map with these lines, in order (repeated names become several lines).
pub fn headers(lines: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in lines {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    h
}

/// Every value of `name`, as strings, in order.
pub fn values(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Request directives parsed from one `Cache-Control` value.
pub fn req_cc(value: &str) -> CacheControl {
    CacheControl::parse([&HeaderValue::from_str(value).unwrap()])
}

/// A 200 response stored by `policy`, requested at `T0 + request` and received at
/// `T0 + response`, for a request without header fields.
pub fn stored_at(
    policy: &Policy,
    resp: &[(&str, &str)],
    request: u64,
    response: u64,
) -> ResponseMeta {
    stored_status(policy, StatusCode::OK, resp, request, response)
}

/// A response with `status` stored by `policy` (see [`stored_at`]).
pub fn stored_status(
    policy: &Policy,
    status: StatusCode,
    resp: &[(&str, &str)],
    request: u64,
    response: u64,
) -> ResponseMeta {
    policy.to_meta(
        &HeaderMap::new(),
        status,
        Version::HTTP_11,
        &headers(resp),
        t(request),
        t(response),
    )
}

/// A 200 response received at `T0` with `Date: T0` and these other fields, stored by `policy`.
pub fn stored(policy: &Policy, resp: &[(&str, &str)]) -> ResponseMeta {
    let d = date(0);
    let mut all: Vec<(&str, &str)> = vec![("date", d.as_str())];
    all.extend_from_slice(resp);
    stored_at(policy, &all, 0, 0)
}

/// A response head built directly, without `Policy::to_meta` (so no `Date` is added).
pub fn raw_meta(resp: &[(&str, &str)], request: u64, response: u64) -> ResponseMeta {
    ResponseMeta::new(
        StatusCode::OK,
        Version::HTTP_11,
        headers(resp),
        Vec::new(),
        t(request),
        t(response),
    )
}

/// `Duration::from_secs`.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
