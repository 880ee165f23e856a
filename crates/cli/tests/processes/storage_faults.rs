//! Issue 22, point 5 (first half) and the storage cases of point 2: storage
//! that cannot be written, and a full disk, at open and during a run.
//!
//! Everything here is real, nothing emulated:
//! - read-only: the immutable attribute (`chattr +i`; tests run as root,
//!   which permission bits do not stop) on the file, its `-wal`/`-shm` and
//!   its directory; as another user, `chmod a-w` does the same. Skipped,
//!   saying so, where neither works.
//! - full disk: a small tmpfs mounted for the test (`mount -t tmpfs -o
//!   size=…`, root only) filled to the last page, so SQLite meets ENOSPC.
//!   Skipped, saying so, where it cannot be mounted. (tests/queue/storage.rs
//!   emulates a full disk with `max_page_count` at the `Db` level.)
//!
//! Each test runs under its own timeout; the servers count every request,
//! so "nothing uploads" is checked on the wire.

use cloudsync_testkit::process;
use cloudsync_testkit::sqlite_holder;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cloudsync::config::sign::{root_payload, sign_envelope};
use cloudsync::config::ROOT_PAYLOAD_TYPE;
use cloudsync::queue::{ops, Db};
use cloudsync::{Agent, AgentOptions, ErrorKind, RunEvent, State, StopReason};
use cloudsync_devserver::world::{standard_regions, World};
use cloudsync_devserver::Fault;
use rusqlite::Connection;
use sqlite_holder::{bounded, Sqlite3};

const TEST_LIMIT: Duration = Duration::from_secs(120);

struct Setup {
    world: World,
    db: PathBuf,
    /// Beside the database (anchors the CLI children), or in `dir`.
    files: PathBuf,
    ids: Vec<i64>,
    // Last: removed after everything above let go of it.
    dir: tempfile::TempDir,
}

impl Setup {
    /// A configured queue with `n` files of `size` bytes, at `db` (default:
    /// in the temp dir), closed again (no `-wal`/`-shm` left).
    fn new(db_dir: Option<&Path>, n: usize, size: usize) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let world = World::start(&dir.path().join("servers"), standard_regions(&["in"])).unwrap();
        let db = db_dir.unwrap_or(dir.path()).join("q.db");
        std::fs::write(db.with_file_name("root.json"), &world.root_envelope).unwrap();
        let files = dir.path().join("files");
        std::fs::create_dir(&files).unwrap();
        let mut s = Setup {
            world,
            db,
            files,
            ids: Vec::new(),
            dir,
        };
        let a = s.open().unwrap();
        a.install(&s.world.config_envelope(1)).unwrap();
        a.set_account_country("IN").unwrap();
        for i in 0..n {
            let p = s.files.join(format!("f{i}"));
            std::fs::write(&p, (0..size).map(|j| (j + i) as u8).collect::<Vec<u8>>()).unwrap();
            s.ids.push(a.enqueue(&p, "backup", 0).unwrap());
        }
        drop(a);
        assert!(sidecars(&s.db).is_empty(), "closed cleanly");
        s
    }

    fn options(&self) -> AgentOptions {
        let mut o = self.world.agent_options();
        o.upload.chunk_size = 64 * 1024;
        o.lease_ttl = Duration::from_secs(2);
        o
    }

    fn open(&self) -> cloudsync::Result<Agent> {
        Agent::open_with(&self.db, Some(&self.world.root_envelope), self.options())
    }

    fn requests(&self) -> u64 {
        self.world.servers["in"].stats().requests
    }

    /// `cloudsync --db DB args` in its own process (anchored in root.json).
    fn cli(&self, args: &[&str]) -> process::Out {
        process::cli(self.dir.path(), &self.db, args)
    }

    /// A newer firmware root (version 2, same keys): opening with it changes
    /// the trust the file holds.
    fn root_v2(&self) -> Vec<u8> {
        let w = &self.world;
        sign_envelope(
            ROOT_PAYLOAD_TYPE,
            &root_payload(
                2,
                "2099-01-01T00:00:00Z",
                &[&w.root_key],
                1,
                &[&w.config_key],
                1,
            ),
            &[&w.root_key],
        )
    }
}

fn sidecars(db: &Path) -> Vec<PathBuf> {
    ["-wal", "-shm", "-journal"]
        .iter()
        .map(|s| PathBuf::from(format!("{}{s}", db.display())))
        .filter(|p| p.exists())
        .collect()
}

fn integrity(db: &Path) -> String {
    let c = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn assert_kind<T: std::fmt::Debug>(r: cloudsync::Result<T>, kind: ErrorKind, what: &str) {
    let e = r.expect_err(what);
    assert_eq!(e.kind(), kind, "{what}: {e}");
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Makes a file or directory unwritable until dropped: `chattr +i` as
/// root, `chmod a-w` otherwise.
struct ReadOnly(Vec<(PathBuf, Option<u32>)>);

impl ReadOnly {
    fn set(paths: &[&Path]) -> Option<ReadOnly> {
        use std::os::unix::fs::PermissionsExt;
        let mut guard = ReadOnly(Vec::new());
        for p in paths {
            if running_as_root() {
                let ok = Command::new("chattr")
                    .arg("+i")
                    .arg(p)
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    return None;
                }
                guard.0.push((p.to_path_buf(), None));
            } else {
                let mode = std::fs::metadata(p).ok()?.permissions().mode();
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode & !0o222)).ok()?;
                guard.0.push((p.to_path_buf(), Some(mode)));
            }
        }
        Some(guard)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        for (p, mode) in self.0.iter().rev() {
            match mode {
                None => {
                    let _ = Command::new("chattr").arg("-i").arg(p).status();
                }
                Some(m) => {
                    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(*m));
                }
            }
        }
    }
}

/// A small tmpfs at `dir` (created), unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    fn fill(&self) -> PathBuf {
        fill(&self.0)
    }
}

/// Takes every free page of the file system of `dir` with a filler file;
/// returns its path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    {
        let p = dir.join("filler");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap();
        let block = [0x5a_u8; 4096];
        loop {
            match f.write(&block) {
                Ok(n) if n == block.len() => {}
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        p
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

// ------------------------------------------------------------ read-only

#[test]
fn a_read_only_file_serves_reads_refuses_writes_and_uploads_nothing() {
    bounded(TEST_LIMIT, "the test", || {
        let s = Setup::new(None, 2, 1000);
        let before = std::fs::read(&s.db).unwrap();
        let Some(_ro) = ReadOnly::set(&[&s.db]) else {
            eprintln!("SKIPPED: cannot make a file read-only here (chattr +i / chmod)");
            return;
        };
        // The directory is writable: SQLite makes the -wal and -shm it reads through.
        let a = s.open().expect("a read-only file opens for reading");
        assert_eq!(a.stats().unwrap().pending, 2);
        assert_eq!(a.list(None, 0, 10).unwrap().len(), 2);
        assert_eq!(a.item(s.ids[0]).unwrap().state.name(), "pending");
        assert!(a.audit(0, 10).unwrap().is_empty());
        let info = a.config_info().unwrap();
        assert_eq!((info.config_version, info.anchored), (Some(1), true));
        assert_eq!(a.approved_region().unwrap().unwrap().id(), "in");

        let src = s.files.join("new.jpg");
        std::fs::write(&src, b"new").unwrap();
        let su = ErrorKind::StorageUnavailable;
        assert_kind(a.enqueue(&src, "backup", 0), su, "enqueue");
        assert_kind(a.remove(s.ids[0]), su, "remove");
        assert_kind(a.set_account_country("SG"), su, "set_account_country");
        assert_kind(a.install(&s.world.config_envelope(2)), su, "install");
        assert_kind(a.retry_dead(), su, "retry_dead");
        assert_kind(
            a.run_once(Duration::from_secs(10), &mut |_| true),
            su,
            "run_once",
        );
        assert_eq!(a.config_info().unwrap().config_version, Some(1));

        // A newer firmware root changes the trust: held in memory, not written.
        let newer = Agent::open_with(&s.db, Some(&s.root_v2()), s.options()).unwrap();
        assert_eq!(newer.config_info().unwrap().root_version, 2);
        assert_kind(
            newer.run_once(Duration::from_secs(10), &mut |_| true),
            su,
            "run_once v2",
        );

        // The CLI: reads work, a run fails with the exact kind.
        let st = process::json(&s.cli(&["status", "--json"]));
        assert_eq!(process::count(&st, "pending"), 2);
        process::fails_with(&s.cli(&["run"]), "storage_unavailable");

        assert_eq!(s.requests(), 0, "nothing was sent");
        assert!(
            std::fs::read(&s.db).unwrap() == before,
            "the file is unchanged"
        );
        drop((a, newer));
        drop(_ro);
        assert_eq!(integrity(&s.db), "ok");
        let a = s.open().unwrap();
        assert_eq!(a.stats().unwrap().pending, 2);
        assert_eq!(a.config_info().unwrap().root_version, 1);
    });
}

#[test]
fn a_read_only_directory_reads_only_through_existing_wal_and_shm() {
    bounded(TEST_LIMIT, "the test", || {
        let dbdir = tempfile::tempdir().unwrap();
        let s = Setup::new(Some(dbdir.path()), 2, 1000);
        let su = ErrorKind::StorageUnavailable;

        // Closed cleanly (no -wal, no -shm) in a directory nothing can be
        // created in: SQLite cannot read a WAL database there.
        {
            let Some(_ro) = ReadOnly::set(&[&s.db, dbdir.path()]) else {
                eprintln!("SKIPPED: cannot make a directory read-only here (chattr +i / chmod)");
                return;
            };
            assert_kind(s.open(), su, "Agent::open");
            assert_kind(Agent::open_existing(&s.db), su, "Agent::open_existing");
            assert_kind(Db::open(&s.db), su, "Db::open");
            process::fails_with(&s.cli(&["status"]), "storage_unavailable");
            assert!(sidecars(&s.db).is_empty());
        }

        // Another process has the file open: its -wal and -shm exist, and
        // reads work even with all four read-only.
        let other = Sqlite3::keep_open(&s.db);
        let wal = PathBuf::from(format!("{}-wal", s.db.display()));
        let shm = PathBuf::from(format!("{}-shm", s.db.display()));
        {
            let Some(_ro) = ReadOnly::set(&[&s.db, &wal, &shm, dbdir.path()]) else {
                eprintln!("SKIPPED: cannot make the -wal/-shm read-only here");
                return;
            };
            let a = s.open().expect("reads through the existing -wal and -shm");
            assert_eq!(a.stats().unwrap().pending, 2);
            assert_eq!(a.list(None, 0, 10).unwrap().len(), 2);
            assert_eq!(a.config_info().unwrap().config_version, Some(1));
            assert_kind(a.remove(s.ids[1]), su, "remove");
            assert_kind(
                a.run_once(Duration::from_secs(10), &mut |_| true),
                su,
                "run_once",
            );
            let st = process::json(&s.cli(&["status", "--json"]));
            assert_eq!(process::count(&st, "pending"), 2);
        }
        other.release();
        assert_eq!(s.requests(), 0, "nothing was sent");
        assert_eq!(s.open().unwrap().stats().unwrap().pending, 2);
    });
}

// ------------------------------------------------------------ full disk

#[test]
fn a_full_disk_at_open_is_storage_full_and_reads_work_where_sqlite_can_serve_them() {
    bounded(TEST_LIMIT, "the test", || {
        let base = tempfile::tempdir().unwrap();
        let Some(disk) = Tmpfs::mount(&base.path().join("small"), "1m") else {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
            return;
        };
        let s = Setup::new(Some(&disk.0), 3, 1000);
        let filler = disk.fill();

        // No -shm yet and no page left to make one: nothing can be read.
        let full = ErrorKind::StorageFull;
        assert_kind(s.open(), full, "Agent::open");
        assert_kind(Agent::open_existing(&s.db), full, "Agent::open_existing");
        process::fails_with(&s.cli(&["status"]), "storage_full");

        // Another process has the file open (its -shm exists): reads work,
        // writes are `storage_full`, a run sends nothing.
        std::fs::remove_file(&filler).unwrap();
        let _ = std::fs::remove_file(format!("{}-shm", s.db.display()));
        let other = Sqlite3::keep_open(&s.db);
        let filler = disk.fill();
        let a = s.open().expect("opens with the -shm in place");
        assert_eq!(a.stats().unwrap().pending, 3);
        assert_eq!(a.list(None, 0, 10).unwrap().len(), 3);
        assert_eq!(a.config_info().unwrap().config_version, Some(1));
        let src = s.files.join("new.jpg");
        std::fs::write(&src, b"new").unwrap();
        assert_kind(a.enqueue(&src, "backup", 0), full, "enqueue");
        assert_kind(
            a.run_once(Duration::from_secs(10), &mut |_| true),
            full,
            "run_once",
        );
        let st = process::json(&s.cli(&["status", "--json"]));
        assert_eq!(process::count(&st, "pending"), 3);
        assert_eq!(s.requests(), 0, "nothing was sent");

        // Space again: everything is there and the queue works.
        std::fs::remove_file(&filler).unwrap();
        drop(a);
        other.release();
        assert_eq!(integrity(&s.db), "ok");
        let a = s.open().unwrap();
        assert_eq!(a.stats().unwrap().pending, 3);
        a.enqueue(&src, "backup", 0).unwrap();
        drop(a);
        drop(s);
        drop(disk);
    });
}

#[test]
fn a_disk_that_fills_up_mid_run_is_storage_full_without_a_half_written_row_or_a_stuck_item() {
    bounded(TEST_LIMIT, "the test", || {
        let base = tempfile::tempdir().unwrap();
        let Some(disk) = Tmpfs::mount(&base.path().join("small"), "2m") else {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
            return;
        };
        let s = Setup::new(Some(&disk.0), 1, 4 * 1024 * 1024);
        let server = &s.world.servers["in"];
        for _ in 0..200 {
            server.push_fault(Fault::Delay(Duration::from_millis(50)));
        }
        let a = s.open().unwrap();
        // The disk fills up while the item is being sent (another app's download).
        let disk_dir = disk.0.clone();
        let mut filled = None;
        let t = Instant::now();
        let r = a.run_with_events(Duration::from_secs(60), &mut |e| {
            if let (RunEvent::Progress(p), None) = (e, &filled) {
                if p.sent > 0 {
                    filled = Some(fill(&disk_dir));
                }
            }
            true
        });
        eprintln!(
            "mid-run full disk: {r:?} after {:.2} s",
            t.elapsed().as_secs_f64()
        );
        assert!(filled.is_some(), "the run never sent a byte");
        assert_kind(r, ErrorKind::StorageFull, "run_with_events");
        let uploads = server.uploads();
        assert_eq!(uploads.len(), 1);
        assert!(!uploads[0].complete, "stopped mid-item");

        // Every transaction was all or nothing: the file is sound and its
        // counters agree with its rows; the item is claimed or pending.
        assert_eq!(integrity(&s.db), "ok");
        {
            let c = Connection::open_with_flags(&s.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
            assert_eq!(ops::stats(&c).unwrap(), ops::stats_by_scan(&c).unwrap());
        }
        let state = a.item(s.ids[0]).unwrap().state;
        assert!(
            matches!(state, State::Uploading | State::Pending),
            "{state}"
        );

        // Space again: the next run takes the item over and finishes it once.
        std::fs::remove_file(filled.unwrap()).unwrap();
        server.clear_faults();
        let t = Instant::now();
        let report = loop {
            match a.run_once(Duration::from_secs(60), &mut |_| true) {
                Err(e) if e.kind() == ErrorKind::Busy && t.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => break other.unwrap(),
            }
        };
        assert_eq!((report.uploaded, report.stopped), (1, StopReason::Drained));
        assert_eq!(
            server.stats().uploads_created,
            1,
            "resumed, not uploaded twice"
        );
        let up = &server.uploads()[0];
        assert!(up.complete);
        assert!(server.upload_bytes(&up.id).unwrap() == std::fs::read(s.files.join("f0")).unwrap());
        assert_eq!(a.audit(0, 10).unwrap().len(), 1);
        assert_eq!(a.stats().unwrap().uploading, 0);
        drop(a);
        drop(s);
        drop(disk);
    });
}
