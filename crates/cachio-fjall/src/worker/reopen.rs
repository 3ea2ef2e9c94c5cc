//! Recovery from a failed write. After a write fails (a full disk), fjall refuses every later
//! write until the database is opened again. The writer thread notices, refuses writes at once
//! (reads go on serving what is committed), and reopens the database once the disk has room
//! again, retrying with a growing delay.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cachio_core::store::{ErrorKind, StoreError};
use fjall::PersistMode;

use crate::db::Db;
use crate::engine::DB_DIR;

use super::WriterThread;

/// The first delay before reopening; it doubles after each failed attempt ...
const FIRST_DELAY: Duration = Duration::from_millis(200);
/// ... up to this.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// The room a reopen needs: a file this large must be written (and is removed) first.
const ROOM_PROBE_BYTES: usize = 4 << 20;
const ROOM_PROBE: &str = "cachio-fjall.room";
/// The longest a reopen waits for reads in progress to let go of the old database.
const READERS_WAIT: Duration = Duration::from_secs(2);

/// Where the writer thread is in a recovery.
pub(super) struct Recovery {
    at: Instant,
    delay: Duration,
}

/// The error of a write refused while the database is read-only.
pub(crate) fn read_only() -> StoreError {
    StoreError::new(
        ErrorKind::Unavailable,
        "the disk store is read-only after a failed write, until it has reopened its database",
    )
}

impl WriterThread {
    /// Checks a result for a write that failed because fjall refuses writes (it does once a
    /// write has failed); if so, the store goes read-only until it has reopened the database.
    pub(super) fn check<T>(&mut self, result: &Result<T, StoreError>) {
        let Err(e) = result else { return };
        if self.recovery.is_some() || !matches!(e.kind(), ErrorKind::Io | ErrorKind::Unavailable) {
            return;
        }
        // fjall answers a flush of its journal buffer with an error at once when it refuses
        // writes (and it refuses them after this flush fails).
        let Ok(db) = self.db() else { return };
        if db.db.persist(PersistMode::Buffer).is_ok() {
            return;
        }
        self.e.read_only.store(true, Ordering::Release);
        let failures = self.e.write_failures.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(
            error = %e,
            failures,
            path = %self.e.path.display(),
            "cachio-fjall: a write failed (is the disk full?) and the database refuses writes: \
             serving reads only until it is reopened"
        );
        for st in self.gens.values_mut() {
            st.error.get_or_insert_with(read_only);
        }
        self.recovery = Some(Recovery {
            at: Instant::now() + FIRST_DELAY,
            delay: FIRST_DELAY,
        });
    }

    /// When the writer thread should next try to reopen the database.
    pub(super) fn reopen_at(&self) -> Option<Instant> {
        self.recovery.as_ref().map(|r| r.at)
    }

    /// Reopens the database if a recovery is due.
    pub(super) fn recover(&mut self) {
        let Some(r) = &self.recovery else { return };
        if Instant::now() < r.at {
            return;
        }
        match self.reopen() {
            Ok(()) => {
                self.recovery = None;
                self.e.read_only.store(false, Ordering::Release);
                self.e.reopens.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    path = %self.e.path.display(),
                    entries = self.count,
                    "cachio-fjall: the database was reopened after a failed write and takes writes again"
                );
            }
            Err(e) => {
                let delay = self.recovery.as_ref().map_or(FIRST_DELAY, |r| r.delay);
                let delay = (delay * 2).min(MAX_DELAY);
                tracing::debug!(
                    error = %e,
                    retry_ms = delay.as_millis(),
                    path = %self.e.path.display(),
                    "cachio-fjall: cannot reopen the database yet"
                );
                self.recovery = Some(Recovery {
                    at: Instant::now() + delay,
                    delay,
                });
            }
        }
    }

    /// Closes the database and opens it again, once the disk has room: reads fail (and are
    /// misses) for as long as this takes.
    fn reopen(&mut self) -> Result<(), StoreError> {
        self.probe_room()?;
        if let Some(old) = self.e.set_db(None) {
            // Each read holds the database for one lookup or a few chunks.
            let deadline = Instant::now() + READERS_WAIT;
            while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            // If a reader still holds it, opening fails (the directory is locked) and is
            // tried again later.
            drop(old);
        }
        let s = &self.e.settings;
        let db = Db::open(&self.e.path.join(DB_DIR), s.cache_bytes, s.budget)?;
        let mut recovered = db.scan()?;
        self.tracked = recovered.tracked;
        self.count = recovered.count;
        self.clock = self.clock.max(recovered.max_atime);
        self.lru_cursor = 0;
        self.exp_cursor = 0;
        self.publish();
        let below = self
            .e
            .next_gen
            .fetch_max(recovered.first_gen, Ordering::Relaxed)
            .max(recovered.first_gen);
        self.e.set_db(Some(db));
        // The writes the failure cut short left chunks behind; bodies still being read keep
        // theirs.
        recovered.live.extend(self.e.pinned());
        self.collect_orphans(&recovered.live, below)
    }

    /// Writes and removes a file of [`ROOM_PROBE_BYTES`] in the store's directory.
    fn probe_room(&self) -> Result<(), StoreError> {
        let path = self.e.path.join(ROOM_PROBE);
        let written = std::fs::File::create(&path).and_then(|mut f| {
            f.write_all(&vec![0u8; ROOM_PROBE_BYTES])?;
            f.sync_data()
        });
        let _ = std::fs::remove_file(&path);
        written.map_err(|e| {
            StoreError::new(
                ErrorKind::Io,
                format!("no room in {}: {e}", self.e.path.display()),
            )
        })
    }
}
