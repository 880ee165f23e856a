//! 401 and 403 are about credentials, not data: the run stops with the typed
//! error `unauthorized` (Java `AuthException`, C `CS_UNAUTHORIZED`) and every
//! item is left exactly as it was — no attempt counted, no backoff, no
//! `dead`. Real TLS tus servers on loopback; each run has its own watchdog.

use cloudsync::{Agent, Error, ErrorKind};
use cloudsync_devserver::Fault;
use cloudsync_testkit::env::{run, AgentEnv};

fn enqueue(e: &AgentEnv, n: usize) -> Vec<i64> {
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
        .map(|i| (i.id, i.state.name().into(), i.attempts, i.last_error))
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
        let e = AgentEnv::new(&["in"]);
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
