//! A persistent on-disk [`Store`] for cachio on [fjall] 3, an LSM-tree key-value store.
//!
//! [`FjallStore`] keeps each entry's metadata in a small record and its body in chunks of
//! [`CHUNK_SIZE`] bytes, writes bodies as they stream in without ever blocking the caller, serves
//! hits chunk by chunk with bounded memory, checks a CRC-32 on every stored value it reads, stays
//! within a disk budget by evicting the least recently used entries, and comes back with every
//! committed entry after a restart or a crash.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, SystemTime};
//!
//! use bytes::Bytes;
//! use cachio_core::meta::{Meta, ResponseMeta};
//! use cachio_core::store::{Store, StoreWriter};
//! use cachio_fjall::{Durability, FjallStore};
//! use http_body_util::BodyExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("cachio-fjall-doc-{}", std::process::id()));
//! let store = FjallStore::builder(&dir)
//!     .budget_bytes(1 << 30)
//!     .max_object_size(64 << 20)
//!     .durability(Durability::Flush)
//!     .open()?;
//!
//! let now = SystemTime::now();
//! let meta = Arc::new(Meta::Response(ResponseMeta::new(
//!     http::StatusCode::OK,
//!     http::Version::HTTP_11,
//!     http::HeaderMap::new(),
//!     Vec::new(),
//!     now,
//!     now,
//! )));
//! let mut writer = store.begin("https://example.com/")?;
//! writer.append(Bytes::from_static(b"hello "))?;
//! writer.append(Bytes::from_static(b"world"))?;
//! writer.commit(meta, Some(Duration::from_secs(60))).await?;
//!
//! let hit = store.get("https://example.com/").await?.expect("just committed");
//! assert_eq!(hit.body.collect().await?.to_bytes(), "hello world");
//!
//! // Closing and opening the directory again gives the entry back.
//! drop(store);
//! let store = FjallStore::open(&dir)?;
//! assert!(store.get("https://example.com/").await?.is_some());
//! # drop(store);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! # On-disk layout
//!
//! The store's directory holds a lock file, `cachio-fjall.lock`, and a fjall database in `db/`
//! with four keyspaces, all written through atomic fjall batches:
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `entries` | the cache key | the record: format version (`1`), generation id (u64), body length (u64), chunk count (u32), access time and expiry time (u64 ms since the Unix epoch; expiry 0 = none), metadata length (u32), the [`Meta::encode`] bytes, and a CRC-32 of the key and all of that |
//! | `chunks` | generation id (u64 BE), chunk index (u32 BE) | format version (`1`), a CRC-32 of the key and the payload, then the payload: at most [`CHUNK_SIZE`] bytes, never empty. Key-value separated (payloads live in blob files, uncompressed: HTTP bodies usually already are) |
//! | `lru` | access time (u64 BE ms), generation id | a CRC-32, the entry's accounted size (u64), the cache key |
//! | `expiry` | expiry time (u64 BE ms), generation id | the cache key (entries without a TTL have no item) |
//!
//! Every write of a body gets a fresh generation id, so a body's chunks are never overwritten:
//! an entry is replaced by writing a new generation and then, in one batch, the new record and
//! index items. A reader therefore sees either the old entry or the new one, never a mix.
//!
//! # Writes
//!
//! [`Store::begin`] only allocates a generation id. [`StoreWriter::append`] hands the chunk to
//! the store's writer thread (one `std` thread per store) through a channel and returns at once; the thread coalesces small
//! appends and splits large ones into chunks of [`CHUNK_SIZE`] bytes and writes them as they
//! arrive. The bytes queued for the thread across all writers are limited (builder
//! [`write_queue_bytes`](FjallStoreBuilder::write_queue_bytes), default
//! [`DEFAULT_WRITE_QUEUE_BYTES`]): an append that would exceed the limit fails with
//! [`ErrorKind::Unavailable`] instead of blocking or buffering more (the cache then does not
//! store that response). A writer that can wait may call [`FjallWriter::wait_written`] between
//! appends.
//!
//! [`StoreWriter::commit`] sends the metadata to the thread, which writes the last chunk, then
//! the record and index items in one batch, deletes the chunks of the entry it replaced, and
//! answers. A writer dropped before commit (or a commit future dropped before the thread
//! reached it) has its chunks deleted. All database writes happen on that thread; reads happen
//! on the calling task or on tokio's blocking pool (see [Reads](#reads)).
//!
//! # Reads
//!
//! [`Store::get`] reads and verifies the record and the body's first chunk (or, on the blocking
//! pool, its first four chunks: a body of up to 256 KiB then needs no other call), and returns
//! a [`FjallBody`] that reads the rest as it is polled: one chunk per poll on the polling task,
//! or four at a time on the blocking pool, read ahead while the previous ones are handed out.
//! A hit holds at most about 512 KiB of body in memory whatever its size. Chunks are handed out
//! as views of the values fjall returns (for hot chunks, its cached blobs), never copied.
//!
//! Where reads run is chosen with [`FjallStoreBuilder::read_mode`]; see [`ReadMode`]. A hit
//! whose record and chunks are in memory (fjall's block cache, or the OS page cache) takes a
//! few microseconds to read on the calling task, less than the hand-off to tokio's blocking
//! pool and back (about 20 µs), so the default, [`ReadMode::Adaptive`], reads on the calling
//! task as long as reads stay quick, and sends them to the blocking pool for a while when slow
//! ones (the disk had to be read, or is slow) take more than about 1% of the time. Each read on
//! the calling task takes a unit of tokio's cooperative budget, so a task that reads many hits
//! or a long body still yields to others.
//!
//! # Integrity
//!
//! Records and chunks carry CRC-32s over their keys and contents, verified on every read; index
//! items carry one over their values. A record that fails its check, is truncated, or has an
//! unknown format version (of the record or of its metadata) is logged with a `tracing` warning,
//! read as a miss, and removed. A body whose first chunk is missing or fails its check is found
//! in [`get`](Store::get), before anything is sent: a miss, and the entry is removed. A later
//! chunk that is missing or fails its check ends the body with an [`ErrorKind::Corrupt`] error,
//! never with wrong bytes, and its entry is removed too. fjall checksums its own blocks and
//! journal too. A directory it cannot open (files damaged beyond what fjall's recovery repairs,
//! another format version, a file in its place, unreadable) is moved aside to
//! `<dir>.corrupt-<seconds>` and the store starts empty, with an `error` event
//! ([`OnDamage::Recover`], the default; [`OnDamage::Fail`] returns the error instead): a cache
//! holds nothing that cannot be fetched again. No stored byte can make this crate panic, and a
//! panic inside fjall is caught and returned as an error.
//!
//! # Durability
//!
//! Chosen with [`FjallStoreBuilder::durability`]; see [`Durability`]. With the default,
//! [`Durability::Flush`], a commit returns after its record has been handed to the operating
//! system: a crash of the process (a panic, `SIGKILL`, the OOM killer) loses nothing that was
//! committed; a crash of the machine may lose the last moments of commits that the OS had not
//! yet written back. In every mode a crash never tears an entry (a record is written after all
//! of its chunks, in one atomic batch, and fjall recovers its journal to the last whole batch)
//! and never corrupts the store; reopening the directory gives back every committed entry that
//! survived, and deletes the chunks of writes the crash interrupted. Dropping the last handle
//! closes the store cleanly and syncs everything to disk.
//!
//! A full disk (or any failed write to the store's files) fails the commit in progress with an
//! error; the layer then simply passes responses on without storing them. fjall stops taking
//! writes after such a failure, so every later write fails too (with [`ErrorKind::Unavailable`])
//! while reads go on serving what was committed; once there is room again, reopening the store
//! (restarting the process) resumes writing. Nothing committed before the failure is lost and
//! nothing partial becomes visible (the `full_disk` test fills a real tmpfs to show it).
//!
//! A directory is open in one [`FjallStore`] at a time: a second [`FjallStore::open`] of it, in
//! this process or another, fails with [`ErrorKind::Unavailable`] until the first store, its
//! writers and its bodies are all dropped.
//!
//! # The disk budget and eviction
//!
//! Each entry is accounted at
//!
//! ```text
//! 3 × key length + record length + body length + CHUNK_OVERHEAD × chunks + ENTRY_OVERHEAD
//! ```
//!
//! and the store keeps the sum of these (not fjall's disk usage, which includes data that was
//! deleted but not yet compacted away) at most the budget
//! ([`budget_bytes`](FjallStoreBuilder::budget_bytes), default [`DEFAULT_BUDGET_BYTES`]): after
//! each commit or update that passes it, the writer thread evicts least recently used entries
//! until the sum is within the budget again.
//!
//! Recency is approximate: a hit moves an entry to the young end of the LRU index only if its
//! access time is older than the touch interval ([`touch_interval`](FjallStoreBuilder::touch_interval),
//! default [`DEFAULT_TOUCH_INTERVAL`]), so an entry read continuously is written at most once
//! per interval. Within one interval, entries are evicted in the order they were written or last
//! touched.
//!
//! The space on disk is larger than the accounted sum. The store keeps it within
//!
//! ```text
//! budget + slack,   slack = max(budget, 64 MiB) + 128 MiB      (FjallStore::disk_slack_bytes)
//! ```
//!
//! made of:
//!
//! - fjall's journal: the active journal, preallocated to 64 MiB and rotated at about 64 MB, plus
//!   at most about one sealed journal (the store flushes the index keyspaces as soon as a sealed
//!   journal waits on them): up to 128 MiB whatever the budget;
//! - bodies that were deleted or evicted but not yet compacted away: blob files of 4 MiB are
//!   dropped once all their bodies are gone and rewritten once a quarter of them is, at the next
//!   compaction (every two 4 MiB memtable flushes): up to about the budget again;
//! - bodies being written and not yet committed, and bodies of removed entries that are still
//!   being read (these are not bounded by the store: they are bounded by the callers).
//!
//! The eviction test writes ten times an 8 MiB budget and checks both fjall's count
//! ([`FjallStore::disk_space`]) and the blocks allocated in the directory against this bound;
//! in our runs a 16 MiB budget peaked at about 100 MiB allocated and a 128 MiB one at about
//! 250 MiB.
//!
//! # Memory
//!
//! About `cache_bytes` (fjall's block cache, default [`DEFAULT_CACHE_BYTES`]) + a few 4 MiB
//! memtables + the write queue ([`DEFAULT_WRITE_QUEUE_BYTES`]) + about 512 KiB per body being
//! read, whatever the body sizes: the writer thread waits for fjall's flushes when more than one
//! memtable of bodies is waiting (fjall alone lets memory grow with the bytes written when
//! writes outrun its flushes). A 1 GiB body written and read back grows the peak resident set
//! of a process by about 35–40 MiB (checked by the `large_body` test, which allows 128 MiB).
//!
//! # Expiry
//!
//! An entry committed or updated with a `ttl` is a miss once the `ttl` has passed. A `get` that
//! finds it expired removes it; a sweep on the writer thread every
//! [`sweep_interval`](FjallStoreBuilder::sweep_interval) (default [`DEFAULT_SWEEP_INTERVAL`])
//! removes all expired entries through the expiry index. A `ttl` of zero stores nothing and
//! removes the entry under the key.
//!
//! # Tokio
//!
//! [`Store::get`] needs a tokio runtime, and so does reading a [`FjallBody`] whenever it reads
//! on the blocking pool; both work on a multi-thread and on a current-thread runtime (nothing
//! uses `block_in_place`). [`FjallStore::open`] blocks while fjall recovers its journal; call
//! it at start-up or inside `spawn_blocking`.
//!
//! [fjall]: https://docs.rs/fjall/3

mod body;
mod damage;
mod engine;
mod record;
mod writer;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use cachio_core::clock::{Clock, SystemClock};
use cachio_core::meta::Meta;
use cachio_core::store::{ErrorKind, Hit, Store, StoreError, StoreWriter};
use tokio::sync::oneshot;

pub use body::FjallBody;
use body::{FirstRead, READ_AHEAD, READ_INLINE};
pub use damage::OnDamage;

use engine::{Engine, MAX_KEY_LEN, ReadGuard, Settings, StoreClock};
use record::Record;
use writer::{Job, Pending, WriterThread};

/// The budget of a store built without [`FjallStoreBuilder::budget_bytes`]: 1 GiB.
pub const DEFAULT_BUDGET_BYTES: u64 = 1 << 30;

/// The share of the budget one body may take unless configured otherwise: 1/8.
pub const DEFAULT_MAX_OBJECT_SHARE: u64 = 8;

/// The bytes of chunks that may wait for the writer thread, across all writers, unless
/// configured otherwise: 8 MiB.
pub const DEFAULT_WRITE_QUEUE_BYTES: u64 = 8 << 20;

/// How long a hit leaves an entry's access time alone unless configured otherwise: 60 s.
pub const DEFAULT_TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// How often expired entries are swept unless configured otherwise: 60 s.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The size of fjall's block cache unless configured otherwise: 16 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 16 << 20;

/// The size of the chunks bodies are stored in (the last chunk of a body may be shorter): 64 KiB.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// The bytes accounted per chunk on top of its payload (its key, header and index entry).
pub const CHUNK_OVERHEAD: u64 = 32;

/// The bytes accounted per entry on top of its key, record, body and chunks (its index items
/// and the database's bookkeeping).
pub const ENTRY_OVERHEAD: u64 = 128;

/// The most fjall journal the store keeps once sealed, before fjall flushes the memtables that
/// hold it back: 64 MiB (fjall's minimum).
pub const JOURNAL_LIMIT: u64 = 64 << 20;

const CHUNK_MEMTABLE_BYTES: u64 = 4 << 20;
const INDEX_MEMTABLE_BYTES: u64 = 2 << 20;
const BLOB_FILE_BYTES: u64 = 4 << 20;

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

/// Where a store reads: on the task that calls [`Store::get`] or polls a [`FjallBody`], or on
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

/// A persistent on-disk [`Store`] on fjall. See the [crate] documentation.
///
/// Cloning is cheap (one `Arc`); clones share the same database and writer thread. The store
/// is closed (and its directory unlocked) when the last clone, writer and body are dropped.
/// Dropping the last clone (or writer) blocks while the writer thread finishes the work queued
/// before and syncs; dropping the last handle of all blocks while fjall closes.
///
/// # Example
///
/// ```
/// use cachio_core::store::Store;
/// use cachio_fjall::FjallStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = FjallStore::open(dir.path()).unwrap();
/// assert_eq!(store.budget_bytes(), cachio_fjall::DEFAULT_BUDGET_BYTES);
/// assert_eq!(store.max_body_size(), Some(128 << 20)); // 1/8 of the budget
/// assert!(store.get("https://example.com/").await.unwrap().is_none());
/// assert_eq!(store.entry_count(), 0);
/// # }
/// ```
#[derive(Clone)]
pub struct FjallStore {
    shared: Arc<Shared>,
}

struct Shared {
    engine: Arc<Engine>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Where a directory that could not be opened was moved at open.
    moved_aside: Option<PathBuf>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.engine.send(Job::Shutdown);
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

pub(crate) fn too_large(max: u64) -> StoreError {
    StoreError::new(
        ErrorKind::TooLarge,
        format!("body larger than the limit of {max} bytes"),
    )
}

pub(crate) fn closed() -> StoreError {
    StoreError::new(
        ErrorKind::Unavailable,
        "the store's writer thread has stopped",
    )
}

/// What a hit reads before its body is polled.
type Found = (Record, Arc<Meta>, Option<ReadGuard>, FirstRead);

/// The read of `get`: the record, its metadata, a pin on its generation and its first `chunks`
/// chunks.
fn read_entry(engine: &Arc<Engine>, key: &str, chunks: u32) -> Result<Option<Found>, StoreError> {
    let found = engine::guarded("reading an entry", || engine.lookup(key))?;
    Ok(found.map(|(rec, meta, guard)| {
        let first = if guard.is_some() {
            FirstRead::read(engine, &rec, chunks)
        } else {
            FirstRead::none()
        };
        (rec, meta, guard, first)
    }))
}

async fn ask<T>(
    engine: &Engine,
    job: impl FnOnce(oneshot::Sender<T>) -> Job,
) -> Result<T, StoreError> {
    let (tx, rx) = oneshot::channel();
    if !engine.send(job(tx)) {
        return Err(closed());
    }
    rx.await.map_err(|_| closed())
}

impl FjallStore {
    /// Opens (or creates) the store in directory `path` with the default settings.
    ///
    /// # Errors
    ///
    /// As [`FjallStoreBuilder::open`].
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::open(dir.path())?;
    /// assert_eq!(store.path(), dir.path());
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<FjallStore, StoreError> {
        Self::builder(path).open()
    }

    /// A builder for a store in directory `path`, with the defaults: [`DEFAULT_BUDGET_BYTES`],
    /// a body limit of 1/[`DEFAULT_MAX_OBJECT_SHARE`] of the budget, [`Durability::Flush`],
    /// [`DEFAULT_TOUCH_INTERVAL`], [`DEFAULT_SWEEP_INTERVAL`], [`DEFAULT_WRITE_QUEUE_BYTES`],
    /// [`DEFAULT_CACHE_BYTES`] and [`ReadMode::Adaptive`].
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_core::store::Store;
    /// use cachio_fjall::FjallStore;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = FjallStore::builder(dir.path())
    ///     .budget_bytes(10 << 30)
    ///     .max_object_size(512 << 20)
    ///     .open()?;
    /// assert_eq!(store.max_body_size(), Some(512 << 20));
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn builder(path: impl AsRef<Path>) -> FjallStoreBuilder {
        FjallStoreBuilder {
            path: path.as_ref().to_owned(),
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

    /// Where the directory was moved when it could not be opened as a store ([`OnDamage::Recover`]):
    /// `None` when it opened as it was.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::open(dir.path()).unwrap();
    /// assert_eq!(store.moved_aside(), None);
    /// ```
    pub fn moved_aside(&self) -> Option<&Path> {
        self.shared.moved_aside.as_deref()
    }

    /// The store's directory.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::open(dir.path()).unwrap();
    /// assert!(store.path().join("cachio-fjall.lock").exists());
    /// ```
    pub fn path(&self) -> &Path {
        &self.shared.engine.path
    }

    /// The disk budget, in bytes.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::builder(dir.path()).budget_bytes(1 << 20).open().unwrap();
    /// assert_eq!(store.budget_bytes(), 1 << 20);
    /// ```
    pub fn budget_bytes(&self) -> u64 {
        self.shared.engine.settings.budget
    }

    /// The durability of commits.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::open(dir.path()).unwrap();
    /// assert_eq!(store.durability(), cachio_fjall::Durability::Flush);
    /// ```
    pub fn durability(&self) -> Durability {
        self.shared.engine.settings.durability
    }

    /// Where the store reads.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::open(dir.path()).unwrap();
    /// assert_eq!(store.read_mode(), cachio_fjall::ReadMode::Adaptive);
    /// ```
    pub fn read_mode(&self) -> ReadMode {
        self.shared.engine.settings.read_mode
    }

    /// The sum of the entries' accounted sizes (see the [crate] documentation), which eviction
    /// keeps within [`budget_bytes`](Self::budget_bytes).
    ///
    /// Updated by the writer thread as it works: call
    /// [`run_pending_tasks`](Self::run_pending_tasks) first for a figure that includes every
    /// write made before.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::open(dir.path()).unwrap();
    /// assert_eq!(store.tracked_bytes(), 0);
    /// ```
    pub fn tracked_bytes(&self) -> u64 {
        self.shared.engine.tracked.load(Ordering::Relaxed)
    }

    /// The number of entries (including, until eviction reaches them, entries whose record was
    /// found corrupt and removed). Updated like [`tracked_bytes`](Self::tracked_bytes).
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::open(dir.path()).unwrap();
    /// assert_eq!(store.entry_count(), 0);
    /// ```
    pub fn entry_count(&self) -> u64 {
        self.shared.engine.count.load(Ordering::Relaxed)
    }

    /// The space the database takes on disk, in bytes, as fjall counts it: its journals, tables
    /// and blob files, including data that was deleted but not yet compacted away.
    ///
    /// This reads file metadata, a few cheap blocking system calls.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] when the journal's size cannot be read.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::open(dir.path()).unwrap();
    /// // fjall preallocates its journal, so even an empty store takes some.
    /// assert!(store.disk_space().unwrap() >= store.tracked_bytes());
    /// ```
    pub fn disk_space(&self) -> Result<u64, StoreError> {
        let engine = &self.shared.engine;
        engine::guarded("reading the disk space", || {
            engine.db.disk_space().map_err(engine::db_error)
        })
    }

    /// How far the space on disk may exceed the budget, as [`disk_space`](Self::disk_space)
    /// counts it: `max(budget, 64 MiB) + 128 MiB`. See the [crate] documentation.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::builder(dir.path()).budget_bytes(1 << 30).open().unwrap();
    /// assert_eq!(store.disk_slack_bytes(), (1 << 30) + (128 << 20));
    /// ```
    pub fn disk_slack_bytes(&self) -> u64 {
        self.budget_bytes().max(64 << 20) + 2 * JOURNAL_LIMIT
    }

    /// Waits until the writer thread has done everything queued before this call, then sweeps
    /// expired entries and evicts down to the budget.
    ///
    /// The store does all this on its own as it is used; call it before reading
    /// [`tracked_bytes`](Self::tracked_bytes) or [`entry_count`](Self::entry_count) in tests.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`] when the writer thread has stopped.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::open(dir.path()).unwrap();
    /// store.run_pending_tasks().await.unwrap();
    /// assert_eq!(store.tracked_bytes(), 0);
    /// # }
    /// ```
    pub async fn run_pending_tasks(&self) -> Result<(), StoreError> {
        ask(&self.shared.engine, |reply| Job::Maintain { reply }).await
    }

    /// Waits until everything committed before this call is on disk (`fsync`), whatever the
    /// [`Durability`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] when the sync fails, [`ErrorKind::Unavailable`] when the writer thread
    /// has stopped.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::builder(dir.path())
    ///     .durability(cachio_fjall::Durability::Lazy)
    ///     .open()
    ///     .unwrap();
    /// store.sync().await.unwrap();
    /// # }
    /// ```
    pub async fn sync(&self) -> Result<(), StoreError> {
        ask(&self.shared.engine, |reply| Job::Sync { reply }).await?
    }
}

impl fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared.engine.settings;
        f.debug_struct("FjallStore")
            .field("path", &self.path())
            .field("budget_bytes", &s.budget)
            .field("max_body_size", &s.max_object)
            .field("durability", &s.durability)
            .field("read_mode", &s.read_mode)
            .field("tracked_bytes", &self.tracked_bytes())
            .field("entry_count", &self.entry_count())
            .finish()
    }
}

impl Store for FjallStore {
    type Body = FjallBody;
    type Writer = FjallWriter;

    async fn get(&self, key: &str) -> Result<Option<Hit<FjallBody>>, StoreError> {
        if key.len() > MAX_KEY_LEN {
            return Ok(None);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            StoreError::new(
                ErrorKind::Unavailable,
                "cachio-fjall must be used inside a tokio runtime",
            )
        })?;
        let engine = &self.shared.engine;
        let found = if let Some(inline) = engine.inline_read() {
            // On this task: a unit of its cooperative budget, then the record and the first
            // chunk.
            tokio::task::coop::consume_budget().await;
            let found = read_entry(engine, key, READ_INLINE);
            engine.inline_done(inline);
            found?
        } else {
            // One hand-off to the blocking pool reads the record and the first chunks.
            let engine = Arc::clone(engine);
            let key = key.to_owned();
            runtime
                .spawn_blocking(move || read_entry(&engine, &key, READ_AHEAD))
                .await
                .map_err(|e| StoreError::new(ErrorKind::Other, format!("a read failed: {e}")))??
        };
        let Some((rec, meta, guard, first)) = found else {
            return Ok(None);
        };
        // A body damaged from its first chunk is found before anything is sent: a miss (and the
        // entry goes), so the caller fetches the response again instead of getting a body that
        // fails at once.
        if let Some(e) = first.failed_at_once()
            && matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::UnknownFormat)
        {
            tracing::warn!(
                key,
                error = %e,
                "cachio-fjall: a stored body is damaged from its start, treating it as a miss and removing its entry"
            );
            engine.send_hint(Job::RemoveIfSame {
                key: key.to_owned(),
                record: rec,
            });
            return Ok(None);
        }
        Ok(Some(Hit {
            meta,
            body: FjallBody::new(key, rec, guard, first),
        }))
    }

    fn begin(&self, key: &str) -> Result<FjallWriter, StoreError> {
        if key.len() > MAX_KEY_LEN {
            return Err(StoreError::new(
                ErrorKind::Other,
                format!("a key of {} bytes is longer than {MAX_KEY_LEN}", key.len()),
            ));
        }
        let gen_id = self.shared.engine.next_gen.fetch_add(1, Ordering::Relaxed);
        Ok(FjallWriter {
            store: self.clone(),
            key: key.to_owned(),
            gen_id,
            len: 0,
            sent: false,
            finished: false,
            failed: None,
            pending: Arc::new(Pending::default()),
            drained: None,
        })
    }

    async fn update(
        &self,
        key: &str,
        previous: &Meta,
        meta: Arc<Meta>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        if key.len() > MAX_KEY_LEN {
            return Ok(false);
        }
        let (key, previous, meta) = (key.to_owned(), previous.encode(), meta.encode());
        ask(&self.shared.engine, |reply| Job::Update {
            key,
            previous,
            meta,
            ttl,
            reply,
        })
        .await?
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        if key.len() > MAX_KEY_LEN {
            return Ok(());
        }
        let key = key.to_owned();
        ask(&self.shared.engine, |reply| Job::Delete { key, reply }).await?
    }

    fn max_body_size(&self) -> Option<u64> {
        Some(self.shared.engine.settings.max_object)
    }

    /// Scans every record on tokio's blocking pool, offers each (with its decoded metadata) to
    /// `matches`, and has the writer thread remove the ones it picks, as durably as
    /// [`delete`](Store::delete). Entries written while the purge runs may or may not be seen.
    async fn purge<F>(&self, matches: F) -> Result<u64, StoreError>
    where
        F: Fn(&str, &Meta) -> bool + Send + Sync + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            StoreError::new(
                ErrorKind::Unavailable,
                "cachio-fjall must be used inside a tokio runtime",
            )
        })?;
        let engine = Arc::clone(&self.shared.engine);
        runtime
            .spawn_blocking(move || engine::guarded("purging", || engine.purge(&matches)))
            .await
            .map_err(|e| StoreError::new(ErrorKind::Other, format!("a purge failed: {e}")))?
    }
}

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
        let (tx, rx) = std::sync::mpsc::channel();
        let mut moved_aside = None;
        let (engine, recovered) = match Engine::open(&self.path, settings.clone(), tx.clone()) {
            Err(err)
                if self.on_damage == OnDamage::Recover && damage::is_damage(&self.path, &err) =>
            {
                let aside = damage::move_aside(&self.path)?;
                tracing::error!(
                    dir = %self.path.display(),
                    moved_to = %aside.display(),
                    error = %err,
                    "cachio-fjall: the store could not be opened; it was moved aside and starts empty"
                );
                moved_aside = Some(aside);
                Engine::open(&self.path, settings, tx)?
            }
            opened => opened?,
        };
        let engine = Arc::new(engine);
        let worker = WriterThread::new(Arc::clone(&engine), recovered);
        let thread = std::thread::Builder::new()
            .name("cachio-fjall-writer".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| {
                StoreError::new(
                    ErrorKind::Io,
                    format!("cannot start the writer thread: {e}"),
                )
            })?;
        Ok(FjallStore {
            shared: Arc::new(Shared {
                engine,
                thread: Mutex::new(Some(thread)),
                moved_aside,
            }),
        })
    }
}

/// A writer with this many bytes (or half the store's write queue, if less) waiting to be written
/// is not ready for more: the tee then waits for the disk instead of the store giving up.
pub const READY_BELOW: u64 = 4 << 20;

/// Writes one entry into a [`FjallStore`]: hands each appended chunk to the store's writer
/// thread (never blocking), and makes the entry visible at [`commit`](StoreWriter::commit).
/// Dropping it before commit deletes what was written. Made by [`Store::begin`].
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use cachio_core::store::{ErrorKind, Store, StoreWriter};
/// use cachio_fjall::FjallStore;
///
/// # let dir = tempfile::tempdir().unwrap();
/// let store = FjallStore::builder(dir.path()).max_object_size(8).open().unwrap();
/// let mut writer = store.begin("k").unwrap();
/// writer.append(Bytes::from_static(b"12345678")).unwrap();
/// let err = writer.append(Bytes::from_static(b"9")).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::TooLarge);
/// ```
pub struct FjallWriter {
    store: FjallStore,
    key: String,
    gen_id: u64,
    len: u64,
    /// Whether any chunk was handed to the writer thread.
    sent: bool,
    /// Whether the commit was handed to the writer thread (which then owns the chunks).
    finished: bool,
    failed: Option<StoreError>,
    pending: Arc<Pending>,
    /// Set while [`poll_ready`](StoreWriter::poll_ready) waits for this writer's queued bytes to
    /// be written.
    drained: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
}

impl FjallWriter {
    /// Waits until every chunk appended so far has been written to the database (not
    /// necessarily synced). A writer that can afford to wait calls this between appends to stay
    /// under the store's write queue limit.
    ///
    /// # Example
    ///
    /// ```
    /// use bytes::Bytes;
    /// use cachio_core::store::{Store, StoreWriter};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::open(dir.path()).unwrap();
    /// let mut writer = store.begin("big").unwrap();
    /// for _ in 0..64 {
    ///     writer.append(Bytes::from(vec![7u8; 1 << 20])).unwrap();
    ///     writer.wait_written().await;
    /// }
    /// # }
    /// ```
    pub async fn wait_written(&self) {
        loop {
            let notified = self.pending.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.pending.bytes.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// The body bytes appended so far.
    ///
    /// # Example
    ///
    /// ```
    /// use bytes::Bytes;
    /// use cachio_core::store::{Store, StoreWriter};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::open(dir.path()).unwrap();
    /// let mut writer = store.begin("k").unwrap();
    /// writer.append(Bytes::from_static(b"abc")).unwrap();
    /// assert_eq!(writer.len(), 3);
    /// ```
    #[expect(clippy::len_without_is_empty, reason = "a writer is not a collection")]
    pub fn len(&self) -> u64 {
        self.len
    }

    fn fail(&mut self, e: StoreError) -> StoreError {
        self.failed = Some(e.clone());
        e
    }
}

impl fmt::Debug for FjallWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FjallWriter")
            .field("key", &self.key)
            .field("generation", &self.gen_id)
            .field("len", &self.len)
            .field("failed", &self.failed)
            .finish()
    }
}

impl StoreWriter for FjallWriter {
    /// Ready while this writer has less than [`READY_BELOW`] bytes (at most half the store's
    /// write queue) waiting for the writer thread; past that, ready again once they are written.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StoreError>> {
        if let Some(e) = &self.failed {
            return Poll::Ready(Err(e.clone()));
        }
        let threshold = READY_BELOW.min(self.store.shared.engine.settings.write_queue / 2);
        if self.pending.bytes.load(Ordering::Acquire) < threshold.max(1) {
            self.drained = None;
            return Poll::Ready(Ok(()));
        }
        let pending = Arc::clone(&self.pending);
        let wait = self.drained.get_or_insert_with(|| {
            Box::pin(async move {
                loop {
                    let notified = pending.notify.notified();
                    let mut notified = std::pin::pin!(notified);
                    notified.as_mut().enable();
                    if pending.bytes.load(Ordering::Acquire) == 0 {
                        return;
                    }
                    notified.await;
                }
            })
        });
        std::task::ready!(wait.as_mut().poll(cx));
        self.drained = None;
        Poll::Ready(Ok(()))
    }

    fn append(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let engine = &self.store.shared.engine;
        let n = chunk.len() as u64;
        let len = self.len.saturating_add(n);
        let max = engine.settings.max_object;
        if len > max {
            return Err(self.fail(too_large(max)));
        }
        if n == 0 {
            return Ok(());
        }
        let limit = engine.settings.write_queue;
        let queued = engine.queued.fetch_add(n, Ordering::AcqRel);
        if queued > 0 && queued.saturating_add(n) > limit {
            engine.queued.fetch_sub(n, Ordering::AcqRel);
            return Err(self.fail(StoreError::new(
                ErrorKind::Unavailable,
                format!("the write queue is full ({queued} bytes waiting, limit {limit})"),
            )));
        }
        self.pending.bytes.fetch_add(n, Ordering::AcqRel);
        let sent = engine.send(Job::Chunk {
            gen_id: self.gen_id,
            data: chunk,
            pending: Arc::clone(&self.pending),
        });
        if !sent {
            engine.queued.fetch_sub(n, Ordering::AcqRel);
            self.pending.bytes.fetch_sub(n, Ordering::AcqRel);
            return Err(self.fail(closed()));
        }
        self.sent = true;
        self.len = len;
        Ok(())
    }

    async fn commit(mut self, meta: Arc<Meta>, ttl: Option<Duration>) -> Result<(), StoreError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let (tx, rx) = oneshot::channel();
        let job = Job::Commit {
            gen_id: self.gen_id,
            key: std::mem::take(&mut self.key),
            meta: meta.encode(),
            ttl,
            reply: tx,
        };
        if !self.store.shared.engine.send(job) {
            return Err(closed());
        }
        self.finished = true;
        rx.await.unwrap_or_else(|_| Err(closed()))
    }
}

impl Drop for FjallWriter {
    fn drop(&mut self) {
        if self.sent && !self.finished {
            self.store.shared.engine.send(Job::Abort {
                gen_id: self.gen_id,
            });
        }
    }
}
