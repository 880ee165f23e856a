//! The file being uploaded: the version of it an upload is for.
//!
//! A torn upload (bytes of two versions on the server) must never be declared
//! done, even on a server without the checksum extension and with a writer
//! that restores the mtime. The fingerprint ([`SourcePrint`]) therefore takes
//! size, mtime, ctime, inode and device: a writer cannot set ctime back, and a
//! file replaced by rename has a new inode. It is taken when the file is
//! opened and compared with the path's again before every chunk and before the
//! upload is declared done. It is also stored with the session and its
//! idempotency key: a later run resumes a session, or retries a creation with
//! the same key, only for the same fingerprint.
//!
//! The bytes themselves are read once, by the pipeline (`super::pipeline`),
//! and the hash the audit records is taken from exactly the bytes sent.
//!
//! A symbolic link at the queued path is never followed (issue 21): it would
//! upload whatever file it points to, which is not the file that was queued.
//! The path is looked at with `lstat` and opened with `O_NOFOLLOW`, so a link
//! put there at any time fails the item with [`Error::SourceSymlink`] before
//! one byte of its target is read; one swapped in during an upload changes the
//! fingerprint (the link's own inode), and the reopening refuses it.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::queue::ops::{SourceMeta, SourcePrint};

/// Whether the file at the path is still the one being uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceState {
    /// Same fingerprint.
    Same,
    /// Written to, truncated, or replaced.
    Changed,
    /// No file at the path any more.
    Gone,
}

/// An open source file and the fingerprint of the version being uploaded.
pub(super) struct Source<'p> {
    path: &'p Path,
    /// Read for every body: a rename over the path cannot swap the bytes under
    /// a pass (the fingerprint check notices it instead).
    file: File,
    print: SourcePrint,
}

impl<'p> Source<'p> {
    /// Opens `path` without reading it. `SourceSymlink` if it is a symbolic
    /// link (never followed); `Rejected(413)` if it exceeds the server's
    /// `max_size`; `SourceChanged` if it changed while it was opened.
    pub fn open(path: &'p Path, max_size: Option<u64>) -> Result<Source<'p>> {
        // Checked before opening: opening a FIFO would block the run.
        let at_path = std::fs::symlink_metadata(path).map_err(|e| Error::SourceIo(e.kind()))?;
        if at_path.file_type().is_symlink() {
            return Err(Error::SourceSymlink);
        }
        if !at_path.is_file() {
            return Err(Error::InvalidArgument("path is not a regular file"));
        }
        // A link put there since the look fails the open (`ELOOP`).
        let file = open_nofollow(path)?;
        let md = file.metadata().map_err(|e| Error::SourceIo(e.kind()))?;
        let print = SourcePrint::of(&md);
        if SourcePrint::of(&at_path) != print {
            // Written to or replaced between the two looks.
            return Err(Error::SourceChanged);
        }
        if max_size.is_some_and(|max| print.meta.size > max) {
            return Err(Error::Rejected(413));
        }
        Ok(Source { path, file, print })
    }

    /// Size and mtime of the version being uploaded.
    pub fn meta(&self) -> SourceMeta {
        self.print.meta
    }

    /// The whole fingerprint of the version being uploaded.
    pub fn print(&self) -> &SourcePrint {
        &self.print
    }

    /// The open file (the pipeline reads a duplicate of it).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Compares the file at the path with the fingerprint (one `lstat`: a
    /// link put at the path is `Changed`, whatever it points to).
    pub fn state(&self) -> Result<SourceState> {
        match std::fs::symlink_metadata(self.path) {
            Ok(md) if SourcePrint::of(&md) == self.print => Ok(SourceState::Same),
            Ok(_) => Ok(SourceState::Changed),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SourceState::Gone),
            Err(e) => Err(Error::SourceIo(e.kind())),
        }
    }

    /// After the path was deleted: whether the open file still has the size and
    /// mtime it was opened with (deleting changes its ctime, writing its mtime).
    pub fn content_intact(&self) -> bool {
        self.file
            .metadata()
            .is_ok_and(|md| SourceMeta::of(&md) == self.print.meta)
    }
}

/// Opens `path` for reading without following a symbolic link in its last
/// component (`SourceSymlink` if there is one).
#[cfg(unix)]
fn open_nofollow(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Error::SourceSymlink,
            _ => Error::SourceIo(e.kind()),
        })
}

/// Hosts without `O_NOFOLLOW` (not a target today) rely on the `lstat` check.
#[cfg(not(unix))]
fn open_nofollow(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::SourceIo(e.kind()))
}

/// SHA-256 of a whole file, streamed (a utility for tests and tools; uploads
/// hash the bytes they send instead).
pub fn hash_file(path: &Path) -> Result<[u8; 32]> {
    let mut f = File::open(path).map_err(|e| Error::SourceIo(e.kind()))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; super::pipeline::BUF];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::SourceIo(e.kind()))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx
        .finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overwrite_that_restores_the_mtime_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"old content").unwrap();
        let src = Source::open(&p, None).unwrap();
        assert_eq!(src.state().unwrap(), SourceState::Same);
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        std::io::Write::write_all(&mut &f, b"new content").unwrap();
        f.set_times(std::fs::FileTimes::new().set_modified(mtime))
            .unwrap();
        drop(f);
        assert_eq!(SourceMeta::of(&std::fs::metadata(&p).unwrap()), src.meta());
        assert_eq!(src.state().unwrap(), SourceState::Changed, "ctime moved");
    }

    #[test]
    fn a_deleted_source_is_gone_and_its_open_file_tells_whether_it_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"content").unwrap();
        let src = Source::open(&p, None).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(src.state().unwrap(), SourceState::Gone);
        assert!(src.content_intact());
        std::fs::write(&p, b"content").unwrap();
        let src = Source::open(&p, None).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&p, b"more content").unwrap();
        std::fs::remove_file(&p).unwrap();
        assert!(!src.content_intact(), "written before it was deleted");
    }

    #[test]
    fn a_symlink_at_the_path_is_refused_and_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        std::fs::write(&private, b"private bytes").unwrap();
        let p = dir.path().join("f");
        std::os::unix::fs::symlink(&private, &p).unwrap();
        let e = Source::open(&p, None).err().expect("a link is refused");
        assert!(matches!(e, Error::SourceSymlink), "{e:?}");
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        assert_eq!(e.to_string(), "the queued path is a symbolic link");
        // Dangling, or to a directory: the same answer, whatever it points to.
        std::fs::remove_file(&private).unwrap();
        assert!(matches!(Source::open(&p, None), Err(Error::SourceSymlink)));
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(dir.path(), &p).unwrap();
        assert!(matches!(Source::open(&p, None), Err(Error::SourceSymlink)));
        // The open itself refuses a link put there after the look.
        assert!(matches!(open_nofollow(&p), Err(Error::SourceSymlink)));
        // Not a link, not a regular file: as before.
        let e = Source::open(dir.path(), None).err().expect("a directory");
        assert_eq!(
            e.to_string(),
            "invalid argument: path is not a regular file"
        );
    }

    #[test]
    fn a_symlink_swapped_in_during_an_upload_is_a_change_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"queued content").unwrap();
        let src = Source::open(&p, None).unwrap();
        // A link to the very file being uploaded, moved aside.
        let aside = dir.path().join("aside");
        std::fs::rename(&p, &aside).unwrap();
        std::os::unix::fs::symlink(&aside, &p).unwrap();
        assert_eq!(src.state().unwrap(), SourceState::Changed);
        assert!(matches!(Source::open(&p, None), Err(Error::SourceSymlink)));
        // A dangling link is there too: `Changed`, not `Gone` (following it
        // would find nothing).
        std::fs::remove_file(&aside).unwrap();
        assert!(std::fs::metadata(&p).is_err());
        assert_eq!(src.state().unwrap(), SourceState::Changed);
        std::fs::remove_file(&p).unwrap();
        assert_eq!(src.state().unwrap(), SourceState::Gone);
    }
}
