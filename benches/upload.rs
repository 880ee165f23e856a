//! One `Agent::run_once` against a running `cloudsync dev-server`, split into
//! phases (`harness = false`; driven by `bench/run.sh`, which prepares the DB):
//!
//! * pre-pass: everything before the first MiB of the body has left (lease,
//!   OPTIONS, key write, POST, session write; since issue 15 the file is read
//!   and hashed while it is sent, so this is the time to the first MiB, and
//!   with the checksum extension includes reading and hashing the first chunk);
//! * transfer: from there to the confirmed end (the PATCH body, the final
//!   offset and audit writes).
//!
//! `cargo bench --bench upload -- --db DB --ca CA.pem [--chunk-size N]`
//! prints `RESULT` lines: wall and CPU seconds of each phase and in total.

use cloudsync_testkit::bench as common;

use std::time::{Duration, Instant};

use cloudsync::{Agent, AgentOptions};
use common::{arg, result};
use rustls::pki_types::pem::PemObject as _;

fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let rest = &s[s.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime")) / 100.0
}

fn main() {
    let db: String = arg("--db", String::new());
    let ca: String = arg("--ca", String::new());
    let root: String = arg("--root", String::new());
    let chunk: u64 = arg("--chunk-size", 0);
    assert!(
        !db.is_empty() && !ca.is_empty() && !root.is_empty(),
        "usage: --db DB --ca CA.pem --root ROOT.json [--chunk-size N]"
    );
    // The firmware root: an upload needs it (issue 21).
    let root = std::fs::read(&root).expect("read root");
    let pem = std::fs::read(&ca).expect("read CA");
    let mut opts = AgentOptions::default();
    opts.upload
        .extra_roots
        .push(rustls::pki_types::CertificateDer::from_pem_slice(&pem).expect("PEM"));
    if chunk > 0 {
        opts.upload.chunk_size = chunk;
    }
    let (t0, c0) = (Instant::now(), cpu_secs());
    let agent = Agent::open_with(&db, Some(&root), opts).expect("open");
    let mut first: Option<(f64, f64)> = None;
    let report = agent
        .run_once(Duration::from_secs(3600), &mut |p| {
            if first.is_none() && p.sent > 0 {
                first = Some((t0.elapsed().as_secs_f64(), cpu_secs() - c0));
            }
            true
        })
        .expect("run_once");
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_secs() - c0);
    assert_eq!(report.uploaded, 1, "expected one upload: {report:?}");
    let (pw, pc) = first.expect("progress was reported");
    println!(
        "{} bytes: total {wall:.2}s wall / {cpu:.2}s CPU; pre-pass {pw:.2}s / {pc:.2}s; transfer {:.2}s / {:.2}s",
        report.bytes,
        wall - pw,
        cpu - pc
    );
    result("bytes", report.bytes as f64, "B");
    result("total_wall", wall, "s");
    result("total_cpu", cpu, "s");
    result("prepass_wall", pw, "s");
    result("prepass_cpu", pc, "s");
    result("transfer_wall", wall - pw, "s");
    result("transfer_cpu", cpu - pc, "s");
}
