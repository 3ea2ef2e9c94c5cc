use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// The response future of [`Cache`](crate::Cache).
    pub struct ResponseFuture<T, E> {
        #[pin]
        state: State<T, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<T, E> {
        /// Answered in `call` (a hit the store gave at once); taken by the first poll.
        Ready { output: Option<Result<T, E>> },
        /// Everything else: the request's async function.
        Boxed { future: Pin<Box<dyn Future<Output = Result<T, E>> + Send>> },
    }
}

impl<T, E> ResponseFuture<T, E> {
    pub(crate) fn ready(output: Result<T, E>) -> Self {
        Self {
            state: State::Ready {
                output: Some(output),
            },
        }
    }

    pub(crate) fn boxed(future: Pin<Box<dyn Future<Output = Result<T, E>> + Send>>) -> Self {
        Self {
            state: State::Boxed { future },
        }
    }
}

impl<T, E> Future for ResponseFuture<T, E> {
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Ready { output } => Poll::Ready(
                output
                    .take()
                    .expect("ResponseFuture polled after completion"),
            ),
            StateProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

impl<T, E> fmt::Debug for ResponseFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::marker::PhantomPinned;

    #[test]
    fn unpin_whatever_the_output() {
        fn is_unpin<T: Unpin>() {}
        is_unpin::<super::ResponseFuture<PhantomPinned, PhantomPinned>>();
    }
}
