//! The cost of reading trust from the database (`cargo bench --bench trust`,
//! harness = false; `bench/trust.sh` runs it against the previous commit too).
//!
//! 1. `Agent::approved_region()` while nothing else writes.
//! 2. The per-buffer check of a run (`bench_buffer_check`) while nothing
//!    else writes: since trust moved to the database, one `PRAGMA
//!    data_version`; before, a lock and a read of the handle's memory.
//! 3. The same check right after another handle committed a queue write
//!    (data_version moved, the trust generation did not).
//! 4. The same check right after another handle committed a trust write
//!    (the generation moved: the row is re-read and re-verified).
//!
//! Built with `--cfg trust_bench_old` against the commit before the change,
//! the check is what that commit's run did per buffer (`approved_region()`
//! and a comparison); cases 3 and 4 then show that it never looked at the
//! database at all.
//!
//! Options (after `--`): `--iters N` (200000), `--write-iters N` (2000).

use cloudsync_testkit::bench as common;

use std::time::Instant;

use cloudsync::config::sign::sign_envelope;
use cloudsync::config::CONFIG_PAYLOAD_TYPE;
use cloudsync::region::ApprovedRegion;
use cloudsync::{Agent, AgentOptions};
use common::{arg, median, result, Keys};

#[cfg(not(trust_bench_old))]
fn buffer_check(a: &Agent, r: &ApprovedRegion) -> bool {
    a.bench_buffer_check(r)
}

#[cfg(trust_bench_old)]
fn buffer_check(a: &Agent, r: &ApprovedRegion) -> bool {
    matches!(a.approved_region(), Ok(Some(x)) if x.id() == r.id()
             && x.config_version() == r.config_version())
}

fn config(keys: &Keys) -> Vec<u8> {
    let mut regions = serde_json::Map::new();
    let mut countries = serde_json::Map::new();
    for (i, id) in ["in", "sg", "us", "br", "de"].iter().enumerate() {
        regions.insert(
            id.to_string(),
            serde_json::json!({
                "services": {"backup": {"url": format!("https://backup.{id}.example.net/files/"), "protocol": "tus"}},
                "allowed_hosts": [format!("backup.{id}.example.net"), format!("*.storage.{id}.example.net")],
                "networks": [format!("203.0.{i}.0/24")],
            }),
        );
        countries.insert(id.to_ascii_uppercase(), serde_json::json!(id));
    }
    countries.insert("FR".into(), serde_json::json!("in"));
    let payload = serde_json::json!({
        "version": 1, "issued_at": "2026-01-01T00:00:00Z", "expires_at": "2099-01-01T00:00:00Z",
        "countries": countries, "regions": regions,
    });
    sign_envelope(
        CONFIG_PAYLOAD_TYPE,
        &serde_json::to_vec(&payload).expect("json"),
        &[&keys.config_key],
    )
}

/// Median per-call time (ns) of `f` over batches of `batch` calls.
fn per_call_ns(iters: usize, batch: usize, mut f: impl FnMut()) -> f64 {
    let mut samples = Vec::new();
    for _ in 0..(iters / batch).max(1) {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        samples.push(t.elapsed().as_secs_f64() * 1e9 / batch as f64);
    }
    median(&samples)
}

/// Median time (ns) of `check` alone, each call right after `write`.
fn after_write_ns(iters: usize, mut write: impl FnMut(usize), check: impl Fn() -> bool) -> f64 {
    let mut samples = Vec::new();
    for i in 0..iters {
        write(i);
        let t = Instant::now();
        assert!(check(), "the region stays approved");
        samples.push(t.elapsed().as_secs_f64() * 1e9);
    }
    median(&samples)
}

fn main() {
    let iters: usize = arg("--iters", 200_000);
    let write_iters: usize = arg("--write-iters", 2_000);
    let keys = Keys::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("q.db");
    let open = || Agent::open_with(&db, Some(&keys.root_envelope), AgentOptions::default());
    let a = open().expect("open A");
    a.install(&config(&keys)).expect("config");
    a.set_account_country("IN").expect("country");
    let b = open().expect("open B");
    let region = a.approved_region().expect("fresh").expect("IN maps");
    assert!(buffer_check(&a, &region));

    let ns = per_call_ns(iters, 1000, || {
        assert!(a.approved_region().expect("ok").is_some());
    });
    println!("approved_region(), quiet: {ns:.0} ns");
    result("approved_region_quiet_ns", ns, "ns");

    let ns = per_call_ns(iters, 1000, || assert!(buffer_check(&a, &region)));
    println!("per-buffer check, quiet: {ns:.0} ns");
    result("buffer_check_quiet_ns", ns, "ns");

    // Another handle's queue write: retry_dead is a write transaction that
    // commits and changes nothing that decides where bytes go.
    let ns = after_write_ns(
        write_iters,
        |_| {
            b.retry_dead().expect("write");
        },
        || buffer_check(&a, &region),
    );
    println!("per-buffer check after another handle's queue write: {ns:.0} ns");
    result("buffer_check_after_queue_write_ns", ns, "ns");

    // Another handle's trust write that keeps the region (IN and FR both map to `in`).
    let ns = after_write_ns(
        write_iters,
        |i| {
            b.set_account_country(if i % 2 == 0 { "FR" } else { "IN" })
                .expect("country");
        },
        || buffer_check(&a, &region),
    );
    println!("per-buffer check after another handle's trust write: {ns:.0} ns");
    result("buffer_check_after_trust_write_ns", ns, "ns");
}
