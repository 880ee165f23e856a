//! Issue 21, point 5: never through a symbolic link. A link at a queued path
//! (put there before the run, or swapped in during an upload) fails the item
//! with `invalid_argument` and not one byte of its target reaches a server
//! (counted by the dev server itself); enqueue refuses a link, storing
//! nothing; the CLI refuses a `--token-file` that is a link or that group or
//! others can read. Real files, real TLS servers on loopback; every run and
//! every `cloudsync` invocation has its own time limit.

use cloudsync_testkit::cli;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cloudsync::{Agent, ErrorKind, StopReason};
use cloudsync_devserver::world::{standard_regions, World};

use cli::{err, golden, run_within, s, write_private, STEP_LIMIT};

const LINK_ERROR: &str = "the queued path is a symbolic link";
/// What the link points to: bytes that must never leave the device.
const PRIVATE: &[u8] = b"PRIVATE: not the queued file, never to be uploaded";

struct Env {
    dir: tempfile::TempDir,
    world: World,
    agent: Agent,
}

fn env(chunk: u64) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(&dir.path().join("servers"), standard_regions(&["in"])).unwrap();
    let mut opts = world.agent_options();
    opts.upload.chunk_size = chunk;
    let agent =
        Agent::open_with(dir.path().join("q.db"), Some(&world.root_envelope), opts).unwrap();
    agent.install(&world.config_envelope(1)).unwrap();
    agent.set_account_country("IN").unwrap();
    Env { dir, world, agent }
}

fn file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// Replaces the file at `path` by a link to `target` (the file moves aside).
fn swap_in_link(path: &Path, target: &Path) {
    std::fs::rename(path, path.with_extension("aside")).unwrap();
    symlink(target, path).unwrap();
}

/// No upload on the server holds the private file's bytes.
fn private_never_sent(world: &World) {
    let server = &world.servers["in"];
    for u in server.uploads() {
        let bytes = server.upload_bytes(&u.id).unwrap();
        assert!(
            !bytes.windows(PRIVATE.len()).any(|w| w == PRIVATE),
            "the link's target reached the server"
        );
    }
}

#[test]
fn a_source_replaced_by_a_symlink_before_the_run_fails_and_nothing_is_sent() {
    let e = env(1024 * 1024);
    let private = file(e.dir.path(), "private", PRIVATE);
    let photo = file(e.dir.path(), "photo.jpg", &[7u8; 200_000]);
    let id = e.agent.enqueue(&photo, "backup", 0).unwrap();
    swap_in_link(&photo, &private);

    let r = e
        .agent
        .run_once(Duration::from_secs(60), &mut |_| true)
        .unwrap();
    assert_eq!(
        (
            r.uploaded,
            r.failed,
            r.dead,
            r.bytes,
            r.remaining,
            r.stopped
        ),
        (0, 1, 1, 0, 0, StopReason::Drained),
        "{r:?}"
    );
    let it = e.agent.item(id).unwrap();
    assert_eq!(
        (
            it.state.as_str(),
            it.attempts,
            it.last_error.as_deref(),
            it.last_error_kind.map(|k| k.name())
        ),
        (
            "dead",
            1,
            Some("invalid_argument: the queued path is a symbolic link"),
            Some("invalid_argument")
        )
    );
    let st = e.world.servers["in"].stats();
    assert_eq!(
        (
            st.body_bytes_received,
            st.uploads_created,
            st.uploads_completed
        ),
        (0, 0, 0),
        "{st:?}"
    );
    assert!(e.world.servers["in"].uploads().is_empty());
    assert!(e.agent.audit(0, 10).unwrap().is_empty());

    // Retried after the link is gone: the regular file at the path is a new
    // version, uploaded as any other.
    std::fs::remove_file(&photo).unwrap();
    std::fs::write(&photo, b"the real photo").unwrap();
    assert_eq!(e.agent.retry_dead().unwrap(), 1);
    let r = e
        .agent
        .run_once(Duration::from_secs(60), &mut |_| true)
        .unwrap();
    assert_eq!((r.uploaded, r.bytes), (1, 14), "{r:?}");
    let ups = e.world.servers["in"].uploads();
    assert_eq!(ups.len(), 1, "{ups:?}");
    let got = e.world.servers["in"].upload_bytes(&ups[0].id).unwrap();
    assert_eq!(got, b"the real photo");
    private_never_sent(&e.world);
}

#[test]
fn a_symlink_swapped_in_during_an_upload_fails_the_item_and_its_target_is_never_sent() {
    let e = env(64 * 1024);
    let private = file(e.dir.path(), "private", PRIVATE);
    let size = 2 * 1024 * 1024;
    let photo = file(e.dir.path(), "photo.jpg", &vec![9u8; size]);
    let id = e.agent.enqueue(&photo, "backup", 0).unwrap();

    let mut swapped = false;
    let r = e
        .agent
        .run_once(Duration::from_secs(60), &mut |p| {
            if !swapped && p.sent > 0 {
                swap_in_link(&photo, &private);
                swapped = true;
            }
            true
        })
        .unwrap();
    assert!(swapped, "the upload never started");
    assert_eq!(
        (r.uploaded, r.failed, r.dead, r.remaining),
        (0, 1, 1, 0),
        "{r:?}"
    );
    let it = e.agent.item(id).unwrap();
    assert_eq!(
        (it.state.as_str(), it.last_error.as_deref()),
        (
            "dead",
            Some("invalid_argument: the queued path is a symbolic link")
        )
    );
    let st = e.world.servers["in"].stats();
    assert_eq!(st.uploads_completed, 0, "{st:?}");
    assert!(
        st.body_bytes_received < size as u64,
        "only part of the queued file was sent: {st:?}"
    );
    private_never_sent(&e.world);
    assert!(e.agent.audit(0, 10).unwrap().is_empty());
}

#[test]
fn enqueue_refuses_a_symlink_and_stores_nothing() {
    let e = env(1024 * 1024);
    let private = file(e.dir.path(), "private", PRIVATE);
    let regular = file(e.dir.path(), "regular", b"fine");
    let link = e.dir.path().join("link");
    symlink(&private, &link).unwrap();
    let dangling = e.dir.path().join("dangling");
    symlink(e.dir.path().join("nothing-here"), &dangling).unwrap();

    for paths in [
        vec![link.clone()],
        vec![dangling],
        vec![regular.clone(), link.clone()],
    ] {
        let err = e.agent.enqueue_all(&paths, "backup", 0).unwrap_err();
        assert_eq!(
            (err.kind(), err.to_string().as_str()),
            (ErrorKind::InvalidArgument, LINK_ERROR),
            "{paths:?}"
        );
    }
    let stats = e.agent.stats().unwrap();
    assert_eq!(
        (
            stats.pending,
            stats.failed,
            stats.dead,
            stats.held,
            stats.pending_bytes
        ),
        (0, 0, 0, 0, 0),
        "all or none: {stats:?}"
    );
    assert!(e.agent.list(None, 0, 100).unwrap().is_empty());
    // A link in a parent directory is not the queued path's: allowed.
    let via = e.dir.path().join("via");
    symlink(e.dir.path(), &via).unwrap();
    e.agent.enqueue(via.join("regular"), "backup", 0).unwrap();
    assert_eq!(e.agent.stats().unwrap().pending, 1);
    untouched(&e.world);
}

fn untouched(world: &World) {
    let st = world.servers["in"].stats();
    assert_eq!((st.connections, st.app_bytes_received), (0, 0), "{st:?}");
}

/// `cloudsync --db DB ARGS` under the step limit: (exit code, stderr).
fn cloudsync(db: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["--db", s(db)];
    all.extend_from_slice(args);
    let o = run_within(&all, STEP_LIMIT);
    (o.status.code(), err(&o))
}

#[test]
fn cli_token_file_open_to_others_or_a_link_is_a_usage_error_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    const TOKEN: &str = "tok-5be1e0";
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("q.db");
    let (code, e) = cloudsync(&db, &["init", "--root", s(&golden("root_v1.json"))]);
    assert_eq!(code, Some(0), "{e}");
    let run = |tok: &Path| cloudsync(&db, &["run", "--max-seconds", "5", "--token-file", s(tok)]);

    let open = d.path().join("open.tok");
    write_private(&open, format!("{TOKEN}\n").as_bytes());
    for mode in [0o644, 0o640, 0o604, 0o620] {
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
        let p = s(&open);
        let how = if mode & 0o044 != 0 {
            "readable"
        } else {
            "accessible"
        };
        assert_eq!(
            run(&open),
            (
                Some(2),
                format!("error: --token-file {p} is {how} by group or others (chmod 600 {p})\n")
            ),
            "mode {mode:o}"
        );
    }

    // A link to a private token file: refused, never followed.
    let private = d.path().join("private.tok");
    write_private(&private, format!("{TOKEN}\n").as_bytes());
    let (code, e) = run(&private);
    assert!(
        code != Some(2) && !e.contains("token") && !e.contains(TOKEN),
        "a private file is read: {code:?} {e}"
    );
    let link = d.path().join("link.tok");
    symlink(&private, &link).unwrap();
    let p = s(&link);
    assert_eq!(
        run(&link),
        (
            Some(2),
            format!("error: --token-file {p} is a symbolic link\n")
        )
    );

    // A FIFO is refused without blocking; an oversized file without reading it all.
    let fifo = d.path().join("fifo.tok");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let p = s(&fifo);
    assert_eq!(
        run(&fifo),
        (
            Some(2),
            format!("error: --token-file {p} is not a regular file\n")
        )
    );
    let big = d.path().join("big.tok");
    write_private(&big, &vec![b'a'; 64 * 1024 + 1]);
    let p = s(&big);
    assert_eq!(
        run(&big),
        (
            Some(2),
            format!("error: --token-file {p} is larger than 64 KiB\n")
        )
    );
}

#[test]
fn cli_enqueue_of_a_symlink_names_it_and_stores_nothing() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("q.db");
    let (code, e) = cloudsync(&db, &["init", "--root", s(&golden("root_v1.json"))]);
    assert_eq!(code, Some(0), "{e}");
    let private = file(d.path(), "private", PRIVATE);
    let link = d.path().join("link");
    symlink(&private, &link).unwrap();
    assert_eq!(
        cloudsync(&db, &["enqueue", s(&link)]),
        (
            Some(1),
            format!("error: invalid_argument: {}: {LINK_ERROR}\n", s(&link))
        )
    );
    let o = run_within(&["--db", s(&db), "list", "--json"], STEP_LIMIT);
    assert_eq!(cli::out(&o).trim(), "[]");
}
