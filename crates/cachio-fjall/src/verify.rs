//! A walk over every stored record and body chunk that checks their checksums and removes nothing.

use cachio_core::meta::Meta;
use cachio_core::store::StoreError;

use crate::FjallStore;
use crate::engine::{self, db_error};
use crate::record::Record;

/// What [`FjallStore::verify`] found.
///
/// # Example
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let store = cachio_fjall::FjallStore::open(dir.path())?;
/// let report = store.verify(|_| {})?;
/// assert_eq!(report.entries, 0);
/// assert!(report.is_clean());
/// # Ok::<(), cachio_core::store::StoreError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verification {
    /// The entry records read (good and bad).
    pub entries: u64,
    /// The body chunks read and found good.
    pub chunks: u64,
    /// The body bytes read and found good.
    pub bytes: u64,
    /// The entries that failed a check, in key order.
    pub bad: Vec<BadEntry>,
    /// Set when the walk had to stop early: the database itself could not be read past a point
    /// (fjall failed its own checks of a block). What was read before that is counted above.
    pub stopped: Option<String>,
}

impl Verification {
    /// Whether every entry passed and the walk reached the end.
    pub fn is_clean(&self) -> bool {
        self.bad.is_empty() && self.stopped.is_none()
    }
}

/// An entry that failed a check in [`FjallStore::verify`], as listed in [`Verification::bad`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BadEntry {
    /// The cache key (lossily decoded when its bytes are not UTF-8).
    pub key: String,
    /// What failed.
    pub problem: String,
}

impl FjallStore {
    /// Reads every entry record and every chunk of every body and checks each checksum, the
    /// metadata encoding and the body lengths; calls `progress` with each key as it is done.
    /// Unlike a read through [`Store::get`](cachio_core::store::Store::get), nothing that fails
    /// a check is removed: the store is left as it was found.
    ///
    /// This blocks for as long as the walk takes (it reads the whole store): call it from a
    /// thread that may block, or inside `spawn_blocking`. Entries written while it runs may be
    /// reported as missing chunks; verify a store that nothing else writes.
    ///
    /// # Errors
    ///
    /// None for damaged entries (they are listed in [`Verification::bad`]); an error only when
    /// the walk panicked inside fjall.
    ///
    /// # Example
    ///
    /// See [`Verification`].
    pub fn verify(&self, mut progress: impl FnMut(&str)) -> Result<Verification, StoreError> {
        let engine = &self.shared.engine;
        engine::guarded("verifying the store", || {
            let mut report = Verification::default();
            for guard in engine.db()?.entries.iter() {
                let (k, v) = match guard.into_inner().map_err(db_error) {
                    Ok(kv) => kv,
                    Err(e) => {
                        report.stopped = Some(e.to_string());
                        break;
                    }
                };
                report.entries += 1;
                let key = String::from_utf8_lossy(&k).into_owned();
                if let Err(problem) = check_entry(engine, &k, &v, &mut report) {
                    report.bad.push(BadEntry {
                        key: key.clone(),
                        problem,
                    });
                }
                progress(&key);
            }
            Ok(report)
        })
    }
}

impl FjallStore {
    /// The body length of the entry under `key`, read from its record alone: no chunk is read
    /// and nothing is written (an expired entry is not removed, no access time is touched), so
    /// a tool that lists a store leaves it as it was. `None` when there is no readable record.
    ///
    /// This blocks on the disk read: call it where blocking is allowed.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    ///
    /// # Example
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = cachio_fjall::FjallStore::open(dir.path())?;
    /// assert_eq!(store.body_len("https://example.com/")?, None);
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn body_len(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let engine = &self.shared.engine;
        engine::guarded("reading a record", || {
            let Some(raw) = engine.db()?.entries.get(key).map_err(db_error)? else {
                return Ok(None);
            };
            Ok(Record::decode(key.as_bytes(), &raw)
                .ok()
                .map(|r| r.body_len))
        })
    }
}

/// Checks one record and its chunks; counts the good chunks into `report`.
fn check_entry(
    engine: &engine::Engine,
    key: &[u8],
    raw: &[u8],
    report: &mut Verification,
) -> Result<(), String> {
    if std::str::from_utf8(key).is_err() {
        return Err("the key is not UTF-8".to_owned());
    }
    let rec = Record::decode(key, raw).map_err(|e| e.to_string())?;
    Meta::decode(&rec.meta).map_err(|e| format!("metadata: {e}"))?;
    let mut len = 0u64;
    for index in 0..rec.chunks {
        let (chunks, error) = engine.read_chunks(rec.gen_id, index, 1);
        if let Some(e) = error {
            return Err(e.to_string());
        }
        for chunk in chunks {
            len += chunk.len() as u64;
            report.chunks += 1;
            report.bytes += chunk.len() as u64;
        }
    }
    if len != rec.body_len {
        return Err(format!(
            "the body has {len} bytes, its record says {}",
            rec.body_len
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use bytes::Bytes;
    use cachio_core::meta::{Meta, ResponseMeta};
    use cachio_core::store::{Store, StoreWriter};

    use super::*;
    use crate::record::{chunk_key, encode_chunk};

    #[tokio::test(flavor = "multi_thread")]
    async fn a_damaged_chunk_is_reported_and_left_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(dir.path()).unwrap();
        let now = SystemTime::now();
        let meta = Arc::new(Meta::Response(ResponseMeta::new(
            http::StatusCode::OK,
            http::Version::HTTP_11,
            http::HeaderMap::new(),
            Vec::new(),
            now,
            now,
        )));
        for key in ["http://a/", "http://b/"] {
            let mut w = store.begin(key).unwrap();
            w.append(Bytes::from(vec![7u8; 100_000])).unwrap();
            w.commit(meta.clone(), None).await.unwrap();
        }
        assert_eq!(store.body_len("http://a/").unwrap(), Some(100_000));
        let clean = store.verify(|_| {}).unwrap();
        assert!(clean.is_clean(), "{clean:?}");
        assert_eq!((clean.entries, clean.bytes), (2, 200_000));
        assert!(clean.chunks >= 2);

        // Overwrite the first chunk of `b` with a value whose checksum is for other bytes.
        let engine = &store.shared.engine;
        let raw = engine
            .db()
            .unwrap()
            .entries
            .get("http://b/")
            .unwrap()
            .unwrap();
        let rec = Record::decode(b"http://b/", &raw).unwrap();
        let mut value = encode_chunk(rec.gen_id, 0, &[7u8; 16]);
        let last = value.len() - 1;
        value[last] ^= 1;
        engine
            .db()
            .unwrap()
            .chunks
            .insert(chunk_key(rec.gen_id, 0), value)
            .unwrap();

        let mut seen = Vec::new();
        let report = store.verify(|k| seen.push(k.to_owned())).unwrap();
        assert_eq!(seen, ["http://a/", "http://b/"]);
        assert_eq!(report.bad.len(), 1, "{report:?}");
        assert_eq!(report.bad[0].key, "http://b/");
        assert!(report.bad[0].problem.contains("checksum"), "{report:?}");
        // Nothing was removed: a second walk finds the same.
        assert_eq!(store.verify(|_| {}).unwrap().bad, report.bad);
    }
}
