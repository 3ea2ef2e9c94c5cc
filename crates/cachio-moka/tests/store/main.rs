//! The memory store, alone and as the first tier of a `Tiered` store.

mod storage;
mod tiered;
