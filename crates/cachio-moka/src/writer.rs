//! Writing an entry: the body's chunks, collected as they arrive.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cachio_core::meta::Meta;
use cachio_core::store::{ErrorKind, StoreError, StoreWriter};

use crate::MokaStore;
use crate::entry::{Chunks, MemEntry};

/// The largest piece a body is stored in.
const PACKED_CHUNK: usize = 64 * 1024;

/// Writes one entry into a [`MokaStore`](crate::MokaStore): collects the body's chunks and
/// inserts the entry at [`commit`](StoreWriter::commit), with the body copied into pieces of its
/// own. Dropping it stores nothing. Made by
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
            chunks: Chunks::new(pack(self.chunks, self.len), self.len),
            expires: self.store.shared.deadline(ttl),
        };
        self.store.shared.set(&self.key, Some(entry)).await;
        Ok(())
    }
}

/// Copies a body of `len` bytes into allocations of its own, of up to [`PACKED_CHUNK`] bytes
/// each. A chunk is often a slice of a much larger read buffer (a connection's), which storing
/// the slice would keep alive whole: the store would hold more memory than it counts, however
/// large the chunk. Short chunks are merged, so a body that arrived in many tiny pieces is served
/// in few frames. One copy per stored byte, at commit; hits serve the pieces without copying.
fn pack(chunks: Vec<Bytes>, len: u64) -> Vec<Bytes> {
    let mut left = usize::try_from(len).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(left.div_ceil(PACKED_CHUNK));
    let mut piece = BytesMut::new();
    for chunk in chunks {
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            if piece.capacity() == 0 {
                // The bytes left, as `len` counts them (a whole piece if it counted too few).
                let want = if left == 0 {
                    PACKED_CHUNK
                } else {
                    left.min(PACKED_CHUNK)
                };
                piece = BytesMut::with_capacity(want);
            }
            let n = rest.len().min(piece.capacity() - piece.len());
            piece.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            left = left.saturating_sub(n);
            if piece.len() == piece.capacity() {
                out.push(std::mem::take(&mut piece).freeze());
            }
        }
    }
    if !piece.is_empty() {
        out.push(piece.freeze());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(chunks: &[Bytes]) -> Vec<usize> {
        chunks.iter().map(Bytes::len).collect()
    }

    #[test]
    fn pack_copies_every_chunk_out_of_its_buffer() {
        let buffer = Bytes::from(vec![7; 256 * 1024]);
        let slice = buffer.slice(1000..1000 + 20_000);
        let out = pack(vec![slice.clone()], 20_000);
        assert_eq!(sizes(&out), [20_000]);
        assert_eq!(out[0], slice);
        // Not a view of the connection's buffer: dropping the buffer frees it.
        let range = buffer.as_ptr_range();
        assert!(!range.contains(&out[0].as_ptr()));
    }

    #[test]
    fn pack_merges_short_chunks_and_splits_long_ones() {
        let mut chunks: Vec<Bytes> = (0..100u8).map(|i| Bytes::from(vec![i; 1000])).collect();
        chunks.push(Bytes::from(vec![1; 100_000]));
        chunks.push(Bytes::from_static(b"ab"));
        chunks.push(Bytes::from_static(b"cd"));
        let expected: Vec<u8> = chunks.iter().flatten().copied().collect();
        let out = pack(chunks, expected.len() as u64);
        assert_eq!(sizes(&out), [65_536, 65_536, 65_536, 3_396]);
        let got: Vec<u8> = out.iter().flatten().copied().collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn pack_of_an_empty_body_is_empty() {
        assert!(pack(Vec::new(), 0).is_empty());
    }
}
