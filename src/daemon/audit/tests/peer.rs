//! The peer: read through its pidfd, by pid where the kernel has none, and which VM name
//! wins.

use std::os::fd::{AsFd as _, OwnedFd};

use super::*;
use crate::daemon::audit::peer::{PeerRead, Vm, VmSource};

/// A fake `/proc` with one process `pid`: its comm, cgroup line and command line.
fn fake_proc(tag: &str, pid: i32, cgroup: &str, cmdline: &[u8]) -> TempDir {
    let root = TempDir::new(tag);
    let dir = root.0.join(pid.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("comm"), "qemu-system-x86\n").unwrap();
    std::fs::write(dir.join("cgroup"), format!("0::{cgroup}\n")).unwrap();
    std::fs::write(dir.join("cmdline"), cmdline).unwrap();
    root
}

/// A pidfd of this (running) process.
fn own_pidfd() -> OwnedFd {
    let pid = rustix::process::getpid();
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap()
}

const NODE2_SCOPE: &str = "/machine.slice/machine-qemu\\x2d2\\x2dnode2.scope/libvirt/emulator";

#[test]
fn a_forged_name_on_the_command_line_does_not_pass_for_the_cgroups() {
    // In node2's machine scope, but its argv says node1 (a process may rewrite its argv).
    let proc_root = fake_proc("forged", 4242, NODE2_SCOPE, b"qemu\0-name\0guest=node1\0");
    let pidfd = own_pidfd();
    let nowhere = Path::new("/nonexistent");
    let peer = Peer::through_pidfd(pidfd.as_fd(), 4242, 64055, 994, &proc_root.0, nowhere);
    assert_eq!(peer.read, PeerRead::Pidfd);
    assert_eq!(peer.comm.as_deref(), Some("qemu-system-x86"));
    assert_eq!(peer.cgroup.as_deref(), Some(NODE2_SCOPE));
    let verified = Vm {
        name: "node2".into(),
        source: VmSource::Cgroup,
    };
    assert_eq!(peer.vm, Some(verified));
}

#[test]
fn without_a_machine_scope_the_name_is_the_peers_claim() {
    let service = "/system.slice/qemu-node.service";
    let proc_root = fake_proc("claim", 4243, service, b"qemu\0-name\0guest=other\0");
    let pidfd = own_pidfd();
    let nowhere = Path::new("/nonexistent");
    let peer = Peer::through_pidfd(pidfd.as_fd(), 4243, 0, 0, &proc_root.0, nowhere);
    assert_eq!(peer.cgroup.as_deref(), Some(service));
    let claimed = Vm {
        name: "other".into(),
        source: VmSource::Cmdline,
    };
    assert_eq!(peer.vm, Some(claimed));
}

#[test]
fn a_pid_reused_after_its_process_exited_lends_no_identity() {
    let mut child = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let raw = rustix::process::Pid::from_raw(pid).unwrap();
    let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // The pid is free: here another process, in node2's machine scope, has it now.
    let proc_root = fake_proc("reused", pid, NODE2_SCOPE, b"qemu\0-name\0node2\0");
    let nowhere = Path::new("/nonexistent");
    let peer = Peer::through_pidfd(pidfd.as_fd(), pid, 107, 107, &proc_root.0, nowhere);
    let only_credentials = Peer {
        pid,
        uid: 107,
        gid: 107,
        read: PeerRead::Gone,
        ..Peer::default()
    };
    assert_eq!(peer, only_credentials);
    // The real /proc and cgroup tree alike, whoever holds the pid there now.
    let peer = Peer::through_pidfd(
        pidfd.as_fd(),
        pid,
        107,
        107,
        Path::new("/proc"),
        Path::new("/sys/fs/cgroup"),
    );
    assert_eq!(peer, only_credentials);
}

#[test]
fn without_a_pidfd_the_peer_is_read_by_pid_and_marked_so() {
    let proc_root = fake_proc("by-pid", 4244, NODE2_SCOPE, b"qemu\0");
    let peer = Peer::by_pid(4244, 1, 2, &proc_root.0);
    assert_eq!(peer.read, PeerRead::Pid);
    assert_eq!(peer.vm.map(|vm| vm.name).as_deref(), Some("node2"));
    // A pid that cannot exist: SO_PEERCRED's numbers only.
    let peer = Peer::by_pid(i32::MAX, 0, 0, Path::new("/proc"));
    let nothing_read = Peer {
        pid: i32::MAX,
        read: PeerRead::Pid,
        ..Peer::default()
    };
    assert_eq!(peer, nothing_read);
}

#[test]
fn this_process_as_its_own_peer_through_its_pidfd() {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let peer = Peer::of_socket(a.as_fd(), Path::new("/proc"), Path::new("/sys/fs/cgroup"));
    assert_eq!(peer.pid as u32, std::process::id());
    assert_eq!(peer.uid, rustix::process::getuid().as_raw());
    assert!(peer.comm.is_some());
    let kernel_has_pidfds = crate::sys::pidfd::peer_pidfd(a.as_fd()).is_ok();
    let read = if kernel_has_pidfds {
        PeerRead::Pidfd
    } else {
        PeerRead::Pid
    };
    assert_eq!(peer.read, read);
}
