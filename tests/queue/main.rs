//! The `queue` integration tests, one binary (linked once).

mod counters;
mod crash;
mod migration;
mod retention;
mod storage;
