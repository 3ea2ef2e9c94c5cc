//! Interim (1xx) responses from the origin, forwarded to the client (RFC 9110 §15.2: a proxy
//! forwards the 1xx responses it did not ask for itself).
//!
//! hyper's server writes final responses only, so the gateway writes a forwarded 1xx itself. Each
//! HTTP/1.1 connection's I/O is an [`InterimIo`], which keeps the bytes of the interim responses
//! of the request in flight and writes them to the socket when hyper flushes the connection. hyper
//! flushes each time the connection's task runs, and a forwarded interim response wakes that task,
//! so it reaches the client while the origin is still working on the final response. Like a final
//! response, it loses its hop-by-hop fields and gains `Via`.
//!
//! Two rules keep the byte stream a valid HTTP/1.1 exchange:
//!
//! - the handling of a request waits ([`Interim::finish`]) until its interim responses have been
//!   written before it returns the final response, so they always precede it; and
//! - at that point it stops taking them: an interim response that arrives later (say, to a
//!   background revalidation the request started) is dropped, never written between two
//!   responses.
//!
//! Only HTTP/1.1 requests get interim responses: an HTTP/1.0 client must not receive them
//! (RFC 9110 §15.2), and hyper cannot send them on HTTP/2. `100 Continue` is not forwarded, since
//! hyper's server answers `Expect: 100-continue` itself, nor is `101`, as the gateway does not
//! proxy upgrades. The interim responses of one request are bounded ([`MAX_PENDING`]); past that
//! they are dropped.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes of interim responses held for one connection: an origin that sends more
/// before its final response has the rest dropped.
pub(crate) const MAX_PENDING: usize = 64 * 1024;

/// One connection's interim responses, shared by its I/O and its requests.
#[derive(Default)]
struct Shared {
    /// Whether a request may forward, or bytes wait: the I/O looks at the lock only then.
    active: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The request whose interim responses are taken (0: none).
    current: u64,
    /// The number the next request gets.
    last: u64,
    /// Interim responses not yet written.
    pending: BytesMut,
    /// The connection's task, to wake when there is something to write.
    flusher: Option<Waker>,
    /// The request waiting until `pending` is written.
    waiter: Option<Waker>,
    /// Writing failed: the connection is lost, nothing more is kept.
    failed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while it was held.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection's handle, put in each request's extensions by [`crate::serve`].
#[derive(Clone)]
pub(crate) struct Connection(Arc<Shared>);

impl Connection {
    /// Starts taking the interim responses of a new request, in place of any earlier one; each
    /// gets `via` appended (RFC 9110 §7.6.3).
    pub(crate) fn begin(&self, via: HeaderValue) -> Interim {
        let mut st = self.0.lock();
        st.last += 1;
        st.current = st.last;
        st.pending.clear();
        self.0.active.store(true, Ordering::Release);
        Interim {
            sender: Sender {
                shared: self.0.clone(),
                id: st.current,
                via,
            },
        }
    }
}

/// Hands interim responses of one request to its connection; put in the request's extensions
/// for the origin client.
#[derive(Clone)]
pub(crate) struct Sender {
    shared: Arc<Shared>,
    id: u64,
    via: HeaderValue,
}

impl Sender {
    /// Queues an interim response from the origin for the client, unless its request has
    /// finished or it is one that is not forwarded.
    pub(crate) fn forward(&self, status: StatusCode, headers: &HeaderMap) {
        if !status.is_informational()
            || status == StatusCode::CONTINUE
            || status == StatusCode::SWITCHING_PROTOCOLS
        {
            return;
        }
        let mut st = self.shared.lock();
        if st.current != self.id || st.failed {
            return;
        }
        let mut headers = headers.clone();
        crate::hop::strip(&mut headers);
        headers.append(http::header::VIA, self.via.clone());
        let start = st.pending.len();
        encode(&mut st.pending, status, &headers);
        if st.pending.len() > MAX_PENDING {
            st.pending.truncate(start);
            tracing::debug!(
                status = status.as_u16(),
                "interim responses over the limit: dropped"
            );
            return;
        }
        if let Some(w) = &st.flusher {
            w.wake_by_ref();
        }
    }
}

/// The interim responses of one request in flight. Dropping it without [`Interim::finish`]
/// discards what was not written.
pub(crate) struct Interim {
    sender: Sender,
}

impl Interim {
    /// The handle for the origin client.
    pub(crate) fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// Stops taking interim responses and waits until those taken are written (or writing
    /// failed). Call it before the final response goes to hyper.
    pub(crate) async fn finish(self) {
        let shared = &self.sender.shared;
        let id = self.sender.id;
        poll_fn(|cx| {
            let mut st = shared.lock();
            if st.current == id {
                st.current = 0;
            }
            if st.pending.is_empty() || st.failed {
                return Poll::Ready(());
            }
            st.waiter = Some(cx.waker().clone());
            if let Some(w) = &st.flusher {
                w.wake_by_ref();
            }
            Poll::Pending
        })
        .await;
    }
}

impl Drop for Interim {
    fn drop(&mut self) {
        let shared = &self.sender.shared;
        let mut st = shared.lock();
        if st.current == self.sender.id {
            st.current = 0;
            st.pending.clear();
        }
        if st.current == 0 && st.pending.is_empty() {
            shared.active.store(false, Ordering::Release);
        }
    }
}

/// Writes an interim response head: status line, fields, empty line.
fn encode(out: &mut BytesMut, status: StatusCode, headers: &HeaderMap) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A connection's I/O that writes the interim responses its requests forward, when hyper
/// flushes it.
pub(crate) struct InterimIo<T> {
    inner: T,
    shared: Arc<Shared>,
}

impl<T> InterimIo<T> {
    /// Wraps `inner`, and gives the handle that requests on it forward through.
    pub(crate) fn new(inner: T) -> (Self, Connection) {
        let shared = Arc::new(Shared::default());
        (
            Self {
                inner,
                shared: shared.clone(),
            },
            Connection(shared),
        )
    }
}

impl<T: AsyncWrite + Unpin> InterimIo<T> {
    /// Writes what is pending. hyper calls `poll_flush` only once its own buffer is written,
    /// so nothing it wrote earlier is overtaken.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.shared.active.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        let mut st = self.shared.lock();
        if !st.flusher.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.flusher = Some(cx.waker().clone());
        }
        while !st.pending.is_empty() && !st.failed {
            match Pin::new(&mut self.inner).poll_write(cx, st.pending.chunk()) {
                Poll::Ready(Ok(0)) => {
                    st.failed = true;
                    st.pending.clear();
                }
                Poll::Ready(Ok(n)) => st.pending.advance(n),
                Poll::Ready(Err(e)) => {
                    st.failed = true;
                    st.pending.clear();
                    if let Some(w) = st.waiter.take() {
                        w.wake();
                    }
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        if let Some(w) = st.waiter.take() {
            w.wake();
        }
        if st.current == 0 {
            self.shared.active.store(false, Ordering::Release);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for InterimIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for InterimIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    fn hints() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append("link", HeaderValue::from_static("</a.css>; rel=preload"));
        h.append("link", HeaderValue::from_static("</b.js>; rel=preload"));
        h.append("connection", HeaderValue::from_static("x-hop"));
        h.append("x-hop", HeaderValue::from_static("1"));
        h
    }

    /// Flushes `io` as hyper does, and gives what reached the other end.
    async fn flushed(io: &mut InterimIo<DuplexStream>, far: &mut DuplexStream) -> String {
        io.flush().await.unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(20), far.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn rfc9110_15_2_interim_responses_are_written_on_flush_without_hop_by_hop_fields() {
        let (near, mut far) = tokio::io::duplex(1 << 16);
        let (mut io, conn) = InterimIo::new(near);
        let interim = conn.begin(HeaderValue::from_static("1.1 cachio"));
        let sender = interim.sender();
        sender.forward(StatusCode::EARLY_HINTS, &hints());
        sender.forward(StatusCode::PROCESSING, &HeaderMap::new());
        // Not forwarded: 100 (hyper's server answers `Expect` itself) and final statuses.
        sender.forward(StatusCode::CONTINUE, &HeaderMap::new());
        sender.forward(StatusCode::OK, &HeaderMap::new());
        assert_eq!(
            flushed(&mut io, &mut far).await,
            "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\nlink: </b.js>; rel=preload\r\n\
             via: 1.1 cachio\r\n\r\nHTTP/1.1 102 Processing\r\nvia: 1.1 cachio\r\n\r\n"
        );
        interim.finish().await;
        assert!(!io.shared.active.load(Ordering::Acquire));
    }

    #[tokio::test]
    async fn nothing_is_taken_after_the_request_finished() {
        let (near, mut far) = tokio::io::duplex(1 << 16);
        let (mut io, conn) = InterimIo::new(near);
        let interim = conn.begin(HeaderValue::from_static("1.1 cachio"));
        let late = interim.sender();
        interim.finish().await;
        // A background revalidation the request started gets a 103 after the final response.
        late.forward(StatusCode::EARLY_HINTS, &hints());
        assert_eq!(flushed(&mut io, &mut far).await, "");
        // The next request's own are written; the earlier request's sender stays shut out.
        let next = conn.begin(HeaderValue::from_static("1.1 cachio"));
        next.sender()
            .forward(StatusCode::EARLY_HINTS, &HeaderMap::new());
        late.forward(StatusCode::PROCESSING, &HeaderMap::new());
        assert_eq!(
            flushed(&mut io, &mut far).await,
            "HTTP/1.1 103 Early Hints\r\nvia: 1.1 cachio\r\n\r\n"
        );
        next.finish().await;
    }

    #[tokio::test]
    async fn a_request_dropped_before_its_final_response_leaves_nothing_to_write() {
        let (near, mut far) = tokio::io::duplex(1 << 16);
        let (mut io, conn) = InterimIo::new(near);
        let interim = conn.begin(HeaderValue::from_static("1.1 cachio"));
        interim.sender().forward(StatusCode::EARLY_HINTS, &hints());
        drop(interim);
        assert!(!io.shared.active.load(Ordering::Acquire));
        assert_eq!(flushed(&mut io, &mut far).await, "");
    }

    #[tokio::test]
    async fn interim_responses_past_the_limit_are_dropped() {
        let (near, _far) = tokio::io::duplex(1 << 20);
        let (io, conn) = InterimIo::new(near);
        let interim = conn.begin(HeaderValue::from_static("1.1 cachio"));
        let mut big = HeaderMap::new();
        big.insert("x-big", HeaderValue::from_bytes(&[b'a'; 8000]).unwrap());
        for _ in 0..20 {
            interim.sender().forward(StatusCode::EARLY_HINTS, &big);
        }
        let pending = io.shared.lock().pending.len();
        assert!(pending <= MAX_PENDING, "{pending}");
        assert!(pending > MAX_PENDING - 8100, "{pending}");
    }

    #[tokio::test]
    async fn finish_waits_until_the_connection_has_written_them() {
        let (near, mut far) = tokio::io::duplex(1 << 16);
        let (mut io, conn) = InterimIo::new(near);
        let interim = conn.begin(HeaderValue::from_static("1.1 cachio"));
        interim.sender().forward(StatusCode::EARLY_HINTS, &hints());
        let finish = tokio::spawn(interim.finish());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !finish.is_finished(),
            "finished before the bytes were written"
        );
        io.flush().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), finish)
            .await
            .expect("finish completes once written")
            .unwrap();
        let mut head = [0u8; 12];
        far.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 103");
    }

    #[tokio::test]
    async fn a_failed_write_releases_the_request() {
        let (near, far) = tokio::io::duplex(1 << 16);
        let (mut io, conn) = InterimIo::new(near);
        let interim = conn.begin(HeaderValue::from_static("1.1 cachio"));
        interim.sender().forward(StatusCode::EARLY_HINTS, &hints());
        drop(far);
        assert!(io.flush().await.is_err());
        tokio::time::timeout(Duration::from_secs(5), interim.finish())
            .await
            .expect("finish does not wait for a lost connection");
    }
}
