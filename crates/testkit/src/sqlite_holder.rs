//! Another process on the database: the `sqlite3` command-line shell (a
//! test dependency, installed by scripts/test.sh), fed through a pipe and
//! kept open, holding the write lock (`BEGIN IMMEDIATE`, optionally with an
//! uncommitted write: a long write in progress) or just the file open (its
//! `-wal` and `-shm` stay on disk). Killed when dropped, so a failing test
//! never leaves it behind; every wait on it has a deadline.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the shell may take to answer (it waits up to 10 s for the lock).
const ANSWER: Duration = Duration::from_secs(20);

pub struct Sqlite3 {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Holds a transaction (rolled back at release).
    in_tx: bool,
}

impl Sqlite3 {
    /// `sqlite3 DB`, with `.bail on` (an error ends it) and a 10 s busy timeout.
    fn start(db: &Path) -> Sqlite3 {
        let mut child = Command::new("sqlite3")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("the sqlite3 shell is needed (scripts/test.sh installs it): {e}")
            });
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Sqlite3 {
            stdin: child.stdin.take(),
            child,
            lines,
            in_tx: false,
        };
        s.send(".bail on\n.timeout 10000\n");
        s
    }

    fn send(&mut self, sql: &str) {
        let stdin = self.stdin.as_mut().expect("shell still open");
        stdin.write_all(sql.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Runs `sql` and waits for the shell to print `marker` after it.
    fn run_until(&mut self, sql: &str, marker: &str) {
        self.send(&format!("{sql}\nSELECT '{marker}';\n"));
        let deadline = Instant::now() + ANSWER;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l == marker => return,
                Ok(_) => {}
                Err(e) => panic!("sqlite3 did not answer {sql:?} ({e:?}; exited: {:?})", {
                    self.child.try_wait()
                }),
            }
        }
    }

    /// Holds the write lock (`BEGIN IMMEDIATE`) once this returns.
    pub fn write_lock(db: &Path) -> Sqlite3 {
        let mut s = Sqlite3::start(db);
        s.run_until("BEGIN IMMEDIATE;", "locked");
        s.in_tx = true;
        s
    }

    /// A long write in progress: the write lock and rows written, not committed.
    pub fn long_write(db: &Path, sql: &str) -> Sqlite3 {
        let mut s = Sqlite3::start(db);
        s.run_until(&format!("BEGIN IMMEDIATE;\n{sql}"), "written");
        s.in_tx = true;
        s
    }

    /// Keeps the database open (its `-wal` and `-shm` exist while it does),
    /// without a transaction.
    pub fn keep_open(db: &Path) -> Sqlite3 {
        let mut s = Sqlite3::start(db);
        s.run_until("SELECT count(*) FROM sqlite_master;", "open");
        s
    }

    /// Rolls back whatever it holds and exits (within [`ANSWER`]).
    pub fn release(mut self) {
        if self.in_tx {
            self.send("ROLLBACK;\n");
        }
        self.send(".quit\n");
        drop(self.stdin.take());
        let deadline = Instant::now() + ANSWER;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "sqlite3 did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Sqlite3 {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub use crate::timeouts::bounded;
