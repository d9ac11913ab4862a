//! The pidfile, written and locked as QEMU's `qemu_write_pidfile` does, and removed at exit.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};

use super::Error;

/// A written pidfile; the lock lives as long as this value, and dropping it removes the file
/// (while the lock is still held, and only if the path still names the file we locked).
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
    _locked: OwnedFd,
    /// The locked file's identity, to remove only that file at exit.
    ino: u64,
    dev: u64,
}

impl Pidfile {
    /// Where it was written (the sandbox lets the daemon remove it there at exit).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates or opens `path`, takes a POSIX write lock on it (the lock the C helper takes,
    /// so the two refuse each other), checks it was not replaced meanwhile, and writes our pid.
    ///
    /// # Errors
    /// Open, lock (another instance holds it), truncate or write failures.
    pub fn write(path: &Path) -> Result<Pidfile, Error> {
        loop {
            let fd = rustix::fs::open(
                path,
                OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
                Mode::from(0o600),
            )
            .map_err(|e| Error::PidfileOpen(path.to_owned(), e.into()))?;
            // A lock that fails leaves the file alone: it is most likely another instance's.
            rustix::fs::fcntl_lock(&fd, FlockOperation::NonBlockingLockExclusive)
                .map_err(|e| Error::PidfileLock(e.into()))?;
            let opened = rustix::fs::fstat(&fd)
                .map_err(|e| Error::PidfileOpen(path.to_owned(), e.into()))?;
            // Another process may have unlinked or replaced the file between open and lock.
            match rustix::fs::stat(path) {
                Ok(now) if now.st_ino == opened.st_ino && now.st_dev == opened.st_dev => {}
                _ => continue,
            }
            let content = format!("{}\n", rustix::process::getpid().as_raw_nonzero());
            let result = rustix::fs::ftruncate(&fd, 0)
                .map_err(|e| Error::PidfileTruncate(e.into()))
                .and_then(|()| match rustix::io::write(&fd, content.as_bytes()) {
                    Ok(n) if n == content.len() => Ok(()),
                    Ok(_) => Err(Error::PidfileWrite(std::io::ErrorKind::WriteZero.into())),
                    Err(e) => Err(Error::PidfileWrite(e.into())),
                });
            if let Err(e) = result {
                let _ = rustix::fs::unlink(path);
                return Err(e);
            }
            return Ok(Pidfile {
                path: path.to_owned(),
                _locked: fd,
                ino: opened.st_ino,
                dev: opened.st_dev,
            });
        }
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        // Removed at every exit after it was written (the C helper leaves it behind).
        // The sandbox allows stat and unlink for this.
        let ours = rustix::fs::stat(&self.path)
            .is_ok_and(|now| now.st_ino == self.ino && now.st_dev == self.dev);
        if ours {
            let _ = rustix::fs::unlink(&self.path);
        }
    }
}
