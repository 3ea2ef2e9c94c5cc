//! Writing an entry: chunks handed to the writer thread as they come, then the commit.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cachio_core::meta::Meta;
use cachio_core::store::{ErrorKind, StoreError, StoreWriter};
use tokio::sync::oneshot;

use crate::worker::{Job, Pending};
use crate::{FjallStore, closed, too_large};

/// A writer with this many bytes (or half the store's write queue, if less) waiting to be written
/// is not ready for more: the tee then waits for the disk instead of the store giving up.
pub const READY_BELOW: u64 = 4 << 20;

/// Writes one entry into a [`FjallStore`]: hands each appended chunk to the store's writer
/// thread (never blocking), and makes the entry visible at [`commit`](StoreWriter::commit).
/// Dropping it before commit deletes what was written. Made by [`Store::begin`](cachio_core::store::Store::begin).
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
    pub(crate) fn new(store: FjallStore, key: &str, gen_id: u64) -> Self {
        FjallWriter {
            store,
            key: key.to_owned(),
            gen_id,
            len: 0,
            sent: false,
            finished: false,
            failed: None,
            pending: Arc::new(Pending::default()),
            drained: None,
        }
    }

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
