//! FNV-1a: a hash that is the same in every process, build and platform, so that keys shard,
//! and entries are named, the same way everywhere.

use std::hash::{Hash, Hasher};
use std::ops::BitXor;

/// An FNV-1a state word: its offset basis and prime.
trait Word: Copy + BitXor<Output = Self> + From<u8> {
    const OFFSET: Self;
    const PRIME: Self;
    fn wrapping_mul(self, rhs: Self) -> Self;
}

impl Word for u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    fn wrapping_mul(self, rhs: Self) -> Self {
        u64::wrapping_mul(self, rhs)
    }
}

impl Word for u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    fn wrapping_mul(self, rhs: Self) -> Self {
        u128::wrapping_mul(self, rhs)
    }
}

/// FNV-1a of `bytes`, continuing from `state`.
fn fnv1a<W: Word>(state: W, bytes: &[u8]) -> W {
    bytes
        .iter()
        .fold(state, |h, b| (h ^ W::from(*b)).wrapping_mul(W::PRIME))
}

/// FNV-1a, 64 bits, as a [`Hasher`]; `Fnv(0xcbf2_9ce4_8422_2325)` starts from the offset basis.
pub(crate) struct Fnv(pub(crate) u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(u64::OFFSET)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv1a(self.0, bytes);
    }
}

/// A stable 64-bit hash of `value` (FNV-1a), for stores that shard or index by hash.
///
/// # Example
///
/// ```
/// use cachio_core::backend::stable_hash;
///
/// assert_eq!(stable_hash("http://x/"), stable_hash("http://x/"));
/// assert_ne!(stable_hash("http://x/"), stable_hash("http://y/"));
/// ```
pub fn stable_hash<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = Fnv::default();
    value.hash(&mut h);
    h.finish()
}

/// FNV-1a, 128 bits, of `bytes`: wide enough to name an entry by its key's hash.
///
/// # Example
///
/// ```
/// use cachio_core::backend::fnv1a_128;
///
/// assert_eq!(fnv1a_128(b"a"), 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
/// ```
pub fn fnv1a_128(bytes: &[u8]) -> u128 {
    fnv1a(u128::OFFSET, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published FNV-1a test vectors (the empty string and "a").
    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        let mut h = Fnv::default();
        h.write(b"");
        assert_eq!(h.finish(), 0xcbf2_9ce4_8422_2325);
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_128(b""), 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
    }
}
