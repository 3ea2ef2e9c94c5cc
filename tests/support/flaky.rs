//! A memory store whose operations fail, or wait, on demand: for tests of what the cache does
//! when its store misbehaves or is slow at one precise moment.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cachio::core::store::ErrorKind;
use cachio::core::{Hit, Meta, StoreWriter};
use cachio::{MemoryStore, Store, StoreError};
use tokio::sync::Notify;

/// Which operations of a [`Flaky`] store fail.
#[derive(Default)]
pub struct Faults {
    pub get: AtomicBool,
    pub begin: AtomicBool,
    pub append: AtomicBool,
    pub commit: AtomicBool,
    pub update: AtomicBool,
    pub delete: AtomicBool,
    /// Holds the next commit of a `Vary` index until [`release`](Self::release) is notified,
    /// after notifying [`reached`](Self::reached).
    pub hold_index: AtomicBool,
    /// The same for the next commit of a response.
    pub hold_response: AtomicBool,
    /// Holds the next delete before it reaches the store until [`release`](Self::release) is
    /// notified, after notifying [`reached`](Self::reached).
    pub hold_delete: AtomicBool,
    /// With a hold: once the held commit has landed, notifies `reached` again and waits for
    /// `release` once more, before the cache goes on.
    pub linger: AtomicBool,
    pub reached: Notify,
    pub release: Notify,
}

/// A memory store whose operations fail on demand.
#[derive(Clone)]
pub struct Flaky {
    inner: MemoryStore,
    pub faults: Arc<Faults>,
}

impl Flaky {
    pub fn new() -> Self {
        Self {
            inner: super::memory(),
            faults: Arc::default(),
        }
    }
}

fn broken() -> StoreError {
    StoreError::new(ErrorKind::Unavailable, "the store is down")
}

impl Store for Flaky {
    type Body = <MemoryStore as Store>::Body;
    type Writer = FlakyWriter;

    async fn get(&self, key: &str) -> Result<Option<Hit<Self::Body>>, StoreError> {
        if self.faults.get.load(Ordering::SeqCst) {
            return Err(broken());
        }
        self.inner.get(key).await
    }

    fn begin(&self, key: &str) -> Result<FlakyWriter, StoreError> {
        if self.faults.begin.load(Ordering::SeqCst) {
            return Err(broken());
        }
        Ok(FlakyWriter {
            inner: self.inner.begin(key)?,
            faults: self.faults.clone(),
        })
    }

    async fn update(
        &self,
        key: &str,
        previous: &Meta,
        meta: Arc<Meta>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        if self.faults.update.load(Ordering::SeqCst) {
            return Err(broken());
        }
        self.inner.update(key, previous, meta, ttl).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        if self.faults.delete.load(Ordering::SeqCst) {
            return Err(broken());
        }
        if self.faults.hold_delete.swap(false, Ordering::SeqCst) {
            self.faults.reached.notify_one();
            self.faults.release.notified().await;
        }
        self.inner.delete(key).await
    }
}

pub struct FlakyWriter {
    inner: <MemoryStore as Store>::Writer,
    faults: Arc<Faults>,
}

impl StoreWriter for FlakyWriter {
    fn append(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        if self.faults.append.load(Ordering::SeqCst) {
            return Err(broken());
        }
        self.inner.append(chunk)
    }

    fn commit(
        self,
        meta: Arc<Meta>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let fail = self.faults.commit.load(Ordering::SeqCst);
        let hold = match *meta {
            Meta::Variants(_) => self.faults.hold_index.swap(false, Ordering::SeqCst),
            _ => self.faults.hold_response.swap(false, Ordering::SeqCst),
        };
        let faults = self.faults;
        let commit = self.inner.commit(meta, ttl);
        async move {
            if fail {
                return Err(broken());
            }
            if hold {
                faults.reached.notify_one();
                faults.release.notified().await;
            }
            let done = commit.await;
            if hold && faults.linger.swap(false, Ordering::SeqCst) {
                faults.reached.notify_one();
                faults.release.notified().await;
            }
            done
        }
    }
}
