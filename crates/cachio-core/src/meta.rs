//! What a store keeps about an entry: the response head, the request values its `Vary` selects, the
//! times of the exchange, and the variant indexes of resources that vary.
//!
//! [`Meta::encode`] and [`Meta::decode`] give every store that writes bytes (disk, Redis) one binary
//! format with a version, so that an entry written by another version is read as a miss, never
//! misread.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};

use crate::cache_control::CacheControl;
use crate::fields::Fields;
use crate::store::{ErrorKind, StoreError};

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
/// values freshness needs parsed once when the head is made ([`Facts`]), so that a stored entry is
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

/// The map a hit serves, kept with its head: `Age` is its first line, and `Cache-Status` its
/// second when the stored response has none of its own (the order of different names is not
/// significant, RFC 9110 §5.3), so a hit sets both in place without looking either up.
struct Served {
    map: HeaderMap,
    /// Whether our `Cache-Status` is the second line; otherwise it is the last of its name, after
    /// the stored ones.
    status_second: bool,
    /// The bytes the budget granted, given back when the map is dropped.
    _grant: Grant,
}

/// The header maps kept with a stored head.
struct Kept {
    /// What a hit serves ([`ResponseMeta::hit_headers`]), kept by
    /// [`ResponseMeta::keep_headers`] with the bytes its budget granted.
    served: Option<Served>,
    /// Copies of `served` for the hits of other threads, made on their first hit if the budget
    /// has room (see [`replicas`]).
    copies: Box<[OnceLock<Box<Served>>]>,
    /// Every line alone, built by [`ResponseMeta::headers`] (which no budget bounds).
    plain: OnceLock<HeaderMap>,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("served", &self.served.as_ref().map(|s| s.map.len()))
            .field(
                "copies",
                &self.copies.iter().filter(|c| c.get().is_some()).count(),
            )
            .field("plain", &self.plain.get().map(HeaderMap::len))
            .finish()
    }
}

/// The `Cache-Status` field name (RFC 9211).
const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The map a hit serves from `fields`, laid out as [`Served`] says, and whether `status` is its
/// second line.
fn served_map(fields: &Fields, age: HeaderValue, status: HeaderValue) -> (HeaderMap, bool) {
    let mut map = HeaderMap::with_capacity(fields.len() + 2);
    map.insert(http::header::AGE, age);
    let status_second = !fields.contains(&CACHE_STATUS);
    let mut status = Some(status);
    if status_second && let Some(status) = status.take() {
        map.insert(CACHE_STATUS, status);
    }
    fields.append_to(&mut map, Some(&http::header::AGE));
    if let Some(status) = status {
        map.append(CACHE_STATUS, status);
    }
    (map, status_second)
}

/// How many copies of a kept map may serve hits: one per thread, up to 8.
///
/// Cloning a map takes a reference to every value, and the values of one map share one count: on
/// one copy, the hits of every core would write that count's cache line, about twenty times per
/// hit. Each thread clones the copy of its slot instead ([`thread_slot`]), so that hits on other
/// cores write other lines.
fn replicas() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(8)
    })
}

/// This thread's slot among [`replicas`], given out in turn as threads first ask.
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // Reduced once, here: a division on every hit costs more than the rest of this.
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % replicas();
    }
    SLOT.with(|slot| *slot)
}

/// Bytes taken from a [`MapBudget`] ([`MapBudget::take`]), given back when the grant is dropped.
///
/// A kept map holds one until the last handle to its head goes; a store may take others for
/// bookkeeping it does for the entries that are hit.
///
/// # Example
///
/// ```
/// let budget = cachio_core::meta::MapBudget::new(100);
/// let grant = budget.take(60).expect("fits");
/// assert_eq!(grant.bytes(), 60);
/// assert!(budget.take(60).is_none());
/// drop(grant);
/// assert_eq!(budget.used(), 0);
/// ```
#[must_use = "the bytes go back to the budget when the grant is dropped"]
pub struct Grant {
    budget: MapBudget,
    bytes: u64,
}

impl Grant {
    /// The bytes taken.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant").field("bytes", &self.bytes).finish()
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.budget
            .inner
            .used
            .fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A bound on the memory that header maps kept with stored heads may take
/// ([`ResponseMeta::keep_headers`]), shared by every head of one store.
///
/// A store that keeps its entries in memory hands its heads to the cache as they are: a head that
/// keeps its built [`HeaderMap`] lets every later hit clone that map (what a service answering
/// from a prebuilt response pays) instead of building one from the packed fields. Each kept map
/// takes about 140 bytes per field line, far more than the packed lines, so a store bounds them
/// with a budget: the bytes are counted when a map is kept and given back when the head that holds
/// it is dropped. Over the budget, nothing more is kept and hits build their map.
///
/// # Example
///
/// ```
/// use std::time::SystemTime;
/// use cachio_core::meta::{MapBudget, ResponseMeta};
///
/// let budget = MapBudget::new(64 << 10);
/// let mut fields = http::HeaderMap::new();
/// fields.insert("content-type", http::HeaderValue::from_static("text/plain"));
/// let now = SystemTime::now();
/// let head = ResponseMeta::new(http::StatusCode::OK, http::Version::HTTP_11, fields, Vec::new(), now, now);
/// assert!(head.keep_headers(&budget));
/// assert!(budget.used() > 0);
/// let served = head.hit_headers(http::HeaderValue::from_static("5"), http::HeaderValue::from_static("c; hit"));
/// assert_eq!(served["age"], "5");
/// drop(head);
/// assert_eq!(budget.used(), 0);
/// ```
#[derive(Clone)]
pub struct MapBudget {
    inner: Arc<BudgetInner>,
}

struct BudgetInner {
    limit: u64,
    used: AtomicU64,
}

impl MapBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Self {
            inner: Arc::new(BudgetInner {
                limit,
                used: AtomicU64::new(0),
            }),
        }
    }

    /// The budget, in bytes.
    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// The bytes granted to the maps kept now.
    pub fn used(&self) -> u64 {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` if they fit in what is left; they go back when the [`Grant`] is dropped.
    pub fn take(&self, bytes: u64) -> Option<Grant> {
        let limit = self.inner.limit;
        self.inner
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&n| n <= limit)
            })
            .ok()
            .map(|_| Grant {
                budget: self.clone(),
                bytes,
            })
    }
}

impl std::fmt::Debug for MapBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapBudget")
            .field("limit", &self.limit())
            .field("used", &self.used())
            .finish()
    }
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

/// A time as microseconds since the epoch (negative before it), saturating.
pub(crate) fn micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |us| -us),
    }
}

fn from_micros(us: i64) -> SystemTime {
    let d = Duration::from_micros(us.unsigned_abs());
    if us >= 0 {
        UNIX_EPOCH.checked_add(d).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(d).unwrap_or(UNIX_EPOCH)
    }
}

/// [`Facts`] as a stored head keeps them, in 64 bytes instead of 140: the delta-seconds of
/// both fields in `u32`s (none: `u32::MAX`, above every valid value), their flags in a byte each,
/// and the dates (whole seconds, as HTTP-dates are) in `i64`s of seconds. Read back by
/// [`ResponseMeta::facts`].
#[derive(Clone, Copy, Debug)]
struct PackedFacts {
    /// `max-age`, `s-maxage`, `stale-while-revalidate`, `stale-if-error` of `Cache-Control`, then
    /// of `CDN-Cache-Control`.
    secs: [u32; 8],
    /// The flags of `Cache-Control`, then of `CDN-Cache-Control`.
    flags: [u8; 2],
    age: u32,
    date: i64,
    expires: i64,
    last_modified: i64,
}

const NO_SECS: u32 = u32::MAX;
const NO_DATE: i64 = i64::MIN;
const BAD_DATE: i64 = i64::MIN + 1;

const NO_CACHE: u8 = 1;
const MUST_REVALIDATE: u8 = 1 << 1;
const PROXY_REVALIDATE: u8 = 1 << 2;
const PUBLIC: u8 = 1 << 3;
const PRIVATE: u8 = 1 << 4;
const PRIVATE_FIELDS: u8 = 1 << 5;
const IMMUTABLE: u8 = 1 << 6;
/// Set when the field is present.
const PRESENT: u8 = 1 << 7;

fn pack_directives(d: Option<&Directives>, secs: &mut [u32], flags: &mut u8) {
    let Some(d) = d else {
        secs.fill(NO_SECS);
        *flags = 0;
        return;
    };
    let pack = |v: Option<u32>| v.map_or(NO_SECS, |n| n.min(NO_SECS - 1));
    secs.copy_from_slice(&[
        pack(d.max_age),
        pack(d.s_maxage),
        pack(d.stale_while_revalidate),
        pack(d.stale_if_error),
    ]);
    let flag = |set: bool, bit: u8| if set { bit } else { 0 };
    *flags = PRESENT
        | flag(d.no_cache, NO_CACHE)
        | flag(d.must_revalidate, MUST_REVALIDATE)
        | flag(d.proxy_revalidate, PROXY_REVALIDATE)
        | flag(d.public, PUBLIC)
        | flag(d.private, PRIVATE)
        | flag(d.private_fields, PRIVATE_FIELDS)
        | flag(d.immutable, IMMUTABLE);
}

fn unpack_directives(secs: &[u32], flags: u8) -> Directives {
    let secs = |i: usize| (secs[i] != NO_SECS).then_some(secs[i]);
    let flag = |bit: u8| flags & bit != 0;
    Directives {
        max_age: secs(0),
        s_maxage: secs(1),
        stale_while_revalidate: secs(2),
        stale_if_error: secs(3),
        no_cache: flag(NO_CACHE),
        must_revalidate: flag(MUST_REVALIDATE),
        proxy_revalidate: flag(PROXY_REVALIDATE),
        public: flag(PUBLIC),
        private: flag(PRIVATE),
        private_fields: flag(PRIVATE_FIELDS),
        immutable: flag(IMMUTABLE),
    }
}

fn packed_date(secs: i64) -> Option<SystemTime> {
    (secs > BAD_DATE).then(|| from_micros(secs.saturating_mul(1_000_000)))
}

impl PackedFacts {
    fn pack(f: &Facts) -> Self {
        let date = |t: Option<SystemTime>| {
            t.map_or(NO_DATE, |t| (micros(t) / 1_000_000).max(BAD_DATE + 1))
        };
        let mut packed = Self {
            secs: [NO_SECS; 8],
            flags: [0; 2],
            age: f.age.map_or(NO_SECS, |a| a.min(NO_SECS - 1)),
            date: date(f.date),
            expires: match f.expires {
                None => NO_DATE,
                Some(None) => BAD_DATE,
                Some(t) => date(t),
            },
            last_modified: date(f.last_modified),
        };
        let (cc, cdn) = packed.secs.split_at_mut(4);
        let [cc_flags, cdn_flags] = &mut packed.flags;
        pack_directives(Some(&f.cache_control), cc, cc_flags);
        pack_directives(f.cdn_cache_control.as_ref(), cdn, cdn_flags);
        packed
    }

    fn unpack(&self) -> Facts {
        let date = packed_date;
        Facts {
            cache_control: unpack_directives(&self.secs[..4], self.flags[0]),
            cdn_cache_control: (self.flags[1] & PRESENT != 0)
                .then(|| unpack_directives(&self.secs[4..], self.flags[1])),
            date: date(self.date),
            expires: match self.expires {
                NO_DATE => None,
                BAD_DATE => Some(None),
                s => Some(date(s)),
            },
            last_modified: date(self.last_modified),
            age: (self.age != NO_SECS).then_some(self.age),
        }
    }
}

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
pub struct Facts {
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
pub struct Parsed {
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
                    copies: Box::new([]),
                    plain: OnceLock::new(),
                })
            })
            .plain
            .get_or_init(|| self.fields.to_header_map(0))
    }

    /// The header fields of a response served from this head: every stored line, `age` (in place
    /// of the stored `Age` lines) and `status` (after the stored `Cache-Status` lines).
    ///
    /// A head that keeps a map ([`keep_headers`](Self::keep_headers)) clones it and sets the two
    /// values in place; another builds the map from the packed fields. The values share the
    /// packed buffer either way: no value byte is copied.
    #[inline]
    pub fn hit_headers(&self, age: HeaderValue, status: HeaderValue) -> HeaderMap {
        let Some((kept, first)) = self.map.get().and_then(|k| Some((k, k.served.as_ref()?))) else {
            return served_map(&self.fields, age, status).0;
        };
        let kept = self.replica(kept, first);
        let mut map = kept.map.clone();
        let mut lines = map.values_mut();
        if let Some(first) = lines.next() {
            *first = age;
        }
        if kept.status_second {
            if let Some(second) = lines.next() {
                *second = status;
            }
        } else if let http::header::Entry::Occupied(mut lines) = map.entry(CACHE_STATUS)
            && let Some(last) = lines.iter_mut().last()
        {
            *last = status;
        }
        map
    }

    /// The copy of the kept map this thread's hits clone: the first one, or a copy of its own
    /// (made now, if the budget the first was granted from has room; otherwise the first).
    fn replica<'a>(&self, kept: &'a Kept, first: &'a Served) -> &'a Served {
        let slot = thread_slot();
        let Some(cell) = slot.checked_sub(1).and_then(|i| kept.copies.get(i)) else {
            return first;
        };
        if let Some(copy) = cell.get() {
            return copy;
        }
        match self.build_served(&first._grant.budget, true) {
            Some(copy) => cell.get_or_init(|| Box::new(copy)),
            None => first,
        }
    }

    /// A map to keep, if `budget` has room for it: from this head's packed fields, or from a copy
    /// of them (`copy`), whose values then share no reference count with this head's.
    fn build_served(&self, budget: &MapBudget, copy: bool) -> Option<Served> {
        // Counted as if no name were repeated, the map can only weigh less: a head that cannot fit
        // is told so without building a map for nothing (on each of its hits).
        let lines = self.fields.len() + 2;
        if budget.used().saturating_add(self.kept_weight(lines, lines)) > budget.limit() {
            return None;
        }
        let copied;
        let (fields, own_block) = if copy {
            copied = self.fields.copied();
            (&copied, self.fields.block_len() + 16)
        } else {
            (&self.fields, 0)
        };
        let (map, status_second) = served_map(
            fields,
            HeaderValue::from_static("0"),
            HeaderValue::from_static(""),
        );
        // A clone holds exactly its entries: the map built above has room for twice as many.
        let map = crate::intern::interned(&map).clone();
        let weight = self.kept_weight(map.keys_len(), map.len()) + own_block as u64;
        Some(Served {
            map,
            status_second,
            _grant: budget.take(weight)?,
        })
    }

    /// Whether this head keeps the map a hit serves ([`keep_headers`](Self::keep_headers)).
    pub fn keeps_headers(&self) -> bool {
        self.map.get().is_some_and(|k| k.served.is_some())
    }

    /// Builds the map a hit serves ([`hit_headers`](Self::hit_headers)) and keeps it with this
    /// head if `budget` has room for it; the bytes go back to the budget when the head is
    /// dropped. Returns whether a map is kept now.
    ///
    /// A head whose [`headers`](Self::headers) was read first keeps nothing (its slot is taken):
    /// stores hand out heads nobody else reads.
    pub fn keep_headers(&self, budget: &MapBudget) -> bool {
        if let Some(k) = self.map.get() {
            return k.served.is_some();
        }
        let Some(served) = self.build_served(budget, false) else {
            return false;
        };
        let kept = Box::new(Kept {
            served: Some(served),
            copies: (1..replicas()).map(|_| OnceLock::new()).collect(),
            plain: OnceLock::new(),
        });
        // Another hit may have kept one meanwhile: this one (and its grant) is then dropped.
        let _ = self.map.set(kept);
        self.keeps_headers()
    }

    /// An estimate of the memory a kept map of `keys` names and `values` lines takes in bytes:
    /// the box around it, its entries (104 bytes each: hash, name, value, links) and index slots
    /// (4 bytes each, a power of two at least 4/3 of the entries), the values of repeated names
    /// (72 bytes each), the names that are not standard (each allocated) and the allocator's
    /// overhead. `cargo bench --bench memory` compares it with the growth of the resident set
    /// when every entry keeps a map.
    fn kept_weight(&self, keys: usize, values: usize) -> u64 {
        let names: usize = self
            .fields
            .iter()
            .filter(|l| !l.is_standard())
            // The name's bytes, and the block the clone's handle shares them through.
            .map(|l| l.name_bytes().len() + 16 + 32)
            .sum();
        let slots = (keys + keys / 3).next_power_of_two();
        let repeated = values.saturating_sub(keys);
        let copies = (replicas() - 1) * size_of::<OnceLock<Box<Served>>>();
        (size_of::<Kept>()
            + 16
            + copies
            + keys * 104
            + 16
            + slots * 4
            + 16
            + repeated * 72
            + 16
            + names) as u64
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
    pub fn facts(&self) -> Facts {
        self.facts.unpack()
    }

    /// `Cache-Control`, as [`facts`](Self::facts) gives it (without unpacking the rest).
    pub fn cache_control(&self) -> Directives {
        unpack_directives(&self.facts.secs[..4], self.facts.flags[0])
    }

    /// `CDN-Cache-Control`, as [`facts`](Self::facts) gives it.
    pub fn cdn_cache_control(&self) -> Option<Directives> {
        (self.facts.flags[1] & PRESENT != 0)
            .then(|| unpack_directives(&self.facts.secs[4..], self.facts.flags[1]))
    }

    /// `Date`, as [`facts`](Self::facts) gives it.
    pub fn date(&self) -> Option<SystemTime> {
        packed_date(self.facts.date)
    }

    /// The request and response times and `Date`, in microseconds since the epoch.
    pub(crate) fn times_micros(&self) -> (i64, i64, Option<i64>) {
        let date = (self.facts.date > BAD_DATE).then(|| self.facts.date.saturating_mul(1_000_000));
        (self.request_time, self.response_time, date)
    }

    /// `Age` in seconds, as [`facts`](Self::facts) gives it.
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

// ---- encoding ---------------------------------------------------------------------------------

const MAGIC: &[u8; 4] = b"CHM1";
const KIND_RESPONSE: u8 = 1;
const KIND_VARIANTS: u8 = 2;

impl Meta {
    /// Encodes the metadata in cachio's binary format (versioned by [`FORMAT_VERSION`]).
    ///
    /// The layout: magic `CHM1`, the format version (u16 BE), a kind byte, then for a response the
    /// status (u16), version (u8), request and response times (i64 ms since the epoch), the
    /// operator's TTL (a presence byte, then u64 ms), the Vary
    /// values (count u16; each a presence byte and a length-prefixed value), and every header line
    /// in order (count u32; each name and value length-prefixed with u32); for a variant index the
    /// epoch (u64), the names and the variant hashes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        match self {
            Meta::Response(r) => {
                out.push(KIND_RESPONSE);
                out.extend_from_slice(&r.status.as_u16().to_be_bytes());
                out.push(version_byte(r.version));
                out.extend_from_slice(&millis(r.request_time()).to_be_bytes());
                out.extend_from_slice(&millis(r.response_time()).to_be_bytes());
                match r.ttl_override() {
                    Some(ttl) => {
                        out.push(1);
                        out.extend_from_slice(
                            &ttl.as_millis().min(u128::from(u64::MAX)).to_be_bytes()[8..],
                        );
                    }
                    None => out.push(0),
                }
                out.extend_from_slice(&(r.vary.len() as u16).to_be_bytes());
                for v in &r.vary {
                    match v {
                        Some(v) => {
                            out.push(1);
                            put_bytes(&mut out, v.as_bytes());
                        }
                        None => out.push(0),
                    }
                }
                out.extend_from_slice(&(r.fields.len() as u32).to_be_bytes());
                for line in r.fields.iter() {
                    put_bytes(&mut out, line.name_bytes());
                    put_bytes(&mut out, line.value());
                }
            }
            Meta::Variants(v) => {
                out.push(KIND_VARIANTS);
                out.extend_from_slice(&v.epoch.to_be_bytes());
                out.extend_from_slice(&(v.names.len() as u16).to_be_bytes());
                for n in &v.names {
                    put_bytes(&mut out, n.as_str().as_bytes());
                }
                out.extend_from_slice(&(v.variants.len() as u32).to_be_bytes());
                for h in &v.variants {
                    out.extend_from_slice(&h.to_be_bytes());
                }
            }
        }
        out
    }

    /// Decodes metadata written by [`Meta::encode`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`] when the bytes are truncated or malformed, and
    /// [`ErrorKind::UnknownFormat`] when they were written in another format version.
    pub fn decode(bytes: &[u8]) -> Result<Meta, StoreError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4)? != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let version = r.u16()?;
        if version != FORMAT_VERSION {
            return Err(StoreError::new(
                ErrorKind::UnknownFormat,
                format!("format version {version}"),
            ));
        }
        let meta = match r.u8()? {
            KIND_RESPONSE => {
                let status = StatusCode::from_u16(r.u16()?).map_err(|_| corrupt("bad status"))?;
                let version = byte_version(r.u8()?)?;
                let request_time = from_millis(r.i64()?);
                let response_time = from_millis(r.i64()?);
                let ttl_override = match r.u8()? {
                    0 => None,
                    1 => Some(Duration::from_millis(r.u64()?)),
                    _ => return Err(corrupt("bad ttl tag")),
                };
                let n = r.u16()? as usize;
                let mut vary = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    vary.push(match r.u8()? {
                        0 => None,
                        1 => Some(
                            HeaderValue::from_bytes(r.bytes()?)
                                .map_err(|_| corrupt("bad vary value"))?,
                        ),
                        _ => return Err(corrupt("bad vary tag")),
                    });
                }
                let n = r.u32()? as usize;
                let mut headers = HeaderMap::with_capacity(n.min(256));
                for _ in 0..n {
                    let name = HeaderName::from_bytes(r.bytes()?)
                        .map_err(|_| corrupt("bad header name"))?;
                    let value = HeaderValue::from_bytes(r.bytes()?)
                        .map_err(|_| corrupt("bad header value"))?;
                    headers.append(name, value);
                }
                Meta::Response(
                    ResponseMeta::new(status, version, headers, vary, request_time, response_time)
                        .with_ttl_override(ttl_override),
                )
            }
            KIND_VARIANTS => {
                let epoch = r.u64()?;
                let n = r.u16()? as usize;
                let mut names = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    names.push(
                        HeaderName::from_bytes(r.bytes()?).map_err(|_| corrupt("bad vary name"))?,
                    );
                }
                let n = r.u32()? as usize;
                let mut variants = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    variants.push(r.u64()?);
                }
                Meta::Variants(VaryIndex {
                    names,
                    epoch,
                    variants,
                })
            }
            _ => return Err(corrupt("bad kind")),
        };
        if r.pos != bytes.len() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(meta)
    }
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::new(ErrorKind::Corrupt, what)
}

fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis().min(i64::MAX as u128) as i64,
        Err(e) => -(e.duration().as_millis().min(i64::MAX as u128) as i64),
    }
}

fn from_millis(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_millis(ms.unsigned_abs()))
            .unwrap_or(UNIX_EPOCH)
    }
}

fn version_byte(v: Version) -> u8 {
    match v {
        Version::HTTP_09 => 9,
        Version::HTTP_10 => 10,
        Version::HTTP_2 => 20,
        Version::HTTP_3 => 30,
        _ => 11,
    }
}

fn byte_version(b: u8) -> Result<Version, StoreError> {
    Ok(match b {
        9 => Version::HTTP_09,
        10 => Version::HTTP_10,
        11 => Version::HTTP_11,
        20 => Version::HTTP_2,
        30 => Version::HTTP_3,
        _ => return Err(corrupt("bad version")),
    })
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| corrupt("length overflow"))?;
        let s = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| corrupt("truncated"))?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, StoreError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().map_err(|_| corrupt("u16"))?,
        ))
    }
    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().map_err(|_| corrupt("u32"))?,
        ))
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().map_err(|_| corrupt("u64"))?,
        ))
    }
    fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().map_err(|_| corrupt("i64"))?,
        ))
    }
    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_keeps_every_header_line_in_order() {
        let mut h = HeaderMap::new();
        h.append("set-cookie", HeaderValue::from_static("a=1"));
        h.append("link", HeaderValue::from_static("</a>; rel=preload"));
        h.append("set-cookie", HeaderValue::from_static("b=2"));
        h.append("link", HeaderValue::from_static("</b>; rel=preload"));
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let m = Meta::Response(ResponseMeta::new(
            StatusCode::NOT_FOUND,
            Version::HTTP_2,
            h.clone(),
            vec![Some(HeaderValue::from_static("en")), None],
            t,
            t + Duration::from_millis(5),
        ));
        let back = Meta::decode(&m.encode()).unwrap();
        let r = back.as_response().unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.version(), Version::HTTP_2);
        assert_eq!(r.headers(), &h);
        let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(
            r.vary_values(),
            &[Some(HeaderValue::from_static("en")), None]
        );
        assert_eq!(r.request_time(), t);
        assert_eq!(r.response_time(), t + Duration::from_millis(5));
    }

    #[test]
    fn decode_rejects_truncation_and_other_versions() {
        let m = Meta::Variants(VaryIndex {
            names: vec![http::header::ACCEPT],
            epoch: 9,
            variants: vec![1, 2, 3],
        });
        let bytes = m.encode();
        for cut in 0..bytes.len() {
            let e = Meta::decode(&bytes[..cut]).unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::Corrupt), "cut at {cut}: {e}");
        }
        let mut other = bytes.clone();
        other[5] = 99;
        assert!(matches!(
            Meta::decode(&other).unwrap_err().kind(),
            ErrorKind::UnknownFormat
        ));
        match Meta::decode(&bytes).unwrap() {
            Meta::Variants(v) => assert_eq!(v.variants, vec![1, 2, 3]),
            Meta::Response(_) => panic!("kind changed"),
        }
    }

    fn head(lines: &[(&'static str, &'static str)]) -> ResponseMeta {
        let mut h = HeaderMap::new();
        for (name, value) in lines {
            h.append(*name, HeaderValue::from_static(value));
        }
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        ResponseMeta::new(StatusCode::OK, Version::HTTP_11, h, Vec::new(), t, t)
    }

    fn lines(map: &HeaderMap) -> Vec<(String, String)> {
        map.iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect()
    }

    /// Each thread slot clones a copy of its own, whose values share no reference count with
    /// another's; every copy serves the same lines and is counted against the budget.
    #[test]
    fn threads_hit_copies_of_their_own() {
        let budget = MapBudget::new(1 << 20);
        let fields = [("content-type", "text/plain"), ("x-custom", "1")];
        let hot = head(&fields);
        assert!(hot.keep_headers(&budget));
        let first = budget.used();
        let hit = || hot.hit_headers(HeaderValue::from_static("1"), HeaderValue::from_static("c"));
        let expected = lines(&hit());
        // Eight new threads take eight consecutive slots: every copy is made.
        let pointers: std::collections::HashSet<usize> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let served = hit();
                        assert_eq!(lines(&served), expected);
                        // (`Content-Type` is interned: every copy serves the same static value.)
                        served["x-custom"].as_bytes().as_ptr() as usize
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(pointers.len(), replicas(), "one set of values per copy");
        let copies = (replicas() - 1) as u64;
        assert!(
            budget.used() >= first * (1 + copies),
            "{} {first}",
            budget.used()
        );
        drop(hot);
        assert_eq!(budget.used(), 0, "every copy gives its bytes back");
    }

    #[test]
    fn a_kept_map_serves_what_a_built_one_does() {
        let budget = MapBudget::new(1 << 20);
        for fields in [
            &[][..],
            &[("content-type", "text/plain"), ("x-custom", "1")][..],
            // Stored `Age` lines are replaced; our `Cache-Status` comes after the stored ones.
            &[
                ("age", "10"),
                ("cache-status", "upstream; hit"),
                ("set-cookie", "a=1"),
                ("age", "11"),
                ("set-cookie", "b=2"),
                ("cache-status", "edge; fwd=miss"),
            ][..],
        ] {
            let cold = head(fields);
            let hot = head(fields);
            assert!(hot.keep_headers(&budget));
            assert!(hot.keeps_headers() && !cold.keeps_headers());
            for (age, status) in [("3", "c; hit"), ("7", "c; hit; ttl=5")] {
                let (age, status) = (
                    HeaderValue::from_static(age),
                    HeaderValue::from_static(status),
                );
                let built = cold.hit_headers(age.clone(), status.clone());
                let kept = hot.hit_headers(age, status);
                assert_eq!(lines(&kept), lines(&built), "{fields:?}");
            }
            assert_eq!(cold.headers(), hot.headers());
        }
    }

    #[test]
    fn the_budget_bounds_kept_maps_and_gets_them_back() {
        let fields = [("content-type", "text/plain"), ("x-a", "1"), ("x-a", "2")];
        let one = {
            let budget = MapBudget::new(u64::MAX);
            let h = head(&fields);
            assert!(h.keep_headers(&budget));
            budget.used()
        };
        assert!(one > 4 * 104, "{one} bytes");
        let budget = MapBudget::new(2 * one + one / 2);
        let heads: Vec<_> = (0..3).map(|_| head(&fields)).collect();
        let kept: Vec<_> = heads.iter().map(|h| h.keep_headers(&budget)).collect();
        assert_eq!(kept, [true, true, false]);
        assert_eq!(budget.used(), 2 * one);
        // Keeping again costs nothing more.
        assert!(heads[0].keep_headers(&budget));
        assert_eq!(budget.used(), 2 * one);
        // A copy does not carry the map (or its grant).
        let copy = heads[0].clone();
        assert!(!copy.keeps_headers());
        drop(heads);
        assert_eq!(budget.used(), 0);
        // A head whose `headers` was read first keeps nothing: that map is outside any budget.
        let read = head(&fields);
        let _ = read.headers();
        assert!(!read.keep_headers(&budget));
        assert_eq!(budget.used(), 0);
        assert_eq!(
            read.hit_headers(HeaderValue::from_static("1"), HeaderValue::from_static("c"))
                .len(),
            5
        );
    }

    #[test]
    fn packed_facts_read_back_what_was_parsed() {
        let t = |s: u64| Some(UNIX_EPOCH + Duration::from_secs(s));
        let all = Directives {
            max_age: Some(0),
            s_maxage: Some(u32::MAX),
            stale_while_revalidate: Some(1 << 31),
            stale_if_error: None,
            no_cache: true,
            must_revalidate: false,
            proxy_revalidate: true,
            public: false,
            private: true,
            private_fields: false,
            immutable: true,
        };
        for facts in [
            Facts::default(),
            Facts {
                cache_control: all,
                cdn_cache_control: Some(Directives::default()),
                date: t(1_700_000_000),
                expires: Some(None),
                last_modified: t(0),
                age: Some(0),
            },
            Facts {
                cache_control: Directives::default(),
                cdn_cache_control: Some(all),
                date: None,
                expires: Some(t(253_402_300_799)),
                last_modified: None,
                age: Some(1 << 31),
            },
        ] {
            let mut expected = facts;
            // Delta-seconds are at most 2^31: u32::MAX is the packed form's "none".
            for d in [
                Some(&mut expected.cache_control),
                expected.cdn_cache_control.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                d.s_maxage = d.s_maxage.map(|s| s.min(u32::MAX - 1));
            }
            assert_eq!(PackedFacts::pack(&facts).unpack(), expected);
        }
    }

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
