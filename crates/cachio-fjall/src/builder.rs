//! [`FjallStoreBuilder`]: the options of a [`FjallStore`] and opening it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cachio_core::clock::{Clock, SystemClock};
use cachio_core::store::StoreError;
#[cfg(doc)]
use cachio_core::store::{ErrorKind, Store};

use crate::engine::{Settings, StoreClock};
use crate::store::Shared;
use crate::{
    DEFAULT_BUDGET_BYTES, DEFAULT_CACHE_BYTES, DEFAULT_MAX_OBJECT_SHARE, DEFAULT_SWEEP_INTERVAL,
    DEFAULT_TOUCH_INTERVAL, DEFAULT_WRITE_QUEUE_BYTES, Durability, FjallStore, OnDamage, ReadMode,
};

/// Builds a [`FjallStore`]. Made by [`FjallStore::builder`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// use cachio_core::store::Store;
/// use cachio_fjall::{Durability, FjallStore};
///
/// # let dir = tempfile::tempdir().unwrap();
/// let store = FjallStore::builder(dir.path())
///     .budget_bytes(256 << 20)
///     .max_object_size(16 << 20)
///     .durability(Durability::SyncData)
///     .touch_interval(Duration::from_secs(10))
///     .sweep_interval(Duration::from_secs(30))
///     .write_queue_bytes(4 << 20)
///     .cache_bytes(8 << 20)
///     .open()?;
/// assert_eq!(store.budget_bytes(), 256 << 20);
/// assert_eq!(store.max_body_size(), Some(16 << 20));
/// # Ok::<(), cachio_core::store::StoreError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct FjallStoreBuilder {
    path: PathBuf,
    budget: u64,
    max_object: Option<u64>,
    durability: Durability,
    touch_interval: Duration,
    sweep_interval: Duration,
    write_queue: u64,
    cache_bytes: u64,
    read_mode: ReadMode,
    on_damage: OnDamage,
    clock: StoreClock,
}

impl FjallStoreBuilder {
    /// The defaults, for a store in `path`.
    pub(crate) fn new(path: &Path) -> Self {
        FjallStoreBuilder {
            path: path.to_owned(),
            budget: DEFAULT_BUDGET_BYTES,
            max_object: None,
            durability: Durability::default(),
            touch_interval: DEFAULT_TOUCH_INTERVAL,
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
            write_queue: DEFAULT_WRITE_QUEUE_BYTES,
            cache_bytes: DEFAULT_CACHE_BYTES,
            read_mode: ReadMode::default(),
            on_damage: OnDamage::default(),
            clock: StoreClock(Arc::new(SystemClock)),
        }
    }

    /// Sets what opening does with a directory it cannot open as a store (default
    /// [`OnDamage::Recover`]: move it aside and start empty).
    pub fn on_damage(self, on_damage: OnDamage) -> Self {
        Self { on_damage, ..self }
    }

    /// Sets the disk budget in bytes (default [`DEFAULT_BUDGET_BYTES`]): the most the entries'
    /// accounted sizes may add up to. See the [crate] documentation for what the disk holds
    /// beyond it.
    pub fn budget_bytes(self, bytes: u64) -> Self {
        Self {
            budget: bytes,
            ..self
        }
    }

    /// Limits one body to `bytes` (default: 1/[`DEFAULT_MAX_OBJECT_SHARE`] of the budget). The
    /// limit is capped at the budget.
    pub fn max_object_size(self, bytes: u64) -> Self {
        Self {
            max_object: Some(bytes),
            ..self
        }
    }

    /// Sets when a commit returns (default [`Durability::Flush`]).
    pub fn durability(self, durability: Durability) -> Self {
        Self { durability, ..self }
    }

    /// Sets how long a hit leaves an entry's access time alone (default
    /// [`DEFAULT_TOUCH_INTERVAL`]). Shorter makes eviction closer to true LRU and reads write
    /// more; zero moves an entry to the young end on every hit.
    pub fn touch_interval(self, interval: Duration) -> Self {
        Self {
            touch_interval: interval,
            ..self
        }
    }

    /// Sets how often expired entries are swept (default [`DEFAULT_SWEEP_INTERVAL`]). Expired
    /// entries are misses at once either way.
    pub fn sweep_interval(self, interval: Duration) -> Self {
        Self {
            sweep_interval: interval,
            ..self
        }
    }

    /// Sets how many bytes of appended chunks may wait for the writer thread, across all writers
    /// (default [`DEFAULT_WRITE_QUEUE_BYTES`]). An append past it fails. A single chunk larger
    /// than this is accepted when nothing else waits.
    pub fn write_queue_bytes(self, bytes: u64) -> Self {
        Self {
            write_queue: bytes,
            ..self
        }
    }

    /// Sets the size of fjall's block cache (default [`DEFAULT_CACHE_BYTES`]).
    pub fn cache_bytes(self, bytes: u64) -> Self {
        Self {
            cache_bytes: bytes,
            ..self
        }
    }

    /// Sets where the store reads (default [`ReadMode::Adaptive`]).
    pub fn read_mode(self, read_mode: ReadMode) -> Self {
        Self { read_mode, ..self }
    }

    /// The clock entries expire by, and whose time orders them for eviction ([`SystemClock`] by
    /// default). Expiry times are kept on disk as wall-clock times, so they hold across
    /// restarts. Give the store the clock the cache layer reads, so that a test that moves a
    /// [`ManualClock`](cachio_core::clock::ManualClock) moves both.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    ///
    /// use cachio_core::clock::ManualClock;
    /// use cachio_core::store::{Store, StoreWriter};
    /// use cachio_fjall::FjallStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let clock = ManualClock::new(SystemTime::now());
    /// let store = FjallStore::builder(dir.path()).clock(clock.clone()).open()?;
    /// let writer = store.begin("k")?;
    /// writer.commit(cachio_storage_tests::sample_meta("v"), Some(Duration::from_secs(60))).await?;
    /// assert!(store.get("k").await?.is_some());
    /// clock.advance(Duration::from_secs(60));
    /// assert!(store.get("k").await?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn clock<C: Clock>(self, clock: C) -> Self {
        Self {
            clock: StoreClock(Arc::new(clock)),
            ..self
        }
    }

    /// Opens (or creates) the store: locks the directory, opens the database (fjall recovers
    /// its journal after a crash), reads the LRU index for the accounting, and starts the
    /// writer thread, which first deletes the chunks of writes a crash interrupted.
    ///
    /// This blocks for as long as recovery takes.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::Unavailable`] when the directory is already open, in this process or
    ///   another;
    /// - [`ErrorKind::Io`] when the directory cannot be created, or (with [`OnDamage::Recover`])
    ///   a directory that cannot be opened cannot be moved aside either;
    /// - with [`OnDamage::Fail`], [`ErrorKind::Io`] when the directory cannot be read and
    ///   [`ErrorKind::Corrupt`] when fjall finds its files damaged beyond recovery.
    pub fn open(self) -> Result<FjallStore, StoreError> {
        let settings = Settings {
            budget: self.budget,
            max_object: self
                .max_object
                .unwrap_or(self.budget / DEFAULT_MAX_OBJECT_SHARE)
                .min(self.budget),
            durability: self.durability,
            touch_interval: self.touch_interval,
            sweep_interval: self.sweep_interval.max(Duration::from_millis(10)),
            write_queue: self.write_queue,
            cache_bytes: self.cache_bytes,
            read_mode: self.read_mode,
            clock: self.clock,
        };
        Ok(FjallStore {
            shared: Arc::new(Shared::start(&self.path, settings, self.on_damage)?),
        })
    }
}
