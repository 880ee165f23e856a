//! The C ABI from C: compiles `tests/c/test_capi.c` with gcc against
//! `include/cloudsync.h`, links it to the `libcloudsync.so` this very
//! `cargo test` built, and runs it (status codes, NULL arguments, enqueue,
//! stats, close, and — with the `ffi-test-hooks` feature — a panic arriving
//! as `CS_INTERNAL`). Without that feature the C program is compiled without
//! `CLOUDSYNC_TEST_HOOKS` and skips only the panic check.

use std::path::{Path, PathBuf};
use std::process::Command;

use cloudsync::config::sign::{root_payload, sign_envelope, SigningKey};
use cloudsync::config::{CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE};

/// Where the cdylib of this very build is: `target/<profile>/deps/`, next to
/// this test binary (`cargo test` does not copy it up to `target/<profile>/`;
/// that copy may come from an earlier `cargo build` with other features).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps dir");
    if deps.join("libcloudsync.so").exists() {
        deps.to_path_buf()
    } else {
        deps.parent().expect("profile dir").to_path_buf()
    }
}

fn envelopes() -> (Vec<u8>, Vec<u8>) {
    let root_key = SigningKey::from_seed([7; 32]).expect("seed");
    let config_key = SigningKey::from_seed([8; 32]).expect("seed");
    let root = sign_envelope(
        ROOT_PAYLOAD_TYPE,
        &root_payload(
            1,
            "2099-01-01T00:00:00Z",
            &[&root_key],
            1,
            &[&config_key],
            1,
        ),
        &[&root_key],
    );
    let config = serde_json::json!({
        "version": 1, "issued_at": "2026-01-01T00:00:00Z", "expires_at": "2099-01-01T00:00:00Z",
        "countries": {"IN": "in"},
        "regions": {"in": {"services": {"backup": {"url": "https://backup.in.example.net/files/",
                                                   "protocol": "tus"}},
                           "allowed_hosts": ["backup.in.example.net"]}}
    });
    let config = sign_envelope(
        CONFIG_PAYLOAD_TYPE,
        &serde_json::to_vec(&config).expect("json"),
        &[&config_key],
    );
    (root, config)
}

#[test]
fn c_program_passes_against_the_cdylib() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = lib_dir();
    assert!(
        lib.join("libcloudsync.so").exists(),
        "{} has no libcloudsync.so (the cdylib of this build)",
        lib.display()
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let exe = tmp.path().join("test_capi");
    let mut gcc = Command::new("gcc");
    gcc.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg("-I")
        .arg(manifest.join("include"));
    if cfg!(feature = "ffi-test-hooks") {
        gcc.arg("-DCLOUDSYNC_TEST_HOOKS");
    }
    gcc.arg(manifest.join("tests/c/test_capi.c"))
        .arg("-L")
        .arg(&lib)
        .args(["-lcloudsync", "-lpthread", "-o"])
        .arg(&exe);
    let out = gcc.output().expect("gcc runs (apt-get install gcc)");
    assert!(
        out.status.success(),
        "gcc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (root, config) = envelopes();
    let root_path = tmp.path().join("root.json");
    let config_path = tmp.path().join("config.json");
    std::fs::write(&root_path, root).expect("write root");
    std::fs::write(&config_path, config).expect("write config");
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).expect("work dir");

    let out = Command::new(&exe)
        .arg(&root_path)
        .arg(&config_path)
        .arg(&work)
        .env("LD_LIBRARY_PATH", &lib)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run test_capi");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "test_capi failed ({:?}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    if cfg!(feature = "ffi-test-hooks") {
        assert!(
            stderr.contains("deliberate panic"),
            "the panic hook ran inside the library: {stderr}"
        );
    }
}
