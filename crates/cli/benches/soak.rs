//! Issue 16: one agent over time, against `cloudsync dev-server` (a child
//! process over loopback TLS, so its memory and threads are not counted
//! here). `harness = false`; long, so never in CI nor in `bench/run.sh`.
//!
//! * `--only flat_run [--items 100000] [--block 1000]`: one
//!   `Agent::run_with_events` of `--items` tiny files (1 byte to 1 KiB),
//!   items/s and this process's CPU per item for every block of `--block`
//!   items (timed from the `Done` events); the last block against the first
//!   (target: items/s of the last ≥ 0.9× the first).
//! * `--only soak [--rounds 60] [--files 200]`: one long-lived agent, each
//!   round enqueue `--files` new files, run until drained, `stats()`, read
//!   the last page of the audit; per round this process's RSS (VmRSS), open
//!   fds, threads, and the database and WAL sizes; the first 10 rounds
//!   against the last 10.

use cloudsync_testkit::bench as common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cloudsync::{Agent, RunEvent};
use common::{arg, median, result};

/// `cloudsync dev-server --regions in` in a child process, killed when dropped.
struct DevServer {
    child: Child,
    root: Vec<u8>,
    config: Vec<u8>,
}

impl DevServer {
    fn start(dir: &Path) -> DevServer {
        let ready = dir.join("ready.json");
        let child = Command::new(cloudsync_testkit::cloudsync_exe())
            .args(["dev-server", "--regions", "in", "--dir"])
            .arg(dir.join("data"))
            .arg("--ready-file")
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cloudsync dev-server");
        let started = Instant::now();
        while !ready.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "dev-server not ready"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&ready).expect("ready file")).expect("JSON");
        let read = |k: &str| std::fs::read(v[k].as_str().expect("path")).expect("read");
        DevServer {
            root: read("root"),
            config: read("config"),
            child,
        }
    }

    /// An agent on `db` trusting the server's root, its config installed
    /// (it carries the dev CA), country IN.
    fn agent(&self, db: &Path) -> Agent {
        let agent = Agent::open(db, &self.root).expect("open");
        agent.install(&self.config).expect("install config");
        agent.set_account_country("IN").expect("country");
        agent
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` files of 1 byte to 1 KiB under `dir`, named by `tag` and number.
fn tiny_files(dir: &Path, tag: &str, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("mkdir");
    (0..n)
        .map(|i| {
            let p = dir.join(format!("{tag}_{i:06}.bin"));
            let body: Vec<u8> = (0..1 + i % 1024).map(|j| (i * 31 + j) as u8).collect();
            std::fs::write(&p, body).expect("write file");
            p
        })
        .collect()
}

fn enqueue(agent: &Agent, files: &[PathBuf]) {
    for chunk in files.chunks(1000) {
        agent.enqueue_all(chunk, "backup", 0).expect("enqueue_all");
    }
}

/// User + system CPU seconds of this process.
fn cpu_secs() -> f64 {
    cpu_of("self")
}

/// User + system CPU seconds of process `pid` (`self`: this one).
fn cpu_of(pid: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    let rest = &s[s.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime")) / 100.0
}

// Long: one bench from set-up to its result lines, read top to bottom.
fn flat_run() {
    let n: usize = arg("--items", 100_000);
    let block: usize = arg("--block", 1000);
    assert!(n >= 2 * block, "--items must hold two blocks");
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(&tmp.path().join("server"));
    let t = Instant::now();
    let files = tiny_files(&tmp.path().join("files"), "f", n);
    let agent = server.agent(&tmp.path().join("q.db"));
    enqueue(&agent, &files);
    println!(
        "made and enqueued {n} files in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let server_pid = server.child.id().to_string();
    let (t0, c0, s0) = (Instant::now(), cpu_secs(), cpu_of(&server_pid));
    // Per Done: wall seconds, then this process's and the server's CPU
    // seconds, read at the end of each block only (/proc reads are not free).
    let mut done: Vec<(f64, f64, f64)> = Vec::with_capacity(n);
    let report = agent
        .run_with_events(Duration::from_secs(24 * 3600), &mut |e| {
            if let RunEvent::Done { .. } = e {
                let (c, s) = if (done.len() + 1) % block == 0 {
                    (cpu_secs() - c0, cpu_of(&server_pid) - s0)
                } else {
                    (0.0, 0.0)
                };
                done.push((t0.elapsed().as_secs_f64(), c, s));
            }
            true
        })
        .expect("run");
    assert_eq!(report.uploaded as usize, n, "every item once: {report:?}");
    // Each block: items/s, and CPU ms per item of the agent and of the server.
    let blocks: Vec<(f64, f64, f64)> = (0..n / block)
        .map(|k| {
            let end = done[(k + 1) * block - 1];
            let start = match k {
                0 => (0.0, 0.0, 0.0),
                _ => done[k * block - 1],
            };
            let b = block as f64;
            let ms = |from: f64, to: f64| (to - from) * 1e3 / b;
            (
                b / (end.0 - start.0),
                ms(start.1, end.1),
                ms(start.2, end.2),
            )
        })
        .collect();
    let line: Vec<String> = blocks.iter().map(|b| format!("{:.0}", b.0)).collect();
    println!("items/s per block of {block}: {}", line.join(" "));
    let cpu: Vec<String> = blocks
        .iter()
        .map(|b| format!("{:.2}/{:.2}", b.1, b.2))
        .collect();
    println!("CPU ms/item per block (agent/server): {}", cpu.join(" "));
    let (first, last) = (blocks[0], blocks[blocks.len() - 1]);
    let rates: Vec<f64> = blocks.iter().map(|b| b.0).collect();
    let verdict = match last.0 / first.0 >= 0.9 {
        true => "met",
        false => "NOT met",
    };
    println!(
        "run of {n} items in {:.0}s: first {block} {:.0} items/s (CPU/item: agent {:.2} ms, \
         server {:.2} ms), last {block} {:.0} items/s (agent {:.2} ms, server {:.2} ms); \
         last/first: items/s {:.2}x (target >= 0.9: {verdict}), agent CPU/item {:.2}x, \
         server CPU/item {:.2}x; median block {:.0} items/s",
        done[n - 1].0,
        first.0,
        first.1,
        first.2,
        last.0,
        last.1,
        last.2,
        last.0 / first.0,
        last.1 / first.1,
        last.2 / first.2,
        median(&rates),
    );
    result("flat_run_first_items_per_s", first.0, "items/s");
    result("flat_run_last_items_per_s", last.0, "items/s");
    result("flat_run_agent_cpu_last_over_first", last.1 / first.1, "x");
    result("flat_run_server_cpu_last_over_first", last.2 / first.2, "x");
    result("flat_run_last_over_first", last.0 / first.0, "x");
}

/// What one round leaves behind in this process and on disk.
#[derive(Clone, Copy)]
struct Sample {
    rss_kib: f64,
    fds: f64,
    threads: f64,
    db_kib: f64,
    wal_kib: f64,
}

fn sample(db: &Path) -> Sample {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .expect("VmRSS");
    let count = |d: &str| std::fs::read_dir(d).expect("proc dir").count() as f64;
    let kib = |p: &Path| std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1024.0);
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    Sample {
        rss_kib: rss,
        fds: count("/proc/self/fd"),
        threads: count("/proc/self/task"),
        db_kib: kib(db),
        wal_kib: kib(&wal),
    }
}

fn soak() {
    let rounds: usize = arg("--rounds", 60);
    let per: usize = arg("--files", 200);
    assert!(
        rounds >= 20,
        "--rounds: at least 20 (first 10 against last 10)"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = DevServer::start(&tmp.path().join("server"));
    let db = tmp.path().join("q.db");
    let agent = server.agent(&db);
    println!("| round | uploaded | run s | stats µs | audit page µs | RSS KiB | fds | threads | DB KiB | WAL KiB |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut samples = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let files = tiny_files(&tmp.path().join("files"), &format!("r{r:03}"), per);
        enqueue(&agent, &files);
        let t = Instant::now();
        let report = agent
            .run_with_events(Duration::from_secs(3600), &mut |_| true)
            .expect("run");
        let run_s = t.elapsed().as_secs_f64();
        assert_eq!(report.uploaded as usize, per, "round {r}: {report:?}");
        let t = Instant::now();
        let stats = agent.stats().expect("stats");
        let stats_us = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        let after = i64::try_from(stats.done)
            .expect("count")
            .saturating_sub(100);
        let page = agent.audit(after.max(0), 100).expect("audit");
        let audit_us = t.elapsed().as_secs_f64() * 1e6;
        assert!(!page.is_empty());
        let s = sample(&db);
        println!(
            "| {r} | {} | {run_s:.2} | {stats_us:.0} | {audit_us:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            report.uploaded, s.rss_kib, s.fds, s.threads, s.db_kib, s.wal_kib
        );
        samples.push(s);
    }
    let (head, tail) = (&samples[..10], &samples[rounds - 10..]);
    type Field = fn(&Sample) -> f64;
    let fields: [(&str, Field); 5] = [
        ("rss_kib", |s| s.rss_kib),
        ("fds", |s| s.fds),
        ("threads", |s| s.threads),
        ("db_kib", |s| s.db_kib),
        ("wal_kib", |s| s.wal_kib),
    ];
    for (name, f) in fields {
        let first = median(&head.iter().map(f).collect::<Vec<_>>());
        let last = median(&tail.iter().map(f).collect::<Vec<_>>());
        let max = samples.iter().map(f).fold(0.0, f64::max);
        println!(
            "{name}: median of rounds 0-9 {first:.0}, of rounds {}-{} {last:.0} (last/first {:.2}x), max {max:.0}",
            rounds - 10,
            rounds - 1,
            if first > 0.0 { last / first } else { f64::NAN },
        );
        result(&format!("soak_{name}_first10"), first, "");
        result(&format!("soak_{name}_last10"), last, "");
    }
}

fn main() {
    let only: String = arg("--only", String::new());
    match only.as_str() {
        "flat_run" => flat_run(),
        "soak" => soak(),
        _ => {
            eprintln!("usage: cargo bench -p cloudsync-cli --bench soak -- --only flat_run|soak [options]");
            std::process::exit(2);
        }
    }
}
