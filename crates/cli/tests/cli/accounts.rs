//! A country belongs to an account, as the `cloudsync` binary shows it
//! (issue 21, point 3): after a sign-out, another account signed in without
//! `--country` has no region and `run` sends nothing; the first account gets
//! its own country back; `region set-country` while signed out is refused.
//! Uploads go to a `cloudsync dev-server` child; "nothing sent" is read from
//! its storage directories.

use cloudsync_testkit::cli as common;

use std::path::Path;

use common::{bin, err, out, s, spawn_within, DevServer, STEP_LIMIT};

/// Files the dev server stored for `region` (one per upload it created).
fn stored(server_dir: &Path, region: &str) -> usize {
    match std::fs::read_dir(server_dir.join("data").join(region)) {
        Ok(entries) => entries.count(),
        Err(_) => 0,
    }
}

#[test]
// Long: one scenario end to end; each step reads the state the previous one left.
fn a_new_account_has_no_country_until_it_is_given_one() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    let server = DevServer::start(d.path(), &["--regions", "in,sg"]);
    let root = server.path("root");
    let ca = server.path("ca_pem");
    let db = p("q.db");
    let cli = |args: &[&str]| {
        let mut all = vec!["--db", s(&db)];
        all.extend_from_slice(args);
        // Commands that change trust or upload need the firmware root.
        let mut cmd = bin();
        cmd.env("CLOUDSYNC_ROOT", &root).args(&all);
        let o = spawn_within(cmd, STEP_LIMIT);
        (o.status.code(), out(&o), err(&o))
    };
    let ok = |args: &[&str]| {
        let (code, text, e) = cli(args);
        assert_eq!(code, Some(0), "{args:?}: {text}{e}");
        text
    };
    let nothing_sent = || (stored(d.path(), "in"), stored(d.path(), "sg"));
    ok(&["init", "--root", &root]);
    ok(&["config", "install", &server.path("config")]);
    let run = || cli(&["run", "--max-seconds", "30", "--test-ca", &ca]);

    assert_eq!(
        ok(&["account", "set", "--id", "alice", "--country", "IN"]),
        "signed in, region in\n"
    );
    std::fs::write(p("a.bin"), vec![1u8; 50_000]).unwrap();
    assert_eq!(ok(&["enqueue", s(&p("a.bin"))]), "1\n");
    assert_eq!(ok(&["account", "sign-out"]), "signed out\n");
    assert_eq!(ok(&["region", "show"]), "none\n");

    // Signed out, a country is refused: it belongs to an account.
    let (code, _, e) = cli(&["region", "set-country", "SG"]);
    assert_eq!(code, Some(1), "{e}");
    assert!(e.starts_with("error: no_account: "), "{e}");
    assert_eq!(ok(&["region", "show"]), "none\n");

    // Bob, without --country: no region, and a run sends nothing.
    assert_eq!(
        ok(&["account", "set", "--id", "bob"]),
        "signed in, region none\n"
    );
    assert_eq!(ok(&["region", "show"]), "none\n");
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&["region", "show", "--json"])).unwrap();
    assert_eq!(
        shown,
        serde_json::json!({"region": null, "reason": null}),
        "no country is no error"
    );
    std::fs::write(p("b.bin"), vec![2u8; 50_000]).unwrap();
    assert_eq!(ok(&["enqueue", s(&p("b.bin"))]), "2\n");
    let (code, text, e) = run();
    assert_eq!(code, Some(1), "{text}{e}");
    assert!(e.starts_with("error: no_region: "), "{e}");
    assert_eq!(nothing_sent(), (0, 0), "no upload anywhere");
    let st: serde_json::Value = serde_json::from_str(&ok(&["status", "--json"])).unwrap();
    assert_eq!(
        (
            st["pending"].as_u64(),
            st["held"].as_u64(),
            st["done"].as_u64()
        ),
        (Some(1), Some(1), Some(0)),
        "bob's item waits, alice's is held for her: {st}"
    );

    // Alice again, without --country: hers comes back, her item goes to in.
    assert_eq!(
        ok(&["account", "set", "--id", "alice"]),
        "signed in, region in\n"
    );
    assert_eq!(ok(&["region", "show"]), "in\n");
    let (code, text, e) = run();
    assert_eq!(code, Some(0), "{text}{e}");
    assert!(text.starts_with("region in uploaded 1 "), "{text}");
    assert_eq!(nothing_sent(), (1, 0), "one upload, in india only");
}
