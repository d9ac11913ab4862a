//! The daemon's seccomp filter: after start-up it may only make the system calls serving
//! needs, and ioctl only for SG_IO and what the enabled backends issue ([`Policy`]). Anything
//! else kills the process (SECCOMP_RET_KILL_PROCESS), which the kernel's audit log records with
//! the system call number (`type=1326 ... syscall=N`).
//!
//! The BPF is written by hand, no crate: a table of [`Rule`]s (a system call, optionally a
//! condition on one argument, and what to do) that a small assembler turns into the program,
//! under 170 instructions. Its jumps are labels; one that cannot be encoded (over 255
//! instructions forward, as the architecture check's to the end would be past 255 rules'
//! worth) is an error, which a unit test would see for every policy.

use std::io;

// `struct seccomp_data` offsets: nr, arch, then `u64 args[6]` from 16.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARG0_LOW: u32 = arg_low(0);
const DATA_ARG1_LOW: u32 = arg_low(1);
const DATA_ARG2_LOW: u32 = arg_low(2);

/// The offset of argument `n`'s low 32 bits.
const fn arg_low(n: u32) -> u32 {
    16 + 8 * n + if cfg!(target_endian = "big") { 4 } else { 0 }
}

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const BPF_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;

const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;
#[cfg(all(target_arch = "powerpc64", target_endian = "little"))]
const AUDIT_ARCH: u32 = 0xc000_0015;
#[cfg(target_arch = "s390x")]
const AUDIT_ARCH: u32 = 0x8000_0016;

/// `SG_IO`, the ioctl every backend issues.
const SG_IO_REQUEST: u32 = super::ioctl_request(super::sg::SG_IO);

/// openat flags that make an open anything but a plain read: with [`Policy::open_read_only`]
/// an openat with any of them still fails with EACCES.
const WRITE_OPEN_FLAGS: u32 =
    (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) as u32;

/// What the filter allows beyond the base list: the enabled features' needs, composed by
/// `daemon::sandbox`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// ioctl request numbers besides SG_IO (the block PR ioctls, device-mapper's).
    pub ioctls: Vec<u32>,
    /// openat for reading only: a multipath map's path devices and /sys links.
    pub open_read_only: bool,
    /// More system calls (multipathd's control socket).
    pub syscalls: Vec<libc::c_long>,
    /// The path opener's filter instead of the daemon's: its own short base list
    /// ([`opener_syscalls`]) and no SG_IO.
    pub opener: bool,
}

/// System calls of the path opener.
fn opener_syscalls() -> Vec<libc::c_long> {
    let list: &[libc::c_long] = &[
        libc::SYS_recvmsg,
        libc::SYS_sendmsg,
        libc::SYS_write,
        libc::SYS_close,
        libc::SYS_readlinkat,
        libc::SYS_newfstatat,
        libc::SYS_fstat,
        libc::SYS_statx,
        libc::SYS_ioctl,
    ];
    [list, THREADS_AND_MEMORY, legacy::STAT].concat()
}

/// What any thread of ours needs, daemon or opener: locks, thread creation, memory, signal
/// masks, time, exit, and abort() on a bug, which raises SIGABRT so the crash is reported as
/// one (glibc sends it with tgkill, musl with tkill). `restart_syscall` is how the kernel
/// resumes a sleep (clock_nanosleep, a poll with a timeout) after the process was stopped and
/// continued (SIGSTOP/SIGCONT, a cgroup freeze, a debugger): it only resumes the call that was
/// allowed when it began.
const THREADS_AND_MEMORY: &[libc::c_long] = &[
    libc::SYS_futex,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_mmap,
    libc::SYS_mprotect,
    libc::SYS_munmap,
    libc::SYS_madvise,
    libc::SYS_mremap,
    libc::SYS_brk,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sigaltstack,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigreturn,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_yield,
    libc::SYS_getrandom,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_clock_gettime,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_tgkill,
    libc::SYS_tkill,
    libc::SYS_restart_syscall,
];

/// The path-based calls of x86_64, s390x and powerpc64 that newer architectures only have in
/// their `*at` form; empty elsewhere.
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "s390x",
    target_arch = "powerpc64"
))]
mod legacy {
    /// open(2) (rustix uses it on x86_64; musl's open uses it wherever the kernel has it:
    /// s390x and powerpc64, where rustix calls musl).
    pub const OPEN: &[libc::c_long] = &[libc::SYS_open];
    /// stat and lstat (musl calls them where they exist), for the opener.
    pub const STAT: &[libc::c_long] = &[libc::SYS_stat, libc::SYS_lstat];
    /// The daemon's: musl calls stat, lstat and unlink where they exist (the daemon's
    /// shutdown on s390x and ppc64le was killed by stat in the PR lab's LAB_ARCH VMs).
    pub const SYSCALLS: &[libc::c_long] = &[
        libc::SYS_epoll_wait,
        libc::SYS_unlink,
        libc::SYS_stat,
        libc::SYS_lstat,
    ];
}
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "s390x",
    target_arch = "powerpc64"
)))]
mod legacy {
    pub const OPEN: &[libc::c_long] = &[];
    pub const STAT: &[libc::c_long] = &[];
    pub const SYSCALLS: &[libc::c_long] = &[];
}

/// System calls of the running daemon and its worker threads, with why.
fn allowed_syscalls() -> Vec<libc::c_long> {
    let list: &[libc::c_long] = &[
        // The event loop and connections.
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_ctl,
        libc::SYS_accept4,
        libc::SYS_recvmsg,
        libc::SYS_recvfrom,
        libc::SYS_sendto,
        libc::SYS_sendmsg,
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_writev,
        libc::SYS_close,
        libc::SYS_fcntl,
        libc::SYS_getsockopt,
        libc::SYS_shutdown,
        // Worker threads (with THREADS_AND_MEMORY below): naming them, and the test delay.
        libc::SYS_prctl,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        // Shutdown: is the socket path still ours, then remove it and the pidfile.
        libc::SYS_newfstatat,
        libc::SYS_fstat,
        libc::SYS_statx,
        libc::SYS_unlinkat,
        // SG_IO, restricted below by request number.
        libc::SYS_ioctl,
    ];
    [list, THREADS_AND_MEMORY, legacy::SYSCALLS].concat()
}

/// What the filter does with a system call.
#[derive(Debug, Clone, Copy)]
enum Action {
    Allow,
    /// Fails with this errno.
    Errno(i32),
    Kill,
}

impl Action {
    fn ret(self) -> u32 {
        match self {
            Action::Allow => SECCOMP_RET_ALLOW,
            Action::Errno(e) => SECCOMP_RET_ERRNO | e as u32,
            Action::Kill => SECCOMP_RET_KILL_PROCESS,
        }
    }
}

/// A condition on one argument's low 32 bits: `arg & mask` is one of `values`.
#[derive(Debug)]
struct ArgIs {
    /// Offset of the argument's low word in `struct seccomp_data`.
    offset: u32,
    mask: u32,
    values: Vec<u32>,
}

/// One line of the filter: system call `nr` gets `then`, or, with a condition that does not
/// hold, `otherwise`.
#[derive(Debug)]
struct Rule {
    nr: u32,
    when: Option<ArgIs>,
    then: Action,
    otherwise: Action,
}

impl Rule {
    fn new(nr: libc::c_long, then: Action) -> Rule {
        Rule {
            nr: nr as u32,
            when: None,
            then,
            otherwise: then,
        }
    }

    /// Allowed when the argument at `offset`, masked, is one of `values`.
    fn allow_if(
        nr: libc::c_long,
        (offset, mask, values): (u32, u32, Vec<u32>),
        otherwise: Action,
    ) -> Rule {
        Rule {
            nr: nr as u32,
            when: Some(ArgIs {
                offset,
                mask,
                values,
            }),
            then: Action::Allow,
            otherwise,
        }
    }
}

/// The filter's rules for `policy`, in the order the program tests them: number -1, the
/// plain allow-list (sorted), then the calls allowed by their arguments.
fn rules(policy: &Policy) -> Vec<Rule> {
    // Number -1 is no system call: it is what a tracer sets to skip one (strace's
    // `-e inject=`, which the start-up fault-injection test uses past this filter), and the
    // kernel would answer it with ENOSYS. Answering ENOSYS here permits nothing more.
    let mut rules = vec![Rule::new(-1, Action::Errno(libc::ENOSYS))];
    let mut allowed = if policy.opener {
        opener_syscalls()
    } else {
        allowed_syscalls()
    };
    allowed.extend(&policy.syscalls);
    allowed.sort_unstable();
    allowed.dedup();
    let conditional = [
        libc::SYS_ioctl,
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_pidfd_send_signal,
    ];
    for &nr in &allowed {
        if !conditional.contains(&nr) {
            rules.push(Rule::new(nr, Action::Allow));
        }
    }
    // openat(dirfd, path, flags), and open(path, flags) which rustix uses on x86_64: with
    // `open_read_only` allowed when the flags ask for a plain read. Otherwise they fail with
    // EACCES instead of killing: glibc's malloc opens /sys/devices/system/cpu/online when a
    // thread first needs a new arena, and falls back to sched_getaffinity when it cannot.
    // The daemon itself opens nothing once serving.
    let refused = Action::Errno(libc::EACCES);
    let opens = std::iter::once((libc::SYS_openat, DATA_ARG2_LOW))
        .chain(legacy::OPEN.iter().map(|&nr| (nr, DATA_ARG1_LOW)));
    for (nr, flags) in opens {
        rules.push(if policy.open_read_only {
            Rule::allow_if(nr, (flags, WRITE_OPEN_FLAGS, vec![0]), refused)
        } else {
            Rule::new(nr, refused)
        });
    }
    // Sockets of the Unix domain only (multipathd's control socket, the path opener's reply
    // pairs). connect's address is behind a pointer, which a filter cannot read: it can only
    // reach the sockets these make, the inherited listener's and the journal's, all Unix ones.
    for nr in [libc::SYS_socket, libc::SYS_socketpair] {
        if allowed.contains(&nr) {
            let unix = (DATA_ARG0_LOW, u32::MAX, vec![libc::AF_UNIX as u32]);
            rules.push(Rule::allow_if(nr, unix, Action::Kill));
        }
    }
    // pidfd_send_signal(pidfd, sig, info, flags): signal 0 only, which checks that the
    // process is there and sends nothing.
    if allowed.contains(&libc::SYS_pidfd_send_signal) {
        let no_signal = (DATA_ARG1_LOW, u32::MAX, vec![0]);
        rules.push(Rule::allow_if(
            libc::SYS_pidfd_send_signal,
            no_signal,
            Action::Kill,
        ));
    }
    // ioctl: only the allowed request numbers (the low 32 bits: the kernel's `unsigned int cmd`).
    let mut ioctls = policy.ioctls.clone();
    if !policy.opener {
        ioctls.push(SG_IO_REQUEST);
    }
    ioctls.sort_unstable();
    ioctls.dedup();
    let requests = (DATA_ARG1_LOW, u32::MAX, ioctls);
    rules.push(Rule::allow_if(libc::SYS_ioctl, requests, Action::Kill));
    rules
}

/// A conditional jump's target: the next instruction, or a label placed later.
#[derive(Clone, Copy)]
enum Target {
    Next,
    Label(usize),
}

/// A BPF program with symbolic forward jumps, resolved by [`Asm::finish`].
#[derive(Default)]
struct Asm {
    code: Vec<(u16, u32, Target, Target)>,
    /// Where each label was placed (an instruction index).
    labels: Vec<Option<usize>>,
}

/// A program whose jump cannot be encoded: BPF jumps go forward at most 255 instructions.
#[derive(Debug)]
pub struct JumpTooFar {
    pub from: usize,
    pub to: usize,
}

impl std::fmt::Display for JumpTooFar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let JumpTooFar { from, to } = self;
        write!(
            f,
            "the seccomp program jumps from instruction {from} to {to}, further than 255"
        )
    }
}

impl std::error::Error for JumpTooFar {}

impl Asm {
    fn stmt(&mut self, code: u16, k: u32) {
        self.code.push((code, k, Target::Next, Target::Next));
    }

    fn ret(&mut self, action: Action) {
        self.stmt(BPF_RET_K, action.ret());
    }

    /// `if A == k` goto `jt` else goto `jf`.
    fn jeq(&mut self, k: u32, jt: Target, jf: Target) {
        self.code.push((BPF_JEQ_K, k, jt, jf));
    }

    fn label(&mut self) -> Target {
        self.labels.push(None);
        Target::Label(self.labels.len() - 1)
    }

    /// Places `label` at the next instruction.
    fn bind(&mut self, label: Target) {
        if let Target::Label(l) = label {
            self.labels[l] = Some(self.code.len());
        }
    }

    fn finish(self) -> Result<Vec<libc::sock_filter>, JumpTooFar> {
        let offset = |from: usize, target: Target| -> Result<u8, JumpTooFar> {
            let to = match target {
                Target::Next => return Ok(0),
                // An unplaced label is a bug of the rules' compiler: past the end, refused.
                Target::Label(l) => self.labels[l].unwrap_or(usize::MAX),
            };
            to.checked_sub(from + 1)
                .filter(|_| to < self.code.len())
                .and_then(|d| u8::try_from(d).ok())
                .ok_or(JumpTooFar { from, to })
        };
        self.code
            .iter()
            .enumerate()
            .map(|(i, &(code, k, jt, jf))| {
                Ok(libc::sock_filter {
                    code,
                    jt: offset(i, jt)?,
                    jf: offset(i, jf)?,
                    k,
                })
            })
            .collect()
    }
}

/// The filter program: the architecture check, then each rule, then death.
///
/// # Errors
/// A jump too far to encode (a rule's condition with about 120 values or more).
pub fn program(policy: &Policy) -> Result<Vec<libc::sock_filter>, JumpTooFar> {
    let mut asm = Asm::default();
    let other_arch = asm.label();
    asm.stmt(BPF_LD_W_ABS, DATA_ARCH);
    asm.jeq(AUDIT_ARCH, Target::Next, other_arch);
    asm.stmt(BPF_LD_W_ABS, DATA_NR);
    for rule in rules(policy) {
        let next_rule = asm.label();
        asm.jeq(rule.nr, Target::Next, next_rule);
        if let Some(arg) = &rule.when {
            let then = asm.label();
            asm.stmt(BPF_LD_W_ABS, arg.offset);
            if arg.mask != u32::MAX {
                asm.stmt(BPF_AND_K, arg.mask);
            }
            for &value in &arg.values {
                asm.jeq(value, then, Target::Next);
            }
            asm.ret(rule.otherwise);
            asm.bind(then);
        }
        // A condition loads an argument, but every path past this rule's number returns:
        // the rules that follow still find the number in the accumulator.
        asm.ret(rule.then);
        asm.bind(next_rule);
    }
    asm.bind(other_arch);
    asm.ret(Action::Kill);
    asm.finish()
}

/// Sets PR_SET_NO_NEW_PRIVS and installs the filter on the calling thread; threads it
/// creates afterwards inherit it. Call while the process has one thread.
///
/// # Errors
/// prctl or seccomp failures (EINVAL on kernels without seccomp filters).
pub fn install(policy: &Policy) -> io::Result<()> {
    rustix::thread::set_no_new_privs(true)?;
    let filter = program(policy).map_err(io::Error::other)?;
    let prog = libc::sock_fprog {
        len: u16::try_from(filter.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points to `filter`, which outlives the call; the kernel copies the
    // program before seccomp(2) returns and keeps no pointer to it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            0 as libc::c_ulong,
            std::ptr::from_ref(&prog),
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_policy() -> Policy {
        Policy {
            ioctls: crate::sys::blkpr::ALL_IOCTLS.to_vec(),
            open_read_only: true,
            syscalls: vec![libc::SYS_socket, libc::SYS_connect],
            opener: false,
        }
    }

    fn exec(route: crate::backend::Route, multipath: bool) -> crate::backend::ExecOptions {
        let defaults = crate::backend::ExecOptions::default();
        crate::backend::ExecOptions {
            route,
            multipath,
            ..defaults
        }
    }

    /// The daemon's policy as `daemon::sandbox` composes it.
    fn daemon_policy(exec: &crate::backend::ExecOptions, audit: bool, path_opener: bool) -> Policy {
        let features = crate::daemon::sandbox::Features {
            exec,
            audit,
            path_opener,
            remove: &[],
        };
        crate::daemon::sandbox::daemon(&features).seccomp
    }

    fn opener_policy() -> Policy {
        crate::daemon::sandbox::opener().seccomp
    }

    /// Every policy the daemon can ask for: each backend route, with and without multipath
    /// maps, a path opener and `--audit`, and the path opener's.
    fn every_policy() -> Vec<Policy> {
        use crate::backend::Route;
        let mut policies = vec![opener_policy()];
        for route in [Route::Auto, Route::Sg, Route::Block] {
            for multipath in [false, true] {
                for audit in [false, true] {
                    for path_opener in [false, true] {
                        let exec = exec(route, multipath);
                        policies.push(daemon_policy(&exec, audit, path_opener));
                    }
                }
            }
        }
        policies
    }

    fn assembled(policy: &Policy) -> Vec<libc::sock_filter> {
        program(policy).unwrap_or_else(|e| panic!("{policy:?}: {e}"))
    }

    #[test]
    fn the_program_of_every_policy_assembles() {
        for policy in every_policy().iter().chain([&full_policy()]) {
            let prog = assembled(policy);
            assert!(prog.len() < 170, "{} instructions", prog.len());
            // Every conditional jump lands inside the program.
            for (i, insn) in prog.iter().enumerate() {
                if insn.code == BPF_JEQ_K {
                    assert!(i + 1 + usize::from(insn.jt) < prog.len());
                    assert!(i + 1 + usize::from(insn.jf) < prog.len());
                }
            }
            assert_eq!(prog.last().map(|i| i.k), Some(SECCOMP_RET_KILL_PROCESS));
        }
    }

    /// Runs `prog` as the kernel would on a call of `nr` with `args` (low words) on `arch`.
    fn run(prog: &[libc::sock_filter], arch: u32, nr: libc::c_long, args: [u32; 3]) -> u32 {
        let data = |offset: u32| match offset {
            DATA_NR => nr as u32,
            DATA_ARCH => arch,
            DATA_ARG0_LOW => args[0],
            DATA_ARG1_LOW => args[1],
            DATA_ARG2_LOW => args[2],
            _ => panic!("load of offset {offset}"),
        };
        let (mut pc, mut acc) = (0, 0u32);
        loop {
            let insn = prog[pc];
            pc += 1;
            match insn.code {
                BPF_LD_W_ABS => acc = data(insn.k),
                BPF_AND_K => acc &= insn.k,
                BPF_JEQ_K => {
                    pc += usize::from(if acc == insn.k { insn.jt } else { insn.jf });
                }
                BPF_RET_K => return insn.k,
                code => panic!("instruction {code:#x}"),
            }
        }
    }

    /// The assembled program does what the rules say, call by call, for every policy.
    #[test]
    fn every_program_does_what_its_rules_say() {
        let eacces = SECCOMP_RET_ERRNO | libc::EACCES as u32;
        for policy in every_policy() {
            let prog = assembled(&policy);
            let call = |nr, args| run(&prog, AUDIT_ARCH, nr, args);
            for rule in rules(&policy) {
                let nr = libc::c_long::from(rule.nr as i32);
                match &rule.when {
                    None => assert_eq!(call(nr, [0; 3]), rule.then.ret(), "{rule:?}"),
                    Some(arg) => {
                        let index = ((arg.offset - DATA_ARG0_LOW) / 8) as usize;
                        for &value in &arg.values {
                            let mut args = [0; 3];
                            args[index] = value;
                            assert_eq!(call(nr, args), rule.then.ret(), "{rule:?} {value:#x}");
                        }
                        let mut args = [0; 3];
                        args[index] = !arg.values.iter().fold(0, |a, v| a | v) & arg.mask;
                        assert_eq!(call(nr, args), rule.otherwise.ret(), "{rule:?}");
                    }
                }
            }
            // What no rule names is killed; another architecture's calls all are.
            assert_eq!(call(libc::SYS_getppid, [0; 3]), SECCOMP_RET_KILL_PROCESS);
            assert_eq!(
                run(&prog, AUDIT_ARCH ^ 1, libc::SYS_getpid, [0; 3]),
                SECCOMP_RET_KILL_PROCESS
            );
            assert_eq!(call(-1, [0; 3]), SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
            let read = call(libc::SYS_openat, [0, 0, libc::O_RDONLY as u32]);
            let write = call(libc::SYS_openat, [0, 0, libc::O_RDWR as u32]);
            assert_eq!(write, eacces);
            let ioctl = |request| call(libc::SYS_ioctl, [0, request, 0]);
            assert_eq!(ioctl(libc::TIOCGWINSZ as u32), SECCOMP_RET_KILL_PROCESS);
            // Plain reads where the policy allows them (the opener's does); SG_IO but for the
            // opener.
            let (allow, kill) = (SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS);
            let reads = policy.opener || policy.open_read_only;
            assert_eq!(read, if reads { allow } else { eacces });
            assert_eq!(
                ioctl(SG_IO_REQUEST),
                if policy.opener { kill } else { allow }
            );
            let socket = |domain| call(libc::SYS_socket, [domain, 1, 0]);
            if policy.syscalls.contains(&libc::SYS_socket) {
                assert_eq!(socket(libc::AF_UNIX as u32), SECCOMP_RET_ALLOW);
            }
            assert_eq!(socket(libc::AF_INET as u32), SECCOMP_RET_KILL_PROCESS);
            // A stopped and continued sleep resumes through restart_syscall.
            assert_eq!(call(libc::SYS_restart_syscall, [0; 3]), allow, "{policy:?}");
            if !policy.opener {
                // The event loop's wait: epoll_pwait, its timeout clamped to what it takes
                // (rustix calls epoll_pwait2 beyond i32 milliseconds; the filter kills it).
                assert_eq!(call(libc::SYS_epoll_pwait, [0; 3]), allow);
                assert_eq!(call(libc::SYS_epoll_pwait2, [0; 3]), kill);
            }
        }
    }

    #[test]
    fn program_whose_jumps_do_not_fit_is_refused() {
        let policy = Policy {
            ioctls: (0..200).collect(),
            ..Policy::default()
        };
        let err = program(&policy).unwrap_err();
        assert!(err.to_string().contains("further than 255"), "{err}");
    }

    #[test]
    fn the_opener_filter_has_no_sg_io_and_no_sockets() {
        let prog = assembled(&opener_policy());
        let compared: Vec<u32> = prog
            .iter()
            .filter(|i| i.code == BPF_JEQ_K)
            .map(|i| i.k)
            .collect();
        assert!(!compared.contains(&SG_IO_REQUEST));
        assert!(compared.contains(&crate::sys::dm::DM_TABLE_STATUS));
        assert!(!compared.contains(&crate::sys::dm::DM_DEV_SUSPEND));
        for nr in [
            libc::SYS_socket,
            libc::SYS_connect,
            libc::SYS_accept4,
            libc::SYS_unlinkat,
        ] {
            assert!(!compared.contains(&(nr as u32)), "{nr}");
        }
        assert!(compared.contains(&(libc::SYS_recvmsg as u32)));
    }

    /// This test binary again, running the one test `name` in its own process, so the test's
    /// death by a signal is the child's exit status. With panic=abort libtest would run the
    /// test in yet another process: `--force-run-in-process` (unstable, hence
    /// RUSTC_BOOTSTRAP) keeps it in this one. The child sees `PRH_SECCOMP_CHILD=what`, and
    /// gives back its output (stdout, then stderr) and the signal that ended it.
    fn rerun_self(name: &str, what: &str) -> (String, Option<i32>) {
        use std::os::unix::process::ExitStatusExt as _;
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", name, "--test-threads=1", "--nocapture"]);
        if cfg!(panic = "abort") {
            cmd.args(["-Z", "unstable-options", "--force-run-in-process"])
                .env("RUSTC_BOOTSTRAP", "1");
        }
        let child = cmd.env("PRH_SECCOMP_CHILD", what).output().unwrap();
        let out = [child.stdout, child.stderr].concat();
        (
            String::from_utf8_lossy(&out).into_owned(),
            child.status.signal(),
        )
    }

    /// In the child, what the parent asked for.
    fn child_role() -> Option<String> {
        std::env::var("PRH_SECCOMP_CHILD").ok()
    }

    fn say(what: &str) {
        let _ = rustix::io::write(rustix::stdio::stdout(), what.as_bytes());
    }

    /// A bug under the sandbox must end as a crash (SIGABRT, a core), not as a forbidden call:
    /// glibc's abort() raises SIGABRT with tgkill, musl's with tkill. Built with
    /// panic=abort (the release profile, and `packaging/build-static.sh --unit-tests`), the
    /// child panics as the daemon would; with unwinding, the test harness would catch a panic,
    /// so it calls abort() itself. Runs in a child process (this test binary again).
    #[test]
    fn a_panic_under_the_filter_ends_with_sigabrt() {
        if child_role().is_some() {
            install(&full_policy()).unwrap();
            say("filter installed\n");
            #[cfg(panic = "abort")]
            panic!("a deliberate panic under the seccomp filter");
            #[cfg(not(panic = "abort"))]
            std::process::abort();
        }
        let name = "sys::seccomp::tests::a_panic_under_the_filter_ends_with_sigabrt";
        let (out, signal) = rerun_self(name, "panic");
        assert!(out.contains("filter installed"), "{out}");
        assert_eq!(signal, Some(libc::SIGABRT), "{out}");
        if cfg!(panic = "abort") {
            assert!(
                out.contains("a deliberate panic under the seccomp filter"),
                "{out}"
            );
        }
    }

    /// Each kind of forbidden call kills, in a child process (this test binary again) that
    /// installs the filter and makes it: an ioctl request no backend issues (a terminal's, and
    /// device-mapper's DM_DEV_STATUS, which nothing here issues), a socket of another domain
    /// than Unix, and any call from the path opener that is not on its list.
    #[test]
    fn each_kind_of_forbidden_call_kills_the_process() {
        const DM_DEV_STATUS: u32 = 0xC138_FD07;
        if let Some(kind) = child_role() {
            use rustix::net::{AddressFamily, SocketFlags, SocketType};
            let null = std::fs::File::open("/dev/null").unwrap();
            let ioctl = |request: u32| {
                use std::os::fd::AsRawFd as _;
                // SAFETY: an ioctl on /dev/null with a null argument: the filter kills the
                // process before the kernel sees it, and /dev/null would answer ENOTTY without
                // reading it.
                let _ = unsafe { libc::ioctl(null.as_raw_fd(), request as _, 0usize) };
            };
            let socket = |family| rustix::net::socket(family, SocketType::STREAM, None);
            install(&match kind.as_str() {
                "tty-ioctl" => Policy::default(),
                "opener-socket" => opener_policy(),
                "dm-dev-status" | "inet-socket" => {
                    daemon_policy(&exec(Default::default(), true), false, false)
                }
                _ => panic!("unknown kind {kind:?}"),
            })
            .unwrap();
            say("filter installed\n");
            match kind.as_str() {
                "tty-ioctl" => ioctl(libc::TIOCGWINSZ as u32),
                "dm-dev-status" => ioctl(DM_DEV_STATUS),
                "opener-socket" => drop(socket(AddressFamily::UNIX)),
                _ => {
                    let unix = socket(AddressFamily::UNIX);
                    assert!(unix.is_ok(), "{unix:?}");
                    let (family, flags) = (AddressFamily::UNIX, SocketFlags::CLOEXEC);
                    let pair = rustix::net::socketpair(family, SocketType::SEQPACKET, flags, None);
                    assert!(pair.is_ok(), "{pair:?}");
                    say("unix socket made\n");
                    drop(socket(AddressFamily::INET));
                }
            }
            std::process::exit(0);
        }
        let name = "sys::seccomp::tests::each_kind_of_forbidden_call_kills_the_process";
        for kind in ["tty-ioctl", "dm-dev-status", "inet-socket", "opener-socket"] {
            let (out, signal) = rerun_self(name, kind);
            assert!(out.contains("filter installed"), "{kind}: {out}");
            if kind == "inet-socket" {
                assert!(out.contains("unix socket made"), "{kind}: {out}");
            }
            assert_eq!(signal, Some(libc::SIGSYS), "{kind}: {out}");
        }
    }

    /// Runs in a child process (this test binary again): installs the filter, makes an
    /// allowed call, then a forbidden one, which must kill the child with SIGSYS.
    #[test]
    fn a_forbidden_call_kills_the_process() {
        // tests/lab/systemd/checks.sh runs this half as a service, with PRH_SECCOMP_CHILD=1.
        if let Some(role) = child_role() {
            let read_only = role == "read-only";
            install(&if read_only {
                full_policy()
            } else {
                Policy::default()
            })
            .unwrap();
            let _ = rustix::process::getpid(); // allowed
            say("allowed calls work\n");
            let open = |flags| rustix::fs::open("/dev/null", flags, rustix::fs::Mode::empty());
            let read = open(rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC);
            assert_eq!(read.is_ok(), read_only, "{read:?}");
            let write = open(rustix::fs::OFlags::RDWR);
            assert_eq!(write.err(), Some(rustix::io::Errno::ACCESS));
            say("open refused\n");
            let _ = rustix::process::getppid(); // not allowed: kills
            std::process::exit(0);
        }
        let name = "sys::seccomp::tests::a_forbidden_call_kills_the_process";
        for role in ["no-opens", "read-only"] {
            let (out, signal) = rerun_self(name, role);
            assert!(
                out.contains("allowed calls work") && out.contains("open refused"),
                "{role}: {out}"
            );
            assert_eq!(signal, Some(libc::SIGSYS), "{role}: {out}");
        }
    }
}
