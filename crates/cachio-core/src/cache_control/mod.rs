//! Parsing of `Cache-Control` (RFC 9111 §5.2), `Pragma` (§5.4) and `CDN-Cache-Control` (RFC 9213).
//!
//! Parsing never fails: unknown directives are ignored (§5.2.3), directive names are
//! case-insensitive (§5.2), values may be tokens or quoted strings (§5.2), a delta-seconds value
//! larger than 2^31 is taken as 2^31 (§1.2.2) and a value that is not a number makes the directive
//! count as `0`, the most restrictive reading (§4.2.1). Where a directive appears more than once,
//! the first occurrence is used (§4.2.1).

use http::HeaderValue;
use http::header::{HeaderMap, HeaderName};

/// The largest delta-seconds value a cache has to represent (RFC 9111 §1.2.2).
pub const DELTA_SECONDS_MAX: u64 = 2_147_483_648;

/// The directives of one or more `Cache-Control`-shaped field lines.
///
/// The same type describes request and response directives; each side reads the fields that apply
/// to it.
///
/// # Example
///
/// ```
/// use cachio_core::cache_control::CacheControl;
/// use http::HeaderValue;
///
/// let v = HeaderValue::from_static("Max-Age=60, no-cache=\"Set-Cookie\", stale-if-error=300");
/// let cc = CacheControl::parse([&v]);
/// assert_eq!(cc.max_age, Some(60));
/// assert!(!cc.no_cache);
/// assert_eq!(cc.no_cache_fields, vec![http::header::SET_COOKIE]);
/// assert_eq!(cc.stale_if_error, Some(300));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheControl {
    /// `max-age=N` (§5.2.1.1, §5.2.2.1).
    pub max_age: Option<u64>,
    /// `s-maxage=N` (§5.2.2.10), for shared caches only.
    pub s_maxage: Option<u64>,
    /// `max-stale` (§5.2.1.2): `Some(None)` without a value (any staleness), `Some(Some(n))` with one.
    pub max_stale: Option<Option<u64>>,
    /// `min-fresh=N` (§5.2.1.3).
    pub min_fresh: Option<u64>,
    /// Unqualified `no-cache` (§5.2.1.4, §5.2.2.4).
    pub no_cache: bool,
    /// The fields named by a qualified `no-cache="a, b"` on a response (§5.2.2.4).
    pub no_cache_fields: Vec<HeaderName>,
    /// `no-store` (§5.2.1.5, §5.2.2.5).
    pub no_store: bool,
    /// `no-transform` (§5.2.1.6, §5.2.2.6).
    pub no_transform: bool,
    /// `only-if-cached` (§5.2.1.7).
    pub only_if_cached: bool,
    /// `must-revalidate` (§5.2.2.2).
    pub must_revalidate: bool,
    /// `must-understand` (§5.2.2.3).
    pub must_understand: bool,
    /// `proxy-revalidate` (§5.2.2.8).
    pub proxy_revalidate: bool,
    /// `public` (§5.2.2.9).
    pub public: bool,
    /// Unqualified `private` (§5.2.2.7).
    pub private: bool,
    /// The fields named by a qualified `private="a, b"` (§5.2.2.7).
    pub private_fields: Vec<HeaderName>,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
    /// `stale-while-revalidate=N` (RFC 5861 §3).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error=N` (RFC 5861 §4).
    pub stale_if_error: Option<u64>,
}

impl CacheControl {
    /// Parses the directives of every given field line, in order.
    pub fn parse<'a, I>(values: I) -> Self
    where
        I: IntoIterator<Item = &'a HeaderValue>,
    {
        let mut cc = CacheControl::default();
        let mut seen = Seen::default();
        for value in values {
            for (name, arg) in Directives::new(value.as_bytes()) {
                cc.apply(name, arg, &mut seen);
            }
        }
        cc
    }

    /// Parses every `name` field line of `headers`.
    pub fn from_headers(headers: &HeaderMap, name: &HeaderName) -> Self {
        Self::parse(headers.get_all(name))
    }

    /// Whether no directive this type knows was present (unknown directives leave no trace).
    ///
    /// Note that for a targeted field (RFC 9213) "empty" means a field with no members at all: a
    /// field holding only unknown directives is used, and makes the cache ignore `Cache-Control`.
    /// Use [`CacheControl::parse_targeted`] for those fields.
    pub fn is_empty(&self) -> bool {
        *self == CacheControl::default()
    }

    /// Parses a targeted cache-control field such as `CDN-Cache-Control` (RFC 9213 §2.1).
    ///
    /// Targeted fields are Structured Fields Dictionaries (RFC 8941 §3.2), not `Cache-Control`
    /// lists: keys are lowercase, a repeated key keeps its last value, and any syntax error makes
    /// the whole field invalid. Returns `None` when the field is absent, empty or invalid, in which
    /// case the cache behaves as if it were not present (RFC 9213 §2.1). A directive whose value
    /// has the wrong type (`max-age=1.5`, `max-age="60"`, `no-store=?0`) is ignored. A field
    /// holding only unknown directives (`CDN-Cache-Control: none`) is valid and gives a
    /// `CacheControl` with nothing set.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_core::cache_control::CacheControl;
    /// use http::HeaderValue;
    ///
    /// let v = HeaderValue::from_static("max-age=600, private=\"set-cookie\"");
    /// let cc = CacheControl::parse_targeted([&v]).unwrap();
    /// assert_eq!(cc.max_age, Some(600));
    /// assert_eq!(cc.private_fields, vec![http::header::SET_COOKIE]);
    ///
    /// // Upper-case keys are a Structured Fields syntax error: the field is ignored.
    /// let bad = HeaderValue::from_static("Max-Age=600");
    /// assert!(CacheControl::parse_targeted([&bad]).is_none());
    /// ```
    pub fn parse_targeted<'a, I>(values: I) -> Option<Self>
    where
        I: IntoIterator<Item = &'a HeaderValue>,
    {
        // Combine the field lines with commas (RFC 8941 §4.2); lines with nothing in them add
        // no member.
        let mut joined: Vec<u8> = Vec::new();
        for value in values {
            let line = value.as_bytes().trim_ascii();
            if line.is_empty() {
                continue;
            }
            if !joined.is_empty() {
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(line);
        }
        if joined.is_empty() {
            return None;
        }
        let members = sf::parse_dictionary(&joined)?;
        if members.is_empty() {
            return None;
        }
        let mut cc = CacheControl::default();
        for (key, value) in &members {
            cc.apply_targeted(key, value);
        }
        Some(cc)
    }

    /// Parses every `name` field line of `headers` as a targeted field; see
    /// [`CacheControl::parse_targeted`].
    pub fn from_targeted_headers(headers: &HeaderMap, name: &HeaderName) -> Option<Self> {
        Self::parse_targeted(headers.get_all(name))
    }

    fn apply_targeted(&mut self, name: &[u8], value: &sf::Value) {
        let delta = |v: &sf::Value| match v {
            sf::Value::Integer(n) if *n >= 0 => Some((*n as u64).min(DELTA_SECONDS_MAX)),
            _ => None,
        };
        let flag = matches!(value, sf::Value::Boolean(true));
        match name {
            b"max-age" => self.max_age = delta(value).or(self.max_age),
            b"s-maxage" => self.s_maxage = delta(value).or(self.s_maxage),
            b"min-fresh" => self.min_fresh = delta(value).or(self.min_fresh),
            b"stale-while-revalidate" => {
                self.stale_while_revalidate = delta(value).or(self.stale_while_revalidate)
            }
            b"stale-if-error" => self.stale_if_error = delta(value).or(self.stale_if_error),
            b"max-stale" => {
                if flag {
                    self.max_stale = Some(None);
                } else if let Some(n) = delta(value) {
                    self.max_stale = Some(Some(n));
                }
            }
            b"no-cache" => match value {
                sf::Value::Boolean(true) => self.no_cache = true,
                sf::Value::String(list) => {
                    push_fields(&mut self.no_cache_fields, list, &mut self.no_cache)
                }
                _ => {}
            },
            b"private" => match value {
                sf::Value::Boolean(true) => self.private = true,
                sf::Value::String(list) => {
                    push_fields(&mut self.private_fields, list, &mut self.private)
                }
                _ => {}
            },
            b"no-store" => self.no_store |= flag,
            b"no-transform" => self.no_transform |= flag,
            b"only-if-cached" => self.only_if_cached |= flag,
            b"must-revalidate" => self.must_revalidate |= flag,
            b"must-understand" => self.must_understand |= flag,
            b"proxy-revalidate" => self.proxy_revalidate |= flag,
            b"public" => self.public |= flag,
            b"immutable" => self.immutable |= flag,
            _ => {}
        }
    }

    fn apply(&mut self, name: &[u8], arg: Option<Arg<'_>>, seen: &mut Seen) {
        let lower = Lower::new(name);
        let name = lower.as_bytes();
        match name {
            b"max-age" => set_delta(&mut self.max_age, &mut seen.max_age, arg),
            b"s-maxage" => set_delta(&mut self.s_maxage, &mut seen.s_maxage, arg),
            b"min-fresh" => set_delta(&mut self.min_fresh, &mut seen.min_fresh, arg),
            b"stale-while-revalidate" => {
                set_delta(&mut self.stale_while_revalidate, &mut seen.swr, arg)
            }
            b"stale-if-error" => set_delta(&mut self.stale_if_error, &mut seen.sie, arg),
            b"max-stale" if !seen.max_stale => {
                seen.max_stale = true;
                self.max_stale = Some(arg.map(|a| delta(a.text())));
            }
            b"no-cache" => match arg {
                Some(a) => push_fields(&mut self.no_cache_fields, a.text(), &mut self.no_cache),
                None => self.no_cache = true,
            },
            b"private" => match arg {
                Some(a) => push_fields(&mut self.private_fields, a.text(), &mut self.private),
                None => self.private = true,
            },
            b"no-store" => self.no_store = true,
            b"no-transform" => self.no_transform = true,
            b"only-if-cached" => self.only_if_cached = true,
            b"must-revalidate" => self.must_revalidate = true,
            b"must-understand" => self.must_understand = true,
            b"proxy-revalidate" => self.proxy_revalidate = true,
            b"public" => self.public = true,
            b"immutable" => self.immutable = true,
            _ => {}
        }
    }
}

/// Whether `Pragma` carries `no-cache` (RFC 9111 §5.4), for requests without `Cache-Control`.
pub fn pragma_no_cache(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::PRAGMA)
        .iter()
        .flat_map(|v| Directives::new(v.as_bytes()))
        .any(|(name, _)| name.eq_ignore_ascii_case(b"no-cache"))
}

#[derive(Default)]
struct Seen {
    max_age: bool,
    s_maxage: bool,
    min_fresh: bool,
    swr: bool,
    sie: bool,
    max_stale: bool,
}

fn set_delta(slot: &mut Option<u64>, seen: &mut bool, arg: Option<Arg<'_>>) {
    if *seen {
        return;
    }
    *seen = true;
    // A directive that needs a value but has none is invalid: the most restrictive reading is 0.
    *slot = Some(arg.map(|a| delta(a.text())).unwrap_or(0));
}

/// delta-seconds (RFC 9111 §1.2.2): digits only; larger than 2^31 saturates; anything else is 0.
fn delta(text: &[u8]) -> u64 {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    let mut n: u64 = 0;
    for d in text {
        n = n.saturating_mul(10).saturating_add(u64::from(d - b'0'));
        if n > DELTA_SECONDS_MAX {
            return DELTA_SECONDS_MAX;
        }
    }
    n
}

fn push_fields(out: &mut Vec<HeaderName>, list: &[u8], unqualified: &mut bool) {
    let mut any = false;
    for item in list.split(|b| *b == b',') {
        let item = trim(item);
        if item.is_empty() {
            continue;
        }
        match HeaderName::from_bytes(item) {
            Ok(name) => {
                any = true;
                if !out.contains(&name) {
                    out.push(name);
                }
            }
            // A field list we cannot read: the safe reading is the unqualified directive.
            Err(_) => *unqualified = true,
        }
    }
    if !any {
        *unqualified = true;
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A directive's argument: a token, or a quoted-string with its escapes removed.
enum Arg<'a> {
    Token(&'a [u8]),
    Quoted(Vec<u8>),
}

impl Arg<'_> {
    fn text(&self) -> &[u8] {
        match self {
            Arg::Token(t) => t,
            Arg::Quoted(q) => q,
        }
    }
}

/// Iterates `name[=value]` items of a comma-separated list, honouring quoted strings.
struct Directives<'a> {
    rest: &'a [u8],
}

impl<'a> Directives<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }
}

impl<'a> Iterator for Directives<'a> {
    type Item = (&'a [u8], Option<Arg<'a>>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let s = self.rest;
            if s.is_empty() {
                return None;
            }
            // name: up to '=' or ','
            let end = s
                .iter()
                .position(|b| *b == b'=' || *b == b',')
                .unwrap_or(s.len());
            let name = trim(&s[..end]);
            if end == s.len() || s[end] == b',' {
                self.rest = if end == s.len() { &[] } else { &s[end + 1..] };
                if name.is_empty() {
                    continue;
                }
                return Some((name, None));
            }
            // value after '='
            let mut v = &s[end + 1..];
            while let [b' ' | b'\t', rest @ ..] = v {
                v = rest;
            }
            let arg;
            if let [b'"', rest @ ..] = v {
                let mut out = Vec::new();
                let mut i = 0;
                let mut closed = false;
                while i < rest.len() {
                    match rest[i] {
                        b'\\' if i + 1 < rest.len() => {
                            out.push(rest[i + 1]);
                            i += 2;
                        }
                        b'"' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        c => {
                            out.push(c);
                            i += 1;
                        }
                    }
                }
                let after = &rest[i..];
                let next = after
                    .iter()
                    .position(|b| *b == b',')
                    .map_or(after.len(), |p| p + 1);
                self.rest = &after[next..];
                if !closed {
                    // An unterminated quoted string: keep what we read, the list ends here.
                    self.rest = &[];
                }
                arg = Arg::Quoted(out);
            } else {
                let stop = v.iter().position(|b| *b == b',').unwrap_or(v.len());
                arg = Arg::Token(trim(&v[..stop]));
                self.rest = if stop == v.len() { &[] } else { &v[stop + 1..] };
            }
            if name.is_empty() {
                continue;
            }
            return Some((name, Some(arg)));
        }
    }
}

/// ASCII-lowercases a short directive name without allocating in the common case.
struct Lower<'a> {
    borrowed: &'a [u8],
    owned: Option<Vec<u8>>,
}

impl<'a> Lower<'a> {
    fn new(name: &'a [u8]) -> Self {
        if name.iter().any(u8::is_ascii_uppercase) {
            Self {
                borrowed: name,
                owned: Some(name.to_ascii_lowercase()),
            }
        } else {
            Self {
                borrowed: name,
                owned: None,
            }
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.owned.as_deref().unwrap_or(self.borrowed)
    }
}

mod sf;
