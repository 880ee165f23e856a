//! The `trust` integration tests, one binary (linked once).

mod anchor;
mod clock_roots;
mod config_golden;
mod handles;
mod host_rules;
mod migration_v3;
mod regressions;
mod sources_bad_answers;
mod sources_refresh;
