//! C programs against the C ABI: compiled with gcc against `include/` and
//! this build's `libcloudsync.so`, and the shared objects some tests preload.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the cdylib of this very build is: `target/<profile>/deps/`, next to
/// the test binary (`cargo test` does not copy it up to `target/<profile>/`;
/// that copy may come from an earlier `cargo build` with other features).
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps dir");
    if deps.join("libcloudsync.so").exists() {
        deps.to_path_buf()
    } else {
        deps.parent().expect("profile dir").to_path_buf()
    }
}

/// Compiles `src` (relative to the workspace root, e.g. `tests/c/x.c`) into
/// the program `exe`: `gcc -std=c11 -Wall -Wextra -Werror -pedantic -I
/// include SRC -L <lib_dir> -lcloudsync FLAGS -o EXE`. `flags` are extra
/// libraries and defines (`-lpthread`, `-DCLOUDSYNC_TEST_HOOKS`). The test
/// fails with gcc's messages if it does not compile. Run the program with
/// `LD_LIBRARY_PATH` = [`lib_dir`].
pub fn program(src: &str, exe: &Path, flags: &[&str]) {
    let repo = crate::repo();
    let out = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
        .arg(repo.join("include"))
        .arg(repo.join(src))
        .arg("-L")
        .arg(lib_dir())
        .arg("-lcloudsync")
        .args(flags)
        .arg("-o")
        .arg(exe)
        .output()
        .expect("gcc runs (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "gcc failed on {src}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compiles `src` (relative to the workspace root) into the shared object
/// `out` with `cc -shared -fPIC -O2`, linked with `libs` (no cloudsync: a
/// shim to preload).
pub fn shared_object(src: &str, out: &Path, libs: &[&str]) {
    let src = crate::repo().join(src);
    let st = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(out)
        .arg(&src)
        .args(libs)
        .status()
        .expect("a C compiler (cc)");
    assert!(st.success(), "compiling {}", src.display());
}
