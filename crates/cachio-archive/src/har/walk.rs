//! Reading a HAR one entry at a time: the file is parsed as a stream, so an import holds one
//! entry (and its body) in memory, never the whole file, and a file far past the size an entry
//! may take is refused while it is read.

use std::fmt;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::import::RawEntry;
use crate::{ArchiveError, EntryRef};

/// Counts the bytes read for the entry being parsed and fails past its limit, so that one
/// enormous entry is refused before it is all in memory.
struct Budgeted<R> {
    inner: R,
    used: Arc<AtomicU64>,
    limit: u64,
    tripped: Arc<AtomicBool>,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.used.fetch_add(n as u64, Ordering::Relaxed) + n as u64 > self.limit {
            self.tripped.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other("entry too large"));
        }
        Ok(n)
    }
}

/// What the entry visitor shares with its caller.
struct Walk<'f> {
    on_entry: &'f mut OnEntry<'f>,
    /// The index of the entry being read.
    current: Arc<AtomicUsize>,
    used: Arc<AtomicU64>,
    /// The error of `on_entry` that stopped the walk.
    stopped: Option<ArchiveError>,
    saw_entries: bool,
}

type OnEntry<'a> = dyn FnMut(usize, RawEntry) -> Result<(), ArchiveError> + 'a;

struct Top<'w, 'f>(&'w mut Walk<'f>);
struct Log<'w, 'f>(&'w mut Walk<'f>);
struct Entries<'w, 'f>(&'w mut Walk<'f>);

impl<'de> DeserializeSeed<'de> for Top<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Top<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a HAR object with a \"log\"")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "log" {
                map.next_value_seed(Log(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Log<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Log<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a HAR log object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "entries" {
                self.0.saw_entries = true;
                map.next_value_seed(Entries(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Entries<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of HAR entries")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let walk = self.0;
        loop {
            let index = walk.current.load(Ordering::Relaxed);
            walk.used.store(0, Ordering::Relaxed);
            let Some(entry) = seq.next_element::<RawEntry>()? else {
                return Ok(());
            };
            if let Err(e) = (walk.on_entry)(index, entry) {
                walk.stopped = Some(e);
                return Err(de::Error::custom("stopped"));
            }
            walk.current.store(index + 1, Ordering::Relaxed);
        }
    }
}

/// Parses the HAR at `path` and hands each entry to `on_entry`, one at a time; gives the number
/// of entries.
pub(super) fn walk_entries<'f>(
    path: &Path,
    body_limit: u64,
    on_entry: &'f mut OnEntry<'f>,
) -> Result<usize, ArchiveError> {
    // An entry's JSON: its body in base64 (a third larger) and its heads.
    let entry_limit = body_limit.saturating_mul(4) / 3 + (16 << 20);
    let file = std::fs::File::open(path)?;
    let used = Arc::new(AtomicU64::new(0));
    let tripped = Arc::new(AtomicBool::new(false));
    // The parser reads a byte at a time from the buffer; the budget counts the buffer's reads
    // from the file (64 KiB at a time).
    let reader = BufReader::with_capacity(
        64 << 10,
        Budgeted {
            inner: file,
            used: used.clone(),
            limit: entry_limit,
            tripped: tripped.clone(),
        },
    );
    let current = Arc::new(AtomicUsize::new(0));
    let mut walk = Walk {
        on_entry,
        current: current.clone(),
        used,
        stopped: None,
        saw_entries: false,
    };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let result = Top(&mut walk).deserialize(&mut de);
    let result = result.and_then(|()| de.end());
    if let Some(e) = walk.stopped.take() {
        return Err(e);
    }
    let index = current.load(Ordering::Relaxed);
    if let Err(source) = result {
        let in_entries = walk.saw_entries;
        if tripped.load(Ordering::Relaxed) {
            return Err(ArchiveError::TooLarge {
                at: EntryRef::new(index, ""),
                limit: body_limit,
            });
        }
        return Err(ArchiveError::Json {
            at: in_entries.then(|| EntryRef::new(index, "")),
            source,
        });
    }
    if !walk.saw_entries {
        return Err(ArchiveError::Json {
            at: None,
            source: de::Error::custom("the file has no log.entries array"),
        });
    }
    Ok(index)
}
