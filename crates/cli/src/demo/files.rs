//! The demo's generated files (deterministic pseudo-random bytes).

use std::path::{Path, PathBuf};

use crate::store::Failure;

/// A setup error (the work directory, the files, the servers) as the CLI's failure.
pub(super) fn io(e: std::io::Error) -> Failure {
    Failure::Usage(format!("demo setup failed: {e}"))
}

/// `size` pseudo-random bytes from `seed` at `path`.
pub(super) fn write_file(path: &Path, size: u64, seed: u8) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut block = vec![0u8; 64 * 1024];
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    let mut left = size;
    while left > 0 {
        for b in block.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.flush()
}

/// `n` generated files of `size` bytes, `{name}-{i}.bin` in `dir`.
pub(super) fn generate(
    dir: &Path,
    name: &str,
    n: usize,
    size: u64,
    seed: u8,
) -> Result<Vec<PathBuf>, Failure> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("{name}-{i}.bin"));
            write_file(&p, size, seed + i as u8).map(|_| p)
        })
        .collect::<Result<_, _>>()
        .map_err(io)
}
