//! What the reader thread hands over: blocks (and the pool of spare ones
//! kept between feeds), the hash state at a chunk's end, and the messages of
//! the [`super::link::Link`].

use std::sync::Mutex;
use std::time::Duration;

use ring::digest::{Context, SHA256};

use crate::error::Error;

/// One read: the granule of reading, hashing and sending.
pub(in crate::upload) const BUF: usize = 256 * 1024;

/// Blocks kept between the feeds of a run, at most [`SPARES`] (4 MiB): a new
/// block costs a page fault per 4 KiB on its first read (some 750 for a 3 MiB
/// photo), a kept one none. [`release_spares`] frees them when a run ends.
static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
const SPARES: usize = 16;

pub(super) fn take_spare() -> Vec<u8> {
    let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
    spare.pop().unwrap_or_else(|| vec![0u8; BUF])
}

pub(super) fn keep_spare(buf: Vec<u8>) {
    let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
    if buf.len() == BUF && spare.len() < SPARES {
        spare.push(buf);
    }
}

/// Frees the blocks kept between feeds (the end of a run: an app that runs
/// once an hour should not hold them in between).
pub(crate) fn release_spares() {
    let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
    spare.clear();
    spare.shrink_to_fit();
}

/// How often a wait for the reader looks at the stop conditions.
pub(super) const WAIT_SLICE: Duration = Duration::from_millis(50);

/// SHA-256 state of the first `at` bytes of the file.
#[derive(Clone)]
pub(in crate::upload) struct Mark {
    /// Bytes hashed.
    pub at: u64,
    pub(super) ctx: Context,
}

impl Mark {
    /// Nothing hashed yet.
    pub fn start() -> Mark {
        Mark {
            at: 0,
            ctx: Context::new(&SHA256),
        }
    }

    /// The digest, if the mark covers the whole file of `size` bytes.
    pub fn digest_of(&self, size: u64) -> Option<[u8; 32]> {
        (self.at == size).then(|| finish(self.ctx.clone()))
    }
}

pub(super) fn finish(ctx: Context) -> [u8; 32] {
    ctx.finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// The end of a chunk, as the reader saw it.
pub(in crate::upload) struct ChunkEnd {
    /// Hash of the file up to the chunk's end.
    pub mark: Mark,
    /// The chunk's own SHA-256, if asked for.
    pub digest: Option<[u8; 32]>,
}

pub(super) enum Msg {
    Block(Vec<u8>, usize),
    /// Boxed: one per chunk, and it keeps the per-block message small.
    End(Box<ChunkEnd>),
    Failed(Error),
}
