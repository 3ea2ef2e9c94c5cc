//! What a `DIR` argument is, and the store it opens as.
//!
//! Every kind of cache directory the command knows is recognised here, by the files it holds,
//! and opened as one variant of [`Opened`]; the commands work on any [`Store`](cachio_core::store::Store) through
//! [`with_store!`](crate::with_store), and the few that need more of one kind ask for it by
//! matching.
//!
//! Two kinds: a [`FjallStore`] directory, which is both what `cachio::embedded` keeps on disk
//! and a gateway's `--disk-dir`; and a [`Cassette`], a directory of recorded exchanges (one JSON
//! file each, with its body beside it).

use std::fmt;
use std::path::{Path, PathBuf};

use cachio_cassette::Cassette;
use cachio_core::store::{ErrorKind, StoreError};
use cachio_fjall::{FjallStore, OnDamage};

/// The file that marks a [`FjallStore`] directory.
const FJALL_LOCK: &str = "cachio-fjall.lock";
/// The database inside a [`FjallStore`] directory.
const FJALL_DB: &str = "db";

/// A cache directory, opened.
pub(crate) enum Opened {
    /// The disk store of `cachio::embedded` and of a gateway's `--disk-dir`.
    Disk(FjallStore),
    /// A cassette of recorded exchanges.
    Cassette(Cassette),
}

impl Opened {
    /// What kind of directory this is, for people.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Opened::Disk(_) => "disk store (cachio::embedded, or a gateway's --disk-dir)",
            Opened::Cassette(_) => "cassette (recorded exchanges)",
        }
    }

    /// The body length of the entry under `key`, without reading the body or changing
    /// anything (`None`: unknown).
    pub(crate) fn body_len(&self, key: &str) -> Option<u64> {
        match self {
            Opened::Disk(s) => s.body_len(key).ok().flatten(),
            Opened::Cassette(_) => None,
        }
    }
}

/// Runs `$body` with `$store` bound to the store of an [`Opened`], whatever its kind.
#[macro_export]
macro_rules! with_store {
    ($opened:expr, $store:ident => $body:expr) => {
        match $opened {
            $crate::open::Opened::Disk($store) => $body,
            $crate::open::Opened::Cassette($store) => $body,
        }
    };
}

/// Why a directory could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// Nothing there.
    Missing(PathBuf),
    /// Something there that is no cache directory the command knows.
    Unknown(PathBuf),
    /// A program has it open.
    InUse(PathBuf),
    /// The store failed to open it.
    Store(PathBuf, StoreError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Missing(p) => write!(f, "{}: no such directory", p.display()),
            OpenError::Unknown(p) => write!(
                f,
                "{}: not a cachio cache directory (expected the directory of cachio::embedded or \
                 a gateway's --disk-dir, which hold `{FJALL_LOCK}` and `{FJALL_DB}/`, or a \
                 cassette: `.json` files with their `.body` files)",
                p.display()
            ),
            OpenError::InUse(p) => write!(
                f,
                "{}: the directory is in use by a running program (an application or a gateway \
                 has it open); stop it first, then run this again",
                p.display()
            ),
            OpenError::Store(p, e) => write!(f, "{}: cannot open the store: {e}", p.display()),
        }
    }
}

impl std::error::Error for OpenError {}

/// Whether `dir` looks like a [`FjallStore`] directory.
fn is_fjall(dir: &Path) -> bool {
    dir.join(FJALL_LOCK).is_file() || dir.join(FJALL_DB).is_dir()
}

/// Whether `dir` looks like a cassette: it holds recordings (`.json`) and nothing but
/// recordings, their bodies and hidden files.
fn is_cassette(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut recordings = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            return false;
        }
        if name.ends_with(".json") {
            recordings += 1;
        } else if !name.ends_with(".body") {
            return false;
        }
    }
    recordings > 0
}

/// Opens a cassette so that every recording is seen (the mode that keeps them all) and nothing
/// is recorded but what the command writes.
fn open_cassette(dir: &Path) -> Result<Opened, OpenError> {
    Cassette::open(dir, cachio_cassette::Mode::RecordNew)
        .map(Opened::Cassette)
        .map_err(|e| OpenError::Store(dir.to_owned(), e))
}

/// The budget the command opens a disk store with: more than any directory holds, so that
/// nothing is evicted while the command runs (the budget is not stored with the directory; the
/// program that uses it applies its own when it opens it again).
const NO_BUDGET: u64 = 1 << 50;

fn open_fjall(dir: &Path) -> Result<Opened, OpenError> {
    // A damaged directory is reported, never moved aside: this command only looks.
    let opened = FjallStore::builder(dir)
        .on_damage(OnDamage::Fail)
        .budget_bytes(NO_BUDGET)
        .max_object_size(NO_BUDGET)
        .open();
    match opened {
        Ok(s) => Ok(Opened::Disk(s)),
        Err(e) if e.kind() == ErrorKind::Unavailable => Err(OpenError::InUse(dir.to_owned())),
        Err(e) => Err(OpenError::Store(dir.to_owned(), e)),
    }
}

/// Opens the cache directory `dir`, which must exist and be of a kind the command knows.
pub(crate) fn open(dir: &Path) -> Result<Opened, OpenError> {
    if !dir.exists() {
        return Err(OpenError::Missing(dir.to_owned()));
    }
    if is_fjall(dir) {
        return open_fjall(dir);
    }
    if is_cassette(dir) {
        return open_cassette(dir);
    }
    Err(OpenError::Unknown(dir.to_owned()))
}

/// Opens `dir` as [`open`] does, or, when it does not exist or is empty, makes a new disk store
/// there (for an import).
pub(crate) fn open_or_create(dir: &Path) -> Result<Opened, OpenError> {
    let empty = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(_) => false,
    };
    if empty { open_fjall(dir) } else { open(dir) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing");
        assert!(matches!(open(&missing), Err(OpenError::Missing(_))));
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let err = open(dir.path()).err().unwrap();
        assert!(matches!(err, OpenError::Unknown(_)));
        assert!(err.to_string().contains("not a cachio cache directory"));

        let store_dir = dir.path().join("store");
        let first = open_or_create(&store_dir).unwrap();
        assert!(matches!(first, Opened::Disk(_)));
        let err = open(&store_dir).err().unwrap();
        assert!(matches!(err, OpenError::InUse(_)), "{err}");
        drop(first);
        assert!(open(&store_dir).is_ok());
    }
}
