//! The middleware in a reqwest-middleware client, against a real origin on 127.0.0.1. Each test
//! is named after the section of the RFC whose rule it checks.

#[allow(dead_code, reason = "each test module uses part of the support module")]
mod support;

mod bodies;
mod freshness;
mod invalidation;
mod modes;
mod stale;
mod streaming;
mod validation;
mod vary;
