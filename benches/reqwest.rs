//! A memory hit through cachio-reqwest, http-cache-reqwest and reqwest with no cache.
fn main() {}
