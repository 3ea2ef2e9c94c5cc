//! The body of a hit: its first chunks are read with the record, the rest as it is polled, on
//! the polling task or on tokio's blocking pool (see [`ReadMode`](crate::ReadMode)).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use cachio_core::store::{ErrorKind, StoreError};
use http_body::{Body, Frame, SizeHint};
use tokio::task::JoinHandle;

use crate::engine::{Engine, ReadGuard};
use crate::record::{self, Record};
use crate::worker::Job;

/// How many chunks one read on the blocking pool fetches. A body holds at most twice this many
/// chunks: the ones it is handing out and the ones being read ahead.
pub(crate) const READ_AHEAD: u32 = 4;

/// How many chunks one read on the polling task fetches: one, so that a poll holds the task for
/// the time of one chunk.
pub(crate) const READ_INLINE: u32 = 1;

/// The first chunks of a body, read (and verified) together with its record, so that a small
/// body needs no further read.
pub(crate) struct FirstRead {
    /// How many chunks were asked for.
    asked: u32,
    /// The good ones, up to the first that is missing or damaged.
    chunks: Vec<Bytes>,
    /// The error that one gave.
    error: Option<StoreError>,
}

impl FirstRead {
    /// Nothing read: for bodies with no chunks (or no pin on them).
    pub(crate) fn none() -> Self {
        FirstRead {
            asked: 0,
            chunks: Vec::new(),
            error: None,
        }
    }

    /// The error that stopped the read before a single chunk was read: the body is damaged from
    /// its first byte.
    pub(crate) fn failed_at_once(&self) -> Option<&StoreError> {
        self.error.as_ref().filter(|_| self.chunks.is_empty())
    }

    /// Reads the first `n` chunks of `rec`'s body (the whole body if it has no more), with
    /// `rec`'s generation pinned by a [`ReadGuard`].
    pub(crate) fn read(engine: &Engine, rec: &Record, n: u32) -> Self {
        if rec.body_len == 0 || rec.chunks == 0 {
            return Self::none();
        }
        let asked = n.min(rec.chunks);
        let (chunks, error) = crate::engine::guarded("reading chunks", || {
            Ok(engine.read_chunks(rec.gen_id, 0, asked))
        })
        .unwrap_or_else(|e| (Vec::new(), Some(e)));
        FirstRead {
            asked,
            chunks,
            error,
        }
    }
}

/// The body of a [`FjallStore`](crate::FjallStore) hit.
///
/// Its first chunks are read together with the entry's record, the rest as it is polled: one at
/// a time on the polling task, or four at a time on tokio's blocking pool, read ahead while the
/// previous ones are handed out, as the store's [`ReadMode`](crate::ReadMode) decides (see
/// [Reads](crate#reads)). Each chunk's checksum is verified before its bytes are handed out,
/// so a body of any size is served with a few hundred KiB of memory at most. A chunk that is
/// missing or fails its checksum ends the body with an [`ErrorKind::Corrupt`] error: the bytes
/// already handed out are correct, and no wrong byte ever follows. Its
/// [`size_hint`](Body::size_hint) is exact. A read on the polling task takes a unit of tokio's
/// cooperative budget, so a task that reads a long body yields to others now and then.
///
/// While a body is alive its chunks stay on disk, even if the entry is overwritten, deleted or
/// evicted meanwhile; they are deleted when the body is dropped.
///
/// Polling a body needs a tokio runtime (with the blocking pool, as every multi- or
/// current-thread runtime has) whenever it reads on the blocking pool.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use std::time::SystemTime;
///
/// use bytes::Bytes;
/// use cachio_core::meta::{Meta, ResponseMeta};
/// use cachio_core::store::{Store, StoreWriter};
/// use cachio_fjall::FjallStore;
/// use http_body::Body;
/// use http_body_util::BodyExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let store = FjallStore::open(dir.path())?;
/// let now = SystemTime::now();
/// let meta = Arc::new(Meta::Response(ResponseMeta::new(
///     http::StatusCode::OK,
///     http::Version::HTTP_11,
///     http::HeaderMap::new(),
///     Vec::new(),
///     now,
///     now,
/// )));
/// let mut writer = store.begin("k")?;
/// writer.append(Bytes::from(vec![b'x'; 200_000]))?;
/// writer.commit(meta, None).await?;
///
/// let mut body = store.get("k").await?.expect("just committed").body;
/// assert_eq!(body.size_hint().exact(), Some(200_000));
/// let first = body.frame().await.unwrap()?.into_data().unwrap();
/// assert_eq!(first.len(), cachio_fjall::CHUNK_SIZE);
/// assert_eq!(body.size_hint().exact(), Some(200_000 - first.len() as u64));
/// let rest = body.collect().await?.to_bytes();
/// assert_eq!(first.len() + rest.len(), 200_000);
/// # Ok(())
/// # }
/// ```
pub struct FjallBody {
    /// Pins the generation; `None` once the body is done (or when it is empty).
    guard: Option<ReadGuard>,
    gen_id: u64,
    next: u32,
    total: u32,
    remaining: u64,
    ready: VecDeque<Bytes>,
    reading: Option<JoinHandle<(Vec<Bytes>, Option<StoreError>)>>,
    /// The error that follows the chunks in `ready`.
    error: Option<StoreError>,
    /// The key and record this body was read from, to remove the entry if a chunk is bad.
    origin: Option<(String, Record)>,
}

impl FjallBody {
    pub(crate) fn new(key: &str, rec: Record, guard: Option<ReadGuard>, first: FirstRead) -> Self {
        let mut body = FjallBody {
            guard,
            gen_id: rec.gen_id,
            next: 0,
            total: rec.chunks,
            remaining: rec.body_len,
            ready: VecDeque::new(),
            reading: None,
            error: None,
            origin: None,
        };
        if body.remaining == 0 {
            body.finish();
        } else {
            if body.guard.is_some() {
                // The chunks read with the record (and the error that ended them, reported
                // when the body reaches it, as if this body had read them itself).
                body.next = first.asked.min(body.total);
                body.ready.extend(first.chunks);
                body.error = first.error;
            }
            body.origin = Some((key.to_owned(), rec));
        }
        body
    }

    /// Reads the next chunk on the polling task, if the store reads inline now: `None` if it
    /// does not, `Pending` if the task has used up its cooperative budget.
    fn read_inline(&mut self, cx: &mut Context<'_>) -> Option<Poll<()>> {
        let engine = self.guard.as_ref()?.engine();
        let inline = engine.inline_read()?;
        let Poll::Ready(coop) = tokio::task::coop::poll_proceed(cx) else {
            return Some(Poll::Pending);
        };
        let n = READ_INLINE.min(self.total - self.next);
        let (chunks, error) = crate::engine::guarded("reading chunks", || {
            Ok(engine.read_chunks(self.gen_id, self.next, n))
        })
        .unwrap_or_else(|e| (Vec::new(), Some(e)));
        engine.inline_done(inline);
        coop.made_progress();
        self.next += n;
        self.ready.extend(chunks);
        self.error = error;
        Some(Poll::Ready(()))
    }

    /// Starts reading the next chunks on the blocking pool, if none are being read, some are
    /// left, and the store does not read inline now.
    fn read_ahead(&mut self) -> Result<(), StoreError> {
        if self.reading.is_some() || self.next >= self.total {
            return Ok(());
        }
        let Some(guard) = &self.guard else {
            return Ok(());
        };
        if guard.engine().inline_read().is_some() {
            return Ok(());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            StoreError::new(
                ErrorKind::Unavailable,
                "a cachio-fjall body must be polled inside a tokio runtime",
            )
        })?;
        let engine = Arc::clone(guard.engine());
        let (gen_id, first) = (self.gen_id, self.next);
        let n = READ_AHEAD.min(self.total - self.next);
        self.next += n;
        self.reading = Some(runtime.spawn_blocking(move || {
            crate::engine::guarded(
                "reading chunks",
                || Ok(engine.read_chunks(gen_id, first, n)),
            )
            .unwrap_or_else(|e| (Vec::new(), Some(e)))
        }));
        Ok(())
    }

    /// Ends the body: releases its pin on the chunks.
    fn finish(&mut self) {
        self.guard = None;
        self.reading = None;
        self.ready.clear();
        self.next = self.total;
    }

    fn fail(&mut self, e: StoreError) -> Poll<Option<Result<Frame<Bytes>, StoreError>>> {
        if let (Some(guard), Some((key, record))) = (&self.guard, self.origin.take()) {
            tracing::warn!(
                key,
                error = %e,
                "cachio-fjall: a stored body is damaged, removing its entry"
            );
            if e.kind() == ErrorKind::Corrupt || e.kind() == ErrorKind::UnknownFormat {
                guard.engine().corrupt.fetch_add(1, Ordering::Relaxed);
                guard.engine().send_hint(Job::RemoveIfSame { key, record });
            }
        } else {
            tracing::warn!(error = %e, "cachio-fjall: a body failed while streaming");
        }
        self.finish();
        self.error = None;
        self.remaining = 0;
        Poll::Ready(Some(Err(e)))
    }
}

impl Body for FjallBody {
    type Data = Bytes;
    type Error = StoreError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StoreError>>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.ready.pop_front() {
                let n = chunk.len() as u64;
                if n > this.remaining {
                    return this.fail(record::corrupt("the body is longer than its record says"));
                }
                this.remaining -= n;
                if this.remaining == 0 {
                    this.finish();
                } else if this.ready.is_empty()
                    && this.error.is_none()
                    && let Err(e) = this.read_ahead()
                {
                    this.error = Some(e);
                }
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            if let Some(e) = this.error.take() {
                return this.fail(e);
            }
            if this.remaining == 0 {
                this.finish();
                return Poll::Ready(None);
            }
            if let Some(reading) = this.reading.as_mut() {
                let read = match Pin::new(reading).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(read) => read,
                };
                this.reading = None;
                match read {
                    Ok((chunks, error)) => {
                        this.ready.extend(chunks);
                        this.error = error;
                    }
                    Err(e) => {
                        return this.fail(StoreError::new(
                            ErrorKind::Other,
                            format!("a chunk read failed: {e}"),
                        ));
                    }
                }
                continue;
            }
            if this.next >= this.total || this.guard.is_none() {
                return this.fail(record::corrupt("the body is shorter than its record says"));
            }
            match this.read_inline(cx) {
                Some(Poll::Ready(())) => {}
                Some(Poll::Pending) => return Poll::Pending,
                None => {
                    if let Err(e) = this.read_ahead() {
                        return this.fail(e);
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

impl fmt::Debug for FjallBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FjallBody")
            .field("generation", &self.gen_id)
            .field("next_chunk", &self.next)
            .field("chunks", &self.total)
            .field("remaining", &self.remaining)
            .finish()
    }
}
