//! What a run tells the app (issue 14): one listener for progress and the
//! per-item events, each completion exactly once; when the next item is due;
//! items read one by one; an unknown service small at enqueue. Real TLS tus
//! servers on loopback; every run has a watchdog.

use std::sync::{mpsc, Arc};
use std::time::Duration;

use cloudsync::queue::ops::now_ms;
use cloudsync::{Agent, ErrorKind, RunEvent, RunReport, StopReason};
use cloudsync_devserver::Fault;
use cloudsync_testkit::env::{AgentEnv, RUN_WATCHDOG};
use cloudsync_testkit::files::filled_file;

/// A run with events on its own thread; the events it delivered.
fn run_events(
    agent: &Arc<Agent>,
    mut on: impl FnMut(&RunEvent) + Send + 'static,
) -> (cloudsync::Result<RunReport>, Vec<RunEvent>) {
    let (tx, rx) = mpsc::channel();
    let a = agent.clone();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let r = a.run_with_events(Duration::from_secs(30), &mut |e| {
            on(e);
            seen.push(e.clone());
            true
        });
        let _ = tx.send((r, seen));
    });
    rx.recv_timeout(RUN_WATCHDOG).expect("run returned in time")
}

#[test]
fn each_item_is_started_then_done_or_failed_once() {
    let e = AgentEnv::new(&["in", "sg"]);
    let big = e
        .agent
        .enqueue(
            filled_file(e.dir.path(), "big", 7, 3 * 1024 * 1024 + 5),
            "backup",
            1,
        )
        .unwrap();
    let small = e
        .agent
        .enqueue(filled_file(e.dir.path(), "small", 7, 10_000), "backup", 0)
        .unwrap();
    let (r, events) = run_events(&e.agent, |_| {});
    let r = r.unwrap();
    assert_eq!(r.uploaded, 2, "{r:?}");
    let kinds: Vec<String> = events
        .iter()
        .filter(|e| !matches!(e, RunEvent::Progress(_)))
        .map(|e| format!("{e:?}"))
        .collect();
    assert_eq!(
        kinds,
        [
            format!(
                "Started {{ item_id: {big}, size: {} }}",
                3 * 1024 * 1024 + 5
            ),
            format!("Done {{ item_id: {big}, bytes: {} }}", 3 * 1024 * 1024 + 5),
            format!("Started {{ item_id: {small}, size: 10000 }}"),
            format!("Done {{ item_id: {small}, bytes: 10000 }}"),
        ]
    );
    // Progress: monotone per item, the total reported exactly once.
    for (id, total) in [(big, 3 * 1024 * 1024 + 5), (small, 10_000)] {
        let sent: Vec<u64> = events
            .iter()
            .filter_map(|e| match e {
                RunEvent::Progress(p) if p.item_id == id => Some(p.sent),
                _ => None,
            })
            .collect();
        assert!(sent.windows(2).all(|w| w[0] < w[1]), "{id}: {sent:?}");
        assert_eq!(sent.iter().filter(|&&s| s == total).count(), 1, "{sent:?}");
    }
    assert_eq!(r.next_due_at, None, "nothing waits");
    assert_eq!(e.agent.stats().unwrap().next_due_at, None);
}

#[test]
fn a_failure_says_its_kind_and_when_the_item_is_due_again() {
    let e = AgentEnv::new(&["in", "sg"]);
    let id = e
        .agent
        .enqueue(filled_file(e.dir.path(), "a", 7, 1000), "backup", 0)
        .unwrap();
    e.world.servers["in"].push_fault(Fault::Status {
        method: Some("POST"),
        status: 503,
        retry_after: Some(120),
    });
    let before = now_ms();
    let (r, events) = run_events(&e.agent, |_| {});
    let r = r.unwrap();
    let failed: Vec<_> = events
        .iter()
        .filter_map(|ev| match ev {
            RunEvent::Failed {
                item_id,
                kind,
                dead,
                next_attempt_at,
            } => Some((*item_id, *kind, *dead, *next_attempt_at)),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    let (item_id, kind, dead, next) = failed[0];
    assert_eq!((item_id, kind, dead), (id, ErrorKind::Network, false));
    let next = next.expect("a failed item is due again");
    // Retry-After: 120 s wins over the test's millisecond backoff.
    assert!(next >= before + 119_000, "{next} vs {before}");
    assert_eq!(r.next_due_at, Some(next), "{r:?}");
    assert_eq!(e.agent.stats().unwrap().next_due_at, Some(next));
    let it = e.agent.item(id).unwrap();
    assert_eq!(
        (
            it.state.as_str(),
            it.last_error_kind.map(|k| k.name()),
            it.next_attempt_at
        ),
        ("failed", Some("network"), Some(next))
    );
    assert_eq!(
        it.last_error.as_deref(),
        Some("network: POST: HTTP 503"),
        "{it:?}"
    );
}

#[test]
fn an_item_held_in_flight_is_reported_held() {
    let e = AgentEnv::new(&["in", "sg"]);
    let id = e
        .agent
        .enqueue(
            filled_file(e.dir.path(), "big", 7, 16 * 1024 * 1024),
            "backup",
            0,
        )
        .unwrap();
    let other = Agent::open_with(
        e.dir.path().join("q.db"),
        Some(&e.world.root_envelope),
        Default::default(),
    )
    .unwrap();
    let mut moved = false;
    let (r, events) = run_events(&e.agent, move |ev| {
        if let RunEvent::Progress(_) = ev {
            if !moved {
                moved = true;
                other.set_account_country("SG").unwrap();
            }
        }
    });
    assert_eq!(r.unwrap().stopped, StopReason::RegionChanged);
    assert!(
        events.contains(&RunEvent::Held { item_id: id }),
        "{events:?}"
    );
    assert!(!events
        .iter()
        .any(|e| matches!(e, RunEvent::Done { .. } | RunEvent::Failed { .. })));
}

#[test]
fn an_unknown_service_is_refused_at_enqueue_and_accepted_without_a_config() {
    let e = AgentEnv::new(&["in", "sg"]);
    let p = filled_file(e.dir.path(), "a", 7, 10);
    let err = e.agent.enqueue(&p, "photos", 0).unwrap_err();
    assert_eq!(
        (err.kind(), err.to_string().as_str()),
        (
            ErrorKind::InvalidArgument,
            "invalid argument: service not offered by the installed config"
        )
    );
    assert!(
        e.agent.list(None, 0, 10).unwrap().is_empty(),
        "nothing stored"
    );
    assert_eq!(e.agent.item(1).unwrap_err().kind(), ErrorKind::NotFound);
    // Without a config nothing is known yet: accepted.
    let fresh = Agent::open_with(
        e.dir.path().join("fresh.db"),
        Some(&e.world.root_envelope),
        e.world.agent_options(),
    )
    .unwrap();
    let id = fresh.enqueue(&p, "photos", 0).unwrap();
    assert_eq!(fresh.item(id).unwrap().service, "photos");
}
