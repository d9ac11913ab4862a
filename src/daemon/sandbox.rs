//! The sandbox, composed in one place: each feature states what it needs ([`Needs`]: system
//! calls, ioctl requests, files it reads or removes), and this module turns the enabled
//! features' needs into the seccomp filter ([`crate::sys::seccomp`]) and the Landlock
//! ruleset ([`crate::sys::landlock`]), then installs both.
//!
//! Who states what:
//! - the event loop's own calls: the base list in `sys/seccomp.rs`;
//! - the backends ([`crate::backend::sandbox_needs`]): the block PR ioctls, and for
//!   multipath maps device-mapper, multipathd, the path nodes and multipath.conf;
//! - `--audit` ([`super::audit::sandbox_needs`]): /proc and /sys;
//! - the daemon's shutdown ([`Features::remove`]): the socket's and the pidfile's directories;
//! - the path opener ([`crate::backend::multipath::opener::sandbox_needs`]): its own.
//!
//! Landlock is a second wall, never a reason not to start: a kernel without it (before 5.13,
//! or not in `lsm=`) gets the seccomp filter alone and a `-v` note says so. The seccomp filter
//! failing is fatal, as before.

use std::io;
use std::path::{Path, PathBuf};

use crate::backend::ExecOptions;
use crate::errors::strerror;
use crate::sys::landlock::{self, access};
use crate::sys::seccomp;

/// What one feature needs of the sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// System calls beyond the base list.
    pub syscalls: Vec<libc::c_long>,
    /// ioctl request numbers beyond SG_IO.
    pub ioctls: Vec<u32>,
    /// Trees (or single files) it opens read-only after start-up.
    pub read: Vec<PathBuf>,
    /// Directories in which it removes its own files at exit.
    pub remove_in: Vec<PathBuf>,
}

impl Needs {
    fn add(&mut self, other: Needs) {
        self.syscalls.extend(other.syscalls);
        self.ioctls.extend(other.ioctls);
        self.read.extend(other.read);
        self.remove_in.extend(other.remove_in);
    }
}

/// The daemon's features that shape its sandbox.
#[derive(Debug, Clone, Copy)]
pub struct Features<'a> {
    pub exec: &'a ExecOptions,
    pub audit: bool,
    /// A path opener serves the map's paths (`-u`): the daemon opens no node itself.
    pub path_opener: bool,
    /// Files the daemon removes at exit: the socket it published, its pidfile.
    pub remove: &'a [&'a Path],
}

/// A composed sandbox: the seccomp policy and the Landlock rules (a path and the rights
/// beneath it, each path once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub seccomp: seccomp::Policy,
    pub landlock: Vec<(PathBuf, u64)>,
}

/// The daemon's sandbox for `features`.
pub fn daemon(features: &Features<'_>) -> Sandbox {
    // glibc's malloc reads /sys/devices/system/cpu/online when threads first need arenas: it
    // copes when refused, and every feature that reads files reads /sys anyway.
    let mut needs = Needs {
        // The socket and the pidfile are unlinked at exit: their directories allow removal.
        remove_in: features
            .remove
            .iter()
            .map(|file| match file.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
                _ => PathBuf::from("."),
            })
            .collect(),
        ..Needs::default()
    };
    needs.add(crate::backend::sandbox_needs(
        features.exec,
        features.path_opener,
    ));
    if features.audit {
        needs.add(super::audit::sandbox_needs());
    }
    compose(needs, false)
}

/// The path opener's sandbox (`backend::multipath::opener`).
pub fn opener() -> Sandbox {
    compose(crate::backend::multipath::opener::sandbox_needs(), true)
}

fn compose(needs: Needs, opener: bool) -> Sandbox {
    let mut syscalls = needs.syscalls;
    syscalls.sort_unstable();
    syscalls.dedup();
    let mut ioctls = needs.ioctls;
    ioctls.sort_unstable();
    ioctls.dedup();
    let seccomp = seccomp::Policy {
        // Read-only opens pass the filter exactly when a feature reads files; Landlock then
        // says which.
        open_read_only: !needs.read.is_empty(),
        ioctls,
        syscalls,
        opener,
    };
    let mut landlock: Vec<(PathBuf, u64)> = Vec::new();
    let rights = needs.read.into_iter().map(|p| (p, access::READ)).chain(
        needs
            .remove_in
            .into_iter()
            .map(|p| (p, access::REMOVE_FILE)),
    );
    for (path, rights) in rights {
        match landlock.iter_mut().find(|(p, _)| *p == path) {
            Some((_, r)) => *r |= rights,
            None => landlock.push((path, rights)),
        }
    }
    landlock.sort();
    Sandbox { seccomp, landlock }
}

impl Sandbox {
    /// Installs the sandbox on the calling thread, which must be the process's only one:
    /// the threads and processes it starts later inherit both. PR_SET_NO_NEW_PRIVS first,
    /// which both require; then Landlock (its calls are not in the seccomp filter), best
    /// effort: `note` hears why it is not in place (the caller prints it at `-v`).
    ///
    /// # Errors
    /// PR_SET_NO_NEW_PRIVS, or the seccomp filter's installation.
    pub fn install(&self, note: &dyn Fn(&str)) -> io::Result<()> {
        rustix::thread::set_no_new_privs(true)?;
        if let Err(why) = self.restrict_file_system() {
            note(&format!(
                "Landlock not in place ({why}): file reads are limited by the seccomp filter alone"
            ));
        }
        seccomp::install(&self.seccomp)
    }

    /// The Landlock part; why it could not be applied.
    fn restrict_file_system(&self) -> Result<(), String> {
        let abi = landlock::abi_version().map_err(|e| match e.raw_os_error() {
            Some(libc::ENOSYS) => "this kernel has no Landlock, Linux 5.13 or later has".into(),
            Some(libc::EOPNOTSUPP) => "Landlock is off in this kernel: not in lsm=".into(),
            _ => format!("Landlock's ABI version: {}", strerror(&e)),
        })?;
        let rules = landlock::Ruleset::new(access::ABI_1).map_err(|e| {
            format!(
                "Landlock ABI {abi}: cannot make a ruleset: {}",
                strerror(&e)
            )
        })?;
        for (path, rights) in &self.landlock {
            match rules.allow(path, *rights) {
                Ok(()) => {}
                // Not there at start-up (no /etc/multipath, say): nothing to read there.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => {
                    let path = crate::cli::argbytes::path(path);
                    return Err(format!("a rule for {path}: {}", strerror(&e)));
                }
            }
        }
        rules
            .restrict_self()
            .map_err(|e| format!("landlock_restrict_self: {}", strerror(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Route;

    fn exec(route: Route, multipath: bool) -> ExecOptions {
        ExecOptions {
            route,
            multipath,
            ..ExecOptions::default()
        }
    }

    fn features<'a>(exec: &'a ExecOptions, audit: bool, path_opener: bool) -> Features<'a> {
        Features {
            exec,
            audit,
            path_opener,
            remove: &[],
        }
    }

    fn paths(sandbox: &Sandbox) -> Vec<(&str, u64)> {
        let paths = sandbox.landlock.iter();
        paths.map(|(p, r)| (p.to_str().unwrap(), *r)).collect()
    }

    const R: u64 = access::READ;

    #[test]
    fn multipath_reads_sys_dev_and_its_configuration() {
        let exec = exec(Route::Auto, true);
        let sandbox = daemon(&features(&exec, false, false));
        assert_eq!(
            paths(&sandbox),
            [
                ("/dev", R),
                ("/etc/multipath", R),
                ("/etc/multipath.conf", R),
                ("/sys", R),
            ]
        );
        assert!(sandbox.seccomp.open_read_only);
        for nr in [libc::SYS_socket, libc::SYS_connect, libc::SYS_socketpair] {
            assert!(sandbox.seccomp.syscalls.contains(&nr), "{nr}");
        }
        assert!(
            sandbox
                .seccomp
                .ioctls
                .contains(&crate::sys::dm::DM_TABLE_STATUS)
        );
        // Under -u the opener opens the nodes: the daemon reads no /dev.
        let sandbox = daemon(&features(&exec, false, true));
        assert!(!paths(&sandbox).contains(&("/dev", R)), "{sandbox:?}");
    }

    #[test]
    fn without_multipath_or_audit_nothing_is_read() {
        let exec = exec(Route::Sg, false);
        let sandbox = daemon(&features(&exec, false, false));
        assert_eq!(paths(&sandbox), []);
        assert!(!sandbox.seccomp.open_read_only);
        assert!(sandbox.seccomp.syscalls.is_empty() && sandbox.seccomp.ioctls.is_empty());
        // The block route adds its ioctls, and no file.
        let exec = exec_block();
        let sandbox = daemon(&features(&exec, false, false));
        assert!(!sandbox.seccomp.open_read_only);
        assert_eq!(
            sandbox.seccomp.ioctls.len(),
            crate::sys::blkpr::ALL_IOCTLS.len()
        );
    }

    fn exec_block() -> ExecOptions {
        exec(Route::Block, false)
    }

    #[test]
    fn audit_reads_proc_and_sys() {
        let exec = exec(Route::Sg, false);
        let sandbox = daemon(&features(&exec, true, false));
        assert_eq!(paths(&sandbox), [("/proc", R), ("/sys", R)]);
        assert!(sandbox.seccomp.open_read_only);
        assert!(
            sandbox
                .seccomp
                .syscalls
                .contains(&libc::SYS_pidfd_send_signal)
        );
    }

    #[test]
    fn every_feature_together_states_each_path_once() {
        let exec = exec(Route::Auto, true);
        let remove = [
            Path::new("/run/pr.sock"),
            Path::new("/run/pr.pid"),
            Path::new("rel.sock"),
        ];
        let features = Features {
            remove: &remove,
            ..features(&exec, true, false)
        };
        let sandbox = daemon(&features);
        assert_eq!(
            paths(&sandbox),
            [
                ("/dev", R),
                ("/etc/multipath", R),
                ("/etc/multipath.conf", R),
                ("/proc", R),
                ("/run", access::REMOVE_FILE),
                ("/sys", R),
                (".", access::REMOVE_FILE),
            ]
        );
        let syscalls = &sandbox.seccomp.syscalls;
        assert!(syscalls.windows(2).all(|w| w[0] < w[1]), "{syscalls:?}");
        // Nothing grants /etc as a whole, nor any write or creation.
        for (path, rights) in &sandbox.landlock {
            assert_ne!(path, Path::new("/etc"));
            assert_eq!(rights & (access::WRITE_FILE | access::MAKE_REG), 0);
        }
    }

    #[test]
    fn the_opener_reads_dev_and_sys_only() {
        let sandbox = opener();
        assert_eq!(paths(&sandbox), [("/dev", R), ("/sys", R)]);
        assert!(sandbox.seccomp.opener && sandbox.seccomp.open_read_only);
        assert_eq!(sandbox.seccomp.ioctls, [crate::sys::dm::DM_TABLE_STATUS]);
    }
}
