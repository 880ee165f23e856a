//! The `ffi` integration tests, one binary (linked once).

mod last_error;
