//! Bad storage, black-box, on real files: each case must fail with its exact
//! `ErrorKind`, never panic, and never damage what is stored.
//!
//! - a file that is not SQLite → `NotADatabase`, file byte-identical after;
//! - a database with damaged pages → `StorageCorrupt`, no further damage;
//! - a location that cannot be written → `StorageUnavailable`;
//! - an existing database that became read-only → reads still work, every
//!   write is `StorageUnavailable`;
//! - a full disk (page budget) → `StorageFull`, every committed row kept;
//! - a newer schema → `SchemaTooNew`, file byte-identical after.
//!
//! Error texts reach logcat and crash reports, so none may contain a path.

use cloudsync_testkit::schema::root_v1;
use std::path::{Path, PathBuf};

use cloudsync::queue::ops::{self, SourceMeta};
use cloudsync::queue::schema::CURRENT_VERSION;
use cloudsync::queue::Db;
use cloudsync::{Agent, Error, ErrorKind};
use rusqlite::Connection;

/// Display and Debug of `e` must not mention `path`, its file name or its directory.
fn assert_no_path(e: &Error, path: &Path) {
    for text in [e.to_string(), format!("{e:?}")] {
        let mut needles = vec![path.to_string_lossy().into_owned()];
        if let Some(n) = path.file_name() {
            needles.push(n.to_string_lossy().into_owned());
        }
        if let Some(d) = path.parent() {
            if d.as_os_str().len() > 1 {
                needles.push(d.to_string_lossy().into_owned());
            }
        }
        for n in needles {
            assert!(!text.contains(&n), "error text {text:?} leaks {n:?}");
        }
    }
}

/// Every way the crate opens a database, each expected to fail with `kind`.
fn assert_open_fails(path: &Path, kind: ErrorKind) {
    let root = root_v1();
    let attempts: [(&str, Result<(), Error>); 4] = [
        ("Agent::open", Agent::open(path, &root).map(drop)),
        (
            "Agent::open_with(None)",
            Agent::open_with(path, None, Default::default()).map(drop),
        ),
        ("Agent::open_existing", Agent::open_existing(path).map(drop)),
        ("Db::open", Db::open(path).map(drop)),
    ];
    for (what, r) in attempts {
        let e = r.expect_err(what);
        assert_eq!(e.kind(), kind, "{what}: {e}");
        assert_no_path(&e, path);
    }
}

fn sidecars(path: &Path) -> Vec<PathBuf> {
    ["-wal", "-shm", "-journal"]
        .iter()
        .map(|s| PathBuf::from(format!("{}{s}", path.display())))
        .filter(|p| p.exists())
        .collect()
}

/// Deterministic pseudo-random bytes (xorshift), never starting with the SQLite magic.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn integrity(c: &Connection) -> String {
    let mut st = c.prepare("PRAGMA integrity_check").unwrap();
    let rows = st.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
        .join("\n")
}

const META: SourceMeta = SourceMeta {
    size: 1000,
    mtime_ns: 1,
};

// ---------------------------------------------------------------- (a)

#[test]
fn not_a_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = Vec::new();
    for i in 0..200 {
        text.extend_from_slice(format!("line {i}: my holiday notes, not a database\n").as_bytes());
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text.txt", text),
        ("short.txt", b"hello\n".to_vec()),
        ("noise.bin", noise(64 * 1024, 0x5eed)),
        ("noise_odd.bin", noise(4097, 7)),
        // Right magic, garbage after it (nonsense page size): still not a database.
        ("magic_only.db", {
            let mut v = b"SQLite format 3\0".to_vec();
            v.extend(noise(8192 - 16, 99));
            v
        }),
    ];
    for (name, bytes) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        for _ in 0..2 {
            for (what, r) in [
                ("Agent::open", Agent::open(&p, &root_v1()).map(drop)),
                ("Agent::open_existing", Agent::open_existing(&p).map(drop)),
                ("Db::open", Db::open(&p).map(drop)),
            ] {
                let e = r.expect_err(what);
                assert_eq!(e.kind(), ErrorKind::NotADatabase, "{name} via {what}: {e}");
                assert_no_path(&e, &p);
            }
            assert!(
                std::fs::read(&p).unwrap() == bytes,
                "{name}: the file was modified"
            );
            assert!(sidecars(&p).is_empty(), "{name}: left {:?}", sidecars(&p));
        }
    }
}

// ---------------------------------------------------------------- (b)

/// A real database with `n` items and a trust row; returns the item ids.
fn populated_db(path: &Path, n: usize) -> Vec<i64> {
    drop(Agent::open(path, &root_v1()).unwrap());
    let mut db = Db::open(path).unwrap();
    let ids = db
        .write(|tx| {
            (0..n)
                .map(|i| {
                    let p = format!("/sdcard/DCIM/Camera/IMG_{i:06}_with_a_long_enough_name.jpg");
                    ops::enqueue(
                        tx,
                        &p,
                        "backup",
                        (i % 3) as i32,
                        META,
                        Some("in"),
                        None,
                        i as i64,
                    )
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap();
    drop(db);
    assert!(sidecars(path).is_empty(), "WAL not checkpointed on close");
    ids
}

fn page_size(path: &Path) -> usize {
    let c = Connection::open(path).unwrap();
    c.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
        .unwrap() as usize
}

/// Root pages of the `items` table and its indexes.
fn items_root_pages(path: &Path) -> Vec<usize> {
    let c = Connection::open(path).unwrap();
    let mut st = c
        .prepare("SELECT rootpage FROM sqlite_master WHERE tbl_name = 'items' AND rootpage > 0")
        .unwrap();
    let rows = st.query_map([], |r| r.get::<_, i64>(0)).unwrap();
    rows.map(|r| r.unwrap() as usize).collect()
}

/// Overwrites whole pages (1-based page numbers) with a byte that is no valid
/// b-tree page type, so every read of them is detectably malformed.
fn smash_pages(path: &Path, pages: impl IntoIterator<Item = usize>) {
    let ps = page_size(path);
    let mut bytes = std::fs::read(path).unwrap();
    for pg in pages {
        assert!(pg >= 2, "page 1 holds the header");
        let start = (pg - 1) * ps;
        let end = (start + ps).min(bytes.len());
        bytes[start..end].fill(0xA5);
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn corrupt_pages_give_storage_corrupt_and_no_further_damage() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.db");
    populated_db(&p, 3000);
    let ps = page_size(&p);
    let total = std::fs::metadata(&p).unwrap().len() as usize / ps;
    assert!(total > 20, "want a multi-page database, got {total} pages");
    // The items b-trees' roots plus a band in the middle of the file. The
    // header (page 1) and the trust row (page 2, created first) are kept,
    // so the database still opens and the damage is met by the queue calls.
    let mut pages = items_root_pages(&p);
    pages.extend(total / 3..total / 2);
    pages.retain(|&pg| pg > 2);
    smash_pages(&p, pages);
    {
        let c = Connection::open(&p).unwrap();
        assert_ne!(
            integrity(&c),
            "ok",
            "the test did not manage to corrupt the file"
        );
    }
    let damaged = std::fs::read(&p).unwrap();
    let src = dir.path().join("new.jpg");
    std::fs::write(&src, b"new photo").unwrap();

    for round in 0..2 {
        match Agent::open_with(&p, None, Default::default()) {
            Err(e) => {
                eprintln!("round {round}: open failed: {e}");
                // Acceptable if SQLite already notices at open; it must be the exact kind.
                assert_eq!(e.kind(), ErrorKind::StorageCorrupt, "open: {e}");
                assert_no_path(&e, &p);
            }
            Ok(agent) => {
                eprintln!("round {round}: opened; the damage is met by the queue calls");
                let e = agent.stats().unwrap_err();
                assert_eq!(e.kind(), ErrorKind::StorageCorrupt, "stats: {e}");
                assert_no_path(&e, &p);
                let e = agent.list(None, 0, u32::MAX).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::StorageCorrupt, "list: {e}");
                assert_no_path(&e, &p);
                let e = agent.enqueue(&src, "backup", 0).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::StorageCorrupt, "enqueue: {e}");
                assert_no_path(&e, &p);
                let e = agent.enqueue_all(&[&src, &src], "photos", 1).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::StorageCorrupt, "enqueue_all: {e}");
                // The trust data on the intact page is still served.
                assert_eq!(agent.config_info().unwrap().root_version, 1);
            }
        }
        assert!(
            std::fs::read(&p).unwrap() == damaged,
            "round {round}: a failed call wrote to the damaged file"
        );
    }
}

#[test]
fn corrupt_schema_page_gives_storage_corrupt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.db");
    populated_db(&p, 200);
    // Page 1 after the 100-byte file header is the b-tree of sqlite_master.
    let mut bytes = std::fs::read(&p).unwrap();
    let ps = page_size(&p);
    bytes[100..ps].fill(0xA5);
    std::fs::write(&p, &bytes).unwrap();
    for _ in 0..2 {
        let e = Agent::open_with(&p, None, Default::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StorageCorrupt, "{e}");
        assert_no_path(&e, &p);
        let e = Agent::open(&p, &root_v1()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StorageCorrupt, "{e}");
        assert!(
            std::fs::read(&p).unwrap() == bytes,
            "a failed open wrote to the file"
        );
    }
}

// ---------------------------------------------------------------- (c)

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn unwritable_location_gives_storage_unavailable() {
    let dir = tempfile::tempdir().unwrap();

    // A directory that does not exist, and a "directory" that is a regular file.
    assert_open_fails(
        &dir.path().join("no/such/dir/q.db"),
        ErrorKind::StorageUnavailable,
    );
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    assert_open_fails(&file.join("q.db"), ErrorKind::StorageUnavailable);
    assert_eq!(std::fs::read(&file).unwrap(), b"x");

    // A directory nobody may create files in. Root ignores permission bits
    // (CAP_DAC_OVERRIDE), so `chmod 0555` would not stop it: as root use
    // procfs, where even root cannot create files; otherwise a 0555 dir.
    if running_as_root() {
        assert_open_fails(
            Path::new("/proc/cloudsync-test/q.db"),
            ErrorKind::StorageUnavailable,
        );
        assert_open_fails(
            Path::new("/proc/cloudsync-test.db"),
            ErrorKind::StorageUnavailable,
        );
        assert!(!Path::new("/proc/cloudsync-test.db").exists());
    } else {
        use std::os::unix::fs::PermissionsExt;
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        assert_open_fails(&ro.join("q.db"), ErrorKind::StorageUnavailable);
        assert!(
            std::fs::read_dir(&ro).unwrap().next().is_none(),
            "nothing was created"
        );
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

// ---------------------------------------------------------------- (d)

#[test]
fn full_disk_gives_storage_full_and_keeps_every_committed_row() {
    // Budget = the current size (only free space inside existing pages), and
    // a little more (the failure then comes while allocating new pages).
    for extra_pages in [0, 30] {
        full_disk_case(extra_pages);
    }
}

// Long: one scenario end to end; each step reads the state the previous one left.
fn full_disk_case(extra_pages: u64) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.db");
    drop(Agent::open(&p, &root_v1()).unwrap());

    let mut db = Db::open(&p).unwrap();
    let pages: i64 = db
        .conn()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    db.set_max_page_count(pages as u64 + extra_pages).unwrap();

    let mut committed: Vec<(i64, String)> = Vec::new();
    let mut failure = None;
    for i in 0..200_000 {
        let path = format!("/sdcard/Pictures/Screenshots/Screenshot_{i:08}_com.miui.home.png");
        // Alternate single-row and 5-row transactions: both must be all-or-nothing.
        let batch: Vec<String> = if i % 2 == 0 {
            vec![path]
        } else {
            (0..5).map(|k| format!("{path}.{k}")).collect()
        };
        match db.write(|tx| {
            batch
                .iter()
                .map(|b| ops::enqueue(tx, b, "backup", 0, META, Some("in"), None, i))
                .collect::<Result<Vec<_>, _>>()
        }) {
            Ok(ids) => committed.extend(ids.into_iter().zip(batch)),
            Err(e) => {
                failure = Some((e, batch));
                break;
            }
        }
    }
    let (e, lost_batch) = failure.expect("the page budget never ran out");
    assert_eq!(e.kind(), ErrorKind::StorageFull, "{e}");
    assert_no_path(&e, &p);
    assert!(
        !committed.is_empty(),
        "nothing fitted; the budget test proves nothing"
    );
    eprintln!(
        "budget +{extra_pages} pages: {} rows committed before {e}",
        committed.len()
    );

    // Still full: reads work, retrying the same write fails the same way and changes nothing.
    let before = ops::stats(db.conn()).unwrap();
    assert_eq!(before.pending as usize, committed.len());
    let e = db
        .write(|tx| {
            lost_batch
                .iter()
                .map(|b| ops::enqueue(tx, b, "backup", 0, META, Some("in"), None, 0))
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageFull, "{e}");
    assert_eq!(ops::stats(db.conn()).unwrap(), before);
    drop(db);

    // Reopen from disk: every committed row is there, the failed batch is not (all or nothing).
    let c = Connection::open(&p).unwrap();
    assert_eq!(integrity(&c), "ok");
    let mut st = c.prepare("SELECT id, path FROM items ORDER BY id").unwrap();
    let rows: Vec<(i64, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        rows, committed,
        "rows committed before the disk filled up differ"
    );
    for b in &lost_batch {
        assert!(
            !rows.iter().any(|(_, p)| p == b),
            "half of the failed batch was committed"
        );
    }
    drop(st);
    drop(c);

    // The budget is per connection: a fresh open (space freed) works and keeps everything.
    let src = dir.path().join("after.jpg");
    std::fs::write(&src, b"after").unwrap();
    let agent = Agent::open_existing(&p).unwrap();
    let id = agent.enqueue(&src, "backup", 0).unwrap();
    assert!(id > committed.last().unwrap().0);
    assert_eq!(agent.stats().unwrap().pending as usize, committed.len() + 1);
}

#[test]
fn full_disk_rolls_back_a_transaction_that_cannot_fit() {
    // One enqueue_all-sized transaction far larger than the free space: it
    // fails as a whole with StorageFull and leaves nothing behind.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.db");
    drop(Agent::open(&p, &root_v1()).unwrap());
    let mut db = Db::open(&p).unwrap();
    let pages: i64 = db
        .conn()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    db.set_max_page_count(pages as u64).unwrap();
    // One huge transaction cannot fit at all: nothing is committed.
    let e = db
        .write(|tx| {
            for i in 0..10_000 {
                ops::enqueue(
                    tx,
                    &format!("/big/{i:06}"),
                    "backup",
                    0,
                    META,
                    None,
                    None,
                    0,
                )?;
            }
            Ok(())
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageFull, "{e}");
    assert_eq!(
        ops::stats(db.conn()).unwrap().pending,
        0,
        "a failed transaction left rows behind"
    );
    drop(db);
    let c = Connection::open(&p).unwrap();
    assert_eq!(integrity(&c), "ok");
    let n: i64 = c
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    let floor: i64 = c
        .query_row("SELECT count(*) FROM trust", [], |r| r.get(0))
        .unwrap();
    assert_eq!(floor, 1, "the trust row survived");
}

// ---------------------------------------------------------------- (e)

#[test]
fn newer_schema_gives_schema_too_new_and_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.db");
    let ids = populated_db(&p, 50);
    {
        let c = Connection::open(&p).unwrap();
        c.pragma_update(None, "user_version", CURRENT_VERSION + 1)
            .unwrap();
    }
    let before = std::fs::read(&p).unwrap();
    for _ in 0..2 {
        assert_open_fails(&p, ErrorKind::SchemaTooNew);
        assert!(
            std::fs::read(&p).unwrap() == before,
            "the file was modified"
        );
    }
    let c = Connection::open(&p).unwrap();
    assert_eq!(integrity(&c), "ok");
    let n: i64 = c
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n as usize, ids.len());
}

/// Clears the immutable attribute again, even if the test fails.
struct Immutable(PathBuf);

impl Immutable {
    /// `chattr +i` (root on ext4/xfs/btrfs); `None` where unsupported.
    fn set(p: &Path) -> Option<Immutable> {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .arg(p)
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| Immutable(p.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn existing_database_that_became_read_only() {
    // Root ignores permission bits, but not the immutable attribute: an
    // existing queue whose file can no longer be written (here `chattr +i`;
    // on a phone, a storage fault remounting /data read-only).
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.db");
    let ids = populated_db(&p, 20);
    let before = std::fs::read(&p).unwrap();
    let Some(_guard) = Immutable::set(&p) else {
        eprintln!("chattr +i unsupported here; skipping");
        return;
    };
    let src = dir.path().join("new.jpg");
    std::fs::write(&src, b"x").unwrap();
    // Opening writes nothing on an up-to-date file, and the directory is
    // writable (SQLite makes the -wal/-shm it reads through): it opens.
    match Agent::open_with(&p, Some(&root_v1()), Default::default()) {
        Err(e) => panic!("a read-only file opens for reading: {e}"),
        Ok(a) => {
            // SQLite falls back to a read-only connection: reads still work...
            assert_eq!(a.stats().unwrap().pending as usize, ids.len());
            assert_eq!(a.list(None, 0, 100).unwrap().len(), ids.len());
            // ...and every write says so, with the exact kind.
            let e = a.enqueue(&src, "backup", 0).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::StorageUnavailable, "enqueue: {e}");
            assert_no_path(&e, &p);
            let e = a.remove(ids[0]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::StorageUnavailable, "remove: {e}");
            let e = a.set_account_country("BR").unwrap_err();
            assert_eq!(
                e.kind(),
                ErrorKind::StorageUnavailable,
                "set_account_country: {e}"
            );
            assert_eq!(
                a.config_info().unwrap().country,
                None,
                "a failed write changed the agent's state"
            );
        }
    }
    assert!(std::fs::read(&p).unwrap() == before);
    drop(_guard);
    let c = Connection::open(&p).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n as usize, ids.len());
}
