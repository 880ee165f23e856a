//! The `cli` integration tests, one binary (linked once).

mod accounts;
mod admin;
mod anchor;
mod basics;
mod edges;
mod qa;
mod source_symlinks;
