//! What a gateway finishes before it exits: the writes its cache layers run on tasks of their
//! own, then the disk tier's sync.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cachio_core::StoreError;
use cachio_tower::CacheLayer;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Waiter = Arc<dyn Fn() -> BoxFuture<()> + Send + Sync>;
type SyncFn = Arc<dyn Fn() -> BoxFuture<Result<(), StoreError>> + Send + Sync>;

/// The layers of a gateway's sites, and the sync of its store (the disk tier's).
#[derive(Clone, Default)]
pub(crate) struct Settle {
    layers: Vec<Waiter>,
    sync: Option<SyncFn>,
}

impl Settle {
    /// Waits for `layer`'s writes too.
    pub(crate) fn layer<St: Clone + Send + Sync + 'static>(&mut self, layer: CacheLayer<St>) {
        self.layers.push(Arc::new(move || {
            let layer = layer.clone();
            Box::pin(async move { layer.settled().await })
        }));
    }

    /// Syncs the store with `sync` once the writes are done.
    #[cfg_attr(
        not(feature = "disk"),
        expect(dead_code, reason = "only a disk tier syncs")
    )]
    pub(crate) fn sync<F, Fut>(&mut self, sync: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), StoreError>> + Send + 'static,
    {
        self.sync = Some(Arc::new(move || Box::pin(sync())));
    }

    /// Waits up to `timeout` for the layers' writes, then syncs the store; says whether all of
    /// it was done.
    pub(crate) async fn run(&self, timeout: Duration) -> bool {
        let writes = async {
            for settled in &self.layers {
                settled().await;
            }
        };
        let mut done = true;
        if tokio::time::timeout(timeout, writes).await.is_err() {
            tracing::warn!(
                timeout = ?timeout,
                "responses still being stored at shutdown; they are dropped"
            );
            done = false;
        }
        if let Some(sync) = &self.sync
            && let Err(e) = sync().await
        {
            tracing::error!(error = %e, "cannot sync the disk tier at shutdown");
            done = false;
        }
        done
    }
}

impl fmt::Debug for Settle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settle")
            .field("layers", &self.layers.len())
            .field("sync", &self.sync.is_some())
            .finish()
    }
}
