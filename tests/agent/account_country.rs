//! A country belongs to an account (issue 21, point 3): it is remembered per
//! account (by its stamp), a sign-out takes it out of force, and an account
//! signed in without a country gets its own back or none at all — never the
//! previous account's. Each step checks the exact outcome and that nothing
//! went to a server it should not reach. Real TLS tus servers on loopback
//! that require per-account, per-region bearer tokens.

use std::sync::Arc;

use cloudsync::auth::{CredentialRequest, Secret};
use cloudsync::{Agent, ErrorKind};
use cloudsync_devserver::world::World;
use cloudsync_testkit::env::{require_tokens, run, token, AgentEnv};
use cloudsync_testkit::files::filled_file;

/// Regions `in` and `sg` with bearer services; the provider answers
/// `tok-<account>-<region>`; alice signed in with country `IN`.
fn env() -> AgentEnv {
    AgentEnv::builder(&["in", "sg"])
        .setup(|s| require_tokens(s, "alice"))
        .account("alice")
        .provider(Arc::new(|r: &CredentialRequest<'_>| {
            Ok(Some(Secret::new(token(r.account, r.region))))
        }))
        .build()
}

fn enqueue(e: &AgentEnv, name: &str) -> i64 {
    e.agent
        .enqueue(
            filled_file(e.dir.path(), name, name.len() as u8, 20_000),
            "backup",
            0,
        )
        .unwrap()
}

/// (state, held_reason, region) of item `id`.
fn state(a: &Agent, id: i64) -> (String, Option<String>, Option<String>) {
    let it = a.item(id).unwrap();
    (
        it.state.name().into(),
        it.held_reason.map(|h| h.name().into()),
        it.region,
    )
}

fn pending(region: Option<&str>) -> (String, Option<String>, Option<String>) {
    ("pending".into(), None, region.map(String::from))
}

fn held_for_account(region: Option<&str>) -> (String, Option<String>, Option<String>) {
    (
        "held".into(),
        Some("account".into()),
        region.map(String::from),
    )
}

/// (requests, connections, authorization headers, bytes received) at every server.
fn traffic(world: &World) -> Vec<(String, [u64; 4])> {
    ["in", "sg"]
        .iter()
        .map(|r| {
            let st = world.servers[*r].stats();
            (
                r.to_string(),
                [
                    st.requests,
                    st.connections,
                    st.authorization_headers,
                    st.app_bytes_received,
                ],
            )
        })
        .collect()
}

fn no_traffic() -> Vec<(String, [u64; 4])> {
    vec![("in".into(), [0; 4]), ("sg".into(), [0; 4])]
}

/// Item ids the server of `region` completed.
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

fn country(a: &Agent) -> Option<String> {
    a.config_info().unwrap().country
}

fn region(a: &Agent) -> Option<String> {
    a.approved_region().unwrap().map(|r| r.id().to_string())
}

#[test]
fn a_new_account_never_inherits_the_previous_accounts_country() {
    let e = env();
    let a1 = enqueue(&e, "a1");
    e.agent.set_account(None, None).unwrap();
    assert_eq!((country(&e.agent), region(&e.agent)), (None, None));
    let err = run(&e.agent).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoAccount, "{err}");

    // Bob, with no country: no region, nothing goes anywhere, his items wait.
    e.agent.set_account(Some("bob"), None).unwrap();
    assert_eq!(e.agent.signed_in().unwrap(), Some(true));
    assert_eq!((country(&e.agent), region(&e.agent)), (None, None));
    let info = e.agent.config_info().unwrap();
    assert_eq!((info.country, info.approved_region), (None, None));
    let b1 = enqueue(&e, "b1");
    let err = run(&e.agent).unwrap_err();
    assert_eq!(
        (err.kind(), err.kind().name()),
        (ErrorKind::NoRegion, "no_region")
    );
    assert_eq!(state(&e.agent, b1), pending(None));
    assert_eq!(state(&e.agent, a1), held_for_account(Some("in")));
    assert_eq!(traffic(&e.world), no_traffic(), "nothing was sent");

    // Bob's country: his items go to sg, alice's stay held.
    e.world.servers["sg"].set_token(Some(token("bob", "sg")));
    e.agent.set_account(Some("bob"), Some("sg")).unwrap();
    assert_eq!(
        (country(&e.agent), region(&e.agent)),
        (Some("SG".into()), Some("sg".into()))
    );
    let r = run(&e.agent).unwrap();
    assert_eq!((r.uploaded, r.held, r.failed), (1, 1, 0), "{r:?}");
    assert_eq!(completed(&e.world, "sg"), vec![b1]);
    assert_eq!(
        traffic(&e.world)[0],
        ("in".into(), [0; 4]),
        "india untouched"
    );
    assert!(e.world.servers["sg"]
        .authorizations()
        .iter()
        .all(|h| h == &format!("Bearer {}", token("bob", "sg"))));
    let b2 = enqueue(&e, "b2");

    // Alice again, without a country: hers (IN) comes back; bob's item waits.
    e.agent.set_account(Some("alice"), None).unwrap();
    assert_eq!(
        (country(&e.agent), region(&e.agent)),
        (Some("IN".into()), Some("in".into()))
    );
    assert_eq!(state(&e.agent, a1), pending(Some("in")));
    assert_eq!(state(&e.agent, b2), held_for_account(Some("sg")));
    let sg_before = traffic(&e.world)[1].clone();
    let r = run(&e.agent).unwrap();
    assert_eq!((r.uploaded, r.held, r.failed), (1, 1, 0), "{r:?}");
    assert_eq!(completed(&e.world, "in"), vec![a1]);
    assert_eq!(traffic(&e.world)[1], sg_before, "nothing more went to sg");
    assert!(e.world.servers["in"]
        .authorizations()
        .iter()
        .all(|h| h == &format!("Bearer {}", token("alice", "in"))));

    // And bob again: SG is his.
    e.agent.set_account(Some("bob"), None).unwrap();
    assert_eq!(country(&e.agent), Some("SG".into()));
    assert_eq!(state(&e.agent, b2), pending(Some("sg")));
}

#[test]
fn the_same_account_again_without_a_country_keeps_it() {
    let e = env();
    e.agent.set_account_country("SG").unwrap();
    // The app's call at every start.
    e.agent.set_account(Some("alice"), None).unwrap();
    assert_eq!(
        (country(&e.agent), region(&e.agent)),
        (Some("SG".into()), Some("sg".into()))
    );
    // Another handle (a second process) sees the same.
    let other = Agent::open_existing(&e.db).unwrap();
    assert_eq!(other.config_info().unwrap().country, Some("SG".into()));
    // set_account_country was remembered for alice: it survives a sign-out.
    e.agent.set_account(None, None).unwrap();
    e.agent.set_account(Some("alice"), None).unwrap();
    assert_eq!(country(&e.agent), Some("SG".into()));
    assert_eq!(traffic(&e.world), no_traffic());
}

#[test]
fn unstamped_items_of_a_country_less_account_are_not_given_another_accounts_region() {
    let e = env();
    e.agent.set_account(Some("bob"), None).unwrap();
    let b1 = enqueue(&e, "b1");
    assert_eq!(state(&e.agent, b1), pending(None));
    // Alice (IN) signs in: bob's item is held for him, still without a region.
    e.agent.set_account(Some("alice"), None).unwrap();
    assert_eq!(region(&e.agent), Some("in".into()));
    assert_eq!(state(&e.agent, b1), held_for_account(None));
    assert_eq!(run(&e.agent).unwrap().uploaded, 0);
    assert_eq!(traffic(&e.world), no_traffic());
    // Bob gets SG: the item is his region's.
    e.agent.set_account(Some("bob"), Some("SG")).unwrap();
    assert_eq!(state(&e.agent, b1), pending(Some("sg")));
}

#[test]
fn while_signed_out_a_country_is_refused_and_nothing_changes() {
    let e = env();
    let a1 = enqueue(&e, "a1");
    e.agent.set_account(None, None).unwrap();
    let before = e.agent.config_info().unwrap();
    let err = e.agent.set_account_country("SG").unwrap_err();
    assert_eq!(
        (err.kind(), err.to_string().as_str()),
        (ErrorKind::NoAccount, "no account is signed in")
    );
    let err = e.agent.set_account(None, Some("SG")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(
        err.to_string().contains("a country needs an account"),
        "{err}"
    );
    let after = e.agent.config_info().unwrap();
    assert_eq!(
        (&after.country, &after.approved_region),
        (&before.country, &before.approved_region)
    );
    assert_eq!(after.country, None);
    assert_eq!(e.agent.signed_in().unwrap(), Some(false));
    // Alice's own country was not touched by the refused calls.
    e.agent.set_account(Some("alice"), None).unwrap();
    assert_eq!(country(&e.agent), Some("IN".into()));
    assert_eq!(state(&e.agent, a1), pending(Some("in")));
    assert_eq!(traffic(&e.world), no_traffic());
}

#[test]
fn the_first_account_of_an_account_less_queue_adopts_its_country() {
    let e = AgentEnv::builder(&["in", "sg"])
        .setup(|s| s[0].bearer_token = Some(token("carol", "in")))
        .build();
    let (world, agent) = (&e.world, &e.agent);
    assert_eq!(agent.signed_in().unwrap(), None, "accounts never used");
    let id = agent
        .enqueue(filled_file(e.dir.path(), "old", 3, 5_000), "backup", 0)
        .unwrap();
    agent.set_account(Some("carol"), None).unwrap();
    assert_eq!(
        agent.config_info().unwrap().country,
        Some("IN".into()),
        "adopted"
    );
    agent.set_credential_provider(Some(Arc::new(|r: &CredentialRequest<'_>| {
        Ok(Some(Secret::new(token(r.account, r.region))))
    })));
    assert_eq!(run(agent).unwrap().uploaded, 1);
    assert_eq!(agent.audit(0, 10).unwrap()[0].item_id, id);
    assert_eq!(world.servers["sg"].stats().connections, 0);
    // Adopted for carol, not for the queue: dave gets none, carol keeps IN.
    agent.set_account(Some("dave"), None).unwrap();
    assert_eq!(agent.config_info().unwrap().country, None);
    agent.set_account(Some("carol"), None).unwrap();
    assert_eq!(agent.config_info().unwrap().country, Some("IN".into()));
}
