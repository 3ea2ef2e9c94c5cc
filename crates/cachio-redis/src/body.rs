//! The body of a hit: inline bytes, or chunks fetched one ahead of the one being sent.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use cachio_core::store::{ErrorKind, StoreError};
use http_body::{Body, Frame, SizeHint};
use tokio::task::JoinHandle;

use crate::CHUNK_SIZE;
use crate::conn::{Core, Shared};
use crate::record::Names;
use crate::scripts::{self, millis, run_script};

/// Chunk fetches in flight per body: the one to send next and one more.
const READ_AHEAD: usize = 2;

/// The body of a [`RedisStore`](crate::RedisStore) hit, streamed chunk by chunk: at most
/// about three chunks of it are in memory at a time, whatever its size. Each chunk is checked
/// against its length and CRC-32; a chunk that is missing or wrong ends the body with an error.
///
/// # Example
///
/// ```no_run
/// // Needs a Redis server, so it is compiled but not run by `cargo test`.
/// use cachio_core::store::Store;
/// use http_body::Body;
/// use http_body_util::BodyExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = cachio_redis::RedisStore::builder("redis://127.0.0.1/").build()?;
/// if let Some(hit) = store.get("https://example.com/big.iso").await? {
///     let mut body = hit.body;
///     println!("{:?} bytes", body.size_hint().exact());
///     while let Some(frame) = body.frame().await {
///         let chunk = frame?.into_data().unwrap_or_default();
///         // ... send `chunk` on ...
///         # let _ = chunk;
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct RedisBody {
    inner: Inner,
}

enum Inner {
    Inline(Option<Bytes>),
    Chunks(Box<Chunked>),
}

struct Chunked {
    shared: Arc<Shared>,
    names: Names,
    generation: u64,
    len: u64,
    crcs: Vec<u32>,
    /// The next chunk to start fetching.
    next_fetch: u32,
    /// The next chunk to hand out.
    next_yield: u32,
    remaining: u64,
    inflight: VecDeque<JoinHandle<Result<Option<Bytes>, StoreError>>>,
    done: bool,
}

impl RedisBody {
    pub(crate) fn inline(body: Bytes) -> Self {
        RedisBody {
            inner: Inner::Inline((!body.is_empty()).then_some(body)),
        }
    }

    pub(crate) fn chunked(
        shared: Arc<Shared>,
        names: Names,
        generation: u64,
        len: u64,
        crcs: Vec<u32>,
    ) -> Self {
        let mut c = Chunked {
            shared,
            names,
            generation,
            len,
            crcs,
            next_fetch: 0,
            next_yield: 0,
            remaining: len,
            inflight: VecDeque::with_capacity(READ_AHEAD),
            done: false,
        };
        c.fill();
        RedisBody {
            inner: Inner::Chunks(Box::new(c)),
        }
    }
}

impl Chunked {
    fn count(&self) -> u32 {
        self.crcs.len() as u32
    }

    /// The length chunk `index` must have.
    fn expected_len(&self, index: u32) -> usize {
        let start = u64::from(index) * CHUNK_SIZE as u64;
        (self.len - start).min(CHUNK_SIZE as u64) as usize
    }

    /// Starts fetches until `READ_AHEAD` are in flight.
    fn fill(&mut self) {
        while self.inflight.len() < READ_AHEAD && self.next_fetch < self.count() {
            let core = Arc::clone(&self.shared.core);
            let key = self.names.chunk(self.generation, self.next_fetch);
            // On the current runtime's connection when it has one, else on the store's.
            let fetch = match core.local_conn() {
                Some(mut c) => tokio::spawn(async move {
                    core.exec("GET chunk", redis::cmd("GET").arg(&key).query_async(&mut c))
                        .await
                }),
                None => self.shared.runtime.handle.spawn(async move {
                    let mut c = core.conn.clone();
                    core.exec("GET chunk", redis::cmd("GET").arg(&key).query_async(&mut c))
                        .await
                }),
            };
            self.inflight.push_back(fetch);
            self.next_fetch += 1;
        }
    }

    /// Ends the body after an error; a missing or corrupt chunk also removes the entry.
    fn fail(&mut self, e: StoreError) -> StoreError {
        self.done = true;
        for h in self.inflight.drain(..) {
            h.abort();
        }
        if e.kind() == ErrorKind::Corrupt {
            let core: Arc<Core> = Arc::clone(&self.shared.core);
            core.counters.corrupt.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, key = %self.names.record(), "removing a Redis entry with a bad chunk");
            let record = self.names.record();
            let generation = self.generation.to_be_bytes().to_vec();
            self.shared.runtime.handle.spawn(async move {
                let grace = millis(core.settings.retired_grace).to_string().into_bytes();
                let _ = run_script(
                    &core,
                    "delete",
                    &scripts::DELETE,
                    &[record],
                    &[grace, generation],
                )
                .await;
            });
        }
        e
    }

    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StoreError>>> {
        if self.done || self.next_yield >= self.count() {
            return Poll::Ready(None);
        }
        self.fill();
        let Some(front) = self.inflight.front_mut() else {
            return Poll::Ready(None);
        };
        let result = match Pin::new(front).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        self.inflight.pop_front();
        let index = self.next_yield;
        let chunk = match result {
            Err(e) => Err(StoreError::new(
                ErrorKind::Unavailable,
                format!("reading chunk {index} stopped: {e}"),
            )),
            Ok(Err(e)) => Err(e),
            Ok(Ok(None)) => Err(StoreError::new(
                ErrorKind::Corrupt,
                format!("chunk {index} is missing"),
            )),
            Ok(Ok(Some(bytes))) => {
                if bytes.len() != self.expected_len(index) {
                    Err(StoreError::new(
                        ErrorKind::Corrupt,
                        format!("chunk {index} has {} bytes", bytes.len()),
                    ))
                } else if crc32fast::hash(&bytes) != self.crcs[index as usize] {
                    Err(StoreError::new(
                        ErrorKind::Corrupt,
                        format!("chunk {index} fails its checksum"),
                    ))
                } else {
                    Ok(bytes)
                }
            }
        };
        match chunk {
            Ok(bytes) => {
                self.next_yield += 1;
                self.remaining -= bytes.len() as u64;
                self.fill();
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Err(e) => Poll::Ready(Some(Err(self.fail(e)))),
        }
    }
}

impl Drop for Chunked {
    fn drop(&mut self) {
        // A body dropped before its end (a client gone, a hit not used): stop its read-ahead.
        for h in &self.inflight {
            h.abort();
        }
    }
}

impl Body for RedisBody {
    type Data = Bytes;
    type Error = StoreError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StoreError>>> {
        match &mut self.get_mut().inner {
            Inner::Inline(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Inner::Chunks(c) => c.poll_chunk(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Inline(b) => b.is_none(),
            Inner::Chunks(c) => c.done || c.next_yield >= c.count(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Inline(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Chunks(c) if c.done => SizeHint::with_exact(0),
            Inner::Chunks(c) => SizeHint::with_exact(c.remaining),
        }
    }
}

impl fmt::Debug for RedisBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Inline(b) => f
                .debug_struct("RedisBody")
                .field("inline", &b.as_ref().map_or(0, Bytes::len))
                .finish(),
            Inner::Chunks(c) => f
                .debug_struct("RedisBody")
                .field("len", &c.len)
                .field("chunks", &c.count())
                .field("next", &c.next_yield)
                .finish(),
        }
    }
}
