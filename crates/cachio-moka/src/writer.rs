//! Writing an entry: the body's chunks, collected as they arrive.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cachio_core::meta::Meta;
use cachio_core::store::{ErrorKind, StoreError, StoreWriter};

use crate::MokaStore;
use crate::entry::{Chunks, MemEntry};

/// Chunks shorter than this are merged with their short neighbours at commit.
const SMALL_CHUNK: usize = 4 * 1024;

/// Merged runs of short chunks stop growing at this size.
const MERGED_CHUNK: usize = 64 * 1024;

/// Writes one entry into a [`MokaStore`](crate::MokaStore): collects the body's chunks (no copy) and inserts the
/// entry at [`commit`](StoreWriter::commit). Dropping it stores nothing. Made by
/// [`Store::begin`](cachio_core::store::Store::begin).
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use cachio_core::store::{ErrorKind, Store, StoreWriter};
/// use cachio_moka::MokaStore;
///
/// let store = MokaStore::builder().max_body_size(8).build();
/// let mut writer = store.begin("k").unwrap();
/// writer.append(Bytes::from_static(b"12345678")).unwrap();
/// let err = writer.append(Bytes::from_static(b"9")).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::TooLarge);
/// ```
pub struct MokaWriter {
    store: MokaStore,
    key: String,
    chunks: Vec<Bytes>,
    len: u64,
    too_large: bool,
}

impl MokaWriter {
    pub(crate) fn new(store: MokaStore, key: &str) -> Self {
        MokaWriter {
            store,
            key: key.to_owned(),
            chunks: Vec::new(),
            len: 0,
            too_large: false,
        }
    }
}

impl MokaWriter {
    fn too_large(&self) -> StoreError {
        StoreError::new(
            ErrorKind::TooLarge,
            format!(
                "body larger than the limit of {} bytes",
                self.store.shared.max_body
            ),
        )
    }
}

impl fmt::Debug for MokaWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaWriter")
            .field("key", &self.key)
            .field("len", &self.len)
            .field("chunks", &self.chunks.len())
            .field("too_large", &self.too_large)
            .finish()
    }
}

impl StoreWriter for MokaWriter {
    fn append(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        let len = self.len.saturating_add(chunk.len() as u64);
        if self.too_large || len > self.store.shared.max_body {
            self.too_large = true;
            self.chunks = Vec::new();
            return Err(self.too_large());
        }
        self.len = len;
        if !chunk.is_empty() {
            self.chunks.push(chunk);
        }
        Ok(())
    }

    async fn commit(self, meta: Arc<Meta>, ttl: Option<Duration>) -> Result<(), StoreError> {
        if self.too_large {
            return Err(self.too_large());
        }
        if ttl == Some(Duration::ZERO) {
            self.store.shared.set(&self.key, None).await;
            return Ok(());
        }
        let entry = MemEntry {
            meta,
            chunks: Chunks::new(coalesce(self.chunks), self.len),
            expires: self.store.shared.deadline(ttl),
        };
        self.store.shared.set(&self.key, Some(entry)).await;
        Ok(())
    }
}

/// Merges runs of short chunks into chunks of up to [`MERGED_CHUNK`] bytes, so that a body that
/// arrived in many tiny pieces is served in few frames, and copies a lone short chunk into an
/// allocation of its own: a short chunk is often a slice of a much larger read buffer (hyper's),
/// which storing the slice would keep alive whole. Chunks of [`SMALL_CHUNK`] bytes or more are
/// kept as they are (not copied).
fn coalesce(chunks: Vec<Bytes>) -> Vec<Bytes> {
    let small = |c: &Bytes| c.len() < SMALL_CHUNK;
    if !chunks.iter().any(small) {
        return chunks;
    }
    let mut out = Vec::with_capacity(chunks.len());
    let mut run: Vec<Bytes> = Vec::new();
    let mut run_len = 0;
    for chunk in chunks {
        if !small(&chunk) {
            flush(&mut out, &mut run, run_len);
            run_len = 0;
            out.push(chunk);
            continue;
        }
        if run_len + chunk.len() > MERGED_CHUNK {
            flush(&mut out, &mut run, run_len);
            run_len = 0;
        }
        run_len += chunk.len();
        run.push(chunk);
    }
    flush(&mut out, &mut run, run_len);
    out
}

fn flush(out: &mut Vec<Bytes>, run: &mut Vec<Bytes>, run_len: usize) {
    match run.len() {
        0 => {}
        1 => out.extend(run.drain(..).map(|c| Bytes::copy_from_slice(&c))),
        _ => {
            let mut merged = BytesMut::with_capacity(run_len);
            for c in run.drain(..) {
                merged.extend_from_slice(&c);
            }
            out.push(merged.freeze());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(chunks: &[Bytes]) -> Vec<usize> {
        chunks.iter().map(Bytes::len).collect()
    }

    #[test]
    fn coalesce_keeps_large_chunks_and_copies_lonely_short_ones() {
        let big = Bytes::from(vec![1; SMALL_CHUNK]);
        let small = Bytes::from(vec![2; 10]);
        let chunks = vec![big.clone(), small.clone(), big.clone()];
        let out = coalesce(chunks);
        assert_eq!(sizes(&out), [SMALL_CHUNK, 10, SMALL_CHUNK]);
        assert_eq!(out[0].as_ptr(), big.as_ptr());
        // A lone short chunk is copied out of whatever buffer it was a slice of.
        assert_ne!(out[1].as_ptr(), small.as_ptr());
        assert_eq!(out[1], small);
    }

    #[test]
    fn coalesce_merges_runs_of_small_chunks() {
        let big = Bytes::from(vec![1; 10_000]);
        let mut chunks: Vec<Bytes> = (0..100u8).map(|i| Bytes::from(vec![i; 1000])).collect();
        chunks.push(big.clone());
        chunks.push(Bytes::from_static(b"ab"));
        chunks.push(Bytes::from_static(b"cd"));
        let expected: Vec<u8> = chunks.iter().flatten().copied().collect();
        let out = coalesce(chunks);
        assert_eq!(sizes(&out), [65_000, 35_000, 10_000, 4]);
        assert_eq!(out[2].as_ptr(), big.as_ptr());
        let got: Vec<u8> = out.iter().flatten().copied().collect();
        assert_eq!(got, expected);
    }
}
