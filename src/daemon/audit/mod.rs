//! `--audit`: one record for every PR OUT (and, with `all`, every PR IN) naming who asked
//! (the peer process from SO_PEERCRED, its name, its VM), what (device, WWID, service action,
//! type, scope, keys, APTPL) and the outcome (status, sense in words, a multipath map's paths,
//! duration). Written after the reply is on its way, to stderr (the `-v` line format) or to
//! the journal's native socket with structured fields (`journalctl PR_VM=node2`).
//!
//! A record never delays or fails a command: the journal send is a non-blocking datagram (a
//! sealed memfd for one too large), stderr lines go through a bounded queue to a writer
//! thread, and a full or missing sink drops the record and counts it (STATUS= and the exit
//! message say how many). The peer's `/proc` files are read once per connection, when it
//! connects (it is certainly there then; no command waits for the reading), checked against
//! its pidfd where the kernel has one; the device's names after the reply of the first
//! command on it.
//!
//! One concern per file: [`peer`] (who, and how far that is to be believed), [`cgroup`] (the
//! cgroup path and the VM a libvirt machine scope names), [`device`] (sysfs and VPD names),
//! [`record`] (the record's fields and its line), [`journal`] (the native protocol and its
//! sink), [`stderr`] (the queued line sink); here the configuration and the sink in front.

mod cgroup;
mod device;
mod journal;
mod peer;
mod record;
mod stderr;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

pub use device::{DeviceInfo, device_info};
pub use journal::{JOURNAL_SOCKET, MalformedJournal, parse_journal_fields};
pub use peer::Peer;
pub use record::{MESSAGE_ID, Pending, Record};

use crate::protocol::CheckedCdb;

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// One line per record on stderr, as `-v` prints.
    Stderr,
    /// The journal's native protocol on this datagram socket.
    Journal(PathBuf),
}

/// What `--audit` needs of the sandbox: the peer's /proc files and the device's /sys files,
/// read-only; the peer's cgroup through its pidfd (`PIDFD_GET_INFO`) and a walk of
/// /sys/fs/cgroup (getdents64) when /proc hides it; whether the peer still holds its pid
/// (`pidfd_send_signal`, which the filter allows with signal 0 only); a record too large for
/// one journal datagram in a sealed memfd (`memfd_create`, then `fcntl`'s F_ADD_SEALS and
/// `sendmsg`, which the base list has).
pub fn sandbox_needs() -> super::sandbox::Needs {
    super::sandbox::Needs {
        syscalls: vec![
            libc::SYS_getdents64,
            libc::SYS_memfd_create,
            libc::SYS_pidfd_send_signal,
        ],
        ioctls: vec![crate::sys::ioctl_request(crate::sys::pidfd::PIDFD_GET_INFO)],
        read: vec!["/proc".into(), "/sys".into()],
        remove_in: Vec::new(),
    }
}

/// What `--audit[=WORD,...]` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub sink: Sink,
    /// PR IN too, not only PR OUT.
    pub all: bool,
}

impl Config {
    /// Reads the argument of `--audit`: none (PR OUT to stderr), or a comma-separated list of
    /// `stderr`, `journal`, `journal=PATH` (another socket: a relay, or a test), `out` and
    /// `all`; the last sink and the last of `out`/`all` win.
    ///
    /// # Errors
    /// An unknown word, or an empty path, as a message for the command line's error.
    pub fn parse(value: Option<&str>) -> Result<Config, String> {
        let mut config = Config {
            sink: Sink::Stderr,
            all: false,
        };
        for word in value.into_iter().flat_map(|v| v.split(',')) {
            match word {
                "stderr" => config.sink = Sink::Stderr,
                "journal" => config.sink = Sink::Journal(PathBuf::from(JOURNAL_SOCKET)),
                "all" => config.all = true,
                "out" => config.all = false,
                _ => match word.strip_prefix("journal=") {
                    Some(path) if path.starts_with('/') => config.sink = Sink::Journal(path.into()),
                    _ => {
                        return Err(format!(
                            "invalid --audit value '{word}': stderr, journal, journal=/PATH, \
                             out or all, separated by commas"
                        ));
                    }
                },
            }
        }
        Ok(config)
    }
}

/// Records written and dropped, shared with the stderr writer thread.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) written: AtomicU64,
    pub(super) dropped: AtomicU64,
}

/// A sink, opened.
#[derive(Debug)]
enum Opened {
    Stderr(stderr::StderrQueue),
    Journal(journal::JournalSocket),
}

/// The audit sink and its counters, shared by every thread.
#[derive(Debug)]
pub struct Audit {
    config: Config,
    prog: String,
    sink: Opened,
    counters: Arc<Counters>,
}

/// How long the exit waits for queued stderr lines to be written.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(2);

impl Audit {
    /// Opens the sink (a datagram socket for the journal; the queue for stderr, whose writer
    /// thread starts with the first record). Called during start-up, before the sandbox,
    /// which refuses `socket`.
    ///
    /// # Errors
    /// The socket could not be made, or the path is too long for a socket address.
    pub fn new(config: Config, prog: &str) -> io::Result<Audit> {
        let counters = Arc::new(Counters::default());
        let sink = match &config.sink {
            Sink::Stderr => Opened::Stderr(stderr::StderrQueue::new(
                stderr::Output::Stderr,
                Arc::clone(&counters),
            )),
            Sink::Journal(path) => Opened::Journal(journal::JournalSocket::open(path)?),
        };
        Ok(Audit {
            config,
            prog: prog.to_owned(),
            sink,
            counters,
        })
    }

    /// Whether a command gets a record.
    pub fn wants(&self, cdb: &CheckedCdb) -> bool {
        cdb.is_pr_out() || self.config.all
    }

    /// Records dropped so far (sink full, missing or refusing).
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Records written so far (for stderr: whose line was written out).
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Hands one record to the sink; false when it was dropped.
    pub fn emit(&self, record: &Record<'_>) -> bool {
        match &self.sink {
            // The writer thread counts what it writes; the queue what it drops.
            Opened::Stderr(queue) => record.encode(&self.prog, false, |line| queue.push(line)),
            Opened::Journal(socket) => {
                let sent = record.encode(&self.prog, true, |datagram| socket.send(datagram));
                let counter = if sent {
                    &self.counters.written
                } else {
                    &self.counters.dropped
                };
                counter.fetch_add(1, Ordering::Relaxed);
                sent
            }
        }
    }

    /// At exit: the stderr lines still queued are written (waiting a little for a slow
    /// reader), or counted as dropped.
    pub fn flush(&self) {
        if let Opened::Stderr(queue) = &self.sink {
            queue.flush(FLUSH_AT_EXIT);
        }
    }
}

/// A small file's bytes, read with the calls the sandbox allows (read-only openat, read);
/// `None` when it cannot be opened or read (a process that exited, a hidden one).
fn read_small(path: &Path, max: usize) -> Option<Vec<u8>> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    read_all(&fd, max)
}

/// At most `max` bytes of an open file, to its end; `None` on a read error.
fn read_all(fd: &OwnedFd, max: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; max];
    let mut got = 0;
    while got < max {
        match rustix::io::read(fd, &mut out[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::INTR) => {}
            Err(_) => return None,
        }
    }
    out.truncate(got);
    Some(out)
}

/// What the per-connection state keeps: the peer, and the last device's information.
#[derive(Debug, Default)]
pub struct ConnAudit {
    pub peer: Peer,
    pub device: Option<(u64, DeviceInfo)>,
}

/// The peer of a connection, read now: for [`ConnAudit`] when it connects.
pub fn conn_audit(sock: impl AsFd) -> ConnAudit {
    ConnAudit {
        peer: Peer::of_socket(
            sock.as_fd(),
            Path::new("/proc"),
            Path::new("/sys/fs/cgroup"),
        ),
        device: None,
    }
}

#[cfg(test)]
mod tests;
