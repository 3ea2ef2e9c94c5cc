//! What opening does with a directory it cannot open as a store: a cache holds nothing that
//! cannot be fetched again, so by default it moves the directory aside and starts empty.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use cachio_core::store::{ErrorKind, StoreError};

/// What [`FjallStoreBuilder::open`](crate::FjallStoreBuilder::open) does when the directory
/// cannot be opened as a store: fjall finds its files damaged beyond what its recovery repairs,
/// the files were written by another format version, the path is a file, or the directory
/// cannot be read.
///
/// A directory that another store has open is not damage: that is an
/// [`ErrorKind::Unavailable`] error whatever this says, and nothing is moved.
///
/// # Example
///
/// ```
/// use cachio_fjall::{FjallStore, OnDamage};
///
/// # let dir = tempfile::tempdir().unwrap();
/// # let dir = dir.path().join("cache");
/// std::fs::write(&dir, b"not a directory")?;
/// let store = FjallStore::builder(&dir).on_damage(OnDamage::Recover).open()?;
/// let aside = store.moved_aside().expect("the file was moved aside");
/// assert_eq!(std::fs::read(aside)?, b"not a directory");
///
/// std::fs::write(dir.with_extension("other"), b"not a directory either")?;
/// let refused = FjallStore::builder(dir.with_extension("other"))
///     .on_damage(OnDamage::Fail)
///     .open();
/// assert!(refused.is_err());
/// assert!(dir.with_extension("other").is_file(), "left as it was");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OnDamage {
    /// Move the directory aside, to `<dir>.corrupt-<seconds since 1970>` beside it (removing
    /// the copy an earlier recovery left there, so at most one is kept), log an `error` event
    /// that says where, and start with an empty store. Nothing is deleted but that older copy.
    #[default]
    Recover,
    /// Return the error, and leave the directory as it is.
    Fail,
}

/// Whether an error from opening `path` is the directory's own fault, which moving it aside
/// mends: damaged or foreign files, a file where the directory should be, a directory that
/// cannot be read. Never a directory in use.
pub(crate) fn is_damage(path: &Path, err: &StoreError) -> bool {
    match err.kind() {
        ErrorKind::Corrupt | ErrorKind::Other => true,
        // An I/O error on a path that exists: its files (or the path itself) are the trouble.
        // One that does not exist could not be created, and moving nothing aside mends nothing.
        ErrorKind::Io => path.symlink_metadata().is_ok(),
        _ => false,
    }
}

/// Moves `path` aside to `<path>.corrupt-<seconds>`, removing any earlier such copy first, and
/// returns where it went.
pub(crate) fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        StoreError::new(ErrorKind::Io, format!("{what} {}: {e}", p.display()))
    };
    let name = path
        .file_name()
        .ok_or_else(|| {
            StoreError::new(
                ErrorKind::Io,
                format!("{} has no name to move aside", path.display()),
            )
        })?
        .to_string_lossy()
        .into_owned();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let prefix = format!("{name}.corrupt-");
    let earlier = std::fs::read_dir(&parent).map_err(|e| io("cannot list", &parent, e))?;
    for entry in earlier.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let old = entry.path();
            let removed = if old.is_dir() {
                std::fs::remove_dir_all(&old)
            } else {
                std::fs::remove_file(&old)
            };
            removed.map_err(|e| io("cannot remove the earlier damaged copy", &old, e))?;
        }
    }
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aside = parent.join(format!("{prefix}{secs}"));
    std::fs::rename(path, &aside).map_err(|e| io("cannot move aside", path, e))?;
    Ok(aside)
}
