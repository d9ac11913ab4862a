//! Landlock (Linux 5.13 and later): a file system sandbox for the calling thread and the
//! threads and processes it creates afterwards. The seccomp filter sees an open's flags but
//! not its path; Landlock sees the path, so that a compromised daemon running as root cannot
//! read /etc/shadow or a VM's image even though read-only opens pass its filter.
//!
//! Only ABI 1's access rights are handled, on every kernel: the rules mean the same on 5.13
//! and on 6.x, and the later rights (truncate, device ioctls, network) would need rules for
//! descriptors the daemon uses but did not open under the sandbox's eye.
//! Rustix has no Landlock calls; these are the three system calls, raw.

use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::Path;

/// Access rights of ABI 1 (`LANDLOCK_ACCESS_FS_*`).
pub mod access {
    pub const EXECUTE: u64 = 1 << 0;
    pub const WRITE_FILE: u64 = 1 << 1;
    pub const READ_FILE: u64 = 1 << 2;
    pub const READ_DIR: u64 = 1 << 3;
    pub const REMOVE_DIR: u64 = 1 << 4;
    pub const REMOVE_FILE: u64 = 1 << 5;
    pub const MAKE_CHAR: u64 = 1 << 6;
    pub const MAKE_DIR: u64 = 1 << 7;
    pub const MAKE_REG: u64 = 1 << 8;
    pub const MAKE_SOCK: u64 = 1 << 9;
    pub const MAKE_FIFO: u64 = 1 << 10;
    pub const MAKE_BLOCK: u64 = 1 << 11;
    pub const MAKE_SYM: u64 = 1 << 12;
    /// Every right ABI 1 knows: what the sandbox handles (denies unless a rule allows it).
    pub const ABI_1: u64 = EXECUTE
        | WRITE_FILE
        | READ_FILE
        | READ_DIR
        | REMOVE_DIR
        | REMOVE_FILE
        | MAKE_CHAR
        | MAKE_DIR
        | MAKE_REG
        | MAKE_SOCK
        | MAKE_FIFO
        | MAKE_BLOCK
        | MAKE_SYM;
    /// The rights that apply to a file (not a directory): a rule on a file may give only these.
    pub const FILE: u64 = EXECUTE | WRITE_FILE | READ_FILE;
    /// Reading files and listing directories.
    pub const READ: u64 = READ_FILE | READ_DIR;
}

const CREATE_RULESET_VERSION: u32 = 1 << 0;
const RULE_PATH_BENEATH: libc::c_int = 1;

/// `struct landlock_ruleset_attr`, ABI 1's part (the kernel takes a shorter struct from an
/// older caller).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

/// `struct landlock_path_beneath_attr`, packed in the UAPI header.
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version the kernel offers.
///
/// # Errors
/// ENOSYS (a kernel without Landlock), EOPNOTSUPP (built in but off: not in `lsm=`).
pub fn abi_version() -> io::Result<u32> {
    // SAFETY: with LANDLOCK_CREATE_RULESET_VERSION the attribute pointer must be null and
    // its size 0; the kernel reads no memory and returns a number.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    u32::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// A ruleset being built: what it handles, then rules allowing some of that beneath paths.
#[derive(Debug)]
pub struct Ruleset {
    fd: OwnedFd,
}

impl Ruleset {
    /// A ruleset that denies `handled` rights everywhere no rule allows them.
    ///
    /// # Errors
    /// landlock_create_ruleset's (ENOSYS, EOPNOTSUPP without Landlock).
    pub fn new(handled: u64) -> io::Result<Ruleset> {
        let attr = RulesetAttr {
            handled_access_fs: handled,
        };
        // SAFETY: `attr` lives across the call and its size is passed with it; the kernel
        // copies it and returns a new descriptor that nothing else owns.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::from_ref(&attr),
                std::mem::size_of::<RulesetAttr>(),
                0u32,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        let raw = i32::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        // SAFETY: `raw` is the descriptor the kernel just returned to us, owned by no one else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Ruleset { fd })
    }

    /// Allows `access` beneath `path` (the file itself, when it is not a directory: then
    /// only the file rights of `access` apply, the kernel refusing the others on a file).
    ///
    /// # Errors
    /// Opening `path` (ENOENT when it does not exist), or landlock_add_rule's.
    pub fn allow(&self, path: &Path, access: u64) -> io::Result<()> {
        use rustix::fs::{Mode, OFlags};
        let dir = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?;
        let is_dir = rustix::fs::fstat(&dir).is_ok_and(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
        });
        let attr = PathBeneathAttr {
            allowed_access: if is_dir {
                access
            } else {
                access & access::FILE
            },
            parent_fd: dir.as_fd().as_raw_fd(),
        };
        // SAFETY: `attr` lives across the call; the kernel copies it. `dir` and the ruleset's
        // descriptor stay open until the call returns.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                self.fd.as_raw_fd(),
                RULE_PATH_BENEATH,
                std::ptr::from_ref(&attr),
                0u32,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Enforces the ruleset on the calling thread and everything it starts afterwards. The
    /// kernel requires PR_SET_NO_NEW_PRIVS of a caller without CAP_SYS_ADMIN: the caller sets
    /// it first (once, for this and the seccomp filter).
    ///
    /// # Errors
    /// landlock_restrict_self's (EPERM without no_new_privs).
    pub fn restrict_self(self) -> io::Result<()> {
        // SAFETY: the call takes a descriptor, open for its duration, and reads no memory.
        let ret =
            unsafe { libc::syscall(libc::SYS_landlock_restrict_self, self.fd.as_raw_fd(), 0u32) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_1_rights_are_the_thirteen_the_kernel_knows() {
        assert_eq!(access::ABI_1, 0x1fff);
        assert_eq!(access::ABI_1 & access::MAKE_SYM, access::MAKE_SYM);
        assert_eq!(std::mem::size_of::<PathBeneathAttr>(), 12);
    }

    /// In a child process (this test binary again): a ruleset that lets it read /proc only;
    /// /proc/self/status still opens, /etc/hostname and / do not (EACCES). Without Landlock
    /// the child says so and the test passes having checked nothing else.
    #[test]
    fn a_restricted_thread_reads_only_what_its_rules_allow() {
        if std::env::var_os("PRH_LANDLOCK_CHILD").is_some() {
            let say = |what: &str| {
                let _ = rustix::io::write(rustix::stdio::stdout(), what.as_bytes());
            };
            if let Err(e) = abi_version() {
                say(&format!("no landlock: {e}\n"));
                std::process::exit(0);
            }
            let rules = Ruleset::new(access::ABI_1).unwrap();
            rules.allow(Path::new("/proc"), access::READ).unwrap();
            rustix::thread::set_no_new_privs(true).unwrap();
            rules.restrict_self().unwrap();
            // A thread started afterwards is restricted too.
            let result = std::thread::spawn(|| {
                let proc = std::fs::File::open("/proc/self/status").map(drop);
                let etc = std::fs::File::open("/etc/hostname").map(drop);
                let root = std::fs::read_dir("/").map(drop);
                (
                    proc.is_ok(),
                    [etc, root].map(|r| r.err().and_then(|e| e.raw_os_error())),
                )
            })
            .join()
            .unwrap();
            say(&format!("result {result:?}\n"));
            std::process::exit(0);
        }
        let name = "sys::landlock::tests::a_restricted_thread_reads_only_what_its_rules_allow";
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", name, "--test-threads=1", "--nocapture"]);
        if cfg!(panic = "abort") {
            cmd.args(["-Z", "unstable-options", "--force-run-in-process"])
                .env("RUSTC_BOOTSTRAP", "1");
        }
        let out = cmd.env("PRH_LANDLOCK_CHILD", "1").output().unwrap();
        let out = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
        if out.contains("no landlock") {
            eprintln!("this kernel has no Landlock: not checked here ({out})");
            return;
        }
        let eacces = Some(libc::EACCES);
        assert!(
            out.contains(&format!("result (true, [{eacces:?}, {eacces:?}])")),
            "{out}"
        );
    }
}
