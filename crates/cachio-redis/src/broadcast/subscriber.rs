//! The task that keeps each node subscribed to the invalidation channel and removes from its
//! local tier what other nodes deleted or purged.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cachio_core::store::{Store, StoreError};
use cachio_core::tiered::Tiered;
use futures_util::StreamExt;
use tokio::sync::oneshot;

use super::State;
use super::message::{Invalidation, decode};

/// How often the subscription is checked with a `PING`, and how long the answer may take.
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// Reconnection delays of the subscriber.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How the subscriber removes, from this node's local tier, what another node purged.
pub(super) trait LocalTier: Send + Sync + 'static {
    /// Removes `key`.
    fn forget(&self, key: &str) -> impl Future<Output = ()> + Send;

    /// Removes every entry; how many there were.
    fn forget_all(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// The first tier of a [`Tiered`] store ([`Broadcast::fleet`]), whose removals take the tier's
/// key locks.
///
/// Why the lock: the announcement of a purge can reach this node while a copy of the purged
/// entry is on its way into memory: a read that found the entry in Redis just before the
/// purge removed it there (the copy lands once the read has streamed it), or this node's own
/// commit, which Redis took just before the purge. Both land under the key's lock of the
/// `Tiered` store: a read's copy checks, under it, that Redis still holds the entry; a commit
/// holds it from its Redis commit to its memory commit. A removal under the same lock comes
/// either before such a step, which then finds the entry gone from Redis (a copy is dropped; a
/// commit is refused by the key's fence, since its request was sent before the purge), or
/// after it, and removes what it landed. Without the lock, the removal could come between the
/// check (or the Redis commit) and the landing, and the purged version would stay in memory.
pub(super) struct FirstTier<M, R>(pub(super) Tiered<M, R>);

impl<M: Store, R: Store> LocalTier for FirstTier<M, R> {
    async fn forget(&self, key: &str) {
        let _ = self.0.delete_from_first(key).await;
    }

    async fn forget_all(&self) -> Result<u64, StoreError> {
        self.0.purge_from_first(|_, _| true).await
    }
}

/// A local tier given on its own ([`Broadcast::new`]): removals are plain deletes, not ordered
/// with the copies the wrapped store makes into it.
pub(super) struct Plain<L>(pub(super) L);

impl<L: Store> LocalTier for Plain<L> {
    async fn forget(&self, key: &str) {
        let _ = self.0.delete(key).await;
    }

    async fn forget_all(&self) -> Result<u64, StoreError> {
        self.0.purge(|_, _| true).await
    }
}

/// The task that keeps a subscription to the channel and applies what arrives.
pub(super) struct Subscriber<L> {
    pub(super) clients: Vec<redis::Client>,
    pub(super) channel: String,
    pub(super) node: [u8; 16],
    pub(super) local: L,
    pub(super) state: Arc<State>,
    pub(super) connect_timeout: Duration,
}

impl<L: LocalTier> Subscriber<L> {
    pub(super) async fn run(self, mut stop: oneshot::Receiver<()>) {
        let clients = &self.clients;
        if clients.is_empty() {
            return;
        }
        let mut backoff = MIN_BACKOFF;
        for attempt in 0usize.. {
            let client = &clients[attempt % clients.len()];
            let connect = async {
                let mut pubsub =
                    tokio::time::timeout(self.connect_timeout, client.get_async_pubsub())
                        .await
                        .ok()?
                        .ok()?;
                tokio::time::timeout(self.connect_timeout, pubsub.subscribe(&self.channel))
                    .await
                    .ok()?
                    .ok()?;
                Some(pubsub)
            };
            let pubsub = tokio::select! {
                p = connect => p,
                _ = &mut stop => return,
            };
            if let Some(pubsub) = pubsub {
                backoff = MIN_BACKOFF;
                // Messages may have been missed before this subscription: forget everything
                // local before using it again.
                let _ = self.local.forget_all().await;
                self.state.subscribed.store(true, Ordering::Release);
                self.state.subscriptions.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(channel = %self.channel, "subscribed to the fleet's invalidations");
                let (mut sink, mut stream) = pubsub.split();
                let mut ping = tokio::time::interval(PING_EVERY);
                ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ping.tick().await;
                loop {
                    tokio::select! {
                        _ = &mut stop => {
                            self.state.subscribed.store(false, Ordering::Release);
                            return;
                        }
                        msg = stream.next() => match msg {
                            Some(msg) => self.apply(msg.get_payload_bytes()).await,
                            None => break,
                        },
                        _ = ping.tick() => {
                            let pong = tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await;
                            if !matches!(pong, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                self.state.subscribed.store(false, Ordering::Release);
                tracing::warn!(
                    channel = %self.channel,
                    "lost the subscription to the fleet's invalidations: the cache steps aside until it is back"
                );
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = &mut stop => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn apply(&self, payload: &[u8]) {
        let Some((node, invalidation)) = decode(payload) else {
            tracing::debug!("ignoring a message that is not a cachio invalidation");
            return;
        };
        if node == self.node {
            return;
        }
        self.state.received.fetch_add(1, Ordering::Relaxed);
        match invalidation {
            Invalidation::Keys(keys) => {
                for key in &keys {
                    self.local.forget(key).await;
                }
                self.state
                    .applied
                    .fetch_add(keys.len() as u64, Ordering::Relaxed);
            }
            Invalidation::All => {
                if let Ok(n) = self.local.forget_all().await {
                    self.state.applied.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
    }
}
