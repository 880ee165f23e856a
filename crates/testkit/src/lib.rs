//! cloudsync's test kit: the helpers every integration test of the workspace
//! shares, in one place (`tests/` of the library, `crates/cli/tests/`). The
//! rule: a helper two test files need lives here, not in either of them.
//!
//! * [`env`]: a temporary directory, loopback TLS tus servers, a queue
//!   database trusting their signed root, config and country installed
//!   ([`env::AgentEnv`], with a builder for the parts a test changes).
//! * [`files`]: source files of N reproducible bytes (one seed rule).
//! * [`timeouts`]: `within` / `bounded` (a test body under a time limit) and
//!   `wait_until` (polling with a limit).
//! * [`schema`]: a database at schema version N, built from the library's
//!   own migrations; the golden files.
//! * [`cc`]: C programs compiled with gcc against `include/` and this build's
//!   `libcloudsync.so`, and preloadable shims.
//! * [`trust`], [`sources`]: signed roots and configs, config mirrors, agents
//!   opened on loopback test worlds.
//! * [`net`], [`proxy`]: runs through a fault-injecting TCP proxy, with
//!   timeouts on every wait.
//! * [`cli`], [`process`]: the `cloudsync` binary as a child process, each
//!   invocation under a time limit and killed when the test ends.
//! * [`sqlite_holder`]: another process holding SQLite locks.
//! * [`bench`]: timing, medians and result lines for the bench binaries.
//!
//! A hang is a failure: every helper that waits on a network or a child
//! process has its own limit.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub mod bench;
pub mod cc;
pub mod cli;
pub mod env;
pub mod files;
pub mod net;
pub mod process;
pub mod proxy;
pub mod schema;
pub mod sources;
pub mod sqlite_holder;
pub mod timeouts;
pub mod trust;

/// The workspace root (where `tests/golden`, `tests/c` and `include/` are).
pub fn repo() -> &'static Path {
    static REPO: OnceLock<PathBuf> = OnceLock::new();
    REPO.get_or_init(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .expect("the workspace root exists")
    })
}

/// The `cloudsync` binary of this build, for the tests of `crates/cli`
/// (cargo builds a package's binaries before its integration tests). A test
/// executable is `target/<profile>/deps/<name>-<hash>`; the binary is
/// `target/<profile>/cloudsync` (also under a cross target's directory).
/// `CLOUDSYNC_TEST_EXE` overrides it.
pub fn cloudsync_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        if let Some(p) = std::env::var_os("CLOUDSYNC_TEST_EXE") {
            return PathBuf::from(p);
        }
        let test = std::env::current_exe().expect("the test executable's path");
        let profile_dir = test
            .parent()
            .and_then(Path::parent)
            .expect("a test executable lives in target/<profile>/deps");
        let exe = profile_dir.join(format!("cloudsync{}", std::env::consts::EXE_SUFFIX));
        assert!(
            exe.is_file(),
            "{} is missing: tests that run the CLI belong to crates/cli (cargo builds its binary first)",
            exe.display()
        );
        exe
    })
}
