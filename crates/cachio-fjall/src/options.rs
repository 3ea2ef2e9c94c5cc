//! The choices of durability and of where reads run.

/// When a commit returns, and so what a crash can lose. See the [crate] documentation.
///
/// In every mode a crash never tears an entry or corrupts the store, and a clean close (dropping
/// the last handle) syncs everything.
///
/// # Example
///
/// ```
/// use cachio_fjall::{Durability, FjallStore};
///
/// # let dir = tempfile::tempdir().unwrap();
/// let store = FjallStore::builder(dir.path())
///     .durability(Durability::SyncData)
///     .open()
///     .unwrap();
/// assert_eq!(store.durability(), Durability::SyncData);
/// assert_eq!(Durability::default(), Durability::Flush);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// A commit returns without flushing; the journal is handed to the OS about once a second.
    /// A crash of the process may lose the last second of commits.
    Lazy,
    /// A commit returns after its record has been written to the OS (`write(2)`): a crash of
    /// the process loses nothing committed; a crash of the machine may lose what the OS had not
    /// yet written back. The default.
    #[default]
    Flush,
    /// A commit returns after `fdatasync`: committed entries survive a power loss.
    SyncData,
    /// A commit returns after `fsync`.
    SyncAll,
}

/// Where a store reads: on the task that calls [`Store::get`](cachio_core::store::Store::get) or polls a [`FjallBody`](crate::FjallBody), or on
/// tokio's blocking pool. See [Reads](crate#reads).
///
/// A read of data in memory (fjall's block cache or the OS page cache) takes a few
/// microseconds on the calling task, and a hand-off to the blocking pool and back costs more
/// than that; a read that has to wait for the disk holds the calling task (and the executor
/// thread running it) for as long as the disk takes.
///
/// # Example
///
/// ```
/// use cachio_fjall::{FjallStore, ReadMode};
///
/// # let dir = tempfile::tempdir().unwrap();
/// let store = FjallStore::builder(dir.path())
///     .read_mode(ReadMode::Blocking)
///     .open()
///     .unwrap();
/// assert_eq!(store.read_mode(), ReadMode::Blocking);
/// assert_eq!(ReadMode::default(), ReadMode::Adaptive);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReadMode {
    /// On the calling task while reads are quick, on the blocking pool for a while when they
    /// are not. A read that takes longer than 250 µs (it waited for the disk, or its thread
    /// was preempted) adds its time to a debt paid back at 10 ms per second; when the debt
    /// passes 20 ms, the store's reads go to the blocking pool until it is paid (2 s or more),
    /// and then are tried on the calling task again. Reads on the calling task thus hold the
    /// executor for a slow disk at most about 1% of the time, plus bursts of 20 ms (two seeks
    /// of a hard disk); reads of data in memory stay on the calling task. The default.
    #[default]
    Adaptive,
    /// Always on the calling task: for a store whose data stays in memory or on a fast SSD, at
    /// the cost of holding the executor thread for every read that waits for the disk.
    Inline,
    /// Always on tokio's blocking pool: the executor never waits for the disk, and every read
    /// pays a hand-off to another thread and back (about 20 µs).
    Blocking,
}
