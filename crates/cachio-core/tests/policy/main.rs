//! The caching policy against the text of RFC 9111 (and RFC 5861, 9211, 9213), one module per
//! part, each test named after its section; plus a differential oracle and random-input checks.

#[path = "../common/mod.rs"]
mod common;

mod age;
mod cache_status;
mod cdn_cache_control;
mod directives;
mod freshness;
mod invalidation;
mod oracle;
mod range;
mod robustness;
mod stale;
mod storing;
mod validation;
mod vary;
