//! The store's shared state (the engine and its writer thread), and the [`Store`] contract on
//! it: reads on the calling task or the blocking pool, writes through the writer thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use cachio_core::meta::Meta;
use cachio_core::store::{ErrorKind, Hit, Store, StoreError};
use tokio::sync::oneshot;

use crate::body::{FirstRead, READ_AHEAD, READ_INLINE};
use crate::damage::{self, OnDamage};
use crate::engine::{self, Engine, MAX_KEY_LEN, ReadGuard, Settings};
use crate::record::Record;
use crate::worker::{Job, WriterThread};
use crate::{FjallBody, FjallStore, FjallWriter};

/// What every clone of a [`FjallStore`] shares: the engine and the writer thread.
pub(crate) struct Shared {
    pub(crate) engine: Arc<Engine>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Where a directory that could not be opened was moved at open.
    pub(crate) moved_aside: Option<PathBuf>,
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

impl Shared {
    /// Opens the database in `path` (moving a damaged one aside, with [`OnDamage::Recover`]) and
    /// starts the writer thread.
    pub(crate) fn start(
        path: &Path,
        settings: Settings,
        on_damage: OnDamage,
    ) -> Result<Shared, StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut moved_aside = None;
        let (engine, recovered) = match Engine::open(path, settings.clone(), tx.clone()) {
            Err(err) if on_damage == OnDamage::Recover && damage::is_damage(path, &err) => {
                let aside = damage::move_aside(path)?;
                tracing::error!(
                    dir = %path.display(),
                    moved_to = %aside.display(),
                    error = %err,
                    "cachio-fjall: the store could not be opened; it was moved aside and starts empty"
                );
                moved_aside = Some(aside);
                Engine::open(path, settings, tx)?
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
        Ok(Shared {
            engine,
            thread: Mutex::new(Some(thread)),
            moved_aside,
        })
    }
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

/// Sends the writer thread the job `job` makes, and waits for its answer.
pub(crate) async fn ask<T>(
    engine: &Engine,
    job: impl FnOnce(oneshot::Sender<T>) -> Job,
) -> Result<T, StoreError> {
    let (tx, rx) = oneshot::channel();
    if !engine.send(job(tx)) {
        return Err(closed());
    }
    rx.await.map_err(|_| closed())
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
            engine.corrupt.fetch_add(1, Ordering::Relaxed);
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
        if self.shared.engine.read_only.load(Ordering::Acquire) {
            return Err(crate::worker::read_only());
        }
        let gen_id = self.shared.engine.next_gen.fetch_add(1, Ordering::Relaxed);
        Ok(FjallWriter::new(self.clone(), key, gen_id))
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
