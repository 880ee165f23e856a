//! The whole-file SHA-256 pass the uploader makes before every upload
//! (`cloudsync::upload::hash_file`), in CPU seconds per GiB
//! (`cargo bench --bench hash -- --file PATH`, harness = false).
//!
//! Options (after `--`): `--file PATH` (default: a 256 MiB temp file),
//! `--runs N` (5). The file should be in the page cache (the first run warms it).

use cloudsync_testkit::bench as common;

use std::path::PathBuf;
use std::time::Instant;

use common::{arg, median, result};

fn cpu_secs() -> f64 {
    // /proc/self/stat fields 14 and 15: utime and stime in clock ticks.
    let s = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let rest = &s[s.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f[i].parse::<f64>().expect("number");
    // After the comm field, index 0 is field 3 (state): utime is field 14 → 11.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let runs: usize = arg("--runs", 5);
    let file: String = arg("--file", String::new());
    let _tmp;
    let path = if file.is_empty() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("data");
        let block: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 + 13) as u8).collect();
        let mut data = Vec::with_capacity(256 << 20);
        for _ in 0..256 {
            data.extend_from_slice(&block);
        }
        std::fs::write(&p, &data).expect("write");
        _tmp = t;
        p
    } else {
        PathBuf::from(file)
    };
    let size = std::fs::metadata(&path).expect("stat").len() as f64;
    let gib = size / (1u64 << 30) as f64;
    cloudsync::upload::hash_file(&path).expect("warm-up");
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..runs {
        let (c0, t) = (cpu_secs(), Instant::now());
        cloudsync::upload::hash_file(&path).expect("hash");
        wall.push(t.elapsed().as_secs_f64() / gib);
        cpu.push((cpu_secs() - c0) / gib);
    }
    println!(
        "hash_file ({:.0} MiB, page cache): {:.2} s/GiB wall ({:.0} MiB/s), {:.2} CPU s/GiB",
        size / (1 << 20) as f64,
        median(&wall),
        1024.0 / median(&wall),
        median(&cpu)
    );
    result("hash_wall_s_per_gib", median(&wall), "s/GiB");
    result("hash_cpu_s_per_gib", median(&cpu), "s/GiB");
}
