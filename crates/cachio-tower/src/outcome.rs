//! Whether a response's body reached the store, for whoever serves the body.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::Notify;

const WRITING: u8 = 0;
const STORED: u8 = 1;
const NOT_STORED: u8 = 2;

/// Whether the body of a response is in the store. A response whose body the cache writes to
/// the store as it streams (the one `Cache-Status` marks `stored`) carries one in its
/// extensions; a response without one is not stored. The outcome is known once the body has
/// been read to its end (and committed) or abandoned: cut short, longer than the object size
/// limit, refused by the store, purged meanwhile, or dropped.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cachio_moka::MokaStore;
/// use cachio_tower::{CacheLayer, StoreOutcome};
/// use http_body_util::{BodyExt, Full};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// let origin = tower::service_fn(|_req: http::Request<Full<bytes::Bytes>>| async {
///     let res = http::Response::builder()
///         .header("cache-control", "max-age=60")
///         .body(Full::from("hello"))
///         .unwrap();
///     Ok::<_, std::convert::Infallible>(res)
/// });
/// let cache = ServiceBuilder::new()
///     .layer(CacheLayer::private(MokaStore::new(1 << 20)))
///     .service(origin);
/// let req = http::Request::get("http://example.com/").body(Full::default()).unwrap();
/// let res = cache.oneshot(req).await.unwrap();
/// let outcome = res.extensions().get::<StoreOutcome>().cloned().unwrap();
/// assert_eq!(outcome.get(), None); // still being written
/// res.into_body().collect().await.unwrap();
/// assert!(outcome.wait().await);
/// # }
/// ```
#[derive(Clone)]
pub struct StoreOutcome {
    inner: Arc<Inner>,
}

struct Inner {
    state: AtomicU8,
    done: Notify,
}

impl StoreOutcome {
    /// `Some(true)` once the body is in the store, `Some(false)` once it will not be, `None`
    /// while it is being written.
    pub fn get(&self) -> Option<bool> {
        match self.inner.state.load(Ordering::Acquire) {
            WRITING => None,
            s => Some(s == STORED),
        }
    }

    /// Waits until the outcome is known, and returns it (`true`: stored).
    pub async fn wait(&self) -> bool {
        loop {
            // Created before the check: a notification sent between the two is not missed.
            let notified = self.inner.done.notified();
            if let Some(stored) = self.get() {
                return stored;
            }
            notified.await;
        }
    }
}

impl fmt::Debug for StoreOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOutcome")
            .field("stored", &self.get())
            .finish()
    }
}

/// The writing side of a [`StoreOutcome`]: [`stored`](Self::stored) when the entry is
/// visible; dropped unsent, it says "not stored".
pub(crate) struct Signal {
    inner: Arc<Inner>,
}

impl Signal {
    /// A signal and the outcome it sets.
    pub(crate) fn new() -> (Self, StoreOutcome) {
        let inner = Arc::new(Inner {
            state: AtomicU8::new(WRITING),
            done: Notify::new(),
        });
        (
            Self {
                inner: inner.clone(),
            },
            StoreOutcome { inner },
        )
    }

    /// The body is in the store.
    pub(crate) fn stored(self) {
        self.set(STORED);
    }

    fn set(&self, state: u8) {
        if self
            .inner
            .state
            .compare_exchange(WRITING, state, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.inner.done.notify_waiters();
        }
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        self.set(NOT_STORED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dropped_signal_says_not_stored() {
        let (signal, outcome) = Signal::new();
        let waiter = tokio::spawn({
            let outcome = outcome.clone();
            async move { outcome.wait().await }
        });
        tokio::task::yield_now().await;
        drop(signal);
        assert!(!waiter.await.unwrap());
        assert_eq!(outcome.get(), Some(false));
    }

    #[tokio::test]
    async fn a_sent_signal_says_stored_once() {
        let (signal, outcome) = Signal::new();
        signal.stored();
        assert_eq!(outcome.get(), Some(true));
        assert!(outcome.wait().await);
    }
}
