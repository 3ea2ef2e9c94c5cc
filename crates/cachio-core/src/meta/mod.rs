//! What a store keeps about an entry: the response head, the request values its `Vary` selects, the
//! times of the exchange, and the variant indexes of resources that vary.
//!
//! [`Meta::encode`] and [`Meta::decode`] give every store that writes bytes (disk, Redis) one binary
//! format with a version, so that an entry written by another version is read as a miss, never
//! misread.
//!
//! Stores that frame their own records around the encoded metadata read them with the same byte
//! [`Reader`]. The header maps a memory store keeps with its heads for hits are in
//! [`backend::served`](crate::backend::served).

mod codec;
mod facts;
mod intern;
pub(crate) mod served;

pub use codec::Reader;

use crate::backend::{from_micros, micros};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};

use crate::cache_control::CacheControl;
use crate::fields::Fields;

use facts::{BAD_DATE, NO_SECS, PRESENT, PackedFacts, packed_date, unpack_directives};
use served::Kept;

/// The version of the metadata encoding written by [`Meta::encode`].
pub const FORMAT_VERSION: u16 = 1;

/// What is stored under one key: a response, or the index of a resource's variants.
///
/// # Example
///
/// ```
/// use std::time::SystemTime;
/// use cachio_core::meta::{Meta, ResponseMeta};
///
/// let now = SystemTime::now();
/// let meta = Meta::Response(ResponseMeta::new(
///     http::StatusCode::OK,
///     http::Version::HTTP_11,
///     http::HeaderMap::new(),
///     Vec::new(),
///     now,
///     now,
/// ));
/// let bytes = meta.encode();
/// let back = Meta::decode(&bytes).unwrap();
/// assert_eq!(back.as_response().unwrap().status(), http::StatusCode::OK);
/// ```
#[derive(Clone, Debug)]
pub enum Meta {
    /// A stored response; its body is the entry's body.
    Response(ResponseMeta),
    /// The variants of a resource that varies (RFC 9111 §4.1); such an entry has an empty body.
    Variants(VaryIndex),
}

impl Meta {
    /// The response, if this is one.
    pub fn as_response(&self) -> Option<&ResponseMeta> {
        match self {
            Meta::Response(r) => Some(r),
            Meta::Variants(_) => None,
        }
    }

    /// Whether `other` is this metadata: the same value, or one that encodes to the same bytes
    /// (as a copy read back from a store does). A store's conditional
    /// [`update`](crate::store::Store::update) compares with this.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_core::meta::{Meta, VaryIndex};
    ///
    /// let index = Meta::Variants(VaryIndex::new(vec![http::header::ACCEPT], 1));
    /// let copy = Meta::decode(&index.encode()).unwrap();
    /// assert!(index.same_as(&copy));
    /// assert!(!index.same_as(&Meta::Variants(VaryIndex::new(vec![], 1))));
    /// ```
    pub fn same_as(&self, other: &Meta) -> bool {
        std::ptr::eq(self, other) || self.encode() == other.encode()
    }

    /// An estimate of the memory the metadata takes, in bytes (for weighing entries).
    pub fn weight(&self) -> usize {
        match self {
            Meta::Response(r) => r.weight(),
            Meta::Variants(v) => {
                64 + v.names.iter().map(|n| n.as_str().len() + 32).sum::<usize>()
                    + v.variants.len() * 8
            }
        }
    }
}

/// The stored head of a response and the circumstances it was received in.
///
/// The header fields are kept packed ([`Fields`]: one buffer, no per-line allocation), with the
/// values freshness needs parsed once when the head is made, so that a stored entry is
/// small and a hit parses nothing. [`ResponseMeta::headers`] builds a [`HeaderMap`] the first time
/// it is called and keeps it with this head; the cache itself reads [`ResponseMeta::fields`].
#[derive(Debug)]
pub struct ResponseMeta {
    status: StatusCode,
    version: Version,
    fields: Fields,
    vary: Box<[Option<HeaderValue>]>,
    /// Microseconds since the epoch ([`micros`]).
    request_time: i64,
    response_time: i64,
    /// Milliseconds; [`NO_TTL`] when none was set.
    ttl_override: u64,
    facts: PackedFacts,
    /// Built by [`ResponseMeta::headers`] on first use, or kept by [`ResponseMeta::keep_headers`].
    map: OnceLock<Box<Kept>>,
}

impl Clone for ResponseMeta {
    /// A copy that shares the packed fields; a map built by [`ResponseMeta::headers`] is not
    /// copied (the copy builds its own if asked).
    fn clone(&self) -> Self {
        Self {
            status: self.status,
            version: self.version,
            fields: self.fields.clone(),
            vary: self.vary.clone(),
            request_time: self.request_time,
            response_time: self.response_time,
            ttl_override: self.ttl_override,
            facts: self.facts,
            map: OnceLock::new(),
        }
    }
}

/// [`ResponseMeta::ttl_override`] when none was set.
const NO_TTL: u64 = u64::MAX;

/// The directives of one cache-control field that freshness needs, in a compact form (see
/// [`CacheControl`] for their meaning; delta-seconds are at most 2^31, RFC 9111 §1.2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Directives {
    /// `max-age`.
    pub max_age: Option<u32>,
    /// `s-maxage`.
    pub s_maxage: Option<u32>,
    /// `stale-while-revalidate`.
    pub stale_while_revalidate: Option<u32>,
    /// `stale-if-error`.
    pub stale_if_error: Option<u32>,
    /// Unqualified `no-cache`.
    pub no_cache: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `public`.
    pub public: bool,
    /// Unqualified `private`.
    pub private: bool,
    /// A qualified `private="…"`.
    pub private_fields: bool,
    /// `immutable`.
    pub immutable: bool,
}

impl From<&CacheControl> for Directives {
    fn from(cc: &CacheControl) -> Self {
        let secs = |v: Option<u64>| v.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        Directives {
            max_age: secs(cc.max_age),
            s_maxage: secs(cc.s_maxage),
            stale_while_revalidate: secs(cc.stale_while_revalidate),
            stale_if_error: secs(cc.stale_if_error),
            no_cache: cc.no_cache,
            must_revalidate: cc.must_revalidate,
            proxy_revalidate: cc.proxy_revalidate,
            public: cc.public,
            private: cc.private,
            private_fields: !cc.private_fields.is_empty(),
            immutable: cc.immutable,
        }
    }
}

/// What freshness and validation read from a stored response's fields, parsed once when the
/// head is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) struct Facts {
    /// `Cache-Control` (RFC 9111 §5.2).
    pub cache_control: Directives,
    /// `CDN-Cache-Control` (RFC 9213), when present, non-empty and valid.
    pub cdn_cache_control: Option<Directives>,
    /// `Date`, when present and valid.
    pub date: Option<SystemTime>,
    /// `Expires`: `None` when absent, `Some(None)` when present but invalid (which means stale).
    pub expires: Option<Option<SystemTime>>,
    /// `Last-Modified`, when present and valid.
    pub last_modified: Option<SystemTime>,
    /// `Age` in seconds, when present and valid (§5.1).
    pub age: Option<u32>,
}

impl From<&Parsed> for Facts {
    fn from(p: &Parsed) -> Self {
        Facts {
            cache_control: Directives::from(&p.cache_control),
            cdn_cache_control: p.cdn_cache_control.as_ref().map(Directives::from),
            date: p.date,
            expires: p.expires,
            last_modified: p.last_modified,
            age: p.age.map(|a| u32::try_from(a).unwrap_or(u32::MAX)),
        }
    }
}

/// Values parsed from a response's header fields.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub(crate) struct Parsed {
    /// `Cache-Control` (RFC 9111 §5.2).
    pub cache_control: CacheControl,
    /// `CDN-Cache-Control` (RFC 9213), when present, non-empty and valid (RFC 9213 §2.1).
    pub cdn_cache_control: Option<CacheControl>,
    /// `Date`, when present and valid.
    pub date: Option<SystemTime>,
    /// `Expires`: `None` when absent, `Some(None)` when present but invalid (which means stale).
    pub expires: Option<Option<SystemTime>>,
    /// `Last-Modified`, when present and valid.
    pub last_modified: Option<SystemTime>,
    /// `Age` in seconds, when present and valid (§5.1); an invalid value is ignored.
    pub age: Option<u64>,
    /// The field names `Vary` lists, lowercased; `None` when it lists `*`.
    pub vary: Option<Vec<HeaderName>>,
}

impl ResponseMeta {
    /// A response head.
    ///
    /// `vary` holds the normalised request values of the fields this response's `Vary` names, in
    /// the order it names them (see [`crate::policy::vary`]); it is empty when the response does not
    /// vary.
    pub fn new(
        status: StatusCode,
        version: Version,
        headers: HeaderMap,
        vary: Vec<Option<HeaderValue>>,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Self {
        Self {
            status,
            version,
            fields: Fields::from_map(&headers),
            vary: vary.into_boxed_slice(),
            request_time: micros(request_time),
            response_time: micros(response_time),
            ttl_override: NO_TTL,
            facts: PackedFacts::pack(&Facts::from(&Parsed::from_headers(&headers))),
            map: OnceLock::new(),
        }
    }

    /// The same head with a freshness lifetime set by the cache's operator, which replaces the one
    /// the header fields give (see `CacheLayer::ttl_override`).
    #[must_use]
    pub fn with_ttl_override(mut self, ttl: Option<Duration>) -> Self {
        self.ttl_override = ttl.map_or(NO_TTL, |ttl| {
            u64::try_from(ttl.as_millis()).map_or(NO_TTL - 1, |ms| ms.min(NO_TTL - 1))
        });
        self
    }

    /// The operator's freshness lifetime, if one was set.
    pub fn ttl_override(&self) -> Option<Duration> {
        (self.ttl_override != NO_TTL).then(|| Duration::from_millis(self.ttl_override))
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The HTTP version of the response.
    pub fn version(&self) -> Version {
        self.version
    }
    /// Every stored header field line, as a map. The map is built on the first call and kept
    /// with this head (it takes about 100 bytes per line): code that reads many stored entries,
    /// or reads them often, uses [`fields`](Self::fields).
    pub fn headers(&self) -> &HeaderMap {
        self.map
            .get_or_init(|| {
                Box::new(Kept {
                    served: None,
                    plain: OnceLock::new(),
                })
            })
            .plain
            .get_or_init(|| self.fields.to_header_map(0))
    }

    /// Every stored header field line, packed.
    pub fn fields(&self) -> &Fields {
        &self.fields
    }
    /// The normalised request values of the fields `Vary` names.
    pub fn vary_values(&self) -> &[Option<HeaderValue>] {
        &self.vary
    }
    /// When the request that produced this response was sent (§4.2.3 `request_time`).
    pub fn request_time(&self) -> SystemTime {
        from_micros(self.request_time)
    }
    /// When the response was received (§4.2.3 `response_time`).
    pub fn response_time(&self) -> SystemTime {
        from_micros(self.response_time)
    }

    /// A copy with other header fields and exchange times (used by 304 merges, §3.2).
    pub fn with_headers(
        &self,
        headers: HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Self {
        Self::new(
            self.status,
            self.version,
            headers,
            self.vary.to_vec(),
            request_time,
            response_time,
        )
        .with_ttl_override(self.ttl_override())
    }

    /// The values freshness and validation read, parsed when this head was made.
    pub(crate) fn facts(&self) -> Facts {
        self.facts.unpack()
    }

    /// `Cache-Control`, parsed when this head was made.
    pub fn cache_control(&self) -> Directives {
        unpack_directives(&self.facts.secs[..4], self.facts.flags[0])
    }

    /// `CDN-Cache-Control` (RFC 9213), parsed when this head was made.
    pub fn cdn_cache_control(&self) -> Option<Directives> {
        (self.facts.flags[1] & PRESENT != 0)
            .then(|| unpack_directives(&self.facts.secs[4..], self.facts.flags[1]))
    }

    /// `Date`, parsed when this head was made.
    pub fn date(&self) -> Option<SystemTime> {
        packed_date(self.facts.date)
    }

    /// The request and response times and `Date`, in microseconds since the epoch.
    pub(crate) fn times_micros(&self) -> (i64, i64, Option<i64>) {
        let date = (self.facts.date > BAD_DATE).then(|| self.facts.date.saturating_mul(1_000_000));
        (self.request_time, self.response_time, date)
    }

    /// `Age` in seconds, parsed when this head was made.
    pub fn age(&self) -> Option<u32> {
        (self.facts.age != NO_SECS).then_some(self.facts.age)
    }

    /// An estimate of the memory this head takes, in bytes: the head itself behind its `Arc`, the
    /// packed fields' buffer and its shared handle, and the Vary values.
    pub fn weight(&self) -> usize {
        let vary: usize = self
            .vary
            .iter()
            .map(|v| v.as_ref().map_or(0, |v| v.len() + 32) + 40)
            .sum();
        size_of::<Meta>() + 16 + self.fields.bytes_len() + 48 + vary
    }
}

impl Parsed {
    /// Parses the fields that freshness and validation read.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        use http::header;
        let cdn = HeaderName::from_static("cdn-cache-control");
        Parsed {
            cache_control: CacheControl::from_headers(headers, &header::CACHE_CONTROL),
            cdn_cache_control: CacheControl::from_targeted_headers(headers, &cdn),
            date: headers.get(header::DATE).and_then(parse_http_date),
            expires: if headers.contains_key(header::EXPIRES) {
                // More than one Expires line: §4.2.1 allows treating the response as stale.
                let mut all = headers.get_all(header::EXPIRES).iter();
                let first = all.next().and_then(parse_http_date);
                Some(if all.next().is_some() { None } else { first })
            } else {
                None
            },
            last_modified: headers.get(header::LAST_MODIFIED).and_then(parse_http_date),
            age: headers.get(header::AGE).and_then(|v| {
                // A list-based value: use its first member (§5.1).
                let s = v.as_bytes();
                let s = s[..s.iter().position(|b| *b == b',').unwrap_or(s.len())].trim_ascii();
                (!s.is_empty() && s.iter().all(u8::is_ascii_digit)).then(|| {
                    s.iter().fold(0u64, |n, d| {
                        n.saturating_mul(10)
                            .saturating_add(u64::from(d - b'0'))
                            .min(crate::cache_control::DELTA_SECONDS_MAX)
                    })
                })
            }),
            vary: crate::policy::vary::vary_names(headers),
        }
    }
}

/// Parses an HTTP-date (RFC 9110 §5.6.7) in any of its three formats; `None` when invalid.
///
/// Names of days and months and `GMT` are matched case-insensitively (RFC 9111 §4.2), and the
/// day name is not checked against the date. A two-digit year is placed by the system clock.
///
/// # Example
///
/// ```
/// use cachio_core::meta::parse_http_date;
/// use http::HeaderValue;
///
/// let imf = parse_http_date(&HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
/// let asctime = parse_http_date(&HeaderValue::from_static("Sun Nov  6 08:49:37 1994"));
/// assert!(imf.is_some());
/// assert_eq!(imf, asctime);
/// assert_eq!(parse_http_date(&HeaderValue::from_static("0")), None);
/// ```
pub fn parse_http_date(value: &HeaderValue) -> Option<SystemTime> {
    crate::date::parse(value.to_str().ok()?, SystemTime::now)
}

/// Formats a time as an IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn fmt_http_date(t: SystemTime) -> HeaderValue {
    let t = t.max(UNIX_EPOCH);
    // Dates past 9999 cannot be written; clamp to the last one.
    let t = t.min(UNIX_EPOCH + Duration::from_secs(253_402_300_799));
    HeaderValue::from_str(&httpdate::fmt_http_date(t))
        .expect("an IMF-fixdate is a valid header value")
}

/// The variants stored for one resource that varies (RFC 9111 §4.1).
///
/// # Example
///
/// ```
/// use cachio_core::meta::VaryIndex;
///
/// let index = VaryIndex::new(vec![http::header::ACCEPT_LANGUAGE], 42);
/// assert_eq!(index.epoch, 42);
/// assert!(index.variants.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VaryIndex {
    /// The request fields the resource varies on, lowercased, in order.
    pub names: Vec<HeaderName>,
    /// Names this generation of variants; part of every variant key.
    pub epoch: u64,
    /// The hashes of the stored variants' values, oldest first.
    pub variants: Vec<u64>,
}

impl VaryIndex {
    /// An index with no variants yet.
    pub fn new(names: Vec<HeaderName>, epoch: u64) -> Self {
        Self {
            names,
            epoch,
            variants: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_head_stays_small() {
        // With the `Arc` around it, 184 bytes: one 192-byte allocation per stored response.
        assert!(size_of::<Meta>() <= 168, "{}", size_of::<Meta>());
    }

    #[test]
    fn exchange_times_and_the_operator_ttl_read_back() {
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let before = UNIX_EPOCH - Duration::from_secs(5);
        let h = ResponseMeta::new(
            StatusCode::OK,
            Version::HTTP_11,
            HeaderMap::new(),
            Vec::new(),
            before,
            t,
        );
        assert_eq!((h.request_time(), h.response_time()), (before, t));
        assert_eq!(h.ttl_override(), None);
        for ttl in [
            Duration::ZERO,
            Duration::from_millis(1500),
            Duration::from_secs(86_400),
        ] {
            let h = h.clone().with_ttl_override(Some(ttl));
            assert_eq!(h.ttl_override(), Some(ttl));
        }
        assert!(
            h.with_ttl_override(Some(Duration::MAX))
                .ttl_override()
                .is_some()
        );
    }
}
