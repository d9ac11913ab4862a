//! The peer of a Unix socket as a pidfd (`SO_PEERPIDFD`, Linux 6.5) and its cgroup id
//! (`PIDFD_GET_INFO`, Linux 6.13): what `--audit` can still learn of a peer whose `/proc`
//! directory is hidden (`hidepid=invisible`, systemd's `ProtectProc=invisible`, for a daemon
//! running as another user than the peer), without CAP_SYS_PTRACE; and whether that process
//! still runs, which is what makes a read by its pid number trustworthy (a pid is not reused
//! while its process, or its zombie, holds it).

use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};

use rustix::ioctl::{Opcode, Updater, opcode};

/// `struct pidfd_info` as Linux 6.13 defines it (`PIDFD_INFO_SIZE_VER0`, 64 bytes); later
/// kernels append fields, which a 64-byte argument does not ask for.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[doc(alias = "pidfd_info")]
pub struct PidfdInfo {
    pub mask: u64,
    pub cgroupid: u64,
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub ruid: u32,
    pub rgid: u32,
    pub euid: u32,
    pub egid: u32,
    pub suid: u32,
    pub sgid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
    pub spare0: u32,
}

/// `PIDFD_GET_INFO`: `_IOWR(0xFF, 11, struct pidfd_info)`.
pub const PIDFD_GET_INFO: Opcode = opcode::read_write::<PidfdInfo>(0xFF, 11);
/// `PIDFD_INFO_CGROUPID`: ask for (and, in the answer, have) the cgroup v2 id.
const PIDFD_INFO_CGROUPID: u64 = 1 << 2;
/// `SO_PEERPIDFD` (asm-generic; the same on every architecture this builds for).
const SO_PEERPIDFD: libc::c_int = 77;

/// A pidfd of the process that connected `sock`.
///
/// # Errors
/// `ENOPROTOOPT` before Linux 6.5; `ESRCH` when the peer is gone.
pub fn peer_pidfd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes (one c_int) into `fd`, a valid, exclusively
    // borrowed c_int, and its new length into `len`; both outlive the call.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&raw mut fd).cast(),
            &raw mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: the kernel just installed `fd` in this process's table for the caller to own
    // (it is close-on-exec); nothing else refers to the number.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `PIDFD_GET_INFO` asking for `mask`; the answer's mask says what it holds.
///
/// # Errors
/// `ENOTTY`/`EINVAL` before Linux 6.13; `ESRCH` when the process is gone (reaped).
fn pidfd_info(pidfd: BorrowedFd<'_>, mask: u64) -> io::Result<PidfdInfo> {
    let mut info = PidfdInfo {
        mask,
        ..PidfdInfo::default()
    };
    // SAFETY: `Updater` hands the kernel a pointer to `info`, a valid, exclusively borrowed
    // 64-byte `pidfd_info`, which PIDFD_GET_INFO reads (mask) and fills, as its size says.
    let ioctl = unsafe { Updater::<PIDFD_GET_INFO, PidfdInfo>::new(&mut info) };
    // SAFETY: PIDFD_GET_INFO is synchronous and keeps no pointer after it returns; `info`
    // lives until then.
    unsafe { rustix::ioctl::ioctl(pidfd, ioctl) }?;
    Ok(info)
}

/// The process's cgroup v2 id, which is the inode number of its directory under the
/// unified hierarchy's mount.
///
/// # Errors
/// `ENOTTY`/`EINVAL` before Linux 6.13; `ESRCH` when the process is gone; `ENODATA` when
/// the kernel did not report a cgroup id.
pub fn cgroup_id(pidfd: BorrowedFd<'_>) -> io::Result<u64> {
    let info = pidfd_info(pidfd, PIDFD_INFO_CGROUPID)?;
    if info.mask & PIDFD_INFO_CGROUPID == 0 {
        return Err(io::Error::from_raw_os_error(libc::ENODATA));
    }
    Ok(info.cgroupid)
}

/// Whether the process of `pidfd` still holds its pid (running, or a zombie not yet reaped).
/// `PIDFD_GET_INFO` (Linux 6.13) answers ESRCH once it is gone. Before 6.13,
/// `pidfd_send_signal` with signal 0, which checks and sends nothing: ESRCH once gone, EPERM
/// for a process of another user (a daemon under `-u`), which is there. (PIDFD_GET_INFO
/// first because an EPERM can also be a seccomp filter's answer, systemd's
/// `SystemCallErrorNumber=EPERM`, for a process gone or not.)
///
/// # Errors
/// pidfd_send_signal's other failures (ENOSYS before Linux 5.1, EBADF for no pidfd).
pub fn holds_its_pid(pidfd: BorrowedFd<'_>) -> io::Result<bool> {
    match pidfd_info(pidfd, 0) {
        Ok(_) => return Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(false),
        Err(_) => {} // before 6.13
    }
    holds_its_pid_by_signal(pidfd)
}

/// [`holds_its_pid`] before Linux 6.13: `pidfd_send_signal` with signal 0.
fn holds_its_pid_by_signal(pidfd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: pidfd_send_signal(fd, 0, NULL, 0) reads no memory (the siginfo pointer is null)
    // and sends no signal; `pidfd` is a valid descriptor for the call's duration.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EPERM) => Ok(true),
        Some(libc::ESRCH) => Ok(false),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd as _;

    #[test]
    fn pidfd_info_is_the_kernels_64_byte_version_0() {
        assert_eq!(std::mem::size_of::<PidfdInfo>(), 64);
        assert_eq!(crate::sys::ioctl_request(PIDFD_GET_INFO), 0xC040_FF0B);
    }

    #[test]
    fn own_socket_peer_and_cgroup_id_where_the_kernel_has_them() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let pidfd = match peer_pidfd(a.as_fd()) {
            Ok(fd) => fd,
            // Before 6.5: nothing to check.
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => return,
            Err(e) => panic!("SO_PEERPIDFD: {e}"),
        };
        match cgroup_id(pidfd.as_fd()) {
            // The unified hierarchy's ids start at 1 (its root).
            Ok(id) => assert!(id >= 1),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EINVAL)) => {}
            Err(e) => panic!("PIDFD_GET_INFO: {e}"),
        }
    }

    #[test]
    fn a_reaped_process_no_longer_holds_its_pid() {
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap();
        // Both ways: PIDFD_GET_INFO where the kernel has it (6.13), the signal 0 before.
        assert!(holds_its_pid(pidfd.as_fd()).unwrap(), "running");
        assert!(holds_its_pid_by_signal(pidfd.as_fd()).unwrap(), "running");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!holds_its_pid(pidfd.as_fd()).unwrap(), "reaped");
        assert!(!holds_its_pid_by_signal(pidfd.as_fd()).unwrap(), "reaped");
    }
}
