//! The store's writer thread: the only code that changes the database. Chunks, commits, updates,
//! deletes, access-time updates, expiry sweeps and evictions are all applied here, in the order
//! they were sent, so that every read-modify-write of a record and of the accounting is free of
//! races.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cachio_core::store::{ErrorKind, StoreError};
use fjall::{OwnedWriteBatch, PersistMode};
use tokio::sync::{Notify, oneshot};

use crate::Durability;
use crate::db::Db;
use crate::engine::{Engine, Recovered, db_error, guarded};
use crate::record::{self, Record};
use crate::sizing::{Journal, Sizes};

mod chunks;
mod compact;
mod expiry;
mod reopen;

pub(crate) use reopen::read_only;

/// Work for the writer thread.
pub(crate) enum Job {
    /// The next piece of a generation's body.
    Chunk {
        gen_id: u64,
        data: Bytes,
        pending: Arc<Pending>,
    },
    /// A writer was dropped before commit: delete its chunks.
    Abort { gen_id: u64 },
    /// Write the last chunk, then the record.
    Commit {
        gen_id: u64,
        key: String,
        meta: Vec<u8>,
        ttl: Option<Duration>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Update {
        key: String,
        /// The metadata the entry must still have (encoded).
        previous: Vec<u8>,
        meta: Vec<u8>,
        ttl: Option<Duration>,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    Delete {
        key: String,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// A hit on an entry whose access time is older than the touch interval.
    Touch {
        key: String,
        gen_id: u64,
        atime: u64,
    },
    /// Remove the entry under `key` if its record is still `record` (found expired, or with
    /// unreadable metadata).
    RemoveIfSame { key: String, record: Record },
    /// Remove each entry if its record is still the one given (a purge), then answer how many.
    RemoveMany {
        items: Vec<(String, Record)>,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Remove the record under `key` if it still is these (unreadable) bytes.
    RemoveCorrupt { key: String, raw: Vec<u8> },
    /// The last reader of a removed generation is done.
    DeleteChunks { gen_id: u64, chunks: Option<u32> },
    /// Sweep expired entries, evict down to the budget, then answer.
    Maintain { reply: oneshot::Sender<()> },
    /// Make everything written so far durable (fsync), then answer.
    Sync {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// The last store handle is gone.
    Shutdown,
}

/// The chunk bytes one writer has queued and the writer thread has not yet written.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) bytes: AtomicU64,
    pub(crate) notify: Notify,
}

/// A generation being written.
#[derive(Default)]
struct GenState {
    /// Appended bytes not yet written as a chunk (less than one chunk).
    buf: Vec<u8>,
    /// Chunks written.
    written: u32,
    /// Body bytes received.
    len: u64,
    /// The first write error; the generation is then abandoned.
    error: Option<StoreError>,
}

pub(crate) struct WriterThread {
    e: Arc<Engine>,
    gens: HashMap<u64, GenState>,
    tracked: u64,
    count: u64,
    /// Access times come from this clock: the wall clock, never going backwards, so that the
    /// LRU index only grows at its end.
    clock: u64,
    /// Every LRU item older than this has been evicted.
    lru_cursor: u64,
    /// Every expiry item older than this has been swept.
    exp_cursor: u64,
    orphans: Option<(HashSet<u64>, u64)>,
    next_sweep: Instant,
    unpersisted: bool,
    last_persist: Instant,
    last_rotation: Instant,
    /// How many journals there were at the last rotation.
    rotated_at: usize,
    /// Set while the database refuses writes and waits to be reopened.
    recovery: Option<reopen::Recovery>,
    /// Chunk bytes deleted since the chunks keyspace was last compacted.
    dead: u64,
    sizes: Sizes,
    /// The bytes fjall's journal takes, which the entries make room for.
    journal: Journal,
}

/// How often a store with [`Durability::Lazy`] hands its journal to the OS.
const LAZY_PERSIST: Duration = Duration::from_secs(1);
/// The longest the writer waits for fjall's flushes before writing a chunk anyway (if flushes
/// fail, fjall reports it on the next write).
const FLUSH_WAIT: Duration = Duration::from_secs(30);
/// How often to look for sealed journals the index keyspaces hold back.
const JOURNAL_CHECK: Duration = Duration::from_millis(500);
/// How many index items one range read takes.
const SCAN_BATCH: usize = 64;

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl WriterThread {
    pub(crate) fn new(e: Arc<Engine>, recovered: Recovered) -> Self {
        let now = Instant::now();
        Self {
            tracked: recovered.tracked,
            count: recovered.count,
            clock: recovered.max_atime.max(e.settings.clock.now_ms()),
            lru_cursor: 0,
            exp_cursor: 0,
            orphans: Some((recovered.live, recovered.first_gen)),
            next_sweep: now,
            unpersisted: false,
            last_persist: now,
            last_rotation: now,
            rotated_at: 0,
            recovery: None,
            dead: 0,
            sizes: Sizes::for_budget(e.settings.budget),
            journal: Journal::new(e.settings.budget),
            gens: HashMap::new(),
            e,
        }
    }

    pub(crate) fn run(mut self, rx: Receiver<Job>) {
        if let Some((live, below)) = self.orphans.take() {
            self.logged("collecting orphaned chunks", |w| {
                w.collect_orphans(&live, below)
            });
        }
        loop {
            let mut wake = self.next_sweep;
            if self.unpersisted {
                wake = wake.min(self.last_persist + LAZY_PERSIST);
            }
            if let Some(at) = self.reopen_at() {
                wake = wake.min(at);
            }
            let timeout = wake.saturating_duration_since(Instant::now());
            match rx.recv_timeout(timeout) {
                Ok(Job::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(job) => self.logged("writer job", |w| {
                    w.handle(job);
                    Ok(())
                }),
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.recover();
            let now = Instant::now();
            if now >= self.next_sweep {
                self.maintain();
                self.next_sweep = now + self.e.settings.sweep_interval;
            }
            if self.unpersisted && now >= self.last_persist + LAZY_PERSIST {
                self.logged("persisting the journal", |w| w.persist(PersistMode::Buffer));
            }
        }
        // A clean close: make every commit durable.
        self.logged("persisting at close", |w| w.persist(PersistMode::SyncAll));
    }

    /// Runs `f`, logging its error or panic; the thread goes on with the next job.
    fn logged(&mut self, what: &str, f: impl FnOnce(&mut Self) -> Result<(), StoreError>) {
        let result = guarded(what, || f(self));
        self.check(&result);
        if let Err(e) = result {
            tracing::error!(error = %e, path = %self.e.path.display(), "cachio-fjall: {what} failed");
        }
    }

    fn persist(&mut self, mode: PersistMode) -> Result<(), StoreError> {
        self.last_persist = Instant::now();
        self.unpersisted = false;
        self.db()?.db.persist(mode).map_err(db_error)
    }

    fn handle(&mut self, job: Job) {
        if matches!(
            job,
            Job::Touch { .. } | Job::RemoveIfSame { .. } | Job::RemoveCorrupt { .. }
        ) {
            self.e.hints.fetch_sub(1, Ordering::AcqRel);
            if self.recovery.is_some() {
                // fjall refuses writes; the next read finds the same again.
                return;
            }
        }
        match job {
            Job::Chunk {
                gen_id,
                data,
                pending,
            } => self.chunk(gen_id, &data, &pending),
            Job::Abort { gen_id } => {
                if let Some(st) = self.gens.remove(&gen_id) {
                    self.delete_quietly(gen_id, Some(st.written));
                }
            }
            Job::Commit {
                gen_id,
                key,
                meta,
                ttl,
                reply,
            } => {
                let mut st = self.gens.remove(&gen_id).unwrap_or_default();
                if reply.is_closed() {
                    // The commit future was dropped: the caller gave up, store nothing.
                    self.delete_quietly(gen_id, Some(st.written));
                    return;
                }
                let result = self.commit(gen_id, &key, meta, ttl, &mut st);
                self.check(&result);
                if result.is_err() {
                    self.delete_quietly(gen_id, Some(st.written));
                }
                let ok = result.is_ok();
                let _ = reply.send(result);
                if ok {
                    self.evict_logged();
                    self.logged("releasing sealed journals", Self::release_journals);
                }
            }
            Job::Update {
                key,
                previous,
                meta,
                ttl,
                reply,
            } => {
                let result = self.update(&key, &previous, meta, ttl);
                self.check(&result);
                let _ = reply.send(result);
                self.evict_logged();
            }
            Job::Delete { key, reply } => {
                let result = self.delete(&key);
                self.check(&result);
                let _ = reply.send(result);
            }
            Job::Touch { key, gen_id, atime } => {
                self.logged("updating an access time", |w| w.touch(&key, gen_id, atime));
            }
            Job::RemoveIfSame { key, record } => {
                self.logged("removing an entry", |w| match w.current(&key)? {
                    Some(rec) if rec == record => w.remove_entry(&key, &rec, false),
                    _ => Ok(()),
                });
            }
            Job::RemoveMany { items, reply } => {
                let result = guarded("purging", || self.remove_many(items));
                self.check(&result);
                let _ = reply.send(result);
            }
            Job::RemoveCorrupt { key, raw } => {
                self.logged("removing a corrupt record", |w| {
                    let db = w.db()?;
                    let now = db.entries.get(&key).map_err(db_error)?;
                    if now.as_deref() == Some(&raw[..]) {
                        let mut b = w.batch(false)?;
                        b.remove(&db.entries, key.as_str());
                        w.commit_batch(b)?;
                    }
                    Ok(())
                });
            }
            Job::DeleteChunks { gen_id, chunks } => self.delete_quietly(gen_id, chunks),
            Job::Maintain { reply } => {
                self.maintain();
                let _ = reply.send(());
            }
            Job::Sync { reply } => {
                let result = self.persist(PersistMode::SyncAll);
                self.check(&result);
                let _ = reply.send(result);
            }
            Job::Shutdown => {}
        }
    }

    /// fjall keeps a sealed journal until every keyspace has flushed the memtable that holds
    /// its writes. The chunks keyspace flushes every few MiB, but the index keyspaces take few
    /// bytes per entry and would hold sealed journals (full of body bytes) for long: when one
    /// exists, flush them too. `rotate_memtable` is public in fjall 3 but not documented.
    fn release_journals(&mut self) -> Result<(), StoreError> {
        let db = self.db()?;
        // At once for each newly sealed journal: under a fast write load the next fills by tens
        // of MiB in the interval. Then again now and then, should a flush have been missed.
        let journals = db.db.journal_count();
        if journals > 1
            && (journals != self.rotated_at || self.last_rotation.elapsed() >= JOURNAL_CHECK)
        {
            self.rotated_at = journals;
            self.release_journals_now()?;
        }
        Ok(())
    }

    /// Flushes the memtables of every keyspace, the bodies' too, so that fjall can drop its
    /// sealed journals.
    fn release_journals_now(&mut self) -> Result<(), StoreError> {
        let db = self.db()?;
        self.last_rotation = Instant::now();
        for ks in [&db.entries, &db.lru, &db.expiry, &db.chunks] {
            ks.rotate_memtable().map_err(db_error)?;
        }
        Ok(())
    }

    fn maintain(&mut self) {
        if self.recovery.is_some() {
            // fjall refuses writes until the database is reopened.
            return;
        }
        self.logged("releasing sealed journals", Self::release_journals);
        self.logged("sweeping expired entries", Self::sweep);
        self.evict_logged();
    }

    fn evict_logged(&mut self) {
        let budget = self.e.settings.budget;
        let journal = self
            .journal
            .estimate(&self.e.path.join(crate::engine::DB_DIR));
        let target = crate::sizing::evict_target(budget, journal);
        self.logged("evicting", |w| w.evict(target));
        self.logged("compacting", Self::compact_if_due);
    }

    fn publish(&self) {
        self.e.tracked.store(self.tracked, Ordering::Relaxed);
        self.e.count.store(self.count, Ordering::Relaxed);
    }

    fn tick(&mut self) -> u64 {
        self.clock = self.clock.max(self.e.settings.clock.now_ms());
        self.clock
    }

    /// What the configured durability asks of a commit.
    fn persist_mode(&self) -> Option<PersistMode> {
        match self.e.settings.durability {
            Durability::Lazy => None,
            Durability::Flush => Some(PersistMode::Buffer),
            Durability::SyncData => Some(PersistMode::SyncData),
            Durability::SyncAll => Some(PersistMode::SyncAll),
        }
    }

    fn batch(&self, durable: bool) -> Result<OwnedWriteBatch, StoreError> {
        let mode = if durable { self.persist_mode() } else { None };
        Ok(self.db()?.db.batch().durability(mode))
    }

    /// The open database, or an error while it is being reopened.
    fn db(&self) -> Result<Arc<Db>, StoreError> {
        self.e.db()
    }

    fn commit_batch(&mut self, b: OwnedWriteBatch) -> Result<(), StoreError> {
        b.commit().map_err(db_error)?;
        if !self.unpersisted {
            self.unpersisted = true;
            self.last_persist = Instant::now();
        }
        Ok(())
    }

    // ---- records --------------------------------------------------------------------------------

    /// The valid record under `key`; an unreadable one is removed and read as none.
    fn current(&mut self, key: &str) -> Result<Option<Record>, StoreError> {
        self.current_bytes(key.as_bytes())
    }

    fn current_bytes(&mut self, key: &[u8]) -> Result<Option<Record>, StoreError> {
        let db = self.db()?;
        let Some(raw) = db.entries.get(key).map_err(db_error)? else {
            return Ok(None);
        };
        match Record::decode(key, &raw) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                tracing::warn!(
                    key = %String::from_utf8_lossy(key),
                    error = %e,
                    "cachio-fjall: removing an unreadable entry record"
                );
                let mut b = self.batch(false)?;
                b.remove(&db.entries, key);
                self.commit_batch(b)?;
                Ok(None)
            }
        }
    }

    fn size_of(key: &[u8], rec: &Record) -> u64 {
        record::entry_size(key.len(), rec.encoded_len(), rec.body_len, rec.chunks)
    }

    /// Adds the index items of `rec` to a batch.
    fn index(&mut self, db: &Db, b: &mut OwnedWriteBatch, key: &[u8], rec: &Record, size: u64) {
        b.insert(
            &db.lru,
            record::index_key(rec.atime, rec.gen_id),
            record::encode_lru_value(size, key),
        );
        if rec.expires != 0 {
            b.insert(&db.expiry, record::index_key(rec.expires, rec.gen_id), key);
            self.exp_cursor = self.exp_cursor.min(rec.expires);
        }
        self.lru_cursor = self.lru_cursor.min(rec.atime);
    }

    /// Removes the index items of `rec` in a batch.
    fn unindex(db: &Db, b: &mut OwnedWriteBatch, rec: &Record) {
        b.remove(&db.lru, record::index_key(rec.atime, rec.gen_id));
        if rec.expires != 0 {
            b.remove(&db.expiry, record::index_key(rec.expires, rec.gen_id));
        }
    }

    fn expires(&self, ttl: Option<Duration>) -> u64 {
        let now = self.e.settings.clock.now_ms();
        ttl.map_or(0, |t| now.saturating_add(ms(t)).max(1))
    }

    fn commit(
        &mut self,
        gen_id: u64,
        key: &str,
        meta: Vec<u8>,
        ttl: Option<Duration>,
        st: &mut GenState,
    ) -> Result<(), StoreError> {
        let db = self.db()?;
        if let Some(e) = st.error.take() {
            return Err(e);
        }
        if self.recovery.is_some() {
            return Err(read_only());
        }
        if !st.buf.is_empty() {
            let buf = std::mem::take(&mut st.buf);
            self.write_chunk(gen_id, st, &buf)?;
        }
        if ttl == Some(Duration::ZERO) {
            // Nothing to keep: the entry under the key goes, and so do these chunks.
            self.delete_chunks(gen_id, Some(st.written))?;
            st.written = 0;
            return self.delete(key);
        }
        let max = self.e.settings.max_object;
        if st.len > max {
            return Err(crate::too_large(max));
        }
        let rec = Record {
            gen_id,
            body_len: st.len,
            chunks: st.written,
            atime: self.tick(),
            expires: self.expires(ttl),
            meta,
        };
        let bytes = rec.encode(key.as_bytes());
        let size = Self::size_of(key.as_bytes(), &rec);
        if size > self.e.settings.budget {
            return Err(StoreError::new(
                ErrorKind::TooLarge,
                format!(
                    "an entry of {size} bytes does not fit the budget of {} bytes",
                    self.e.settings.budget
                ),
            ));
        }
        let old = self.current(key)?;
        let mut b = self.batch(true)?;
        b.insert(&db.entries, key, bytes);
        self.index(&db, &mut b, key.as_bytes(), &rec, size);
        if let Some(old) = &old {
            Self::unindex(&db, &mut b, old);
        }
        self.commit_batch(b)?;
        self.tracked = self.tracked.saturating_add(size);
        self.count += 1;
        if let Some(old) = old {
            self.tracked = self
                .tracked
                .saturating_sub(Self::size_of(key.as_bytes(), &old));
            self.count = self.count.saturating_sub(1);
            self.publish();
            self.drop_chunks(old.gen_id, Some(old.chunks))?;
        }
        self.publish();
        Ok(())
    }

    fn update(
        &mut self,
        key: &str,
        previous: &[u8],
        meta: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let db = self.db()?;
        let Some(old) = self.current(key)? else {
            return Ok(false);
        };
        if old.meta != previous {
            // Another entry was written under the key since `previous` was read.
            return Ok(false);
        }
        if old.expired(self.e.settings.clock.now_ms()) {
            // Already a miss for readers: not there to update.
            self.remove_entry(key, &old, false)?;
            return Ok(false);
        }
        if ttl == Some(Duration::ZERO) {
            self.remove_entry(key, &old, true)?;
            return Ok(true);
        }
        let rec = Record {
            atime: self.tick(),
            expires: self.expires(ttl),
            meta,
            ..old.clone()
        };
        let size = Self::size_of(key.as_bytes(), &rec);
        let mut b = self.batch(true)?;
        b.insert(&db.entries, key, rec.encode(key.as_bytes()));
        Self::unindex(&db, &mut b, &old);
        self.index(&db, &mut b, key.as_bytes(), &rec, size);
        self.commit_batch(b)?;
        self.tracked = self
            .tracked
            .saturating_add(size)
            .saturating_sub(Self::size_of(key.as_bytes(), &old));
        self.publish();
        Ok(true)
    }

    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        if let Some(rec) = self.current(key)? {
            self.remove_entry(key, &rec, true)?;
        }
        Ok(())
    }

    /// Removes a record and its index items in one batch, then its chunks.
    fn remove_entry(&mut self, key: &str, rec: &Record, durable: bool) -> Result<(), StoreError> {
        self.remove_entry_bytes(key.as_bytes(), rec, durable)
    }

    fn remove_entry_bytes(
        &mut self,
        key: &[u8],
        rec: &Record,
        durable: bool,
    ) -> Result<(), StoreError> {
        let db = self.db()?;
        let mut b = self.batch(durable)?;
        b.remove(&db.entries, key);
        Self::unindex(&db, &mut b, rec);
        self.commit_batch(b)?;
        self.tracked = self.tracked.saturating_sub(Self::size_of(key, rec));
        self.count = self.count.saturating_sub(1);
        self.publish();
        self.drop_chunks(rec.gen_id, Some(rec.chunks))
    }

    fn remove_many(&mut self, items: Vec<(String, Record)>) -> Result<u64, StoreError> {
        let mut removed = 0;
        for (key, rec) in items {
            if self.current(&key)?.as_ref() == Some(&rec) {
                self.remove_entry(&key, &rec, false)?;
                removed += 1;
            }
        }
        // As durable as a delete, with one flush for the whole batch.
        if let Some(mode) = self.persist_mode().filter(|_| removed > 0) {
            self.persist(mode)?;
        }
        Ok(removed)
    }

    fn touch(&mut self, key: &str, gen_id: u64, atime: u64) -> Result<(), StoreError> {
        let db = self.db()?;
        let Some(old) = self.current(key)? else {
            return Ok(());
        };
        if old.gen_id != gen_id || old.atime != atime {
            return Ok(());
        }
        let now = self.tick();
        if now == old.atime {
            return Ok(());
        }
        let rec = Record {
            atime: now,
            ..old.clone()
        };
        let size = Self::size_of(key.as_bytes(), &rec);
        let mut b = self.batch(false)?;
        b.insert(&db.entries, key, rec.encode(key.as_bytes()));
        b.remove(&db.lru, record::index_key(old.atime, gen_id));
        b.insert(
            &db.lru,
            record::index_key(now, gen_id),
            record::encode_lru_value(size, key.as_bytes()),
        );
        self.commit_batch(b)
    }
}
