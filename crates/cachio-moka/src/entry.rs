//! What the store keeps per key, and what it weighs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cachio_core::meta::Meta;
use cachio_core::store::Hit;

use crate::{ENTRY_OVERHEAD, MokaBody};

/// The weight of each body chunk's handle (a `Bytes` is four words).
const CHUNK_OVERHEAD: u64 = size_of::<Bytes>() as u64;

/// One stored entry, kept by value in moka's node (no allocation of its own): a hit clones the
/// metadata's `Arc` and the body's handle, which it needs anyway.
#[derive(Clone)]
pub(crate) struct MemEntry {
    pub(crate) meta: Arc<Meta>,
    pub(crate) chunks: Chunks,
    /// When the entry stops being of use, on the store clock's [monotonic](cachio_core::clock::Clock::monotonic)
    /// scale (`None`: never by time).
    pub(crate) expires: Option<Duration>,
}

/// A stored body: most bodies are one chunk after [`coalesce`], kept without a list around it.
#[derive(Clone)]
pub(crate) enum Chunks {
    One(Bytes),
    Many(Arc<[Bytes]>, u64),
}

impl Chunks {
    pub(crate) fn new(mut chunks: Vec<Bytes>, len: u64) -> Self {
        if chunks.len() == 1 {
            Chunks::One(chunks.pop().expect("one chunk"))
        } else {
            Chunks::Many(chunks.into(), len)
        }
    }

    pub(crate) fn len(&self) -> u64 {
        match self {
            Chunks::One(b) => b.len() as u64,
            Chunks::Many(_, len) => *len,
        }
    }

    pub(crate) fn count(&self) -> usize {
        match self {
            Chunks::One(_) => 1,
            Chunks::Many(c, _) => c.len(),
        }
    }

    pub(crate) fn get(&self, i: usize) -> Option<&Bytes> {
        match self {
            Chunks::One(b) => (i == 0).then_some(b),
            Chunks::Many(c, _) => c.get(i),
        }
    }
}

/// The hit that serves `entry`.
pub(crate) fn hit(entry: MemEntry) -> Hit<MokaBody> {
    let remaining = entry.chunks.len();
    Hit {
        meta: entry.meta,
        body: MokaBody::new(entry.chunks, remaining),
    }
}

/// The weight moka counts `entry` under `key` at, in bytes (see the crate documentation).
pub(crate) fn weigh(key: &str, entry: &MemEntry) -> u32 {
    let weight = (key.len() as u64)
        .saturating_add(entry.meta.weight() as u64)
        .saturating_add(entry.chunks.len())
        .saturating_add(entry.chunks.count() as u64 * CHUNK_OVERHEAD)
        .saturating_add(ENTRY_OVERHEAD);
    u32::try_from(weight).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_saturates() {
        let entry = MemEntry {
            meta: cachio_storage_tests::sample_meta("w"),
            chunks: Chunks::Many(Arc::new([]), u64::from(u32::MAX) + 10),
            expires: None,
        };
        assert_eq!(weigh("k", &entry), u32::MAX);
    }
}
