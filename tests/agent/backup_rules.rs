//! The user's backup rules as the queue stores them (issue 25, part 1): a
//! rule per item, set at enqueue (single and batch) or later, the queue's
//! default, and the counters by rule class that `stats` reads in O(1), checked
//! against a full count after enqueues, rule changes, a run that uploads, a
//! failure and a removal. Runs do not apply the rules yet (part 2).

use cloudsync::queue::ops::stats_by_scan;
use cloudsync::queue::{Backlog, Db, QueueStats};
use cloudsync::{BackupRule, ErrorKind, NetworkRule, State};
use cloudsync_devserver::Fault;
use cloudsync_testkit::env::{run, AgentEnv};
use cloudsync_testkit::files::filled_file;

fn rule(network: NetworkRule, charging_only: bool) -> BackupRule {
    BackupRule {
        network,
        charging_only,
    }
}

/// `stats` from the agent, which must equal a full count of the rows.
fn counted(e: &AgentEnv) -> QueueStats {
    let kept = e.agent.stats().unwrap();
    let db = Db::open(&e.db).unwrap();
    assert_eq!(kept, stats_by_scan(db.conn()).unwrap(), "counters differ");
    kept
}

fn backlog(items: u64, bytes: u64) -> Backlog {
    Backlog { items, bytes }
}

#[test]
fn rules_are_stored_at_enqueue_single_and_batch_and_read_back() {
    let e = AgentEnv::new(&["in"]);
    let d = e.dir.path();
    let plain = e
        .agent
        .enqueue(filled_file(d, "plain", 1, 100), "backup", 0)
        .unwrap();
    let wifi = rule(NetworkRule::Unmetered, true);
    let one = e
        .agent
        .enqueue_with_rule(filled_file(d, "one", 1, 200), "backup", 0, Some(wifi))
        .unwrap();
    let home = rule(NetworkRule::NotRoaming, false);
    let batch: Vec<_> = (0..3)
        .map(|i| filled_file(d, &format!("b{i}"), 1, 300))
        .collect();
    let ids = e
        .agent
        .enqueue_all_with_rule(&batch, "backup", 0, Some(home))
        .unwrap();
    let plain_batch = e
        .agent
        .enqueue_all_with_rule(&[filled_file(d, "p2", 1, 50)], "backup", 0, None)
        .unwrap();
    assert_eq!(e.item(plain).rule, BackupRule::default());
    assert_eq!(e.item(plain_batch[0]).rule, BackupRule::default());
    assert_eq!(e.item(one).rule, wifi);
    for id in &ids {
        assert_eq!(e.item(*id).rule, home);
    }
    let listed: Vec<_> = e
        .agent
        .list(None, 0, 10)
        .unwrap()
        .iter()
        .map(|i| (i.id, i.rule))
        .collect();
    assert_eq!(listed.len(), 6);
    assert!(listed.contains(&(one, wifi)));
    let s = counted(&e);
    assert_eq!(s.rules.unmetered, backlog(1, 200));
    assert_eq!(s.rules.charging, backlog(1, 200));
    assert_eq!(s.rules.not_roaming, backlog(3, 900));
    assert_eq!(s.rules.class(BackupRule::default()), backlog(2, 150));
    assert_eq!(s.rules.class(wifi), backlog(1, 200));
    assert_eq!(
        s.rules.class(rule(NetworkRule::Unmetered, false)),
        backlog(0, 0)
    );
    // JSON (the CLI's `status --json`, `list --json`) carries them by name.
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["rules"]["not_roaming"]["items"], 3);
    assert_eq!(json["rules"]["unmetered"]["bytes"], 200);
    let json = serde_json::to_value(e.item(one)).unwrap();
    assert_eq!(json["rule"]["network"], "unmetered");
    assert_eq!(json["rule"]["charging_only"], true);

    // Enqueued again (the file changed): without a rule it keeps its own, with
    // one it takes it; the counters follow the new size and rule.
    std::fs::write(d.join("one"), vec![2u8; 250]).unwrap();
    assert_eq!(
        e.agent.enqueue(d.join("one"), "backup", 0).unwrap(),
        one,
        "the same item"
    );
    assert_eq!(e.item(one).rule, wifi);
    assert_eq!(counted(&e).rules.class(wifi), backlog(1, 250));
    e.agent
        .enqueue_all_with_rule(&[d.join("one")], "backup", 0, Some(home))
        .unwrap();
    assert_eq!(e.item(one).rule, home);
    let s = counted(&e);
    assert_eq!(s.rules.unmetered, backlog(0, 0));
    assert_eq!(s.rules.not_roaming, backlog(4, 1150));
}

#[test]
fn set_rule_changes_an_item_in_any_state_and_an_unknown_id_is_not_found() {
    let e = AgentEnv::new(&["in"]);
    let id = e
        .agent
        .enqueue(filled_file(e.dir.path(), "a", 1, 1000), "backup", 0)
        .unwrap();
    let charger = rule(NetworkRule::Any, true);
    e.agent.set_rule(id, charger).unwrap();
    assert_eq!(e.item(id).rule, charger);
    assert_eq!(counted(&e).rules.charging, backlog(1, 1000));
    e.agent.set_rule(id, charger).unwrap(); // the same again: no change, no drift
    assert_eq!(counted(&e).rules.charging, backlog(1, 1000));
    let e404 = e.agent.set_rule(id + 100, charger).unwrap_err();
    assert_eq!(e404.kind(), ErrorKind::NotFound);
    // A dead item keeps a new rule for when it comes back; it is not counted
    // while dead (only pending, uploading and failed items are).
    Db::open(&e.db)
        .unwrap()
        .write(|tx| {
            tx.execute("UPDATE items SET state = 'dead' WHERE id = ?1", [id])?;
            Ok(())
        })
        .unwrap();
    assert_eq!(counted(&e).rules.charging, backlog(0, 0));
    let wifi = rule(NetworkRule::Unmetered, false);
    e.agent.set_rule(id, wifi).unwrap();
    assert_eq!(counted(&e).rules.unmetered, backlog(0, 0));
    assert_eq!(e.agent.retry_dead().unwrap(), 1);
    assert_eq!(e.item(id).rule, wifi);
    assert_eq!(counted(&e).rules.unmetered, backlog(1, 1000));
    // Removed: it left the queue.
    e.agent.remove(id).unwrap();
    assert_eq!(counted(&e).rules.unmetered, backlog(0, 0));
    let gone = e.agent.set_rule(id, wifi).unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound);
}

#[test]
fn the_default_rule_is_per_queue_and_applies_to_new_items_only() {
    let e = AgentEnv::new(&["in"]);
    let d = e.dir.path();
    assert_eq!(e.agent.default_rule().unwrap(), BackupRule::default());
    let before = e
        .agent
        .enqueue(filled_file(d, "before", 1, 10), "backup", 0)
        .unwrap();
    let wifi_charging = rule(NetworkRule::Unmetered, true);
    e.agent.set_default_rule(wifi_charging).unwrap();
    assert_eq!(e.agent.default_rule().unwrap(), wifi_charging);
    let after = e
        .agent
        .enqueue(filled_file(d, "after", 1, 20), "backup", 0)
        .unwrap();
    let batch = e
        .agent
        .enqueue_all(&[filled_file(d, "batch", 1, 30)], "backup", 0)
        .unwrap();
    let explicit = e
        .agent
        .enqueue_with_rule(
            filled_file(d, "explicit", 1, 40),
            "backup",
            0,
            Some(BackupRule::default()),
        )
        .unwrap();
    assert_eq!(e.item(before).rule, BackupRule::default(), "queued: kept");
    assert_eq!(e.item(after).rule, wifi_charging);
    assert_eq!(e.item(batch[0]).rule, wifi_charging);
    assert_eq!(e.item(explicit).rule, BackupRule::default());
    // Re-enqueued without a rule, a queued item keeps its own, not the new default.
    e.agent.enqueue(d.join("before"), "backup", 0).unwrap();
    assert_eq!(e.item(before).rule, BackupRule::default());
    let s = counted(&e);
    assert_eq!(s.rules.class(wifi_charging), backlog(2, 50));
    assert_eq!(s.rules.class(BackupRule::default()), backlog(2, 50));
    // Another handle on the file sees the same default.
    let other = cloudsync::Agent::open_existing(&e.db).unwrap();
    assert_eq!(other.default_rule().unwrap(), wifi_charging);
    other.set_default_rule(BackupRule::default()).unwrap();
    assert_eq!(e.agent.default_rule().unwrap(), BackupRule::default());
}

#[test]
fn counters_by_rule_follow_a_failure_a_run_that_uploads_and_a_removal() {
    let e = AgentEnv::new(&["in"]);
    let d = e.dir.path();
    let classes = [
        rule(NetworkRule::Any, false),
        rule(NetworkRule::NotRoaming, true),
        rule(NetworkRule::Unmetered, false),
        rule(NetworkRule::Unmetered, true),
    ];
    let mut ids = Vec::new();
    for (i, r) in classes.iter().enumerate() {
        let p = filled_file(d, &format!("f{i}"), 3, 1000 * (i + 1));
        ids.push(e.agent.enqueue_with_rule(p, "backup", 0, Some(*r)).unwrap());
    }
    let s = counted(&e);
    assert_eq!(s.rules.unmetered, backlog(2, 7000));
    assert_eq!(s.rules.charging, backlog(2, 6000));
    assert_eq!(s.rules.not_roaming, backlog(1, 2000));
    // A run whose first creation request fails: that item becomes failed
    // (still counted by its rule), the others go.
    e.server().push_fault(Fault::Status {
        method: Some("POST"),
        status: 503,
        retry_after: Some(3600),
    });
    let r = run(&e.agent).unwrap();
    assert_eq!((r.uploaded, r.failed), (3, 1), "{r:?}");
    let s = counted(&e);
    assert_eq!(s.failed, 1);
    let failed = ids
        .iter()
        .copied()
        .find(|id| e.agent.item(*id).is_ok_and(|i| i.state == State::Failed))
        .expect("one failed item");
    let failed_rule = e.item(failed).rule;
    let size = e.item(failed).size;
    assert_eq!(s.rules.class(failed_rule), backlog(1, size));
    for c in classes.iter().filter(|c| **c != failed_rule) {
        assert_eq!(s.rules.class(*c), backlog(0, 0), "{c:?} uploaded");
    }
    // Its rule changed while it waits, then removed.
    e.agent
        .set_rule(failed, rule(NetworkRule::NotRoaming, false))
        .unwrap();
    let s = counted(&e);
    assert_eq!(s.rules.not_roaming, backlog(1, size));
    assert_eq!(s.rules.class(failed_rule), backlog(0, 0));
    e.agent.remove(failed).unwrap();
    let s = counted(&e);
    assert_eq!(s.rules, Default::default());
    assert_eq!(s.done, 3);
}
