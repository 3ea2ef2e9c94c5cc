//! Two stores as one: a fast, small tier in front of a large one (memory over disk or Redis).
//!
//! Reads try the first tier, then the second; a hit in the second tier is copied into the first as
//! it streams (when it fits the first tier's object limit). Writes stream to both tiers (to the
//! first only while the body fits it). Updates and deletes reach both.
//!
//! # The first tier never outlives the second
//!
//! Every change reaches the second tier before the first: commits, updates, deletes and purges.
//! A copy into the first tier (a promotion) lands only if the second tier still holds the entry
//! it was copied from, checked just before. The check and the landing are one step for the
//! changes of that key (a lock per share of the keys; a purge takes them all): a promotion that
//! races with a change either lands before the change (which then changes or removes the copy)
//! or sees it and does not land. A deleted, updated or replaced entry never comes back from a
//! read that was in progress, not even for a moment. A removal from the first tier alone (one
//! decided elsewhere, once the second tier no longer holds the entry: another node's purge)
//! takes the same lock ([`Tiered::delete_from_first`], [`Tiered::purge_from_first`]), so a copy
//! in progress cannot land after it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::backend::KeyLocks;
use crate::meta::Meta;
use crate::store::{Hit, Store, StoreError, StoreWriter};

/// A store made of a first tier `A` (small and fast) in front of a second tier `B`.
///
/// # Example
///
/// ```
/// # use cachio_core::store::Store;
/// use cachio_core::tiered::Tiered;
///
/// fn tiers<A: Store, B: Store>(memory: A, disk: B) -> Tiered<A, B> {
///     Tiered::new(memory, disk)
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Tiered<A, B> {
    first: A,
    second: B,
    promote_ttl: Option<Duration>,
    locks: Arc<KeyLocks>,
}

/// How many locks order the changes and promotions of a tiered store's keys.
const LOCKS: usize = 64;

impl<A, B> Tiered<A, B> {
    /// `first` in front of `second`.
    pub fn new(first: A, second: B) -> Self {
        Self {
            first,
            second,
            promote_ttl: Some(Duration::from_secs(300)),
            locks: Arc::new(KeyLocks::new(LOCKS)),
        }
    }

    /// How long an entry copied up from the second tier stays in the first (five minutes by
    /// default; the second tier keeps its own expiry). The cache checks freshness on every hit, so
    /// this bounds memory use, not correctness.
    #[must_use]
    pub fn promote_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.promote_ttl = ttl;
        self
    }

    /// The first tier.
    pub fn first(&self) -> &A {
        &self.first
    }

    /// The second tier.
    pub fn second(&self) -> &B {
        &self.second
    }
}

impl<A: Store, B: Store> Tiered<A, B> {
    /// Removes `key` from the first tier only, in order with the key's commits and promotions:
    /// it waits for one in progress to land, and one that starts after it checks the second
    /// tier again. For a removal decided elsewhere (another node's purge, received by a fleet
    /// node), once the second tier no longer holds the entry: after this returns, the first
    /// tier does not hold the removed copy, nor gets it back from a commit or a read that
    /// was in progress.
    ///
    /// # Errors
    ///
    /// The first tier's error.
    ///
    /// # Example
    ///
    /// ```
    /// # use cachio_core::store::{Store, StoreError};
    /// use cachio_core::tiered::Tiered;
    ///
    /// async fn forget<A: Store, B: Store>(tiers: &Tiered<A, B>) -> Result<(), StoreError> {
    ///     tiers.delete_from_first("https://example.com/").await
    /// }
    /// ```
    pub async fn delete_from_first(&self, key: &str) -> Result<(), StoreError> {
        let _lock = self.locks.lock(key).await;
        self.first.delete(key).await
    }

    /// Removes what `matches` picks from the first tier only, in order with every commit and
    /// promotion (it waits for those in progress, as [`delete_from_first`](Self::delete_from_first)
    /// does for one key), and returns how many entries it removed.
    ///
    /// # Errors
    ///
    /// The first tier's error.
    ///
    /// # Example
    ///
    /// ```
    /// # use cachio_core::store::{Store, StoreError};
    /// use cachio_core::tiered::Tiered;
    ///
    /// async fn empty_memory<A: Store, B: Store>(tiers: &Tiered<A, B>) -> Result<u64, StoreError> {
    ///     tiers.purge_from_first(|_, _| true).await
    /// }
    /// ```
    pub async fn purge_from_first<F>(&self, matches: F) -> Result<u64, StoreError>
    where
        F: Fn(&str, &Meta) -> bool + Send + Sync + 'static,
    {
        let _all = self.locks.lock_all().await;
        self.first.purge(matches).await
    }
}

impl<A: Store, B: Store> Store for Tiered<A, B> {
    type Body = TieredBody<A, B>;
    type Writer = TieredWriter<A, B>;

    async fn get(&self, key: &str) -> Result<Option<Hit<Self::Body>>, StoreError> {
        // A failing first tier is passed over so the second can answer.
        if let Ok(Some(hit)) = self.first.get(key).await {
            return Ok(Some(Hit {
                meta: hit.meta,
                body: TieredBody(Inner::First(hit.body)),
            }));
        }
        let Some(hit) = self.second.get(key).await? else {
            return Ok(None);
        };
        let len = hit.body.size_hint().exact();
        let fits = match (len, self.first.max_body_size()) {
            (Some(len), Some(max)) => len <= max,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let promote = if fits {
            self.first.begin(key).ok()
        } else {
            None
        };
        let body = match promote {
            Some(writer) => Inner::Promote {
                body: hit.body,
                promote: Some(Box::new(Promote {
                    writer,
                    meta: hit.meta.clone(),
                    ttl: self.promote_ttl,
                    tiers: self.clone(),
                    key: key.to_owned(),
                })),
                committing: None,
            },
            None => Inner::Second(hit.body),
        };
        Ok(Some(Hit {
            meta: hit.meta,
            body: TieredBody(body),
        }))
    }

    /// A hit the first tier gives at once; otherwise `None`, and [`get`](Store::get) asks both
    /// tiers.
    fn try_get(&self, key: &str) -> Option<Result<Option<Hit<Self::Body>>, StoreError>> {
        match self.first.try_get(key)? {
            Ok(Some(hit)) => Some(Ok(Some(Hit {
                meta: hit.meta,
                body: TieredBody(Inner::First(hit.body)),
            }))),
            // The second tier may hold it, or the first failed: `get` decides.
            Ok(None) | Err(_) => None,
        }
    }

    fn begin(&self, key: &str) -> Result<Self::Writer, StoreError> {
        let second = self.second.begin(key)?;
        Ok(TieredWriter {
            first: self.first.begin(key).ok(),
            second,
            locks: self.locks.clone(),
            key: key.to_owned(),
        })
    }

    async fn update(
        &self,
        key: &str,
        previous: &Meta,
        meta: Arc<Meta>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let _lock = self.locks.lock(key).await;
        // The second tier first (see the module documentation).
        let second = match self.second.update(key, previous, meta.clone(), ttl).await {
            Ok(b) => b,
            Err(e) => {
                // The second tier still holds the old metadata: drop the first tier's copy so the
                // tiers cannot disagree.
                let _ = self.first.delete(key).await;
                return Err(e);
            }
        };
        match self.first.update(key, previous, meta, ttl).await {
            Ok(a) => Ok(a || second),
            Err(_) => {
                let _ = self.first.delete(key).await;
                Ok(second)
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let _lock = self.locks.lock(key).await;
        // The second tier first (see the module documentation).
        let second = self.second.delete(key).await;
        let first = self.first.delete(key).await;
        first.and(second)
    }

    fn max_body_size(&self) -> Option<u64> {
        self.second.max_body_size()
    }

    async fn purge<F>(&self, matches: F) -> Result<u64, StoreError>
    where
        F: Fn(&str, &Meta) -> bool + Send + Sync + 'static,
    {
        let matches = Arc::new(matches);
        let m = matches.clone();
        // No promotion lands meanwhile: one that checked the second tier before the purge could
        // land after it.
        let _all = self.locks.lock_all().await;
        // The second tier first (see the module documentation).
        let second = self.second.purge(move |k, meta| m(k, meta)).await?;
        let first = self.first.purge(move |k, meta| matches(k, meta)).await;
        // The first tier only holds copies: count what the second removed, unless the first
        // held more (entries whose second-tier copy had already gone).
        Ok(second.max(first.unwrap_or(0)))
    }

    async fn scan(&self) -> Result<Vec<(String, Meta)>, StoreError> {
        // The second tier holds every entry; the first only copies, listed when their
        // second-tier copy has gone.
        let mut listed = self.second.scan().await?;
        let known: std::collections::HashSet<String> =
            listed.iter().map(|(key, _)| key.clone()).collect();
        if let Ok(first) = self.first.scan().await {
            listed.extend(first.into_iter().filter(|(key, _)| !known.contains(key)));
        }
        Ok(listed)
    }
}

/// Writes one entry to both tiers.
pub struct TieredWriter<A: Store, B: Store> {
    first: Option<A::Writer>,
    second: B::Writer,
    locks: Arc<KeyLocks>,
    key: String,
}

impl<A: Store, B: Store> std::fmt::Debug for TieredWriter<A, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredWriter")
            .field("first", &self.first.is_some())
            .finish_non_exhaustive()
    }
}

impl<A: Store, B: Store> StoreWriter for TieredWriter<A, B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StoreError>> {
        if let Some(first) = &mut self.first
            && let Poll::Ready(Err(_)) = first.poll_ready(cx)
        {
            self.first = None;
        }
        let first_ready = match &mut self.first {
            Some(first) => first.poll_ready(cx).is_ready(),
            None => true,
        };
        let second = ready!(self.second.poll_ready(cx));
        if !first_ready {
            return Poll::Pending;
        }
        Poll::Ready(second)
    }

    fn append(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        if let Some(first) = &mut self.first
            && first.append(chunk.clone()).is_err()
        {
            // Too large for the first tier (or refused): keep writing the second only.
            self.first = None;
        }
        self.second.append(chunk)
    }

    fn commit(
        self,
        meta: Arc<Meta>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let second = self.second.commit(meta.clone(), ttl);
        let first = self.first.map(|w| w.commit(meta, ttl));
        let (locks, key) = (self.locks, self.key);
        async move {
            let _lock = locks.lock(&key).await;
            // The second tier first: the first tier never holds what the second does not.
            second.await?;
            if let Some(first) = first {
                let _ = first.await;
            }
            Ok(())
        }
    }
}

/// The body of a tiered hit: from the first tier, or from the second (and copied into the first
/// as it streams).
pub struct TieredBody<A: Store, B: Store>(Inner<A, B>);

struct Promote<A: Store, B: Store> {
    writer: A::Writer,
    meta: Arc<Meta>,
    ttl: Option<Duration>,
    tiers: Tiered<A, B>,
    key: String,
}

impl<A: Store, B: Store> Promote<A, B> {
    /// Commits the copy into the first tier if the second tier still holds the entry it was
    /// copied from (and drops it otherwise), with no change of the key in between.
    fn commit(self) -> CommitFuture {
        let Promote {
            writer,
            meta,
            ttl,
            tiers,
            key,
        } = self;
        Box::pin(async move {
            let _lock = tiers.locks.lock(&key).await;
            let current = tiers.second.get(&key).await;
            if matches!(&current, Ok(Some(hit)) if hit.meta.same_as(&meta)) {
                drop(current);
                writer.commit(meta, ttl).await?;
            }
            Ok(())
        })
    }
}

type CommitFuture = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

enum Inner<A: Store, B: Store> {
    First(A::Body),
    Second(B::Body),
    Promote {
        body: B::Body,
        promote: Option<Box<Promote<A, B>>>,
        committing: Option<CommitFuture>,
    },
}

impl<A: Store, B: Store> std::fmt::Debug for TieredBody<A, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tier = match &self.0 {
            Inner::First(_) => "first",
            Inner::Second(_) => "second",
            Inner::Promote { .. } => "second (promoting)",
        };
        f.debug_struct("TieredBody").field("tier", &tier).finish()
    }
}

impl<A: Store, B: Store> Body for TieredBody<A, B> {
    type Data = Bytes;
    type Error = StoreError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StoreError>>> {
        match &mut self.get_mut().0 {
            Inner::First(b) => Pin::new(b).poll_frame(cx),
            Inner::Second(b) => Pin::new(b).poll_frame(cx),
            Inner::Promote {
                body,
                promote,
                committing,
            } => {
                if let Some(fut) = committing {
                    // The copy is complete: finish it before reporting the end.
                    let _ = ready!(fut.as_mut().poll(cx));
                    *committing = None;
                    return Poll::Ready(None);
                }
                let frame = ready!(Pin::new(&mut *body).poll_frame(cx));
                match frame {
                    Some(Ok(frame)) => {
                        if let (Some(p), Some(data)) = (promote.as_mut(), frame.data_ref())
                            && p.writer.append(data.clone()).is_err()
                        {
                            *promote = None;
                        }
                        if body.is_end_stream()
                            && let Some(p) = promote.take()
                        {
                            *committing = Some(p.commit());
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Some(Err(e)) => {
                        *promote = None;
                        Poll::Ready(Some(Err(e)))
                    }
                    None => {
                        if let Some(p) = promote.take() {
                            let mut fut = p.commit();
                            if fut.as_mut().poll(cx).is_pending() {
                                *committing = Some(fut);
                                return Poll::Pending;
                            }
                        }
                        Poll::Ready(None)
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::First(b) => b.is_end_stream(),
            Inner::Second(b) => b.is_end_stream(),
            Inner::Promote {
                body, committing, ..
            } => committing.is_none() && body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::First(b) => b.size_hint(),
            Inner::Second(b) | Inner::Promote { body: b, .. } => b.size_hint(),
        }
    }
}
