//! The service the cache calls to reach the network: it hands each request to the middleware
//! call it belongs to, which runs it down the rest of the chain.

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use http::Extensions;
use reqwest_middleware::{Error, Next};
use tokio::sync::oneshot;
use tower::Service;

/// A request for the rest of the chain, and where its response goes.
pub(crate) struct Call {
    req: reqwest::Request,
    reply: oneshot::Sender<Reply>,
}

/// What a middleware call answers a [`Call`] with.
enum Reply {
    /// The response of the rest of the chain (or its error).
    Done(reqwest_middleware::Result<reqwest::Response>),
    /// The call was over before it could run the request: here it is back, untouched.
    Returned(reqwest::Request),
}

/// The URL a response came from (after reqwest's redirects), carried through the cache in the
/// response's extensions.
#[derive(Clone)]
pub(crate) struct FinalUrl(pub(crate) reqwest::Url);

/// The requests sent to one middleware call, waiting for it to run them. A hit sends none, so
/// this is one small allocation and nothing more.
#[derive(Default)]
struct Queue {
    calls: VecDeque<Call>,
    waker: Option<Waker>,
    /// The call has returned: nothing more is taken.
    closed: bool,
}

/// The sending end of a call's [`Queue`].
#[derive(Clone)]
struct Link(Arc<Mutex<Queue>>);

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    // Nothing that may panic runs while the lock is held.
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Link {
    /// Queues `call`, or gives it back if the call has returned.
    #[expect(
        clippy::result_large_err,
        reason = "the call is given back whole, on the path to the network"
    )]
    fn send(&self, call: Call) -> Result<(), Call> {
        let mut queue = lock(&self.0);
        if queue.closed {
            return Err(call);
        }
        queue.calls.push_back(call);
        let waker = queue.waker.take();
        drop(queue);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

/// The receiving end of a call's [`Queue`]. Dropped, it hands back every request still queued,
/// and those sent later.
pub(crate) struct Calls(Arc<Mutex<Queue>>);

impl Calls {
    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Call> {
        let mut queue = lock(&self.0);
        match queue.calls.pop_front() {
            Some(call) => Poll::Ready(call),
            None => {
                match &mut queue.waker {
                    Some(w) => w.clone_from(cx.waker()),
                    none => *none = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Calls {
    fn drop(&mut self) {
        let calls = {
            let mut queue = lock(&self.0);
            queue.closed = true;
            queue.waker = None;
            std::mem::take(&mut queue.calls)
        };
        for Call { req, reply } in calls {
            let _ = reply.send(Reply::Returned(req));
        }
    }
}

/// The inner service of the cache. Bound to one middleware call by [`Forward::bind`]; a request
/// it gets once that call has returned (a `stale-while-revalidate` revalidation in the
/// background) goes to the background client, if there is one, and otherwise fails.
#[derive(Clone, Default)]
pub(crate) struct Forward {
    call: Option<Link>,
    background: Option<reqwest::Client>,
}

impl Forward {
    pub(crate) fn background(&mut self, client: Option<reqwest::Client>) {
        self.background = client;
    }

    /// Binds this service to a call: the returned receiver is what [`drive`] serves.
    pub(crate) fn bind(&mut self) -> Calls {
        let queue = Arc::default();
        self.call = Some(Link(Arc::clone(&queue)));
        Calls(queue)
    }
}

impl fmt::Debug for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forward")
            .field("background", &self.background.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a request the cache sent could not be run.
#[derive(Debug)]
enum Unsent {
    /// The middleware call was dropped (its caller gave up) before the response arrived.
    Cancelled,
    /// The call had returned, and no background client was set.
    NoBackgroundClient,
}

impl fmt::Display for Unsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cancelled => "the request was cancelled before its response arrived",
            Self::NoBackgroundClient => {
                "a background revalidation needs a background client (Cache::background_client)"
            }
        })
    }
}

impl std::error::Error for Unsent {}

type Res = http::Response<reqwest::Body>;

impl Service<http::Request<reqwest::Body>> for Forward {
    type Response = Res;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Res, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<reqwest::Body>) -> Self::Future {
        let call = self.call.clone();
        let background = self.background.clone();
        Box::pin(async move {
            let mut req = reqwest::Request::try_from(req)?;
            if let Some(tx) = call {
                let (reply, answer) = oneshot::channel();
                req = match tx.send(Call { req, reply }) {
                    Ok(()) => match answer.await {
                        Ok(Reply::Done(res)) => return res.map(into_http),
                        Ok(Reply::Returned(req)) => req,
                        Err(_) => return Err(Error::middleware(Unsent::Cancelled)),
                    },
                    Err(call) => call.req,
                };
            }
            match background {
                Some(client) => Ok(into_http(client.execute(req).await?)),
                None => Err(Error::middleware(Unsent::NoBackgroundClient)),
            }
        })
    }
}

fn into_http(res: reqwest::Response) -> Res {
    let url = FinalUrl(res.url().clone());
    let mut res = Res::from(res);
    res.extensions_mut().insert(url);
    res
}

/// Runs `fut` (the cache's answer to one request) to its end, and meanwhile runs each request
/// it sends down the rest of the chain with this call's `next` and `extensions`.
///
/// When `fut` ends, a request still running is dropped, and those still waiting are handed back
/// to their senders: both can only be background revalidations, since the request's own
/// exchanges with the network end before its answer does.
pub(crate) async fn drive<F, T>(
    fut: F,
    calls: Calls,
    extensions: &mut Extensions,
    next: Next<'_>,
) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    let mut fut = std::pin::pin!(fut);
    let out = loop {
        let call = tokio::select! {
            biased;
            out = &mut fut => break out,
            call = poll_fn(|cx| calls.poll_recv(cx)) => call,
        };
        let Call { req, reply } = call;
        let run = next.clone().run(req, extensions);
        tokio::select! {
            biased;
            out = &mut fut => break out,
            res = run => {
                // The sender may have given up waiting: then nobody needs the response.
                let _ = reply.send(Reply::Done(res));
            }
        }
    };
    drop(calls);
    out
}
