//! Whose backups go with whose token (issue 12): items belong to the account
//! signed in when they were enqueued; another account's items are held and
//! never sent with this account's token; a sign-out stops uploads and keeps
//! the queue; and every residency attack leaves the wrong server without an
//! `Authorization` header or a byte of the token. Real TLS tus servers on
//! loopback that require per-region bearer tokens; every run has a watchdog.

use std::sync::{Arc, Mutex};

use cloudsync::auth::{CredentialRequest, ProviderError, Secret};
use cloudsync::{Agent, ErrorKind, StopReason};
use cloudsync_devserver::world::World;
use cloudsync_devserver::Fault;
use cloudsync_testkit::env::{require_tokens, run, run_with, token, AgentEnv, RUN_MAX};
use cloudsync_testkit::files::filled_file;

/// Regions `in` and `sg`, each requiring its own token for `alice`; the
/// provider answers `tok-<account>-<region>`.
fn env_with(tweak: impl FnOnce(&World, &mut serde_json::Value)) -> Env {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    let provider = move |r: &CredentialRequest<'_>| -> Result<Option<Secret>, ProviderError> {
        log.lock()
            .unwrap()
            .push((r.account.to_string(), r.region.to_string(), r.refresh));
        Ok(Some(Secret::new(token(r.account, r.region))))
    };
    let e = AgentEnv::builder(&["in", "sg"])
        .setup(|s| require_tokens(s, "alice"))
        .config(tweak)
        .account("alice")
        .provider(Arc::new(provider))
        .build();
    Env { e, asked }
}

/// The kit's world, and (account, region, refresh) of every provider call.
struct Env {
    e: AgentEnv,
    asked: Arc<Mutex<Vec<(String, String, bool)>>>,
}

impl std::ops::Deref for Env {
    type Target = AgentEnv;
    fn deref(&self) -> &AgentEnv {
        &self.e
    }
}

fn env() -> Env {
    env_with(|_, _| {})
}

fn enqueue(e: &Env, name: &str, size: usize) -> i64 {
    let p = filled_file(e.dir.path(), name, name.len() as u8, size);
    e.agent.enqueue(&p, "backup", 0).unwrap()
}

/// Item ids the server of `region` completed (from the `item` metadata).
fn completed(world: &World, region: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = world.servers[region]
        .uploads()
        .into_iter()
        .filter(|u| u.complete)
        .map(|u| {
            std::str::from_utf8(u.metadata_value("item").unwrap())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    ids.sort();
    ids
}

fn state(a: &Agent, id: i64) -> (String, Option<String>) {
    let it = a
        .list(None, 0, 1000)
        .unwrap()
        .into_iter()
        .find(|i| i.id == id)
        .expect("still queued");
    (
        it.state.name().into(),
        it.held_reason.map(|h| h.name().into()),
    )
}

/// The wrong server saw nothing at all: no connection, no header, no token.
fn untouched(world: &World, region: &str) {
    let st = world.servers[region].stats();
    assert_eq!(
        (
            st.connections,
            st.app_bytes_received,
            st.authorization_headers
        ),
        (0, 0, 0),
        "region {region} was contacted: {st:?}"
    );
}

#[test]
fn another_accounts_items_wait_for_it_and_never_go_with_this_token() {
    let e = env();
    let a1 = enqueue(&e, "a1", 100_000);
    let a2 = enqueue(&e, "a2", 100_000);
    // Bob in the same country (a country belongs to an account: without one
    // bob would have no region at all, see tests/agent/account_country.rs).
    e.agent.set_account(Some("bob"), Some("IN")).unwrap();
    // Held at once, before any run.
    assert_eq!(state(&e.agent, a1), ("held".into(), Some("account".into())));
    let b1 = enqueue(&e, "b1", 100_000);
    // Bob's copy of the same path is another item.
    let b_a1 = e
        .agent
        .enqueue(e.dir.path().join("a1"), "backup", 0)
        .unwrap();
    assert_ne!(b_a1, a1);
    let srv = &e.world.servers["in"];
    srv.set_token(Some(token("bob", "in")));
    let r = run(&e.agent).unwrap();
    assert_eq!((r.uploaded, r.held), (2, 2), "{r:?}");
    assert_eq!(completed(&e.world, "in"), vec![b1, b_a1]);
    assert!(srv
        .authorizations()
        .iter()
        .all(|h| h == &format!("Bearer {}", token("bob", "in"))));
    assert!(e
        .asked
        .lock()
        .unwrap()
        .iter()
        .all(|(acct, ..)| acct == "bob"));
    // Rehoming is about regions: it does not touch another account's items.
    assert_eq!(e.agent.rehome().unwrap(), 0);
    assert_eq!(state(&e.agent, a2), ("held".into(), Some("account".into())));
    // Alice again: her items flow, with her token.
    e.agent.set_account(Some("alice"), None).unwrap();
    assert_eq!(state(&e.agent, a1), ("pending".into(), None));
    srv.set_token(Some(token("alice", "in")));
    let before = srv.authorizations().len();
    let r = run(&e.agent).unwrap();
    assert_eq!((r.uploaded, r.held, r.remaining), (2, 0, 0), "{r:?}");
    assert_eq!(completed(&e.world, "in"), vec![a1, a2, b1, b_a1]);
    assert!(srv.authorizations()[before..]
        .iter()
        .all(|h| h == &format!("Bearer {}", token("alice", "in"))));
    untouched(&e.world, "sg");
}

#[test]
fn sign_out_stops_uploads_and_keeps_the_queue() {
    let e = env();
    let id = enqueue(&e, "a", 100_000);
    e.agent.set_account(None, None).unwrap();
    assert_eq!(e.agent.signed_in().unwrap(), Some(false));
    let err = run(&e.agent).unwrap_err();
    assert_eq!(
        (err.kind(), err.kind().code(), err.to_string().as_str()),
        (ErrorKind::NoAccount, 22, "no account is signed in")
    );
    let err = e
        .agent
        .enqueue(filled_file(e.dir.path(), "b", 1, 10), "backup", 0)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoAccount);
    let items = e.agent.list(None, 0, 100).unwrap();
    assert_eq!(items.len(), 1, "the refused enqueue stored nothing");
    assert_eq!(state(&e.agent, id), ("pending".into(), None));
    untouched(&e.world, "in");
    assert!(e.asked.lock().unwrap().is_empty());
    // Signing in again uploads what was kept.
    e.agent.set_account(Some("alice"), None).unwrap();
    assert_eq!(run(&e.agent).unwrap().uploaded, 1);
}

#[test]
fn items_from_before_accounts_belong_to_the_first_account_signed_in() {
    let e = AgentEnv::builder(&["in"])
        .setup(|s| s[0].bearer_token = Some(token("carol", "in")))
        .build();
    let (world, agent) = (&e.world, &e.agent);
    assert_eq!(agent.signed_in().unwrap(), None, "accounts never used");
    let id = agent
        .enqueue(filled_file(e.dir.path(), "old", 3, 5_000), "backup", 0)
        .unwrap();
    assert_eq!(agent.list(None, 0, 10).unwrap()[0].account, None);
    // A bearer service with no account: nothing is sent.
    let err = run(agent).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoAccount);
    assert_eq!(world.servers["in"].stats().uploads_created, 0);
    agent.set_account(Some("carol"), None).unwrap();
    let stamp = agent.list(None, 0, 10).unwrap()[0].account.clone();
    assert_eq!(stamp.as_ref().map(String::len), Some(16), "{stamp:?}");
    agent.set_credential_provider(Some(Arc::new(|r: &CredentialRequest<'_>| {
        Ok(Some(Secret::new(token(r.account, r.region))))
    })));
    assert_eq!(run(agent).unwrap().uploaded, 1);
    assert_eq!(agent.audit(0, 10).unwrap()[0].item_id, id);
}

#[test]
fn switching_account_mid_upload_stops_the_bytes_at_once() {
    let e = env();
    let id = enqueue(&e, "big", 24 * 1024 * 1024);
    let other = Agent::open_with(&e.db, Some(&e.world.root_envelope), Default::default()).unwrap();
    let mut switched = false;
    let r = run_with(&e.agent, RUN_MAX, move |p| {
        if !switched && p.sent > 0 {
            switched = true;
            other.set_account(Some("bob"), None).unwrap();
        }
        true
    })
    .unwrap();
    assert_eq!(r.stopped, StopReason::AccountChanged, "{r:?}");
    assert_eq!(state(&e.agent, id), ("held".into(), Some("account".into())));
    let held = e.world.servers["in"].uploads()[0].offset;
    assert!(held < 24 * 1024 * 1024, "the upload did not finish: {held}");
    assert!(
        e.asked.lock().unwrap().iter().all(|(a, ..)| a == "alice"),
        "bob's token was never asked for alice's item"
    );
}

#[test]
fn residency_attacks_leave_the_wrong_server_without_a_token() {
    // A Location on another region's host, and a redirect to it.
    for fault in ["location", "redirect"] {
        let e = env();
        let id = enqueue(&e, "a", 200_000);
        let evil = format!("{}stolen", e.world.url("sg"));
        e.world.servers["in"].push_fault(match fault {
            "location" => Fault::LocationOverride(evil),
            _ => Fault::Redirect {
                method: Some("PATCH"),
                status: 307,
                location: evil,
            },
        });
        let r = run(&e.agent).unwrap();
        assert_eq!(r.uploaded, 0, "{fault}: {r:?}");
        let last = e.agent.list(None, 0, 10).unwrap()[0].last_error.clone();
        assert!(
            last.as_deref()
                .unwrap_or("")
                .starts_with("residency: refused"),
            "{fault}: {last:?}"
        );
        untouched(&e.world, "sg");
        assert!(e.asked.lock().unwrap().iter().all(|(_, r, _)| r == "in"));
        let _ = id;
    }
}

#[test]
fn a_pin_miss_or_a_peer_outside_the_networks_sends_no_header() {
    let pin_miss = env_with(|w, cfg| {
        cfg["regions"]["in"]["pins"] = serde_json::json!([w.pins["sg"]]);
    });
    let outside = env_with(|_, cfg| {
        cfg["regions"]["in"]["networks"] = serde_json::json!(["10.0.0.0/8"]);
    });
    for e in [pin_miss, outside] {
        enqueue(&e, "a", 1_000);
        let r = run(&e.agent).unwrap();
        assert_eq!((r.uploaded, r.failed), (0, 1), "{r:?}");
        let st = e.world.servers["in"].stats();
        assert_eq!((st.app_bytes_received, st.authorization_headers), (0, 0));
        untouched(&e.world, "sg");
    }
}

#[test]
fn a_stored_resume_url_of_another_region_gets_no_request() {
    let e = env();
    let id = enqueue(&e, "a", 50_000);
    // A session URL on sg's host, as a tampered or stale database could hold.
    let foreign = format!("{}planted", e.world.url("sg"));
    let db = cloudsync::queue::Db::open(&e.db).unwrap();
    let sql = "UPDATE items SET upload_url = ?1, upload_len = size, upload_mtime_ns = mtime_ns
               WHERE id = ?2";
    db.conn()
        .execute(sql, rusqlite::params![foreign, id])
        .unwrap();
    let r = run(&e.agent).unwrap();
    assert_eq!(
        r.uploaded, 1,
        "a fresh upload in the approved region: {r:?}"
    );
    untouched(&e.world, "sg");
}

#[test]
fn a_country_move_asks_for_the_new_regions_token_and_sends_the_old_nowhere() {
    let e = env();
    let a = enqueue(&e, "a", 50_000);
    assert_eq!(run(&e.agent).unwrap().uploaded, 1);
    e.agent.set_account(Some("alice"), Some("SG")).unwrap();
    let b = enqueue(&e, "b", 50_000);
    assert_eq!(run(&e.agent).unwrap().uploaded, 1);
    assert_eq!(
        (completed(&e.world, "in"), completed(&e.world, "sg")),
        (vec![a], vec![b])
    );
    let sg = e.world.servers["sg"].authorizations();
    assert!(sg
        .iter()
        .all(|h| h == &format!("Bearer {}", token("alice", "sg"))));
    let asked = e.asked.lock().unwrap().clone();
    let regions: Vec<&str> = asked.iter().map(|(_, r, _)| r.as_str()).collect();
    assert_eq!(regions, ["in", "sg"]);
}

#[test]
fn a_sign_out_while_the_provider_runs_sends_nothing_with_its_token() {
    let e = env();
    let id = enqueue(&e, "a", 100_000);
    let other = Arc::new(
        Agent::open_with(&e.db, Some(&e.world.root_envelope), Default::default()).unwrap(),
    );
    let signer = other.clone();
    // The app signs the user out (another handle: say, its account screen)
    // while the provider is still fetching the token.
    e.agent
        .set_credential_provider(Some(Arc::new(move |r: &CredentialRequest<'_>| {
            signer.set_account(None, None).unwrap();
            Ok(Some(Secret::new(token(r.account, r.region))))
        })));
    let r = run(&e.agent).unwrap();
    assert_eq!(r.stopped, StopReason::AccountChanged, "{r:?}");
    let st = e.world.servers["in"].stats();
    assert_eq!(
        (st.authorization_headers, st.uploads_created),
        (0, 0),
        "{st:?}"
    );
    assert_eq!(state(&e.agent, id), ("pending".into(), None));
    assert_eq!(e.agent.list(None, 0, 10).unwrap()[0].attempts, 0);
}
