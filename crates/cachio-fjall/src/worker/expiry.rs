//! Expiry and eviction on the writer thread: the sweep of expired entries through the expiry
//! index, and the eviction of least recently used entries past the budget.

use cachio_core::store::StoreError;

use crate::engine::db_error;
use crate::record::{self};

use super::{SCAN_BATCH, WriterThread};

impl WriterThread {
    /// Removes every entry whose expiry time has passed.
    pub(super) fn sweep(&mut self) -> Result<(), StoreError> {
        let db = self.db()?;
        let now = self.e.settings.clock.now_ms();
        loop {
            let items = db
                .expiry
                .range(record::index_key(self.exp_cursor, 0)..=record::index_key(now, u64::MAX))
                .take(SCAN_BATCH)
                .map(|g| g.into_inner().map_err(db_error))
                .collect::<Result<Vec<_>, _>>()?;
            if items.is_empty() {
                return Ok(());
            }
            for (k, v) in items {
                let found = record::parse_index_key(&k);
                let rec = match found {
                    Some((expires, _)) => {
                        self.exp_cursor = expires;
                        self.current_bytes(&v)?
                    }
                    None => None,
                };
                match (found, rec) {
                    (Some((expires, gen_id)), Some(rec))
                        if rec.gen_id == gen_id && rec.expires == expires =>
                    {
                        self.remove_entry_bytes(&v, &rec, false)?;
                    }
                    _ => {
                        // An item whose entry is gone or changed.
                        let mut b = self.batch(false)?;
                        b.remove(&db.expiry, k);
                        self.commit_batch(b)?;
                    }
                }
            }
        }
    }

    /// Evicts least recently used entries until the accounted size is at most `target`.
    pub(super) fn evict(&mut self, target: u64) -> Result<(), StoreError> {
        let db = self.db()?;
        while self.tracked > target {
            let items = db
                .lru
                .range(record::index_key(self.lru_cursor, 0)..)
                .take(SCAN_BATCH)
                .map(|g| g.into_inner().map_err(db_error))
                .collect::<Result<Vec<_>, _>>()?;
            if items.is_empty() {
                if self.lru_cursor > 0 {
                    self.lru_cursor = 0;
                    continue;
                }
                tracing::warn!(
                    tracked = self.tracked,
                    "cachio-fjall: the LRU index is empty but bytes are accounted; resetting"
                );
                self.tracked = 0;
                self.count = 0;
                self.publish();
                return Ok(());
            }
            for (k, v) in items {
                if self.tracked <= target {
                    break;
                }
                self.evict_item(&k, &v)?;
            }
        }
        Ok(())
    }

    pub(super) fn evict_item(&mut self, k: &[u8], v: &[u8]) -> Result<(), StoreError> {
        let db = self.db()?;
        let found = record::parse_index_key(k);
        let (size, key) = record::decode_lru_value(v).unwrap_or((0, &[]));
        if let Some((atime, _)) = found {
            self.lru_cursor = atime;
        }
        let rec = if key.is_empty() {
            None
        } else {
            self.current_bytes(key)?
        };
        match (found, rec) {
            (Some((atime, gen_id)), Some(rec)) if rec.gen_id == gen_id && rec.atime == atime => {
                self.remove_entry_bytes(key, &rec, false)
            }
            (found, rec) => {
                // An item whose record is gone (found corrupt) or was replaced without it.
                let mut b = self.batch(false)?;
                b.remove(&db.lru, k);
                self.commit_batch(b)?;
                self.tracked = self.tracked.saturating_sub(size);
                self.count = self.count.saturating_sub(1);
                self.publish();
                // Delete the generation's chunks only when the item named its key and that
                // key's record does not use them (a damaged item names nothing).
                match found {
                    Some((_, gen_id))
                        if !key.is_empty() && rec.is_none_or(|r| r.gen_id != gen_id) =>
                    {
                        self.drop_chunks(gen_id, None)
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}
