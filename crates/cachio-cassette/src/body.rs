//! The body of a replayed entry, read from its file on a blocking thread in bounded chunks.

use std::fs::File;
use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use cachio_core::store::{ErrorKind, StoreError};
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

/// The size of the chunks a body is read in.
const CHUNK: usize = 64 * 1024;
/// The chunks read ahead of the caller: memory per body is at most this many chunks.
const AHEAD: usize = 4;

/// The body of an entry read from a [`Cassette`](crate::Cassette): its body file, streamed in
/// 64 KiB chunks, or the text of an [`Unmatched`](crate::Unmatched) answer.
///
/// # Example
///
/// ```
/// use cachio_cassette::Cassette;
/// use cachio_core::store::{Store, StoreWriter};
/// use http_body_util::BodyExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let cassette = Cassette::builder(dir.path()).open()?;
/// let mut w = cassette.begin("http://example.com/")?;
/// w.append("hello".into())?;
/// # let now = std::time::SystemTime::now();
/// let meta = cachio_core::meta::Meta::Response(cachio_core::meta::ResponseMeta::new(
///     http::StatusCode::OK,
///     http::Version::HTTP_11,
///     http::HeaderMap::new(),
///     Vec::new(),
///     now,
///     now,
/// ));
/// w.commit(std::sync::Arc::new(meta), None).await?;
/// let hit = cassette.get("http://example.com/").await?.expect("recorded");
/// let body: cachio_cassette::CassetteBody = hit.body;
/// assert_eq!(body.collect().await?.to_bytes(), "hello");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct CassetteBody {
    state: State,
    remaining: u64,
}

#[derive(Debug)]
enum State {
    /// Opened, not read yet: the reading starts at the first poll.
    File(Option<File>),
    Reading(mpsc::Receiver<Result<Bytes, StoreError>>),
    Bytes(Option<Bytes>),
}

impl CassetteBody {
    pub(crate) fn file(file: File, len: u64) -> Self {
        Self {
            state: State::File(Some(file)),
            remaining: len,
        }
    }

    pub(crate) fn bytes(bytes: Bytes) -> Self {
        Self {
            remaining: bytes.len() as u64,
            state: State::Bytes(Some(bytes)),
        }
    }

    pub(crate) fn empty() -> Self {
        Self::bytes(Bytes::new())
    }
}

fn corrupt(msg: &'static str) -> StoreError {
    StoreError::new(ErrorKind::Corrupt, msg)
}

/// Reads `len` bytes of `file` and sends them on `tx` in chunks; stops when the receiver goes.
fn read_file(mut file: File, mut len: u64, tx: mpsc::Sender<Result<Bytes, StoreError>>) {
    while len > 0 {
        let n = usize::try_from(len).map_or(CHUNK, |l| l.min(CHUNK));
        let mut buf = BytesMut::zeroed(n);
        let chunk = match file.read(&mut buf) {
            Ok(0) => Err(corrupt("the body file is shorter than recorded")),
            Ok(read) => {
                buf.truncate(read);
                len -= read as u64;
                Ok(buf.freeze())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => Err(StoreError::new(ErrorKind::Io, e)),
        };
        let failed = chunk.is_err();
        if tx.blocking_send(chunk).is_err() || failed {
            return;
        }
    }
}

impl http_body::Body for CassetteBody {
    type Data = Bytes;
    type Error = StoreError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StoreError>>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Bytes(b) => {
                    this.remaining = 0;
                    return Poll::Ready(
                        b.take()
                            .filter(|b| !b.is_empty())
                            .map(|b| Ok(Frame::data(b))),
                    );
                }
                State::File(file) => {
                    let Some(file) = file.take().filter(|_| this.remaining > 0) else {
                        this.state = State::Bytes(None);
                        continue;
                    };
                    let Ok(rt) = tokio::runtime::Handle::try_current() else {
                        this.state = State::Bytes(None);
                        return Poll::Ready(Some(Err(StoreError::new(
                            ErrorKind::Unavailable,
                            "a cassette body is read inside a tokio runtime",
                        ))));
                    };
                    let (tx, rx) = mpsc::channel(AHEAD);
                    let len = this.remaining;
                    rt.spawn_blocking(move || read_file(file, len, tx));
                    this.state = State::Reading(rx);
                }
                State::Reading(rx) => {
                    return match rx.poll_recv(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(Some(Ok(chunk))) => {
                            this.remaining = this.remaining.saturating_sub(chunk.len() as u64);
                            Poll::Ready(Some(Ok(Frame::data(chunk))))
                        }
                        Poll::Ready(Some(Err(e))) => {
                            this.state = State::Bytes(None);
                            Poll::Ready(Some(Err(e)))
                        }
                        Poll::Ready(None) if this.remaining > 0 => {
                            this.state = State::Bytes(None);
                            Poll::Ready(Some(Err(corrupt("the body file ended early"))))
                        }
                        Poll::Ready(None) => Poll::Ready(None),
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && !matches!(self.state, State::Bytes(Some(ref b)) if !b.is_empty())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
