//! Chunks on the writer thread: writing a body's chunks as they arrive, and deleting the chunks
//! of replaced, removed and abandoned bodies.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cachio_core::store::{ErrorKind, StoreError};

use crate::engine::{db_error, guarded};
use crate::record::{self};

use super::{FLUSH_WAIT, GenState, Pending, WriterThread};

impl WriterThread {
    pub(super) fn chunk(&mut self, gen_id: u64, data: &Bytes, pending: &Pending) {
        let n = data.len() as u64;
        self.journal.wrote(n);
        let mut st = self.gens.remove(&gen_id).unwrap_or_default();
        if st.error.is_none() && self.recovery.is_some() {
            st.error = Some(super::read_only());
        }
        if st.error.is_none() {
            let result = guarded("writing a chunk", || self.add(gen_id, &mut st, data));
            self.check(&result);
            if let Err(e) = result {
                // Set after `check`, which fails the generations it finds.
                st.error = Some(e);
            }
        }
        self.gens.insert(gen_id, st);
        self.e.queued.fetch_sub(n, Ordering::AcqRel);
        if pending.bytes.fetch_sub(n, Ordering::AcqRel) == n {
            pending.notify.notify_waiters();
        }
    }

    /// Adds appended bytes to a generation, writing every full chunk.
    pub(super) fn add(
        &mut self,
        gen_id: u64,
        st: &mut GenState,
        mut data: &[u8],
    ) -> Result<(), StoreError> {
        st.len = st.len.saturating_add(data.len() as u64);
        while !data.is_empty() {
            if st.buf.is_empty() && data.len() >= crate::CHUNK_SIZE {
                let (chunk, rest) = data.split_at(crate::CHUNK_SIZE);
                self.write_chunk(gen_id, st, chunk)?;
                data = rest;
                continue;
            }
            let take = (crate::CHUNK_SIZE - st.buf.len()).min(data.len());
            st.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if st.buf.len() == crate::CHUNK_SIZE {
                let buf = std::mem::take(&mut st.buf);
                self.write_chunk(gen_id, st, &buf)?;
                st.buf = buf;
                st.buf.clear();
            }
        }
        Ok(())
    }

    pub(super) fn write_chunk(
        &mut self,
        gen_id: u64,
        st: &mut GenState,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        let db = self.db()?;
        let index = st.written;
        if index == u32::MAX {
            return Err(StoreError::new(ErrorKind::TooLarge, "too many chunks"));
        }
        self.keep_journal_in_room()?;
        self.wait_for_flushes();
        let mut b = self.batch(false)?;
        b.insert(
            &db.chunks,
            record::chunk_key(gen_id, index),
            record::encode_chunk(gen_id, index, payload),
        );
        self.commit_batch(b)?;
        st.written += 1;
        Ok(())
    }

    /// Waits, while fjall's journal takes more than the disk bound leaves it, for the sealed
    /// journal to be dropped (after flushing the memtables that hold it back): under a write load
    /// faster than fjall's flushes, it would stay on disk while the next one fills by tens of
    /// MiB.
    fn keep_journal_in_room(&mut self) -> Result<(), StoreError> {
        let dir = self.e.path.join(crate::engine::DB_DIR);
        if self.journal.estimate(&dir) <= crate::sizing::journal_room(self.e.settings.budget) {
            return Ok(());
        }
        let db = self.db()?;
        if db.db.journal_count() <= 1 {
            // Only the journal being written: nothing to wait for.
            return Ok(());
        }
        self.release_journals_now()?;
        let deadline = Instant::now() + FLUSH_WAIT;
        while db.db.journal_count() > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.journal.measure(&dir);
        Ok(())
    }

    /// Waits while more than one memtable of the chunks keyspace waits to be flushed.
    ///
    /// fjall 3 stalls writers only at four sealed memtables per keyspace and has no limit on
    /// the total write buffer; when bodies arrive faster than its flush workers write blob
    /// files, memory grows with the bytes written (we measured 150 MB of resident memory for a
    /// 256 MiB body written at full speed). Waiting here bounds it to a few memtables; the
    /// writer thread falls behind instead, its queue fills, and appends fail or wait (see
    /// [`FjallWriter::wait_written`](crate::FjallWriter::wait_written)).
    /// `sealed_memtable_count` is public in fjall 3 but not documented.
    pub(super) fn wait_for_flushes(&self) {
        let Ok(db) = self.db() else { return };
        let deadline = Instant::now() + FLUSH_WAIT;
        let mut polls = 0u32;
        while db.chunks.sealed_memtable_count() > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
            polls += 1;
            // A flush that failed makes fjall refuse writes: then nothing is flushed and
            // waiting is pointless (the write that follows fails and says so).
            if polls.is_multiple_of(100) && db.db.persist(fjall::PersistMode::Buffer).is_err() {
                return;
            }
        }
    }

    /// Deletes a generation's chunks now, or when its last reader is done.
    pub(super) fn drop_chunks(
        &mut self,
        gen_id: u64,
        chunks: Option<u32>,
    ) -> Result<(), StoreError> {
        if self.e.release_or_defer(gen_id, chunks) {
            self.delete_chunks(gen_id, chunks)
        } else {
            Ok(())
        }
    }

    pub(super) fn delete_quietly(&mut self, gen_id: u64, chunks: Option<u32>) {
        self.logged("deleting chunks", |w| w.delete_chunks(gen_id, chunks));
    }

    /// Deletes chunks `0..n` of a generation, or all of them (found by a prefix scan).
    pub(super) fn delete_chunks(
        &mut self,
        gen_id: u64,
        chunks: Option<u32>,
    ) -> Result<(), StoreError> {
        let db = self.db()?;
        const PER_BATCH: u32 = 4096;
        match chunks {
            Some(n) => {
                let mut first = 0;
                while first < n {
                    let end = first.saturating_add(PER_BATCH).min(n);
                    let mut b = self.batch(false)?;
                    for i in first..end {
                        b.remove(&db.chunks, record::chunk_key(gen_id, i));
                    }
                    self.commit_batch(b)?;
                    self.note_dead(u64::from(end - first));
                    first = end;
                }
            }
            None => loop {
                let mut b = self.batch(false)?;
                for guard in db
                    .chunks
                    .prefix(gen_id.to_be_bytes())
                    .take(PER_BATCH as usize)
                {
                    b.remove(&db.chunks, guard.key().map_err(db_error)?);
                }
                if b.is_empty() {
                    break;
                }
                let n = b.len() as u64;
                self.commit_batch(b)?;
                self.note_dead(n);
            },
        }
        Ok(())
    }

    /// Deletes the chunks of every generation below `below` that no LRU item names: bodies of
    /// writers that a crash interrupted, and chunks whose deletion a crash or close cut short.
    pub(super) fn collect_orphans(
        &mut self,
        live: &HashSet<u64>,
        below: u64,
    ) -> Result<(), StoreError> {
        let db = self.db()?;
        let mut from = 0u64;
        let end = record::chunk_key(below, 0);
        let mut removed = 0u64;
        loop {
            let next = db.chunks.range(record::chunk_key(from, 0)..end).next();
            let Some(guard) = next else { break };
            let key = guard.key().map_err(db_error)?;
            let Some(gen_id) = record::chunk_key_gen(&key) else {
                // Not a key this crate writes.
                let mut b = self.batch(false)?;
                b.remove(&db.chunks, key);
                self.commit_batch(b)?;
                continue;
            };
            if !live.contains(&gen_id) {
                self.delete_chunks(gen_id, None)?;
                removed += 1;
            }
            match gen_id.checked_add(1) {
                Some(g) => from = g,
                None => break,
            }
        }
        if removed > 0 {
            tracing::info!(
                generations = removed,
                path = %self.e.path.display(),
                "cachio-fjall: deleted the chunks of unfinished writes"
            );
        }
        Ok(())
    }
}
