//! Read while writing: the requests that join a fetch in flight stream its body as it arrives.
//!
//! The leader's tee publishes every chunk it passes on into a [`Fill`]: a bounded window of the
//! latest chunks, shared by the requests that wait on the flight. Each waiter ([`Follower`])
//! reads the window at its own pace, from the first byte. The window drops its oldest chunks once
//! it holds more than its bound ([`CacheLayer::fill_window`](crate::CacheLayer::fill_window)),
//! whatever the waiters have read: a slow waiter never holds the fill back, and the memory a fill
//! takes stays bounded whatever the number and the speed of its waiters. A waiter that falls
//! behind the window waits for the commit and then reads the rest from the stored entry, from the
//! byte it had reached; if the fill was not stored (too large, refused, invalidated) it ends with
//! an error, never a clean short end. A fill whose origin fails mid-body fails every waiter the
//! same way, and nothing is stored.
//!
//! The store is not read while it is written: no store (memory, disk, Redis) has to expose an
//! entry in progress. The window copies the chunks it keeps (one copy per fill, not per waiter),
//! so that the bytes it counts are the memory it holds.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker, ready};

use bytes::Bytes;
use cachio_core::meta::{Meta, ResponseMeta};
use cachio_core::store::Store;
use http_body::{Body, Frame, SizeHint};

use crate::body::{BoxError, poll_ranged};
use crate::coalesce::Outcome;

/// One fetch's body as it streams to its waiters.
pub(crate) struct Fill {
    /// The head the fetch is stored with (always a [`Meta::Response`]).
    pub(crate) meta: Arc<Meta>,
    /// The key it is stored under (a variant key for a resource that varies).
    pub(crate) store_key: String,
    /// The origin's status code, for the waiters' `Cache-Status`.
    pub(crate) code: u16,
    /// The invalidation mark of the request that fetches it: a waiter does not stream a response
    /// fetched before a change to the resource.
    pub(crate) since: u64,
    /// `Content-Length`, when the response declared one.
    expected: Option<u64>,
    /// The most bytes the window holds.
    cap: u64,
    window: Mutex<Window>,
}

/// The shared state of a [`Fill`].
#[derive(Default)]
struct Window {
    /// The latest chunks; the first starts at byte `start` of the body.
    chunks: VecDeque<Bytes>,
    start: u64,
    /// The bytes published so far (the offset just past the last chunk).
    end: u64,
    body: BodyState,
    /// What became of the flight (`Pending` until its commit, or its end without one).
    outcome: Outcome,
    /// The waiters waiting for more, by their id.
    wakers: HashMap<u64, Waker>,
    next_id: u64,
    /// The waiters reading it.
    readers: usize,
}

/// How far the origin's body has come.
#[derive(Clone, Default, PartialEq, Eq)]
enum BodyState {
    #[default]
    Open,
    /// It ended whole.
    Complete,
    /// It failed or was abandoned; the reason.
    Failed(&'static str),
}

impl Fill {
    pub(crate) fn new(
        (meta, store_key): (Arc<Meta>, String),
        (code, since): (u16, u64),
        expected: Option<u64>,
        cap: u64,
    ) -> Self {
        Self {
            meta,
            store_key,
            code,
            since,
            expected,
            cap,
            window: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored head.
    pub(crate) fn response(&self) -> &ResponseMeta {
        self.meta.as_response().expect("a fill carries a response")
    }

    /// Publishes the next chunk of the body, dropping the oldest ones past the window's bound.
    ///
    /// The window keeps a copy: a chunk from a connection's read buffer may be a slice that keeps
    /// a much larger allocation alive, so the bytes the window counts would not bound the memory
    /// it holds.
    pub(crate) fn push(&self, chunk: &Bytes) {
        if chunk.is_empty() {
            return;
        }
        let copy = if self.cap == 0 {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(chunk)
        };
        let mut w = self.lock();
        if w.body != BodyState::Open {
            return;
        }
        w.end += chunk.len() as u64;
        if copy.is_empty() {
            // A window of zero keeps nothing: every reader is behind it, and reads the stored
            // entry (or fails), never an end at the byte it had reached.
            w.start = w.end;
        } else {
            w.chunks.push_back(copy);
        }
        while w.end - w.start > self.cap
            && let Some(old) = w.chunks.pop_front()
        {
            w.start += old.len() as u64;
        }
        wake_all(&mut w);
    }

    /// The origin's body ended: whole if it has the length it declared, failed otherwise.
    pub(crate) fn finish(&self) {
        let mut w = self.lock();
        if w.body == BodyState::Open {
            w.body = if self.expected.is_some_and(|n| n != w.end) {
                BodyState::Failed("origin body length differs from its Content-Length")
            } else {
                BodyState::Complete
            };
        }
        wake_all(&mut w);
    }

    /// The origin's body failed, or the fetch was abandoned.
    pub(crate) fn fail(&self, why: &'static str) {
        let mut w = self.lock();
        if w.body == BodyState::Open {
            w.body = BodyState::Failed(why);
            w.chunks.clear();
            w.start = w.end;
        }
        wake_all(&mut w);
    }

    /// The flight is over: its entry was stored, or not.
    pub(crate) fn settle(&self, outcome: Outcome) {
        let mut w = self.lock();
        w.outcome = outcome;
        wake_all(&mut w);
    }

    /// How many waiters read it.
    pub(crate) fn readers(&self) -> usize {
        self.lock().readers
    }

    /// The bytes the window holds now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> u64 {
        let w = self.lock();
        w.end - w.start
    }

    /// A reader from the first byte.
    pub(crate) fn follow<St: Store>(self: &Arc<Self>, store: St) -> Follower<St> {
        let id = {
            let mut w = self.lock();
            w.readers += 1;
            w.next_id += 1;
            w.next_id
        };
        Follower {
            fill: self.clone(),
            id,
            store,
            offset: 0,
            state: State::Window,
        }
    }
}

fn wake_all(w: &mut Window) {
    for (_, waker) in w.wakers.drain() {
        waker.wake();
    }
}

/// A waiter's body: the fill's window from the first byte, then the stored entry if it fell
/// behind.
pub(crate) struct Follower<St: Store> {
    fill: Arc<Fill>,
    id: u64,
    store: St,
    /// The bytes passed on so far.
    offset: u64,
    state: State<St>,
}

type Reopen<B> = Pin<Box<dyn Future<Output = Result<(B, u64), BoxError>> + Send>>;

enum State<St: Store> {
    /// Reading the window.
    Window,
    /// Fell behind: reading the stored entry back once committed.
    Reopening(Reopen<St::Body>),
    /// The stored entry, from the byte reached.
    Stored {
        body: St::Body,
        skip: u64,
        remain: u64,
    },
    Done,
}

/// What a look at the window gives a reader at `offset`.
enum Step {
    Data(Bytes),
    End,
    Fail(&'static str),
    Behind,
    Wait,
}

impl<St: Store> Follower<St> {
    fn step(&self, cx: &mut Context<'_>) -> Step {
        let mut w = self.fill.lock();
        if let BodyState::Failed(why) = w.body {
            return Step::Fail(why);
        }
        if self.offset < w.start {
            return Step::Behind;
        }
        if self.offset < w.end {
            let mut at = w.start;
            for chunk in &w.chunks {
                let len = chunk.len() as u64;
                if self.offset < at + len {
                    return Step::Data(chunk.slice((self.offset - at) as usize..));
                }
                at += len;
            }
        }
        // Every byte published is read: the end once the body is whole and the flight is over
        // (so the entry is in the cache when a waiter has read to the end), or more to come.
        if w.body == BodyState::Complete && w.outcome != Outcome::Pending {
            return Step::End;
        }
        w.wakers.insert(self.id, cx.waker().clone());
        Step::Wait
    }

    /// Waits for the flight's commit and opens the stored entry from the byte reached; an error
    /// if the flight did not store what this reader was following.
    fn reopen(&self) -> Reopen<St::Body> {
        let fill = self.fill.clone();
        let store = self.store.clone();
        let offset = self.offset;
        let id = self.id;
        Box::pin(async move {
            std::future::poll_fn(|cx| {
                let mut w = fill.lock();
                if w.outcome != Outcome::Pending || matches!(w.body, BodyState::Failed(_)) {
                    return Poll::Ready(());
                }
                w.wakers.insert(id, cx.waker().clone());
                Poll::Pending
            })
            .await;
            let (outcome, total) = {
                let w = fill.lock();
                (w.outcome, w.end)
            };
            if !matches!(outcome, Outcome::Stored(_)) {
                return Err("fell behind a fill that was not stored".into());
            }
            match store.get(&fill.store_key).await {
                Ok(Some(hit)) if hit.meta.same_as(&fill.meta) => Ok((hit.body, total - offset)),
                Ok(_) => Err("the stored entry changed before a slow reader caught up".into()),
                Err(e) => Err(e.into()),
            }
        })
    }
}

impl<St: Store> Drop for Follower<St> {
    fn drop(&mut self) {
        let mut w = self.fill.lock();
        w.readers -= 1;
        w.wakers.remove(&self.id);
    }
}

impl<St: Store> Follower<St> {
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            match &mut self.state {
                State::Done => return Poll::Ready(None),
                State::Window => match self.step(cx) {
                    Step::Data(data) => {
                        self.offset += data.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Step::End => {
                        self.state = State::Done;
                        return Poll::Ready(None);
                    }
                    Step::Fail(why) => {
                        self.state = State::Done;
                        return Poll::Ready(Some(Err(why.into())));
                    }
                    Step::Behind => self.state = State::Reopening(self.reopen()),
                    Step::Wait => return Poll::Pending,
                },
                State::Reopening(fut) => match ready!(fut.as_mut().poll(cx)) {
                    Ok((body, remain)) => {
                        let skip = self.offset;
                        self.state = State::Stored { body, skip, remain };
                    }
                    Err(e) => {
                        self.state = State::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                },
                State::Stored { body, skip, remain } => {
                    let frame = ready!(poll_ranged::<St>(body, skip, remain, cx));
                    if let Some(Ok(f)) = &frame
                        && let Some(d) = f.data_ref()
                    {
                        self.offset += d.len() as u64;
                    }
                    if frame.is_none() || frame.as_ref().is_some_and(Result::is_err) {
                        self.state = State::Done;
                    }
                    return Poll::Ready(frame);
                }
            }
        }
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        match self.fill.expected {
            Some(n) => SizeHint::with_exact(n.saturating_sub(self.offset)),
            None => SizeHint::default(),
        }
    }
}

/// Keeps `body` polled to its end on a task of its own: a fill whose client went away goes on
/// (the stale-while-revalidate fetch is stored the same way).
pub(crate) fn finish_in_background<B>(body: B)
where
    B: Body + Send + 'static,
{
    tokio::spawn(crate::capture::drain(body));
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachio_moka::MokaStore;
    use http_body_util::BodyExt;

    fn fill(cap: u64) -> Arc<Fill> {
        let now = std::time::SystemTime::now();
        let meta = cachio_core::Policy::shared().to_meta(
            &http::HeaderMap::new(),
            http::StatusCode::OK,
            http::Version::HTTP_11,
            &http::HeaderMap::new(),
            now,
            now,
        );
        Arc::new(Fill::new(
            (Arc::new(Meta::Response(meta)), "k".into()),
            (200, 0),
            None,
            cap,
        ))
    }

    struct Reader(Follower<MokaStore>);

    impl Body for Reader {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0.poll_next(cx)
        }
    }

    #[tokio::test]
    async fn the_window_stays_bounded_whatever_its_readers_read() {
        let fill = fill(4096);
        let idle: Vec<_> = (0..100)
            .map(|_| fill.follow(MokaStore::new(1 << 20)))
            .collect();
        assert_eq!(fill.readers(), 100);
        for _ in 0..1000 {
            fill.push(&Bytes::from(vec![7; 1000]));
            assert!(fill.held() <= 4096, "held {}", fill.held());
        }
        drop(idle);
        assert_eq!(fill.readers(), 0);
    }

    #[tokio::test]
    async fn a_reader_within_the_window_gets_every_byte_and_ends_after_the_flight() {
        let fill = fill(1 << 20);
        let reader = tokio::spawn(Reader(fill.follow(MokaStore::new(1 << 20))).collect());
        for i in 0..10u8 {
            fill.push(&Bytes::from(vec![i; 100]));
            tokio::task::yield_now().await;
        }
        fill.finish();
        tokio::task::yield_now().await;
        assert!(
            !reader.is_finished(),
            "the end waits for the flight's outcome"
        );
        fill.settle(Outcome::Failed);
        let got = reader.await.unwrap().expect("a whole body").to_bytes();
        let want: Vec<u8> = (0..10u8).flat_map(|i| vec![i; 100]).collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_reader_behind_an_unstored_fill_fails() {
        let fill = fill(100);
        let reader = Reader(fill.follow(MokaStore::new(1 << 20)));
        fill.push(&Bytes::from(vec![1; 100]));
        fill.push(&Bytes::from(vec![2; 100]));
        fill.finish();
        fill.settle(Outcome::Pass);
        assert!(reader.collect().await.is_err());
    }

    #[tokio::test]
    async fn with_no_window_a_reader_is_behind_from_the_first_byte() {
        let fill = fill(0);
        let reader = Reader(fill.follow(MokaStore::new(1 << 20)));
        fill.push(&Bytes::from(vec![1; 100]));
        fill.finish();
        fill.settle(Outcome::Pass);
        // Not stored: an error, not an empty body where 100 bytes were announced.
        assert!(reader.collect().await.is_err());
        assert_eq!(fill.held(), 0);
    }

    #[tokio::test]
    async fn a_failed_fill_fails_its_readers() {
        let fill = fill(1 << 20);
        let reader = Reader(fill.follow(MokaStore::new(1 << 20)));
        fill.push(&Bytes::from(vec![1; 100]));
        fill.fail("gone");
        assert!(reader.collect().await.is_err());
    }
}
