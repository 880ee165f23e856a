//! The FFI shell (JNI and C). Every `unsafe` and `extern` of the crate lives here.
