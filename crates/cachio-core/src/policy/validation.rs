//! Validation (RFC 9111 §4.3): the conditional request that validates a stored response, how a
//! `304` or a `HEAD` response updates it, and answering a client's own conditional request.

use std::time::SystemTime;

use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::Policy;
use crate::backend::{self, hop};
use crate::meta::{self, ResponseMeta};

impl Policy {
    /// Updates a stored response with a 304's header fields (RFC 9111 §3.2, §4.3.4).
    ///
    /// Every field of the 304 replaces all stored lines of that name (so multi-valued fields stay
    /// whole), fields only in the 304 are added, and the rest are kept; hop-by-hop fields,
    /// `Content-Length`, `Content-Range` and the fields the 304's own
    /// `no-cache="…"` (and, shared, `private="…"`) name are not updated (§3.1, §3.2).
    ///
    /// The age of the result is counted from this exchange: its `Date` is the 304's (or
    /// `response_time` when the 304 has no valid one, RFC 9110 §6.6.1) and a stored `Age` the 304
    /// does not repeat is dropped, since it described the old exchange (§4.2.3).
    ///
    /// Returns `None` when the 304 does not select this response (§4.3.4): its strong entity
    /// tags are not among the stored ones; or it has only weak tags and none matches weakly; or it
    /// has only a `Last-Modified` that differs from the stored one; or it carries no validator
    /// at all while the stored response has one.
    pub fn merge_not_modified(
        &self,
        stored: &ResponseMeta,
        headers_304: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Option<ResponseMeta> {
        let merged = stored.fields().to_header_map(0);
        if !not_modified_selects(&merged, headers_304) {
            return None;
        }
        Some(self.update_fields(stored, merged, headers_304, request_time, response_time))
    }

    /// Updates a stored `GET` response with a `200` response to a `HEAD` for the same request
    /// (RFC 9111 §4.3.5), as [`merge_not_modified`](Self::merge_not_modified) does with a 304.
    ///
    /// The `HEAD` response describes the stored one only when every validator it carries
    /// (`ETag`, `Last-Modified`) has the same value in the stored response and, when it carries a
    /// `Content-Length`, that is `stored_len`, the stored body's length. Otherwise the resource
    /// has changed since it was stored, and this returns `None`: the stored response is to be
    /// treated as stale (a cache can drop it).
    ///
    /// Two more cases return `None`, where §4.3.5 leaves the choice to the cache: a stored
    /// response that is not a `200` (the `HEAD` says the resource is now there), and a `HEAD`
    /// that lacks the stored response's strongest validator (its `ETag`, or else its
    /// `Last-Modified`). A validator that is no longer sent cannot vouch for the stored body, and
    /// a stale entry only costs one fetch.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use http::{HeaderMap, HeaderValue, StatusCode, Version, header};
    /// use cachio_core::policy::Policy;
    ///
    /// let policy = Policy::private();
    /// let now = SystemTime::now();
    /// let mut get = HeaderMap::new();
    /// get.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=0"));
    /// let stored = policy.to_meta(&HeaderMap::new(), StatusCode::OK, Version::HTTP_11, &get, now, now);
    ///
    /// let mut head = HeaderMap::new();
    /// head.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=600"));
    /// head.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
    /// let freshened = policy.merge_head(&stored, &head, Some(5), now, now).unwrap();
    /// assert_eq!(freshened.headers()[header::CACHE_CONTROL], "max-age=600");
    /// // Another length: another body.
    /// assert!(policy.merge_head(&stored, &head, Some(6), now, now).is_none());
    /// ```
    pub fn merge_head(
        &self,
        stored: &ResponseMeta,
        head: &HeaderMap,
        stored_len: Option<u64>,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Option<ResponseMeta> {
        let merged = stored.fields().to_header_map(0);
        if stored.status() != StatusCode::OK || !head_describes(&merged, head, stored_len) {
            return None;
        }
        Some(self.update_fields(stored, merged, head, request_time, response_time))
    }

    /// The stored response `stored`, whose fields are `merged`, updated with the fields of a newer response, `newer` (§3.2).
    fn update_fields(
        &self,
        stored: &ResponseMeta,
        mut merged: HeaderMap,
        newer: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> ResponseMeta {
        let connection_listed = hop::connection_fields(newer);
        let mut replaced: Vec<&HeaderName> = Vec::new();
        for (name, value) in newer {
            if hop::is_hop_by_hop(name)
                || hop::is_proxy_field(name)
                || connection_listed.contains(name)
                || !updatable(name)
            {
                continue;
            }
            if !replaced.contains(&name) {
                merged.remove(name);
                replaced.push(name);
            }
            merged.append(name.clone(), value.clone());
        }
        // Re-apply the storage exclusions of the (possibly new) directives.
        let parsed = meta::Parsed::from_headers(&merged);
        let (cc, _) = self.response_directives(&merged, &parsed);
        let drop: Vec<HeaderName> = cc
            .no_cache_fields
            .iter()
            .chain(if self.is_shared() {
                cc.private_fields.iter()
            } else {
                [].iter()
            })
            .cloned()
            .collect();
        for name in drop {
            merged.remove(name);
        }
        if newer
            .get(header::DATE)
            .and_then(meta::parse_http_date)
            .is_none()
        {
            merged.insert(header::DATE, meta::fmt_http_date(response_time));
        }
        if !newer.contains_key(header::AGE) {
            merged.remove(header::AGE);
        }
        stored.with_headers(merged, request_time, response_time)
    }
}

/// Whether a response carries a validator (`ETag` or `Last-Modified`).
pub fn has_validators(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED)
}

/// The conditional header fields that validate a stored response (RFC 9111 §4.3.1):
/// `If-None-Match` with every stored entity tag, and `If-Modified-Since` with its `Last-Modified`.
pub fn conditional_headers(stored: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::with_capacity(2);
    let tags: Vec<&[u8]> = stored
        .get_all(header::ETAG)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if !tags.is_empty() {
        let joined = tags.join(&b", "[..]);
        if let Ok(v) = HeaderValue::from_bytes(&joined) {
            out.push((header::IF_NONE_MATCH, v));
        }
    }
    if let Some(lm) = stored.get(header::LAST_MODIFIED)
        && meta::parse_http_date(lm).is_some()
    {
        out.push((header::IF_MODIFIED_SINCE, lm.clone()));
    }
    out
}

/// Whether a client's own conditional request is satisfied by a stored response, so it can be
/// answered `304 Not Modified` from the cache (RFC 9111 §4.3.2, RFC 9110 §13.1.2, §13.1.3):
/// `If-None-Match` compared weakly with the stored `ETag` (`*` matches any), else
/// `If-Modified-Since` against `Last-Modified` (or `Date` without one).
pub fn client_not_modified(req_headers: &HeaderMap, stored: &ResponseMeta) -> bool {
    if req_headers.contains_key(header::IF_NONE_MATCH) {
        let stored_tags: Vec<&[u8]> = stored
            .fields()
            .get_all(&header::ETAG)
            .map(opaque_tag)
            .collect();
        return req_headers.get_all(header::IF_NONE_MATCH).iter().any(|v| {
            entity_tags(v.as_bytes()).any(|t| {
                t == b"*" || (!stored_tags.is_empty() && stored_tags.contains(&opaque_tag(t)))
            })
        });
    }
    if let Some(ims) = req_headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(meta::parse_http_date)
    {
        let parsed = stored.facts();
        // §4.3.2: without Last-Modified use Date, and without Date the time it was received.
        let last = parsed
            .last_modified
            .or(parsed.date)
            .unwrap_or(stored.response_time());
        return last <= ims;
    }
    false
}

/// The header fields of a `304` generated from a stored response (RFC 9110 §15.4.5).
pub fn not_modified_headers(stored: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    let names = [
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::VARY,
    ];
    for name in names {
        for v in stored.get_all(&name) {
            out.append(name.clone(), v.clone());
        }
    }
    if !stored.contains_key(header::ETAG)
        && let Some(lm) = stored.get(header::LAST_MODIFIED)
    {
        out.insert(header::LAST_MODIFIED, lm.clone());
    }
    out
}

/// Fields a 304 does not update (RFC 9111 §3.2): `Content-Length`, and `Content-Range`, which
/// the recipient processes (a stored response is a whole `200`). `Content-Encoding` is updated:
/// the exception for it is for caches that store decoded content, and the stored bytes here are
/// the ones received.
fn updatable(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "content-length" | "content-range" | "transfer-encoding"
    )
}

/// Whether a `HEAD` response describes the stored response (RFC 9111 §4.3.5): each validator
/// field it carries has the stored value (entity tags compared strongly, dates as dates), it
/// carries the stored response's strongest validator, and its `Content-Length`, if any, is the
/// stored body's length.
fn head_describes(stored: &HeaderMap, head: &HeaderMap, stored_len: Option<u64>) -> bool {
    let strongest = if stored.contains_key(header::ETAG) {
        header::ETAG
    } else {
        header::LAST_MODIFIED
    };
    if stored.contains_key(&strongest) && !head.contains_key(&strongest) {
        return false;
    }
    let tags = |m: &HeaderMap| -> Vec<Vec<u8>> {
        let mut tags: Vec<Vec<u8>> = m
            .get_all(header::ETAG)
            .iter()
            .flat_map(|v| entity_tags(v.as_bytes()))
            .map(<[u8]>::to_vec)
            .collect();
        tags.sort();
        tags
    };
    if head.contains_key(header::ETAG) && tags(head) != tags(stored) {
        return false;
    }
    if let Some(lm) = head.get(header::LAST_MODIFIED) {
        let date = |v: &HeaderValue| meta::parse_http_date(v);
        match (date(lm), stored.get(header::LAST_MODIFIED).and_then(date)) {
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
    !head.contains_key(header::CONTENT_LENGTH)
        || backend::content_length(head).is_some_and(|len| Some(len) == stored_len)
}

/// Whether a 304 selects the stored response for update (RFC 9111 §4.3.4).
fn not_modified_selects(stored: &HeaderMap, headers_304: &HeaderMap) -> bool {
    let new_tags: Vec<&[u8]> = headers_304
        .get_all(header::ETAG)
        .iter()
        .map(|v| v.as_bytes().trim_ascii())
        .filter(|t| !t.is_empty())
        .collect();
    let stored_tags: Vec<&[u8]> = stored
        .get_all(header::ETAG)
        .iter()
        .map(|v| v.as_bytes().trim_ascii())
        .filter(|t| !t.is_empty())
        .collect();
    // Strong validators: the same strong entity tag must be stored (strong comparison).
    let strong: Vec<&&[u8]> = new_tags.iter().filter(|t| !t.starts_with(b"W/")).collect();
    if !strong.is_empty() {
        return strong.iter().any(|t| stored_tags.contains(t));
    }
    // Only weak entity tags: a weak match with a stored one.
    if !new_tags.is_empty() {
        return new_tags
            .iter()
            .any(|t| stored_tags.iter().any(|s| opaque_tag(s) == opaque_tag(t)));
    }
    // Only a modification date: the stored response must carry the same one.
    if let Some(lm) = headers_304.get(header::LAST_MODIFIED) {
        return stored.get(header::LAST_MODIFIED).is_some_and(|s| {
            s == lm
                || meta::parse_http_date(s)
                    .zip(meta::parse_http_date(lm))
                    .is_some_and(|(a, b)| a == b)
        });
    }
    // No validator at all: only a stored response without one is selected.
    !has_validators(stored)
}

fn opaque_tag(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag).trim_ascii()
}

/// The entity tags of an `If-None-Match` value (a `*` or a comma-separated list; commas may occur
/// inside quoted tags).
fn entity_tags(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = value;
    std::iter::from_fn(move || {
        loop {
            rest = rest.trim_ascii_start();
            while let [b',', r @ ..] = rest {
                rest = r.trim_ascii_start();
            }
            if rest.is_empty() {
                return None;
            }
            let start = rest;
            let mut i = if rest.starts_with(b"W/") { 2 } else { 0 };
            if rest.get(i) == Some(&b'"') {
                i += 1;
                while i < rest.len() && rest[i] != b'"' {
                    i += 1;
                }
                i = (i + 1).min(rest.len());
            } else {
                while i < rest.len() && rest[i] != b',' {
                    i += 1;
                }
            }
            rest = &rest[i..];
            let tag = start[..i].trim_ascii();
            if !tag.is_empty() {
                return Some(tag);
            }
        }
    })
}
