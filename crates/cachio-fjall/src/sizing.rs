//! The sizes of fjall's journal, memtables and blob files the store opens its database with.

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

/// The most fjall's journal takes on disk: fjall 3 seals its journal at 64 MB (whatever
/// `max_journaling_size` says) and deletes a sealed journal once its memtables are flushed.
const JOURNAL_PEAK: u64 = 72 << 20;

/// What fjall holds on disk beside the live entries: the journal, and dead bodies not yet
/// compacted away (up to `compact_after`, blob files less than a quarter dead, and the blob
/// files being written).
fn transient(budget: u64) -> u64 {
    JOURNAL_PEAK + (budget / 16).max(16 << 20)
}

/// The disk use aimed at: the budget + 10% + 32 MiB.
fn aim(budget: u64) -> u64 {
    budget + budget / 10 + (32 << 20)
}

/// The accounted size the writer thread evicts down to: the budget, less what fjall holds
/// transiently where the budget + 10% + 32 MiB cannot hold both (but never below half the
/// budget). Below [`BOUNDED_FROM`] it is the budget.
pub(crate) fn evict_target(budget: u64) -> u64 {
    if budget < BOUNDED_FROM {
        return budget;
    }
    aim(budget)
        .saturating_sub(transient(budget))
        .clamp(budget / 2, budget)
}

/// How far the blocks allocated in the directory may exceed the budget.
pub(crate) fn disk_slack(budget: u64) -> u64 {
    if budget < BOUNDED_FROM {
        // fjall's journal alone may take 128 MiB, and dead bodies up to the budget again.
        return budget.max(BOUNDED_FROM) + 2 * crate::JOURNAL_LIMIT;
    }
    (evict_target(budget) + transient(budget)).max(aim(budget)) - budget
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_leaves_room_for_the_journal_at_small_budgets_only() {
        const MIB: u64 = 1 << 20;
        assert_eq!(evict_target(8 * MIB), 8 * MIB);
        assert_eq!(evict_target(64 * MIB), 32 * MIB);
        let gib = evict_target(1024 * MIB);
        assert!(gib > 1000 * MIB && gib <= 1024 * MIB, "{gib}");
        assert_eq!(evict_target(16 * 1024 * MIB), 16 * 1024 * MIB);
        // From 64 MiB up, target + transient is within the stated slack.
        for mib in [64, 100, 256, 512, 1024, 4096] {
            let b = mib * MIB;
            assert!(
                evict_target(b) + transient(b) <= b + disk_slack(b),
                "{mib} MiB"
            );
            assert!(disk_slack(b) >= b / 10 + 32 * MIB, "{mib} MiB");
        }
    }
}
