//! The host `libcloudsync.so` of the JVM tests (`scripts/test-jvm.sh`): the
//! library built with `ffi-test-hooks` (`openForTest`, the deliberate panic
//! and error), and nothing else. The tus servers the tests talk to run in a
//! `cloudsync dev-server --admin` child process
//! (`android/src/test/java/com/miui/cloudsync/TestServer.java`).
//!
//! Its own crate so that turning the hooks on never rebuilds or overwrites
//! the root crate's `libcloudsync.so` in the shared target directory: the
//! phone's `.so` is built from the root crate alone, without the feature. A
//! `cdylib` exports the `#[no_mangle]` functions of the crates it links, so
//! this one holds every `Java_com_miui_cloudsync_*` entry point of
//! `cloudsync` (scripts/test-jvm.sh checks them with `nm`).

// Linked for its exported entry points, not called from here.
use cloudsync as _;
