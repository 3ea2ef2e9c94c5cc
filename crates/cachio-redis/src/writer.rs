//! Streaming writes: small bodies stay with the writer and go into the record; larger ones are
//! handed to a task of the writer's own that stores them chunk by chunk as they arrive.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use cachio_core::meta::Meta;
use cachio_core::store::{ErrorKind, StoreError, StoreWriter};
use tokio::sync::{mpsc, oneshot};

use crate::conn::{Core, Shared};
use crate::fence::threshold;
use crate::record::{self, BodyPart, Names};
use crate::scripts::{self, Expiry, delete_keys, millis, run_script};
use crate::{CHUNK_SIZE, too_large};

/// Writes one entry into a [`RedisStore`](crate::RedisStore): never blocks, and makes the entry
/// visible at [`commit`](StoreWriter::commit), atomically. Dropping it before commit deletes
/// what it wrote. Made by [`Store::begin`](cachio_core::store::Store::begin).
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use cachio_core::store::{ErrorKind, Store, StoreWriter};
/// use cachio_redis::RedisStore;
///
/// // The limit is checked before anything is sent, so no Redis is needed here.
/// let store = RedisStore::builder("redis://127.0.0.1:6379/").max_object_size(8).build()?;
/// let mut writer = store.begin("k")?;
/// writer.append(Bytes::from_static(b"12345678"))?;
/// let err = writer.append(Bytes::from_static(b"9")).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::TooLarge);
/// # Ok::<(), cachio_core::store::StoreError>(())
/// ```
pub struct RedisWriter {
    shared: Arc<Shared>,
    key: String,
    names: Names,
    generation: u64,
    len: u64,
    /// The body while it fits in one chunk and no task was started.
    small: Vec<Bytes>,
    task: Option<Task>,
    failed: Option<StoreError>,
}

struct Task {
    tx: mpsc::UnboundedSender<Msg>,
    /// Set by the task when a write failed: later appends fail at once.
    broken: Arc<AtomicBool>,
}

enum Msg {
    Data(Bytes),
    Commit {
        meta: Vec<u8>,
        fencing: Fencing,
        ttl: Option<Duration>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

impl RedisWriter {
    pub(crate) fn new(shared: Arc<Shared>, key: &str, names: Names) -> Self {
        let generation = shared.core.generations.next();
        RedisWriter {
            shared,
            key: key.to_owned(),
            names,
            generation,
            len: 0,
            small: Vec::new(),
            task: None,
            failed: None,
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
    /// let store = cachio_redis::RedisStore::builder("redis://127.0.0.1:6379/").build()?;
    /// let mut writer = store.begin("k")?;
    /// writer.append(Bytes::from_static(b"abc"))?;
    /// assert_eq!(writer.len(), 3);
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    #[expect(clippy::len_without_is_empty, reason = "a writer is not a collection")]
    pub fn len(&self) -> u64 {
        self.len
    }

    fn fail(&mut self, e: StoreError) -> StoreError {
        self.failed = Some(e.clone());
        self.small.clear();
        self.task = None;
        e
    }

    /// Counts `n` bytes against the store's write queue.
    fn reserve(&self, n: u64) -> Result<(), StoreError> {
        let core = &self.shared.core;
        let limit = core.settings.write_queue;
        let queued = core.queued.fetch_add(n, Ordering::AcqRel);
        if queued > 0 && queued.saturating_add(n) > limit {
            core.queued.fetch_sub(n, Ordering::AcqRel);
            return Err(StoreError::new(
                ErrorKind::Unavailable,
                format!("the Redis write queue is full ({queued} bytes waiting, limit {limit})"),
            ));
        }
        Ok(())
    }

    fn start_task(&mut self) -> Task {
        let (tx, rx) = mpsc::unbounded_channel();
        let broken = Arc::new(AtomicBool::new(false));
        let job = Job {
            core: Arc::clone(&self.shared.core),
            names: self.names.clone(),
            key: self.key.clone(),
            generation: self.generation,
            broken: Arc::clone(&broken),
        };
        self.shared.runtime.handle.spawn(job.run(rx));
        Task { tx, broken }
    }
}

impl fmt::Debug for RedisWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisWriter")
            .field("key", &self.key)
            .field("generation", &format_args!("{:016x}", self.generation))
            .field("len", &self.len)
            .field("streaming", &self.task.is_some())
            .field("failed", &self.failed)
            .finish()
    }
}

impl StoreWriter for RedisWriter {
    fn append(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let n = chunk.len() as u64;
        let len = self.len.saturating_add(n);
        let max = self.shared.core.settings.max_object;
        if len > max {
            return Err(self.fail(too_large(max)));
        }
        if n == 0 {
            return Ok(());
        }
        if self.task.is_none() && len <= CHUNK_SIZE as u64 {
            self.small.push(chunk);
            self.len = len;
            return Ok(());
        }
        let pending: Vec<Bytes> = std::mem::take(&mut self.small);
        let total = n + pending.iter().map(|b| b.len() as u64).sum::<u64>();
        if let Err(e) = self.reserve(total) {
            return Err(self.fail(e));
        }
        if self.task.is_none() {
            let task = self.start_task();
            self.task = Some(task);
        }
        let task = self.task.as_ref().expect("started above");
        if task.broken.load(Ordering::Acquire) {
            self.shared.core.queued.fetch_sub(total, Ordering::AcqRel);
            let e = StoreError::new(ErrorKind::Unavailable, "writing a chunk to Redis failed");
            return Err(self.fail(e));
        }
        for part in pending.into_iter().chain(std::iter::once(chunk)) {
            if task.tx.send(Msg::Data(part)).is_err() {
                // The task is gone (the runtime stopped): it can no longer release the bytes.
                self.shared.core.queued.fetch_sub(total, Ordering::AcqRel);
                let e = StoreError::new(ErrorKind::Unavailable, "the Redis writer task stopped");
                return Err(self.fail(e));
            }
        }
        self.len = len;
        Ok(())
    }

    async fn commit(mut self, meta: Arc<Meta>, ttl: Option<Duration>) -> Result<(), StoreError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let core = &self.shared.core;
        let fencing = match &*meta {
            Meta::Response(r) => {
                core.variant_times.note(&self.key, r.request_time());
                Fencing {
                    requested: Some(r.request_time()),
                    epoch: None,
                }
            }
            Meta::Variants(index) => Fencing {
                requested: core.variant_times.take(&self.key, index.epoch),
                epoch: Some(index.epoch),
            },
        };
        let meta = meta.encode();
        match self.task.take() {
            Some(task) => {
                let (reply, answer) = oneshot::channel();
                task.tx
                    .send(Msg::Commit {
                        meta,
                        fencing,
                        ttl,
                        reply,
                    })
                    .map_err(|_| {
                        StoreError::new(ErrorKind::Unavailable, "the Redis writer task stopped")
                    })?;
                answer.await.unwrap_or_else(|_| {
                    Err(StoreError::new(
                        ErrorKind::Unavailable,
                        "the Redis writer task stopped",
                    ))
                })
            }
            None => {
                let record = record::encode(
                    self.generation,
                    self.len,
                    &self.key,
                    &meta,
                    BodyPart::Inline(&self.small),
                );
                let core = Arc::clone(&self.shared.core);
                let names = self.names.clone();
                let key = std::mem::take(&mut self.key);
                self.shared
                    .runtime
                    .run(async move {
                        let entry = Entry {
                            key: &key,
                            names: &names,
                            fencing,
                        };
                        commit_record(&core, entry, record, 0, ttl).await
                    })
                    .await
            }
        }
    }
}

/// What orders a commit with the purges of every node (`fence.rs`): when its response was
/// requested (for a variant index, its variant's, if known), and a variant index's epoch.
#[derive(Clone, Copy, Debug)]
struct Fencing {
    requested: Option<SystemTime>,
    epoch: Option<u64>,
}

/// The entry a record is committed for: its cache key, its key names, and its fencing.
struct Entry<'a> {
    key: &'a str,
    names: &'a Names,
    fencing: Fencing,
}

/// Makes a record visible: sets it if the `chunks` chunks of its generation are all there and no
/// purge of its key came after its response was requested (`fence.rs`), or removes the entry
/// when `ttl` is zero.
async fn commit_record(
    core: &Core,
    entry: Entry<'_>,
    record: Vec<u8>,
    chunks: u32,
    ttl: Option<Duration>,
) -> Result<(), StoreError> {
    let Entry {
        key,
        names,
        fencing,
    } = entry;
    let grace = millis(core.settings.retired_grace).to_string().into_bytes();
    let expiry = Expiry::of(ttl);
    if expiry == Expiry::Now {
        run_script(
            core,
            "delete",
            &scripts::DELETE,
            &[names.record()],
            &[grace, Vec::new()],
        )
        .await?;
        // A time to live of zero: nothing is stored, and the entry under the key goes.
        return Ok(());
    }
    let generation = u64::from_be_bytes(record[5..13].try_into().expect("8 bytes"));
    let mut keys = Vec::with_capacity(chunks as usize + 3);
    keys.push(names.record());
    keys.extend(names.chunks(generation, chunks));
    // A variant index carries no request time: it takes its variant's, when this store
    // committed that variant (the cache layer writes the index right after).
    let guards = match fencing.requested {
        Some(_) => core.fences.guards(key, names),
        None => Vec::new(),
    };
    let threshold = fencing
        .requested
        .map_or(i64::MIN, |t| threshold(t, core.settings.clock_skew));
    let guard_count = guards.len();
    keys.extend(guards);
    // A variant index of an epoch that a delete of its resource removed is never written back.
    let epoch = fencing
        .epoch
        .map_or_else(Vec::new, |e| e.to_be_bytes().to_vec());
    if fencing.epoch.is_some() {
        keys.push(names.dead_epochs());
    }
    let done = run_script(
        core,
        "commit",
        &scripts::COMMIT,
        &keys,
        &[
            record,
            expiry.arg().to_string().into_bytes(),
            grace,
            guard_count.to_string().into_bytes(),
            threshold.to_string().into_bytes(),
            epoch,
        ],
    )
    .await?;
    match done {
        1 => Ok(()),
        2 => {
            core.counters.invalidated.fetch_add(1, Ordering::Relaxed);
            Err(StoreError::new(
                ErrorKind::Invalidated,
                "purged or invalidated since the response was requested: nothing stored",
            ))
        }
        _ => Err(StoreError::new(
            ErrorKind::Unavailable,
            "a chunk expired or was evicted before the commit: nothing stored",
        )),
    }
}

/// The task that writes one body's chunks.
struct Job {
    core: Arc<Core>,
    names: Names,
    key: String,
    generation: u64,
    broken: Arc<AtomicBool>,
}

impl Job {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut buf = BytesMut::new();
        let mut crcs: Vec<u32> = Vec::new();
        let mut len = 0u64;
        let mut error: Option<StoreError> = None;
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Data(mut data) => {
                    let n = data.len() as u64;
                    len += n;
                    while error.is_none() && !data.is_empty() {
                        let chunk = if buf.is_empty() && data.len() >= CHUNK_SIZE {
                            data.split_to(CHUNK_SIZE)
                        } else {
                            let take = (CHUNK_SIZE - buf.len()).min(data.len());
                            buf.extend_from_slice(&data.split_to(take));
                            if buf.len() < CHUNK_SIZE {
                                continue;
                            }
                            buf.split().freeze()
                        };
                        if let Err(e) = self.write(crcs.len() as u32, &chunk).await {
                            self.broken.store(true, Ordering::Release);
                            error = Some(e);
                        }
                        crcs.push(crc32fast::hash(&chunk));
                    }
                    self.core.queued.fetch_sub(n, Ordering::AcqRel);
                }
                Msg::Commit {
                    meta,
                    fencing,
                    ttl,
                    reply,
                } => {
                    let result = match error.take() {
                        Some(e) => Err(e),
                        None => {
                            let body = (&mut buf, &mut crcs, len);
                            self.finish(body, &meta, fencing, ttl).await
                        }
                    };
                    if result.is_err() {
                        self.abandon(crcs.len() as u32).await;
                    }
                    let _ = reply.send(result);
                    return;
                }
            }
        }
        // The writer was dropped without a commit.
        self.abandon(crcs.len() as u32).await;
    }

    async fn write(&self, index: u32, chunk: &[u8]) -> Result<(), StoreError> {
        let key = self.names.chunk(self.generation, index);
        let mut c = self.core.conn.clone();
        let pending = millis(self.core.settings.pending_ttl);
        self.core
            .exec(
                "SET chunk",
                redis::cmd("SET")
                    .arg(&key)
                    .arg(chunk)
                    .arg("PX")
                    .arg(pending)
                    .query_async::<()>(&mut c),
            )
            .await
    }

    async fn finish(
        &self,
        (buf, crcs, len): (&mut BytesMut, &mut Vec<u32>, u64),
        meta: &[u8],
        fencing: Fencing,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        if !buf.is_empty() {
            let last = buf.split().freeze();
            self.write(crcs.len() as u32, &last).await?;
            crcs.push(crc32fast::hash(&last));
        }
        let record = record::encode(
            self.generation,
            len,
            &self.key,
            meta,
            BodyPart::Chunks(crcs),
        );
        let entry = Entry {
            key: &self.key,
            names: &self.names,
            fencing,
        };
        commit_record(&self.core, entry, record, crcs.len() as u32, ttl).await?;
        if Expiry::of(ttl) == Expiry::Now {
            self.abandon(crcs.len() as u32).await;
        }
        Ok(())
    }

    /// Deletes the chunks written (they would expire after the pending time to live anyway).
    async fn abandon(&self, chunks: u32) {
        if chunks > 0 {
            let keys = self.names.chunks(self.generation, chunks);
            delete_keys(&self.core, &keys).await;
        }
    }
}
