//! The hand-off between the reader thread and the sending thread: one mutex,
//! two condition variables, the messages in order one way and the spent
//! blocks the other.
//!
//! Why not `std::sync::mpsc`: each message type instantiates all three of its
//! channel flavours, about 25 KB of code per type on aarch64, and the
//! pipeline needs three types; the phone library has a 3 MiB budget. This is
//! the part of a channel the pipeline uses.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::blocks::{keep_spare, take_spare, Msg, WAIT_SLICE};
use crate::error::{Error, Result};
use crate::upload::Stop;

/// The state both threads share.
pub(super) struct Link {
    state: Mutex<State>,
    /// A message arrived, or the reader ended.
    to_sender: Condvar,
    /// A block came back, or the feed quit.
    to_reader: Condvar,
}

struct State {
    msgs: VecDeque<Msg>,
    free: Vec<Vec<u8>>,
    /// Blocks made so far, at most `blocks`: memory is bounded by the pool.
    allocated: usize,
    blocks: usize,
    quit: bool,
    done: bool,
}

impl Link {
    /// A link whose pool holds at most `blocks` blocks.
    pub fn new(blocks: usize) -> Link {
        Link {
            state: Mutex::new(State {
                msgs: VecDeque::new(),
                free: Vec::new(),
                allocated: 0,
                blocks,
                quit: false,
                done: false,
            }),
            to_sender: Condvar::new(),
            to_reader: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Neither side panics holding it; if one did, the state is still whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- the reader's side

    /// A block to read into: a spent one, a new one while the pool is not
    /// full, or the first one given back. `None` once the feed has quit.
    pub fn block(&self) -> Option<Vec<u8>> {
        let mut s = self.lock();
        loop {
            if s.quit {
                return None;
            }
            if let Some(b) = s.free.pop() {
                return Some(b);
            }
            if s.allocated < s.blocks {
                s.allocated += 1;
                drop(s);
                return Some(take_spare());
            }
            s = self.to_reader.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Whether the feed has quit.
    pub fn quitting(&self) -> bool {
        self.lock().quit
    }

    /// Hands a message to the sender; `false` (the message dropped) once the
    /// feed has quit.
    pub fn send(&self, m: Msg) -> bool {
        let mut s = self.lock();
        if s.quit {
            drop(s);
            if let Msg::Block(b, _) = m {
                keep_spare(b);
            }
            return false;
        }
        s.msgs.push_back(m);
        drop(s);
        self.to_sender.notify_one();
        true
    }

    /// The reader has ended (normally or not): its spent blocks become spares.
    pub fn reader_done(&self) {
        let mut s = self.lock();
        s.done = true;
        let free = std::mem::take(&mut s.free);
        drop(s);
        self.to_sender.notify_all();
        free.into_iter().for_each(keep_spare);
    }

    // ---- the sender's side

    /// The next message, looking at the stop conditions every
    /// [`WAIT_SLICE`]; `SourceIo(BrokenPipe)` if the reader ended without one.
    pub fn recv(&self, stop: &Stop<'_>) -> Result<Msg> {
        let mut s = self.lock();
        loop {
            if let Some(m) = s.msgs.pop_front() {
                return Ok(m);
            }
            if s.done {
                return Err(Error::SourceIo(std::io::ErrorKind::BrokenPipe));
            }
            let (g, waited) = self
                .to_sender
                .wait_timeout(s, WAIT_SLICE)
                .unwrap_or_else(|p| p.into_inner());
            s = g;
            if waited.timed_out() && s.msgs.is_empty() {
                drop(s);
                stop.check()?;
                s = self.lock();
            }
        }
    }

    /// A block handed out in full goes back to the reader (to the spares once
    /// the reader has ended).
    pub fn give_back(&self, b: Vec<u8>) {
        let mut s = self.lock();
        if s.done {
            drop(s);
            keep_spare(b);
            return;
        }
        s.free.push(b);
        drop(s);
        self.to_reader.notify_one();
    }

    /// The feed is dropped: the reader stops before its next block or
    /// message. Waits up to `wait` for it to end; `true` if it did.
    pub fn quit(&self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        let mut s = self.lock();
        s.quit = true;
        let msgs = std::mem::take(&mut s.msgs);
        self.to_reader.notify_all();
        while !s.done {
            let now = Instant::now();
            if now >= until {
                break;
            }
            s = self
                .to_sender
                .wait_timeout(s, until - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let done = s.done;
        let free = std::mem::take(&mut s.free);
        drop(s);
        for m in msgs {
            if let Msg::Block(b, _) = m {
                keep_spare(b);
            }
        }
        free.into_iter().for_each(keep_spare);
        done
    }
}

/// Tells the feed the reader has ended when dropped, a panic included: the
/// sender then never waits on a reader that is gone.
pub(super) struct DoneGuard<'a>(pub &'a Link);

impl Drop for DoneGuard<'_> {
    fn drop(&mut self) {
        self.0.reader_done();
    }
}
