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
use crate::fill::{Fill, Follower, finish_in_background};
use crate::outcome::Signal;
use crate::service::OriginBody;
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
        Tee { tee: Tee<B, St> },
        // A fill in flight, read by a request that waits on it.
        Follow { follower: Box<Follower<St>> },
        Passthrough { #[pin] inner: B },
        Empty,
    }
}

/// An origin's body on its way to the caller and into the store. The body is boxed so that a
/// caller that goes away can hand it to a task that finishes the fill
/// ([`CacheLayer::fill_after_disconnect`](crate::CacheLayer::fill_after_disconnect)).
struct Tee<B, St: Store> {
    /// `None` once the body ended, failed, or went to a task of its own.
    inner: Option<Pin<Box<B>>>,
    // Boxed: a hit's response (which carries this type) stays small to move.
    capture: Option<Box<Capture<St>>>,
    committing: Option<JoinHandle<()>>,
    /// The waiters' window, when requests wait on this fetch.
    fill: Option<Arc<Fill>>,
    /// Hands the rest of the body to a task when the caller drops it mid-way; `None` in that
    /// task (and the caller's tee keeps none once it has handed over).
    detach: Option<fn(&mut Tee<B, St>)>,
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
    /// The largest body finished after the caller went away, when no request waits on it.
    pub(crate) after_disconnect: u64,
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

    /// A waiter's body, read from the fill it waits on.
    pub(crate) fn follow(follower: Follower<St>) -> Self {
        Self {
            kind: Kind::Follow {
                follower: Box::new(follower),
            },
        }
    }

    /// Whether this body is being written to the store as it passes (or is being committed).
    pub(crate) fn is_capturing(&self) -> bool {
        matches!(
            &self.kind,
            Kind::Tee { tee } if tee.capture.is_some() || tee.committing.is_some()
        )
    }

    /// The tee of a miss: `inner` passes to the caller, and into `capture` and the waiters'
    /// `fill` as it does.
    pub(crate) fn tee(inner: B, capture: Capture<St>, fill: Option<Arc<Fill>>) -> Self
    where
        B: OriginBody,
    {
        let mut tee = Tee {
            inner: Some(Box::pin(inner)),
            capture: Some(Box::new(capture)),
            committing: None,
            fill,
            detach: Some(continue_alone::<B, St>),
        };
        // A body that is already complete (no frames at all) is committed at once.
        if tee.inner.as_ref().is_some_and(|b| b.is_end_stream()) {
            tee.inner = None;
            if let Some(f) = &tee.fill {
                f.finish();
            }
            tee.committing = start_commit(tee.capture.take());
        }
        Self {
            kind: Kind::Tee { tee },
        }
    }
}

impl<B, St: Store> Tee<B, St> {
    /// Whether the rest of the body is worth fetching with nobody but the store (and the
    /// waiters) to read it: while requests wait on it, or while the body (as far as it is known)
    /// is within the bound set for it.
    fn worth_finishing(&self) -> bool {
        self.fill.as_ref().is_some_and(|f| f.readers() > 0)
            || self
                .capture
                .as_ref()
                .is_some_and(|c| c.expected.unwrap_or(0).max(c.written) <= c.after_disconnect)
    }
}

impl<B, St: Store> Drop for Tee<B, St> {
    fn drop(&mut self) {
        if self.inner.is_some()
            && let Some(detach) = self.detach.take()
        {
            detach(self);
        }
        // Dropped unfinished (and not handed over): the waiters fail, and the capture's drop
        // leaves no entry.
        if let Some(fill) = self.fill.take() {
            fill.fail("the fill was abandoned");
        }
    }
}

/// Hands a tee its caller dropped mid-way to a task that reads the rest into the store and the
/// waiters' window, when that is worth it ([`Tee::worth_finishing`], checked again at every
/// chunk).
fn continue_alone<B: OriginBody, St: Store>(tee: &mut Tee<B, St>) {
    if !tee.worth_finishing() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    tracing::debug!("caller went away; the fill goes on");
    let rest = Tee {
        inner: tee.inner.take(),
        capture: tee.capture.take(),
        committing: None,
        fill: tee.fill.take(),
        detach: None,
    };
    finish_in_background(ResponseBody::<B, St> {
        kind: Kind::Tee { tee: rest },
    });
}

/// Checks a completed capture and commits it on its own task, so the commit finishes even if the
/// caller never polls again.
fn start_commit<St: Store>(capture: Option<Box<Capture<St>>>) -> Option<JoinHandle<()>> {
    let c = *capture?;
    if c.expected.is_some_and(|n| n != c.written) {
        tracing::debug!(expected = ?c.expected, written = c.written, "body length differs from Content-Length; not stored");
        return None;
    }
    let running = c.writes.start(c.written);
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
            KindProj::Tee { tee } => poll_tee(tee, cx),
            KindProj::Follow { follower } => follower.poll_next(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Cached { body } => body.is_end_stream(),
            Kind::Ranged { remain, .. } => *remain == 0,
            Kind::Passthrough { inner } => inner.is_end_stream(),
            Kind::Empty => true,
            Kind::Tee { tee } => {
                tee.committing.is_none() && tee.inner.as_ref().is_none_or(|b| b.is_end_stream())
            }
            Kind::Follow { follower } => follower.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Cached { body } => body.size_hint(),
            Kind::Ranged { remain, .. } => SizeHint::with_exact(*remain),
            Kind::Passthrough { inner } => inner.size_hint(),
            Kind::Tee { tee } => tee
                .inner
                .as_ref()
                .map_or(SizeHint::with_exact(0), |b| b.size_hint()),
            Kind::Follow { follower } => follower.size_hint(),
            Kind::Empty => SizeHint::with_exact(0),
        }
    }
}

/// The next part of a stored body cut to one range: `skip` bytes dropped, then `remain` passed on.
pub(crate) fn poll_ranged<St: Store>(
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

/// The next frame of an origin's body, written to the store and published to the waiters as it
/// passes (the tee of a miss).
fn poll_tee<B, St>(
    tee: &mut Tee<B, St>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    St: Store,
{
    if let Some(handle) = &mut tee.committing {
        // The body is complete: wait for the commit, so a caller that reads to the end
        // finds the entry in the cache.
        let _ = ready!(Pin::new(handle).poll(cx));
        tee.committing = None;
        return Poll::Ready(None);
    }
    if tee.detach.is_none() && tee.inner.is_some() && !tee.worth_finishing() {
        // Finishing alone, and nobody waits any more for a body past the bound: stop as a
        // dropped body does (the waiters fail, nothing is stored).
        tracing::debug!("fill abandoned: no waiters and past the bound after disconnect");
        tee.inner = None;
        tee.capture = None;
        return Poll::Ready(None);
    }
    let Some(inner) = tee.inner.as_mut() else {
        return Poll::Ready(None);
    };
    // A store that has fallen behind sets the pace: the next chunk is pulled from the
    // origin only when it can take it (a store that cannot keep up at all fails, and
    // the body streams on without being stored).
    if let Some(c) = tee.capture.as_mut() {
        match c.writer.poll_ready(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "store gave up on a write; not stored");
                tee.capture = None;
            }
            Poll::Ready(Ok(())) => {}
        }
    }
    match ready!(inner.as_mut().poll_frame(cx)) {
        None => {
            tee.inner = None;
            if let Some(f) = &tee.fill {
                f.finish();
            }
            if let Some(handle) = start_commit(tee.capture.take()) {
                tee.committing = Some(handle);
                if let Some(handle) = &mut tee.committing {
                    let _ = ready!(Pin::new(handle).poll(cx));
                }
                tee.committing = None;
            }
            Poll::Ready(None)
        }
        Some(Err(e)) => {
            // An origin that fails mid-body leaves no entry, and fails every waiter.
            tee.inner = None;
            if let Some(f) = &tee.fill {
                f.fail("the origin's body failed");
            }
            if tee.capture.take().is_some() {
                tracing::debug!("origin body failed; entry abandoned");
            }
            Poll::Ready(Some(Err(e.into())))
        }
        Some(Ok(frame)) => {
            if let Some(data) = frame.data_ref() {
                if let Some(f) = &tee.fill {
                    f.push(data);
                }
                capture_chunk(&mut tee.capture, data);
            } else if frame.is_trailers() && tee.capture.take().is_some() {
                // An entry holds a head and a body: a response with trailer fields would be
                // served without them, so it is passed on and not stored.
                tracing::debug!("response has trailer fields; not stored");
            }
            if inner.is_end_stream() {
                tee.inner = None;
                if let Some(f) = &tee.fill {
                    f.finish();
                }
                tee.committing = start_commit(tee.capture.take());
            }
            Poll::Ready(Some(Ok(frame)))
        }
    }
}

/// Appends a chunk to the capture, giving it up past the size limit or when the store refuses.
fn capture_chunk<St: Store>(capture: &mut Option<Box<Capture<St>>>, data: &Bytes) {
    let Some(c) = capture.as_mut() else {
        return;
    };
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
}

impl<B, St: Store> fmt::Debug for ResponseBody<B, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Cached { .. } => "Cached",
            Kind::Ranged { .. } => "Ranged",
            Kind::Tee { .. } => "Tee",
            Kind::Follow { .. } => "Follow",
            Kind::Passthrough { .. } => "Passthrough",
            Kind::Empty => "Empty",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

/// What became of a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Committed {
    /// The entry is stored.
    Stored,
    /// The store refused it: the resource was purged (on another node of a fleet) since the
    /// request went out. Expected, counted by the store, and not a store error.
    Refused,
    /// The store failed.
    Failed,
}

/// Commits a writer with its metadata; used by [`Capture::commit`] closures.
pub(crate) async fn commit_entry<W: StoreWriter>(
    writer: W,
    meta: Arc<Meta>,
    ttl: Option<Duration>,
    key: &str,
) -> Committed {
    match writer.commit(meta, ttl).await {
        Ok(()) => Committed::Stored,
        Err(e) if e.kind() == cachio_core::store::ErrorKind::Invalidated => {
            tracing::debug!(key, error = %e, "not stored: invalidated since it was requested");
            Committed::Refused
        }
        Err(e) => {
            tracing::warn!(key, error = %e, "cache store commit failed");
            Committed::Failed
        }
    }
}
