//! The storage traits every cachio backend implements.
//!
//! A store maps keys to entries: [`Meta`] plus a body. Writes stream: [`Store::begin`] gives a
//! [`StoreWriter`] that takes the body chunk by chunk and makes the entry visible only at
//! [`StoreWriter::commit`]; a writer dropped before commit leaves nothing behind. Reads give the
//! metadata at once and the body as a stream, so a hit never needs the whole body in memory.
//! [`Store::update`] replaces an entry's metadata (a 304 merge) only if the entry is still the
//! one that was read: a head is never paired with a body it does not describe.
//!
//! Stores are generic, not boxed: `CacheLayer<S, Store>` calls them directly, so a memory hit costs
//! a hash-map lookup and no allocation for the body.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::meta::Meta;

/// A boxed error, as used for the sources of [`StoreError`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An entry read from a store.
#[derive(Debug)]
pub struct Hit<B> {
    /// The entry's metadata.
    pub meta: Arc<Meta>,
    /// The entry's body, streamed.
    pub body: B,
}

/// A cache storage backend.
///
/// Implementations must uphold, and `cachio-storage-tests` checks:
/// - an entry is visible only after its writer's [`commit`](StoreWriter::commit) returned `Ok`;
/// - a writer dropped or failed before commit leaves no entry and does not disturb the entry that
///   was visible before it;
/// - of two writers of one key, the entry visible afterwards is one of the two complete bodies,
///   never a mix;
/// - [`get`](Store::get) streams the body: memory per read is bounded, whatever the body size;
/// - a corrupt or unreadable entry is an error or `None`, never wrong bytes.
///
/// # Example
///
/// A function generic over any store:
///
/// ```
/// use bytes::Bytes;
/// use cachio_core::store::{Store, StoreWriter, StoreError};
/// use cachio_core::meta::Meta;
/// use std::sync::Arc;
///
/// async fn put<S: Store>(store: &S, key: &str, meta: Arc<Meta>, body: &[u8]) -> Result<(), StoreError> {
///     let mut w = store.begin(key)?;
///     w.append(Bytes::copy_from_slice(body))?;
///     w.commit(meta, None).await
/// }
/// ```
pub trait Store: Clone + Send + Sync + 'static {
    /// The body of a hit.
    type Body: http_body::Body<Data = Bytes, Error = StoreError> + Send + Unpin + 'static;
    /// A streaming writer for one entry.
    type Writer: StoreWriter;

    /// Reads the entry under `key`, if one is visible.
    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Hit<Self::Body>>, StoreError>> + Send;

    /// Reads the entry under `key` for `request`, the request a cache layer answers with it.
    ///
    /// The layer reads a request's own entry through this (a variant's through
    /// [`get`](Store::get)). A store whose answer depends on the request overrides it: a
    /// replaying cassette names the method and URL of a request it has no recording for. The
    /// default is [`get`](Store::get).
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_core::store::{Store, StoreError};
    ///
    /// async fn stored_for_head<S: Store>(store: &S) -> Result<bool, StoreError> {
    ///     let (head, ()) = http::Request::head("https://example.com/").body(()).unwrap().into_parts();
    ///     Ok(store.get_for("https://example.com/", &head).await?.is_some())
    /// }
    /// ```
    fn get_for(
        &self,
        key: &str,
        request: &http::request::Parts,
    ) -> impl Future<Output = Result<Option<Hit<Self::Body>>, StoreError>> + Send {
        let _ = request;
        self.get(key)
    }

    /// Reads the entry under `key` if that completes without waiting; `None` when it would have
    /// to wait (or the store cannot tell), and the caller then uses [`get`](Store::get).
    ///
    /// A cache layer calls this first so a hit served from memory is answered in `call`, with no
    /// future to allocate. Returning `None` must have no effect a later `get` would notice. The
    /// default is `None`.
    fn try_get(&self, key: &str) -> Option<Result<Option<Hit<Self::Body>>, StoreError>> {
        let _ = key;
        None
    }

    /// Starts writing an entry under `key`. Nothing is visible until the writer commits.
    ///
    /// This must not block: a store that does I/O hands the work to its own task or thread.
    fn begin(&self, key: &str) -> Result<Self::Writer, StoreError>;

    /// Replaces the metadata of the entry under `key` with `meta`, keeping its body (a 304 merge,
    /// RFC 9111 §4.3.4), if that entry is still the one that was read with the metadata
    /// `previous` ([`Meta::same_as`]). An entry written under the key since then has a body of its
    /// own, which `meta` may not describe: it is left as it is. Returns whether an entry was
    /// updated (`false`: no entry, or another one).
    fn update(
        &self,
        key: &str,
        previous: &Meta,
        meta: Arc<Meta>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes the entry under `key`, if any.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The largest body this store will accept, in bytes; a writer past it fails and the entry is
    /// not stored. `None` means no limit of the store's own.
    fn max_body_size(&self) -> Option<u64> {
        None
    }

    /// Removes every entry for which `matches(key, meta)` holds and returns how many it removed
    /// (purges by URL prefix or by tag are built on this).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] from stores that cannot enumerate their entries (the default).
    fn purge<F>(&self, matches: F) -> impl Future<Output = Result<u64, StoreError>> + Send
    where
        F: Fn(&str, &Meta) -> bool + Send + Sync + 'static,
    {
        let _ = matches;
        std::future::ready(Err(StoreError::new(
            ErrorKind::Unsupported,
            "this store cannot enumerate its entries",
        )))
    }

    /// Lists every stored entry: its key and a copy of its metadata, in no particular order.
    ///
    /// Tools that look inside a cache (listing, export) are built on this; bodies are read with
    /// [`get`](Store::get) one entry at a time. The default lists through [`purge`](Store::purge)
    /// with a predicate that keeps every entry, so any store that can purge can be listed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] from stores that cannot enumerate their entries.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_core::store::{Store, StoreError};
    ///
    /// async fn count<S: Store>(store: &S) -> Result<usize, StoreError> {
    ///     Ok(store.scan().await?.len())
    /// }
    /// ```
    fn scan(&self) -> impl Future<Output = Result<Vec<(String, Meta)>, StoreError>> + Send {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let listed = self.purge(move |key: &str, meta: &Meta| {
            sink.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((key.to_owned(), meta.clone()));
            false
        });
        async move {
            listed.await?;
            let mut seen = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Ok(std::mem::take(&mut *seen))
        }
    }
}

/// Writes one entry's body as it streams, then makes the entry visible.
///
/// Dropping a writer without committing aborts it: nothing becomes visible.
pub trait StoreWriter: Send + 'static {
    /// Whether the writer can take more now. A writer whose store has fallen behind (a disk slower
    /// than the origin, say) returns `Pending` and wakes the task when it has caught up; the tee
    /// then waits before it pulls the next chunk from the origin, so the caller receives the body
    /// at the pace the store can write it instead of the store giving up. Never blocks.
    ///
    /// The default is always ready.
    ///
    /// # Errors
    ///
    /// An error means the write is abandoned, as for [`append`](Self::append).
    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), StoreError>> {
        let _ = cx;
        std::task::Poll::Ready(Ok(()))
    }

    /// Appends the next chunk of the body.
    ///
    /// This must not block: a store that does I/O queues the chunk for its own task or thread.
    ///
    /// # Errors
    ///
    /// An error (for example [`ErrorKind::TooLarge`]) means the write is abandoned; the caller drops
    /// the writer and nothing is stored.
    fn append(&mut self, chunk: Bytes) -> Result<(), StoreError>;

    /// Completes the entry with its metadata and makes it visible. `ttl` is how long the entry can
    /// still be of use; the store may drop it after that (it may also drop it earlier to make room).
    fn commit(
        self,
        meta: Arc<Meta>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static;
}

/// What went wrong in a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The backend could not be reached or did not answer in time.
    Unavailable,
    /// Stored bytes failed a check: a checksum, a length, the encoding.
    Corrupt,
    /// The entry was written in a format this version does not read.
    UnknownFormat,
    /// The body is larger than the store accepts.
    TooLarge,
    /// An I/O error.
    Io,
    /// The store does not offer the operation.
    Unsupported,
    /// A purge or an invalidation of the key came after the response was requested (on any node
    /// sharing the store): the write was refused and nothing was stored. Not a fault.
    Invalidated,
    /// Anything else.
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Unavailable => "store unavailable",
            ErrorKind::Corrupt => "corrupt entry",
            ErrorKind::UnknownFormat => "unknown entry format",
            ErrorKind::TooLarge => "entry too large",
            ErrorKind::Io => "store I/O error",
            ErrorKind::Unsupported => "unsupported by this store",
            ErrorKind::Invalidated => "invalidated since it was requested",
            ErrorKind::Other => "store error",
        })
    }
}

/// An error from a store. The cache layer never passes it to its caller: a failing store turns a
/// lookup into a miss and a write into nothing stored, with a `tracing` event.
///
/// # Example
///
/// ```
/// use cachio_core::store::{ErrorKind, StoreError};
///
/// let e = StoreError::new(ErrorKind::Corrupt, "checksum mismatch");
/// assert_eq!(e.kind(), ErrorKind::Corrupt);
/// assert_eq!(e.to_string(), "corrupt entry: checksum mismatch");
/// ```
#[derive(Clone)]
pub struct StoreError {
    kind: ErrorKind,
    source: Arc<dyn StdError + Send + Sync + 'static>,
}

impl StoreError {
    /// An error of `kind` caused by `source`.
    pub fn new(kind: ErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            source: Arc::from(source.into()),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("kind", &self.kind)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.source)
    }
}

/// The message shows the cause already, so the chain goes on with the cause's own source: a
/// caller that prints every source says each thing once.
impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message of an error and of its sources, as a program that reports errors prints them.
    fn chain(e: &(dyn StdError + 'static)) -> Vec<String> {
        let mut out = vec![e.to_string()];
        let mut next = e.source();
        while let Some(e) = next {
            out.push(e.to_string());
            next = e.source();
        }
        out
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("cannot open")
        }
    }

    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_printed_chain_says_the_cause_once() {
        let e = StoreError::new(ErrorKind::Io, std::io::Error::other("disk full"));
        assert_eq!(chain(&e), ["store I/O error: disk full"]);

        let nested = StoreError::new(
            ErrorKind::Unavailable,
            Outer(std::io::Error::other("refused")),
        );
        assert_eq!(
            chain(&nested),
            ["store unavailable: cannot open", "refused"]
        );
    }
}
