//! Cassettes: HTTP exchanges recorded as files people can read, and replayed in tests.
//!
//! A [`Cassette`] is a cachio [`Store`] over a directory. Each recorded response is a small JSON
//! file (the request's method and URL, the request fields its `Vary` selects, the status and
//! every response field line in order) with its body beside it, as the bytes the origin sent.
//! Commit the directory with your tests: it can be reviewed in a pull request, diffed, and edited
//! by hand. The cassette configures the cache layer for its [`Mode`]:
//!
//! - [`Mode::Record`]: every exchange goes to the network once in the run and is written; later
//!   uses in the run replay it. Recordings from before the run are not used.
//! - [`Mode::Replay`]: never the network. A request without a recording is answered with a
//!   `504` naming it and the closest recorded URLs ([`Unmatched`]).
//! - [`Mode::RecordNew`]: replays what is recorded, and records what is not.
//!
//! ```
//! use bytes::Bytes;
//! use cachio_cassette::{Cassette, Mode};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cachio_tower::BoxError> {
//! # let dir = tempfile::tempdir()?;
//! let origin = service_fn(|_req: http::Request<Full<Bytes>>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("hello"))))
//! });
//! let get = || http::Request::get("http://api.test/greeting").body(Full::default()).unwrap();
//!
//! // Record once...
//! let cassette = Cassette::open(dir.path(), Mode::Record)?;
//! let client = ServiceBuilder::new().layer(cassette.layer()).service(origin);
//! let res = client.oneshot(get()).await?;
//! assert_eq!(res.into_body().collect().await?.to_bytes(), "hello");
//!
//! // ... and replay, with no origin at all.
//! let cassette = Cassette::open(dir.path(), Mode::Replay)?;
//! let offline = service_fn(|_req: http::Request<Full<Bytes>>| async {
//!     Err::<http::Response<Full<Bytes>>, _>(std::io::Error::other("no network in replay"))
//! });
//! let client = ServiceBuilder::new().layer(cassette.layer()).service(offline);
//! let res = client.oneshot(get()).await?;
//! assert_eq!(res.into_body().collect().await?.to_bytes(), "hello");
//! # Ok(())
//! # }
//! ```
//!
//! # Files
//!
//! Names derive from the key: host and port, a slug of the path and query, and a short hash of
//! the URL (`127.0.0.1_8080--users-7-1a2b3c4d5e6f.json`); the body file adds the CRC-32 of its
//! bytes (`….1a2b3c4d.body`), so an entry file only ever names the body written with it. A variant
//! of a resource that varies adds its hash (`….0123456789abcdef.json`), and the resource's own
//! file lists its variants. To edit a body by hand, edit its file and the `length` the entry
//! records; the name may stay. JSON keys come in a fixed order, pretty-printed, with a final newline; field values
//! are written one byte a character (ISO-8859-1), so any value round-trips. A replay changes
//! nothing on disk, and a recording holds no time of its own: the exchange's times are the
//! `Date` the origin sent (a response without one keeps its times in `times_us`). So recording
//! the same responses again leaves the files byte for byte as they were.
//!
//! A file that is not valid JSON, or whose body file is missing or of another length than it
//! records, is a miss with a `tracing` warning, never a panic or a wrong body.
//!
//! # Redaction
//!
//! `Authorization`, `Cookie` and `Proxy-Authorization` are written as `REDACTED` wherever they
//! would be recorded; see [`CassetteBuilder::mask`], [`CassetteBuilder::remove`] and
//! [`CassetteBuilder::redact_with`]. The only request fields recorded are those a response's
//! `Vary` selects, and a response that varies on a field redaction changes is not recorded at
//! all (with a warning): its file name would derive from the secret, and a recording with another
//! value could never be replayed. It goes to the network in every run but `Replay`.
//!
//! # What is recorded
//!
//! `GET` responses (`HEAD` is answered from them), as the layer stores them: without hop-by-hop
//! fields, and with a `Date` added when the origin sent none. By default every complete response
//! is recorded, also those RFC 9111 would not store (`no-store`, `private`, no freshness):
//! [`CassetteBuilder::record_all`] turns that off. Other methods are passed to the inner service
//! unrecorded in every mode.

mod body;
mod file;
mod mode;
mod redact;
mod store;
mod unmatched;
mod writer;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use bytes::Bytes;
use cachio_core::meta::{Meta, ResponseMeta};
#[cfg(doc)]
use cachio_core::store::Store;
use cachio_core::store::{ErrorKind, Hit, StoreError};
use cachio_tower::{CacheLayer, CacheMode};
use http::header::HeaderName;

pub use body::CassetteBody;
pub use mode::{MODE_VAR, Mode, UnknownMode};
pub use redact::{MASK, Recording};
pub use unmatched::{CLOSEST, UNMATCHED, Unmatched};
pub use writer::CassetteWriter;

use crate::file::EntryFile;
use crate::redact::Redact;

/// A store of recorded HTTP exchanges in a directory of readable files; see the
/// [crate documentation](crate).
///
/// Cheap to clone: clones share the directory and what was recorded in this run.
///
/// # Example
///
/// With the reqwest middleware, give the cassette's layer; with `cachio::Client`, give the
/// cassette as the store and let it set the layer's options
/// (`Client::builder(dir).store(cassette.clone()).layer(move |layer| options.configure(layer))`,
/// as the tests in the `cachio` crate do):
///
/// ```
/// use cachio_cassette::{Cassette, Mode};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let cassette = Cassette::open(dir.path(), Mode::Replay)?;
/// let reqwest = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(cachio_reqwest::Cache::new(cassette.layer()))
///     .build();
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Cassette {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    mode: Mode,
    record_all: bool,
    follow_freshness: bool,
    pub(crate) redact: Redact,
    /// Held to open an entry's files, and exclusively to rename or remove them, so that a
    /// reader never pairs a file with a body of another entry.
    files: RwLock<()>,
    /// The entry files written in this run (in [`Mode::Record`], the only ones read).
    written: Mutex<HashSet<String>>,
    pub(crate) next_temp: AtomicU64,
}

impl Inner {
    fn read_lock(&self) -> RwLockReadGuard<'_, ()> {
        self.files
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn write_lock(&self) -> RwLockWriteGuard<'_, ()> {
        self.files
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn recorded(&self, json: &str) {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(json.to_owned());
    }

    fn recorded_in_run(&self, json: &str) -> bool {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(json)
    }
}

/// The file names of one key's entry.
pub(crate) struct Names {
    pub(crate) stem: String,
    pub(crate) json: String,
}

impl Names {
    pub(crate) fn of(key: &str) -> Self {
        let stem = file::stem(key);
        Self {
            json: format!("{stem}.json"),
            stem,
        }
    }

    /// The name of a body file: named by its content's CRC-32 as well, so that an entry file
    /// only ever names the body written with it, and a body recorded again keeps its name.
    pub(crate) fn body(&self, crc: u32) -> String {
        format!("{}.{crc:08x}.body", self.stem)
    }
}

/// The options of a [`Cassette`]; [`Cassette::builder`] makes one.
///
/// # Example
///
/// ```
/// use cachio_cassette::{Cassette, Mode};
///
/// # let dir = tempfile::tempdir().unwrap();
/// let cassette = Cassette::builder(dir.path())
///     .mode(Mode::RecordNew)
///     .remove(http::header::SET_COOKIE)
///     .mask("x-api-key")
///     .record_all(false)
///     .open()
///     .unwrap();
/// assert_eq!(cassette.mode(), Mode::RecordNew);
/// ```
#[must_use]
pub struct CassetteBuilder {
    dir: PathBuf,
    mode: Mode,
    record_all: bool,
    follow_freshness: bool,
    redact: Redact,
    invalid: Option<String>,
}

impl CassetteBuilder {
    /// The mode ([`Mode::Replay`] by default).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Whether to record the responses RFC 9111 would not store (`no-store`, `private` in a
    /// shared cache, a status without freshness); on by default. See
    /// [`CacheLayer::store_all`].
    pub fn record_all(mut self, on: bool) -> Self {
        self.record_all = on;
        self
    }

    /// Whether recordings follow RFC 9111 freshness in [`Mode::Record`] and [`Mode::RecordNew`]:
    /// a stale recording is then validated with the origin, as a cache would, for tests of caching
    /// itself. Off by default: a recording is served whatever its age. [`Mode::Replay`] never
    /// goes to the network, so it serves recordings whatever this says.
    pub fn follow_freshness(mut self, on: bool) -> Self {
        self.follow_freshness = on;
        self
    }

    fn name(&mut self, name: impl TryInto<HeaderName>) -> Option<HeaderName> {
        match name.try_into() {
            Ok(n) => Some(n),
            Err(_) => {
                self.invalid
                    .get_or_insert_with(|| "an invalid header name to redact".to_owned());
                None
            }
        }
    }

    /// Writes the field `name` as [`MASK`] wherever it would be recorded.
    /// `Authorization`, `Cookie` and `Proxy-Authorization` are masked by default.
    pub fn mask(mut self, name: impl TryInto<HeaderName>) -> Self {
        if let Some(n) = self.name(name) {
            self.redact.mask.push(n);
        }
        self
    }

    /// Records the field `name` as it is, though it is masked by default.
    pub fn unmask(mut self, name: impl TryInto<HeaderName>) -> Self {
        if let Some(n) = self.name(name) {
            self.redact.mask.retain(|m| *m != n);
        }
        self
    }

    /// Leaves the field `name` out of recordings (`Set-Cookie`, say).
    pub fn remove(mut self, name: impl TryInto<HeaderName>) -> Self {
        if let Some(n) = self.name(name) {
            self.redact.remove.push(n);
        }
        self
    }

    /// Runs `f` on every recording before it is written, after the removals and masks; what it
    /// leaves is what is written. Called again, each hook runs in turn.
    pub fn redact_with<F>(mut self, f: F) -> Self
    where
        F: Fn(&mut Recording<'_>) + Send + Sync + 'static,
    {
        self.redact.add_hook(f);
        self
    }

    /// Opens the cassette, creating its directory if needed.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created, or an option was invalid.
    pub fn open(self) -> Result<Cassette, StoreError> {
        if let Some(e) = self.invalid {
            return Err(StoreError::new(ErrorKind::Other, e));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| StoreError::new(ErrorKind::Io, e))?;
        remove_abandoned(&self.dir);
        Ok(Cassette {
            inner: Arc::new(Inner {
                dir: self.dir,
                mode: self.mode,
                record_all: self.record_all,
                follow_freshness: self.follow_freshness,
                redact: self.redact,
                files: RwLock::new(()),
                written: Mutex::default(),
                next_temp: AtomicU64::new(0),
            }),
        })
    }
}

/// Removes the temporary files of writers whose process is gone (killed in the middle of a
/// recording), where the system tells which processes run (`/proc`).
fn remove_abandoned(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    if !Path::new("/proc/self").exists() {
        return;
    }
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.ends_with(".tmp"))
            .and_then(|n| n.strip_prefix('.'))
            .and_then(|n| n.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl fmt::Debug for CassetteBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CassetteBuilder")
            .field("dir", &self.dir)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Cassette {
    /// A cassette in directory `dir` with the default options, in `mode`.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_cassette::{Cassette, Mode};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let cassette = Cassette::open(dir.path().join("api"), Mode::Record).unwrap();
    /// assert!(cassette.dir().ends_with("api"));
    /// ```
    pub fn open(dir: impl Into<PathBuf>, mode: Mode) -> Result<Self, StoreError> {
        Self::builder(dir).mode(mode).open()
    }

    /// A builder for a cassette in directory `dir`.
    pub fn builder(dir: impl Into<PathBuf>) -> CassetteBuilder {
        CassetteBuilder {
            dir: dir.into(),
            mode: Mode::default(),
            record_all: true,
            follow_freshness: false,
            redact: Redact::default(),
            invalid: None,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// Sets the options of `layer` for this cassette's mode: the mode of requests that carry no
    /// [`CacheMode`] ([`CacheMode::OnlyIfCached`] to replay, [`CacheMode::ForceCache`] to
    /// record, or [`CacheMode::Default`] with
    /// [`follow_freshness`](CassetteBuilder::follow_freshness)), and
    /// [`store_all`](CacheLayer::store_all). For `cachio::Client`'s `layer` option; a request's
    /// own `CacheMode` still wins.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_cassette::{Cassette, Mode};
    /// use cachio_tower::CacheLayer;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let cassette = Cassette::open(dir.path(), Mode::Replay).unwrap();
    /// let layer = cassette.configure(CacheLayer::shared(())).with_store(cassette.clone());
    /// ```
    pub fn configure<St>(&self, layer: CacheLayer<St>) -> CacheLayer<St> {
        let mode = match self.inner.mode {
            Mode::Replay => CacheMode::OnlyIfCached,
            _ if self.inner.follow_freshness => CacheMode::Default,
            _ => CacheMode::ForceCache,
        };
        layer.default_mode(mode).store_all(self.inner.record_all)
    }

    /// A private cache layer over this cassette, configured for its mode (see
    /// [`configure`](Self::configure)).
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_cassette::{Cassette, Mode};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let cassette = Cassette::open(dir.path(), Mode::RecordNew).unwrap();
    /// let layer = cassette.layer().cache_name("fixtures");
    /// ```
    pub fn layer(&self) -> CacheLayer<Cassette> {
        self.configure(CacheLayer::private(self.clone()))
    }

    /// Reads the entry file of `key`: `None` when there is none, or it is bad (with a warning).
    fn read(&self, key: &str) -> Result<Option<(Meta, CassetteBody)>, StoreError> {
        let names = Names::of(key);
        let _open = self.inner.read_lock();
        let path = self.inner.dir.join(&names.json);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::new(ErrorKind::Io, e)),
        };
        let bad = |why: &dyn fmt::Display| {
            tracing::warn!(file = %path.display(), "cassette entry unreadable, treated as a miss: {why}");
            Ok(None)
        };
        let entry = match file::parse(&bytes) {
            Ok(e) => e,
            Err(e) => return bad(&e),
        };
        if entry.key() != key {
            // Another key with the same file name (a hash collision), or a file copied by hand.
            return bad(&format!("it records {:?}", entry.key()));
        }
        let meta = match entry.meta() {
            Ok(m) => m,
            Err(e) => return bad(&e),
        };
        let body = match entry.body() {
            None => CassetteBody::empty(),
            Some(b) if !file::plain_name(&b.file) => {
                return bad(&format!("body file {:?} is not a plain file name", b.file));
            }
            Some(b) => {
                let file = match std::fs::File::open(self.inner.dir.join(&b.file)) {
                    Ok(f) => f,
                    Err(e) => return bad(&format!("body file {}: {e}", b.file)),
                };
                let len = file
                    .metadata()
                    .map_err(|e| StoreError::new(ErrorKind::Io, e))?
                    .len();
                if len != b.length {
                    return bad(&format!(
                        "body file {} has {len} bytes, the entry records {}",
                        b.file, b.length
                    ));
                }
                CassetteBody::file(file, len)
            }
        };
        Ok(Some((meta, body)))
    }

    /// Every entry file of the directory, read; bad ones are skipped with a warning.
    fn entries(&self) -> Result<Vec<(String, EntryFile)>, StoreError> {
        let io = |e| StoreError::new(ErrorKind::Io, e);
        let mut out = Vec::new();
        for dirent in std::fs::read_dir(&self.inner.dir).map_err(io)? {
            let dirent = dirent.map_err(io)?;
            let name = dirent.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let parsed = std::fs::read(dirent.path())
                .map_err(|e| e.to_string())
                .and_then(|b| file::parse(&b));
            match parsed {
                Ok(entry) => out.push((name, entry)),
                Err(e) => {
                    tracing::warn!(file = name, "cassette entry unreadable, skipped: {e}");
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The answer to a request of `method` for `key` in replay when nothing is recorded for it.
    fn unmatched(&self, key: &str, method: http::Method) -> Hit<CassetteBody> {
        let urls = self
            .entries()
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, e)| e.request.variant.is_none())
            .map(|(_, e)| e.request.url);
        let unmatched = Unmatched {
            method,
            url: key.to_owned(),
            closest: unmatched::closest(key, urls, 5),
        };
        let text = format!("{unmatched}(cassette {})\n", self.inner.dir.display());
        let now = SystemTime::now();
        let meta = ResponseMeta::new(
            http::StatusCode::GATEWAY_TIMEOUT,
            http::Version::HTTP_11,
            unmatched.headers(),
            Vec::new(),
            now,
            now,
        );
        Hit {
            meta: file::shared(Meta::Response(meta)),
            body: CassetteBody::bytes(Bytes::from(text)),
        }
    }

    /// Removes the files of `name` (an entry file name) and of its body.
    fn remove(&self, json: &str, body: Option<&str>) -> std::io::Result<()> {
        let _change = self.inner.write_lock();
        writer::remove_if_present(&self.inner.dir.join(json))?;
        if let Some(body) = body.filter(|b| file::plain_name(b)) {
            writer::remove_if_present(&self.inner.dir.join(body))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Cassette {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cassette")
            .field("dir", &self.inner.dir)
            .field("mode", &self.inner.mode)
            .field("record_all", &self.inner.record_all)
            .field("follow_freshness", &self.inner.follow_freshness)
            .field("redact", &self.inner.redact)
            .finish()
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => rt
            .spawn_blocking(f)
            .await
            .map_err(|e| StoreError::new(ErrorKind::Other, e))?,
        Err(_) => f(),
    }
}
