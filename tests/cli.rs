//! The `cloudsync` binary as QA scripts use it: exit codes (0 ok, 1 rejected,
//! 2 usage), output formats, and no secrets in output.

#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cloudsync"));
    c.env_remove("RUST_LOG");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("spawn cloudsync")
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn keygen_sign_verify_init_install_show() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    let o = run(&["keygen", s(&p("root.key"))]);
    assert_eq!(o.status.code(), Some(0));
    let text = out(&o);
    let keyid = text
        .lines()
        .next()
        .unwrap()
        .strip_prefix("keyid ")
        .unwrap()
        .to_string();
    let public = text
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("public ")
        .unwrap()
        .to_string();
    assert_eq!(keyid.len(), 64);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(p("root.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        run(&["keygen", s(&p("root.key"))]).status.code(),
        Some(1),
        "never overwrites a key"
    );

    let root = serde_json::json!({"version": 1, "expires_at": "2099-01-01T00:00:00Z",
        "keys": {keyid.clone(): {"type": "ed25519", "public": public}},
        "roles": {"root": {"keyids": [keyid.clone()], "threshold": 1}, "config": {"keyids": [keyid], "threshold": 1}}});
    std::fs::write(p("root.payload"), root.to_string()).unwrap();
    let o = run(&[
        "sign",
        "--type",
        "root",
        "--key",
        s(&p("root.key")),
        s(&p("root.payload")),
    ]);
    assert_eq!(o.status.code(), Some(0));
    std::fs::write(p("root.json"), &o.stdout).unwrap();
    let cfg = serde_json::json!({"version": 3, "issued_at": "2026-01-01T00:00:00Z", "expires_at": "2099-01-01T00:00:00Z",
        "countries": {"IN": "in"},
        "regions": {"in": {"services": {"backup": {"url": "https://backup.in.example.net/files/?token=SECRET", "protocol": "tus"}},
                            "allowed_hosts": ["backup.in.example.net"]}}});
    std::fs::write(p("cfg.payload"), cfg.to_string()).unwrap();
    let o = run(&[
        "sign",
        "--type",
        "config",
        "--key",
        s(&p("root.key")),
        s(&p("cfg.payload")),
    ]);
    std::fs::write(p("cfg.json"), &o.stdout).unwrap();

    let o = run(&["verify", "--root", s(&p("root.json")), s(&p("cfg.json"))]);
    assert_eq!(
        (o.status.code(), out(&o).trim()),
        (Some(0), "ok config version 3 expires 2099-01-01T00:00:00Z")
    );
    let o = run(&[
        "verify",
        "--root",
        s(&p("root.json")),
        s(&golden("config_v7.json")),
    ]);
    assert_eq!(
        (o.status.code(), out(&o).trim()),
        (Some(1), "bad_signature"),
        "signed by other keys"
    );

    let db = p("q.db");
    assert_eq!(
        run(&["--db", s(&db), "init", "--root", s(&p("root.json"))])
            .status
            .code(),
        Some(0)
    );
    let o = run(&["--db", s(&db), "config", "install", s(&p("cfg.json"))]);
    assert_eq!(
        (o.status.code(), out(&o).trim()),
        (Some(0), "installed config version 3")
    );
    let o = run(&["--db", s(&db), "config", "show"]);
    let shown = out(&o);
    assert!(
        shown.contains("config version 3") && shown.contains("regions        in"),
        "{shown}"
    );
    assert!(
        !shown.contains("SECRET") && !shown.contains("https://") && !shown.contains("ed25519"),
        "{shown}"
    );
    let o = run(&["--db", s(&db), "region", "show"]);
    assert_eq!(out(&o).trim(), "none");
    let o = run(&["--db", s(&db), "region", "set-country", "in"]);
    assert_eq!((o.status.code(), out(&o).trim()), (Some(0), "in"));
    assert_eq!(out(&run(&["--db", s(&db), "region", "show"])).trim(), "in");
}

#[test]
fn rejected_input_exits_1_with_its_kind_and_usage_errors_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("q.db");
    assert_eq!(
        run(&["--db", s(&db), "init", "--root", s(&golden("root_v1.json"))])
            .status
            .code(),
        Some(0)
    );
    for (file, kind) in [
        ("config_v7_tampered.json", "bad_signature"),
        ("config_v7_one_sig.json", "threshold_not_met"),
        ("garbage.json", "malformed"),
        ("config_bad_host.json", "invalid_endpoint"),
    ] {
        let o = run(&["--db", s(&db), "config", "install", s(&golden(file))]);
        assert_eq!(o.status.code(), Some(1), "{file}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with(&format!("error: {kind}: ")),
            "{file}: {err}"
        );
        assert!(
            !err.contains(s(d.path())) && !err.contains("example.net"),
            "{err}"
        );
    }
    assert_eq!(
        run(&["--db", s(&db), "region", "set-country", "IND"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        run(&["sign", "--type", "root", "x"]).status.code(),
        Some(2),
        "missing --key"
    );
    assert_eq!(run(&["status"]).status.code(), Some(2), "missing --db");
    let missing = d.path().join("nope.db");
    assert_eq!(run(&["--db", s(&missing), "status"]).status.code(), Some(2));
    assert!(!missing.exists(), "status never creates a database");
}

#[test]
fn queue_commands() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("q.db");
    run(&["--db", s(&db), "init", "--root", s(&golden("root_v1.json"))]);
    let f1 = d.path().join("a.jpg");
    let f2 = d.path().join("b.jpg");
    std::fs::write(&f1, vec![1u8; 1000]).unwrap();
    std::fs::write(&f2, vec![2u8; 24]).unwrap();
    let o = run(&["--db", s(&db), "enqueue", "--priority", "5", s(&f1), s(&f2)]);
    assert_eq!((o.status.code(), out(&o)), (Some(0), "1\n2\n".to_string()));
    let o = run(&["--db", s(&db), "enqueue", s(&f1)]);
    assert_eq!(out(&o), "1\n", "same path and service: same id");
    let o = run(&["--db", s(&db), "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["pending"].as_u64(), v["pending_bytes"].as_u64()),
        (Some(2), Some(1024))
    );
    let o = run(&["--db", s(&db), "list", "--json", "--state", "pending"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(
        run(&["--db", s(&db), "list", "--state", "bogus"])
            .status
            .code(),
        Some(2)
    );
    let o = run(&["--db", s(&db), "enqueue", s(&d.path().join("missing.jpg"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: source_io"));
    // Uploads are off without a config: run fails closed with the reason.
    let o = run(&["--db", s(&db), "run"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).starts_with("error: no_config"),
        "{:?}",
        o
    );
    assert_eq!(out(&run(&["--db", s(&db), "retry-dead"])), "0\n");
    assert_eq!(out(&run(&["--db", s(&db), "discard"])), "0\n");
}

#[test]
fn audit_shows_the_bytes_confirmed_and_the_bytes_sent() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("q.db");
    run(&["--db", s(&db), "init", "--root", s(&golden("root_v1.json"))]);
    // One upload the server already held (nothing sent), one from before
    // schema v4 (not counted).
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "INSERT INTO audit (item_id, service, region, host, peer_ip, bytes, sent_bytes,
                                sha256, finished_at)
             VALUES (1, 'backup', 'in', 'h:443', '127.0.0.2', 3145728, 0, zeroblob(32), 1),
                    (2, 'backup', 'in', 'h:443', NULL, 10, NULL, zeroblob(32), 2);",
        )
        .unwrap();
    let text = out(&run(&["--db", s(&db), "audit"]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("\t3145728 bytes\tsent 0\t"), "{text}");
    assert!(lines[1].contains("\t10 bytes\tsent -\t"), "{text}");
    let o = run(&["--db", s(&db), "audit", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v[0]["bytes"].as_u64(), v[0]["sent_bytes"].as_u64()),
        (Some(3_145_728), Some(0))
    );
    assert!(v[1]["sent_bytes"].is_null(), "{v}");
}

/// Needs Debian's `faketime` (installed by the test command): the process's
/// wall clock is moved, not an injected clock.
#[test]
fn clock_moves_under_faketime() {
    let have = Command::new("faketime")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        have,
        "faketime is required (apt-get install faketime; scripts/test.sh installs it)"
    );
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("q.db");
    let cli = env!("CARGO_BIN_EXE_cloudsync");
    let ft = |when: &str, args: &[&str]| {
        Command::new("faketime")
            .arg(when)
            .arg(cli)
            .args(["--db", s(&db)])
            .args(args)
            .output()
            .unwrap()
    };
    assert_eq!(
        ft(
            "2026-12-01 00:00:00",
            &["init", "--root", s(&golden("root_v1.json"))]
        )
        .status
        .code(),
        Some(0)
    );
    assert_eq!(
        ft(
            "2026-12-01 00:00:00",
            &["config", "install", s(&golden("config_v8.json"))]
        )
        .status
        .code(),
        Some(0)
    );
    ft("2026-12-01 00:00:00", &["region", "set-country", "IN"]);
    assert_eq!(
        out(&ft("2020-01-01 00:00:00", &["region", "show"])).trim(),
        "in",
        "floor = issued_at: a clock behind it is judged at issued_at"
    );
    assert_eq!(
        out(&ft("2027-06-02 00:00:00", &["region", "show"])).trim(),
        "none (expired)"
    );
    // Sticky: once seen expired, a clock set back does not revive it.
    for when in ["2027-05-31 23:50:00", "2020-01-01 00:00:00"] {
        assert_eq!(
            out(&ft(when, &["region", "show"])).trim(),
            "none (expired)",
            "{when}"
        );
    }
    let o = ft(
        "2020-01-01 00:00:00",
        &["config", "install", s(&golden("config_expired.json"))],
    );
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: expired"));
}
