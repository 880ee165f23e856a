//! The `ffi` integration tests, one binary (linked once).

mod c_header;
mod last_error;
