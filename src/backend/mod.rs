//! Backends run one checked PR command on the device fd a client passed and fill the reply.
//!
//! Each request is routed by its fd: a dm-multipath map goes to [`multipath`] (PR on every
//! path, as libmpathpersist does), everything else to SG_IO ([`sgio`]), and a block device
//! that does not answer SG_IO (NVMe, any driver with pr_ops) to the block layer's IOC_PR_*
//! ioctls ([`blkpr`]).

pub mod blkpr;
pub mod multipath;
pub mod sgio;

use std::cell::OnceCell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::protocol::{
    CheckedCdb, PR_HELPER_DATA_SIZE, PR_HELPER_MAX_REPLY_SIZE, PR_HELPER_REPLY_HEADER_SIZE,
};
use crate::scsi::sense::{self, SenseCode};
use crate::scsi::status;

/// How backends run commands, fixed at start-up.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// SG_IO timeout in milliseconds (the C helper passes 1).
    pub sgio_timeout_ms: u32,
    /// Test only: a delay before each command, from `PR_HELPER_TEST_SGIO_DELAY_MS`, so tests
    /// without a slow SCSI device can hold requests in flight. In every build, so that a test
    /// of the release binary proves what it says; nothing but a test sets it (no unit, init
    /// script or packaging file does), and unset it costs one branch per command.
    pub test_delay: Option<TestDelay>,
    /// Which backend serves fds that are not multipath maps (`--pr-backend`).
    pub route: Route,
    /// Whether dm-multipath maps get libmpathpersist's treatment (off: SG_IO on the map, which
    /// the kernel forwards to one path).
    pub multipath: bool,
    /// Who opens a map's path nodes when this process cannot (`-u`/`-g`: the path opener the
    /// daemon started before it dropped); `None`: the backend opens them itself.
    pub path_opener: Option<std::sync::Arc<dyn multipath::opener::PathOpener>>,
}

/// The backend for fds that are not multipath maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Route {
    /// SG_IO; the block PR ioctls when a block device refuses SG_IO.
    #[default]
    Auto,
    /// SG_IO only, as the C helper.
    Sg,
    /// The block PR ioctls only (testing, or SCSI disks served like NVMe).
    Block,
}

impl Route {
    /// Parses the `--pr-backend` value.
    pub fn parse(s: &str) -> Option<Route> {
        match s {
            "auto" => Some(Route::Auto),
            "sg" => Some(Route::Sg),
            "block" => Some(Route::Block),
            _ => None,
        }
    }
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            sgio_timeout_ms: DEFAULT_SGIO_TIMEOUT_MS,
            test_delay: None,
            route: Route::Auto,
            multipath: true,
            path_opener: None,
        }
    }
}

/// The test delay (`PR_HELPER_TEST_SGIO_DELAY_MS`): `MS` holds every command, `MS@MAJOR:MINOR` only those on
/// fds of that device number (a slow device beside fast ones, e.g. /dev/zero and /dev/null).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestDelay {
    pub delay: std::time::Duration,
    pub only_rdev: Option<(u32, u32)>,
}

impl TestDelay {
    /// The delay `PR_HELPER_TEST_SGIO_DELAY_MS` asks for, if set and well formed.
    pub fn from_env() -> Option<TestDelay> {
        TestDelay::parse(&std::env::var("PR_HELPER_TEST_SGIO_DELAY_MS").ok()?)
    }

    pub fn parse(value: &str) -> Option<TestDelay> {
        let (ms, rdev) = match value.split_once('@') {
            Some((ms, rdev)) => {
                let (major, minor) = rdev.split_once(':')?;
                (ms, Some((major.parse().ok()?, minor.parse().ok()?)))
            }
            None => (value, None),
        };
        Some(TestDelay {
            delay: std::time::Duration::from_millis(ms.parse().ok()?),
            only_rdev: rdev,
        })
    }

    /// Sleeps if the delay applies to this fd.
    fn hold(&self, fd: BorrowedFd<'_>) {
        let applies = self.only_rdev.is_none_or(|(major, minor)| {
            rustix::fs::fstat(fd).is_ok_and(|st| {
                let rdev = st.st_rdev;
                (rustix::fs::major(rdev), rustix::fs::minor(rdev)) == (major, minor)
            })
        });
        if applies {
            std::thread::sleep(self.delay);
        }
    }
}

/// Default SG_IO timeout: QEMU's scsi-generic default for guest commands.
pub const DEFAULT_SGIO_TIMEOUT_MS: u32 = 30_000;

/// One request ready to run: the checked CDB, the device fd, and the access mode the fd was
/// opened with (read when it arrived).
#[derive(Debug)]
pub struct Request {
    pub cdb: CheckedCdb,
    pub device: OwnedFd,
    pub read_only: bool,
}

/// A reply buffer: header, then payload. For PR OUT the parameter list is received into the
/// payload area, which the device reads from there; PR OUT replies carry no payload.
pub struct ReplyBuffer {
    bytes: Box<[u8; PR_HELPER_MAX_REPLY_SIZE]>,
}

impl Default for ReplyBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplyBuffer {
    /// A zeroed buffer.
    pub fn new() -> Self {
        ReplyBuffer {
            bytes: Box::new([0u8; PR_HELPER_MAX_REPLY_SIZE]),
        }
    }
    /// The payload area: PR IN data from the device, or the PR OUT parameter list.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[PR_HELPER_REPLY_HEADER_SIZE..]
    }
    /// The payload area, read: a PR OUT parameter list before the command runs.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[PR_HELPER_REPLY_HEADER_SIZE..]
    }
    /// The first `len` bytes, as they go on the wire.
    pub fn wire(&self, len: usize) -> &[u8] {
        &self.bytes[..len]
    }
    /// Header fields and payload area, borrowed apart so SG_IO can fill both.
    fn split(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (header, payload) = self.bytes.split_at_mut(PR_HELPER_REPLY_HEADER_SIZE);
        let (fields, sense) = header.split_at_mut(8);
        (fields, sense, payload)
    }
}

/// What a command produced, as the reply reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub status: u8,
    /// Payload bytes (PR IN with GOOD status only).
    pub payload_len: usize,
}

impl Outcome {
    /// Bytes of the whole reply on the wire.
    pub fn wire_len(&self) -> usize {
        PR_HELPER_REPLY_HEADER_SIZE + self.payload_len
    }
}

/// What the multipath backend did for one request: the map and the paths and multipathd
/// commands it used, for the daemon's -v log and `pr-client -v`. Also a block PR ioctl the
/// kernel refused (`map` then names the block device, `report.problems` why).
#[derive(Debug)]
pub struct MultipathNote {
    pub map: String,
    pub report: multipath::Report,
}

/// Runs `req` and writes the complete reply (header, sense, payload) into `buf`. Beside the
/// outcome: when the request went to a multipath map, what was done there (or why the kernel
/// refused a block PR ioctl), for the -v log, the audit record and `pr-client -v`.
pub fn execute(
    req: &Request,
    buf: &mut ReplyBuffer,
    opts: &ExecOptions,
) -> (Outcome, Option<MultipathNote>) {
    let (fields, sense_area, payload) = buf.split();
    sense_area.fill(0);
    let (outcome, note) = if req.cdb.is_pr_out() && req.read_only {
        // do_pr_out refuses PR OUT on a read-only fd before touching the device.
        (fail_with(sense::INVALID_OPCODE, sense_area), None)
    } else {
        route(req, sense_area, payload, opts)
    };
    fields[0..4].copy_from_slice(&i32::from(outcome.status).to_be_bytes());
    fields[4..8].copy_from_slice(&(outcome.payload_len as i32).to_be_bytes());
    (outcome, note)
}

/// Picks the backend for the request's fd and runs it there.
fn route(
    req: &Request,
    sense_area: &mut [u8],
    payload: &mut [u8],
    opts: &ExecOptions,
) -> (Outcome, Option<MultipathNote>) {
    // Holds requests in flight whichever backend runs them (tests only).
    if let Some(delay) = &opts.test_delay {
        delay.hold(req.device.as_fd());
    }
    let block = BlockDevice::of(req.device.as_fd());
    if opts.multipath {
        if let Some(map) = multipath::detect(&block) {
            let (outcome, report) = multipath::run(req, &map, sense_area, payload, opts);
            let note = MultipathNote {
                map: map.name,
                report,
            };
            return (outcome, Some(note));
        }
    }
    let outcome = match opts.route {
        Route::Sg => return (sgio::run(req, sense_area, payload, opts), None),
        Route::Block => blkpr::run(req, sense_area, payload),
        Route::Auto => blkpr::run_auto(req, &block, sense_area, payload, opts),
    };
    // The kernel refused a block PR ioctl for want of privilege: say why in the -v log.
    let refused = outcome.status == status::CHECK_CONDITION
        && sense::decode(sense_area) == Some(sense::ACCESS_DENIED);
    let note = refused.then(|| {
        let dev = block.stat().map_or_else(String::new, |st| {
            format!(
                "{}:{}",
                rustix::fs::major(st.st_rdev),
                rustix::fs::minor(st.st_rdev)
            )
        });
        MultipathNote {
            map: format!("block device {dev}"),
            report: multipath::Report {
                problems: vec![ACCESS_DENIED_WHY.to_owned()],
                ..multipath::Report::default()
            },
        }
    });
    (outcome, note)
}

/// The -v line for a block PR ioctl the kernel refused (EPERM).
const ACCESS_DENIED_WHY: &str = "the kernel refused the block PR ioctl (EPERM): it needs \
    CAP_SYS_ADMIN (kept with multipath support only) or a descriptor opened for writing \
    (Linux 6.5 and later; the READ ioctls a readable one since 6.19's fix), and partitions \
    are always refused: answered ILLEGAL REQUEST, ACCESS DENIED (05/20/02)";

/// Reads a complete reply back from `buf` (for `pr-client --direct`, which runs a backend
/// in its own process).
pub fn reply_parts(buf: &ReplyBuffer, outcome: Outcome) -> (&[u8], &[u8]) {
    buf.wire(outcome.wire_len())
        .split_at(PR_HELPER_REPLY_HEADER_SIZE)
}

/// Whether a request's fd is a block device, from one `fstat` taken when first asked:
/// multipath detection and the auto route's fallback both ask, and a request pays once.
pub struct BlockDevice<'a> {
    fd: BorrowedFd<'a>,
    stat: OnceCell<Option<rustix::fs::Stat>>,
}

impl<'a> BlockDevice<'a> {
    /// Nothing is asked of the kernel until [`BlockDevice::stat`].
    pub fn of(fd: BorrowedFd<'a>) -> Self {
        BlockDevice {
            fd,
            stat: OnceCell::new(),
        }
    }

    /// The fd's `fstat` when it is a block device; `None` for anything else.
    pub fn stat(&self) -> Option<&rustix::fs::Stat> {
        self.stat
            .get_or_init(|| {
                rustix::fs::fstat(self.fd).ok().filter(|st| {
                    rustix::fs::FileType::from_raw_mode(st.st_mode)
                        == rustix::fs::FileType::BlockDevice
                })
            })
            .as_ref()
    }
}

/// What the sandbox must allow for the backends `opts` enables; `path_opener`: a path opener
/// opens the multipath maps' paths (`-u`).
pub fn sandbox_needs(opts: &ExecOptions, path_opener: bool) -> crate::daemon::sandbox::Needs {
    let mut needs = crate::daemon::sandbox::Needs::default();
    if opts.route != Route::Sg {
        needs.ioctls.extend(crate::sys::blkpr::ALL_IOCTLS);
    }
    if opts.multipath {
        let multipath = multipath::sandbox_needs(path_opener);
        needs.syscalls.extend(multipath.syscalls);
        needs.ioctls.extend(multipath.ioctls);
        needs.read.extend(multipath.read);
    }
    needs
}

/// Fills a status-and-sense outcome for errors found without running the command.
pub fn fail_with(code: SenseCode, sense_area: &mut [u8]) -> Outcome {
    sense::build_fixed(code, sense_area);
    Outcome {
        status: status::CHECK_CONDITION,
        payload_len: 0,
    }
}

/// PR IN payload length: what the device returned, clipped to the allocation length.
fn clip_payload(transferred: usize, allocation_length: usize) -> usize {
    transferred.min(allocation_length).min(PR_HELPER_DATA_SIZE)
}

#[cfg(test)]
mod tests {
    use super::TestDelay;
    use std::time::Duration;

    #[test]
    fn test_delay_for_every_device_or_one() {
        assert_eq!(
            TestDelay::parse("500"),
            Some(TestDelay {
                delay: Duration::from_millis(500),
                only_rdev: None
            })
        );
        assert_eq!(
            TestDelay::parse("6000@1:5"),
            Some(TestDelay {
                delay: Duration::from_millis(6000),
                only_rdev: Some((1, 5))
            })
        );
        for bad in ["", "x", "5@", "5@1", "5@1:", "5@a:b", "@1:5"] {
            assert_eq!(TestDelay::parse(bad), None, "{bad}");
        }
    }
}
