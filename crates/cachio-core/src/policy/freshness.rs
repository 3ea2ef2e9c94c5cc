//! Freshness (RFC 9111 §4.2) and serving stale responses (§4.2.4, RFC 5861): how long a stored
//! response is fresh, how old it is, whether it may answer a request, and how long it is worth
//! keeping.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderValue};

use super::{Policy, heuristically_cacheable};
use crate::cache_control::{self, CacheControl};
use crate::meta::{self, ResponseMeta};

impl Policy {
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
        let resident_time = crate::backend::micros(now)
            .saturating_sub(response_time)
            .max(0);
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
