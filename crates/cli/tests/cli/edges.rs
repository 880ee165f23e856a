//! The CLI's rough edges a QA engineer met (issue 23): the error kind said
//! once, what to do when a service wants a token, a closed stdout, huge
//! durations, special and huge files, the dev server's request log and port
//! conflicts, and `--db` only where a command uses a database. Every child
//! runs under a time limit (`common/cli.rs`).

use cloudsync_testkit::cli as common;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{bin, cli, err, ok, out, run, run_within, s, spawn_within, write_private, DevServer};

/// A database trusting `server`'s root and config, signed in with `country`.
fn signed_in(dir: &Path, server: &DevServer, country: &str) -> PathBuf {
    let db = dir.join("q.db");
    ok(&db, &["init", "--root", &server.path("root")]);
    ok(&db, &["config", "install", &server.path("config")]);
    ok(&db, &["account", "set", "--id", "qa", "--country", country]);
    db
}

/// No `network: network:`: every `error:` line says its kind once.
#[test]
fn the_error_kind_is_said_once() {
    let d = tempfile::tempdir().unwrap();
    let server = DevServer::start(d.path(), &["--regions", "in", "--mirror"]);
    let db = d.path().join("q.db");
    ok(&db, &["init", "--root", &server.path("root")]);
    server.stop(); // the mirror's port is closed now
    let (code, text, e) = cli(&db, &["config", "refresh"]);
    assert_eq!(code, Some(1), "{text}{e}");
    assert!(e.starts_with("error: network: "), "{e}");
    assert!(!e.contains("network: network"), "{e}");
    // A message in words that repeats its kind (`invalid argument: ...`) too.
    let (code, _, e) = cli(&db, &["audit-retention", "--days", "0"]);
    assert_eq!(code, Some(1), "{e}");
    assert!(e.starts_with("error: invalid_argument: audit"), "{e}");
}

/// A service that declares `"auth": "bearer"`, run without `--token-file`:
/// the CLI says to pass one (exit 1 as before). The dev server logs every
/// request, a 401 included, and never the token.
#[test]
fn a_bearer_service_asks_for_a_token_file_and_the_dev_server_logs_requests() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("server.log");
    let server = DevServer::start_with_stderr(
        d.path(),
        &["--regions", "in", "--token", "in=SECRET-42"],
        std::fs::File::create(&log).unwrap(),
    );
    let db = signed_in(d.path(), &server, "IN");
    let file = d.path().join("a.bin");
    std::fs::write(&file, vec![7u8; 1000]).unwrap();
    ok(&db, &["enqueue", s(&file)]);

    let (code, text, e) = cli(&db, &["run"]);
    assert_eq!(code, Some(1), "{text}{e}");
    assert!(
        e.starts_with("error: unauthorized: ") && e.contains("pass --token-file FILE"),
        "{e}"
    );

    let wrong = d.path().join("wrong.token");
    write_private(&wrong, b"NOT-IT-17\n");
    let (code, _, e) = cli(&db, &["run", "--token-file", s(&wrong)]);
    assert_eq!(code, Some(1), "{e}");
    let right = d.path().join("right.token");
    write_private(&right, b"SECRET-42\n");
    ok(&db, &["run", "--token-file", s(&right)]);

    let text = std::fs::read_to_string(&log).unwrap();
    let requests: Vec<&str> = text.lines().filter(|l| l.starts_with("in ")).collect();
    assert!(
        requests
            .iter()
            .any(|l| l.starts_with("in POST /files/ 401 ")),
        "{text}"
    );
    assert!(
        requests
            .iter()
            .any(|l| l.starts_with("in POST /files/ 201 ")),
        "{text}"
    );
    assert!(
        requests
            .iter()
            .any(|l| l.starts_with("in PATCH /files/") && l.ends_with(" 204 1000B")),
        "{text}"
    );
    for secret in ["SECRET-42", "NOT-IT-17", "Bearer"] {
        assert!(!text.contains(secret), "{secret} in the log: {text}");
    }
}

/// `--quiet`: no request lines.
#[test]
fn a_quiet_dev_server_logs_no_requests() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("server.log");
    let server = DevServer::start_with_stderr(
        d.path(),
        &["--regions", "in", "--quiet"],
        std::fs::File::create(&log).unwrap(),
    );
    let db = signed_in(d.path(), &server, "IN");
    let file = d.path().join("a.bin");
    std::fs::write(&file, b"hello").unwrap();
    ok(&db, &["enqueue", s(&file)]);
    ok(&db, &["run"]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(" POST "), "{text}");
}

/// `list --json | head`: the reader goes away; the CLI exits 141 (as a shell
/// reports SIGPIPE), without a panic.
#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    let d = tempfile::tempdir().unwrap();
    let server = DevServer::start(d.path(), &["--regions", "in"]);
    let db = signed_in(d.path(), &server, "IN");
    let files: Vec<PathBuf> = (0..600)
        .map(|i| {
            let f = d.path().join(format!("file-{i:04}.bin"));
            std::fs::write(&f, [1u8]).unwrap();
            f
        })
        .collect();
    let mut args = vec!["--db", s(&db), "enqueue"];
    args.extend(files.iter().map(|f| s(f)));
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));

    // Far more than a pipe holds (600 items of ~300 bytes of JSON).
    let mut child = common::anchored(&["--db", s(&db), "list", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout); // `head -c 16`
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut e = String::new();
    child.stderr.take().unwrap().read_to_string(&mut e).unwrap();
    assert!(!e.contains("panicked"), "{e}");
    assert_eq!(status.code(), Some(141), "{e}");
    assert_eq!(e, "");
}

/// Durations that would overflow `Instant` arithmetic saturate: the run
/// ends normally on an empty queue.
#[test]
fn huge_durations_saturate() {
    let d = tempfile::tempdir().unwrap();
    let server = DevServer::start(d.path(), &["--regions", "in"]);
    let db = signed_in(d.path(), &server, "IN");
    let max = u64::MAX.to_string();
    let (code, text, e) = cli(&db, &["run", "--max-seconds", &max, "--lease-secs", &max]);
    assert!(!e.contains("panicked"), "{e}");
    assert_eq!(code, Some(0), "{text}{e}");
    assert!(text.contains(" stopped drained"), "{text}");
}

/// Issue 24: `--chunk-size 0` (a run that would spin to its deadline) is a
/// usage error, before anything is opened or sent.
#[test]
fn a_zero_chunk_size_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let server = DevServer::start(d.path(), &["--regions", "in"]);
    let db = signed_in(d.path(), &server, "IN");
    let (code, text, e) = cli(&db, &["run", "--chunk-size", "0"]);
    assert_eq!(code, Some(2), "{text}{e}");
    assert!(e.contains("--chunk-size must be at least 1"), "{e}");
}

/// Files named on the command line are read only if they are regular files
/// of at most 4 MiB: `/dev/zero` and a FIFO fail at once, naming the file.
#[test]
fn special_and_huge_files_are_refused_at_once() {
    let d = tempfile::tempdir().unwrap();
    let server = DevServer::start(d.path(), &["--regions", "in"]);
    let db = signed_in(d.path(), &server, "IN");
    let fifo = d.path().join("envelope.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let big = d.path().join("big.json");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(5 << 20)
        .unwrap();
    let limit = Duration::from_secs(10);
    for path in [Path::new("/dev/zero"), &fifo, &big] {
        let o = run_within(&["--db", s(&db), "config", "install", s(path)], limit);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert_eq!(
            e,
            format!(
                "error: invalid_argument: {}: not a regular file of at most 4 MiB\n",
                path.display()
            )
        );
    }
    // The root too (at most 1 MiB), and a key.
    let o = run_within(&["verify", "--root", s(&fifo), s(&big)], limit);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains(s(&fifo)), "{}", err(&o));
    let o = run_within(
        &["sign", "--type", "config", "--key", "/dev/zero", s(&big)],
        limit,
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("/dev/zero"), "{}", err(&o));
}

/// A port already taken: the message names the address.
#[test]
fn a_port_conflict_names_the_address() {
    let d = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut cmd = bin();
    cmd.args(["dev-server", "--regions", "in", "--bind", "127.0.0.1"])
        .args(["--port", &port, "--dir", s(&d.path().join("data"))])
        .args(["--ready-file", s(&d.path().join("ready.json"))]);
    let o = spawn_within(cmd, Duration::from_secs(30));
    let e = err(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
}

/// `--db` and `--root` are in the help of the commands that use a
/// database, not of the others; before the command they work as ever.
#[test]
fn db_and_root_only_where_used() {
    for cmd in ["keygen", "sign", "demo", "dev-server"] {
        let o = run(&[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{cmd}");
        assert!(!out(&o).contains("--db"), "{cmd}: {}", out(&o));
        assert!(!out(&o).contains("--root"), "{cmd}: {}", out(&o));
    }
    for cmd in [&["status"][..], &["config", "show"], &["run"], &["init"]] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let o = run(&args);
        assert!(out(&o).contains("--db <DB>"), "{cmd:?}: {}", out(&o));
    }
    let d = tempfile::tempdir().unwrap();
    let server = DevServer::start(d.path(), &["--regions", "in"]);
    let db = signed_in(d.path(), &server, "IN");
    let before = ok(&db, &["status"]);
    let o = run(&["status", "--db", s(&db)]);
    assert_eq!((o.status.code(), out(&o)), (Some(0), before));
    // A command without a database refuses `--db` after it.
    assert_eq!(run(&["keygen", "--db", s(&db), "k"]).status.code(), Some(2));
}
