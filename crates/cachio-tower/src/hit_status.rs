//! The `Cache-Status` value of a hit (`<name>; hit; ttl=<n>`, RFC 9211), which every hit sends.
//!
//! Making one per hit takes an allocation, a check of every byte and a free. Hits with a TTL below
//! [`STATIC_TTLS`] seconds therefore clone a static value, made once per cache name and TTL and
//! kept for the life of the process: a clone that writes no reference count. At most
//! [`STATIC_NAMES`] cache names get such values, made in chunks of [`CHUNK`] TTLs as hits meet
//! them: with its slot a value takes about 75 bytes, so a name takes at most about 300 KB, and a
//! cache whose entries live for a minute about 5 KB. Other hits (a longer TTL, a stale hit, a cache
//! name past that bound) share a value per thread and TTL instead, whose clone counts a
//! reference.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use cachio_core::policy::status::CacheStatus;
use http::HeaderValue;

/// Hits whose TTL is below this (in seconds) get a static value.
const STATIC_TTLS: usize = 4096;

/// How many cache names get static values.
const STATIC_NAMES: usize = 16;

/// The static values are made in chunks of this many TTLs, as hits need them.
const CHUNK: usize = 64;

/// How many values each thread keeps for the other hits (slot: the TTL modulo their number).
const THREAD_SLOTS: usize = 8;

/// The hit values of one cache name.
#[derive(Clone)]
pub(crate) struct HitStatus {
    name: String,
    /// What every value starts with, e.g. `cachio; hit; ttl=`.
    prefix: Arc<[u8]>,
    /// The static values of this name, if it is among the first [`STATIC_NAMES`].
    statics: Option<&'static Statics>,
}

/// The static values of one cache name, by TTL.
struct Statics {
    prefix: Box<[u8]>,
    chunks: [OnceLock<Box<[OnceLock<HeaderValue>; CHUNK]>>; STATIC_TTLS / CHUNK],
}

impl HitStatus {
    /// The hit values of the cache called `name`.
    pub(crate) fn new(name: &str) -> Self {
        let full = CacheStatus::hit(name, 0).to_header_value();
        let full = full.as_bytes();
        let prefix: Arc<[u8]> = full.strip_suffix(b"0").unwrap_or(full).into();
        Self {
            name: name.to_owned(),
            statics: statics(&prefix),
            prefix,
        }
    }

    /// The cache name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `Cache-Status` for a hit with `ttl` seconds of freshness left.
    pub(crate) fn get(&self, ttl: i64) -> HeaderValue {
        if let (Some(statics), Ok(n)) = (self.statics, usize::try_from(ttl))
            && let Some(chunk) = statics.chunks.get(n / CHUNK)
        {
            let chunk = chunk.get_or_init(|| Box::new([const { OnceLock::new() }; CHUNK]));
            return chunk[n % CHUNK]
                .get_or_init(|| leaked(&statics.prefix, ttl).unwrap_or_else(|| self.make(ttl)))
                .clone();
        }
        self.shared(ttl)
    }

    /// The value of this thread for `ttl`: hits within the same second of an entry's life share
    /// it. Each thread keeps its own values, so that hits on other cores write none of its lines.
    /// A value is known by its TTL and the prefix it was made with (the slot holds that prefix,
    /// so no other cache's prefix can take its address meanwhile).
    fn shared(&self, ttl: i64) -> HeaderValue {
        type Slot = Option<(i64, Arc<[u8]>, HeaderValue)>;
        thread_local! {
            static MEMO: RefCell<[Slot; THREAD_SLOTS]> =
                const { RefCell::new([const { None }; THREAD_SLOTS]) };
        }
        MEMO.with(|memo| {
            let Ok(mut memo) = memo.try_borrow_mut() else {
                return self.make(ttl);
            };
            let slot = &mut memo[ttl.rem_euclid(THREAD_SLOTS as i64) as usize];
            match slot {
                Some((t, prefix, value)) if *t == ttl && Arc::ptr_eq(prefix, &self.prefix) => {
                    value.clone()
                }
                _ => {
                    let value = self.make(ttl);
                    *slot = Some((ttl, self.prefix.clone(), value.clone()));
                    value
                }
            }
        })
    }

    fn make(&self, ttl: i64) -> HeaderValue {
        HeaderValue::from_maybe_shared(Bytes::from(text(&self.prefix, ttl)))
            .unwrap_or_else(|_| CacheStatus::hit(&self.name, ttl).to_header_value())
    }
}

/// The static values for `prefix`: found, made now, or `None` past [`STATIC_NAMES`] names.
fn statics(prefix: &[u8]) -> Option<&'static Statics> {
    static ALL: Mutex<Vec<&'static Statics>> = Mutex::new(Vec::new());
    let mut all = ALL.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = all.iter().find(|s| *s.prefix == *prefix) {
        return Some(known);
    }
    if all.len() >= STATIC_NAMES {
        return None;
    }
    let made: &'static Statics = Box::leak(Box::new(Statics {
        prefix: prefix.into(),
        chunks: [const { OnceLock::new() }; STATIC_TTLS / CHUNK],
    }));
    all.push(made);
    Some(made)
}

/// A static value for `prefix` and `ttl`; `None` if the text is not a valid field value.
fn leaked(prefix: &[u8], ttl: i64) -> Option<HeaderValue> {
    let text: &'static [u8] = Box::leak(text(prefix, ttl).into_boxed_slice());
    HeaderValue::from_maybe_shared(Bytes::from_static(text)).ok()
}

/// `prefix` followed by `ttl` in decimal, exactly as long as its capacity (so that a `Bytes`
/// takes the buffer as it is, instead of allocating a second block to share it).
fn text(prefix: &[u8], ttl: i64) -> Vec<u8> {
    let mut buf = [0u8; 20];
    let digits = int_digits(ttl, &mut buf);
    let mut out = Vec::with_capacity(prefix.len() + digits.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(digits);
    out
}

/// `n` in decimal, written at the end of `buf` (what `write!` does, without the formatting
/// machinery).
fn int_digits(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_digits_writes_decimal() {
        for n in [0i64, 7, -7, 10, 3600, -86_400, i64::MAX, i64::MIN] {
            let mut buf = [0; 20];
            assert_eq!(int_digits(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn values_are_reused_within_a_ttl_and_never_across_names() {
        let a = HitStatus::new("hit-status-test-a");
        let b = HitStatus::new("hit-status-test-b");
        // Static (a TTL below the bound), shared per thread (past it), and a stale hit.
        for ttl in [
            0,
            60,
            STATIC_TTLS as i64 - 1,
            STATIC_TTLS as i64,
            86_400,
            -3,
        ] {
            let first = a.get(ttl);
            let again = a.get(ttl);
            assert_eq!(first, format!("hit-status-test-a; hit; ttl={ttl}").as_str());
            assert_eq!(
                first.as_bytes().as_ptr(),
                again.as_bytes().as_ptr(),
                "the value for {ttl} is reused"
            );
            assert_eq!(
                b.get(ttl),
                format!("hit-status-test-b; hit; ttl={ttl}").as_str()
            );
            assert_eq!(
                a.get(ttl + 8),
                format!("hit-status-test-a; hit; ttl={}", ttl + 8).as_str()
            );
        }
        // A second cache of the same name finds the same static values (unless another test
        // took the last names first).
        let a2 = HitStatus::new("hit-status-test-a");
        if a.statics.is_some() && a2.statics.is_some() {
            assert_eq!(
                a2.get(60).as_bytes().as_ptr(),
                a.get(60).as_bytes().as_ptr()
            );
        }
    }

    #[test]
    fn names_past_the_bound_still_get_correct_values() {
        let many: Vec<HitStatus> = (0..STATIC_NAMES + 4)
            .map(|i| HitStatus::new(&format!("hit-status-bound-{i}")))
            .collect();
        assert!(many.iter().any(|s| s.statics.is_none()));
        for (i, s) in many.iter().enumerate() {
            assert_eq!(
                s.get(42),
                format!("hit-status-bound-{i}; hit; ttl=42").as_str()
            );
        }
    }
}
