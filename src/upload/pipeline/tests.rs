//! The pipeline against real files: bytes, digests, resumes, truncation.

use super::*;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

fn sha(b: &[u8]) -> [u8; 32] {
    ring::digest::digest(&SHA256, b)
        .as_ref()
        .try_into()
        .unwrap()
}

fn with_stop(f: impl FnOnce(&Stop<'_>)) {
    let cancel = AtomicBool::new(false);
    let ok = || Ok(());
    let stop = Stop {
        cancel: &cancel,
        deadline: Instant::now() + Duration::from_secs(60),
        still_approved: &ok,
        keepalive: &ok,
    };
    f(&stop);
}

/// Sends every chunk from `plan.send_from` through bodies; returns the bytes
/// handed out, the chunk digests and the final mark.
fn drain(file: &File, plan: Plan, stop: &Stop<'_>) -> (Vec<u8>, Vec<Option<[u8; 32]>>, Mark) {
    let size = plan.chunks.size;
    let mut feed = Feed::start(file, plan).unwrap();
    let (mut out, mut digests) = (Vec::new(), Vec::new());
    let mut mark = None;
    while feed.pos() < size {
        let len = feed.chunks().end_from(feed.pos()) - feed.pos();
        digests.push(feed.hold_chunk(stop).unwrap().digest);
        let mut progress = |_| true;
        let mut body = feed.body(len, stop, &mut progress, 1);
        body.read_to_end(&mut out).unwrap();
        assert_eq!(body.sent, len);
        mark = Some(feed.take_end(stop).unwrap().mark);
    }
    let mark = mark.unwrap_or_else(|| feed.take_end(stop).unwrap().mark);
    (out, digests, mark)
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + i / 7) as u8).collect()
}

#[test]
fn one_read_gives_the_bytes_the_chunk_digests_and_the_whole_hash() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    let d = data(3 * BUF + 1234);
    std::fs::write(&p, &d).unwrap();
    let f = File::open(&p).unwrap();
    for (len, digests, blocks) in [
        (BUF as u64 + 7, true, Plan::holding(BUF as u64 + 7)),
        (1000, false, Plan::streaming()),
        (10 * BUF as u64, true, Plan::holding(10 * BUF as u64)),
    ] {
        let chunks = Chunks {
            len,
            size: d.len() as u64,
        };
        let plan = Plan {
            mark: Mark::start(),
            send_from: 0,
            chunks,
            digests,
            blocks,
        };
        with_stop(|stop| {
            let (out, sums, mark) = drain(&f, plan, stop);
            assert_eq!(out, d, "chunk {len}");
            assert_eq!(mark.digest_of(d.len() as u64), Some(sha(&d)));
            let want: Vec<_> = d
                .chunks(len as usize)
                .map(|c| digests.then(|| sha(c)))
                .collect();
            assert_eq!(sums, want, "chunk {len}");
        });
    }
}

#[test]
fn a_resume_hashes_the_prefix_it_does_not_send() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    let d = data(2 * BUF + 99);
    std::fs::write(&p, &d).unwrap();
    let f = File::open(&p).unwrap();
    let chunks = Chunks {
        len: BUF as u64,
        size: d.len() as u64,
    };
    with_stop(|stop| {
        // From the start of the file, sending from the middle of chunk 1.
        let from = BUF as u64 + 500;
        let plan = Plan {
            mark: Mark::start(),
            send_from: from,
            chunks,
            digests: true,
            blocks: Plan::holding(chunks.len),
        };
        let (out, sums, mark) = drain(&f, plan, stop);
        assert_eq!(out, &d[from as usize..]);
        // The partial chunk's digest covers what is sent of it.
        assert_eq!(sums[0], Some(sha(&d[from as usize..2 * BUF])));
        assert_eq!(mark.digest_of(d.len() as u64), Some(sha(&d)));
        // Only hashing: nothing left to send.
        let plan = Plan {
            mark: Mark::start(),
            send_from: d.len() as u64,
            chunks,
            digests: false,
            blocks: 2,
        };
        let (out, sums, mark) = drain(&f, plan, stop);
        assert!(out.is_empty() && sums.is_empty());
        assert_eq!(mark.digest_of(d.len() as u64), Some(sha(&d)));
    });
}

#[test]
fn a_file_shorter_than_its_size_is_source_changed_and_dropping_stops_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, data(BUF)).unwrap();
    let f = File::open(&p).unwrap();
    let chunks = Chunks {
        len: 4 * BUF as u64,
        size: 3 * BUF as u64,
    };
    with_stop(|stop| {
        let plan = Plan {
            mark: Mark::start(),
            send_from: 0,
            chunks,
            digests: true,
            blocks: Plan::holding(chunks.len),
        };
        let mut feed = Feed::start(&f, plan).unwrap();
        let e = feed.hold_chunk(stop).err().unwrap();
        assert_eq!(e.kind(), crate::ErrorKind::SourceChanged);
        // A reader with blocks still to read ends when the feed is dropped.
        std::fs::write(&p, data(3 * BUF)).unwrap();
        let plan = Plan {
            mark: Mark::start(),
            send_from: 0,
            chunks,
            digests: false,
            blocks: 2,
        };
        let feed = Feed::start(&f, plan).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(feed);
    });
}
