//! The header maps that hits of a memory store clone, kept with the stored heads within a
//! [`MapBudget`], and the interning of their names and shared values.
//!
//! This is the one place where a hit trades memory and process-wide state for speed: a head that
//! keeps the map a hit serves lets the hit clone it, as a service answering from a prebuilt
//! response clones its own, instead of building it from the packed fields; and its names and the
//! values that are the same across a site's responses (`Content-Type`, `Server`...) are interned
//! (static, leaked once per distinct value, bounded), so a clone counts no reference for them.
//!
//! Measured with the `hit` bench (1 KiB, a memory store; interleaved ratio of a hit to the bare
//! service, median of three runs, and callgrind's instructions per hit): without kept maps a hit
//! takes 2.04× the bare service instead of 1.46× (12 300 instructions instead of 6 500); without
//! interning 1.58× (6 600 instructions: the difference is in the reference counts, which are
//! atomic writes).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::fields::Fields;

use super::ResponseMeta;

/// The map a hit serves, kept with its head: `Age` is its first line, and `Cache-Status` its
/// second when the stored response has none of its own (the order of different names is not
/// significant, RFC 9110 §5.3), so a hit sets both in place without looking either up.
pub(super) struct Served {
    map: HeaderMap,
    /// Whether our `Cache-Status` is the second line; otherwise it is the last of its name, after
    /// the stored ones.
    status_second: bool,
    /// The bytes the budget granted, given back when the map is dropped.
    _grant: Grant,
}

/// The header maps kept with a stored head.
pub(super) struct Kept {
    /// What a hit serves ([`ResponseMeta::hit_headers`]), kept by
    /// [`ResponseMeta::keep_headers`] with the bytes its budget granted.
    pub(super) served: Option<Served>,
    /// Every line alone, built by [`ResponseMeta::headers`] (which no budget bounds).
    pub(super) plain: OnceLock<HeaderMap>,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("served", &self.served.as_ref().map(|s| s.map.len()))
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

/// Bytes taken from a [`MapBudget`] ([`MapBudget::take`]), given back when the grant is dropped.
///
/// A kept map holds one until the last handle to its head goes; a store may take others for
/// bookkeeping it does for the entries that are hit.
///
/// # Example
///
/// ```
/// let budget = cachio_core::backend::served::MapBudget::new(100);
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
/// ([`keep_headers`](crate::backend::served::keep_headers)), shared by every head of one store.
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
/// use cachio_core::backend::served::{MapBudget, hit_headers, keep_headers};
/// use cachio_core::meta::ResponseMeta;
///
/// let budget = MapBudget::new(64 << 10);
/// let mut fields = http::HeaderMap::new();
/// fields.insert("content-type", http::HeaderValue::from_static("text/plain"));
/// let now = SystemTime::now();
/// let head = ResponseMeta::new(http::StatusCode::OK, http::Version::HTTP_11, fields, Vec::new(), now, now);
/// assert!(keep_headers(&head, &budget));
/// assert!(budget.used() > 0);
/// let served = hit_headers(&head, http::HeaderValue::from_static("5"), http::HeaderValue::from_static("c; hit"));
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

impl ResponseMeta {
    /// The header fields of a response served from this head: every stored line, `age` (in place
    /// of the stored `Age` lines) and `status` (after the stored `Cache-Status` lines).
    ///
    /// A head that keeps a map ([`keep_headers`](Self::keep_headers)) clones it and sets the two
    /// values in place; another builds the map from the packed fields. The values share the
    /// packed buffer either way: no value byte is copied.
    #[inline]
    pub(crate) fn hit_headers(&self, age: HeaderValue, status: HeaderValue) -> HeaderMap {
        let Some(kept) = self.map.get().and_then(|k| k.served.as_ref()) else {
            return served_map(&self.fields, age, status).0;
        };
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

    /// A map to keep, built from this head's packed fields, if `budget` has room for it.
    fn build_served(&self, budget: &MapBudget) -> Option<Served> {
        // Counted as if no name were repeated, the map can only weigh less: a head that cannot fit
        // is told so without building a map for nothing (on each of its hits).
        let lines = self.fields.len() + 2;
        if budget.used().saturating_add(self.kept_weight(lines, lines)) > budget.limit() {
            return None;
        }
        let (map, status_second) = served_map(
            &self.fields,
            HeaderValue::from_static("0"),
            HeaderValue::from_static(""),
        );
        // A clone holds exactly its entries: the map built above has room for twice as many.
        let map = super::intern::interned(&map).clone();
        let weight = self.kept_weight(map.keys_len(), map.len());
        Some(Served {
            map,
            status_second,
            _grant: budget.take(weight)?,
        })
    }

    /// Whether this head keeps the map a hit serves ([`keep_headers`](Self::keep_headers)).
    pub(crate) fn keeps_headers(&self) -> bool {
        self.map.get().is_some_and(|k| k.served.is_some())
    }

    /// Builds the map a hit serves ([`hit_headers`](Self::hit_headers)) and keeps it with this
    /// head if `budget` has room for it; the bytes go back to the budget when the head is
    /// dropped. Returns whether a map is kept now.
    ///
    /// A head whose [`headers`](Self::headers) was read first keeps nothing (its slot is taken):
    /// stores hand out heads nobody else reads.
    pub(crate) fn keep_headers(&self, budget: &MapBudget) -> bool {
        if let Some(k) = self.map.get() {
            return k.served.is_some();
        }
        let Some(served) = self.build_served(budget) else {
            return false;
        };
        let kept = Box::new(Kept {
            served: Some(served),
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
        (size_of::<Kept>() + 16 + keys * 104 + 16 + slots * 4 + 16 + repeated * 72 + 16 + names)
            as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{StatusCode, Version};
    use std::time::{Duration, UNIX_EPOCH};

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
}
