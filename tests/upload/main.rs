//! The `upload` integration tests, one binary (linked once).

mod basics;
mod interop_tus_node;
mod limits;
mod resume;
mod review;
mod source_changes;
