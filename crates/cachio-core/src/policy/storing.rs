//! Storing responses in caches (RFC 9111 §3): whether a response may be stored, and what of it
//! is kept.

use std::time::SystemTime;

use http::header::{self, HeaderMap};
use http::{Method, StatusCode, Version};

use super::{Policy, request_directives, vary};
use crate::backend::hop;
use crate::meta::{self, ResponseMeta};

impl Policy {
    /// Whether a response to `req` may be stored (RFC 9111 §3).
    ///
    /// # Errors
    ///
    /// The reason it may not.
    pub fn storable(
        &self,
        method: &Method,
        req_headers: &HeaderMap,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Result<(), NotStorable> {
        if method != Method::GET {
            return Err(NotStorable::Method);
        }
        // RFC 9110 §15: codes outside 100..=599 are invalid; such a response is passed on, never
        // stored.
        if status.is_informational()
            || status.as_u16() > 599
            || status == StatusCode::PARTIAL_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Err(NotStorable::Status);
        }
        let req_cc = request_directives(req_headers);
        if req_cc.no_store {
            return Err(NotStorable::NoStore);
        }
        let parsed = meta::Parsed::from_headers(headers);
        let (cc, targeted) = self.response_directives(headers, &parsed);
        if cc.must_understand {
            // §5.2.2.3: only a cache that understands the status code may store it, and it then
            // ignores no-store.
            if !understood_status(status) {
                return Err(NotStorable::MustUnderstand);
            }
        } else if cc.no_store {
            return Err(NotStorable::NoStore);
        }
        if self.is_shared() && cc.private {
            return Err(NotStorable::Private);
        }
        if self.is_shared()
            && req_headers.contains_key(header::AUTHORIZATION)
            && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate)
        {
            return Err(NotStorable::Authorization);
        }
        if self.is_shared() && !self.store_set_cookie && headers.contains_key(header::SET_COOKIE) {
            return Err(NotStorable::SetCookie);
        }
        if parsed.vary.is_none() {
            return Err(NotStorable::VaryStar);
        }
        // A response to a request with credentials may be personal even when the origin forgot
        // to say so (`/account/profile.css` answered with the account page): a shared cache
        // gives it no heuristic freshness (§4.2.2), so it is stored only with a lifetime the
        // origin stated. Without one it would be served, or revalidated by validators that may
        // not tell users apart, to every client: web cache deception.
        if self.is_shared()
            && (req_headers.contains_key(header::COOKIE)
                || req_headers.contains_key(header::AUTHORIZATION))
            && !(cc.max_age.is_some()
                || cc.s_maxage.is_some()
                || (!targeted && parsed.expires.is_some()))
        {
            return Err(NotStorable::Credentials);
        }
        let explicit = cc.public
            || (!self.is_shared() && (cc.private || !cc.private_fields.is_empty()))
            || (!targeted && parsed.expires.is_some())
            || cc.max_age.is_some()
            || (self.is_shared() && cc.s_maxage.is_some());
        if !explicit && !heuristically_cacheable(status) {
            return Err(NotStorable::Status);
        }
        Ok(())
    }

    /// The metadata to store for a response (RFC 9111 §3.1): every header field except the
    /// hop-by-hop and proxy fields, the fields named by `no-cache="…"`, and in a shared cache
    /// those named by `private="…"`; a `Date` is added when the response has none (RFC 9110
    /// §6.6.1); the request values of the fields `Vary` names are recorded.
    pub fn to_meta(
        &self,
        req_headers: &HeaderMap,
        status: StatusCode,
        version: Version,
        headers: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> ResponseMeta {
        let mut stored = HeaderMap::with_capacity(headers.len() + 1);
        let parsed = meta::Parsed::from_headers(headers);
        let (cc, _) = self.response_directives(headers, &parsed);
        let connection_listed = hop::connection_fields(headers);
        for (name, value) in headers {
            if hop::is_hop_by_hop(name)
                || hop::is_proxy_field(name)
                || connection_listed.contains(name)
                || cc.no_cache_fields.contains(name)
                || (self.is_shared() && cc.private_fields.contains(name))
            {
                continue;
            }
            stored.append(name.clone(), value.clone());
        }
        // A response without a valid Date gets the time it was received (RFC 9110 §6.6.1).
        if stored
            .get(header::DATE)
            .and_then(meta::parse_http_date)
            .is_none()
        {
            stored.insert(header::DATE, meta::fmt_http_date(response_time));
        }
        let names = parsed.vary.unwrap_or_default();
        let vary = vary::request_values(req_headers, &names);
        ResponseMeta::new(status, version, stored, vary, request_time, response_time)
    }
}

/// Why a response is not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotStorable {
    /// Only responses to `GET` are stored.
    Method,
    /// The status code is neither cacheable by default nor given explicit freshness, or is never
    /// stored (1xx, 206, 304).
    Status,
    /// `no-store` on the request or the response.
    NoStore,
    /// `private` in a shared cache.
    Private,
    /// The request carried `Authorization` and the response did not allow a shared cache to
    /// store it (§3.5).
    Authorization,
    /// A shared cache and a response that sets cookies.
    SetCookie,
    /// A shared cache, a request with `Cookie` or `Authorization`, and a response without
    /// explicit freshness (`max-age`, `s-maxage`, `Expires`): a shared cache does not give such
    /// a response heuristic freshness (§4.2.2), since it may be one user's.
    Credentials,
    /// `must-understand` with a status code this cache does not implement.
    MustUnderstand,
    /// `Vary: *`: the response could never be selected.
    VaryStar,
}

impl NotStorable {
    /// A short token naming the reason (for `Cache-Status` details and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            NotStorable::Method => "method",
            NotStorable::Status => "status",
            NotStorable::NoStore => "no-store",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::Credentials => "credentials",
            NotStorable::MustUnderstand => "must-understand",
            NotStorable::VaryStar => "vary-star",
        }
    }
}

impl std::fmt::Display for NotStorable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The status codes that are cacheable by default (RFC 9110 §15.1, RFC 9111 §4.2.2).
pub fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The status codes whose caching rules this cache implements (for `must-understand`).
fn understood_status(status: StatusCode) -> bool {
    heuristically_cacheable(status)
        || matches!(
            status.as_u16(),
            302 | 303 | 307 | 400 | 403 | 500 | 502 | 503 | 504
        )
}
