//! Dropping dead bodies in time. fjall learns that a body's blob bytes are dead only when a
//! compaction merges the chunk's deletion with the chunk it deletes; with leveled compaction
//! that can take many flushes, and the dead bytes stay on disk all that time. The writer thread
//! counts the chunk bytes it deletes and compacts the chunks keyspace fully once they pass a
//! share of the budget: its tables hold keys and blob pointers only (the values are in blob
//! files), so this rewrites little, and blob files whose bodies are all gone are dropped.

use cachio_core::store::StoreError;

use crate::engine::db_error;

use super::WriterThread;

impl WriterThread {
    /// Notes `chunks` deleted chunks.
    pub(super) fn note_dead(&mut self, chunks: u64) {
        self.dead = self
            .dead
            .saturating_add(chunks.saturating_mul(crate::CHUNK_SIZE as u64));
    }

    /// Compacts the chunks keyspace once enough bytes are dead.
    pub(super) fn compact_if_due(&mut self) -> Result<(), StoreError> {
        if self.dead < self.sizes.compact_after {
            return Ok(());
        }
        self.dead = 0;
        let db = self.db()?;
        // The deletions still in the memtable are invisible to a compaction: flush them first.
        db.chunks.rotate_memtable_and_wait().map_err(db_error)?;
        db.chunks.major_compact().map_err(db_error)
    }
}
