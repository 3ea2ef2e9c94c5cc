//! Lengths and counts that fjall's recovery reads from disk and reserves memory for before any
//! checksum covers them, bounded by the bytes they are read from before fjall opens the
//! directory: a damaged one is damage to handle (or a journal to cut), never a request for
//! hundreds of GiB that aborts the process.

use std::path::Path;

use cachio_core::store::{ErrorKind, StoreError};

/// The size of the trailer that ends every file fjall writes as a table of sections (tables,
/// blob files, version files): magic, format and checksum type bytes, the table of contents'
/// checksum, its position and its length.
const TRAILER: u64 = 4 + 1 + 1 + 16 + 8 + 8;
/// The least a section's entry in a table of contents takes: position, length, name length.
const TOC_ENTRY: u64 = 8 + 8 + 2;
/// The sections that begin with a count of fixed-size items, with the size of one item on disk:
/// the blob files a table refers to, and a version's blob files and their garbage counts.
const COUNTED: [(&[u8], u64); 3] = [
    (b"linked_blob_files", 8 + 8 + 8 + 8),
    (b"blob_files", 8 + 1 + 16),
    (b"blob_gc_stats", 8 + 4 + 8 + 8),
];

/// Checks, before fjall opens the database in `db`, the counts its recovery reads from disk and
/// reserves memory for before any checksum covers them: the number of sections in each file's
/// table of contents (read before the table's checksum is checked), and the counts that begin
/// the sections of a version file (whose checksum is not checked) and a table's list of blob
/// files (likewise). A count whose items cannot fit in the bytes it is read from is damage: an
/// [`ErrorKind::Corrupt`] error that names the file, so that the directory is handled as damaged
/// instead of fjall asking for up to hundreds of GiB and aborting the process. A count that fits
/// bounds the memory reserved by the file's own size.
///
/// Only the version file that `current` names is checked in each tree: the older ones are never
/// read. Files that are not tables of sections (journals, `current`) are passed over, and so is
/// anything fjall's own checks refuse without allocating (a missing trailer or table of contents).
pub(crate) fn check_counts(db: &Path) -> Result<(), StoreError> {
    check_dir(db, 0)
}

/// Cuts each journal in `db` (fjall's `<id>.jnl` files) before the first entry whose value
/// claims more bytes than are left in the file, and gives how many journals it cut.
///
/// fjall reads a journal entry's value length and reserves that much memory (up to 4 GiB)
/// before it reads the value and checks the batch's checksum; when the read then runs past the
/// end of the file, it cuts the journal back to the end of the last entry it read, and the
/// batch that entry began is dropped with it. Cutting at the same place first leaves fjall with
/// the same journal, without the reservation, which aborts the process on a system that
/// refuses 4 GiB (less memory and swap than that, or a limit on the address space).
///
/// The walk reads the 21 bytes of each entry's head and seeks past its key and value; it stops,
/// as fjall's reader does, at the first byte that begins no entry.
pub(crate) fn cut_journals(db: &Path) -> Result<usize, StoreError> {
    let io = |p: &Path, e: std::io::Error| {
        StoreError::new(ErrorKind::Io, format!("cannot read {}: {e}", p.display()))
    };
    let entries = match std::fs::read_dir(db) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(db, e)),
    };
    let mut cut = 0;
    for entry in entries {
        let entry = entry.map_err(|e| io(db, e))?;
        let path = entry.path();
        let journal = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jnl"));
        if !journal || !entry.file_type().map_err(|e| io(&path, e))?.is_file() {
            continue;
        }
        let Some(at) = overlong_entry(&path).map_err(|e| io(&path, e))? else {
            continue;
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(at).and_then(|()| f.sync_all()));
        file.map_err(|e| {
            StoreError::new(
                ErrorKind::Io,
                format!("cannot cut the damaged journal {}: {e}", path.display()),
            )
        })?;
        tracing::warn!(
            journal = %path.display(),
            at,
            "cachio-fjall: a journal entry claims more bytes than the journal holds; \
             the journal is cut before it"
        );
        cut += 1;
    }
    Ok(cut)
}

/// The journal entry tags fjall writes: a batch's start, an item, a batch's end, a clear.
const JOURNAL_START: u8 = 1;
const JOURNAL_ITEM: u8 = 2;
const JOURNAL_END: u8 = 3;
const JOURNAL_CLEAR: u8 = 4;
/// The most an LZ4 block expands: each byte that extends a match adds 255 bytes of output.
const LZ4_MAX_RATIO: u64 = 255;

/// Where the first entry of the journal at `path` whose value runs past the end of the file
/// begins, if one does before the walk stops.
fn overlong_entry(path: &Path) -> std::io::Result<Option<u64>> {
    use std::io::{BufReader, Read};
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut reader = BufReader::new(file);
    let mut at = 0u64;
    loop {
        let mut tag = [0u8; 1];
        if reader.read_exact(&mut tag).is_err() {
            return Ok(None);
        }
        let size = match tag[0] {
            // A seqno and an item count; a checksum and a 4-byte trailer; a keyspace.
            JOURNAL_START => 1 + 4 + 8,
            JOURNAL_END => 1 + 8 + 4,
            JOURNAL_CLEAR => 1 + 8,
            JOURNAL_ITEM => {
                // Value type, compression, keyspace, key length, value length, stored length.
                let mut head = [0u8; 20];
                if reader.read_exact(&mut head).is_err() {
                    return Ok(None);
                }
                let key = u64::from(u16::from_le_bytes([head[10], head[11]]));
                let value = u64::from(u32_at(&head, 12));
                let stored = u64::from(u32_at(&head, 16));
                let size = 21 + key + stored;
                let compressed = head[1] != 0;
                if at + size > len
                    || (compressed && value > stored.saturating_mul(LZ4_MAX_RATIO) + 64)
                {
                    return Ok(Some(at));
                }
                size
            }
            _ => return Ok(None),
        };
        let skip = if tag[0] == JOURNAL_ITEM {
            size - 21
        } else {
            size - 1
        };
        reader.seek_relative(i64::try_from(skip).unwrap_or(i64::MAX))?;
        at += size;
    }
}

/// The depth of the deepest file fjall writes below its directory (`keyspaces/<id>/tables/<id>`).
const MAX_DEPTH: u32 = 4;

fn check_dir(dir: &Path, depth: u32) -> Result<(), StoreError> {
    let io = |p: &Path, e: std::io::Error| {
        StoreError::new(ErrorKind::Io, format!("cannot read {}: {e}", p.display()))
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(dir, e)),
    };
    let current = current_version(dir);
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| io(&path, e))?;
        if kind.is_dir() && depth < MAX_DEPTH {
            check_dir(&path, depth + 1)?;
        } else if kind.is_file() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if is_version_file(&name) && current.as_deref() != Some(&*name) {
                continue;
            }
            if let Some(problem) = check_file(&path).map_err(|e| io(&path, e))? {
                return Err(StoreError::new(
                    ErrorKind::Corrupt,
                    format!("{} is damaged: {problem}", path.display()),
                ));
            }
        }
    }
    Ok(())
}

/// The name of the version file that the `current` file in `dir` names, if there is one.
fn current_version(dir: &Path) -> Option<String> {
    let mut id = [0u8; 8];
    let mut file = std::fs::File::open(dir.join("current")).ok()?;
    std::io::Read::read_exact(&mut file, &mut id).ok()?;
    Some(format!("v{}", u64::from_le_bytes(id)))
}

fn is_version_file(name: &str) -> bool {
    name.strip_prefix('v')
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// Reads `N` bytes at `at`, or `None` where the file ends first.
fn read_at<const N: usize>(file: &mut std::fs::File, at: u64) -> std::io::Result<Option<[u8; N]>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = [0u8; N];
    let len = file.metadata()?.len();
    if at.checked_add(N as u64).is_none_or(|end| end > len) {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(at))?;
    match file.read_exact(&mut buf) {
        Ok(()) => Ok(Some(buf)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Checks one file's counts: what is wrong with them, or `None` when they fit (or the file is
/// not a table of sections at all).
fn check_file(path: &Path) -> std::io::Result<Option<String>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let Some(trailer) = len
        .checked_sub(TRAILER)
        .map(|at| read_at::<{ TRAILER as usize }>(&mut file, at))
        .transpose()?
        .flatten()
    else {
        return Ok(None);
    };
    if &trailer[..4] != b"SFA!" {
        return Ok(None);
    }
    let toc_pos = u64_at(&trailer, 22);
    let Some(head) = read_at::<8>(&mut file, toc_pos)? else {
        return Ok(None);
    };
    if &head[..4] != b"TOC!" {
        return Ok(None);
    }
    let sections = u32_at(&head, 4);
    let room = len.saturating_sub(toc_pos.saturating_add(8));
    if !fits(sections, TOC_ENTRY, room) {
        return Ok(Some(format!(
            "its table of contents claims {sections} sections, more than the {room} bytes after it hold"
        )));
    }
    // The count is bounded now; a section name is at most 64 KiB (its length is a u16).
    let mut toc = std::io::BufReader::new(std::io::Read::take(&mut file, room));
    let mut counted = Vec::new();
    for _ in 0..sections {
        let mut fixed = [0u8; TOC_ENTRY as usize];
        let mut name = Vec::new();
        let read = std::io::Read::read_exact(&mut toc, &mut fixed).and_then(|()| {
            name.resize(usize::from(u16::from_le_bytes([fixed[16], fixed[17]])), 0);
            std::io::Read::read_exact(&mut toc, &mut name)
        });
        if read.is_err() {
            // A table of contents cut short: fjall finds that before it allocates anything more.
            return Ok(None);
        }
        if let Some((section, item)) = COUNTED.iter().find(|(n, _)| *n == name.as_slice()) {
            counted.push((*section, *item, u64_at(&fixed, 0), u64_at(&fixed, 8)));
        }
    }
    drop(toc);
    for (section, item, pos, size) in counted {
        let Some(count) = read_at::<4>(&mut file, pos)? else {
            continue;
        };
        let count = u32::from_le_bytes(count);
        if !fits(count, item, size.saturating_sub(4)) {
            return Ok(Some(format!(
                "its {} section claims {count} items of {item} bytes, more than its {size} bytes hold",
                String::from_utf8_lossy(section)
            )));
        }
    }
    Ok(None)
}

/// Whether `count` items of `item` bytes each fit in `room` bytes.
fn fits(count: u32, item: u64, room: u64) -> bool {
    u64::from(count).saturating_mul(item) <= room
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal item as fjall writes it, uncompressed, with `stored` as its value's length.
    fn item(key: &[u8], value: &[u8], stored: u32) -> Vec<u8> {
        let mut out = vec![JOURNAL_ITEM, 0, 0];
        out.extend_from_slice(&7u64.to_le_bytes());
        out.extend_from_slice(&u16::try_from(key.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&stored.to_le_bytes());
        out.extend_from_slice(&stored.to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(value);
        out
    }

    fn batch(items: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![JOURNAL_START];
        out.extend_from_slice(&u32::try_from(items.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&1u64.to_le_bytes());
        for i in items {
            out.extend_from_slice(i);
        }
        out.push(JOURNAL_END);
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(b"FJL\x03");
        out
    }

    #[test]
    fn a_journal_is_cut_before_the_first_item_that_runs_past_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let whole = batch(&[item(b"a", b"xyz", 3), item(b"b", &[], 0)]);
        let mut damaged = whole.clone();
        let at = damaged.len() as u64;
        // A second batch whose first item claims 1000 bytes where 4 remain.
        damaged.extend_from_slice(&batch(&[item(b"c", b"four", 1000)]));
        let at = at + 13;
        let mut preallocated = whole.clone();
        preallocated.resize(4096, 0);
        std::fs::write(dir.path().join("1.jnl"), &damaged).unwrap();
        std::fs::write(dir.path().join("2.jnl"), &preallocated).unwrap();
        std::fs::write(dir.path().join("3.jnl"), &whole[..whole.len() - 5]).unwrap();
        std::fs::write(dir.path().join("current"), [9u8; 25]).unwrap();

        assert_eq!(overlong_entry(&dir.path().join("1.jnl")).unwrap(), Some(at));
        assert_eq!(cut_journals(dir.path()).unwrap(), 1);
        assert_eq!(
            std::fs::read(dir.path().join("1.jnl")).unwrap(),
            &damaged[..at as usize]
        );
        // A zeroed tail and a torn end are where fjall stops reading: nothing to cut.
        assert_eq!(
            std::fs::read(dir.path().join("2.jnl")).unwrap(),
            preallocated
        );
        assert_eq!(
            std::fs::read(dir.path().join("3.jnl")).unwrap().len(),
            whole.len() - 5
        );
        assert_eq!(
            cut_journals(dir.path()).unwrap(),
            0,
            "once cut, the journal stays"
        );
        assert_eq!(cut_journals(&dir.path().join("missing")).unwrap(), 0);
    }

    #[test]
    fn a_compressed_value_may_not_claim_more_than_its_bytes_expand_to() {
        let dir = tempfile::tempdir().unwrap();
        let mut lz4 = item(b"k", &[0u8; 10], 10);
        lz4[2] = 1;
        let path = dir.path().join("0.jnl");
        let at_most = 10 * LZ4_MAX_RATIO + 64;
        lz4[13..17].copy_from_slice(&u32::try_from(at_most).unwrap().to_le_bytes());
        std::fs::write(&path, batch(std::slice::from_ref(&lz4))).unwrap();
        assert_eq!(overlong_entry(&path).unwrap(), None);
        lz4[13..17].copy_from_slice(&u32::try_from(at_most + 1).unwrap().to_le_bytes());
        std::fs::write(&path, batch(&[lz4])).unwrap();
        assert_eq!(overlong_entry(&path).unwrap(), Some(13));
    }

    #[test]
    fn files_that_are_not_tables_of_sections_pass() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("keyspaces/0");
        std::fs::create_dir_all(tree.join("tables")).unwrap();
        std::fs::write(tree.join("tables/1"), b"short").unwrap();
        std::fs::write(tree.join("tables/2"), [0u8; 100]).unwrap();
        // A trailer whose table of contents lies past the end of the file.
        let mut far = vec![0u8; 10];
        far.extend_from_slice(b"SFA!\x01\x00");
        far.extend_from_slice(&[0u8; 16]);
        far.extend_from_slice(&u64::MAX.to_le_bytes());
        far.extend_from_slice(&0u64.to_le_bytes());
        std::fs::write(tree.join("tables/3"), &far).unwrap();
        assert!(check_counts(dir.path()).is_ok());
        assert!(check_counts(&dir.path().join("missing")).is_ok());
        assert!(fits(2, 25, 50) && !fits(3, 25, 74) && !fits(u32::MAX, u64::MAX, u64::MAX - 1));
    }
}
