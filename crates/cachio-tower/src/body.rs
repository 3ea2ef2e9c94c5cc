use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use cachio_core::Meta;
use cachio_core::store::{Store, StoreWriter};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::config::Writes;
use crate::outcome::Signal;
use tokio::task::JoinHandle;

/// The error type of [`ResponseBody`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pin_project! {
    /// The body of a response that passed the cache: streamed from the store on a hit, from the
    /// origin on a miss (and then written to the store as it passes), or empty.
    pub struct ResponseBody<B, St: Store> {
        #[pin]
        kind: Kind<B, St>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B, St: Store> {
        Cached { body: St::Body },
        // A stored body cut to one range: `skip` bytes dropped, then `remain` bytes passed on.
        Ranged { body: St::Body, skip: u64, remain: u64 },
        Tee {
            #[pin]
            inner: B,
            // Boxed: a hit's response (which carries this type) stays small to move.
            capture: Option<Box<Capture<St>>>,
            committing: Option<JoinHandle<()>>,
        },
        Passthrough { #[pin] inner: B },
        Empty,
    }
}

/// What a tee needs to write the body it sees and commit it at the end.
pub(crate) struct Capture<St: Store> {
    pub(crate) writer: St::Writer,
    pub(crate) written: u64,
    pub(crate) limit: u64,
    /// `Content-Length`, when the response declared one: the body must match it to be stored.
    pub(crate) expected: Option<u64>,
    pub(crate) commit: Box<dyn FnOnce(St::Writer, u64, Signal) -> CommitFuture + Send>,
    /// Says whether the body got stored; dropped with an abandoned capture ("not stored").
    pub(crate) signal: Signal,
    /// The cache's running writes, which the commit counts in.
    pub(crate) writes: Arc<Writes>,
}

pub(crate) type CommitFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

impl<B, St: Store> ResponseBody<B, St> {
    pub(crate) fn cached(body: St::Body) -> Self {
        Self {
            kind: Kind::Cached { body },
        }
    }

    /// The `len` bytes of a stored body that start at `start`.
    pub(crate) fn ranged(body: St::Body, start: u64, len: u64) -> Self {
        Self {
            kind: Kind::Ranged {
                body,
                skip: start,
                remain: len,
            },
        }
    }

    pub(crate) fn passthrough(inner: B) -> Self {
        Self {
            kind: Kind::Passthrough { inner },
        }
    }

    pub(crate) fn empty() -> Self {
        Self { kind: Kind::Empty }
    }

    /// Whether this body is being written to the store as it passes (or is being committed).
    pub(crate) fn is_capturing(&self) -> bool {
        matches!(
            &self.kind,
            Kind::Tee { capture, committing, .. } if capture.is_some() || committing.is_some()
        )
    }

    pub(crate) fn tee(inner: B, capture: Capture<St>) -> Self
    where
        B: Body,
    {
        let mut this = Self {
            kind: Kind::Tee {
                inner,
                capture: Some(Box::new(capture)),
                committing: None,
            },
        };
        // A body that is already complete (no frames at all) is committed at once.
        if let Kind::Tee {
            inner,
            capture,
            committing,
        } = &mut this.kind
            && inner.is_end_stream()
        {
            *committing = start_commit(capture.take());
        }
        this
    }
}

/// Checks a completed capture and commits it on its own task, so the commit finishes even if the
/// caller never polls again.
fn start_commit<St: Store>(capture: Option<Box<Capture<St>>>) -> Option<JoinHandle<()>> {
    let c = *capture?;
    if c.expected.is_some_and(|n| n != c.written) {
        tracing::debug!(expected = ?c.expected, written = c.written, "body length differs from Content-Length; not stored");
        return None;
    }
    let running = c.writes.start();
    let fut = (c.commit)(c.writer, c.written, c.signal);
    Some(tokio::spawn(async move {
        fut.await;
        drop(running);
    }))
}

impl<B, St> Body for ResponseBody<B, St>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    St: Store,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Cached { body } => Pin::new(body).poll_frame(cx).map_err(Into::into),
            KindProj::Ranged { body, skip, remain } => poll_ranged::<St>(body, skip, remain, cx),
            KindProj::Passthrough { inner } => inner.poll_frame(cx).map_err(Into::into),
            KindProj::Empty => Poll::Ready(None),
            KindProj::Tee {
                inner,
                capture,
                committing,
            } => poll_tee(inner, capture, committing, cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Cached { body } => body.is_end_stream(),
            Kind::Ranged { remain, .. } => *remain == 0,
            Kind::Passthrough { inner } => inner.is_end_stream(),
            Kind::Empty => true,
            Kind::Tee {
                inner, committing, ..
            } => committing.is_none() && inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Cached { body } => body.size_hint(),
            Kind::Ranged { remain, .. } => SizeHint::with_exact(*remain),
            Kind::Passthrough { inner } | Kind::Tee { inner, .. } => inner.size_hint(),
            Kind::Empty => SizeHint::with_exact(0),
        }
    }
}

/// The next part of a stored body cut to one range: `skip` bytes dropped, then `remain` passed on.
fn poll_ranged<St: Store>(
    body: &mut St::Body,
    skip: &mut u64,
    remain: &mut u64,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    loop {
        if *remain == 0 {
            return Poll::Ready(None);
        }
        let frame = match ready!(Pin::new(&mut *body).poll_frame(cx)) {
            None => {
                // Shorter than its length said: end with an error, never a short 206.
                *remain = 0;
                return Poll::Ready(Some(Err("stored body ended before the range".into())));
            }
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            Some(Ok(frame)) => frame,
        };
        // Trailers belong to the whole body; a part has none.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let n = data.len() as u64;
        if *skip >= n {
            *skip -= n;
            continue;
        }
        let from = *skip as usize;
        let to = from + (n - *skip).min(*remain) as usize;
        *skip = 0;
        *remain -= (to - from) as u64;
        return Poll::Ready(Some(Ok(Frame::data(data.slice(from..to)))));
    }
}

/// The next frame of an origin's body, written to the store as it passes (the tee of a miss).
fn poll_tee<B, St>(
    mut inner: Pin<&mut B>,
    capture: &mut Option<Box<Capture<St>>>,
    committing: &mut Option<JoinHandle<()>>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    St: Store,
{
    if let Some(handle) = committing {
        // The body is complete: wait for the commit, so a caller that reads to the end
        // finds the entry in the cache.
        let _ = ready!(Pin::new(handle).poll(cx));
        *committing = None;
        return Poll::Ready(None);
    }
    // A store that has fallen behind sets the pace: the next chunk is pulled from the
    // origin only when it can take it (a store that cannot keep up at all fails, and
    // the body streams on without being stored).
    if let Some(c) = capture.as_mut() {
        match c.writer.poll_ready(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "store gave up on a write; not stored");
                *capture = None;
            }
            Poll::Ready(Ok(())) => {}
        }
    }
    match ready!(inner.as_mut().poll_frame(cx)) {
        None => {
            if let Some(handle) = start_commit(capture.take()) {
                *committing = Some(handle);
                if let Some(handle) = committing {
                    let _ = ready!(Pin::new(handle).poll(cx));
                }
                *committing = None;
            }
            Poll::Ready(None)
        }
        Some(Err(e)) => {
            // An origin that fails mid-body leaves no entry.
            if capture.take().is_some() {
                tracing::debug!("origin body failed; entry abandoned");
            }
            Poll::Ready(Some(Err(e.into())))
        }
        Some(Ok(frame)) => {
            if let Some(data) = frame.data_ref()
                && let Some(c) = capture.as_mut()
            {
                c.written += data.len() as u64;
                if c.written > c.limit {
                    tracing::debug!(
                        limit = c.limit,
                        "body exceeds the object size limit; not stored"
                    );
                    *capture = None;
                } else if let Err(e) = c.writer.append(data.clone()) {
                    tracing::debug!(error = %e, "store refused a chunk; not stored");
                    *capture = None;
                }
            } else if frame.is_trailers() && capture.take().is_some() {
                // An entry holds a head and a body: a response with trailer fields would be
                // served without them, so it is passed on and not stored.
                tracing::debug!("response has trailer fields; not stored");
            }
            if inner.is_end_stream() {
                *committing = start_commit(capture.take());
            }
            Poll::Ready(Some(Ok(frame)))
        }
    }
}

impl<B, St: Store> fmt::Debug for ResponseBody<B, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Cached { .. } => "Cached",
            Kind::Ranged { .. } => "Ranged",
            Kind::Tee { .. } => "Tee",
            Kind::Passthrough { .. } => "Passthrough",
            Kind::Empty => "Empty",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

/// Commits a writer with its metadata; used by [`Capture::commit`] closures.
pub(crate) async fn commit_entry<W: StoreWriter>(
    writer: W,
    meta: Arc<Meta>,
    ttl: Option<Duration>,
    key: &str,
) -> bool {
    match writer.commit(meta, ttl).await {
        Ok(()) => true,
        // A purge on another node since the request went out: expected, and counted by the store.
        Err(e) if e.kind() == cachio_core::store::ErrorKind::Invalidated => {
            tracing::debug!(key, error = %e, "not stored: invalidated since it was requested");
            false
        }
        Err(e) => {
            tracing::warn!(key, error = %e, "cache store commit failed");
            false
        }
    }
}
