//! The fresh hits of this thread's last clock reading: a hit that finds the entry, the layer and
//! the clock's reading all as a recent hit left them is fresh for the same reasons, and is served
//! with the same `Age` and `Cache-Status` values, without evaluating the policy again.
//!
//! The wall clock is read coarsely (see [`SystemClock`](cachio_core::clock::SystemClock)): its
//! reading stays the same for a few milliseconds, over which a popular entry is hit many times
//! per thread. Freshness is a pure function of the stored head, the request's directives, the
//! layer's policy and the time, so an equal reading gives an equal answer: only requests without
//! directives of their own are remembered, and an entry is known by the address of its head,
//! held by a [`Weak`] so that no other head can take that address while it is remembered (the
//! head itself still goes when its entry does: a `Weak` keeps only the allocation).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use cachio_core::meta::Meta;
use http::HeaderValue;

/// How many evaluations each thread keeps (one per entry, by the address of its head).
const SLOTS: usize = 4;

struct Slot {
    layer: u64,
    meta: Weak<Meta>,
    now: SystemTime,
    age: HeaderValue,
    status: HeaderValue,
}

thread_local! {
    static MEMO: RefCell<[Option<Slot>; SLOTS]> = const { RefCell::new([const { None }; SLOTS]) };
}

/// A number for a layer's configuration, unique in the process, by which the memo tells layers
/// (whose policies, clocks and names may differ) apart.
pub(crate) fn layer_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn slot_of(meta: &Arc<Meta>) -> usize {
    // Heads are allocations of a few hundred bytes: the bits above the smallest ones differ.
    (Arc::as_ptr(meta) as usize >> 6) % SLOTS
}

/// The `Age` and `Cache-Status` values of a fresh hit on `meta` by `layer` at `now`, if this
/// thread served one.
#[inline]
pub(crate) fn get(
    layer: u64,
    meta: &Arc<Meta>,
    now: SystemTime,
) -> Option<(HeaderValue, HeaderValue)> {
    MEMO.with(|memo| {
        let memo = memo.try_borrow().ok()?;
        let slot = memo[slot_of(meta)].as_ref()?;
        (slot.layer == layer
            && slot.now == now
            && std::ptr::eq(slot.meta.as_ptr(), Arc::as_ptr(meta)))
        .then(|| (slot.age.clone(), slot.status.clone()))
    })
}

/// Remembers that a request without directives of its own found `meta` fresh at `now` through
/// `layer`, with these `Age` and `Cache-Status` values.
pub(crate) fn put(
    layer: u64,
    meta: &Arc<Meta>,
    now: SystemTime,
    age: &HeaderValue,
    status: &HeaderValue,
) {
    MEMO.with(|memo| {
        let Ok(mut memo) = memo.try_borrow_mut() else {
            return;
        };
        let old = memo[slot_of(meta)].replace(Slot {
            layer,
            meta: Arc::downgrade(meta),
            now,
            age: age.clone(),
            status: status.clone(),
        });
        drop(memo);
        // Outside the borrow: the last reference to an allocation may go with it.
        drop(old);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachio_core::meta::VaryIndex;
    use std::time::Duration;

    fn head() -> Arc<Meta> {
        Arc::new(Meta::Variants(VaryIndex::new(vec![], 1)))
    }

    #[test]
    fn a_hit_is_remembered_for_its_entry_layer_and_reading_only() {
        let (a, b) = (head(), head());
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let (age, status) = (
            HeaderValue::from_static("3"),
            HeaderValue::from_static("x; hit"),
        );
        let layer = layer_id();
        assert!(get(layer, &a, now).is_none());
        put(layer, &a, now, &age, &status);
        assert_eq!(get(layer, &a, now), Some((age.clone(), status.clone())));
        assert!(get(layer, &b, now).is_none(), "another entry");
        assert!(get(layer_id(), &a, now).is_none(), "another layer");
        assert!(
            get(layer, &a, now + Duration::from_millis(4)).is_none(),
            "another reading"
        );
    }

    #[test]
    fn a_gone_entry_is_not_taken_for_a_new_one_at_its_address() {
        let now = SystemTime::UNIX_EPOCH;
        let layer = layer_id();
        let a = head();
        put(
            layer,
            &a,
            now,
            &HeaderValue::from_static("0"),
            &HeaderValue::from_static("s"),
        );
        let address = Arc::as_ptr(&a);
        drop(a);
        // The remembered `Weak` keeps the allocation: no new head is made at that address.
        let heads: Vec<_> = (0..64).map(|_| head()).collect();
        assert!(heads.iter().all(|h| Arc::as_ptr(h) != address));
        assert!(heads.iter().all(|h| get(layer, h, now).is_none()));
    }
}
