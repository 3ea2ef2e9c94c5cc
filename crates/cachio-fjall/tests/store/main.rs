//! The disk store: the shared storage behaviour, persistence, corruption, eviction, expiry and
//! the writer thread. The crash test and the 1 GiB test run child processes and measure them, so
//! each has a binary of its own.

#[path = "../common/mod.rs"]
mod common;

mod corruption;
mod eviction;
mod expiry;
mod full_disk;
mod persistence;
mod storage;
mod writer;
