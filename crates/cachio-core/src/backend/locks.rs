//! Async locks, each for a share of the keys: for a store (or a layer) whose operations on one
//! key read and then write, so that they happen one after the other, while keys of other shares
//! go on.

use tokio::sync::{Mutex, MutexGuard};

use super::stable_hash;

/// A fixed number of async mutexes; a key takes the one its hash picks. Operations on keys of
/// the same share wait for each other, so the number trades memory for less waiting.
///
/// # Example
///
/// ```
/// use cachio_core::backend::KeyLocks;
///
/// # tokio_test_block_on(async {
/// let locks = KeyLocks::new(64);
/// let _writing = locks.lock("http://example.com/a").await;
/// // ... read the entry, then write it, with no other holder of this share in between.
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug)]
pub struct KeyLocks(Box<[Mutex<()>]>);

impl KeyLocks {
    /// `shares` locks (at least one).
    pub fn new(shares: usize) -> Self {
        Self((0..shares.max(1)).map(|_| Mutex::new(())).collect())
    }

    /// The lock of `key`'s share, once it is free.
    pub async fn lock(&self, key: &str) -> MutexGuard<'_, ()> {
        self.0[self.share(key)].lock().await
    }

    /// Every lock, in order: nothing else holds any while the guards live.
    pub async fn lock_all(&self) -> Vec<MutexGuard<'_, ()>> {
        let mut all = Vec::with_capacity(self.0.len());
        for lock in &self.0 {
            all.push(lock.lock().await);
        }
        all
    }

    fn share(&self, key: &str) -> usize {
        (stable_hash(key) % self.0.len() as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_waits_for_its_share_and_not_for_others() {
        let locks = KeyLocks::new(8);
        let held = locks.lock("a").await;
        assert!(locks.0[locks.share("a")].try_lock().is_err());
        let other = (0..100)
            .map(|i| format!("k{i}"))
            .find(|k| locks.share(k) != locks.share("a"))
            .unwrap();
        assert!(locks.0[locks.share(&other)].try_lock().is_ok());
        drop(held);
        assert!(locks.0[locks.share("a")].try_lock().is_ok());
    }
}
