//! `--audit`: one record for every PR OUT (and, with `all`, every PR IN) naming who asked
//! (the peer process from SO_PEERCRED, its name, its VM), what (device, WWID, service action,
//! type, scope, keys, APTPL) and the outcome (status, sense in words, a multipath map's paths,
//! duration). Written after the reply is on its way, to stderr (the `-v` line format) or to
//! the journal's native socket with structured fields (`journalctl PR_VM=node2`).
//!
//! A record never delays or fails a command: the journal send is a non-blocking datagram, a
//! full or missing sink drops the record and counts it (STATUS= and the exit message say how
//! many). The peer's `/proc` files are read once per connection, just before its first
//! audited command runs (the peer then waits for the reply, so it cannot have exited yet);
//! the rest is read and written after the reply.

use std::fmt::{self, Write as _};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

use crate::protocol::CheckedCdb;
use crate::scsi::{pr, sense, status};

/// The journal's native protocol socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// `MESSAGE_ID=` of every audit record, so `journalctl MESSAGE_ID=...` finds them all.
pub const MESSAGE_ID: &str = "5a0e1f3c7b9d4e2a8c6b1d0f3e5a7c92";
/// Bytes of a peer's `/proc/PID/cmdline` read at most (QEMU's command lines are long).
const CMDLINE_MAX: usize = 64 * 1024;

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// One line per record on stderr, as `-v` prints.
    Stderr,
    /// The journal's native protocol on this datagram socket.
    Journal(PathBuf),
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

/// The audit sink and its counters, shared by every thread.
#[derive(Debug)]
pub struct Audit {
    config: Config,
    prog: String,
    /// The journal sink's socket: unconnected, so a journald restarted meanwhile is reached.
    journal: Option<(OwnedFd, SocketAddrUnix)>,
    written: AtomicU64,
    dropped: AtomicU64,
}

impl Audit {
    /// Opens the sink (a datagram socket for the journal; nothing for stderr). Called during
    /// start-up, before the sandbox, which refuses `socket`.
    ///
    /// # Errors
    /// The socket could not be made, or the path is too long for a socket address.
    pub fn new(config: Config, prog: &str) -> io::Result<Audit> {
        let journal = match &config.sink {
            Sink::Stderr => None,
            Sink::Journal(path) => {
                let addr = SocketAddrUnix::new(path.as_path())?;
                let sock = rustix::net::socket_with(
                    AddressFamily::UNIX,
                    SocketType::DGRAM,
                    SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                    None,
                )?;
                Some((sock, addr))
            }
        };
        Ok(Audit {
            config,
            prog: prog.to_owned(),
            journal,
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Whether a command gets a record.
    pub fn wants(&self, cdb: &CheckedCdb) -> bool {
        cdb.is_pr_out() || self.config.all
    }

    /// Records dropped so far (sink full, missing or refusing).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Writes one record; false when it was dropped.
    pub fn emit(&self, record: &Record<'_>) -> bool {
        let sent = match &self.journal {
            Some((sock, addr)) => {
                record.emit_with(&self.prog, true, |bytes| send_datagram(sock, addr, bytes))
            }
            None => record.emit_with(&self.prog, false, write_line),
        };
        let counter = if sent { &self.written } else { &self.dropped };
        counter.fetch_add(1, Ordering::Relaxed);
        sent
    }
}

/// One datagram, never waiting: EAGAIN (journald behind), ENOENT or ECONNREFUSED (no
/// journald) and the rest all drop it.
fn send_datagram(sock: &OwnedFd, addr: &SocketAddrUnix, bytes: &[u8]) -> bool {
    loop {
        return match rustix::net::sendto(
            sock,
            bytes,
            SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            addr,
        ) {
            Ok(n) => n == bytes.len(),
            Err(Errno::INTR) => continue,
            Err(_) => false,
        };
    }
}

/// A line on stderr. Where stderr is a socket (systemd's journal stream) the first send does
/// not wait: a full buffer drops the line. A pipe, file or terminal is written as `-v`'s
/// lines are.
fn write_line(bytes: &[u8]) -> bool {
    let stderr = io::stderr();
    let _guard = stderr.lock();
    let fd = rustix::stdio::stderr();
    let mut sent = match rustix::net::send(fd, bytes, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
        Ok(n) => n,
        Err(Errno::NOTSOCK) => 0,
        Err(_) => return false,
    };
    // Not a socket, or a stream socket that took part of the line: finish it.
    while sent < bytes.len() {
        match rustix::io::write(fd, &bytes[sent..]) {
            Ok(0) => return false,
            Ok(n) => sent += n,
            Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Who is on the other end of a connection: SO_PEERCRED, and what `/proc` says of the pid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    /// `/proc/PID/comm`.
    pub comm: Option<String>,
    /// The peer's cgroup (v2, else v1's systemd hierarchy).
    pub cgroup: Option<String>,
    /// The VM's name: libvirt's machine scope, else QEMU's `-name`.
    pub vm: Option<String>,
}

impl Peer {
    /// The connection's peer, its `/proc` files read under `proc_root` (`/proc`). When they
    /// cannot be read (hidden by hidepid, as `ProtectProc=invisible` does for a daemon under
    /// `-u` and a peer of another user), the cgroup comes from the peer's pidfd
    /// (`SO_PEERPIDFD`, `PIDFD_GET_INFO`) and the unified hierarchy under `cgroup_root`
    /// (`/sys/fs/cgroup`); a process gone leaves only pid, uid and gid.
    pub fn of_socket(sock: BorrowedFd<'_>, proc_root: &Path, cgroup_root: &Path) -> Peer {
        let Ok(cred) = rustix::net::sockopt::socket_peercred(sock) else {
            return Peer::default();
        };
        let (uid, gid) = (cred.uid.as_raw(), cred.gid.as_raw());
        let mut peer = Peer::resolve(cred.pid.as_raw_nonzero().get(), uid, gid, proc_root);
        if peer.cgroup.is_none() {
            let id = crate::sys::pidfd::peer_pidfd(sock)
                .and_then(|fd| crate::sys::pidfd::cgroup_id(fd.as_fd()));
            if let Ok(id) = id {
                peer.cgroup = cgroup_by_id(cgroup_root, id);
                let vm = peer.cgroup.as_deref().and_then(vm_from_cgroup);
                peer.vm = peer.vm.take().or(vm);
            }
        }
        peer
    }

    /// The peer with this pid, uid and gid, from `proc_root/PID/{comm,cgroup,cmdline}`.
    pub fn resolve(pid: i32, uid: u32, gid: u32, proc_root: &Path) -> Peer {
        let dir = proc_root.join(pid.to_string());
        let read = |name: &str, max: usize| read_small(&dir.join(name), max);
        let comm = read("comm", 64).map(|b| String::from_utf8_lossy(&b).trim_end().to_owned());
        let cgroup = read("cgroup", 16 * 1024)
            .and_then(|b| cgroup_path(&String::from_utf8_lossy(&b)).map(str::to_owned));
        let vm = cgroup
            .as_deref()
            .and_then(vm_from_cgroup)
            .or_else(|| read("cmdline", CMDLINE_MAX).and_then(|b| vm_from_cmdline(&b)));
        Peer {
            pid,
            uid,
            gid,
            comm,
            cgroup,
            vm,
        }
    }
}

/// Directories of the cgroup tree looked at, at most, for one peer.
const CGROUP_SEARCH_MAX: usize = 20_000;

/// The path (`/machine.slice/...`) of the cgroup v2 whose id is `id`: the unified hierarchy's
/// directory of that inode number, under `root` or, on a hybrid host, `root/unified`.
/// Breadth first, `machine.slice` first, and at most [`CGROUP_SEARCH_MAX`] directories.
pub fn cgroup_by_id(root: &Path, id: u64) -> Option<String> {
    let unified = [root.to_path_buf(), root.join("unified")]
        .into_iter()
        .find(|r| read_small(&r.join("cgroup.controllers"), 4096).is_some())
        .unwrap_or_else(|| root.to_path_buf());
    search_inode(&unified, id, CGROUP_SEARCH_MAX)
}

/// The directory under `root` (itself included) with inode number `ino`, as `/relative/path`.
fn search_inode(root: &Path, ino: u64, max: usize) -> Option<String> {
    use rustix::fs::{Dir, FileType};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut queue = std::collections::VecDeque::from([String::new()]);
    let mut seen = 0;
    while let Some(rel) = queue.pop_front() {
        seen += 1;
        if seen > max {
            return None;
        }
        let path = root.join(rel.trim_start_matches('/'));
        let opened = rustix::fs::open(path, flags, Mode::empty());
        let Ok((st, fd)) = opened.and_then(|fd| Ok((rustix::fs::fstat(&fd)?, fd))) else {
            continue;
        };
        if st.st_ino == ino {
            return Some(if rel.is_empty() { "/".to_owned() } else { rel });
        }
        let Ok(dir) = Dir::read_from(&fd) else {
            continue;
        };
        let mut children: Vec<String> = dir
            .filter_map(Result::ok)
            .filter(|e| e.file_type() == FileType::Directory)
            .filter_map(|e| e.file_name().to_str().ok().map(str::to_owned))
            .filter(|n| n != "." && n != "..")
            .collect();
        // libvirt's machines first.
        children.sort_by_key(|n| n != "machine.slice" && n != "machine");
        queue.extend(children.into_iter().map(|n| format!("{rel}/{n}")));
    }
    None
}

/// A small file's bytes, read with the calls the sandbox allows (read-only openat, read);
/// `None` when it cannot be opened or read (a process that exited, a hidden one).
fn read_small(path: &Path, max: usize) -> Option<Vec<u8>> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut out = vec![0u8; max];
    let mut got = 0;
    while got < max {
        match rustix::io::read(&fd, &mut out[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::INTR) => {}
            Err(_) => return None,
        }
    }
    out.truncate(got);
    Some(out)
}

/// The cgroup path from `/proc/PID/cgroup`: the unified hierarchy's line (`0::/path`), else
/// cgroup v1's systemd hierarchy (`N:name=systemd:/path`), else the first v1 line that names a
/// libvirt machine, else the first line's.
pub fn cgroup_path(text: &str) -> Option<&str> {
    let entries: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some((controllers, path))
        })
        .collect();
    let pick = |want: &dyn Fn(&str, &str) -> bool| {
        entries.iter().find(|(c, p)| want(c, p)).map(|&(_, p)| p)
    };
    pick(&|c, _| c.is_empty())
        .or_else(|| pick(&|c, _| c == "name=systemd"))
        .or_else(|| pick(&|_, p| p.contains("machine")))
        .or_else(|| entries.first().map(|&(_, p)| p))
        .filter(|p| !p.is_empty())
}

/// The VM a cgroup path belongs to, as libvirt names its cgroups: systemd's machine scope
/// `machine-qemu\x2dID\x2dNAME.scope` (libvirt 1.3 and later; `machine-qemu\x2dNAME.scope`
/// before), with systemd's `\xNN` escapes, or without systemd `qemu-ID-NAME.libvirt-qemu`.
pub fn vm_from_cgroup(path: &str) -> Option<String> {
    path.split('/').find_map(|component| {
        let scope = component
            .strip_prefix("machine-")
            .and_then(|c| c.strip_suffix(".scope"));
        let unit = match scope {
            Some(scope) => unescape_unit(scope),
            None => component.strip_suffix(".libvirt-qemu")?.to_owned(),
        };
        let rest = unit.strip_prefix("qemu-")?;
        // libvirt's domain id, when the name carries one ("1-node2").
        let name = match rest.split_once('-') {
            Some((id, name)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => rest,
        };
        (!name.is_empty()).then(|| name.to_owned())
    })
}

/// systemd's unit name escaping undone: `\xNN` is the byte NN (`\x2d` a `-`).
pub fn unescape_unit(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = s
            .get(i + 2..i + 4)
            .filter(|_| bytes[i..].starts_with(b"\\x"));
        let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
        out.push(byte.unwrap_or(bytes[i]));
        i += if byte.is_some() { 4 } else { 1 };
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// What a block device is, from `/sys/dev/block/MAJ:MIN`: its kernel name and its WWID
/// (a SCSI disk's `device/wwid`, an NVMe namespace's `wwid`, a dm map's uuid).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    pub name: Option<String>,
    pub wwid: Option<String>,
}

impl DeviceInfo {
    /// Reads the device's files under `sys_root` (`/sys`).
    pub fn read(major: u32, minor: u32, sys_root: &Path) -> DeviceInfo {
        let dir = sys_root.join(format!("dev/block/{major}:{minor}"));
        let text = |name: &str| {
            read_small(&dir.join(name), 4096)
                .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let name = text("dm/name").or_else(|| {
            text("uevent").and_then(|u| {
                u.lines()
                    .find_map(|l| l.strip_prefix("DEVNAME="))
                    .map(str::to_owned)
            })
        });
        let wwid = text("device/wwid")
            .or_else(|| text("wwid"))
            .or_else(|| text("dm/uuid"))
            .or_else(|| {
                read_small(&dir.join("device/vpd_pg83"), 4096).and_then(|p| wwid_from_vpd83(&p))
            });
        DeviceInfo { name, wwid }
    }
}

/// The logical unit's name from a Device Identification VPD page (0x83), as the kernel's
/// `wwid` attribute spells it: an NAA designator (`naa.HEX`), else EUI-64 (`eui.HEX`), else a
/// SCSI name string, else T10 vendor identification (`t10.TEXT`). For devices whose kernel
/// gives no `wwid` attribute.
pub fn wwid_from_vpd83(page: &[u8]) -> Option<String> {
    if page.len() < 4 || page[1] != 0x83 {
        return None;
    }
    let end = (4 + usize::from(u16::from_be_bytes([page[2], page[3]]))).min(page.len());
    let mut best: Option<(u8, String)> = None;
    let mut at = 4;
    while at + 4 <= end {
        let (assoc, kind, len) = ((page[at + 1] >> 4) & 3, page[at + 1] & 0x0f, page[at + 3]);
        let Some(id) = page.get(at + 4..at + 4 + usize::from(len)) else {
            break;
        };
        at += 4 + usize::from(len);
        if assoc != 0 {
            continue; // a port's or target's, not the logical unit's
        }
        let hex = || id.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let text = || {
            String::from_utf8_lossy(id)
                .trim_end_matches(['\0', ' '])
                .to_owned()
        };
        let (rank, name) = match kind {
            3 => (0, format!("naa.{}", hex())),
            2 => (1, format!("eui.{}", hex())),
            8 => (2, text()),
            1 => (3, format!("t10.{}", text())),
            _ => continue,
        };
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((rank, name));
        }
    }
    best.map(|(_, name)| name)
}

/// What the per-connection state keeps: the peer, and the last device's information.
#[derive(Debug, Default)]
pub struct ConnAudit {
    pub peer: Peer,
    pub device: Option<(u64, DeviceInfo)>,
}

/// The device's information from `cache` ([`ConnAudit::device`]), read when the connection's
/// device changed.
pub fn device_info<'a>(
    cache: &'a mut Option<(u64, DeviceInfo)>,
    rdev: u64,
    sys_root: &Path,
) -> &'a DeviceInfo {
    if cache.as_ref().map(|(d, _)| *d) != Some(rdev) {
        let info = DeviceInfo::read(rustix::fs::major(rdev), rustix::fs::minor(rdev), sys_root);
        *cache = Some((rdev, info));
    }
    &cache.as_ref().expect("just set").1
}

/// What is taken from a request before it runs (its device fd closes with the command, and
/// its parameter list shares the reply buffer).
#[derive(Debug, Clone)]
pub struct Pending {
    pub cdb: [u8; 16],
    /// PR OUT's parameter list, decoded once from its first 24 bytes (zeros where a shorter
    /// list ended); `None` for PR IN.
    pub params: Option<pr::ProutParams>,
    /// The descriptor's device number, if it is a device.
    pub rdev: Option<u64>,
    /// Whether that is a block device (whose /sys files name it).
    pub block: bool,
    pub started: Instant,
}

impl Pending {
    /// Notes a request about to run.
    pub fn capture(cdb: &CheckedCdb, device: BorrowedFd<'_>, params: &[u8]) -> Pending {
        let params = cdb.is_pr_out().then(|| {
            let mut fixed = [0u8; pr::PR_OUT_FIXED_PARAM_SIZE];
            let n = cdb.parameter_length().min(fixed.len()).min(params.len());
            fixed[..n].copy_from_slice(&params[..n]);
            pr::ProutParams::decode(cdb.cdb[1] & 0x1f, &fixed).unwrap_or_default()
        });
        use rustix::fs::FileType;
        let st = rustix::fs::fstat(device).ok();
        let (rdev, block) = match st.map(|st| FileType::from_raw_mode(st.st_mode)) {
            Some(FileType::BlockDevice) => (st.map(|st| st.st_rdev), true),
            Some(FileType::CharacterDevice) => (st.map(|st| st.st_rdev), false),
            _ => (None, false),
        };
        Pending {
            cdb: cdb.cdb,
            params,
            rdev,
            block,
            started: Instant::now(),
        }
    }
}

/// One audit record.
#[derive(Debug)]
pub struct Record<'a> {
    pub peer: &'a Peer,
    pub pending: &'a Pending,
    pub device: Option<&'a DeviceInfo>,
    pub status: u8,
    pub sense: Option<sense::SenseCode>,
    /// The paths a multipath map's command went to.
    pub paths: Vec<String>,
    pub duration: Duration,
}

/// A field value written straight into the output, with no allocation of its own.
type Visit<'v> = dyn FnMut(&'static str, &dyn fmt::Display) + 'v;

/// A field value that a closure writes into the output.
struct Show<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result>(F);

impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> fmt::Display for Show<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}

/// A name as a field value: upper case, blanks as underscores (`READ_KEYS`, `CHECK_CONDITION`).
fn upper_snake(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    name.chars().try_for_each(|c| {
        f.write_char(if c == ' ' {
            '_'
        } else {
            c.to_ascii_uppercase()
        })
    })
}

/// A field that is there only with a value.
fn some(f: &mut Visit<'_>, name: &'static str, value: Option<&String>) {
    if let Some(value) = value {
        f(name, value);
    }
}

thread_local! {
    /// Each thread's buffers for records: reused, so a record allocates nothing once warm.
    static BUFFERS: std::cell::RefCell<(String, String, Vec<u8>)> =
        const { std::cell::RefCell::new((String::new(), String::new(), Vec::new())) };
}

impl Record<'_> {
    fn is_pr_out(&self) -> bool {
        self.pending.cdb[0] == crate::scsi::cdb::PERSISTENT_RESERVE_OUT
    }

    /// Every field, in order, as (journal field name, value); the line is built from the same.
    pub fn visit(&self, f: &mut Visit<'_>) {
        let (out, cdb) = (self.is_pr_out(), &self.pending.cdb);
        let sa = cdb[1] & 0x1f;
        let action = |w: &mut fmt::Formatter<'_>| {
            let name = pr::sa_name(out, sa);
            upper_snake(w, name)?;
            if name == "reserved" {
                write!(w, "_0x{sa:02x}")?;
            }
            Ok(())
        };
        f("PR_ACTION", &Show(action));
        f("PR_DIRECTION", &if out { "OUT" } else { "IN" });
        if let Some(params) = &self.pending.params {
            let prtype = cdb[2] & 0x0f;
            f(
                "PR_TYPE",
                &Show(|w| match pr::PrType::from_byte(prtype) {
                    Some(t) => w.write_str(t.short_name()),
                    None => write!(w, "{prtype}"),
                }),
            );
            f("PR_SCOPE", &(cdb[2] >> 4));
            let key = |k: u64| Show(move |w| write!(w, "0x{k:016x}"));
            f("PR_KEY", &key(params.reservation_key));
            f("PR_SA_KEY", &key(params.service_action_key));
            f("PR_APTPL", &u8::from(params.aptpl));
        }
        if let Some(rdev) = self.pending.rdev {
            let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
            f("PR_DEVICE", &Show(|w| write!(w, "{major}:{minor}")));
        }
        some(
            f,
            "PR_DEVICE_NAME",
            self.device.and_then(|d| d.name.as_ref()),
        );
        some(
            f,
            "PR_DEVICE_WWID",
            self.device.and_then(|d| d.wwid.as_ref()),
        );
        if let Some((first, rest)) = self.paths.split_first() {
            let joined = |w: &mut fmt::Formatter<'_>| {
                w.write_str(first)?;
                rest.iter().try_for_each(|p| write!(w, ",{p}"))
            };
            f("PR_PATHS", &Show(joined));
        }
        f("PR_PEER_PID", &self.peer.pid);
        f("PR_PEER_UID", &self.peer.uid);
        f("PR_PEER_GID", &self.peer.gid);
        some(f, "PR_PEER_COMM", self.peer.comm.as_ref());
        some(f, "PR_VM", self.peer.vm.as_ref());
        some(f, "PR_PEER_CGROUP", self.peer.cgroup.as_ref());
        f(
            "PR_STATUS",
            &Show(|w| upper_snake(w, status::name(self.status))),
        );
        if let Some(s) = self.sense {
            // Sense key, ASC and ASCQ in words: `Illegal Request 05/20/00: Invalid command
            // operation code`.
            let words = |w: &mut fmt::Formatter<'_>| {
                let key = sense::key_name(s.key);
                write!(w, "{key} {:02x}/{:02x}/{:02x}: ", s.key, s.asc, s.ascq)?;
                match sense::asc_name(s.asc, s.ascq) {
                    Some(words) => w.write_str(words),
                    None => write!(w, "ASC 0x{:02x} ASCQ 0x{:02x}", s.asc, s.ascq),
                }
            };
            f("PR_SENSE", &Show(words));
        }
        f("PR_DURATION_US", &self.duration.as_micros());
    }

    /// [`Record::visit`] with each value written out in `scratch`.
    fn visit_text(&self, scratch: &mut String, f: &mut dyn FnMut(&'static str, &str)) {
        self.visit(&mut |name, value| {
            scratch.clear();
            let _ = write!(scratch, "{value}");
            f(name, scratch);
        });
    }

    /// The record as one line into `line`: `ACTION key=value ...`, values with blanks quoted.
    fn write_message(&self, line: &mut String, scratch: &mut String) {
        self.visit_text(scratch, &mut |name, value| match name {
            "PR_ACTION" => line.push_str(value),
            "PR_DIRECTION" => {}
            _ => {
                line.push(' ');
                line.extend(name["PR_".len()..].chars().map(|c| c.to_ascii_lowercase()));
                line.push('=');
                let quote = value.is_empty()
                    || value
                        .chars()
                        .any(|c| c.is_whitespace() || c == '"' || c.is_control());
                if quote {
                    let _ = write!(line, "{value:?}");
                } else {
                    line.push_str(value);
                }
            }
        });
    }

    /// Writes the record with this thread's reused buffers: to `sink` as the journal's
    /// datagram (MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, MESSAGE_ID and the PR_ fields), or as
    /// the stderr line `PROG: audit: ...`.
    fn emit_with(&self, prog: &str, journal: bool, sink: impl FnOnce(&[u8]) -> bool) -> bool {
        BUFFERS.with(|b| {
            let Ok(mut b) = b.try_borrow_mut() else {
                return false;
            };
            let (line, scratch, datagram) = &mut *b;
            line.clear();
            if !journal {
                line.push_str(prog);
                line.push_str(": audit: ");
                self.write_message(line, scratch);
                line.push('\n');
                return sink(line.as_bytes());
            }
            let (prefix, priority) = if self.is_pr_out() {
                ("PR OUT ", "5")
            } else {
                ("PR IN ", "6")
            };
            line.push_str(prefix);
            self.write_message(line, scratch);
            datagram.clear();
            journal_field(datagram, "MESSAGE", line);
            journal_field(datagram, "PRIORITY", priority);
            journal_field(datagram, "SYSLOG_IDENTIFIER", prog);
            journal_field(datagram, "MESSAGE_ID", MESSAGE_ID);
            self.visit_text(scratch, &mut |name, value| {
                journal_field(datagram, name, value);
            });
            sink(datagram)
        })
    }
}

/// One field of the journal's native protocol: `NAME=value\n`, or for a value with a newline
/// `NAME\n`, its length as 64-bit little-endian, the value, `\n`.
fn journal_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// Reads the journal's native datagram back into (name, value) pairs (tests, `pr-client`).
pub fn parse_journal_fields(mut bytes: &[u8]) -> Vec<(String, String)> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut out = Vec::new();
    while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
        let (line, rest) = (&bytes[..nl], &bytes[nl + 1..]);
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            out.push((text(&line[..eq]), text(&line[eq + 1..])));
            bytes = rest;
            continue;
        }
        let Some(len) = rest.get(..8) else { break };
        let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
        let Some(value) = rest.get(8..8 + len) else {
            break;
        };
        out.push((text(line), text(value)));
        bytes = rest.get(8 + len + 1..).unwrap_or_default();
    }
    out
}

/// The peer of a connection, read now: for [`ConnAudit`] at a connection's first record.
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
