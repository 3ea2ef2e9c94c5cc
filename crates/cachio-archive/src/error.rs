//! The error of every export and import.

use std::fmt;

use cachio_core::store::StoreError;

/// Which entry of an archive an error is about: its place in the file and its URL.
///
/// # Example
///
/// ```
/// use cachio_archive::EntryRef;
///
/// let at = EntryRef::new(3, "https://example.com/a");
/// assert_eq!(at.to_string(), "log.entries[3] (https://example.com/a)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRef {
    /// The entry's index in the archive, from 0 (`log.entries[index]` in a HAR).
    pub index: usize,
    /// The entry's URL, or an empty string when it has none.
    pub url: String,
}

impl EntryRef {
    /// The entry at `index` with `url`.
    pub fn new(index: usize, url: impl Into<String>) -> Self {
        Self {
            index,
            url: url.into(),
        }
    }
}

impl fmt::Display for EntryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.url.is_empty() {
            write!(f, "log.entries[{}]", self.index)
        } else {
            write!(f, "log.entries[{}] ({})", self.index, self.url)
        }
    }
}

/// What went wrong in an export or an import.
///
/// An import that fails leaves the store as it was: the archive is checked whole before
/// anything is written, and a store that fails in the middle of the writes has what was
/// written removed again.
///
/// # Example
///
/// ```
/// use cachio_archive::{ArchiveError, EntryRef};
///
/// let e = ArchiveError::BadEntry {
///     at: EntryRef::new(0, "https://example.com/"),
///     problem: "no response".into(),
/// };
/// assert_eq!(e.to_string(), "log.entries[0] (https://example.com/): no response");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Reading or writing the archive failed.
    Io(std::io::Error),
    /// The archive is not valid JSON, or not shaped as a HAR; `at` names the entry being read
    /// when that is known.
    Json {
        /// The entry being read, when the error is inside one.
        at: Option<EntryRef>,
        /// The parser's error (with its line and column).
        source: serde_json::Error,
    },
    /// An entry of the archive cannot be imported.
    BadEntry {
        /// The entry.
        at: EntryRef,
        /// Why.
        problem: String,
    },
    /// An entry is larger than the import accepts.
    TooLarge {
        /// The entry.
        at: EntryRef,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The store failed.
    Store(StoreError),
    /// An entry could not be read back as it was listed: it was written, removed or found
    /// damaged between the listing and the read of its body.
    Changed {
        /// The entry's cache key.
        key: String,
    },
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveError::Io(e) => write!(f, "I/O error: {e}"),
            ArchiveError::Json {
                at: Some(at),
                source,
            } => write!(f, "{at}: invalid HAR: {source}"),
            ArchiveError::Json { at: None, source } => write!(f, "invalid HAR: {source}"),
            ArchiveError::BadEntry { at, problem } => write!(f, "{at}: {problem}"),
            ArchiveError::TooLarge { at, limit } => {
                write!(f, "{at}: larger than the import limit of {limit} bytes")
            }
            ArchiveError::Store(e) => write!(f, "store error: {e}"),
            ArchiveError::Changed { key } => write!(
                f,
                "the entry {key:?} could not be read back as it was listed (written, removed or \
                 found damaged meanwhile); check the store, then export again"
            ),
        }
    }
}

impl std::error::Error for ArchiveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // The message shows the cause already: the chain goes on with the cause's own source.
            ArchiveError::Io(e) => e.source(),
            ArchiveError::Json { source, .. } => source.source(),
            ArchiveError::Store(e) => e.source(),
            _ => None,
        }
    }
}

impl From<std::io::Error> for ArchiveError {
    fn from(e: std::io::Error) -> Self {
        ArchiveError::Io(e)
    }
}

impl From<StoreError> for ArchiveError {
    fn from(e: StoreError) -> Self {
        ArchiveError::Store(e)
    }
}
