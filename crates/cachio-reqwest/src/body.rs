//! The body of the responses the middleware gives: the cache's body, made `Sync` for reqwest.

use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};

/// A body that is `Sync` whenever it is `Send`, as [`reqwest::Body::wrap`] requires.
///
/// The cache's body need not be `Sync` (a miss's tee holds the store's writer). A shared
/// reference to this wrapper gives no access to the body inside: every read of it goes through
/// `&mut self`, and [`Mutex::get_mut`] hands the body out without locking (the mutex is never
/// locked, so never poisoned). `size_hint` and `is_end_stream`, which take `&self`, answer from
/// a copy taken after each frame.
pub(crate) struct SyncBody<B> {
    inner: Mutex<B>,
    hint: SizeHint,
    end: bool,
}

impl<B: Body> SyncBody<B> {
    pub(crate) fn new(inner: B) -> Self {
        Self {
            hint: inner.size_hint(),
            end: inner.is_end_stream(),
            inner: Mutex::new(inner),
        }
    }
}

impl<B: Body + Unpin> Body for SyncBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let inner = this.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        let frame = Pin::new(&mut *inner).poll_frame(cx);
        if frame.is_ready() {
            this.hint = inner.size_hint();
            this.end = inner.is_end_stream();
        }
        frame
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }

    fn is_end_stream(&self) -> bool {
        self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of two frames that is not `Sync`.
    struct NotSync {
        left: Vec<&'static [u8]>,
        _cell: std::cell::Cell<()>,
    }

    impl Body for NotSync {
        type Data = &'static [u8];
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            Poll::Ready(self.left.pop().map(|d| Ok(Frame::data(d))))
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.left.iter().map(|d| d.len() as u64).sum())
        }

        fn is_end_stream(&self) -> bool {
            self.left.is_empty()
        }
    }

    fn assert_sync<T: Sync>(_: &T) {}

    #[test]
    fn a_body_that_is_not_sync_becomes_sync_and_keeps_its_hints() {
        let mut body = SyncBody::new(NotSync {
            left: vec![b"cd", b"ab"],
            _cell: std::cell::Cell::new(()),
        });
        assert_sync(&body);
        assert_eq!(body.size_hint().exact(), Some(4));
        assert!(!body.is_end_stream());
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut got = Vec::new();
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) {
            got.extend_from_slice(frame.into_data().unwrap_or_default());
            if got.len() == 2 {
                assert_eq!(body.size_hint().exact(), Some(2));
            }
        }
        assert_eq!(got, b"abcd");
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
    }
}
