//! The `agent` integration tests, one binary (linked once).

mod account_country;
mod auth_accounts;
mod auth_flow;
mod auth_status;
mod backup_rules;
mod run_events;
