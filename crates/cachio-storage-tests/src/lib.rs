//! The behaviour every cachio [`Store`] must show, as async functions each backend's tests call.
//!
//! Each check takes a fresh store, exercises one property of the [`Store`] contract and panics
//! with a message naming the check and what went wrong. A backend's tests call [`behaviours!`]
//! once: it defines one test per check, named after the check, so a failure is reported by name
//! and a check added here reaches every backend. [`run_all`] runs them all in one go:
//!
//! ```
//! use cachio_core::store::Store;
//!
//! async fn every_check<S: Store>(make: impl Fn() -> S) {
//!     cachio_storage_tests::run_all(make).await;
//! }
//! ```
//!
//! The checks spawn tokio tasks ([`concurrent_writers`]), so they must run inside a tokio runtime;
//! a multi-threaded one exercises real parallelism.
//!
//! What is checked:
//! - [`round_trip`]: metadata (status, version, every header line in order, `Vary` values,
//!   exchange times) and a body written in several chunks come back exactly;
//! - [`visible_only_after_commit`]: nothing is visible before commit, and an older entry stays
//!   visible while a new one is being written;
//! - [`abort_and_drop_leave_nothing`]: a writer dropped before commit leaves nothing and does not
//!   disturb the entry visible before it;
//! - [`overwrite`]: of two sequential commits, the second wins;
//! - [`delete`]: a deleted entry is gone, others stay, deleting nothing is not an error;
//! - [`purge`]: a purge removes exactly the entries its predicate picks and counts them;
//! - [`scan`]: a scan lists every entry once, with its metadata, and removes nothing;
//! - [`update_meta`]: an update replaces the metadata and keeps the body; updating a missing key
//!   returns `false` and creates nothing;
//! - [`concurrent_writers`]: two interleaved writers of one key leave one complete entry, never a
//!   mix of bodies or a body with the other writer's metadata;
//! - [`large_body_many_chunks`]: 8 MiB in 64 KiB chunks come back byte for byte, streamed;
//! - [`empty_body`] and [`variants_round_trip`]: empty bodies and variant indexes
//!   ([`Meta::Variants`](cachio_core::meta::Meta::Variants)) are stored like any entry;
//! - [`distinct_keys`]: keys that differ only slightly name different entries;
//! - [`hit_survives_overwrite`]: a hit being read while its key is overwritten yields its own
//!   complete body or an error, never other bytes;
//! - [`max_body_size_enforced`]: a store that reports a [`Store::max_body_size`] refuses a body
//!   past it and stores one of exactly that size.

mod bodies;
mod entries;
mod support;
mod updates;

pub use bodies::{
    concurrent_writers, distinct_keys, empty_body, hit_survives_overwrite, large_body_many_chunks,
    max_body_size_enforced, variants_round_trip,
};
pub use entries::{
    abort_and_drop_leave_nothing, delete, overwrite, purge, round_trip, scan,
    visible_only_after_commit,
};
pub use support::{assert_meta_eq, put, read_body, sample_meta};
pub use updates::{update_meta, update_of_a_replaced_entry, update_racing_delete_and_commit};

use cachio_core::store::Store;

/// Runs every check, each against a fresh store from `make`.
///
/// # Panics
///
/// When the store fails any check; the message names the check.
pub async fn run_all<S: Store>(make: impl Fn() -> S) {
    crate::__behaviours!(@each run_all make);
}

/// Defines one test per check of this crate, named after the check, each against a fresh store.
///
/// A backend's tests call it once, with the attributes of each test (the runtime it runs on) and
/// `|check| store`, which looks like a closure: `store` is an expression that makes a fresh store,
/// and `check` a pattern (`_` when unused) bound to the name of the check, a `&'static str`, for
/// a store that wants one (a key prefix of its own on a shared server, say). The list of checks
/// lives here, so a check added to this crate runs against every backend.
///
/// ```test_harness
/// use cachio_moka::MokaStore;
///
/// cachio_storage_tests::behaviours! {
///     #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
///     |_| MokaStore::new(256 << 20)
/// }
/// ```
///
/// defines `async fn round_trip()` calling [`round_trip`]`(MokaStore::new(256 << 20)).await`, and
/// so on for every check.
///
/// `store` is evaluated inside the statement that awaits the check, so a temporary it makes lives
/// until the check ends: `|_| open(&tempfile::tempdir().unwrap())` gives each check a directory
/// of its own that is deleted after the check, once the store has been dropped.
#[macro_export]
macro_rules! behaviours {
    ($(#[$attr:meta])+ |$check:pat_param| $store:expr) => {
        $crate::__behaviours!(@each tests [$(#[$attr])+] [$check] [$store]);
    };
}

/// The list of checks [`behaviours!`] and [`run_all`] go through, in the order of the check files (`entries.rs`, `updates.rs`, `bodies.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __behaviours {
    (@each $($then:tt)+) => {
        $crate::__behaviours! {
            $($then)+
            round_trip
            visible_only_after_commit
            abort_and_drop_leave_nothing
            overwrite
            delete
            purge
            scan
            update_meta
            update_of_a_replaced_entry
            update_racing_delete_and_commit
            concurrent_writers
            large_body_many_chunks
            empty_body
            variants_round_trip
            distinct_keys
            hit_survives_overwrite
            max_body_size_enforced
        }
    };
    (tests $attrs:tt $check:tt $store:tt $($name:ident)+) => {$(
        $crate::__behaviours!(test $attrs $check $store $name);
    )+};
    (test [$(#[$attr:meta])+] [$check:pat_param] [$store:expr] $name:ident) => {
        $(#[$attr])+
        async fn $name() {
            let $check: &'static str = ::core::stringify!($name);
            $crate::$name($store).await;
        }
    };
    (run_all $make:ident $($name:ident)+) => {$(
        $crate::$name($make()).await;
    )+};
    (names $($name:ident)+) => {
        [$(::core::stringify!($name)),+]
    };
}

#[cfg(test)]
mod tests {
    /// Every check of the check files is in the list `behaviours!` and `run_all` go through.
    #[test]
    fn the_list_names_every_check() {
        let files = [
            include_str!("entries.rs"),
            include_str!("updates.rs"),
            include_str!("bodies.rs"),
        ];
        let checks: Vec<&str> = files
            .iter()
            .flat_map(|file| file.lines())
            .filter_map(|line| {
                line.strip_prefix("pub async fn ")?
                    .strip_suffix("<S: Store>(store: S) {")
            })
            .collect();
        assert_eq!(
            checks,
            crate::__behaviours!(@each names),
            "the list in `__behaviours!` must name every check, in the order of the files"
        );
    }
}
