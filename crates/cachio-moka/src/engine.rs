//! The store's state: moka's cache, the hot index beside it, the write locks and the clock; and
//! how an entry is read, written and expired.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Waker};
use std::time::Duration;

use cachio_core::backend::KeyLocks;
use cachio_core::backend::served::MapBudget;
use cachio_core::clock::Clock;
use cachio_core::meta::Meta;
use cachio_core::store::{Hit, StoreError};
use moka::future::Cache;

use crate::MokaBody;
use crate::entry::{MemEntry, hit};
use crate::hot::{self, HotIndex};

/// Keys are hashed with aHash: several times quicker than the standard SipHash on URL-sized keys
/// (a hit hashes its key once), and keyed at random per process like it, so that keys chosen by
/// clients cannot be made to collide.
pub(crate) type Inner = Cache<String, MemEntry, ahash::RandomState>;

/// What every clone of a [`MokaStore`](crate::MokaStore) shares.
pub(crate) struct Shared {
    pub(crate) cache: Inner,
    pub(crate) capacity: u64,
    pub(crate) max_body: u64,
    /// The budget of the header maps kept with entries that were hit (`None`: none are kept).
    pub(crate) maps: Option<MapBudget>,
    /// Entries removed to make room (shared with the cache's eviction listener).
    pub(crate) evictions: Arc<AtomicU64>,
    /// The entries that are hit, for reads that skip moka's bookkeeping (shared with the
    /// eviction listener, which removes what moka evicts).
    pub(crate) hot: Arc<HotIndex>,
    /// Locks, each for a share of the keys, taken by every write of a key (commit, update,
    /// delete): an update reads the entry, then writes, and moka orders neither its inserts nor
    /// its removals with that, so a commit or a delete landing in between would be undone.
    pub(crate) writes: KeyLocks,
    /// The clock expiries are read from.
    pub(crate) clock: Arc<dyn Clock>,
}

/// How many write locks a store has.
pub(crate) const WRITE_LOCKS: usize = 256;

impl Shared {
    /// Puts `entry` under `key`, or removes what is there (`None`).
    pub(crate) async fn set(&self, key: &str, entry: Option<MemEntry>) {
        let _write = self.writes.lock(key).await;
        match entry {
            Some(entry) => self.cache.insert(key.to_owned(), entry).await,
            None => self.cache.invalidate(key).await,
        }
        self.hot.remove(key);
    }

    /// Whether `entry` is past its expiry.
    pub(crate) fn expired(&self, entry: &MemEntry) -> bool {
        entry.expires.is_some_and(|at| at <= self.clock.monotonic())
    }

    /// When an entry committed now with `ttl` expires.
    pub(crate) fn deadline(&self, ttl: Option<Duration>) -> Option<Duration> {
        // A TTL too far out to represent never expires.
        ttl.and_then(|ttl| self.clock.monotonic().checked_add(ttl))
    }

    /// Removes the entry under `key` if it is still the expired one that was read (a newer entry
    /// committed meanwhile stays).
    pub(crate) async fn remove_expired(&self, key: &str, meta: &Arc<Meta>) {
        let _write = self.writes.lock(key).await;
        if let Some(current) = self.cache.get(key).await
            && Arc::ptr_eq(&current.meta, meta)
        {
            self.cache.invalidate(key).await;
        }
        self.hot.remove_entry(key, meta);
    }

    /// A hit from the [hot index](crate#hot-reads), if `key` is there and has not expired;
    /// otherwise the ticket a promotion after the moka read needs.
    #[inline]
    pub(crate) fn read_hot(&self, key: &str) -> Result<Hit<MokaBody>, hot::Ticket> {
        let (entry, record) = self.hot.get(key)?;
        if self.expired(&entry) {
            return Err(self.hot.ticket(key));
        }
        if record {
            // Polled once, like `try_get`: a read that would wait for moka's upkeep is dropped,
            // which changes nothing but the count of reads.
            let read = std::pin::pin!(self.cache.get(key));
            let _ = read.poll(&mut Context::from_waker(Waker::noop()));
        }
        Ok(hit(entry))
    }

    /// A hit read through moka; an entry that keeps its header map is then indexed as hot.
    pub(crate) async fn read_cold(
        &self,
        key: &str,
        ticket: hot::Ticket,
    ) -> Result<Option<Hit<MokaBody>>, StoreError> {
        let Some(entry) = self.cache.get(key).await else {
            return Ok(None);
        };
        if self.expired(&entry) {
            // Boxed: the rare path would otherwise make every read's future (and the cache
            // layer's, which holds it) as large as a keyed computation.
            Box::pin(self.remove_expired(key, &entry.meta)).await;
            return Ok(None);
        }
        if let (Some(budget), Meta::Response(head)) = (&self.maps, &*entry.meta)
            && cachio_core::backend::served::keep_headers(head, budget)
        {
            self.hot.promote(key, ticket, &entry, budget);
        }
        Ok(Some(hit(entry)))
    }
}
