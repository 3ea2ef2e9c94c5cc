//! The fjall database and its keyspaces, opened as one: replaced as a whole when the store
//! reopens the database after a failed write.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use cachio_core::store::StoreError;
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions};

use crate::engine::{Recovered, db_error, guarded};
use crate::record;

/// An open database: the handle and the four keyspaces the store uses.
pub(crate) struct Db {
    pub(crate) db: Database,
    /// Cache key → [`Record`](crate::record::Record).
    pub(crate) entries: Keyspace,
    /// (generation, index) → chunk value; key-value separated.
    pub(crate) chunks: Keyspace,
    /// (access time, generation) → accounted size and cache key.
    pub(crate) lru: Keyspace,
    /// (expiry time, generation) → cache key.
    pub(crate) expiry: Keyspace,
}

impl Db {
    /// Opens (or creates) the database at `path` with the store's options, sized for `budget`.
    pub(crate) fn open(path: &Path, cache_bytes: u64, budget: u64) -> Result<Arc<Db>, StoreError> {
        let sizes = crate::sizing::Sizes::for_budget(budget);
        guarded("opening the database", || {
            let db = Database::builder(path)
                .cache_size(cache_bytes)
                .journal_compression(CompressionType::None)
                .max_journaling_size(sizes.journal)
                .open()
                .map_err(db_error)?;
            let small = || KeyspaceCreateOptions::default().max_memtable_size(sizes.index_memtable);
            let entries = db.keyspace("entries", small).map_err(db_error)?;
            let lru = db.keyspace("lru", small).map_err(db_error)?;
            let expiry = db.keyspace("expiry", small).map_err(db_error)?;
            let chunks = db
                .keyspace("chunks", || {
                    // Small memtables, blob files and an L0 threshold of 2: deleted bodies
                    // become stale blob bytes soon after they are deleted, and blob files are
                    // rewritten as soon as a quarter of them is stale (age cutoff 1: any stale
                    // file a compaction touches, not only the oldest quarter).
                    KeyspaceCreateOptions::default()
                        .max_memtable_size(sizes.chunk_memtable)
                        .compaction_strategy(Arc::new(
                            fjall::compaction::Leveled::default().with_l0_threshold(2),
                        ))
                        .with_kv_separation(Some(
                            KvSeparationOptions::default()
                                .compression(CompressionType::None)
                                .staleness_threshold(sizes.staleness)
                                .age_cutoff(1.0)
                                .file_target_size(sizes.blob_file),
                        ))
                })
                .map_err(db_error)?;
            Ok(Arc::new(Db {
                db,
                entries,
                chunks,
                lru,
                expiry,
            }))
        })
    }

    /// Sums the LRU index (every entry has exactly one item there, written in the same batch as
    /// its record) and finds the highest generation in use.
    pub(crate) fn scan(&self) -> Result<Recovered, StoreError> {
        guarded("scanning the database", || {
            let mut r = Recovered {
                tracked: 0,
                count: 0,
                max_atime: 0,
                live: HashSet::new(),
                first_gen: 1,
            };
            let mut max_gen = 0;
            for guard in self.lru.iter() {
                let (k, v) = guard.into_inner().map_err(db_error)?;
                let Some((atime, gen_id)) = record::parse_index_key(&k) else {
                    continue;
                };
                // A damaged item counts for nothing; eviction removes it when its turn comes.
                let size = record::decode_lru_value(&v).map_or(0, |(size, _)| size);
                r.tracked = r.tracked.saturating_add(size);
                r.count += 1;
                r.max_atime = r.max_atime.max(atime);
                r.live.insert(gen_id);
                max_gen = max_gen.max(gen_id);
            }
            if let Some(guard) = self.chunks.last_key_value() {
                let k = guard.key().map_err(db_error)?;
                max_gen = max_gen.max(record::chunk_key_gen(&k).unwrap_or(0));
            }
            r.first_gen = max_gen.saturating_add(1);
            Ok(r)
        })
    }
}
