//! The sizes of fjall's journal, memtables and blob files the store opens its database with, and
//! the accounted size the store evicts down to so that the directory keeps to its bound.

use std::path::Path;

/// fjall's options for one database.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    /// The most journal kept before fjall flushes the memtables that hold it back.
    pub(crate) journal: u64,

    pub(crate) chunk_memtable: u64,
    pub(crate) index_memtable: u64,
    pub(crate) blob_file: u64,
    /// The share of a blob file that is stale before a compaction rewrites it.
    pub(crate) staleness: f32,
    /// The chunk bytes deleted after which the chunks keyspace is compacted.
    pub(crate) compact_after: u64,
}

impl Sizes {
    /// The sizes for a store of `budget` bytes.
    pub(crate) fn for_budget(budget: u64) -> Sizes {
        Sizes {
            journal: crate::JOURNAL_LIMIT,
            chunk_memtable: 4 << 20,
            index_memtable: 2 << 20,
            blob_file: 4 << 20,
            staleness: 0.25,
            compact_after: (budget / 32).max(4 << 20),
        }
    }
}

/// The smallest budget the disk bound is stated for.
pub(crate) const BOUNDED_FROM: u64 = 64 << 20;

/// Room kept below the aimed disk use for what fjall writes between two measurements beside
/// the journal: flushed tables, blob files rewritten by a compaction before the old ones go.
const MARGIN: u64 = 4 << 20;

/// The disk use aimed at: the budget + 10% + 32 MiB.
fn aim(budget: u64) -> u64 {
    budget + budget / 10 + (32 << 20)
}

/// Room for the bodies of evicted and removed entries until a compaction drops them: the
/// store compacts the bodies' keyspace each time `compact_after` of them are dead, blob files
/// less than a quarter dead are kept, and blob files are being written.
fn dead(budget: u64) -> u64 {
    (budget / 16).max(16 << 20)
}

/// The accounted size the writer thread evicts down to, given the bytes fjall's journal takes
/// now: what keeps the directory within the budget + 10% + 32 MiB, at most the budget and at
/// least an eighth of it. Below [`BOUNDED_FROM`] it is the budget.
///
/// fjall 3 seals its journal only past 64 MB, whatever its options say, and the journal holds
/// the bodies written since, so on small budgets it takes a large share of the disk for a
/// while: the entries make room for it as it grows, and take the room back once it is sealed
/// and dropped.
pub(crate) fn evict_target(budget: u64, journal: u64) -> u64 {
    if budget < BOUNDED_FROM {
        return budget;
    }
    aim(budget)
        .saturating_sub(journal + dead(budget) + MARGIN)
        .clamp(budget / 8, budget)
}

/// The most fjall's journal may take before the writer thread waits for a sealed journal to
/// be dropped: what the bound leaves beside the smallest target and the dead bodies. Under a
/// write load faster than fjall's flushes, a sealed journal would otherwise stay while the
/// next one fills. Below [`BOUNDED_FROM`] there is no such limit.
pub(crate) fn journal_room(budget: u64) -> u64 {
    if budget < BOUNDED_FROM {
        return u64::MAX;
    }
    aim(budget).saturating_sub(budget / 8 + dead(budget) + MARGIN)
}

/// How far the blocks allocated in the directory may exceed the budget.
pub(crate) fn disk_slack(budget: u64) -> u64 {
    if budget < BOUNDED_FROM {
        // fjall's journal alone may take 128 MiB, and dead bodies up to the budget again.
        return budget.max(BOUNDED_FROM) + 2 * crate::JOURNAL_LIMIT;
    }
    aim(budget) - budget
}

/// The bytes fjall's journal takes, measured every few MiB written (the metadata of the few
/// files at the database's top level: its journals, and its small version and lock files) and
/// estimated in between.
#[derive(Debug)]
pub(crate) struct Journal {
    /// Blocks allocated when last measured.
    measured: u64,
    /// Body bytes written since: the journal grows by as much.
    written: u64,
    /// How many bytes written make a new measurement due.
    every: u64,
}

impl Journal {
    pub(crate) fn new(budget: u64) -> Self {
        Journal {
            measured: 0,
            // Due at once: the first eviction measures.
            written: u64::MAX,
            every: (budget / 64).clamp(1 << 20, 16 << 20),
        }
    }

    /// Measures the journal now.
    pub(crate) fn measure(&mut self, db: &Path) -> u64 {
        self.written = u64::MAX;
        self.estimate(db)
    }

    /// Notes `n` body bytes written.
    pub(crate) fn wrote(&mut self, n: u64) {
        self.written = self.written.saturating_add(n);
    }

    /// The journal's bytes now: measured afresh in the database directory `db` when enough
    /// was written since the last measurement, otherwise the last measurement plus what was
    /// written since (the journal grows by that at most).
    pub(crate) fn estimate(&mut self, db: &Path) -> u64 {
        if self.written >= self.every {
            self.measured = top_level_bytes(db);
            self.written = 0;
        }
        self.measured.saturating_add(self.written)
    }
}

/// The bytes allocated to the files directly in `dir` (their blocks, where the platform says;
/// their length elsewhere). Files removed while it looks are passed over: fjall's workers
/// seal and delete journals all the while.
fn top_level_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| file_bytes(&m))
        .fold(0, u64::saturating_add)
}

#[cfg(unix)]
fn file_bytes(m: &std::fs::Metadata) -> u64 {
    // fjall sizes its journal with `set_len`: the length says 64 MiB, the blocks what is written.
    std::os::unix::fs::MetadataExt::blocks(m).saturating_mul(512)
}

#[cfg(not(unix))]
fn file_bytes(m: &std::fs::Metadata) -> u64 {
    m.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_entries_make_room_for_the_journal() {
        // Below the bounded range, the budget whatever fjall holds.
        assert_eq!(evict_target(8 * MIB, 100 * MIB), 8 * MIB);
        // With an empty journal, the whole budget.
        assert_eq!(evict_target(64 * MIB, 0), 64 * MIB);
        assert_eq!(evict_target(1024 * MIB, 64 * MIB), 1024 * MIB);
        // A full journal at 64 MiB: what is left of 102 MiB.
        let t = evict_target(64 * MIB, 62 * MIB);
        assert!(t > 15 * MIB && t < 25 * MIB, "{t}");
        // Never below an eighth.
        assert_eq!(evict_target(64 * MIB, 1024 * MIB), 8 * MIB);
        // The journal's room: what the bound leaves beside the floor and the dead bodies.
        assert_eq!(journal_room(8 * MIB), u64::MAX);
        let room = journal_room(64 * MIB);
        assert_eq!(evict_target(64 * MIB, room), 8 * MIB);
        assert!(room + 8 * MIB + dead(64 * MIB) <= 64 * MIB + disk_slack(64 * MIB));
        for mib in [64, 100, 256, 1024, 4096] {
            let b = mib * MIB;
            assert_eq!(disk_slack(b), b / 10 + 32 * MIB, "{mib} MiB");
            // Target, journal and dead bodies within the bound while the target is above its floor.
            for journal in [0, 10 * MIB, 62 * MIB, 70 * MIB] {
                let t = evict_target(b, journal);
                assert!(
                    t == b / 8 || t + journal + dead(b) <= b + disk_slack(b),
                    "{mib} MiB, {journal}"
                );
            }
        }
    }

    #[test]
    fn the_journal_is_measured_after_enough_is_written() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1.jnl"), vec![1u8; 3 * MIB as usize]).unwrap();
        // Files in folders below (tables, blob files) are not the journal.
        std::fs::create_dir(dir.path().join("keyspaces")).unwrap();
        std::fs::write(dir.path().join("keyspaces/t"), vec![1u8; MIB as usize]).unwrap();
        let mut j = Journal::new(64 * MIB);
        let first = j.estimate(dir.path());
        assert!((3 * MIB..4 * MIB).contains(&first), "{first}");
        // Written bytes count until the next measurement.
        j.wrote(MIB / 2);
        assert_eq!(j.estimate(dir.path()), first + MIB / 2);
        j.wrote(MIB);
        std::fs::remove_file(dir.path().join("1.jnl")).unwrap();
        assert_eq!(j.estimate(dir.path()), 0, "measured again");
    }
}
