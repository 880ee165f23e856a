//! The CLI and the dev server as a QA engineer uses them (issue 14): every
//! failure is `error: <kind>: <message>` with exit 1 (a `run` that leaves
//! items failed too), `--json` outputs, snake_case names, `list --state
//! done`, errors that name the file the user typed, storage errors in words,
//! and a dev server whose own files are all a client needs (no `--test-ca`),
//! bound where an emulator can reach it, with its signing keys at hand.
//! Every invocation runs under a time limit (`common/cli.rs`).

use cloudsync_testkit::cli as common;

use std::net::TcpListener;
use std::path::Path;

use common::{cli, err, golden, ok, out, run, s, DevServer};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A database trusting the dev server's root with its config installed and
/// an account signed in in `IN`; files `a.bin` (300 KiB) and `b.bin` enqueued.
fn ready_queue(dir: &Path, server: &DevServer) -> std::path::PathBuf {
    let db = dir.join("q.db");
    ok(&db, &["init", "--root", &server.path("root")]);
    ok(&db, &["config", "install", &server.path("config")]);
    ok(&db, &["account", "set", "--id", "qa", "--country", "IN"]);
    let (a, b) = (dir.join("a.bin"), dir.join("b.bin"));
    std::fs::write(&a, vec![5u8; 300 * 1024]).unwrap();
    std::fs::write(&b, b"second file").unwrap();
    assert_eq!(ok(&db, &["enqueue", s(&a), s(&b)]), "1\n2\n");
    db
}

/// No Rust enum spelling (`Drained`, `TimeUp`, `CannotOpen`, ...) in `text`.
fn assert_snake(text: &str) {
    for word in [
        "Drained",
        "TimeUp",
        "Cancelled",
        "RegionChanged",
        "AccountChanged",
        "CannotOpen",
        "NotADatabase",
        "SourceIo",
        "EXPIRED",
    ] {
        assert!(!text.contains(word), "{word} in {text}");
    }
}

#[test]
fn help_lists_the_dev_server() {
    let o = run(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        out(&o)
            .lines()
            .any(|l| l.trim_start().starts_with("dev-server ")),
        "{}",
        out(&o)
    );
    let o = run(&["demo", "--help"]);
    assert!(out(&o).contains("four regional tus servers"), "{}", out(&o));
}

/// The dev server's root, config and CA (in the config's `ca_certs`) are
/// all the CLI needs: no `--test-ca`. Then `run --json`, `list --state
/// done`, `region show --json` and the snake_case text outputs.
#[test]
fn the_dev_servers_own_files_are_enough_to_upload() {
    let d = tempfile::tempdir().unwrap();
    let server = DevServer::start(d.path(), &["--regions", "in,sg"]);
    let payload = json(&std::fs::read_to_string(server.path("config_payload")).unwrap());
    let ca = std::fs::read_to_string(server.path("ca_pem")).unwrap();
    for id in ["in", "sg"] {
        assert_eq!(payload["regions"][id]["ca_certs"], serde_json::json!([ca]));
    }
    let db = ready_queue(d.path(), &server);
    let (code, text, e) = cli(&db, &["run", "--max-seconds", "30"]);
    assert_eq!(code, Some(0), "{text}{e}");
    assert_eq!(e, "");
    assert!(
        text.starts_with("region in uploaded 2 bytes ") && text.ends_with(" stopped drained\n"),
        "{text}"
    );
    let (code, text, _) = cli(&db, &["run", "--json"]);
    assert_eq!(code, Some(0));
    let r = json(&text);
    assert_eq!(
        (
            r["region"].as_str(),
            r["uploaded"].as_u64(),
            r["stopped"].as_str()
        ),
        (Some("in"), Some(0), Some("drained")),
        "{r}"
    );

    // Finished items, from the audit trail, in the columns of `list`.
    let text = ok(&db, &["list", "--state", "done"]);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(rows[0], ["1", "done", "in", "backup", "307200/307200", "-"]);
    assert_eq!(rows[1][..4], ["2", "done", "in", "backup"]);
    let v = json(&ok(&db, &["list", "--state", "done", "--json"]));
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
    assert_eq!(
        (
            v[0]["id"].as_i64(),
            v[0]["state"].as_str(),
            v[0]["size"].as_u64()
        ),
        (Some(1), Some("done"), Some(307_200)),
        "{v}"
    );
    assert!(v[0]["path"].is_null() && v[0]["sha256"].is_string(), "{v}");
    assert_eq!(
        ok(&db, &["list", "--state", "done", "--limit", "1"])
            .lines()
            .count(),
        1
    );
    assert_eq!(ok(&db, &["list"]), "", "the queue itself is empty");

    let v = json(&ok(&db, &["region", "show", "--json"]));
    assert_eq!(v, serde_json::json!({"region": "in", "reason": null}));
    let v = json(&ok(&db, &["config", "show", "--json"]));
    assert_eq!(v["config_version"], 1, "{v}");
    for args in [
        &["status"][..],
        &["list", "--state", "done"],
        &["region", "show"],
        &["config", "show"],
        &["audit"],
    ] {
        assert_snake(&ok(&db, args));
    }
    // No config: no region, in JSON too.
    let plain = d.path().join("plain.db");
    ok(&plain, &["init", "--root", s(&golden("root_v1.json"))]);
    assert_eq!(ok(&plain, &["region", "show"]), "none\n");
    let v = json(&ok(&plain, &["region", "show", "--json"]));
    assert_eq!(v, serde_json::json!({"region": null, "reason": null}));
}

/// With `--mirror` the root alone is enough: the config comes from the
/// mirror (`config refresh`), the upload needs no extra trust either.
#[test]
fn with_a_mirror_the_root_alone_is_enough() {
    let d = tempfile::tempdir().unwrap();
    let server = DevServer::start(d.path(), &["--regions", "in", "--mirror"]);
    let db = d.path().join("q.db");
    ok(&db, &["init", "--root", &server.path("root")]);
    assert!(ok(&db, &["config", "refresh"]).starts_with("installed config version 1\n"));
    ok(&db, &["account", "set", "--id", "qa", "--country", "IN"]);
    let f = d.path().join("photo.jpg");
    std::fs::write(&f, b"jpeg").unwrap();
    ok(&db, &["enqueue", s(&f)]);
    let text = ok(&db, &["run", "--max-seconds", "30"]);
    assert!(text.starts_with("region in uploaded 1 bytes 4 "), "{text}");
}

/// A run that leaves items failed exits 1 and says so on stderr: the kind
/// of the failure, how many remain, and one item's error.
#[test]
fn a_run_that_leaves_items_failed_says_how_many_and_why() {
    let d = tempfile::tempdir().unwrap();
    let server = DevServer::start(d.path(), &["--regions", "in"]);
    let db = ready_queue(d.path(), &server);
    // Items that only wait (time up at once) are `incomplete`.
    let (code, text, e) = cli(&db, &["run", "--max-seconds", "0"]);
    assert_eq!(code, Some(1), "{text}{e}");
    assert!(text.ends_with(" stopped time_up\n"), "{text}");
    assert_eq!(e, "error: incomplete: 2 items pending (stopped time_up)\n");

    server.stop();
    let (code, text, e) = cli(&db, &["run", "--max-seconds", "30"]);
    assert_eq!(code, Some(1), "{text}{e}");
    assert!(
        text.contains(" failed 2 ") && text.ends_with(" stopped drained\n"),
        "{text}"
    );
    assert!(
        e.starts_with("error: network: 2 items remain failed (stopped drained); item 1: "),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    assert_snake(&e);
    // The next run finds them still failed: the backoff is fully jittered
    // (uniform in [0, 4 s] here), so an item may be due again already — on a slow
    // machine (qemu) often — and fail again, the server being down. Either way:
    // still exit 1, still said.
    let (code, text, e) = cli(&db, &["run", "--json"]);
    assert_eq!(code, Some(1), "{text}{e}");
    let r = json(&text);
    assert!(r["failed"].as_u64().is_some_and(|n| n <= 2), "{r}");
    assert_eq!(
        (r["uploaded"].as_u64(), r["stopped"].as_str()),
        (Some(0), Some("drained"))
    );
    assert!(
        e.starts_with("error: network: 2 items remain failed "),
        "{e}"
    );
    let v = json(&ok(&db, &["list", "--json", "--state", "failed"]));
    assert!(
        v[0]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("network: "),
        "{v}"
    );
}

/// Errors about a file name the file as typed; storage errors are words
/// and name the `--db` file; the library's own part carries no path.
#[test]
fn errors_name_the_file_and_storage_errors_are_words() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("q.db");
    ok(&db, &["init", "--root", s(&golden("root_v1.json"))]);
    let missing = d.path().join("x.jpg");
    let (code, _, e) = cli(&db, &["enqueue", s(&missing)]);
    assert_eq!(code, Some(1));
    assert_eq!(
        e,
        format!("error: source_io: {}: entity not found\n", s(&missing))
    );
    let (code, _, e) = cli(&db, &["enqueue", s(d.path())]);
    assert_eq!(code, Some(1));
    assert!(
        e.starts_with(&format!("error: invalid_argument: {}: ", s(d.path()))),
        "{e}"
    );
    let st = json(&ok(&db, &["status", "--json"]));
    assert_eq!(st["pending"], 0, "nothing enqueued: {st}");
    let (code, _, e) = cli(&db, &["config", "install", s(&missing)]);
    assert_eq!(
        (code, e),
        (
            Some(1),
            format!("error: source_io: {}: entity not found\n", s(&missing))
        )
    );
    let key = d.path().join("no-such-dir").join("k.key");
    let o = run(&["keygen", s(&key)]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        format!("error: source_io: {}: entity not found\n", s(&key))
    );

    let nowhere = d.path().join("no-such-dir").join("q.db");
    let (code, _, e) = cli(&nowhere, &["init", "--root", s(&golden("root_v1.json"))]);
    assert_eq!(code, Some(1));
    assert_eq!(
        e,
        format!(
            "error: storage_unavailable: {}: cannot open the database file\n",
            s(&nowhere)
        )
    );
    let junk = d.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let (code, _, e) = cli(&junk, &["status"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        e,
        format!(
            "error: not_a_database: {}: the file is not a database\n",
            s(&junk)
        )
    );
    assert_snake(&e);
}

/// A port `p` with `p` and `p + 1` free on 127.0.0.1 (just now).
fn two_free_ports() -> u16 {
    for _ in 0..50 {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no two consecutive free ports");
}

fn mode(path: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `--bind` / `--port` put the servers where an emulator reaches them
/// (`adb reverse`), with the keys written 0600 and enough to sign a new
/// config that the CLI installs and uploads under, without `--test-ca`.
#[test]
// Long: one scenario end to end; each step reads the state the previous one left.
fn dev_server_binds_where_asked_and_writes_its_signing_keys() {
    let d = tempfile::tempdir().unwrap();
    let port = two_free_ports();
    let p = port.to_string();
    let server = DevServer::start(
        d.path(),
        &["--regions", "in,sg", "--bind", "127.0.0.1", "--port", &p],
    );
    let regions = &server.ready["regions"];
    for (id, port) in [("in", port), ("sg", port + 1)] {
        assert_eq!(regions[id]["port"], port, "{regions}");
        assert_eq!(
            regions[id]["url"],
            format!("https://127.0.0.1:{port}/files/")
        );
    }
    for key in ["root_key", "config_key"] {
        assert_eq!(mode(&server.path(key)), 0o600, "{key}");
        let text = std::fs::read_to_string(server.path(key)).unwrap();
        assert!(!text.is_empty());
    }
    let payload = json(&std::fs::read_to_string(server.path("config_payload")).unwrap());
    let sg = &payload["regions"]["sg"];
    assert_eq!(
        sg["allowed_hosts"],
        serde_json::json!([format!("127.0.0.1:{}", port + 1)])
    );
    assert_eq!(sg["networks"], serde_json::json!(["127.0.0.1/32"]));

    // QA signs config v2 under the dev server's root (only `IN` now).
    let mut v2 = payload.clone();
    v2["version"] = 2.into();
    v2["countries"] = serde_json::json!({"IN": "in"});
    let v2_path = d.path().join("v2.payload.json");
    std::fs::write(&v2_path, v2.to_string()).unwrap();
    let o = run(&[
        "sign",
        "--type",
        "config",
        "--key",
        &server.path("config_key"),
        s(&v2_path),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let v2_env = d.path().join("v2.json");
    std::fs::write(&v2_env, &o.stdout).unwrap();
    let o = run(&["verify", "--root", &server.path("root"), s(&v2_env)]);
    assert!(out(&o).starts_with("ok config version 2 "), "{}", out(&o));

    let db = ready_queue(d.path(), &server);
    assert_eq!(
        ok(&db, &["config", "install", s(&v2_env)]),
        "installed config version 2\n"
    );
    let text = ok(&db, &["run", "--max-seconds", "30"]);
    assert!(text.starts_with("region in uploaded 2 "), "{text}");
    let (code, _, e) = cli(&db, &["region", "set-country", "SG"]);
    assert_eq!(code, Some(0), "{e}");
    assert_eq!(ok(&db, &["region", "show"]), "none\n", "v2 maps only IN");

    // A second server on the same ports cannot start: a usage error, no ready file.
    let d2 = tempfile::tempdir().unwrap();
    let ready = d2.path().join("ready.json");
    let o = run(&[
        "dev-server",
        "--dir",
        s(&d2.path().join("data")),
        "--ready-file",
        s(&ready),
        "--regions",
        "in",
        "--bind",
        "127.0.0.1",
        "--port",
        &p,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(
        err(&o).starts_with("error: cannot start servers: "),
        "{}",
        err(&o)
    );
    assert!(!ready.exists());
}

/// The emulator's view: `--public-host 10.0.2.2` is what the config, the
/// certificates and the URLs name; `--bind 0.0.0.0` needs it; a host the
/// config rules refuse stops the server before it is ready.
#[test]
fn dev_server_public_host_is_in_the_config() {
    let d = tempfile::tempdir().unwrap();
    let server = DevServer::start(
        d.path(),
        &[
            "--regions",
            "in",
            "--bind",
            "127.0.0.1",
            "--public-host",
            "10.0.2.2",
            "--mirror",
        ],
    );
    let port = server.ready["regions"]["in"]["port"].as_u64().unwrap();
    assert_eq!(server.ready["regions"]["in"]["addr"], "127.0.0.1");
    assert_eq!(server.ready["regions"]["in"]["host"], "10.0.2.2");
    let payload = json(&std::fs::read_to_string(server.path("config_payload")).unwrap());
    let r = &payload["regions"]["in"];
    assert_eq!(
        r["services"]["backup"]["url"],
        format!("https://10.0.2.2:{port}/files/")
    );
    assert_eq!(
        r["allowed_hosts"],
        serde_json::json!([format!("10.0.2.2:{port}")])
    );
    assert_eq!(r["networks"], serde_json::json!(["10.0.2.2/32"]));
    let mirror_url = server.ready["mirror"]["url"].as_str().unwrap();
    assert!(mirror_url.starts_with("https://10.0.2.2:"), "{mirror_url}");
    let root = json(&std::fs::read_to_string(server.path("root_payload")).unwrap());
    assert_eq!(root["sources"]["urls"], serde_json::json!([mirror_url]));
    drop(server);

    for (args, want) in [
        (
            &["--bind", "0.0.0.0"][..],
            "error: --bind 0.0.0.0 needs --public-host",
        ),
        (
            &["--public-host", "10.0.2.2"],
            "error: the following required arguments",
        ),
        (
            &["--bind", "127.0.0.1", "--public-host", "host.999"],
            "error: the config it would serve is refused (invalid_endpoint: ",
        ),
    ] {
        let d = tempfile::tempdir().unwrap();
        let ready = d.path().join("ready.json");
        let mut all = vec![
            "dev-server",
            "--dir",
            s(d.path()),
            "--ready-file",
            s(&ready),
        ];
        all.extend_from_slice(args);
        let o = run(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", err(&o));
        assert!(err(&o).starts_with(want), "{args:?}: {}", err(&o));
        assert!(!ready.exists(), "{args:?}");
    }
}

#[test]
fn audit_retention_is_shown_set_and_refused_out_of_range() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("q.db");
    let root = golden("root_v1.json");
    assert_eq!(cli(&db, &["init", "--root", s(&root)]).0, Some(0));
    assert_eq!(
        cli(&db, &["audit-retention"]),
        (Some(0), "audit retention 400 days\n".into(), String::new())
    );
    // Out of range: exit 1 with the kind, and the setting is unchanged.
    for bad in ["0", "36501"] {
        let (code, stdout, stderr) = cli(&db, &["audit-retention", "--days", bad]);
        assert_eq!((code, stdout.as_str()), (Some(1), ""), "{bad}");
        assert_eq!(
            stderr,
            "error: invalid_argument: audit retention must be 1..=36500 days\n"
        );
    }
    assert_eq!(cli(&db, &["audit-retention", "--days", "-3"]).0, Some(2));
    let (code, stdout, _) = cli(&db, &["status", "--json"]);
    assert_eq!(
        (code, json(&stdout)["audit_retention_days"].as_u64()),
        (Some(0), Some(400))
    );
    let (code, stdout, _) = cli(&db, &["audit-retention", "--days", "30", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        json(&stdout),
        serde_json::json!({"audit_retention_days": 30, "pruned": 0})
    );
    let (_, stdout, _) = cli(&db, &["status", "--json"]);
    let v = json(&stdout);
    assert_eq!(
        (v["audit_retention_days"].as_u64(), v["done"].as_u64()),
        (Some(30), Some(0))
    );
    assert_eq!(
        cli(&db, &["audit-retention", "--prune"]),
        (
            Some(0),
            "audit retention 30 days\npruned 0\n".into(),
            String::new()
        )
    );
}

/// `list --after ID --limit N` and `audit --after ID` page by key: the last id
/// of a page gives the next, every item once, `--json` too; `--state done`
/// pages by `audit_id`. A negative cursor is `invalid_argument` (exit 1).
#[test]
// Long: one scenario end to end; each step reads the state the previous one left.
fn list_and_audit_page_by_key() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("q.db");
    ok(&db, &["init", "--root", s(&golden("root_v1.json"))]);
    let files: Vec<String> = (0..5)
        .map(|i| {
            let p = d.path().join(format!("f{i}.jpg"));
            std::fs::write(&p, [i as u8]).unwrap();
            s(&p).to_string()
        })
        .collect();
    let mut args = vec!["enqueue"];
    args.extend(files.iter().map(String::as_str));
    assert_eq!(ok(&db, &args), "1\n2\n3\n4\n5\n");
    let ids = |text: &str| -> Vec<String> {
        let lines = text.lines();
        lines
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&ok(&db, &["list", "--limit", "2"])), ["1", "2"]);
    assert_eq!(
        ids(&ok(&db, &["list", "--after", "2", "--limit", "2"])),
        ["3", "4"]
    );
    assert_eq!(
        ids(&ok(&db, &["list", "--after", "4", "--limit", "2"])),
        ["5"]
    );
    assert_eq!(ok(&db, &["list", "--after", "5"]), "");
    let v = json(&ok(
        &db,
        &["list", "--json", "--state", "pending", "--after", "3"],
    ));
    let got: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, [4, 5]);

    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "INSERT INTO audit (item_id, service, region, host, bytes, sha256, finished_at)
             VALUES (7, 'backup', 'in', 'h:443', 1, zeroblob(32), 1),
                    (8, 'backup', 'in', 'h:443', 1, zeroblob(32), 2),
                    (9, 'backup', 'in', 'h:443', 1, zeroblob(32), 3);",
        )
        .unwrap();
    assert_eq!(ids(&ok(&db, &["audit", "--limit", "2"])), ["1", "2"]);
    assert_eq!(ids(&ok(&db, &["audit", "--after", "2"])), ["3"]);
    let v = json(&ok(
        &db,
        &["audit", "--json", "--after", "1", "--limit", "1"],
    ));
    assert_eq!(
        (v[0]["id"].as_i64(), v.as_array().unwrap().len()),
        (Some(2), 1)
    );
    // Finished items: the cursor is the audit row's id.
    let v = json(&ok(
        &db,
        &["list", "--state", "done", "--json", "--after", "1"],
    ));
    let got: Vec<(i64, i64)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["audit_id"].as_i64().unwrap(), r["id"].as_i64().unwrap()))
        .collect();
    assert_eq!(got, [(2, 8), (3, 9)]);
    assert_eq!(
        ids(&ok(&db, &["list", "--state", "done", "--after", "2"])),
        ["9"]
    );

    for args in [
        &["list", "--after=-1"][..],
        &["list", "--state", "held", "--after=-5"],
        &["list", "--state", "done", "--after=-1"],
        &["audit", "--after=-1"],
    ] {
        let (code, text, e) = cli(&db, args);
        assert_eq!(
            (code, text.as_str(), e.as_str()),
            (
                Some(1),
                "",
                "error: invalid_argument: after_id is negative\n"
            ),
            "{args:?}"
        );
    }
    for args in [
        &["list", "--limit=-1"][..],
        &["list", "--after", "x"],
        &["audit", "--limit=-2"],
    ] {
        let (code, _, e) = cli(&db, args);
        assert_eq!(code, Some(2), "{args:?}: {e}");
    }
}
