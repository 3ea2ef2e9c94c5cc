//! The caching policy: RFC 9111 as small pure functions over `http` types.
//!
//! A [`Policy`] holds the few choices a deployment makes (private or shared cache, the heuristic
//! freshness cap, ...) and answers each question the cache layer asks on the way through:
//!
//! | question | method | RFC |
//! |---|---|---|
//! | may this response be stored? | [`Policy::storable`] | RFC 9111 §3 |
//! | what do we keep of it? | [`Policy::to_meta`] | §3.1 |
//! | how long is it fresh, how old is it? | [`Policy::freshness_lifetime`], [`Policy::current_age`] | §4.2 |
//! | may it answer this request? | [`Policy::evaluate`] | §4.2, §5.2.1, RFC 5861 |
//! | may it answer when the origin fails? | [`Policy::stale_if_error`] | RFC 5861 §4, §4.2.4 |
//! | how do we validate it? | [`conditional_headers`] | §4.3.1 |
//! | how does a 304 update it? | [`Policy::merge_not_modified`] | §3.2, §4.3.4 |
//! | does the client's own condition match? | [`client_not_modified`] | §4.3.2 |
//! | what does an unsafe method invalidate? | [`invalidation_uris`] | §4.4 |
//! | what `Age` does a served response carry? | [`age_value`] | §4, §5.1 |
//! | how long is it worth keeping? | [`Policy::retention`] | |
//!
//! Time always comes in as an argument: the layer reads it from a [`Clock`](crate::clock::Clock).

pub mod status;
pub mod vary;

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

use crate::cache_control::{self, CacheControl};
use crate::meta::{self, ResponseMeta};

/// Whether a cache serves one client or many (RFC 9111 §1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// A private cache: one user's, such as an API client's. It may store `private` responses.
    #[default]
    Private,
    /// A shared cache: a gateway's or a proxy's, serving many users. It never stores `private`
    /// responses and honours `s-maxage`, `proxy-revalidate` and `CDN-Cache-Control`.
    Shared,
}

/// The choices a cache deployment makes; everything else follows the RFCs.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use cachio_core::policy::{Mode, Policy};
///
/// let policy = Policy::shared().heuristic_max(Duration::from_secs(3600)).store_set_cookie(true);
/// assert_eq!(policy.mode(), Mode::Shared);
/// ```
#[derive(Clone, Debug)]
pub struct Policy {
    mode: Mode,
    heuristic_percent: u32,
    heuristic_max: Duration,
    store_set_cookie: bool,
    targeted_fields: Vec<HeaderName>,
    validator_retention: Duration,
    stale_retention: Duration,
    grace: Duration,
    max_variants: usize,
}

/// The `CDN-Cache-Control` field name (RFC 9213).
pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

impl Default for Policy {
    fn default() -> Self {
        Self::private()
    }
}

impl Policy {
    /// The policy of a private cache.
    pub fn private() -> Self {
        Self {
            mode: Mode::Private,
            heuristic_percent: 10,
            heuristic_max: Duration::from_secs(24 * 3600),
            store_set_cookie: true,
            targeted_fields: Vec::new(),
            validator_retention: Duration::from_secs(24 * 3600),
            stale_retention: Duration::from_secs(24 * 3600),
            grace: Duration::ZERO,
            max_variants: 16,
        }
    }

    /// The policy of a shared cache; it honours `CDN-Cache-Control` (RFC 9213).
    pub fn shared() -> Self {
        Self {
            mode: Mode::Shared,
            store_set_cookie: false,
            targeted_fields: vec![CDN_CACHE_CONTROL],
            // A gateway stores only what its origin lets it serve: responses without freshness
            // would only be written to be dropped, and serving far past the origin's windows
            // because one client asked is not what a gateway is for.
            stale_retention: Duration::ZERO,
            ..Self::private()
        }
    }

    /// The policy for `mode`.
    pub fn new(mode: Mode) -> Self {
        match mode {
            Mode::Private => Self::private(),
            Mode::Shared => Self::shared(),
        }
    }

    /// Private or shared.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The share of `Date − Last-Modified` taken as heuristic freshness (RFC 9111 §4.2.2), in
    /// percent; 10 by default, 0 turns heuristic freshness off. Whatever it is, a shared cache
    /// gives no heuristic freshness to a response to a request that carried `Cookie` or
    /// `Authorization`: it stores such a response only with explicit freshness (see
    /// [`NotStorable::Credentials`]).
    #[must_use]
    pub fn heuristic_percent(mut self, percent: u32) -> Self {
        self.heuristic_percent = percent;
        self
    }

    /// The cap on heuristic freshness; one day by default.
    #[must_use]
    pub fn heuristic_max(mut self, max: Duration) -> Self {
        self.heuristic_max = max;
        self
    }

    /// Whether a shared cache stores responses that set cookies. Off by default for shared caches
    /// (such responses are usually personal even when marked cacheable) and always on for private
    /// ones.
    #[must_use]
    pub fn store_set_cookie(mut self, store: bool) -> Self {
        self.store_set_cookie = store;
        self
    }

    /// The targeted cache-control fields this cache obeys, most specific first (RFC 9213 §2.2);
    /// `[CDN-Cache-Control]` for shared caches by default, none for private ones.
    #[must_use]
    pub fn targeted_fields(mut self, fields: Vec<HeaderName>) -> Self {
        self.targeted_fields = fields;
        self
    }

    /// How long a stale response with validators is kept for revalidation; one day by default.
    #[must_use]
    pub fn validator_retention(mut self, keep: Duration) -> Self {
        self.validator_retention = keep;
        self
    }

    /// How long past its freshness a stored response may still be served when the origin cannot
    /// be reached or answers with a 5xx, beyond any `stale-if-error` it carries (a cache that
    /// cannot reach the origin is disconnected, RFC 9111 §4.2.4). Directives that forbid serving
    /// stale (`must-revalidate`, `no-cache`, and in a shared cache `proxy-revalidate` and
    /// `s-maxage`) still win. Zero (the default) turns it off.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The grace period (see [`Policy::grace`]).
    pub fn grace_period(&self) -> Duration {
        self.grace
    }

    /// How long any response is kept past the last moment it could be used without the client's
    /// leave, so that the client's `max-stale` (RFC 9111 §5.2.1.2) and the offline modes (serve
    /// whatever is stored) can still use it. One day by default in a private cache, which then
    /// also stores responses that are never fresh (the offline modes and `max-stale` serve them);
    /// zero in a shared one. The store drops such entries sooner when it needs their room. Zero
    /// drops each entry as soon as the response's own rules stop allowing it to be served
    /// (freshness, stale windows, validators).
    #[must_use]
    pub fn stale_retention(mut self, keep: Duration) -> Self {
        self.stale_retention = keep;
        self
    }

    /// The most variants kept for one URI (RFC 9111 §4.1); 16 by default.
    #[must_use]
    pub fn max_variants(mut self, max: usize) -> Self {
        self.max_variants = max.max(1);
        self
    }

    /// The most variants kept for one URI.
    pub fn variant_limit(&self) -> usize {
        self.max_variants
    }

    fn is_shared(&self) -> bool {
        self.mode == Mode::Shared
    }

    // ---- directives -------------------------------------------------------------------------

    /// The response directives this cache obeys: the first targeted field on its list that is
    /// present, non-empty and valid (RFC 9213 §2.2, parsed as a Structured Fields Dictionary by
    /// [`CacheControl::parse_targeted`]), else `Cache-Control`. The flag says whether a targeted
    /// field was used, in which case `Cache-Control` and `Expires` are both ignored.
    ///
    /// A targeted field holding only directives this cache does not know (such as
    /// `CDN-Cache-Control: none`) is still used: it silences `Cache-Control`.
    pub fn response_directives<'a>(
        &self,
        headers: &HeaderMap,
        parsed: &'a meta::Parsed,
    ) -> (std::borrow::Cow<'a, CacheControl>, bool) {
        for name in &self.targeted_fields {
            if *name == CDN_CACHE_CONTROL {
                if let Some(cc) = &parsed.cdn_cache_control {
                    return (std::borrow::Cow::Borrowed(cc), true);
                }
            } else if let Some(cc) = CacheControl::from_targeted_headers(headers, name) {
                return (std::borrow::Cow::Owned(cc), true);
            }
        }
        (std::borrow::Cow::Borrowed(&parsed.cache_control), false)
    }

    /// The directives of a stored response this cache obeys, as [`Policy::response_directives`]
    /// chooses them, from the values parsed when it was stored (a targeted field other than
    /// `CDN-Cache-Control` is parsed from its fields).
    pub fn stored_directives(&self, meta: &ResponseMeta) -> (meta::Directives, bool) {
        for name in &self.targeted_fields {
            if *name == CDN_CACHE_CONTROL {
                if let Some(cc) = meta.cdn_cache_control() {
                    return (cc, true);
                }
            } else if meta.fields().contains(name) {
                let map = meta.fields().to_header_map(0);
                if let Some(cc) = CacheControl::from_targeted_headers(&map, name) {
                    return ((&cc).into(), true);
                }
            }
        }
        (meta.cache_control(), false)
    }

    // ---- storing (§3) -----------------------------------------------------------------------

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
        let connection_listed = connection_fields(headers);
        for (name, value) in headers {
            if is_hop_by_hop(name)
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

    // ---- freshness (§4.2) -------------------------------------------------------------------

    /// The freshness lifetime of a stored response (RFC 9111 §4.2.1): `s-maxage` (shared only),
    /// `max-age`, `Expires − Date`, or a heuristic (§4.2.2).
    pub fn freshness_lifetime(&self, meta: &ResponseMeta) -> Duration {
        self.lifetime(meta, self.stored_directives(meta))
    }

    /// [`Policy::freshness_lifetime`] with the directives [`Policy::stored_directives`] gave.
    fn lifetime(&self, meta: &ResponseMeta, (cc, targeted): (meta::Directives, bool)) -> Duration {
        if let Some(ttl) = meta.ttl_override() {
            return ttl;
        }
        if self.is_shared()
            && let Some(s) = cc.s_maxage
        {
            return Duration::from_secs(s.into());
        }
        if let Some(m) = cc.max_age {
            return Duration::from_secs(m.into());
        }
        // Explicit freshness is the common case: the rest of the facts only now.
        let parsed = meta.facts();
        if !targeted && let Some(expires) = parsed.expires {
            let Some(expires) = expires else {
                return Duration::ZERO; // invalid Expires: stale (§5.3)
            };
            let date = parsed.date.unwrap_or(meta.response_time());
            return expires.duration_since(date).unwrap_or(Duration::ZERO);
        }
        // Heuristic freshness (§4.2.2) only where explicit freshness is absent and allowed.
        // A private cache may treat `private` as marking the response explicitly cacheable too
        // (§5.2.2.7).
        let marked = cc.public || (!self.is_shared() && (cc.private || cc.private_fields));
        if self.heuristic_percent > 0
            && (heuristically_cacheable(meta.status()) || marked)
            && let Some(lm) = parsed.last_modified
            && let Ok(since) = parsed
                .date
                .unwrap_or(meta.response_time())
                .duration_since(lm)
        {
            // Whole seconds in integers: no rounding surprises, no overflow, no panic.
            let secs = u128::from(since.as_secs()) * u128::from(self.heuristic_percent) / 100;
            let secs = u64::try_from(secs).unwrap_or(u64::MAX);
            return Duration::from_secs(secs).min(self.heuristic_max);
        }
        Duration::ZERO
    }

    /// The current age of a stored response at `now` (RFC 9111 §4.2.3).
    pub fn current_age(&self, meta: &ResponseMeta, now: SystemTime) -> Duration {
        // In the microseconds the head keeps its times in (no conversion to `SystemTime`).
        let (request_time, response_time, date) = meta.times_micros();
        let date = date.unwrap_or(response_time);
        let apparent_age = response_time.saturating_sub(date).max(0);
        let response_delay = response_time.saturating_sub(request_time).max(0);
        let age_value = i64::from(meta.age().unwrap_or(0)) * 1_000_000;
        let corrected_age_value = age_value.saturating_add(response_delay);
        let corrected_initial_age = apparent_age.max(corrected_age_value);
        let resident_time = meta::micros(now).saturating_sub(response_time).max(0);
        Duration::from_micros(
            corrected_initial_age
                .saturating_add(resident_time)
                .unsigned_abs(),
        )
    }

    /// Whether, and how, a stored response may answer a request with directives `req` at `now`
    /// (RFC 9111 §4, §4.2.4, §5.2.1, §5.2.2; RFC 5861 §3; RFC 8246).
    ///
    /// - Unqualified `no-cache` in the response or the request: always [`Verdict::Revalidate`].
    /// - The request's `max-age` caps the age, except for a fresh `immutable` response (RFC 8246:
    ///   a reload does not revalidate it; `no-cache` still does); `min-fresh` asks for that much
    ///   freshness left.
    /// - A stale response is served only when nothing forbids it (`must-revalidate`, and in a
    ///   shared cache `proxy-revalidate` or `s-maxage`), the request asks for no `min-fresh`, and
    ///   either the request's `max-stale` allows its staleness ([`Verdict::StaleAllowed`]) or the
    ///   response's `stale-while-revalidate` does ([`Verdict::StaleWhileRevalidate`]); the latter
    ///   not when the request carries `max-age` without `max-stale`, which says the client does
    ///   not want a stale response (§5.2.1.1).
    pub fn evaluate(&self, req: &CacheControl, meta: &ResponseMeta, now: SystemTime) -> Evaluation {
        let directives = self.stored_directives(meta);
        let cc = directives.0;
        let lifetime = self.lifetime(meta, directives);
        let age = self.current_age(meta, now);
        let fresh = lifetime > age;
        let age_ok = req.max_age.is_none_or(|m| age <= Duration::from_secs(m))
            // RFC 8246: a fresh immutable response is not revalidated on a reload (max-age=0).
            || (fresh && cc.immutable);
        let verdict = if cc.no_cache || req.no_cache || !age_ok {
            Verdict::Revalidate
        } else if fresh {
            match req.min_fresh {
                Some(min) if lifetime - age < Duration::from_secs(min) => Verdict::Revalidate,
                _ => Verdict::Fresh,
            }
        } else if self.stale_forbidden(&cc) || req.min_fresh.is_some() {
            Verdict::Revalidate
        } else {
            let staleness = age - lifetime;
            match req.max_stale {
                Some(None) => Verdict::StaleAllowed,
                Some(Some(n)) if staleness <= Duration::from_secs(n) => Verdict::StaleAllowed,
                // The client said how old a response it takes, and did not accept stale ones.
                _ if req.max_age.is_some() => Verdict::Revalidate,
                _ => match cc.stale_while_revalidate {
                    Some(swr) if staleness <= Duration::from_secs(swr.into()) => {
                        Verdict::StaleWhileRevalidate
                    }
                    _ => Verdict::Revalidate,
                },
            }
        };
        Evaluation {
            age,
            lifetime,
            verdict,
        }
    }

    /// Whether directives forbid serving the response stale (RFC 9111 §4.2.4): `must-revalidate`,
    /// and in a shared cache `proxy-revalidate` and `s-maxage`.
    fn stale_forbidden(&self, cc: &meta::Directives) -> bool {
        cc.no_cache
            || cc.must_revalidate
            || (self.is_shared() && (cc.proxy_revalidate || cc.s_maxage.is_some()))
    }

    /// Whether a stored response may be served, stale, in place of an error from the origin (a 5xx
    /// or no answer) at `now` (RFC 5861 §4), by the response's or the request's `stale-if-error`.
    pub fn stale_if_error(&self, req: &CacheControl, meta: &ResponseMeta, now: SystemTime) -> bool {
        let lifetime = self.freshness_lifetime(meta);
        let age = self.current_age(meta, now);
        let (cc, _) = self.stored_directives(meta);
        if self.stale_forbidden(&cc) {
            return false;
        }
        let staleness = age.saturating_sub(lifetime);
        let window = match (cc.stale_if_error.map(u64::from), req.stale_if_error) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b).unwrap_or(0),
        };
        ((cc.stale_if_error.is_some() || req.stale_if_error.is_some())
            && staleness <= Duration::from_secs(window))
            || (!self.grace.is_zero() && staleness <= self.grace)
    }

    /// How long from `now` the response is worth keeping: until the end of its freshness and of
    /// every stale window it allows, plus the validator retention when it carries validators, plus
    /// the configured stale retention. Zero means it is of no further use.
    pub fn retention(&self, meta: &ResponseMeta, now: SystemTime) -> Duration {
        let lifetime = self.freshness_lifetime(meta);
        let age = self.current_age(meta, now);
        let (cc, _) = self.stored_directives(meta);
        let remaining = lifetime.saturating_sub(age);
        let stale_window = if self.stale_forbidden(&cc) {
            0
        } else {
            cc.stale_while_revalidate
                .unwrap_or(0)
                .max(cc.stale_if_error.unwrap_or(0))
        };
        let stale_window = if self.stale_forbidden(&cc) {
            Duration::ZERO
        } else {
            Duration::from_secs(stale_window.into()).max(self.grace)
        };
        let mut keep =
            remaining.saturating_add(stale_window.saturating_sub(age.saturating_sub(lifetime)));
        if meta.fields().contains(&header::ETAG) || meta.fields().contains(&header::LAST_MODIFIED) {
            keep = keep.saturating_add(self.validator_retention);
        }
        if keep.is_zero() && self.stale_retention.is_zero() {
            return Duration::ZERO;
        }
        keep.saturating_add(self.stale_retention)
    }

    // ---- validation (§4.3) ------------------------------------------------------------------

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
        let connection_listed = connection_fields(newer);
        let mut replaced: Vec<&HeaderName> = Vec::new();
        for (name, value) in newer {
            if is_hop_by_hop(name) || connection_listed.contains(name) || !updatable(name) {
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

/// How a stored response relates to a request, from [`Policy::evaluate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// The response's current age.
    pub age: Duration,
    /// Its freshness lifetime.
    pub lifetime: Duration,
    /// What may be done with it.
    pub verdict: Verdict,
}

impl Evaluation {
    /// Remaining freshness in whole seconds, negative when stale (the `ttl` of `Cache-Status`).
    pub fn ttl_secs(&self) -> i64 {
        let l = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX);
        let a = i64::try_from(self.age.as_secs()).unwrap_or(i64::MAX);
        l.saturating_sub(a)
    }
}

/// What a stored response may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Serve it: it is fresh and the request accepts it.
    Fresh,
    /// Serve it although it is stale: the request's `max-stale` allows it (§5.2.1.2).
    StaleAllowed,
    /// Serve it stale now and revalidate it in the background (RFC 5861 §3).
    StaleWhileRevalidate,
    /// It must be validated with the origin before it is used (§4.3).
    Revalidate,
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

/// The request's cache directives: `Cache-Control`, or `Pragma: no-cache` when there is no
/// `Cache-Control` (RFC 9111 §5.4).
pub fn request_directives(headers: &HeaderMap) -> CacheControl {
    // A request without fields (as a client's often is before its connection adds `Host`) has
    // no directives: not a lookup each.
    if headers.is_empty() {
        return CacheControl::default();
    }
    if headers.contains_key(header::CACHE_CONTROL) {
        CacheControl::from_headers(headers, &header::CACHE_CONTROL)
    } else {
        CacheControl {
            no_cache: cache_control::pragma_no_cache(headers),
            ..CacheControl::default()
        }
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

/// The `Age` field value for a response served from the cache (RFC 9111 §4, §5.1): the current
/// age in whole seconds, saturated at 2^31 (§1.2.2).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use cachio_core::policy::age_value;
///
/// assert_eq!(age_value(Duration::from_millis(1_999)), "1");
/// assert_eq!(age_value(Duration::from_secs(1_023)), "1023");
/// assert_eq!(age_value(Duration::from_secs(1_024)), "1024");
/// assert_eq!(age_value(Duration::MAX), "2147483648");
/// ```
pub fn age_value(age: Duration) -> HeaderValue {
    /// The values below this are made once and shared (a clone of a static value costs nothing).
    const SMALL: u64 = 1024;
    static SMALL_AGES: std::sync::LazyLock<Vec<HeaderValue>> = std::sync::LazyLock::new(|| {
        (0..SMALL)
            .map(|n| HeaderValue::from_static(Box::leak(n.to_string().into_boxed_str())))
            .collect()
    });
    let secs = age.as_secs().min(cache_control::DELTA_SECONDS_MAX);
    match SMALL_AGES.get(secs as usize) {
        Some(v) => v.clone(),
        None => HeaderValue::from(secs),
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

/// Whether a response to `method` with `status` invalidates stored responses (RFC 9111 §4.4): an
/// unsafe method (anything but GET, HEAD, OPTIONS, TRACE) and a non-error status (2xx or 3xx; a
/// 1xx is not a final response).
pub fn invalidates(method: &Method, status: StatusCode) -> bool {
    !is_safe(method) && (status.is_success() || status.is_redirection())
}

/// Whether a method is safe (RFC 9110 §9.2.1).
pub fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The URIs an unsafe request's non-error response invalidates (RFC 9111 §4.4): the target URI,
/// and the `Location` and `Content-Location` URIs when they have the same origin.
///
/// `target` must be absolute (scheme and authority); references in the response are resolved
/// against it as RFC 3986 §5.2 says (relative paths, `..` and `.` segments, query-only
/// references), and fragments are dropped.
pub fn invalidation_uris(target: &Uri, resp_headers: &HeaderMap) -> Vec<Uri> {
    let mut out = vec![target.clone()];
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(value) = resp_headers.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Some(uri) = resolve(target, value.trim()) else {
            continue;
        };
        if same_origin(target, &uri) && !out.contains(&uri) {
            out.push(uri);
        }
    }
    out
}

/// Resolves a URI reference against an absolute base (RFC 3986 §5.2.2).
fn resolve(base: &Uri, reference: &str) -> Option<Uri> {
    let reference = reference.split('#').next().unwrap_or("");
    let base_scheme = base.scheme_str().unwrap_or("http");
    let base_authority = base.authority()?.as_str();
    let (scheme, rest) = match split_scheme(reference) {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, reference),
    };
    let (authority, rest) = match rest.strip_prefix("//") {
        Some(r) => {
            let end = r.find(['/', '?']).unwrap_or(r.len());
            (Some(&r[..end]), &r[end..])
        }
        None => (None, rest),
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let (scheme, authority, path, query) = if scheme.is_some() || authority.is_some() {
        (
            scheme.unwrap_or(base_scheme),
            authority.unwrap_or(""),
            remove_dot_segments(path),
            query,
        )
    } else if path.is_empty() {
        (
            base_scheme,
            base_authority,
            base.path().to_owned(),
            query.or(base.query()),
        )
    } else if path.starts_with('/') {
        (
            base_scheme,
            base_authority,
            remove_dot_segments(path),
            query,
        )
    } else {
        let base_path = base.path();
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        let merged = if dir.is_empty() {
            format!("/{path}")
        } else {
            format!("{dir}{path}")
        };
        (
            base_scheme,
            base_authority,
            remove_dot_segments(&merged),
            query,
        )
    };
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        path
    };
    let uri = match query {
        Some(q) => format!("{scheme}://{authority}{path}?{q}"),
        None => format!("{scheme}://{authority}{path}"),
    };
    uri.parse().ok()
}

/// Splits `scheme:rest` when the reference starts with a scheme (RFC 3986 §3.1).
fn split_scheme(reference: &str) -> Option<(&str, &str)> {
    let colon = reference.find(':')?;
    let scheme = &reference[..colon];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then(|| (scheme, &reference[colon + 1..]))
}

/// Removes `.` and `..` segments from a path (RFC 3986 §5.2.4).
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if path.starts_with('/') && !joined.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

fn same_origin(a: &Uri, b: &Uri) -> bool {
    fn port(u: &Uri) -> Option<u16> {
        u.port_u16().or(match u.scheme_str() {
            Some("https") => Some(443),
            Some("http") | None => Some(80),
            _ => None,
        })
    }
    a.scheme_str()
        .unwrap_or("http")
        .eq_ignore_ascii_case(b.scheme_str().unwrap_or("http"))
        && a.host()
            .zip(b.host())
            .is_some_and(|(x, y)| x.eq_ignore_ascii_case(y))
        && port(a) == port(b)
}

/// Fields removed before forwarding or storing (RFC 9110 §7.6.1) and proxy fields (RFC 9111 §3.1).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authenticate"
            | "proxy-authentication-info"
            | "proxy-authorization"
    )
}

/// The field names listed in `Connection`.
pub fn connection_fields(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|t| HeaderName::from_bytes(t.trim_ascii()).ok())
        .collect()
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
    match head.get(header::CONTENT_LENGTH) {
        None => true,
        Some(v) => {
            let len = v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok());
            len.is_some() && len == stored_len
        }
    }
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
