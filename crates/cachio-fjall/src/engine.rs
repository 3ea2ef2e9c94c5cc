//! The database handles shared by the store, its writer thread and its bodies, and the read path.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;
use cachio_core::clock::Clock;
use cachio_core::meta::Meta;
use cachio_core::store::{ErrorKind, StoreError};

use crate::db::Db;
use crate::record::{self, Record};
use crate::worker::Job;
use crate::{Durability, ReadMode};

/// What the builder decided.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) budget: u64,
    pub(crate) max_object: u64,
    pub(crate) durability: Durability,
    pub(crate) touch_interval: Duration,
    pub(crate) sweep_interval: Duration,
    pub(crate) write_queue: u64,
    pub(crate) cache_bytes: u64,
    pub(crate) read_mode: ReadMode,
    pub(crate) clock: StoreClock,
}

/// The open database and what every part of the store shares.
pub(crate) struct Engine {
    pub(crate) path: PathBuf,
    pub(crate) settings: Settings,
    /// The open database; `None` while the writer thread reopens it.
    db: RwLock<Option<Arc<Db>>>,
    /// Set when fjall refuses writes (a write failed, as on a full disk): writes are refused
    /// at once until the writer thread has reopened the database.
    pub(crate) read_only: AtomicBool,
    /// How many times fjall refused writes after a failed write.
    pub(crate) write_failures: AtomicU64,
    /// How many times the database was reopened after that.
    pub(crate) reopens: AtomicU64,
    /// Entries found damaged when read (and removed).
    pub(crate) corrupt: AtomicU64,
    /// Jobs for the writer thread.
    pub(crate) jobs: Sender<Job>,
    pub(crate) next_gen: AtomicU64,
    /// Chunk bytes handed to the writer thread and not yet written.
    pub(crate) queued: AtomicU64,
    /// Jobs sent with [`send_hint`](Self::send_hint) and not yet handled.
    pub(crate) hints: AtomicU64,
    /// A copy of the writer thread's accounting, for the getters.
    pub(crate) tracked: AtomicU64,
    pub(crate) count: AtomicU64,
    pub(crate) readers: Mutex<Readers>,
    /// When the engine was opened: the origin of [`inline_from`](Self::inline_from).
    started: Instant,
    /// With [`ReadMode::Adaptive`]: reads go to the blocking pool until this many microseconds
    /// after [`started`](Self::started) (set by slow inline reads).
    inline_from: AtomicU64,
    /// Recently decoded metadata: generation → (the `Meta::encode` bytes, decoded).
    metas: Mutex<HashMap<u64, MemoizedMeta>>,
    /// The time slow inline reads held their callers, not yet paid back.
    slow: Mutex<SlowReads>,
    /// Held for as long as the engine lives; declared last so that it is released after the
    /// database is closed.
    _lock: File,
}

/// Generations being read, and generations whose chunks wait for their readers to finish.
#[derive(Default)]
pub(crate) struct Readers {
    counts: HashMap<u64, u32>,
    deferred: HashMap<u64, Option<u32>>,
}

/// What the open scan found.
pub(crate) struct Recovered {
    pub(crate) tracked: u64,
    pub(crate) count: u64,
    pub(crate) max_atime: u64,
    pub(crate) live: HashSet<u64>,
    pub(crate) first_gen: u64,
}

pub(crate) const LOCK_FILE: &str = "cachio-fjall.lock";
pub(crate) const DB_DIR: &str = "db";

/// How many decoded metadata the store keeps, so that a hit on a hot entry does not decode its
/// header fields again: the bytes are still read and checked with the record on every hit, and
/// compared with the ones that were decoded.
const META_MEMO_ENTRIES: usize = 512;

/// Metadata longer than this is decoded on every hit (it would make the memo large).
const META_MEMO_MAX_LEN: usize = 4096;

/// How many skippable jobs may wait for the writer thread.
const MAX_HINTS: u64 = 4096;

/// The largest key fjall accepts.
pub(crate) const MAX_KEY_LEN: usize = u16::MAX as usize;

/// The clock the store reads the time from: expiry and access times are wall-clock
/// milliseconds, kept on disk across restarts.
#[derive(Clone)]
pub(crate) struct StoreClock(pub(crate) Arc<dyn Clock>);

impl StoreClock {
    /// Milliseconds since the Unix epoch (zero before it).
    pub(crate) fn now_ms(&self) -> u64 {
        self.0
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

impl fmt::Debug for StoreClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreClock")
    }
}

/// Maps a fjall error to a store error of the right kind.
pub(crate) fn db_error(e: fjall::Error) -> StoreError {
    let kind = match &e {
        fjall::Error::Io(_) | fjall::Error::Storage(fjall::LsmError::Io(_)) => ErrorKind::Io,
        fjall::Error::Locked | fjall::Error::Poisoned => ErrorKind::Unavailable,
        fjall::Error::Storage(_)
        | fjall::Error::JournalRecovery(_)
        | fjall::Error::InvalidVersion(_)
        | fjall::Error::Decompress(_)
        | fjall::Error::InvalidTrailer
        | fjall::Error::InvalidTag(_)
        | fjall::Error::Unrecoverable => ErrorKind::Corrupt,
        _ => ErrorKind::Other,
    };
    StoreError::new(kind, e)
}

/// Runs `f`, turning a panic (fjall's, on bytes it did not expect) into an error.
pub(crate) fn guarded<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(StoreError::new(
            ErrorKind::Other,
            format!("{what} panicked: {msg}"),
        ))
    })
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::new(ErrorKind::Io, format!("{what} {}: {e}", path.display()))
}

impl Engine {
    /// Locks and opens the directory and scans the LRU index for the accounting.
    pub(crate) fn open(
        path: &Path,
        settings: Settings,
        jobs: Sender<Job>,
    ) -> Result<(Engine, Recovered), StoreError> {
        std::fs::create_dir_all(path).map_err(|e| io_error("cannot create", path, e))?;
        let lock_path = path.join(LOCK_FILE);
        let lock = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io_error("cannot open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::new(
                    ErrorKind::Unavailable,
                    format!(
                        "{} is already open by another FjallStore (in this or another process)",
                        path.display()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io_error("cannot lock", &lock_path, e));
            }
        }

        crate::lengths::check_counts(&path.join(DB_DIR))?;
        crate::lengths::cut_journals(&path.join(DB_DIR))?;
        let db = Db::open(&path.join(DB_DIR), settings.cache_bytes, settings.budget)?;

        let engine = Engine {
            path: path.to_owned(),
            settings,
            db: RwLock::new(Some(Arc::clone(&db))),
            read_only: AtomicBool::new(false),
            write_failures: AtomicU64::new(0),
            reopens: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            jobs,
            next_gen: AtomicU64::new(1),
            queued: AtomicU64::new(0),
            hints: AtomicU64::new(0),
            tracked: AtomicU64::new(0),
            count: AtomicU64::new(0),
            readers: Mutex::new(Readers::default()),
            started: Instant::now(),
            inline_from: AtomicU64::new(0),
            slow: Mutex::new(SlowReads::default()),
            metas: Mutex::new(HashMap::new()),
            _lock: lock,
        };
        let recovered = db.scan()?;
        engine
            .next_gen
            .store(recovered.first_gen, Ordering::Relaxed);
        engine.tracked.store(recovered.tracked, Ordering::Relaxed);
        engine.count.store(recovered.count, Ordering::Relaxed);
        Ok((engine, recovered))
    }

    /// The open database, or an error while it is being reopened.
    pub(crate) fn db(&self) -> Result<Arc<Db>, StoreError> {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                StoreError::new(
                    ErrorKind::Unavailable,
                    "the disk store is reopening its database after a failed write",
                )
            })
    }

    /// Replaces the open database (the writer thread, when it reopens it).
    pub(crate) fn set_db(&self, db: Option<Arc<Db>>) -> Option<Arc<Db>> {
        std::mem::replace(
            &mut *self.db.write().unwrap_or_else(PoisonError::into_inner),
            db,
        )
    }

    pub(crate) fn send(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }

    /// Sends a job that may be skipped (an access time, the removal of an entry a read found
    /// expired or damaged, which the next read or the sweep finds again): skipped while
    /// [`MAX_HINTS`] of them wait, so that reads cannot grow the queue without bound while the
    /// writer thread is busy.
    pub(crate) fn send_hint(&self, job: Job) {
        if self.hints.fetch_add(1, Ordering::AcqRel) >= MAX_HINTS || !self.send(job) {
            self.hints.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Reads and verifies the record under `key`. A record that fails its checks is reported
    /// to the writer thread for removal and read as a miss.
    fn read_record(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let Some(raw) = self.db()?.entries.get(key).map_err(db_error)? else {
            return Ok(None);
        };
        match Record::decode(key.as_bytes(), &raw) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                tracing::warn!(
                    key,
                    error = %e,
                    path = %self.path.display(),
                    "cachio-fjall: unreadable entry record, treating it as a miss and removing it"
                );
                self.corrupt.fetch_add(1, Ordering::Relaxed);
                self.send_hint(Job::RemoveCorrupt {
                    key: key.to_owned(),
                    raw: raw.to_vec(),
                });
                Ok(None)
            }
        }
    }

    /// The read path of `get`: the record, its decoded metadata and a pin on its generation.
    pub(crate) fn lookup(self: &Arc<Self>, key: &str) -> Result<Option<Looked>, StoreError> {
        for _ in 0..4 {
            let Some(rec) = self.read_record(key)? else {
                return Ok(None);
            };
            let now = self.settings.clock.now_ms();
            if rec.expired(now) {
                self.send_hint(Job::RemoveIfSame {
                    key: key.to_owned(),
                    record: rec,
                });
                return Ok(None);
            }
            let meta = match self.decode_meta(&rec) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(
                        key,
                        error = %e,
                        "cachio-fjall: unreadable entry metadata, treating it as a miss and removing it"
                    );
                    self.corrupt.fetch_add(1, Ordering::Relaxed);
                    self.send_hint(Job::RemoveIfSame {
                        key: key.to_owned(),
                        record: rec,
                    });
                    return Ok(None);
                }
            };
            if rec.chunks == 0 {
                self.maybe_touch(key, &rec, now);
                return Ok(Some((rec, meta, None)));
            }
            // Pin the generation, then check that it is still the visible one: the writer
            // removes a record before it looks for readers of its chunks, so either it sees
            // this pin or this second read sees the record gone.
            let guard = ReadGuard::new(self, rec.gen_id);
            match self.read_record(key)? {
                Some(again) if again.gen_id == rec.gen_id => {
                    self.maybe_touch(key, &rec, now);
                    return Ok(Some((rec, meta, Some(guard))));
                }
                _ => continue,
            }
        }
        Ok(None)
    }

    /// Decodes a record's metadata, or takes it from the memo of decoded metadata when the same
    /// bytes of the same generation were decoded before.
    fn decode_meta(&self, rec: &Record) -> Result<Arc<Meta>, StoreError> {
        if rec.meta.len() > META_MEMO_MAX_LEN {
            return Meta::decode(&rec.meta).map(Arc::new);
        }
        {
            let memo = self.metas.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((bytes, meta)) = memo.get(&rec.gen_id)
                && *bytes == rec.meta
            {
                return Ok(Arc::clone(meta));
            }
        }
        let meta = Arc::new(Meta::decode(&rec.meta)?);
        let mut memo = self.metas.lock().unwrap_or_else(PoisonError::into_inner);
        if memo.len() >= META_MEMO_ENTRIES
            && !memo.contains_key(&rec.gen_id)
            && let Some(&old) = memo.keys().next()
        {
            memo.remove(&old);
        }
        memo.insert(rec.gen_id, (rec.meta.clone(), Arc::clone(&meta)));
        Ok(meta)
    }

    fn maybe_touch(&self, key: &str, rec: &Record, now: u64) {
        let interval = u64::try_from(self.settings.touch_interval.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(rec.atime) >= interval {
            self.send_hint(Job::Touch {
                key: key.to_owned(),
                gen_id: rec.gen_id,
                atime: rec.atime,
            });
        }
    }

    /// Reads and verifies chunks `first..first + n` of a generation: the good ones up to the
    /// first that is missing or damaged, and the error that one gave. The payloads are views
    /// of the values fjall returns (often its cached blobs), not copies.
    pub(crate) fn read_chunks(
        &self,
        gen_id: u64,
        first: u32,
        n: u32,
    ) -> (Vec<Bytes>, Option<StoreError>) {
        let db = match self.db() {
            Ok(db) => db,
            Err(e) => return (Vec::new(), Some(e)),
        };
        let mut out = Vec::with_capacity(n as usize);
        for index in first..first.saturating_add(n) {
            let read = db
                .chunks
                .get(record::chunk_key(gen_id, index))
                .map_err(db_error)
                .and_then(|v| v.ok_or_else(|| record::corrupt(format!("chunk {index} is missing"))))
                .and_then(|v| record::decode_chunk(gen_id, index, Bytes::from(v)));
            match read {
                Ok(chunk) => out.push(chunk),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    /// Whether a read may run on the calling task now (see [`ReadMode`]); if so, the returned
    /// [`InlineRead`] is handed back to [`inline_done`](Self::inline_done) after the read.
    pub(crate) fn inline_read(&self) -> Option<InlineRead> {
        match self.settings.read_mode {
            ReadMode::Blocking => None,
            ReadMode::Inline => Some(InlineRead { start: None }),
            ReadMode::Adaptive => {
                let now = Instant::now();
                let at = micros(now.saturating_duration_since(self.started));
                (at >= self.inline_from.load(Ordering::Relaxed))
                    .then_some(InlineRead { start: Some(now) })
            }
        }
    }

    /// Ends an inline read. A read that took longer than [`SLOW_READ`] (it waited for the
    /// disk, or its thread was preempted) adds its time to a debt that is paid back at
    /// 1/[`SLOW_SHARE`] of the time passing; once the debt exceeds [`SLOW_BURST`], reads go to
    /// the blocking pool until it is paid. So reads on the calling task hold the executor for
    /// slow reads at most about 1/[`SLOW_SHARE`] of the time, plus one burst.
    pub(crate) fn inline_done(&self, read: InlineRead) {
        let Some(start) = read.start else {
            return;
        };
        let took = start.elapsed();
        if took <= SLOW_READ {
            return;
        }
        let now = micros(start.saturating_duration_since(self.started) + took);
        let mut slow = self.slow.lock().unwrap_or_else(PoisonError::into_inner);
        let paid = now.saturating_sub(slow.at) / SLOW_SHARE;
        slow.debt = slow.debt.saturating_sub(paid).saturating_add(micros(took));
        slow.at = now;
        if slow.debt > micros(SLOW_BURST) {
            let until = now.saturating_add(slow.debt.saturating_mul(SLOW_SHARE));
            self.inline_from.fetch_max(until, Ordering::Relaxed);
            tracing::debug!(
                took_us = micros(took),
                slow_us = slow.debt,
                blocking_ms = slow.debt.saturating_mul(SLOW_SHARE) / 1000,
                path = %self.path.display(),
                "cachio-fjall: reads on the calling task were slow, reading on the blocking pool for a while"
            );
        }
    }

    /// The read side of `purge`: scans the records, and has the writer thread remove those
    /// `matches` picks (each only if it is still the same record), a batch at a time.
    pub(crate) fn purge(&self, matches: &dyn Fn(&str, &Meta) -> bool) -> Result<u64, StoreError> {
        const BATCH: usize = 256;
        let mut removed = 0;
        let mut picked = Vec::new();
        let db = self.db()?;
        for guard in db.entries.iter() {
            let (k, v) = guard.into_inner().map_err(db_error)?;
            let Ok(key) = std::str::from_utf8(&k) else {
                continue;
            };
            // Unreadable records are not offered to the predicate; a read removes them.
            let Ok(rec) = Record::decode(&k, &v) else {
                continue;
            };
            let Ok(meta) = Meta::decode(&rec.meta) else {
                continue;
            };
            if matches(key, &meta) {
                picked.push((key.to_owned(), rec));
                if picked.len() == BATCH {
                    removed += self.remove_picked(std::mem::take(&mut picked))?;
                }
            }
        }
        if !picked.is_empty() {
            removed += self.remove_picked(picked)?;
        }
        Ok(removed)
    }

    fn remove_picked(&self, items: Vec<(String, Record)>) -> Result<u64, StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        if !self.send(Job::RemoveMany { items, reply }) {
            return Err(crate::closed());
        }
        rx.blocking_recv().map_err(|_| crate::closed())?
    }

    /// The generations being read.
    pub(crate) fn pinned(&self) -> Vec<u64> {
        let r = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        r.counts.keys().chain(r.deferred.keys()).copied().collect()
    }

    /// Called by the writer thread once a generation's record is gone: returns `true` when its
    /// chunks can be deleted now, `false` when a reader still needs them (they are deleted when
    /// the last reader is done).
    pub(crate) fn release_or_defer(&self, gen_id: u64, chunks: Option<u32>) -> bool {
        let mut r = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if r.counts.get(&gen_id).is_some_and(|&n| n > 0) {
            r.deferred.insert(gen_id, chunks);
            false
        } else {
            true
        }
    }
}

/// The `Meta::encode` bytes a generation's metadata was decoded from, and the result.
type MemoizedMeta = (Vec<u8>, Arc<Meta>);

/// What `lookup` finds: the record, its metadata and a pin on its generation (if it has chunks).
pub(crate) type Looked = (Record, Arc<Meta>, Option<ReadGuard>);

/// The debt of slow inline reads (µs), as of `at` (µs after the engine started).
#[derive(Default)]
pub(crate) struct SlowReads {
    debt: u64,
    at: u64,
}

/// With [`ReadMode::Adaptive`], an inline read slower than this counts against the calling
/// task: about ten hand-offs to the blocking pool, or ten reads of a chunk in memory.
const SLOW_READ: Duration = Duration::from_micros(250);

/// Slow inline reads may take 1/`SLOW_SHARE` of the time (1%) ...
const SLOW_SHARE: u64 = 100;

/// ... beyond a burst of this much.
const SLOW_BURST: Duration = Duration::from_millis(20);

/// A read that runs on the calling task, timed with [`ReadMode::Adaptive`].
pub(crate) struct InlineRead {
    start: Option<Instant>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Keeps a generation's chunks from being deleted while a body reads them.
pub(crate) struct ReadGuard {
    engine: Arc<Engine>,
    gen_id: u64,
}

impl ReadGuard {
    fn new(engine: &Arc<Engine>, gen_id: u64) -> Self {
        let mut r = engine
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *r.counts.entry(gen_id).or_default() += 1;
        Self {
            engine: Arc::clone(engine),
            gen_id,
        }
    }

    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        let deferred = {
            let mut r = self
                .engine
                .readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let last = match r.counts.get_mut(&self.gen_id) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                _ => true,
            };
            if last {
                r.counts.remove(&self.gen_id);
                r.deferred.remove(&self.gen_id)
            } else {
                None
            }
        };
        if let Some(chunks) = deferred {
            // If the store is closed the chunks stay behind and are collected at the next open.
            self.engine.send(Job::DeleteChunks {
                gen_id: self.gen_id,
                chunks,
            });
        }
    }
}
