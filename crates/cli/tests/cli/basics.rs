//! The `cloudsync` binary as QA scripts use it: exit codes (0 ok, 1 rejected,
//! 2 usage), output formats, and no secrets in output. The tests that upload
//! (to a `cloudsync dev-server` child) and the demo run under time limits.
//! More (the QA surface of issue 14) in `cli_qa.rs`.

use cloudsync_testkit::cli as common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{err, golden, out, publish_signed, run, run_within, s, DevServer, STEP_LIMIT};

#[test]
// Long: one scenario end to end; each step reads the state the previous one left.
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
    let cli = cloudsync_testkit::cloudsync_exe();
    let ft = |when: &str, args: &[&str]| {
        Command::new("faketime")
            .env("CLOUDSYNC_ROOT", golden("root_v1.json"))
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

#[test]
// Long: one scenario end to end; each step reads the state the previous one left.
fn run_with_a_token_file_against_a_dev_server_that_requires_it() {
    const TOKEN: &str = "cli-token-9c2d41";
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    let arg = format!("in={TOKEN}");
    let o = run_within(
        &[
            "dev-server",
            "--dir",
            "x",
            "--ready-file",
            "y",
            "--token",
            "zz=s",
        ],
        STEP_LIMIT,
    );
    assert_eq!(o.status.code(), Some(2), "a region it does not serve");
    assert!(!err(&o).contains("=s"), "{}", err(&o));
    let server = DevServer::start(d.path(), &["--regions", "in,sg", "--token", &arg]);
    assert_eq!(server.ready["regions"]["in"]["auth"], "bearer");
    assert_eq!(server.ready["regions"]["sg"]["auth"], "none");
    let db = p("q.db");
    let cli = |args: &[&str]| {
        let mut all = vec!["--db", s(&db)];
        all.extend_from_slice(args);
        let o = run_within(&all, STEP_LIMIT);
        let (out, err) = (out(&o), err(&o));
        assert!(
            !out.contains(TOKEN)
                && !err.contains(TOKEN)
                && !out.contains("wrong-9")
                && !err.contains("wrong-9"),
            "a token was printed by {args:?}:\n{out}\n{err}"
        );
        (o.status.code(), out, err)
    };
    assert_eq!(cli(&["init", "--root", &server.path("root")]).0, Some(0));
    assert_eq!(
        cli(&["config", "install", &server.path("config")]).0,
        Some(0)
    );
    assert_eq!(cli(&["account", "show"]).1, "none\n");
    let (code, text, _) = cli(&["account", "set", "--id", "alice", "--country", "IN"]);
    assert_eq!((code, text.as_str()), (Some(0), "signed in, region in\n"));
    assert_eq!(cli(&["account", "show"]).1, "signed in\n");
    let file = p("photo.bin");
    std::fs::write(&file, vec![7u8; 300 * 1024]).unwrap();
    assert_eq!(cli(&["enqueue", s(&file)]).1, "1\n");
    let good = format!("{TOKEN}\r\nsecond line ignored\n");
    common::write_private(&p("good.tok"), good.as_bytes());
    common::write_private(&p("wrong.tok"), b"wrong-9\n");
    common::write_private(&p("empty.tok"), b"\n");
    let ca = server.path("ca_pem");
    let run = |token_file: &str| {
        cli(&[
            "run",
            "--max-seconds",
            "30",
            "--test-ca",
            &ca,
            "--token-file",
            token_file,
        ])
    };

    // The file the user typed is named; nothing is read from a bad one.
    let missing = p("missing.tok");
    let (code, _, e) = run(s(&missing));
    assert_eq!(code, Some(2), "{e}");
    assert!(e.contains(s(&missing)) && e.contains("cannot read"), "{e}");
    let (code, _, e) = run(s(&p("empty.tok")));
    assert_eq!(code, Some(2), "{e}");
    assert!(e.contains(s(&p("empty.tok"))) && e.contains("empty"), "{e}");

    // A wrong token: refused twice (the refresh re-reads the file), nothing changes.
    let (code, _, e) = run(s(&p("wrong.tok")));
    assert_eq!(code, Some(1), "{e}");
    assert!(e.starts_with("error: unauthorized: "), "{e}");
    let (_, text, _) = cli(&["list", "--json"]);
    let items: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(items[0]["state"], "pending", "{items}");
    assert_eq!(items[0]["attempts"], 0, "{items}");
    assert!(items[0]["held_reason"].is_null(), "{items}");
    let alice = items[0]["account"].as_str().unwrap().to_string();
    assert_eq!(alice.len(), 16, "8 bytes of the stamp in hex: {items}");
    assert!(!text.contains("alice"), "the id is never shown: {text}");

    // Without a token file the service that needs one is refused too.
    let (code, _, e) = cli(&["run", "--max-seconds", "30", "--test-ca", &ca]);
    assert_eq!(code, Some(1), "{e}");
    assert!(
        e.starts_with("error: unauthorized: ") && e.contains("no provider"),
        "{e}"
    );

    // The right one (first line, CRLF trimmed).
    let (code, text, e) = run(s(&p("good.tok")));
    assert_eq!(code, Some(0), "{text}{e}");
    assert!(text.starts_with("region in uploaded 1 "), "{text}");

    // Items belong to the account: bob's run holds alice's item.
    let later = p("later.bin");
    std::fs::write(&later, b"alice's, enqueued before bob signs in").unwrap();
    assert_eq!(cli(&["enqueue", s(&later)]).1, "2\n");
    assert_eq!(cli(&["account", "set", "--id", "bob"]).0, Some(0));
    let (_, text, _) = cli(&["list", "--json"]);
    let items: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        items.as_array().unwrap().len(),
        1,
        "item 1 is done: {items}"
    );
    assert_eq!(items[0]["account"], alice.as_str(), "{items}");
    assert_eq!(items[0]["state"], "held", "{items}");
    assert_eq!(items[0]["held_reason"], "account", "{items}");
    let (_, text, _) = cli(&["list", "--state", "held"]);
    assert!(
        text.starts_with("2\theld\tin\tbackup\t"),
        "columns unchanged: {text}"
    );

    // Signed out: runs and enqueues refused, the queue kept.
    let (code, text, _) = cli(&["account", "sign-out"]);
    assert_eq!((code, text.as_str()), (Some(0), "signed out\n"));
    assert_eq!(cli(&["account", "show"]).1, "signed out\n");
    let (code, _, e) = run(s(&p("good.tok")));
    assert_eq!(code, Some(1), "{e}");
    assert!(e.starts_with("error: no_account: "), "{e}");
    let (code, _, e) = cli(&["enqueue", s(&file)]);
    assert_eq!(code, Some(1), "{e}");
    assert!(e.starts_with("error: no_account: "), "{e}");
    let (_, text, _) = cli(&["status", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (st["done"].as_u64(), st["held"].as_u64()),
        (Some(1), Some(1)),
        "{st}"
    );

    // Alice again: her item goes out.
    cli(&["account", "set", "--id", "alice"]);
    let (code, text, e) = run(s(&p("good.tok")));
    assert_eq!(code, Some(0), "{text}{e}");
    assert!(text.starts_with("region in uploaded 1 "), "{text}");
}

#[test]
// Long: one scenario end to end; each step reads the state the previous one left.
fn config_refresh_against_a_dev_server_mirror() {
    let d = tempfile::tempdir().unwrap();
    let server = DevServer::start(d.path(), &["--regions", "in", "--mirror"]);
    let mirror = &server.ready["mirror"];
    let url = mirror["url"].as_str().unwrap();
    let host_port = url
        .trim_start_matches("https://")
        .trim_end_matches("/sources/");
    let mirror_dir = PathBuf::from(mirror["dir"].as_str().unwrap());
    let db = d.path().join("q.db");
    let cli = |args: &[&str]| {
        let mut all = vec!["--db", s(&db)];
        all.extend_from_slice(args);
        let o = run_within(&all, STEP_LIMIT);
        (o.status.code(), out(&o), err(&o))
    };
    let json = |text: &str| -> serde_json::Value { serde_json::from_str(text).unwrap() };
    assert_eq!(cli(&["init", "--root", &server.path("root")]).0, Some(0));
    let (_, shown, _) = cli(&["config", "show"]);
    let due = shown
        .lines()
        .find_map(|l| l.strip_prefix("refresh due    "))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(due.ends_with('Z') && due.contains('T'), "RFC 3339: {shown}");

    // The config the mirror serves, then nothing new (a 304).
    let (code, text, e) = cli(&["config", "refresh"]);
    assert_eq!(code, Some(0), "{e}");
    assert_eq!(
        text,
        format!("installed config version 1\nmirror {host_port}\n")
    );
    let (code, text, _) = cli(&["config", "refresh"]);
    assert_eq!(
        (code, text),
        (Some(0), format!("unchanged\nmirror {host_port}\n"))
    );
    let (code, text, _) = cli(&["config", "refresh", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        json(&text),
        serde_json::json!({
            "roots": [], "config": null, "mirror": host_port, "unchanged": true,
            "root_version": 1, "config_error": null, "more_roots": false
        })
    );

    // Published while it runs: a root rotation and a new config, signed
    // with the keys the ready file names.
    let payload = |field: &str, version: u64| {
        let path = mirror[field].as_str().unwrap();
        let mut v = json(&std::fs::read_to_string(path).unwrap());
        v["version"] = version.into();
        v
    };
    let (root_key, config_key) = (
        mirror["root_key"].as_str().unwrap(),
        mirror["config_key"].as_str().unwrap(),
    );
    publish_signed(
        &mirror_dir,
        "root/2.json",
        "root",
        root_key,
        &payload("root_payload", 2),
    );
    publish_signed(
        &mirror_dir,
        "config.json",
        "config",
        config_key,
        &payload("config_payload", 2),
    );
    let (code, text, e) = cli(&["config", "refresh", "--json"]);
    assert_eq!(code, Some(0), "{e}");
    assert_eq!(
        json(&text),
        serde_json::json!({
            "roots": [2], "config": 2, "mirror": host_port, "unchanged": false,
            "root_version": 2, "config_error": null, "more_roots": false
        })
    );
    let (_, text, _) = cli(&["config", "show", "--json"]);
    let info = json(&text);
    assert_eq!(
        (
            info["root_version"].as_u64(),
            info["config_version"].as_u64()
        ),
        (Some(2), Some(2)),
        "{info}"
    );
    assert!(info["refresh_due_at_ms"].is_i64(), "{info}");

    // A bad answer: its kind, and nothing changes.
    std::fs::write(mirror_dir.join("config.json"), "not an envelope").unwrap();
    let (code, text, e) = cli(&["config", "refresh"]);
    assert_eq!((code, text.as_str()), (Some(1), ""), "{e}");
    assert!(e.starts_with("error: malformed: "), "{e}");
    let (_, text, _) = cli(&["config", "show", "--json"]);
    assert_eq!(json(&text), info, "trust unchanged");

    // A root without sources cannot refresh.
    let plain = d.path().join("plain.db");
    let o = run(&[
        "--db",
        s(&plain),
        "init",
        "--root",
        s(&golden("root_v1.json")),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let o = run_within(&["--db", s(&plain), "config", "refresh"], STEP_LIMIT);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).starts_with("error: invalid_argument: "),
        "{}",
        err(&o)
    );
    let o = run(&["--db", s(&plain), "config", "show"]);
    assert!(
        out(&o).contains("refresh due    - (the root lists no sources)"),
        "{}",
        out(&o)
    );
}

#[test]
fn demo_runs_and_prints_no_token() {
    let d = tempfile::tempdir().unwrap();
    let o = run_within(
        &["demo", "--big-mib", "1", "--dir", s(d.path())],
        Duration::from_secs(180),
    );
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{text}\n{}", err(&o));
    assert!(text.contains("ALL CHECKS PASSED"), "{text}");
    assert!(
        !text.contains("demo-token-") && !err(&o).contains("demo-token-"),
        "{text}"
    );
}
