//! Who is on the other end of a connection: SO_PEERCRED's pid, uid and gid, and what
//! `/proc/PID` says of that process (its name, its cgroup, its VM).
//!
//! A pid number can be reused once its process is gone, so a read by number alone could
//! describe another process. Where the kernel gives the peer's pidfd (`SO_PEERPIDFD`, Linux
//! 6.5), `/proc/PID` is opened first and the pidfd asked afterwards whether its process still
//! holds the pid: if it does, the directory opened was that process's, and the files read
//! through it stay that process's (a `/proc/PID` directory is bound to the process, not to the
//! number). If it does not, nothing is read. The record says which way the peer was read
//! ([`PeerRead`]).
//!
//! The VM's name comes from the cgroup when it is a libvirt machine scope, which the peer
//! cannot change; else from QEMU's `-name` on its command line, which the peer wrote itself
//! (a process can rewrite its own argv), so the record marks it as a claim ([`VmSource`]).

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use super::cgroup::{cgroup_by_id, cgroup_path, vm_from_cgroup};
use crate::sys::pidfd;

/// Bytes of a peer's `/proc/PID/cmdline` read at most (QEMU's command lines are long).
const CMDLINE_MAX: usize = 64 * 1024;

/// How the peer's `/proc` files were read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PeerRead {
    /// Checked with the peer's pidfd: they are that process's (`pidfd`).
    Pidfd,
    /// By pid number only, the kernel having no `SO_PEERPIDFD` (before 6.5): a process that
    /// exited and whose pid was reused could have answered (`pid`).
    Pid,
    /// Not read: the process was gone (`gone`); the record has SO_PEERCRED's numbers only.
    #[default]
    Gone,
}

impl PeerRead {
    /// The record's word for it.
    pub fn word(self) -> &'static str {
        match self {
            PeerRead::Pidfd => "pidfd",
            PeerRead::Pid => "pid",
            PeerRead::Gone => "gone",
        }
    }
}

/// Where a VM's name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmSource {
    /// A libvirt machine scope in the peer's cgroup path: set by libvirt, not by the peer.
    Cgroup,
    /// QEMU's `-name` on the peer's command line: what the peer says of itself.
    Cmdline,
}

impl VmSource {
    /// The record's word for it.
    pub fn word(self) -> &'static str {
        match self {
            VmSource::Cgroup => "cgroup",
            VmSource::Cmdline => "cmdline",
        }
    }
}

/// A VM's name and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vm {
    pub name: String,
    pub source: VmSource,
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    /// `/proc/PID/comm`.
    pub comm: Option<String>,
    /// The peer's cgroup (v2, else v1's systemd hierarchy).
    pub cgroup: Option<String>,
    /// The VM's name: from a libvirt machine scope, else QEMU's `-name`.
    pub vm: Option<Vm>,
    /// How the files were read.
    pub read: PeerRead,
}

/// What `/proc/PID` gave.
#[derive(Debug, Default)]
struct ProcFiles {
    comm: Option<String>,
    cgroup: Option<String>,
    cmdline: Option<Vec<u8>>,
}

impl Peer {
    /// The peer of `sock`, its files under `proc_root` (`/proc`), or, when `/proc` hides it
    /// (hidepid, as `ProtectProc=invisible` does for a daemon under `-u` and a peer of
    /// another user), its cgroup from its pidfd's cgroup id and the unified hierarchy under
    /// `cgroup_root` (`/sys/fs/cgroup`).
    pub fn of_socket(sock: BorrowedFd<'_>, proc_root: &Path, cgroup_root: &Path) -> Peer {
        let Ok(cred) = rustix::net::sockopt::socket_peercred(sock) else {
            return Peer::default();
        };
        let (pid, uid, gid) = (
            cred.pid.as_raw_nonzero().get(),
            cred.uid.as_raw(),
            cred.gid.as_raw(),
        );
        match pidfd::peer_pidfd(sock) {
            Ok(fd) => Peer::through_pidfd(fd.as_fd(), pid, uid, gid, proc_root, cgroup_root),
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {
                Peer::by_pid(pid, uid, gid, proc_root)
            }
            // ESRCH or EINVAL: the peer was gone before it could be named.
            Err(_) => Peer {
                pid,
                uid,
                gid,
                ..Peer::default()
            },
        }
    }

    /// The peer `pid` (uid, gid), read only if `pidfd`, its process, still holds that pid
    /// once `proc_root/PID` is open: a pid reused meanwhile yields no identity. When the
    /// directory cannot be opened, the cgroup comes from the pidfd (checked the same way).
    pub fn through_pidfd(
        pidfd: BorrowedFd<'_>,
        pid: i32,
        uid: u32,
        gid: u32,
        proc_root: &Path,
        cgroup_root: &Path,
    ) -> Peer {
        let gone = Peer {
            pid,
            uid,
            gid,
            ..Peer::default()
        };
        let dir = open_proc_dir(proc_root, pid);
        // After the open: a process that still holds the pid held it at the open.
        if !pidfd::holds_its_pid(pidfd).unwrap_or(false) {
            return gone;
        }
        let mut files = dir.map(|d| read_proc(d.as_fd())).unwrap_or_default();
        if files.cgroup.is_none() {
            // /proc hidden: the cgroup v2 id of the pidfd (ESRCH when the process is gone).
            files.cgroup = pidfd::cgroup_id(pidfd)
                .ok()
                .and_then(|id| cgroup_by_id(cgroup_root, id));
        }
        Peer {
            read: PeerRead::Pidfd,
            ..Peer::from_files(pid, uid, gid, files)
        }
    }

    /// The peer `pid` (uid, gid) read by its number alone, for a kernel without
    /// `SO_PEERPIDFD`: marked [`PeerRead::Pid`].
    pub fn by_pid(pid: i32, uid: u32, gid: u32, proc_root: &Path) -> Peer {
        let files = open_proc_dir(proc_root, pid)
            .map(|d| read_proc(d.as_fd()))
            .unwrap_or_default();
        Peer {
            read: PeerRead::Pid,
            ..Peer::from_files(pid, uid, gid, files)
        }
    }

    /// The peer from its files: the cgroup's VM name wins over the command line's.
    fn from_files(pid: i32, uid: u32, gid: u32, files: ProcFiles) -> Peer {
        let verified = files
            .cgroup
            .as_deref()
            .and_then(vm_from_cgroup)
            .map(|name| Vm {
                name,
                source: VmSource::Cgroup,
            });
        let claimed = || {
            let name = vm_from_cmdline(files.cmdline.as_deref()?)?;
            Some(Vm {
                name,
                source: VmSource::Cmdline,
            })
        };
        let vm = verified.or_else(claimed);
        Peer {
            pid,
            uid,
            gid,
            comm: files.comm,
            cgroup: files.cgroup,
            vm,
            read: PeerRead::Gone,
        }
    }
}

/// `proc_root/PID`, opened as a directory (the files under it are read relative to it).
fn open_proc_dir(proc_root: &Path, pid: i32) -> Option<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rustix::fs::open(proc_root.join(pid.to_string()), flags, Mode::empty()).ok()
}

/// `comm`, `cgroup` and `cmdline` under a `/proc/PID` directory.
fn read_proc(dir: BorrowedFd<'_>) -> ProcFiles {
    let read = |name: &str, max: usize| read_at(dir, name, max);
    ProcFiles {
        comm: read("comm", 64).map(|b| String::from_utf8_lossy(&b).trim_end().to_owned()),
        cgroup: read("cgroup", 16 * 1024)
            .and_then(|b| cgroup_path(&String::from_utf8_lossy(&b)).map(str::to_owned)),
        cmdline: read("cmdline", CMDLINE_MAX),
    }
}

/// A small file under `dir`, read with the calls the sandbox allows (read-only openat, read).
fn read_at(dir: BorrowedFd<'_>, name: &str, max: usize) -> Option<Vec<u8>> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).ok()?;
    super::read_all(&fd, max)
}

/// QEMU's `-name` from a NUL-separated command line: `-name NAME`, `-name guest=NAME,...` or
/// `-name NAME,process=...` (QemuOpts: `,,` is a literal comma), `--name` alike.
pub fn vm_from_cmdline(cmdline: &[u8]) -> Option<String> {
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let at = args
        .iter()
        .position(|a| *a == b"-name" || *a == b"--name")?;
    let value = String::from_utf8_lossy(args.get(at + 1)?);
    let items = qemu_opts_items(&value);
    let name = items
        .iter()
        .find_map(|item| item.strip_prefix("guest="))
        .map(str::to_owned)
        .or_else(|| items.first().filter(|i| !i.contains('=')).cloned())?;
    (!name.is_empty()).then_some(name)
}

/// A QemuOpts string split at single commas, `,,` standing for a comma (a command line
/// argument holds no NUL, which stands for it meanwhile).
fn qemu_opts_items(value: &str) -> Vec<String> {
    let value = value.replace(",,", "\0");
    value
        .split(',')
        .map(|item| item.replace('\0', ","))
        .collect()
}
