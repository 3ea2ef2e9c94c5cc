//! The hot index: the entries that are hit, for reads that skip moka's bookkeeping.
//!
//! A read through moka hashes the key, looks it up, reads the clock for moka's own expiry and
//! records the read for TinyLFU (queued, then applied to the frequency sketch and the LRU order in
//! batches): about as much work as the rest of a cache hit together. The hot index is a plain
//! sharded hash table beside moka that holds a copy of the handles of each entry that keeps its
//! header map (see [Kept header maps](crate#kept-header-maps)); a hit found there is one hash, one
//! lookup and the clones of the handles. Measured with the `hit` bench (1 KiB, interleaved ratio of
//! a hit to the bare service, median of three runs): without the index a hit takes 1.65× the bare
//! service instead of 1.46× (7 600 instructions instead of 6 500, callgrind).
//!
//! Readers take no lock: each shard's table is an immutable snapshot behind an [`ArcSwap`], whose
//! load writes nothing other threads read, so hits on many cores do not contend for a lock's
//! cache line. Writers (promotions, removals: rare next to hits) take the shard's mutex, copy its
//! table with the change, and swap the copy in.
//!
//! moka still decides what stays: each hot entry's first [`RECORDED`] reads are recorded with
//! moka as before, then one read in [`SAMPLE`] of each thread, so that popular entries keep
//! their frequency (the sketch's counters saturate at 15 anyway) and their place in the LRU order.
//!
//! # Never a removed entry
//!
//! An entry leaves the index whenever it leaves moka: the store removes it after each commit,
//! update, delete and expiry it makes, and moka's eviction listener after each eviction. A read
//! that starts after a removal has returned sees the table without the entry. A read that copies
//! an entry from moka into the index could still race with such a removal (read the old entry,
//! the removal runs, then the copy lands). So every removal bumps its shard's count of removals
//! under the shard's mutex, a promotion reads that count before its moka read, and the copy is
//! refused if the count moved meanwhile: an entry that was removed after it was read is never put
//! back.
//!
//! # Memory
//!
//! Each slot takes [`slot_weight`] bytes from the store's header-map budget, as long as it is
//! indexed; when the budget is spent, entries are read through moka as before. The tables do not
//! shrink when slots leave: their bucket arrays stay at the size of the most entries they held,
//! which the budget bounds.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use cachio_core::backend::served::{Grant, MapBudget};
use cachio_core::meta::Meta;
use hashbrown::HashTable;

use crate::MemEntry;

/// Reads of a newly indexed entry that are all recorded with moka.
pub(crate) const RECORDED: u32 = 16;

/// After the first [`RECORDED`], one read in this many (per thread) is recorded with moka.
pub(crate) const SAMPLE: u32 = 32;

thread_local! {
    /// The hot reads of this thread past their entry's first [`RECORDED`].
    static SAMPLED: Cell<u32> = const { Cell::new(0) };
}

pub(crate) struct HotIndex {
    hasher: ahash::RandomState,
    shards: Box<[Shard]>,
}

/// One shard of the index, on a cache line of its own.
#[repr(align(128))]
struct Shard {
    /// The slots as of the last write; never changed in place.
    table: ArcSwap<Table>,
    /// Held by the shard's writers.
    write: Mutex<()>,
    /// How many removals this shard has seen; written under `write`.
    removals: AtomicU64,
}

type Table = HashTable<Arc<Slot>>;

struct Slot {
    key: Box<str>,
    entry: MemEntry,
    /// Reads served from this slot, counted up to [`RECORDED`].
    reads: AtomicU32,
    _grant: Grant,
}

/// What a promotion must know of the moment before its moka read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    hash: u64,
    removals: u64,
}

/// The bytes a slot for `key` is counted at: the slot and its reference counts, its handle in the
/// table and as much again for the free buckets of a table at its lowest load, and the key's copy
/// with its allocation header.
pub(crate) fn slot_weight(key: &str) -> u64 {
    (size_of::<Slot>() + 16 + 2 * (size_of::<Arc<Slot>>() + 1) + key.len() + 16) as u64
}

impl HotIndex {
    pub(crate) fn new() -> Self {
        let threads = std::thread::available_parallelism().map_or(4, usize::from);
        let shards = (threads * 4).next_power_of_two().clamp(8, 256);
        Self {
            hasher: ahash::RandomState::new(),
            shards: (0..shards)
                .map(|_| Shard {
                    table: ArcSwap::from_pointee(HashTable::new()),
                    write: Mutex::new(()),
                    removals: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    fn shard(&self, hash: u64) -> &Shard {
        // Bits the table itself uses neither for buckets (the low ones) nor for tags (the top 7).
        &self.shards[(hash >> 40) as usize & (self.shards.len() - 1)]
    }

    /// The entry under `key` and whether this read is to be recorded with moka; or, when there
    /// is none, the ticket a promotion after the moka read needs.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Result<(MemEntry, bool), Ticket> {
        let hash = self.hasher.hash_one(key);
        let shard = self.shard(hash);
        let table = shard.table.load();
        match table.find(hash, |slot| *slot.key == *key) {
            Some(slot) => Ok((slot.entry.clone(), slot.record())),
            None => Err(Ticket {
                hash,
                removals: shard.removals.load(Ordering::Acquire),
            }),
        }
    }

    /// The ticket for a promotion of `key`, taken before the moka read.
    pub(crate) fn ticket(&self, key: &str) -> Ticket {
        let hash = self.hasher.hash_one(key);
        Ticket {
            hash,
            removals: self.shard(hash).removals.load(Ordering::Acquire),
        }
    }

    /// Indexes `entry`, read from moka after `ticket` was taken, unless an entry of its shard
    /// was removed since, `key` is indexed already or `budget` has no room.
    pub(crate) fn promote(&self, key: &str, ticket: Ticket, entry: &MemEntry, budget: &MapBudget) {
        let shard = self.shard(ticket.hash);
        if shard.removals.load(Ordering::Relaxed) != ticket.removals {
            return;
        }
        let Some(grant) = budget.take(slot_weight(key)) else {
            return;
        };
        let _write = shard.write.lock().unwrap_or_else(PoisonError::into_inner);
        if shard.removals.load(Ordering::Relaxed) != ticket.removals {
            return;
        }
        let current = shard.table.load();
        if current
            .find(ticket.hash, |slot| *slot.key == *key)
            .is_some()
        {
            return;
        }
        let mut table = Table::clone(&current);
        table.insert_unique(
            ticket.hash,
            Arc::new(Slot {
                key: key.into(),
                entry: entry.clone(),
                reads: AtomicU32::new(0),
                _grant: grant,
            }),
            |slot| self.hasher.hash_one(&*slot.key),
        );
        shard.table.store(Arc::new(table));
    }

    /// Removes whatever is indexed under `key`: for the store's own writes, after moka has
    /// applied them.
    pub(crate) fn remove(&self, key: &str) {
        self.remove_if(key, |_| true);
    }

    /// Removes the slot under `key` if it holds the entry with `meta`: for moka's evictions,
    /// which must not take out a newer entry.
    pub(crate) fn remove_entry(&self, key: &str, meta: &Arc<Meta>) {
        self.remove_if(key, |slot| Arc::ptr_eq(&slot.entry.meta, meta));
    }

    fn remove_if(&self, key: &str, doomed: impl Fn(&Slot) -> bool) {
        let hash = self.hasher.hash_one(key);
        let shard = self.shard(hash);
        let old = {
            let _write = shard.write.lock().unwrap_or_else(PoisonError::into_inner);
            shard.removals.fetch_add(1, Ordering::Release);
            let current = shard.table.load_full();
            let eq = |slot: &Arc<Slot>| *slot.key == *key && doomed(slot);
            if current.find(hash, eq).is_none() {
                return;
            }
            let mut table = Table::clone(&current);
            if let Ok(slot) = table.find_entry(hash, eq) {
                slot.remove();
            }
            shard.table.store(Arc::new(table));
            current
        };
        // Dropped outside the lock: the last handle to a body or a kept map may go with it.
        drop(old);
    }

    /// How many entries are indexed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.table.load().len()).sum()
    }
}

impl Slot {
    /// Counts a read and tells whether to record it with moka.
    fn record(&self) -> bool {
        if self.reads.load(Ordering::Relaxed) < RECORDED {
            self.reads.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        SAMPLED.with(|n| {
            let reads = n.get().wrapping_add(1);
            n.set(reads);
            reads % SAMPLE == 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Chunks;
    use bytes::Bytes;

    fn entry(version: &str) -> MemEntry {
        MemEntry {
            meta: cachio_storage_tests::sample_meta(version),
            chunks: Chunks::One(Bytes::from_static(b"body")),
            expires: None,
        }
    }

    fn indexed(index: &HotIndex, key: &str) -> Option<Arc<Meta>> {
        index.get(key).ok().map(|(e, _)| e.meta)
    }

    #[test]
    fn a_promotion_is_served_until_its_key_is_removed() {
        let index = HotIndex::new();
        let budget = MapBudget::new(1 << 20);
        let a = entry("a");
        index.promote("k", index.ticket("k"), &a, &budget);
        assert!(Arc::ptr_eq(&indexed(&index, "k").unwrap(), &a.meta));
        assert_eq!(budget.used(), slot_weight("k"));
        assert!(indexed(&index, "other").is_none());

        index.remove("k");
        assert!(indexed(&index, "k").is_none());
        assert_eq!(budget.used(), 0, "a removed slot gives its bytes back");
    }

    #[test]
    fn an_entry_removed_after_its_read_is_not_promoted() {
        let index = HotIndex::new();
        let budget = MapBudget::new(1 << 20);
        let ticket = index.ticket("k");
        // Between the moka read and the promotion, the store replaced the entry (and so
        // removed `k` from the index, where it was not yet).
        index.remove("k");
        index.promote("k", ticket, &entry("old"), &budget);
        assert!(indexed(&index, "k").is_none());
        assert_eq!(budget.used(), 0);

        // A read after the removal promotes.
        index.promote("k", index.ticket("k"), &entry("new"), &budget);
        assert!(indexed(&index, "k").is_some());
    }

    #[test]
    fn an_eviction_removes_only_the_entry_evicted() {
        let index = HotIndex::new();
        let budget = MapBudget::new(1 << 20);
        let (old, new) = (entry("old"), entry("new"));
        index.promote("k", index.ticket("k"), &new, &budget);
        index.remove_entry("k", &old.meta);
        assert!(Arc::ptr_eq(&indexed(&index, "k").unwrap(), &new.meta));
        index.remove_entry("k", &new.meta);
        assert!(indexed(&index, "k").is_none());
    }

    #[test]
    fn promotions_stay_within_the_budget() {
        let index = HotIndex::new();
        let budget = MapBudget::new(10 * slot_weight("k00"));
        let e = entry("e");
        for i in 0..100 {
            let key = format!("k{i:02}");
            index.promote(&key, index.ticket(&key), &e, &budget);
        }
        assert_eq!(index.len(), 10);
        assert!(budget.used() <= budget.limit());
    }

    #[test]
    fn young_entries_record_every_read_then_one_in_sample() {
        let index = HotIndex::new();
        let budget = MapBudget::new(1 << 20);
        index.promote("k", index.ticket("k"), &entry("e"), &budget);
        let recorded = |n: u32| (0..n).filter(|_| index.get("k").unwrap().1).count() as u32;
        assert_eq!(recorded(RECORDED), RECORDED);
        assert_eq!(recorded(SAMPLE * 10), 10);
    }
}

/// The hot index as the store uses it.
#[cfg(test)]
mod store_tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use bytes::Bytes;
    use cachio_core::clock::ManualClock;
    use cachio_core::store::{Hit, Store, StoreWriter};

    use super::*;
    use crate::{MokaBody, MokaStore};

    async fn put(store: &MokaStore, key: &str, version: &str) {
        let mut w = store.begin(key).unwrap();
        w.append(Bytes::from(vec![0u8; 4096])).unwrap();
        w.commit(cachio_storage_tests::sample_meta(version), None)
            .await
            .unwrap();
    }

    fn version(hit: &Hit<MokaBody>) -> String {
        let head = hit.meta.as_response().unwrap();
        head.fields().to_header_map(0)["x-tag"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn a_hit_entry_is_served_from_the_hot_index_until_replaced() {
        let store = MokaStore::new(1 << 20);
        put(&store, "k", "1").await;
        assert_eq!(store.shared.hot.len(), 0, "entries are indexed once hit");
        assert_eq!(version(&store.get("k").await.unwrap().unwrap()), "1");
        assert_eq!(store.shared.hot.len(), 1);
        put(&store, "k", "2").await;
        assert_eq!(store.shared.hot.len(), 0);
        let read = store.get("k").await.unwrap().unwrap();
        assert_eq!(version(&read), "2");
        store
            .update(
                "k",
                &read.meta,
                cachio_storage_tests::sample_meta("3"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(version(&store.get("k").await.unwrap().unwrap()), "3");
        store.delete("k").await.unwrap();
        assert!(store.get("k").await.unwrap().is_none());
        assert_eq!(store.shared.hot.len(), 0);
    }

    #[tokio::test]
    async fn an_expired_hot_entry_is_a_miss() {
        let clock = ManualClock::new(std::time::SystemTime::now());
        let store = MokaStore::builder().clock(clock.clone()).build();
        let mut w = store.begin("k").unwrap();
        w.append(Bytes::from_static(b"x")).unwrap();
        w.commit(
            cachio_storage_tests::sample_meta("e"),
            Some(Duration::from_millis(500)),
        )
        .await
        .unwrap();
        assert!(store.get("k").await.unwrap().is_some());
        assert_eq!(store.shared.hot.len(), 1);
        clock.advance(Duration::from_millis(499));
        assert!(store.try_get("k").unwrap().unwrap().is_some());
        clock.advance(Duration::from_millis(1));
        assert!(store.try_get("k").unwrap().unwrap().is_none());
        assert_eq!(store.shared.hot.len(), 0);
    }

    #[tokio::test]
    async fn evicted_entries_leave_the_hot_index() {
        let store = MokaStore::builder()
            .max_capacity_bytes(256 << 10)
            .header_map_share(0.5)
            .max_object_share(0.5)
            .build();
        for i in 0..16 {
            put(&store, &format!("k{i}"), "v").await;
            assert!(store.get(&format!("k{i}")).await.unwrap().is_some());
        }
        store.run_pending_tasks().await;
        let indexed = store.shared.hot.len();
        assert!(indexed > 0);
        // Entries read more often than the hot ones, so that TinyLFU admits them.
        for i in 0..200 {
            let key = format!("n{i}");
            for _ in 0..20 {
                let _ = store.get(&key).await.unwrap();
            }
            put(&store, &key, "v").await;
            store.run_pending_tasks().await;
        }
        assert!(store.evictions() > 0);
        let mut gone = 0;
        for i in 0..16 {
            let key = format!("k{i}");
            let in_moka = store.shared.cache.contains_key(&key);
            gone += usize::from(!in_moka);
            assert_eq!(
                store.try_get(&key).unwrap().unwrap().is_some(),
                in_moka,
                "{key} is served exactly while moka keeps it"
            );
        }
        assert!(gone > 0, "the test evicts some of the hot entries");
        assert!(store.shared.hot.len() as u64 <= store.entry_count());
    }

    /// A writer that replaces an entry sees its own write at once, while readers keep promoting
    /// the entry into the hot index from other threads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_committed_replacement_is_never_shadowed_by_a_racing_promotion() {
        let store = MokaStore::new(8 << 20);
        put(&store, "k", "0").await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (store, stop) = (store.clone(), Arc::clone(&stop));
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = store.get("k").await.unwrap();
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for n in 1..2000 {
            let v = n.to_string();
            put(&store, "k", &v).await;
            for _ in 0..3 {
                assert_eq!(version(&store.get("k").await.unwrap().unwrap()), v);
            }
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.await.unwrap();
        }
    }
}
