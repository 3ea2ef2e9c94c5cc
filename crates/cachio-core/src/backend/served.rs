//! The header maps a memory store keeps with the heads it stores, so that a hit clones a
//! prebuilt map instead of building one (see the measured gain in `meta/served.rs`), and the
//! budget they are kept within.
//!
//! A store that keeps maps calls [`keep_headers`] on the heads it hands out, within one
//! [`MapBudget`]; the layer serves every hit with [`hit_headers`], which uses a kept map when
//! there is one and builds the map otherwise.
//!
//! # Example
//!
//! ```
//! use std::time::SystemTime;
//!
//! use cachio_core::backend::served::{MapBudget, hit_headers, keep_headers, keeps_headers};
//! use cachio_core::meta::ResponseMeta;
//! use http::{HeaderMap, HeaderValue, StatusCode, Version};
//!
//! let mut stored = HeaderMap::new();
//! stored.insert("content-type", HeaderValue::from_static("text/plain"));
//! let now = SystemTime::now();
//! let head = ResponseMeta::new(StatusCode::OK, Version::HTTP_11, stored, Vec::new(), now, now);
//! let budget = MapBudget::new(1 << 20);
//! assert!(keep_headers(&head, &budget));
//! assert!(keeps_headers(&head));
//! let served = hit_headers(&head, HeaderValue::from_static("0"), HeaderValue::from_static("hit"));
//! assert_eq!(served["age"], "0");
//! assert_eq!(served["content-type"], "text/plain");
//! ```

use http::header::{HeaderMap, HeaderValue};

use crate::meta::ResponseMeta;
pub use crate::meta::served::{Grant, MapBudget};

/// The header fields of a response served from `head`: every stored line, `age` (in place of
/// the stored `Age` lines) and `status` (after the stored `Cache-Status` lines). A head that
/// keeps a map ([`keep_headers`]) clones it and sets the two values in place; another builds
/// the map from the packed fields. The values share the packed buffer either way.
#[inline]
pub fn hit_headers(head: &ResponseMeta, age: HeaderValue, status: HeaderValue) -> HeaderMap {
    head.hit_headers(age, status)
}

/// Builds the map a hit serves ([`hit_headers`]) and keeps it with `head` if `budget` has room
/// for it; the bytes go back to the budget when the head is dropped. Returns whether a map is
/// kept now. A head whose [`headers`](ResponseMeta::headers) was read first keeps nothing:
/// stores hand out heads nobody else reads.
pub fn keep_headers(head: &ResponseMeta, budget: &MapBudget) -> bool {
    head.keep_headers(budget)
}

/// Whether `head` keeps the map a hit serves ([`keep_headers`]).
pub fn keeps_headers(head: &ResponseMeta) -> bool {
    head.keeps_headers()
}
