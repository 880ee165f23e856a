//! 401 and 403 are about credentials, not data: the run stops with the typed
//! error `unauthorized` (Java `AuthException`, C `CS_UNAUTHORIZED`) and every
//! item is left exactly as it was — no attempt counted, no backoff, no
//! `dead`. Real TLS tus servers on loopback; each run has its own watchdog.

use std::sync::{mpsc, Arc};
use std::time::Duration;

use cloudsync::{Agent, Error, ErrorKind, RunReport};
use cloudsync_devserver::world::{standard_regions, World};
use cloudsync_devserver::Fault;

const RUN_LIMIT: Duration = Duration::from_secs(60);

struct Env {
    dir: tempfile::TempDir,
    world: World,
    agent: Arc<Agent>,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(&dir.path().join("servers"), standard_regions(&["in"])).unwrap();
    let agent = Agent::open_with(
        dir.path().join("q.db"),
        Some(&world.root_envelope),
        world.agent_options(),
    )
    .unwrap();
    agent.install(&world.config_envelope(1)).unwrap();
    agent.set_account_country("IN").unwrap();
    Env {
        dir,
        world,
        agent: Arc::new(agent),
    }
}

fn run(agent: &Arc<Agent>) -> cloudsync::Result<RunReport> {
    let (tx, rx) = mpsc::channel();
    let a = agent.clone();
    std::thread::spawn(move || {
        let _ = tx.send(a.run_once(Duration::from_secs(30), &mut |_| true));
    });
    rx.recv_timeout(RUN_LIMIT)
        .expect("run_once returned in time")
}

fn enqueue(e: &Env, n: usize) -> Vec<i64> {
    (0..n)
        .map(|i| {
            let p = e.dir.path().join(format!("f{i}"));
            std::fs::write(&p, vec![i as u8; 300_000 + i]).unwrap();
            e.agent.enqueue(&p, "backup", 0).unwrap()
        })
        .collect()
}

/// (state, attempts, last_error) of every item, by id.
fn snapshot(a: &Agent) -> Vec<(i64, String, u32, Option<String>)> {
    a.list(None, 0, 100)
        .unwrap()
        .into_iter()
        .map(|i| (i.id, i.state, i.attempts, i.last_error))
        .collect()
}

#[test]
fn unauthorized_stops_the_run_and_charges_no_attempt() {
    for (method, status) in [
        ("OPTIONS", 401u16),
        ("POST", 401),
        ("POST", 403),
        ("PATCH", 403),
    ] {
        let e = env();
        let ids = enqueue(&e, 3);
        let before = snapshot(&e.agent);
        let srv = &e.world.servers["in"];
        srv.push_fault(Fault::Status {
            method: Some(method),
            status,
            retry_after: None,
        });
        let err = run(&e.agent).unwrap_err();
        assert!(
            matches!(err, Error::Unauthorized(cloudsync::error::AuthFailure::Status(s)) if s == status),
            "{method} {status}: {err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
        assert_eq!(err.kind().name(), "unauthorized");
        assert_eq!(err.kind().code(), 53);
        // Nothing about any item changed: same states, attempts, errors.
        assert_eq!(snapshot(&e.agent), before, "{method} {status}");
        assert_eq!(srv.stats().uploads_completed, 0, "{method} {status}");
        // With the credentials fixed (the fault is gone), everything uploads.
        let r = run(&e.agent).unwrap();
        assert_eq!(
            (r.uploaded, r.failed, r.remaining),
            (ids.len() as u64, 0, 0),
            "{method} {status}: {r:?}"
        );
    }
}
