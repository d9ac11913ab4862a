//! SCSI PR on dm-multipath maps, as libmpathpersist (multipath-tools 0.14.3) does it, in
//! Rust: PR IN through one working path, REGISTER on every path, the other PR OUT service
//! actions through one path, and multipathd told what changed.
//!
//! * Detection is the C helper's `is_mpath`: a block device whose device-mapper table's
//!   first target is `multipath`. Other fds cost one `fstat`; block devices one ioctl.
//! * The map must have an `mpath-` uuid and one target; paths come from its table and status,
//!   and each is opened as `/dev/<kernel name>` from `/sys/dev/block/MAJ:MIN` (no udev
//!   links), checked to be the right device number.
//! * The path checker is TEST UNIT READY on each path (GOOD, or the standby "ghost" sense
//!   02/04/0B, counts as up), run on every path once per command, where libmpathpersist
//!   runs the checker multipath.conf configures.
//! * The reservation key comes from multipathd (`getprkey`), else multipath.conf and the
//!   prkeys file are read here; see [`keys`].
//! * REGISTER conflicts are retried with REGISTER AND IGNORE EXISTING KEY (0.13 and later),
//!   not rolled back; see [`pr`].
//! * A reservation held through a path that is gone is moved with the map suspended
//!   (noflush): PREEMPT of our own key through a working path, RELEASE there, REGISTER AND
//!   IGNORE on every path, resume. The resume passes no udev cookie, so udev's rules run as
//!   for any resume (libmpathpersist asks them to skip kpartx when `skip_kpartx` is set).
//! * Results are mapped to status and sense as the C helper's `mpath_reconstruct_sense`.
//!   PR IN data is passed through as the device returned it (as [`super::sgio`]), not
//!   re-encoded and zero-padded to the allocation length as the C helper does, and READ FULL
//!   STATUS is served, which the C helper refuses on multipath maps.

pub mod keys;
pub mod multipathd;
pub mod opener;
pub mod pr;
pub mod record;
pub mod suspended;
pub mod table;

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, OnceLock, PoisonError};
use std::time::Duration;

use super::{BlockDevice, ExecOptions, Outcome, Request, clip_payload, fail_with};
use crate::errors::{strerror, strerror_errno};
use crate::protocol::PR_HELPER_DATA_SIZE;
use crate::scsi::pr::{self as scsi_pr, OutSa, ProutParams};
use crate::scsi::sense::{self, SenseCode};
use crate::scsi::status;
use crate::sys::dm;
use crate::sys::sg::{self, DataPhase, SgIoResult};

use pr::{Ctx, PathExecutor, PathInfo};
pub use pr::{Mpr, Report};
use table::DevNum;

/// libmpathpersist's SG_IO timeout on a path (`TIMEOUT`).
const PATH_TIMEOUT_MS: u32 = 2000;
/// Per-path retries on UNIT ATTENTION and "becoming ready" (`MAXRETRY`).
const MAX_RETRY: usize = 5;
/// The longest a map stays suspended while a reservation moves between its paths: a path
/// whose commands hang in the kernel (a target that never answers, SCSI error handling
/// waiting on it) must not hold every write of the VM for as long. Past it the map is
/// resumed while the command still waits: the VM's I/O may then meet a path not registered
/// yet (RESERVATION CONFLICT, an error it sees) rather than wait without end. Normal moves
/// take well under a second; each path command has a 2 s timeout and multipathd 4 s.
const SUSPEND_DEADLINE: Duration = Duration::from_secs(15);
/// The dm uuid prefix of maps multipathd made (`UUID_PREFIX`).
const UUID_PREFIX: &str = "mpath-";
/// `MPATH_MX_TIDS`: transport IDs the C helper accepts in one parameter list.
const MAX_TRANSPORT_IDS: usize = 32;

/// A dm-multipath map, as detection found it.
#[derive(Debug, Clone)]
pub struct Map {
    pub dev: DevNum,
    /// dm name: the alias multipathd knows the map by.
    pub name: String,
    pub uuid: String,
    pub target_count: usize,
    /// The multipath target's table parameters.
    pub table: String,
}

impl Map {
    /// The WWID: the uuid without its `mpath-` prefix (`None` when the map is not
    /// multipathd's).
    pub fn wwid(&self) -> Option<&str> {
        self.uuid.strip_prefix(UUID_PREFIX)
    }
}

/// Opens `/dev/mapper/control` now, for the daemon to call before its sandbox forbids
/// read-write opens. Without it the first multipath request opens it.
///
/// # Errors
/// Why it could not be opened; multipath maps then go to SG_IO like any device.
pub fn init() -> io::Result<()> {
    dm::init()
}

/// What serving multipath maps needs of the sandbox: the device-mapper ioctls, multipathd's
/// control socket (socket, connect, setsockopt), a reply socketpair per request to the path
/// opener, readlinkat of `/sys/dev/block` links and getdents64 of conf.d; read-only opens of
/// /sys, of multipath.conf and /etc/multipath (conf.d, prkeys), and of the path nodes in
/// /dev unless a path opener opens them.
pub fn sandbox_needs(path_opener: bool) -> crate::daemon::sandbox::Needs {
    let mut read: Vec<std::path::PathBuf> = ["/sys", keys::CONFIG_FILE, "/etc/multipath"]
        .map(Into::into)
        .into();
    if !path_opener {
        read.push("/dev".into());
    }
    crate::daemon::sandbox::Needs {
        syscalls: vec![
            libc::SYS_socketpair,
            libc::SYS_readlinkat,
            libc::SYS_getdents64,
            libc::SYS_socket,
            libc::SYS_connect,
            libc::SYS_setsockopt,
        ],
        ioctls: dm::ALL_IOCTLS.to_vec(),
        read,
        remove_in: Vec::new(),
    }
}

/// The map behind `fd`, when it is a dm-multipath map. Anything but a block device returns
/// at once; a block device dm does not know (`ENXIO`), or any dm failure (no
/// `/dev/mapper/control`, no `CAP_SYS_ADMIN`), reads as "not multipath" (the C helper exits
/// on the latter).
pub fn detect(block: &BlockDevice<'_>) -> Option<Map> {
    let dev = block_dev_num(block)?;
    let (info, targets) = dm::table_status(dev.major, dev.minor, true).ok()?;
    let first = targets.first()?;
    if first.target_type != "multipath" {
        return None;
    }
    Some(Map {
        dev,
        name: info.name,
        uuid: info.uuid,
        target_count: targets.len(),
        table: first.params.clone(),
    })
}

/// Runs the request on the map's paths; also gives what the command did: the paths it went
/// to (for `pr-client -v`) and what multipathd answered ([`Report::multipathd_unreachable`]
/// for a log line).
pub fn run(
    req: &Request,
    map: &Map,
    sense_area: &mut [u8],
    payload: &mut [u8],
    opts: &ExecOptions,
) -> (Outcome, Report) {
    let cdb = &req.cdb.cdb;
    // The C helper's own checks, before the library sees anything.
    let checked = if req.cdb.is_pr_out() {
        check_prout(cdb, &payload[..req.cdb.transfer_length]).map(Some)
    } else if scsi_pr::InSa::from_byte(cdb[1]).is_none() {
        Err(sense::INVALID_FIELD)
    } else {
        Ok(None)
    };
    let params = match checked {
        Ok(p) => p,
        Err(code) => return (fail_with(code, sense_area), Report::default()),
    };
    let paths = match discover(map) {
        Ok(paths) => paths,
        Err(problem) => {
            let report = Report {
                problems: vec![problem],
                ..Report::default()
            };
            let outcome = mpath_outcome(
                Mpr::DmmpError,
                req.device.as_fd(),
                sense_area,
                opts.sgio_timeout_ms,
            );
            return (outcome, report);
        }
    };
    let exec = RealPaths::new(map, req.device.as_fd(), &paths, opts.path_opener.as_deref());
    test_pause("start");
    let infos: Vec<PathInfo> = paths.iter().map(|p| p.info).collect();
    let daemon = multipathd::Socket;
    // PR OUT needs the map's configuration and key; PR IN neither.
    let (config, key, report) = match &params {
        None => Default::default(),
        Some(_) => {
            let wwid = map.wwid().unwrap_or_default();
            let texts = keys::read_config_files();
            let config = keys::map_config(texts.iter().map(String::as_str), wwid);
            let mut report = Report::default();
            let key = pr::configured_key(
                &daemon,
                &map.name,
                config.key_source,
                || {
                    let text = std::fs::read_to_string(keys::PRKEYS_FILE).ok()?;
                    keys::prkey_for(&text, wwid)
                },
                &mut report,
            );
            report.configured_key = Some(key);
            (config, key, report)
        }
    };
    let mut ctx = Ctx::new(&exec, &daemon, &infos, &map.name, config, key, report);
    let (result, payload_len) = match params {
        None => {
            let (r, n) = ctx.prin(&pr::cdb10(cdb), &mut payload[..PR_HELPER_DATA_SIZE]);
            (r, clip_payload(n, req.cdb.transfer_length))
        }
        Some((sa, params)) => (ctx.prout(sa, cdb[2] >> 4, cdb[2] & 0x0f, params), 0),
    };
    let mut report = ctx.into_report();
    report.problems.extend(exec.into_problems());
    let mut outcome = mpath_outcome(result, req.device.as_fd(), sense_area, opts.sgio_timeout_ms);
    if outcome.status == status::GOOD {
        outcome.payload_len = payload_len;
    }
    (outcome, report)
}

/// The map's paths as its table and status give them, for `pr-client -v`: number, kernel
/// name and the kernel's path state, e.g. `8:0 (sda) active, 8:16 (sdb) failed`.
///
/// # Errors
/// Why the paths could not be read.
pub fn describe_paths(map: &Map) -> Result<String, String> {
    let paths = discover(map)?;
    let described: Vec<String> = paths
        .iter()
        .map(|p| {
            format!(
                "{} ({}) {}",
                p.info.dev,
                p.name.as_deref().unwrap_or("?"),
                if p.info.dm_active { "active" } else { "failed" }
            )
        })
        .collect();
    Ok(described.join(", "))
}

/// `multipath_pr_out`'s checks of the CDB and parameter list; the fields libmpathpersist
/// takes from them.
fn check_prout(cdb: &[u8; 16], param: &[u8]) -> Result<(OutSa, ProutParams), SenseCode> {
    if param.len() < scsi_pr::PR_OUT_FIXED_PARAM_SIZE {
        return Err(sense::INVALID_PARAM_LEN);
    }
    // The whole byte, as the C helper compares it: REGISTER AND MOVE and beyond are refused.
    let sa = match OutSa::from_byte(cdb[1]) {
        Some(OutSa::RegisterAndMove | OutSa::ReplaceLostReservation) | None => {
            return Err(sense::INVALID_FIELD);
        }
        Some(sa) => sa,
    };
    if param.len() > 24 {
        check_transport_ids(param)?;
    }
    // Sent on as libmpathpersist sends it: the TransportIDs only with SPEC_I_PT.
    ProutParams::decode(sa as u8, param)
        .map(|p| (sa, p))
        .ok_or(sense::INVALID_PARAM_LEN)
}

/// The transport-ID list of a parameter list longer than 24 bytes, checked as the C helper
/// does (Fibre Channel, iSCSI and SAS IDs only).
fn check_transport_ids(param: &[u8]) -> Result<(), SenseCode> {
    if param.len() < 28 {
        return Err(sense::INVALID_PARAM_LEN);
    }
    let listed = scsi_pr::be32(param, 24) as usize;
    let end = listed
        .checked_add(28)
        .filter(|&e| e <= param.len())
        .ok_or(sense::INVALID_PARAM)?;
    let mut i = 28;
    let mut count = 0;
    while i < end {
        count += 1;
        if count > MAX_TRANSPORT_IDS {
            return Err(sense::INVALID_PARAM);
        }
        i += match param[i] & 0xcf {
            // Fibre Channel and SAS: 24 bytes.
            0x00 | 0x06 if i + 24 <= end => 24,
            // iSCSI: length-prefixed, NUL-terminated name.
            0x05 | 0x45 if i + 4 <= end => {
                let len = usize::from(scsi_pr::be16(param, i + 2));
                if len > 252 || len % 4 != 0 || i + len + 4 > end {
                    return Err(sense::INVALID_PARAM);
                }
                if !param[i + 4..i + 4 + len].contains(&0) {
                    return Err(sense::INVALID_PARAM);
                }
                len + 4
            }
            _ => return Err(sense::INVALID_PARAM),
        };
    }
    Ok(())
}

/// `mpath_reconstruct_sense`: the reply for a libmpathpersist result. For the sense keys it
/// keeps no sense for, a TEST UNIT READY on the map reports the device's current state.
fn mpath_outcome(
    r: Mpr,
    map_fd: BorrowedFd<'_>,
    sense_area: &mut [u8],
    timeout_ms: u32,
) -> Outcome {
    let bare = |status| Outcome {
        status,
        payload_len: 0,
    };
    let code = match r {
        Mpr::Success => return bare(status::GOOD),
        Mpr::ReservConflict => return bare(status::RESERVATION_CONFLICT),
        Mpr::SenseNotReady
        | Mpr::SenseMediumError
        | Mpr::SenseHardwareError
        | Mpr::SenseAbortedCommand => {
            let tur = sg::sg_io(map_fd, &[0u8; 16], DataPhase::None, sense_area, timeout_ms);
            let (st, _) = super::sgio::map_result(
                tur.map_err(|e| e.raw_os_error().unwrap_or(libc::EIO)),
                sense_area,
            );
            if st != status::GOOD {
                return bare(st);
            }
            match r {
                Mpr::SenseNotReady => sense::NOT_READY,
                Mpr::SenseMediumError => sense::READ_ERROR,
                Mpr::SenseHardwareError => sense::TARGET_FAILURE,
                _ => sense::IO_ERROR,
            }
        }
        Mpr::SenseUnitAttention => sense::SCSI_BUS_RESET,
        Mpr::IllegalReq => sense::INVALID_PARAM,
        Mpr::NoSense => sense::NO_SENSE,
        _ => sense::LUN_COMM_FAILURE,
    };
    fail_with(code, sense_area)
}

/// A path with where to open it.
#[derive(Debug, Clone)]
struct PathDevice {
    info: PathInfo,
    /// Kernel name (`sdb`) from sysfs.
    name: Option<String>,
}

/// Paths of the map from its table and a fresh status. An error (DMMP_ERROR) says why when
/// the map is not multipathd's or cannot be read (callers name the map).
fn discover(map: &Map) -> Result<Vec<PathDevice>, String> {
    if map.wwid().is_none() {
        return Err(format!("uuid '{}' is not multipathd's", map.uuid));
    }
    if map.target_count != 1 {
        return Err(format!("{} targets", map.target_count));
    }
    let (_, targets) = dm::table_status(map.dev.major, map.dev.minor, false)
        .map_err(|e| format!("cannot read its status: {}", strerror(&e)))?;
    let status = targets
        .first()
        .ok_or_else(|| "no target in its status".to_owned())?;
    let paths = table::paths(&map.table, &status.params)
        .map_err(|e| format!("table or status not understood: {e}"))?;
    Ok(paths
        .iter()
        .map(|p| {
            let link = rustix::fs::readlinkat(
                rustix::fs::CWD,
                format!("/sys/dev/block/{}", p.dev),
                Vec::new(),
            )
            .ok();
            let (name, host) = link
                .as_ref()
                .map(|l| parse_sysfs_link(&l.to_string_lossy()))
                .unwrap_or_default();
            PathDevice {
                info: PathInfo {
                    dev: p.dev,
                    host,
                    dm_active: p.active,
                },
                name,
            }
        })
        .collect())
}

/// The device number of a block device; `None` for anything else (or when fstat fails).
pub fn block_dev_num(block: &BlockDevice<'_>) -> Option<DevNum> {
    block.stat().map(|st| DevNum {
        major: rustix::fs::major(st.st_rdev),
        minor: rustix::fs::minor(st.st_rdev),
    })
}

/// The kernel name and SCSI host number from a `/sys/dev/block/MAJ:MIN` link such as
/// `../../devices/pci0000:00/…/host2/target2:0:0/2:0:0:1/block/sdb`: the last component,
/// and the `hostN` component (or the H of the `H:C:T:L` component before `block`).
pub fn parse_sysfs_link(link: &str) -> (Option<String>, Option<u32>) {
    let parts: Vec<&str> = link.split('/').filter(|s| !s.is_empty()).collect();
    let name = parts
        .last()
        .filter(|n| *n != &".." && *n != &".")
        .map(|n| (*n).to_owned());
    let host = parts
        .iter()
        .rev()
        .find_map(|c| c.strip_prefix("host").and_then(|n| n.parse().ok()))
        .or_else(|| {
            let block = parts.iter().rposition(|c| *c == "block")?;
            let hctl = parts.get(block.checked_sub(1)?)?;
            let fields: Vec<&str> = hctl.split(':').collect();
            if fields.len() != 4 {
                return None;
            }
            fields[0].parse().ok()
        });
    (name, host)
}

/// The real paths: opened lazily, once per command, shared by the worker threads.
struct RealPaths<'a> {
    map_name: &'a str,
    /// The map's dm uuid, which names it in the record file ([`record`]) across a rename.
    map_uuid: &'a str,
    /// The map as the client passed it, and its number: the path opener's proof (`-u`).
    map_fd: BorrowedFd<'a>,
    map_dev: DevNum,
    paths: &'a [PathDevice],
    /// Who opens the nodes under `-u`/`-g`; without one, this process opens them.
    opener: Option<&'a dyn opener::PathOpener>,
    fds: Vec<OnceLock<Option<OwnedFd>>>,
    /// Paths that could not be opened, and why, for the report.
    problems: std::sync::Mutex<Vec<String>>,
    /// The suspension in progress: the thread that resumes the map at [`SUSPEND_DEADLINE`].
    deadline: std::sync::Mutex<Option<(Arc<Deadline>, std::thread::JoinHandle<()>)>>,
}

/// Between a suspension's watcher thread and the request that suspended the map.
#[derive(Debug, Default)]
struct Deadline {
    /// (the request resumed the map, the watcher resumed it at the deadline)
    state: std::sync::Mutex<(bool, bool)>,
    wake: std::sync::Condvar,
}

impl Deadline {
    /// The watcher: waits until the request resumes the map or the deadline passes; then
    /// resumes it itself (under the lock, so never at the same time as the request).
    fn watch(&self, deadline: Duration, resume: impl FnOnce() -> bool) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut state, _) = self
            .wake
            .wait_timeout_while(state, deadline, |s| !s.0)
            .unwrap_or_else(PoisonError::into_inner);
        if !state.0 && resume() {
            state.1 = true;
        }
    }
}

impl<'a> RealPaths<'a> {
    fn new(
        map: &'a Map,
        map_fd: BorrowedFd<'a>,
        paths: &'a [PathDevice],
        opener: Option<&'a dyn opener::PathOpener>,
    ) -> Self {
        RealPaths {
            map_name: &map.name,
            map_uuid: &map.uuid,
            map_fd,
            map_dev: map.dev,
            paths,
            opener,
            fds: paths.iter().map(|_| OnceLock::new()).collect(),
            problems: std::sync::Mutex::new(Vec::new()),
            deadline: std::sync::Mutex::new(None),
        }
    }

    /// Starts the thread that resumes the map at [`SUSPEND_DEADLINE`] if the request has not.
    /// Without a thread (none could be made) the map waits for the request, as before.
    fn watch_deadline(&self) {
        let deadline = Arc::new(Deadline::default());
        let (uuid, name) = (self.map_uuid.to_owned(), self.map_name.to_owned());
        let watcher = Arc::clone(&deadline);
        let thread = std::thread::Builder::new()
            .name("mpath-suspend".into())
            .spawn(move || {
                watcher.watch(SUSPEND_DEADLINE, || {
                    let ok = dm::resume(&name).is_ok();
                    if ok {
                        suspended::SUSPENDED.forget(&name);
                        record::note_resume(&uuid, &name);
                    }
                    ok
                });
            });
        if let Ok(thread) = thread {
            *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((deadline, thread));
        }
    }

    fn into_problems(self) -> Vec<String> {
        self.problems
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// `/dev/<name>` read-only, as libmpathpersist opens paths, if it is the path's number;
    /// under `-u`/`-g` the path opener opens it and checks the same.
    fn fd(&self, path: usize) -> Option<BorrowedFd<'_>> {
        self.fds[path]
            .get_or_init(|| {
                let opened = self.open(&self.paths[path]);
                if let Err(problem) = &opened {
                    if let Ok(mut problems) = self.problems.lock() {
                        problems.push(problem.clone());
                    }
                }
                opened.ok()
            })
            .as_ref()
            .map(AsFd::as_fd)
    }

    fn open(&self, p: &PathDevice) -> Result<OwnedFd, String> {
        let dev = p.info.dev;
        if let Some(opener) = self.opener {
            let req = opener::OpenRequest {
                map: self.map_dev,
                path: dev,
            };
            return opener
                .open(self.map_fd, req)
                .map_err(|r| format!("path {dev}: path opener: {}", r.message));
        }
        let name = p
            .name
            .as_deref()
            .ok_or_else(|| format!("path {dev}: no kernel name in /sys/dev/block/{dev}"))?;
        let node = format!("/dev/{name}");
        let fd = opener::open_path_node(&node).map_err(|e| {
            format!(
                "path {dev}: cannot open {node}: {}",
                strerror_errno(e.raw_os_error())
            )
        })?;
        opener::clear_nonblock(fd.as_fd()).map_err(|e| {
            let e = strerror_errno(e.raw_os_error());
            format!("path {dev}: {node}: cannot clear O_NONBLOCK: {e}")
        })?;
        if block_dev_num(&BlockDevice::of(fd.as_fd())) == Some(dev) {
            Ok(fd)
        } else {
            Err(format!("path {dev}: {node} is another device"))
        }
    }

    /// One command with libmpathpersist's per-path retries.
    fn command(
        &self,
        path: usize,
        cdb: &[u8],
        mut data: Option<&mut [u8]>,
        to_device: Option<&[u8]>,
    ) -> (Mpr, usize) {
        let Some(fd) = self.fd(path) else {
            return (Mpr::Retryable, 0);
        };
        let pr_out = to_device.is_some();
        let mut attempt = 0;
        loop {
            let mut sense_buf = [0u8; sense::SENSE_BUFFER_SIZE];
            let phase = match (&mut data, to_device) {
                (_, Some(param)) => DataPhase::ToDevice(param),
                (Some(buf), None) => DataPhase::FromDevice(buf),
                (None, None) => DataPhase::None,
            };
            let len = match &phase {
                DataPhase::FromDevice(b) => b.len(),
                _ => 0,
            };
            let res = sg::sg_io(fd, cdb, phase, &mut sense_buf, PATH_TIMEOUT_MS);
            let code = sense::decode(&sense_buf);
            let r = translate(res.as_ref().ok().copied(), code);
            let becoming_ready = code.is_some_and(|c| c.asc == 0x04 && c.ascq == 0x07);
            if attempt < MAX_RETRY {
                if r == Mpr::SenseUnitAttention {
                    attempt += 1;
                    continue;
                }
                if r == Mpr::SenseNotReady && becoming_ready {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
            }
            if pr_out && r == Mpr::SenseNotReady {
                return (Mpr::Retryable, 0);
            }
            let resid = res
                .map(|h| usize::try_from(h.resid.max(0)).unwrap_or(0))
                .unwrap_or(0);
            return (r, len.saturating_sub(resid));
        }
    }
}

/// `mpath_translate_response`: one SG_IO result as an `MPATH_PR_*` value.
pub fn translate(res: Option<SgIoResult>, code: Option<SenseCode>) -> Mpr {
    let Some(h) = res else {
        return Mpr::Other;
    };
    match h.status & 0x7e {
        0x00 => {}
        status::CHECK_CONDITION => {
            return match code.map_or(0, |c| c.key) {
                0x00 => Mpr::NoSense,
                0x01 => Mpr::Success,
                0x02 => Mpr::SenseNotReady,
                0x03 => Mpr::SenseMediumError,
                0x04 => Mpr::SenseHardwareError,
                0x05 => Mpr::IllegalReq,
                0x06 => Mpr::SenseUnitAttention,
                0x0b => Mpr::SenseAbortedCommand,
                _ => Mpr::Other,
            };
        }
        status::RESERVATION_CONFLICT => return Mpr::ReservConflict,
        _ => return Mpr::Other,
    }
    if h.host_status != 0 {
        return Mpr::Retryable;
    }
    if h.driver_status != 0 {
        return Mpr::Other;
    }
    Mpr::Success
}

/// What a TEST UNIT READY says about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Up,
    Down,
    Again,
}

/// libmultipath's tur checker, reduced: GOOD is up, a standby port (NOT READY 04/0B, the
/// checker's "ghost") is usable too, UNIT ATTENTION is asked again, anything else is down.
/// RESERVATION CONFLICT cannot come from TEST UNIT READY under SPC rules, but if a device
/// sends it the path answers, so it is up.
fn tur_verdict(res: Option<SgIoResult>, code: Option<SenseCode>) -> Verdict {
    let Some(h) = res else {
        return Verdict::Down;
    };
    if h.host_status != 0 {
        return Verdict::Down;
    }
    match (h.status & 0x7e, code) {
        (0x00 | status::RESERVATION_CONFLICT, _) => Verdict::Up,
        (status::CHECK_CONDITION, Some(c)) if c.key == 0x06 => Verdict::Again,
        (status::CHECK_CONDITION, Some(c)) if (c.key, c.asc, c.ascq) == (0x02, 0x04, 0x0b) => {
            Verdict::Up
        }
        _ => Verdict::Down,
    }
}

impl PathExecutor for RealPaths<'_> {
    fn check(&self, path: usize) -> bool {
        let Some(fd) = self.fd(path) else {
            return false;
        };
        for _ in 0..=MAX_RETRY {
            let mut sense_buf = [0u8; sense::SENSE_BUFFER_SIZE];
            let res = sg::sg_io(
                fd,
                &[0u8; 6],
                DataPhase::None,
                &mut sense_buf,
                PATH_TIMEOUT_MS,
            );
            match tur_verdict(res.ok(), sense::decode(&sense_buf)) {
                Verdict::Up => return true,
                Verdict::Down => return false,
                Verdict::Again => {}
            }
        }
        false
    }

    fn prout(&self, path: usize, cdb: &[u8; 10], param: &[u8]) -> Mpr {
        self.command(path, cdb, None, Some(param)).0
    }

    fn prin(&self, path: usize, cdb: &[u8; 10], buf: &mut [u8]) -> (Mpr, usize) {
        self.command(path, cdb, Some(buf), None)
    }

    fn suspend(&self) -> bool {
        suspended::install_panic_hook();
        suspended::SUSPENDED.record(self.map_name);
        record::note_suspend(self.map_uuid, self.map_name);
        let ok = dm::suspend_noflush(self.map_name).is_ok();
        if ok {
            // The pause first: a scenario that kills the daemon there must find the map
            // still suspended however slow its VM is.
            test_pause("suspended");
            self.watch_deadline();
        } else {
            suspended::SUSPENDED.forget(self.map_name);
            record::note_resume(self.map_uuid, self.map_name);
        }
        ok
    }

    fn resume(&self) -> bool {
        let watcher = self
            .deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut early = false;
        if let Some((deadline, thread)) = watcher {
            let mut state = deadline
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            state.0 = true;
            early = state.1;
            drop(state);
            deadline.wake.notify_all();
            let _ = thread.join();
        }
        if early {
            let problem = format!(
                "map {} resumed after {} s while a reservation was being moved between its \
                 paths (a path command did not return)",
                self.map_name,
                SUSPEND_DEADLINE.as_secs()
            );
            if let Ok(mut problems) = self.problems.lock() {
                problems.push(problem);
            }
            // Resumed and recorded by the watcher; the request's own resume is a no-op.
            return dm::resume(self.map_name).is_ok();
        }
        let ok = dm::resume(self.map_name).is_ok();
        suspended::SUSPENDED.forget(self.map_name);
        // A map that would not resume stays in the record: the next daemon to start after
        // this one tries again.
        if ok {
            record::note_resume(self.map_uuid, self.map_name);
        }
        ok
    }
}

/// Test only: `PR_HELPER_TEST_MPATH_PAUSE=STEP@FILE` holds a multipath request at STEP for
/// as long as FILE exists, so that a lab scenario can bring a fault at that moment (kill the
/// daemon, its path opener or multipathd) and then let the request go on by removing FILE.
/// STEP is `start` (the map's paths found, none opened, multipathd not asked yet),
/// `suspended` (the map just suspended to move a reservation), or the verb of a command to
/// multipathd, held before it is sent (`setprstatus`: after a REGISTER's path commands). Nothing under packaging/ sets
/// it; unset it costs an environment lookup per multipath request.
pub fn test_pause(step: &str) {
    let Some(value) = std::env::var_os("PR_HELPER_TEST_MPATH_PAUSE") else {
        return;
    };
    let Some((at, file)) = value.to_str().and_then(|v| v.split_once('@')) else {
        return;
    };
    if at != step {
        return;
    }
    let file = std::path::Path::new(file);
    // The sandbox allows stat and sleeps; a file is what the scenario controls.
    while file.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path opener that answers with /dev/null and remembers what it was asked.
    #[derive(Debug, Default)]
    struct FakeOpener {
        asked: std::sync::Mutex<Vec<opener::OpenRequest>>,
    }

    impl opener::PathOpener for FakeOpener {
        fn open(
            &self,
            _map_fd: BorrowedFd<'_>,
            req: opener::OpenRequest,
        ) -> Result<OwnedFd, opener::Refusal> {
            self.asked.lock().unwrap().push(req);
            Ok(std::fs::File::open("/dev/null").unwrap().into())
        }
    }

    /// Paths are opened by the opener the backend was handed (no process-wide one), each
    /// once per command, and never by this process while an opener is there (the nodes
    /// named here do not exist).
    #[test]
    fn paths_are_opened_by_the_opener_handed_to_the_backend() {
        let map = Map {
            dev: DevNum {
                major: 254,
                minor: 3,
            },
            name: "mpatha".into(),
            uuid: "mpath-36001405".into(),
            target_count: 1,
            table: String::new(),
        };
        let path = |minor| PathDevice {
            info: PathInfo {
                dev: DevNum { major: 8, minor },
                host: None,
                dm_active: true,
            },
            name: Some(format!("no-such-node-{minor}")),
        };
        let paths = [path(16), path(32)];
        let map_fd: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        let fake = FakeOpener::default();
        let real = RealPaths::new(&map, map_fd.as_fd(), &paths, Some(&fake));
        assert!(real.fd(1).is_some() && real.fd(0).is_some() && real.fd(1).is_some());
        let asked = fake.asked.lock().unwrap().clone();
        let want = |minor| opener::OpenRequest {
            map: map.dev,
            path: DevNum { major: 8, minor },
        };
        assert_eq!(asked, [want(32), want(16)]);
        // Without an opener this process opens /dev/NAME itself, and says why it could not.
        let alone = RealPaths::new(&map, map_fd.as_fd(), &paths, None);
        assert!(alone.fd(0).is_none());
        let problems = alone.into_problems();
        assert!(
            problems[0].contains("cannot open /dev/no-such-node-16"),
            "{problems:?}"
        );
    }

    /// Past the deadline the watcher resumes the map and says so; a request that resumed
    /// first leaves it nothing to do, however long it waited.
    #[test]
    fn the_suspension_deadline_resumes_only_a_map_the_request_has_not() {
        let late = Deadline::default();
        let mut called = false;
        late.watch(Duration::ZERO, || {
            called = true;
            true
        });
        assert!(called);
        assert_eq!(*late.state.lock().unwrap(), (false, true));

        let done = Deadline::default();
        done.state.lock().unwrap().0 = true;
        done.watch(Duration::from_secs(3600), || {
            panic!("resumed a resumed map")
        });
        assert_eq!(*done.state.lock().unwrap(), (true, false));

        // The request resumes while the watcher waits: woken, it resumes nothing.
        let racing = Arc::new(Deadline::default());
        let watcher = Arc::clone(&racing);
        let t = std::thread::spawn(move || {
            watcher.watch(Duration::from_secs(3600), || {
                panic!("resumed a resumed map")
            })
        });
        racing.state.lock().unwrap().0 = true;
        racing.wake.notify_all();
        t.join().unwrap();
        assert_eq!(*racing.state.lock().unwrap(), (true, false));
    }

    #[test]
    fn sysfs_links() {
        assert_eq!(
            parse_sysfs_link(
                "../../devices/pci0000:00/0000:00:04.0/virtio1/host2/target2:0:0/2:0:0:1/block/sdb"
            ),
            (Some("sdb".into()), Some(2))
        );
        assert_eq!(
            parse_sysfs_link(
                "../../devices/platform/host13/session4/target13:0:0/13:0:0:7/block/sdq"
            ),
            (Some("sdq".into()), Some(13))
        );
        assert_eq!(
            parse_sysfs_link("../../devices/x/7:0:0:1/block/sdc"),
            (Some("sdc".into()), Some(7))
        );
        assert_eq!(
            parse_sysfs_link("../../devices/virtual/block/dm-3"),
            (Some("dm-3".into()), None)
        );
    }

    fn result(status: u8, host: u16, driver: u16) -> Option<SgIoResult> {
        Some(SgIoResult {
            status,
            host_status: host,
            driver_status: driver,
            resid: 0,
            sense_len: 0,
        })
    }

    #[test]
    fn per_path_results_as_libmpathpersist() {
        let key = |k| {
            Some(SenseCode {
                key: k,
                asc: 0,
                ascq: 0,
            })
        };
        assert_eq!(translate(None, None), Mpr::Other);
        assert_eq!(translate(result(0, 0, 0), None), Mpr::Success);
        assert_eq!(translate(result(0x18, 0, 0), None), Mpr::ReservConflict);
        assert_eq!(
            translate(result(0x02, 0, 8), key(6)),
            Mpr::SenseUnitAttention
        );
        assert_eq!(translate(result(0x02, 0, 8), key(5)), Mpr::IllegalReq);
        assert_eq!(translate(result(0x02, 0, 8), key(1)), Mpr::Success);
        assert_eq!(translate(result(0x02, 0, 8), key(7)), Mpr::Other);
        assert_eq!(translate(result(0x02, 0, 8), None), Mpr::NoSense);
        assert_eq!(
            translate(result(0x02, 0, 8), key(0xb)),
            Mpr::SenseAbortedCommand
        );
        assert_eq!(translate(result(0x08, 0, 0), None), Mpr::Other);
        assert_eq!(translate(result(0, 0x01, 0), None), Mpr::Retryable);
        assert_eq!(translate(result(0, 0, 0x04), None), Mpr::Other);
        // The reserved low bit is masked off, as `status &= 0x7e`.
        assert_eq!(translate(result(0x19, 0, 0), None), Mpr::ReservConflict);
    }

    #[test]
    fn tur_checker() {
        let c = |key, asc, ascq| Some(SenseCode { key, asc, ascq });
        assert_eq!(tur_verdict(None, None), Verdict::Down);
        assert_eq!(tur_verdict(result(0, 0, 0), None), Verdict::Up);
        assert_eq!(tur_verdict(result(0, 0x01, 0), None), Verdict::Down);
        assert_eq!(tur_verdict(result(2, 0, 8), c(2, 4, 0x0b)), Verdict::Up);
        assert_eq!(tur_verdict(result(2, 0, 8), c(2, 4, 0x0c)), Verdict::Down);
        assert_eq!(tur_verdict(result(2, 0, 8), c(6, 0x29, 0)), Verdict::Again);
        assert_eq!(tur_verdict(result(0x18, 0, 0), None), Verdict::Up);
    }

    #[test]
    fn prout_parameter_checks() {
        let cdb = |sa| {
            let mut c = [0u8; 16];
            c[0] = 0x5f;
            c[1] = sa;
            c
        };
        assert_eq!(
            check_prout(&cdb(0), &[0; 23]),
            Err(sense::INVALID_PARAM_LEN)
        );
        assert_eq!(check_prout(&cdb(7), &[0; 24]), Err(sense::INVALID_FIELD));
        let mut p = [0u8; 24];
        p[7] = 1;
        p[15] = 2;
        p[20] = 0x05;
        let got = check_prout(&cdb(0), &p).unwrap().1;
        assert_eq!((got.reservation_key, got.service_action_key), (1, 2));
        assert!(got.all_tg_pt && got.aptpl && !got.spec_i_pt);
        assert_eq!(
            check_prout(&cdb(0), &[0; 26]),
            Err(sense::INVALID_PARAM_LEN)
        );
        // One SAS ID, kept with SPEC_I_PT only (libmpathpersist sends it only then).
        let mut p = vec![0u8; 52];
        p[27] = 24;
        p[28] = 0x06;
        let ids = |p: &[u8]| check_prout(&cdb(0), p).unwrap().1.transport_ids;
        assert!(ids(&p).is_empty());
        p[20] = scsi_pr::SPEC_I_PT;
        assert_eq!(ids(&p).len(), 24);
        p[27] = 25;
        assert_eq!(check_prout(&cdb(0), &p), Err(sense::INVALID_PARAM));
        p[27] = 24;
        p[28] = 0x01;
        assert_eq!(check_prout(&cdb(0), &p), Err(sense::INVALID_PARAM));
        // iSCSI: a name with its NUL, padded to 4.
        let mut p = vec![0u8; 28];
        p.extend_from_slice(&[0x05, 0, 0, 8]);
        p.extend_from_slice(b"iqn.x\0\0\0");
        p[27] = 12;
        assert!(check_prout(&cdb(6), &p).is_ok());
        let last = p.len() - 3;
        p[last..].copy_from_slice(b"abc");
        p[33..36].copy_from_slice(b"abc");
        assert_eq!(check_prout(&cdb(6), &p), Err(sense::INVALID_PARAM));
    }

    #[test]
    fn detect_is_quick_on_non_block_fds() {
        let f: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        assert!(detect(&BlockDevice::of(f.as_fd())).is_none());
        let f: OwnedFd = std::fs::File::open("/proc/self/status").unwrap().into();
        assert!(detect(&BlockDevice::of(f.as_fd())).is_none());
    }

    #[test]
    fn map_wwid() {
        let m = Map {
            dev: DevNum {
                major: 253,
                minor: 0,
            },
            name: "mpatha".into(),
            uuid: "mpath-3600140512".into(),
            target_count: 1,
            table: String::new(),
        };
        assert_eq!(m.wwid(), Some("3600140512"));
    }
}
