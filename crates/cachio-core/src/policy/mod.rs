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
//!
//! The source follows RFC 9111's sections, one file each: `storing.rs` (§3), `freshness.rs`
//! (§4.2, with serving stale responses), `validation.rs` (§4.3) and `invalidation.rs` (§4.4);
//! this file holds [`Policy`] and the directives it obeys.

mod freshness;
mod invalidation;
mod storing;
mod validation;

pub mod status;
pub mod vary;

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName};

use crate::cache_control::{self, CacheControl};
use crate::meta::{self, ResponseMeta};

pub use freshness::{Evaluation, Verdict, age_value};
pub use invalidation::{invalidates, invalidation_uris, is_safe};
pub use storing::{NotStorable, heuristically_cacheable};
pub use validation::{
    client_not_modified, conditional_headers, has_validators, not_modified_headers,
};

/// Whether a cache serves one client or many (RFC 9111 §1): the choice between a private and a
/// shared cache.
///
/// # Example
///
/// ```
/// use cachio_core::policy::{Policy, Sharing};
///
/// assert_eq!(Policy::new(Sharing::Shared).sharing(), Sharing::Shared);
/// assert_eq!(Policy::default().sharing(), Sharing::Private);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Sharing {
    /// A private cache: one user's, such as an API client's. It may store `private` responses.
    #[default]
    Private,
    /// A shared cache: a gateway's or a proxy's, serving many users. It never stores `private`
    /// responses and honours `s-maxage`, `proxy-revalidate` and `CDN-Cache-Control`.
    Shared,
}

/// The former name of [`Sharing`].
#[deprecated(note = "renamed to `Sharing`")]
pub type Mode = Sharing;

/// The choices a cache deployment makes; everything else follows the RFCs.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use cachio_core::policy::{Policy, Sharing};
///
/// let policy = Policy::shared().heuristic_max(Duration::from_secs(3600)).store_set_cookie(true);
/// assert_eq!(policy.sharing(), Sharing::Shared);
/// ```
#[derive(Clone, Debug)]
pub struct Policy {
    sharing: Sharing,
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
            sharing: Sharing::Private,
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
            sharing: Sharing::Shared,
            store_set_cookie: false,
            targeted_fields: vec![CDN_CACHE_CONTROL],
            // A gateway stores only what its origin lets it serve: responses without freshness
            // would only be written to be dropped, and serving far past the origin's windows
            // because one client asked is not what a gateway is for.
            stale_retention: Duration::ZERO,
            ..Self::private()
        }
    }

    /// The policy of a private or a shared cache.
    pub fn new(sharing: Sharing) -> Self {
        match sharing {
            Sharing::Private => Self::private(),
            Sharing::Shared => Self::shared(),
        }
    }

    /// Private or shared.
    pub fn sharing(&self) -> Sharing {
        self.sharing
    }

    /// Private or shared.
    #[deprecated(note = "renamed to `sharing`")]
    pub fn mode(&self) -> Sharing {
        self.sharing
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
        self.sharing == Sharing::Shared
    }

    // ---- directives -------------------------------------------------------------------------

    /// The response directives this cache obeys: the first targeted field on its list that is
    /// present, non-empty and valid (RFC 9213 §2.2, parsed as a Structured Fields Dictionary by
    /// [`CacheControl::parse_targeted`]), else `Cache-Control`. The flag says whether a targeted
    /// field was used, in which case `Cache-Control` and `Expires` are both ignored.
    ///
    /// A targeted field holding only directives this cache does not know (such as
    /// `CDN-Cache-Control: none`) is still used: it silences `Cache-Control`.
    pub(crate) fn response_directives<'a>(
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
    pub(crate) fn stored_directives(&self, meta: &ResponseMeta) -> (meta::Directives, bool) {
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

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(lines: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in lines {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn rfc9213_2_2_the_directives_used_are_reported() {
        let p = Policy::shared();
        let h = headers(&[
            ("cdn-cache-control", "max-age=5"),
            ("cache-control", "max-age=60"),
        ]);
        let parsed = meta::Parsed::from_headers(&h);
        let (cc, targeted) = p.response_directives(&h, &parsed);
        assert!(targeted);
        assert_eq!(cc.max_age, Some(5));
        let h = headers(&[("cache-control", "max-age=60")]);
        let parsed = meta::Parsed::from_headers(&h);
        let (cc, targeted) = p.response_directives(&h, &parsed);
        assert!(!targeted);
        assert_eq!(cc.max_age, Some(60));
    }
}
