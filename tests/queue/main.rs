//! The `queue` integration tests, one binary (linked once).

mod counters;
mod crash;
mod migration;
mod migration_steps;
mod retention;
mod storage;
