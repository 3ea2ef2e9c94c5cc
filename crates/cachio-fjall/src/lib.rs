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
//! pool and back, so the default, [`ReadMode::Adaptive`], reads on the calling
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
//! A few counts that fjall's recovery reads from disk reserve memory before any checksum covers
//! them: the number of sections in the table of contents that ends every table, blob file and
//! version file (reserved before that table's checksum is checked), the numbers of blob files a
//! version lists and keeps garbage counts for (a version file's checksum is never checked), and
//! the number of blob files a table refers to (a region no checksum covers, read when a
//! compaction picks the table). One damaged byte in such a count makes fjall ask for up to
//! hundreds of GB, and a refused allocation aborts the process, which nothing can catch. So
//! before fjall opens the directory, the store checks each of these counts against the bytes it
//! is read from: a count whose items cannot fit there is damage, handled as above, and a count
//! that fits reserves no more than its file's size. A journal entry's value length reserves up
//! to 4 GiB before its batch's checksum is checked, which aborts the process where the system
//! refuses that much (less memory and swap, or a limit on the address space): an entry that
//! claims more bytes than its journal holds is cut off first, where fjall's recovery would cut
//! the journal after the failed read, so what is recovered is the same. The other lengths
//! fjall reads are covered by a checksum before they are used (a block's header carries its
//! own), or are `u16`s; one remains: a value's length in a blob file, read when a compaction
//! rewrites the file, reserves at most 4 GiB, untouched, before its checksum is checked.
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
//! until the sum is within the budget again (from 64 MiB up, within a target that leaves room
//! on disk for fjall's journal: see below).
//!
//! Recency is approximate: a hit moves an entry to the young end of the LRU index only if its
//! access time is older than the touch interval ([`touch_interval`](FjallStoreBuilder::touch_interval),
//! default [`DEFAULT_TOUCH_INTERVAL`]), so an entry read continuously is written at most once
//! per interval. Within one interval, entries are evicted in the order they were written or last
//! touched.
//!
//! The space on disk is larger than the accounted sum: fjall's journal holds what was written
//! recently (bodies included) until its memtables are flushed, and the bodies of removed entries
//! stay in blob files until a compaction drops them. From a budget of 64 MiB up, the blocks
//! allocated in the directory stay within
//!
//! ```text
//! budget + budget / 10 + 32 MiB        (budget + FjallStore::disk_slack_bytes)
//! ```
//!
//! - fjall 3 seals its journal only once it passes 64 MB, whatever its options say, and
//!   deletes a sealed journal once the memtables holding its writes are flushed (the store
//!   flushes the index keyspaces as soon as a sealed journal waits on them). The writer thread
//!   measures the journal every `budget / 64` bytes written (at least 1 MiB, at most 16 MiB) and
//!   counts what it wrote since, and evicts down to
//!   `target = budget + budget / 10 + 32 MiB - journal - max(budget / 16, 16 MiB) - 4 MiB`,
//!   at most the budget and at least an eighth of it. When the journal passes what the bound
//!   leaves it beside that eighth, the writer thread flushes the memtables and waits for the
//!   sealed journal to be dropped before it writes more (under a write load faster than
//!   fjall's flushes, the sealed journal would stay while the next fills).
//! - Bodies that were deleted or evicted: the store compacts the bodies' keyspace fully each
//!   time `max(budget / 32, 4 MiB)` of them are dead (its tables hold keys and blob pointers,
//!   so this rewrites little), which drops blob files whose bodies are all gone and rewrites
//!   those a quarter dead; with the blob files being written, that is what
//!   `max(budget / 16, 16 MiB)` leaves room for.
//! - From about 1 GiB up the target is the budget whatever the journal holds. Below, the
//!   journal takes a large share while it fills: at 64 MiB the store holds 64 MiB of entries
//!   after the journal is sealed and about 20 MiB just before (33 MiB on average under a
//!   steady load of distinct keys), and the directory stays within 102 MiB.
//!
//! Bodies being written and not yet committed, and bodies of removed entries that are still
//! being read, come on top (they are bounded by the callers). Below 64 MiB the store keeps the
//! budget of entries and the slack is `max(budget, 64 MiB) + 128 MiB`.
//!
//! The `eviction` tests check the blocks allocated in the directory against this bound,
//! sampled while ten times the budget is written in distinct keys.
//!
//! # Memory
//!
//! About `cache_bytes` (fjall's block cache, default [`DEFAULT_CACHE_BYTES`]) + three 4 MiB
//! memtables of bodies (while flushes keep up; the writer waits up to 30 s for them) and three
//! 2 MiB index memtables + the write queue
//! ([`DEFAULT_WRITE_QUEUE_BYTES`]) + about 512 KiB per body being read, whatever the body sizes
//! and the bytes written: the writer thread waits for fjall's flushes when more than one memtable
//! of bodies is waiting (fjall alone lets memory grow with the bytes written when writes outrun
//! its flushes; its own `max_write_buffer_size` is not enforced in fjall 3.1). The chunks in the
//! write queue are the callers' `Bytes`, and keep alive whatever buffer they are slices of. The
//! `large_body` test checks that a 1 GiB body written and read back grows the peak resident set
//! by less than 128 MiB.
//!
//! # Expiry
//!
//! An entry committed or updated with a `ttl` is a miss once the `ttl` has passed on the store's
//! clock ([`FjallStoreBuilder::clock`], the system clock by default). A `get` that
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
mod builder;
mod damage;
mod db;
mod engine;
mod health;
mod lengths;
mod options;
mod record;
mod sizing;
mod store;
mod verify;
mod worker;
mod writer;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cachio_core::store::StoreError;
#[cfg(doc)]
use {
    cachio_core::meta::Meta,
    cachio_core::store::{ErrorKind, Store, StoreWriter},
};

pub use body::FjallBody;
pub use builder::FjallStoreBuilder;
pub use damage::OnDamage;
pub use options::{Durability, ReadMode};
pub use verify::{BadEntry, Verification};
pub use writer::{FjallWriter, READY_BELOW};

use store::{Shared, ask};
pub(crate) use store::{closed, too_large};
use worker::Job;

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
        FjallStoreBuilder::new(path.as_ref())
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
            engine.db()?.db.disk_space().map_err(engine::db_error)
        })
    }

    /// How far the blocks allocated in the store's directory may exceed the budget: from a
    /// budget of 64 MiB up, `budget / 10 + 32 MiB`; below, `max(budget, 64 MiB) + 128 MiB`.
    /// See the [crate] documentation.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::builder(dir.path()).budget_bytes(1 << 30).open().unwrap();
    /// assert_eq!(store.disk_slack_bytes(), (1 << 30) / 10 + (32 << 20));
    /// ```
    pub fn disk_slack_bytes(&self) -> u64 {
        sizing::disk_slack(self.budget_bytes())
    }

    /// Waits until the writer thread has done everything queued before this call, then sweeps
    /// expired entries and evicts down to the budget (or the target below it; see the [crate]
    /// documentation).
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
