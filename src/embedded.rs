//! The embedded default: a memory tier in front of a disk directory.

use std::path::{Path, PathBuf};

use cachio_core::store::StoreError;
use cachio_core::tiered::Tiered;
use cachio_fjall::{Durability, FjallStore};
use cachio_moka::MokaStore;

/// The store [`embedded`] opens: a [`MemoryStore`](crate::MemoryStore) in front of a
/// [`DiskStore`](crate::DiskStore).
///
/// Cloning is cheap; clones share both tiers. [`first`](Tiered::first) and
/// [`second`](Tiered::second) give the memory and the disk tier.
pub type EmbeddedStore = Tiered<MokaStore, FjallStore>;

/// Opens the embedded default in directory `dir`: [`Embedded::DEFAULT_MEMORY_BYTES`] of memory
/// in front of [`Embedded::DEFAULT_DISK_BYTES`] of disk. [`Embedded::builder`] sets other budgets.
///
/// The directory is created if needed. Entries committed to it survive the process: the next
/// program that opens it starts with an empty memory tier and answers from disk, copying what it
/// reads into memory.
///
/// Bodies up to 1/8 of the memory budget (8 MiB by default) are kept in both tiers; larger ones
/// on disk only, up to 1/8 of the disk budget (128 MiB by default) and the layer's
/// [`max_object_size`](crate::CacheLayer::max_object_size) (64 MiB by default).
///
/// This blocks while the disk store opens (and, after a crash, recovers its journal): call it
/// at start-up, or inside `tokio::task::spawn_blocking`.
///
/// # Errors
///
/// As [`DiskStoreBuilder::open`](crate::DiskStoreBuilder::open): the directory is already open
/// (in this process or another), or cannot be created. A directory that cannot be opened as a
/// store (damaged, another format version, unreadable) is moved aside to
/// `<dir>.corrupt-<seconds>` and the cache starts empty.
///
/// # Example
///
/// A response stored by one program is served from disk by the next one, without asking the
/// origin again.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// use bytes::Bytes;
/// use cachio::{CACHE_STATUS, CacheLayer};
/// use http_body_util::{BodyExt, Full};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let calls = Arc::new(AtomicUsize::new(0));
/// let counter = calls.clone();
/// let origin = service_fn(move |_req: http::Request<Full<Bytes>>| {
///     counter.fetch_add(1, Ordering::Relaxed);
///     async {
///         Ok::<_, std::convert::Infallible>(
///             http::Response::builder()
///                 .header("cache-control", "max-age=3600")
///                 .body(Full::new(Bytes::from_static(b"hello")))
///                 .unwrap(),
///         )
///     }
/// });
/// let get = || http::Request::get("http://example.com/").body(Full::default()).unwrap();
/// let dir = tempfile::tempdir()?;
///
/// // A first program fetches the URL; reading the body to the end stores it.
/// let client = CacheLayer::private(cachio::embedded(dir.path())?).layer(origin.clone());
/// client.oneshot(get()).await?.into_body().collect().await?;
///
/// // The next program, with the same directory: the memory tier is empty, the disk is not.
/// let client = CacheLayer::private(cachio::embedded(dir.path())?).layer(origin.clone());
/// let res = client.oneshot(get()).await?;
/// assert!(res.headers()[CACHE_STATUS].to_str()?.contains("; hit"));
/// assert_eq!(res.into_body().collect().await?.to_bytes(), "hello");
/// assert_eq!(calls.load(Ordering::Relaxed), 1);
/// # Ok(())
/// # }
/// ```
pub fn embedded(dir: impl AsRef<Path>) -> Result<EmbeddedStore, StoreError> {
    Embedded::builder(dir).open()
}

/// The embedded default: a memory tier in front of a disk directory. See [`embedded`], which
/// opens it with the default budgets, and [`Embedded::builder`] for others.
///
/// This type has no values: it names the defaults and the builder.
#[derive(Debug)]
pub enum Embedded {}

impl Embedded {
    /// The memory budget unless configured otherwise: 64 MiB.
    pub const DEFAULT_MEMORY_BYTES: u64 = 64 << 20;

    /// The disk budget unless configured otherwise: 1 GiB.
    pub const DEFAULT_DISK_BYTES: u64 = 1 << 30;

    /// A builder for the embedded store in directory `dir`, with
    /// [`DEFAULT_MEMORY_BYTES`](Self::DEFAULT_MEMORY_BYTES),
    /// [`DEFAULT_DISK_BYTES`](Self::DEFAULT_DISK_BYTES) and [`Durability::Flush`].
    ///
    /// # Example
    ///
    /// ```
    /// use cachio::{Embedded, Store};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Embedded::builder(dir.path())
    ///     .memory_bytes(256 << 20)
    ///     .disk_bytes(10 << 30)
    ///     .open()?;
    /// assert_eq!(store.first().max_capacity_bytes(), 256 << 20);
    /// assert_eq!(store.second().budget_bytes(), 10 << 30);
    /// assert_eq!(store.max_body_size(), Some(1280 << 20)); // 1/8 of the disk budget
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(dir: impl AsRef<Path>) -> EmbeddedBuilder {
        EmbeddedBuilder {
            dir: dir.as_ref().to_owned(),
            memory_bytes: Self::DEFAULT_MEMORY_BYTES,
            disk_bytes: Self::DEFAULT_DISK_BYTES,
            durability: Durability::default(),
        }
    }
}

/// Builds an [`EmbeddedStore`]. Made by [`Embedded::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct EmbeddedBuilder {
    dir: PathBuf,
    memory_bytes: u64,
    disk_bytes: u64,
    durability: Durability,
}

impl EmbeddedBuilder {
    /// Sets the memory budget in bytes ([`Embedded::DEFAULT_MEMORY_BYTES`] by default). Bodies
    /// up to 1/8 of it are kept in memory too.
    pub fn memory_bytes(self, bytes: u64) -> Self {
        Self {
            memory_bytes: bytes,
            ..self
        }
    }

    /// Sets the disk budget in bytes ([`Embedded::DEFAULT_DISK_BYTES`] by default): the most the
    /// stored entries may add up to; the least recently used go first. Bodies up to 1/8 of it
    /// are stored. See [`DiskStoreBuilder::budget_bytes`](crate::DiskStoreBuilder::budget_bytes)
    /// for the space the directory takes beyond it.
    pub fn disk_bytes(self, bytes: u64) -> Self {
        Self {
            disk_bytes: bytes,
            ..self
        }
    }

    /// Sets what a crash may lose ([`Durability::Flush`] by default: nothing committed, unless
    /// the machine itself fails).
    pub fn durability(self, durability: Durability) -> Self {
        Self { durability, ..self }
    }

    /// Opens the disk tier (creating the directory if needed) and puts a new memory tier in
    /// front of it. Blocks while the disk store opens; see [`embedded`].
    ///
    /// # Errors
    ///
    /// As [`embedded`].
    pub fn open(self) -> Result<EmbeddedStore, StoreError> {
        let disk = FjallStore::builder(&self.dir)
            .budget_bytes(self.disk_bytes)
            .durability(self.durability)
            .open()?;
        Ok(Tiered::new(MokaStore::new(self.memory_bytes), disk))
    }
}
