//! The `Cache-Status` response header field (RFC 9211).

use std::fmt::Write as _;

use http::HeaderValue;

/// Why a request went forward to the origin (RFC 9211 §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fwd {
    /// The cache has nothing for this URI.
    UriMiss,
    /// The cache has the URI but no variant matching the request's `Vary` fields.
    VaryMiss,
    /// Nothing stored could be used, when the cache cannot tell a `uri-miss` from a `vary-miss`.
    Miss,
    /// A stored response was found but it was stale.
    Stale,
    /// The request's own directives (`no-cache`, `max-age=0`, a reload mode) demanded it.
    Request,
    /// The method is not one the cache answers (not `GET` or `HEAD`).
    Method,
    /// The cache was configured, or asked per request, not to take part.
    Bypass,
    /// A partial stored response did not cover the requested ranges.
    Partial,
}

impl Fwd {
    /// The parameter's token.
    pub fn as_str(self) -> &'static str {
        match self {
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Miss => "miss",
            Fwd::Stale => "stale",
            Fwd::Request => "request",
            Fwd::Method => "method",
            Fwd::Bypass => "bypass",
            Fwd::Partial => "partial",
        }
    }
}

/// One cache's entry in `Cache-Status`.
///
/// # Example
///
/// ```
/// use cachio_core::policy::status::{CacheStatus, Fwd};
///
/// let hit = CacheStatus::hit("cachio", 42);
/// assert_eq!(hit.to_header_value(), "cachio; hit; ttl=42");
///
/// let miss = CacheStatus::forward("cachio", Fwd::UriMiss).fwd_status(200).stored(true);
/// assert_eq!(miss.to_header_value(), "cachio; fwd=uri-miss; fwd-status=200; stored");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheStatus {
    name: String,
    hit: bool,
    fwd: Option<Fwd>,
    fwd_status: Option<u16>,
    ttl: Option<i64>,
    stored: bool,
    collapsed: bool,
    key: Option<String>,
    detail: Option<String>,
}

impl CacheStatus {
    /// A hit: the response was served from the cache; `ttl` is its remaining freshness in seconds
    /// (negative when a stale response is served).
    pub fn hit(name: impl Into<String>, ttl: i64) -> Self {
        Self {
            name: name.into(),
            hit: true,
            fwd: None,
            fwd_status: None,
            ttl: Some(ttl),
            stored: false,
            collapsed: false,
            key: None,
            detail: None,
        }
    }

    /// The request went forward, for `reason`.
    pub fn forward(name: impl Into<String>, reason: Fwd) -> Self {
        Self {
            name: name.into(),
            hit: false,
            fwd: Some(reason),
            fwd_status: None,
            ttl: None,
            stored: false,
            collapsed: false,
            key: None,
            detail: None,
        }
    }

    /// The status code the forward request got (`fwd-status`).
    #[must_use]
    pub fn fwd_status(mut self, status: u16) -> Self {
        self.fwd_status = Some(status);
        self
    }

    /// Whether the response was stored (`stored`).
    #[must_use]
    pub fn stored(mut self, stored: bool) -> Self {
        self.stored = stored;
        self
    }

    /// The remaining freshness of the response, in seconds (`ttl`).
    #[must_use]
    pub fn ttl(mut self, ttl: i64) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The request was collapsed into another one to the origin (`collapsed`).
    #[must_use]
    pub fn collapsed(mut self, collapsed: bool) -> Self {
        self.collapsed = collapsed;
        self
    }

    /// The cache key used for the response (`key`, always written as a string).
    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// A free-form `detail` (written as a token when it is one, else as a quoted string).
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Whether this records a hit.
    pub fn is_hit(&self) -> bool {
        self.hit
    }

    /// The forward reason, if the request went forward.
    pub fn fwd_reason(&self) -> Option<Fwd> {
        self.fwd
    }

    /// The field value: the cache's name, then the parameters (RFC 9211 §2).
    pub fn to_header_value(&self) -> HeaderValue {
        let mut s = String::with_capacity(64);
        write_name(&mut s, &self.name);
        if self.hit {
            s.push_str("; hit");
        }
        // `hit` and `fwd` are exclusive; `fwd-status`, `stored` and `collapsed` only mean
        // something with `fwd` (RFC 9211 §2.1, §2.3, §2.5, §2.6).
        if let Some(fwd) = self.fwd.filter(|_| !self.hit) {
            s.push_str("; fwd=");
            s.push_str(fwd.as_str());
            if let Some(status) = self.fwd_status {
                let _ = write!(s, "; fwd-status={status}");
            }
        }
        if let Some(ttl) = self.ttl {
            // An sf-integer has at most 15 digits (RFC 8941 §3.3.1).
            let ttl = ttl.clamp(-SF_INTEGER_MAX, SF_INTEGER_MAX);
            let _ = write!(s, "; ttl={ttl}");
        }
        if self.fwd.is_some() && !self.hit {
            if self.stored {
                s.push_str("; stored");
            }
            if self.collapsed {
                s.push_str("; collapsed");
            }
        }
        if let Some(key) = &self.key {
            s.push_str("; key=");
            write_string(&mut s, key);
        }
        if let Some(detail) = &self.detail {
            s.push_str("; detail=");
            write_name(&mut s, detail);
        }
        HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("cachio"))
    }
}

/// Writes an sf-token when `v` is one, else an sf-string (RFC 8941 §3.3.4, §3.3.3).
fn write_name(out: &mut String, v: &str) {
    let is_token = v
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'*')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b));
    if is_token {
        out.push_str(v);
    } else {
        write_string(out, v);
    }
}

/// Writes an sf-string (RFC 8941 §3.3.3): printable ASCII only, `"` and `\\` escaped; other
/// characters are left out.
fn write_string(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// The largest magnitude of an sf-integer (RFC 8941 §3.3.1).
const SF_INTEGER_MAX: i64 = 999_999_999_999_999;
