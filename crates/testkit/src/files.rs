//! Source files for uploads: reproducible bytes of any size, written into a
//! test's directory. One seed rule for every test: [`random`] with the same
//! `(size, seed)` gives the same bytes everywhere.

use std::path::{Path, PathBuf};

/// `size` pseudo-random bytes (xorshift32), the same for the same
/// `(size, seed)`. The state starts at `0x9e37_79b9 ^ seed * 0x0101_0101`,
/// never 0, so every seed gives a non-constant stream.
pub fn random(size: u64, seed: u8) -> Vec<u8> {
    let mut x = 0x9e37_79b9u32 ^ u32::from(seed).wrapping_mul(0x0101_0101);
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Writes `data` to `dir/name`; its path.
pub fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// `dir/name` holding [`random`]`(size, seed)`.
pub fn random_file(dir: &Path, name: &str, size: u64, seed: u8) -> PathBuf {
    write(dir, name, &random(size, seed))
}

/// `dir/name` holding `size` copies of `byte`.
pub fn filled_file(dir: &Path, name: &str, byte: u8, size: usize) -> PathBuf {
    write(dir, name, &vec![byte; size])
}

/// The SHA-256 of `data`, lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}
