//! What the store says about its health: whether it is read-only now after a failed write, how
//! often fjall refused writes and how often the database was reopened since, and how many
//! damaged entries reads found.

use std::sync::atomic::Ordering;

use crate::FjallStore;

impl FjallStore {
    /// `true` while the store refuses writes after a failed write (a full disk): fjall refuses
    /// every write once one has failed, so the store serves reads from what is committed and
    /// reopens the database as soon as the disk has room again (it writes and removes a 4 MiB
    /// file to find out, after 0.2 s, then after a delay that doubles up to 5 s). While it
    /// reopens, reads fail and are misses for a moment. Committed entries are kept: they are
    /// in fjall's journal or tables.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::open(dir.path())?;
    /// assert!(!store.is_read_only());
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn is_read_only(&self) -> bool {
        self.shared.engine.read_only.load(Ordering::Acquire)
    }

    /// How many times fjall refused writes after a failed write since the store was opened
    /// (each also logged as an `error` event). A counter for metrics.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::open(dir.path())?;
    /// assert_eq!(store.write_failures(), 0);
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn write_failures(&self) -> u64 {
        self.shared.engine.write_failures.load(Ordering::Relaxed)
    }

    /// How many times the database was reopened after [`write_failures`](Self::write_failures)
    /// (each also logged as a `warn` event). A counter for metrics.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::open(dir.path())?;
    /// assert_eq!(store.reopens(), 0);
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn reopens(&self) -> u64 {
        self.shared.engine.reopens.load(Ordering::Relaxed)
    }

    /// How many entries reads found damaged since the store was opened: a record, metadata or
    /// body that fails its checksum or is in an unknown format. Each was a miss (or, found after
    /// the first bytes of a body, the end of that body with an error), was removed, and was
    /// logged as a `warn` event. A counter for metrics.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::open(dir.path())?;
    /// assert_eq!(store.corrupt_entries(), 0);
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn corrupt_entries(&self) -> u64 {
        self.shared.engine.corrupt.load(Ordering::Relaxed)
    }
}
