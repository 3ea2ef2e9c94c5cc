//! Serving a stored response (RFC 9111 §4): the usual hit built in place, a `304` to a client's
//! own condition (§4.3.2), a `HEAD`, a `Range` answer (RFC 9110 §14), a stale response in place of
//! an error (RFC 5861 §4), and the `504` of `only-if-cached` with nothing stored.

use cachio_core::backend::served::hit_headers;
use std::time::{Duration, SystemTime};

use cachio_core::cache_control::CacheControl;
use cachio_core::meta::{Meta, ResponseMeta};
use cachio_core::policy::status::{CacheStatus, Fwd};
use cachio_core::policy::{self, Verdict};
use cachio_core::range;
use cachio_core::store::{Hit, Store};
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode, request};
use http_body::Body;

use crate::body::ResponseBody;
use crate::config::{Config, Ctx};
use crate::service::{CACHE_STATUS, Res};
use crate::stats::Event;

/// Serves `hit` if it is a response that is fresh for this request (in the default mode), as the
/// usual path would; otherwise gives it back.
#[inline]
pub(crate) fn serve_fresh<ResB, St: Store>(
    config: &Config,
    parts: &request::Parts,
    req_cc: &CacheControl,
    hit: Hit<St::Body>,
) -> Result<Res<ResB, St>, Hit<St::Body>> {
    let Hit { meta, body } = hit;
    let Meta::Response(stored) = &*meta else {
        return Err(Hit { meta, body });
    };
    let eval = config.policy.evaluate(req_cc, stored, config.clock.now());
    if eval.verdict != Verdict::Fresh {
        return Err(Hit { meta, body });
    }
    let status = config.hit_status(eval.ttl_secs());
    Ok(serve_stored(parts, stored, eval.age, body, status))
}

/// Builds a response from a stored one (RFC 9111 §4): the stored header fields, a current `Age`
/// (§5.1), and `Cache-Status`; a `304` when the client's own condition holds (§4.3.2); no body
/// for `HEAD`.
pub(crate) fn serve_stored<ResB, St: Store>(
    parts: &request::Parts,
    stored: &ResponseMeta,
    age: Duration,
    body: St::Body,
    status: HeaderValue,
) -> Res<ResB, St> {
    let age = policy::age_value(age);
    let fields = &parts.headers;
    let conditional = !fields.is_empty()
        && (fields.contains_key(header::IF_NONE_MATCH)
            || fields.contains_key(header::IF_MODIFIED_SINCE));
    // The usual hit: the whole stored response, built in place.
    if !conditional
        && parts.method != Method::HEAD
        && (fields.is_empty() || !fields.contains_key(header::RANGE))
    {
        let mut res = Response::new(ResponseBody::cached(body));
        *res.status_mut() = stored.status();
        *res.version_mut() = stored.version();
        *res.headers_mut() = hit_headers(stored, age, status);
        return res;
    }
    let (code, headers, body) = if conditional
        && stored.status() == StatusCode::OK
        && policy::client_not_modified(&parts.headers, stored)
    {
        let mut headers = policy::not_modified_headers(&stored.fields().to_header_map(0));
        headers.insert(header::AGE, age);
        headers.append(CACHE_STATUS, status);
        (StatusCode::NOT_MODIFIED, headers, ResponseBody::empty())
    } else if parts.method == Method::HEAD {
        (
            stored.status(),
            hit_headers(stored, age, status),
            ResponseBody::empty(),
        )
    } else {
        ranged(
            parts,
            stored.status(),
            hit_headers(stored, age, status),
            body,
        )
    };
    let mut res = Response::new(body);
    *res.status_mut() = code;
    *res.version_mut() = stored.version();
    *res.headers_mut() = headers;
    res
}

pub(crate) use cachio_core::backend::content_length;

/// A stored `200` for a `GET` with `Range` (RFC 9110 §14): a `206` with the one range asked for,
/// streamed from the stored body, or a `416` when it starts past the end; the whole response
/// otherwise (several ranges, a failed `If-Range`, an unknown length), as §14.2 allows.
fn ranged<ResB, St: Store>(
    parts: &request::Parts,
    status: StatusCode,
    mut headers: http::HeaderMap,
    body: St::Body,
) -> (StatusCode, http::HeaderMap, ResponseBody<ResB, St>) {
    if status != StatusCode::OK || !parts.headers.contains_key(header::RANGE) {
        return (status, headers, ResponseBody::cached(body));
    }
    let len = body
        .size_hint()
        .exact()
        .or_else(|| content_length(&headers));
    let Some(len) = len else {
        return (status, headers, ResponseBody::cached(body));
    };
    let answer = range::answer(&parts.method, &parts.headers, &headers, Some(len));
    let Some(content_range) = range::content_range(answer, len) else {
        return (status, headers, ResponseBody::cached(body));
    };
    if let range::Answer::Part { start, end } = answer {
        let n = end - start + 1;
        headers.insert(header::CONTENT_RANGE, content_range);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        return (
            StatusCode::PARTIAL_CONTENT,
            headers,
            ResponseBody::ranged(body, start, n),
        );
    }
    // Past the end: a 416 that says how long the representation is (§15.5.17), with the hit's
    // `Age` and `Cache-Status`.
    let mut h = http::HeaderMap::with_capacity(4);
    h.insert(header::CONTENT_RANGE, content_range);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    for name in [header::AGE, CACHE_STATUS] {
        if let Some(v) = headers.remove(&name) {
            h.insert(name, v);
        }
    }
    (StatusCode::RANGE_NOT_SATISFIABLE, h, ResponseBody::empty())
}

/// `504 Gateway Timeout` for `only-if-cached` with nothing usable stored (RFC 9111 §5.2.1.7).
pub(crate) fn gateway_timeout<ResB, St: Store>(cx: &Ctx<St>) -> Res<ResB, St> {
    let status =
        CacheStatus::forward(cx.config.cache_name(), Fwd::UriMiss).detail("only-if-cached");
    let mut res = Response::new(ResponseBody::empty());
    *res.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    res.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    // The request was not forwarded: say so with a detail rather than a fwd-status.
    res.headers_mut().append(CACHE_STATUS, strip_fwd(status));
    res
}

/// The value of `status` without its `fwd=uri-miss`: for a request that was not forwarded.
fn strip_fwd(status: CacheStatus) -> HeaderValue {
    let v = status.to_header_value();
    let s = v.to_str().unwrap_or_default().replace("; fwd=uri-miss", "");
    HeaderValue::from_str(&s).unwrap_or(v)
}

/// status `code`, or no answer at all.
pub(crate) fn serve_if_error<ResB, St: Store>(
    cx: &Ctx<St>,
    parts: &request::Parts,
    req_cc: &CacheControl,
    (stored, body): (&ResponseMeta, St::Body),
    code: Option<u16>,
    now: SystemTime,
) -> Res<ResB, St> {
    let eval = cx.config.policy.evaluate(req_cc, stored, now);
    let mut status = cx.status(Fwd::Stale);
    if let Some(code) = code {
        status = status.fwd_status(code);
    }
    let status = status.ttl(eval.ttl_secs()).detail("stale-if-error");
    cx.config.count(Event::Stale);
    serve_stored(parts, stored, eval.age, body, status.to_header_value())
}

/// Serves a stored response just updated by the origin's answer (`fwd`, with status `code`) to
/// a validation: its fields, the stored body, and the lifetime the update gave it.
pub(crate) fn serve_updated<ResB, St: Store>(
    cx: &Ctx<St>,
    parts: &request::Parts,
    updated: &Meta,
    body: St::Body,
    (fwd, code): (Fwd, u16),
    now: SystemTime,
) -> Res<ResB, St> {
    let Meta::Response(m) = updated else {
        unreachable!("an update gives a response")
    };
    let eval = cx.config.policy.evaluate(&CacheControl::default(), m, now);
    let status = cx.status(fwd).fwd_status(code).ttl(eval.ttl_secs());
    serve_stored(parts, m, eval.age, body, status.to_header_value())
}
