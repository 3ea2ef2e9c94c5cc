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
}

impl Sizes {
    /// The sizes for a store of `budget` bytes.
    pub(crate) fn for_budget(_budget: u64) -> Sizes {
        Sizes {
            journal: crate::JOURNAL_LIMIT,
            chunk_memtable: 4 << 20,
            index_memtable: 2 << 20,
            blob_file: 4 << 20,
            staleness: 0.25,
        }
    }
}
