//! Recording one entry: the body goes to a temporary file in the cassette's directory on a
//! blocking thread, and the entry becomes visible by renames at commit.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use cachio_core::meta::Meta;
use cachio_core::store::{ErrorKind, StoreError, StoreWriter};
use tokio::sync::oneshot;

use crate::Inner;

/// Bytes queued for the file past which [`StoreWriter::poll_ready`] waits.
const QUEUE_LIMIT: u64 = 1 << 20;

enum Msg {
    Chunk(Bytes),
    Commit(Arc<Meta>, oneshot::Sender<Result<(), StoreError>>),
}

/// What the writer and its thread share.
#[derive(Default)]
struct Shared {
    queued: AtomicU64,
    failed: Mutex<Option<StoreError>>,
    waker: Mutex<Option<Waker>>,
}

impl Shared {
    fn failure(&self) -> Option<StoreError> {
        self.failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn wake(&self) {
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Writes one entry of a [`Cassette`](crate::Cassette); see [`StoreWriter`]. Dropped before
/// [`commit`](StoreWriter::commit), it leaves nothing behind.
///
/// # Example
///
/// ```
/// use cachio_cassette::Cassette;
/// use cachio_core::store::{Store, StoreWriter};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let cassette = Cassette::builder(dir.path()).open()?;
/// let mut writer: cachio_cassette::CassetteWriter = cassette.begin("http://example.com/a")?;
/// writer.append("part one, ".into())?;
/// writer.append("part two".into())?;
/// # let now = std::time::SystemTime::now();
/// let meta = cachio_core::meta::Meta::Response(cachio_core::meta::ResponseMeta::new(
///     http::StatusCode::OK,
///     http::Version::HTTP_11,
///     http::HeaderMap::new(),
///     Vec::new(),
///     now,
///     now,
/// ));
/// writer.commit(std::sync::Arc::new(meta), None).await?;
/// assert!(cassette.get("http://example.com/a").await?.is_some());
/// # Ok(())
/// # }
/// ```
pub struct CassetteWriter {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for CassetteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassetteWriter")
            .field("queued", &self.shared.queued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl CassetteWriter {
    pub(crate) fn start(inner: Arc<Inner>, key: String) -> Result<Self, StoreError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| {
            StoreError::new(
                ErrorKind::Unavailable,
                "a cassette records inside a tokio runtime",
            )
        })?;
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        rt.spawn_blocking(move || run(&inner, &key, &rx, &thread_shared));
        Ok(Self { tx, shared })
    }
}

impl StoreWriter for CassetteWriter {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StoreError>> {
        if let Some(e) = self.shared.failure() {
            return Poll::Ready(Err(e));
        }
        if self.shared.queued.load(Ordering::Acquire) <= QUEUE_LIMIT {
            return Poll::Ready(Ok(()));
        }
        *self
            .shared
            .waker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cx.waker().clone());
        // Checked again: the thread may have caught up before the waker was in place.
        if self.shared.queued.load(Ordering::Acquire) <= QUEUE_LIMIT {
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }

    fn append(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        if let Some(e) = self.shared.failure() {
            return Err(e);
        }
        if chunk.is_empty() {
            return Ok(());
        }
        self.shared
            .queued
            .fetch_add(chunk.len() as u64, Ordering::AcqRel);
        self.tx
            .send(Msg::Chunk(chunk))
            .map_err(|_| StoreError::new(ErrorKind::Io, "the cassette writer stopped"))
    }

    fn commit(
        self,
        meta: Arc<Meta>,
        _ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let (reply, done) = oneshot::channel();
        let sent = self.tx.send(Msg::Commit(meta, reply));
        async move {
            sent.map_err(|_| StoreError::new(ErrorKind::Io, "the cassette writer stopped"))?;
            done.await.map_err(|_| {
                StoreError::new(ErrorKind::Io, "the cassette writer stopped before commit")
            })?
        }
    }
}

/// A temporary file of the directory, removed when dropped unless it was renamed.
struct Temp {
    path: PathBuf,
    file: Option<File>,
    kept: bool,
}

impl Temp {
    fn create(inner: &Inner, what: &str) -> std::io::Result<Self> {
        let path = inner.dir.join(format!(
            ".{}-{}.{what}.tmp",
            std::process::id(),
            inner.next_temp.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::create_new(&path)?;
        Ok(Self {
            path,
            file: Some(file),
            kept: false,
        })
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::new(ErrorKind::Io, e)
}

fn run(inner: &Inner, key: &str, rx: &mpsc::Receiver<Msg>, shared: &Shared) {
    let mut body: Option<Temp> = None;
    let mut len = 0u64;
    let mut crc = crc32fast::Hasher::new();
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Chunk(chunk) => {
                let n = chunk.len() as u64;
                if shared.failure().is_none() {
                    let written = (|| {
                        if body.is_none() {
                            body = Some(Temp::create(inner, "body")?);
                        }
                        crc.update(&chunk);
                        let file = body.as_mut().and_then(|t| t.file.as_mut());
                        file.map_or(Ok(()), |f| f.write_all(&chunk))
                    })();
                    match written {
                        Ok(()) => len += n,
                        Err(e) => {
                            *shared
                                .failed
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(io(e));
                        }
                    }
                }
                shared.queued.fetch_sub(n, Ordering::AcqRel);
                shared.wake();
            }
            Msg::Commit(meta, reply) => {
                let result = match shared.failure() {
                    Some(e) => Err(e),
                    None => inner.finish(key, &meta, body.take(), len, crc.finalize()),
                };
                let _ = reply.send(result);
                return;
            }
        }
    }
}

impl Inner {
    /// Makes the entry visible: its file (and the body's) renamed into place together.
    fn finish(
        &self,
        key: &str,
        meta: &Meta,
        body: Option<Temp>,
        len: u64,
        crc: u32,
    ) -> Result<(), StoreError> {
        if matches!(meta, Meta::Variants(_)) && len > 0 {
            return Err(StoreError::new(
                ErrorKind::Other,
                "a variant index has no body",
            ));
        }
        let names = crate::Names::of(key);
        let body_name = names.body(crc);
        let body_part = (len > 0).then(|| crate::file::BodyPart {
            file: body_name.clone(),
            length: len,
        });
        let entry = crate::file::to_file(key, meta, body_part, &self.redact)
            .map_err(|e| StoreError::new(ErrorKind::Other, e))?;
        let mut json = Temp::create(self, "json").map_err(io)?;
        if let Some(f) = json.file.as_mut() {
            f.write_all(&crate::file::render(&entry)).map_err(io)?;
        }
        let mut body = body;
        if let Some(f) = body.as_mut().and_then(|b| b.file.take()) {
            f.sync_data().map_err(io)?;
        }
        let _visible = self.write_lock();
        // The body the entry names now, removed once the new entry is in place. A reader that
        // read the old entry file then finds its own body, or none (a miss), never this one.
        let old_body = std::fs::read(self.dir.join(&names.json))
            .ok()
            .and_then(|b| crate::file::parse(&b).ok())
            .and_then(|e| e.body().map(|b| b.file.clone()))
            .filter(|b| crate::file::plain_name(b) && (len == 0 || *b != body_name));
        if let Some(b) = body.as_mut().filter(|_| len > 0) {
            std::fs::rename(&b.path, self.dir.join(&body_name)).map_err(io)?;
            b.kept = true;
        }
        std::fs::rename(&json.path, self.dir.join(&names.json)).map_err(io)?;
        json.kept = true;
        if let Some(old) = old_body {
            remove_if_present(&self.dir.join(old)).map_err(io)?;
        }
        self.recorded(&names.json);
        Ok(())
    }
}

/// Removes a file; one that is not there is not an error.
pub(crate) fn remove_if_present(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
