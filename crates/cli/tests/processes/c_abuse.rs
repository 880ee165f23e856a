//! The C ABI against bad input (issue 24): builds `tests/c/abuse.c` with
//! `gcc -fsanitize=address,undefined` against `include/` and this build's
//! `libcloudsync.so` (not instrumented; the program is, so ASan's runtime
//! comes first and sees every allocation of the library too) and runs it
//! against a loopback world whose region `in` requires a bearer token. The
//! program checks exact status codes; this side fails on any
//! AddressSanitizer, LeakSanitizer or UBSan report and on a hang
//! ([`CHILD_TIMEOUT`]). Where gcc cannot build with the sanitizers (no
//! libasan), it says so and builds without them, unless
//! `CLOUDSYNC_REQUIRE_ASAN=1` (set by `.ci/run`): then that is a failure.
//! The child's stdout and stderr are read on their own threads while it
//! runs, so a report longer than a pipe's buffer cannot block it.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cloudsync_devserver::world::{standard_regions, World};
use cloudsync_testkit::cc::{self, lib_dir};

/// How long the program may run before it is killed.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// The token the program's credential callback gives (`TOKEN` in abuse.c).
const TOKEN: &str = "c-abuse-token-77";

/// Whether gcc can link a program with ASan and UBSan here.
fn sanitizers_available(dir: &Path) -> bool {
    let src = dir.join("probe.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").expect("probe source");
    Command::new("gcc")
        .args(["-fsanitize=address,undefined", "-o"])
        .arg(dir.join("probe"))
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the environment demands the sanitizers (`CLOUDSYNC_REQUIRE_ASAN=1`).
fn asan_required() -> bool {
    std::env::var_os("CLOUDSYNC_REQUIRE_ASAN").is_some_and(|v| v == "1")
}

/// Reads a child's pipe to the end on a thread of its own.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[test]
fn abuse_program_gets_exact_codes_and_no_sanitizer_report() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut setups = standard_regions(&["in"]);
    setups[0].bearer_token = Some(TOKEN.into());
    let world = World::start(&tmp.path().join("server"), setups).expect("loopback tus server");
    let mut payload = world.config_json(1);
    payload["regions"]["in"]["ca_certs"] = serde_json::json!([world.ca.cert_pem()]);
    let root = tmp.path().join("root.json");
    let config = tmp.path().join("config.json");
    std::fs::write(&root, &world.root_envelope).expect("root");
    std::fs::write(&config, world.sign_config(&payload)).expect("config");

    let exe = tmp.path().join("abuse");
    let asan = sanitizers_available(tmp.path());
    let mut flags = vec!["-g", "-lpthread"];
    if asan {
        flags.extend(["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]);
    } else if asan_required() {
        panic!("gcc cannot link -fsanitize=address,undefined here, and CLOUDSYNC_REQUIRE_ASAN=1");
    } else {
        eprintln!("note: gcc cannot link -fsanitize=address,undefined here; abuse.c runs without sanitizers");
    }
    cc::program("tests/c/abuse.c", &exe, &flags);

    let work = tmp.path().join("work");
    std::fs::create_dir(&work).expect("work dir");
    let mut child = Command::new(&exe)
        .arg(&work)
        .arg(&root)
        .arg(&config)
        .env("LD_LIBRARY_PATH", lib_dir())
        .env("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1:exitcode=86")
        .env(
            "UBSAN_OPTIONS",
            "halt_on_error=1:print_stacktrace=1:exitcode=87",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run abuse");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > CHILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "abuse hung for {CHILD_TIMEOUT:?}:\n{}",
                stderr.join().expect("stderr reader")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    for report in ["AddressSanitizer", "LeakSanitizer", "runtime error:"] {
        assert!(!stderr.contains(report), "{report} reported:\n{stderr}");
    }
    assert!(
        status.success(),
        "abuse failed ({status:?}):\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    eprintln!("{}(sanitizers: {asan}, {:?})", stdout, start.elapsed());
}
