//! The Redis store and the fleet tier against real `redis-server` processes on 127.0.0.1 (one
//! server and a three-node cluster), started by the tests themselves.

#[path = "../support/mod.rs"]
mod support;

mod broadcast;
mod faults;
mod layout;
mod memory_race;
mod ordering;
mod storage_cluster;
mod storage_single;
mod tls;
