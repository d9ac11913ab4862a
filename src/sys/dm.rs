//! Safe wrappers for the device-mapper ioctls on `/dev/mapper/control`
//! (`include/uapi/linux/dm-ioctl.h`): table and status of a map by device number, its name
//! and uuid, and suspend/resume by name.
//!
//! Every command takes one buffer: a 312-byte `struct dm_ioctl` header, then the payload the
//! kernel writes (target specs with their parameter strings). The header is encoded field by
//! field at the offsets the layout tests assert, so the only `unsafe` is the ioctl itself.
//! The kernel requires `CAP_SYS_ADMIN` for all of them (`ctl_ioctl`, else `EACCES`).

use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;

use rustix::fs::{Mode, OFlags};
use rustix::ioctl::{Ioctl, IoctlOutput, Opcode};

/// Path of the device-mapper control node.
pub const CONTROL_PATH: &str = "/dev/mapper/control";

const DM_IOCTL_TYPE: u32 = 0xfd;

/// `_IOWR(0xfd, nr, struct dm_ioctl)`: every dm command carries the 312-byte header size.
const fn dm_iowr(nr: u32) -> u32 {
    (3 << 30) | ((size_of::<DmIoctl>() as u32) << 16) | (DM_IOCTL_TYPE << 8) | nr
}

/// `DM_DEV_SUSPEND`: suspend (with [`DM_SUSPEND_FLAG`]) or resume a map.
pub const DM_DEV_SUSPEND: u32 = dm_iowr(6);
/// `DM_TABLE_STATUS`: the table (with [`DM_STATUS_TABLE_FLAG`]) or the status of each target.
pub const DM_TABLE_STATUS: u32 = dm_iowr(12);
/// Every ioctl request number this module issues, for the seccomp filter.
pub const ALL_IOCTLS: [u32; 2] = [DM_DEV_SUSPEND, DM_TABLE_STATUS];

pub const DM_SUSPEND_FLAG: u32 = 1 << 1;
pub const DM_STATUS_TABLE_FLAG: u32 = 1 << 4;
pub const DM_BUFFER_FULL_FLAG: u32 = 1 << 8;
pub const DM_SKIP_LOCKFS_FLAG: u32 = 1 << 10;
pub const DM_NOFLUSH_FLAG: u32 = 1 << 11;

/// Interface major version the kernel must match; minor 0 is accepted by every kernel.
const DM_VERSION_MAJOR: u32 = 4;
/// First buffer size: holds a multipath table of several hundred paths.
const INITIAL_BUFFER: usize = 16 * 1024;
/// Largest buffer tried when the kernel reports `DM_BUFFER_FULL_FLAG`.
const MAX_BUFFER: usize = 4 * 1024 * 1024;

/// `struct dm_ioctl`, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[doc(alias = "dm_ioctl")]
pub struct DmIoctl {
    pub version: [u32; 3],
    pub data_size: u32,
    pub data_start: u32,
    pub target_count: u32,
    pub open_count: i32,
    pub flags: u32,
    pub event_nr: u32,
    pub padding: u32,
    pub dev: u64,
    pub name: [u8; 128],
    pub uuid: [u8; 129],
    pub data: [u8; 7],
}

/// `struct dm_target_spec`, field for field; its parameter string follows it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[doc(alias = "dm_target_spec")]
pub struct DmTargetSpec {
    pub sector_start: u64,
    pub length: u64,
    pub status: i32,
    pub next: u32,
    pub target_type: [u8; 16],
}

const HEADER_SIZE: usize = size_of::<DmIoctl>();
const SPEC_SIZE: usize = size_of::<DmTargetSpec>();

fn put_u32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn get_u32(buf: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]])
}

fn get_u64(buf: &[u8], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[off..off + 8]);
    u64::from_ne_bytes(b)
}

/// The bytes up to the first NUL, as text (dm names and uuids are ASCII).
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Linux `new_encode_dev`, the inverse of the `huge_decode_dev` dm applies to `dev`.
pub fn encode_dev(major: u32, minor: u32) -> u64 {
    u64::from((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
}

/// How a command names its map.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// By device number (name and uuid left empty, so dm looks at `dev`).
    Dev { major: u32, minor: u32 },
    /// By dm name.
    Name(&'a str),
}

/// A fresh command buffer: header filled in, payload zero.
fn request(size: usize, target: Target<'_>, flags: u32, event_nr: u32) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; size];
    let size32 = u32::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // The version is DM_VERSION_MAJOR.0.0: its minor and patchlevel words stay zero.
    for (off, v) in [
        (offset_of!(DmIoctl, version), DM_VERSION_MAJOR),
        (offset_of!(DmIoctl, data_size), size32),
        (offset_of!(DmIoctl, data_start), HEADER_SIZE as u32),
        (offset_of!(DmIoctl, flags), flags),
        (offset_of!(DmIoctl, event_nr), event_nr),
    ] {
        put_u32(&mut buf, off, v);
    }
    match target {
        Target::Dev { major, minor } => {
            let off = offset_of!(DmIoctl, dev);
            buf[off..off + 8].copy_from_slice(&encode_dev(major, minor).to_ne_bytes());
        }
        Target::Name(name) => {
            // 127 bytes and a NUL at most (DM_NAME_LEN 128).
            if name.len() >= 128 || name.as_bytes().contains(&0) {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            let off = offset_of!(DmIoctl, name);
            buf[off..off + name.len()].copy_from_slice(name.as_bytes());
        }
    }
    Ok(buf)
}

/// One dm command over a caller-sized buffer (rustix's patterns only take fixed-size values).
struct DmCall<'a> {
    opcode: u32,
    buf: &'a mut [u8],
}

// SAFETY: `as_ptr` points at a buffer of `data_size` bytes (the header says so, and the
// kernel never writes past `data_size`); the call mutates it, which IS_MUTATING declares.
unsafe impl Ioctl for DmCall<'_> {
    type Output = ();
    const IS_MUTATING: bool = true;
    fn opcode(&self) -> Opcode {
        self.opcode as Opcode
    }
    fn as_ptr(&mut self) -> *mut core::ffi::c_void {
        self.buf.as_mut_ptr().cast()
    }
    unsafe fn output_from_ptr(
        _out: IoctlOutput,
        _extract_output: *mut core::ffi::c_void,
    ) -> rustix::io::Result<()> {
        Ok(())
    }
}

static CONTROL: OnceLock<Result<OwnedFd, i32>> = OnceLock::new();

/// Opens `/dev/mapper/control` once for the life of the process. The daemon calls this at
/// start-up, before the sandbox forbids opening it read-write; later calls return the same
/// result.
///
/// # Errors
/// The open's errno (`ENOENT` without device-mapper, `EACCES` without permission).
pub fn init() -> io::Result<()> {
    control().map(|_| ())
}

/// The number of the open `/dev/mapper/control` descriptor, if [`init`] opened it: a process
/// forked from the daemon keeps it when it closes everything else.
pub fn control_raw_fd() -> Option<std::os::fd::RawFd> {
    use std::os::fd::AsRawFd as _;
    CONTROL.get()?.as_ref().ok().map(|fd| fd.as_raw_fd())
}

fn control() -> io::Result<&'static OwnedFd> {
    CONTROL
        .get_or_init(|| {
            rustix::fs::open(CONTROL_PATH, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| e.raw_os_error())
        })
        .as_ref()
        .map_err(|&e| io::Error::from_raw_os_error(e))
}

fn call(opcode: u32, buf: &mut [u8]) -> io::Result<()> {
    let fd = control()?;
    let ioctl = DmCall { opcode, buf };
    // SAFETY: `DmCall` hands the kernel a buffer whose header gives its real size in
    // `data_size`; the kernel reads and writes only within it and keeps no pointer after the
    // synchronous call.
    unsafe { rustix::ioctl::ioctl(fd.as_fd(), ioctl) }?;
    Ok(())
}

/// The header fields a command answers with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Info {
    pub name: String,
    pub uuid: String,
    pub flags: u32,
    pub target_count: u32,
    pub open_count: i32,
}

/// One target of a table or status answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetLine {
    pub sector_start: u64,
    pub length: u64,
    pub target_type: String,
    /// The table parameters or the status string.
    pub params: String,
}

fn info_of(buf: &[u8]) -> Info {
    Info {
        name: c_string(&buf[offset_of!(DmIoctl, name)..offset_of!(DmIoctl, uuid)]),
        uuid: c_string(&buf[offset_of!(DmIoctl, uuid)..offset_of!(DmIoctl, data)]),
        flags: get_u32(buf, offset_of!(DmIoctl, flags)),
        target_count: get_u32(buf, offset_of!(DmIoctl, target_count)),
        open_count: get_u32(buf, offset_of!(DmIoctl, open_count)) as i32,
    }
}

/// Decodes the targets of a `DM_TABLE_STATUS` answer: `target_count` specs from
/// `data_start`, each `next` bytes after the previous one's start. Malformed offsets end the
/// list rather than read outside the buffer.
pub fn decode_targets(buf: &[u8]) -> Vec<TargetLine> {
    let mut out = Vec::new();
    if buf.len() < HEADER_SIZE {
        return out;
    }
    let count = get_u32(buf, offset_of!(DmIoctl, target_count));
    let data_start = get_u32(buf, offset_of!(DmIoctl, data_start)) as usize;
    let data_size = (get_u32(buf, offset_of!(DmIoctl, data_size)) as usize).min(buf.len());
    let mut pos = data_start;
    for _ in 0..count {
        let Some(spec) = pos
            .checked_add(SPEC_SIZE)
            .filter(|&end| end <= data_size)
            .map(|end| &buf[pos..end])
        else {
            break;
        };
        let params = &buf[pos + SPEC_SIZE..data_size];
        out.push(TargetLine {
            sector_start: get_u64(spec, offset_of!(DmTargetSpec, sector_start)),
            length: get_u64(spec, offset_of!(DmTargetSpec, length)),
            target_type: c_string(&spec[offset_of!(DmTargetSpec, target_type)..]),
            params: c_string(params),
        });
        let next = get_u32(spec, offset_of!(DmTargetSpec, next)) as usize;
        if next == 0 {
            break;
        }
        // `next` counts from the first spec's start for DM_TABLE_STATUS; the kernel lays
        // specs out forwards, so an offset that does not move on is corrupt (and would loop).
        let following = data_start.saturating_add(next);
        if following < pos + SPEC_SIZE {
            break;
        }
        pos = following;
    }
    out
}

/// Runs a read command, growing the buffer while the kernel says it was too small.
fn query(opcode: u32, target: Target<'_>, flags: u32) -> io::Result<Vec<u8>> {
    let mut size = INITIAL_BUFFER;
    loop {
        let mut buf = request(size, target, flags, 0)?;
        call(opcode, &mut buf)?;
        let out_flags = get_u32(&buf, offset_of!(DmIoctl, flags));
        if out_flags & DM_BUFFER_FULL_FLAG == 0 || size >= MAX_BUFFER {
            return Ok(buf);
        }
        size *= 4;
    }
}

/// `DM_TABLE_STATUS` for the map with this device number: its table (`table = true`) or the
/// status of its targets.
///
/// # Errors
/// `ENXIO` when no dm map has this number (every non-dm block device), `EACCES` without
/// `CAP_SYS_ADMIN`, the open's errno when `/dev/mapper/control` cannot be opened.
pub fn table_status(major: u32, minor: u32, table: bool) -> io::Result<(Info, Vec<TargetLine>)> {
    let flags = if table {
        DM_STATUS_TABLE_FLAG
    } else {
        // The status of a multipath target needs no flush of queued I/O.
        DM_NOFLUSH_FLAG
    };
    let buf = query(DM_TABLE_STATUS, Target::Dev { major, minor }, flags)?;
    Ok((info_of(&buf), decode_targets(&buf)))
}

/// Suspends the named map without flushing queued I/O or freezing its filesystem
/// (`DM_SUSPEND_FLAG | DM_NOFLUSH_FLAG | DM_SKIP_LOCKFS_FLAG`), as libmpathpersist does
/// before moving a reservation between paths.
///
/// # Errors
/// The ioctl's errno.
pub fn suspend_noflush(name: &str) -> io::Result<()> {
    dev_suspend(name, DM_SUSPEND_FLAG)
}

/// Resumes the named map. No udev cookie is passed (`event_nr` 0): nothing here waits for
/// udev, and a cookie without libdevmapper's semaphore would make the udev rules fail.
///
/// # Errors
/// The ioctl's errno.
pub fn resume(name: &str) -> io::Result<()> {
    dev_suspend(name, 0)
}

/// `DM_DEV_SUSPEND` on the named map, header only, with `flags` and neither flush nor lockfs.
fn dev_suspend(name: &str, flags: u32) -> io::Result<()> {
    let flags = flags | DM_NOFLUSH_FLAG | DM_SKIP_LOCKFS_FLAG;
    let mut buf = request(HEADER_SIZE, Target::Name(name), flags, 0)?;
    call(DM_DEV_SUSPEND, &mut buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dm_ioctl_matches_the_kernel_layout() {
        assert_eq!(size_of::<DmIoctl>(), 312);
        assert_eq!(std::mem::align_of::<DmIoctl>(), 8);
        assert_eq!(offset_of!(DmIoctl, version), 0);
        assert_eq!(offset_of!(DmIoctl, data_size), 12);
        assert_eq!(offset_of!(DmIoctl, data_start), 16);
        assert_eq!(offset_of!(DmIoctl, target_count), 20);
        assert_eq!(offset_of!(DmIoctl, open_count), 24);
        assert_eq!(offset_of!(DmIoctl, flags), 28);
        assert_eq!(offset_of!(DmIoctl, event_nr), 32);
        assert_eq!(offset_of!(DmIoctl, padding), 36);
        assert_eq!(offset_of!(DmIoctl, dev), 40);
        assert_eq!(offset_of!(DmIoctl, name), 48);
        assert_eq!(offset_of!(DmIoctl, uuid), 176);
        assert_eq!(offset_of!(DmIoctl, data), 305);
    }

    #[test]
    fn dm_target_spec_matches_the_kernel_layout() {
        assert_eq!(size_of::<DmTargetSpec>(), 40);
        assert_eq!(offset_of!(DmTargetSpec, sector_start), 0);
        assert_eq!(offset_of!(DmTargetSpec, length), 8);
        assert_eq!(offset_of!(DmTargetSpec, status), 16);
        assert_eq!(offset_of!(DmTargetSpec, next), 20);
        assert_eq!(offset_of!(DmTargetSpec, target_type), 24);
    }

    #[test]
    fn ioctl_numbers() {
        assert_eq!(DM_DEV_SUSPEND, 0xC138_FD06);
        assert_eq!(DM_TABLE_STATUS, 0xC138_FD0C);
    }

    #[test]
    fn dev_encoding_is_new_encode_dev() {
        assert_eq!(encode_dev(253, 3), 0xfd03);
        assert_eq!(encode_dev(8, 16), 0x0810);
        assert_eq!(encode_dev(259, 0x12345), 0x1231_0345);
    }

    #[test]
    fn request_header_by_dev_and_by_name() {
        let (major, minor) = (253, 1);
        let buf = request(1024, Target::Dev { major, minor }, 0x10, 0).unwrap();
        assert_eq!(get_u32(&buf, 0), 4);
        assert_eq!(get_u32(&buf, 12), 1024);
        assert_eq!(get_u32(&buf, 16), 312);
        assert_eq!(get_u32(&buf, 28), 0x10);
        assert_eq!(get_u64(&buf, 40), 0xfd01);
        assert!(buf[48..305].iter().all(|&b| b == 0));
        let buf = request(312, Target::Name("mpatha"), 0, 0).unwrap();
        assert_eq!(&buf[48..55], b"mpatha\0");
        assert!(request(312, Target::Name(&"x".repeat(128)), 0, 0).is_err());
    }

    /// An answer as the kernel lays it out, for the decoder.
    fn answer(targets: &[(&str, &str)]) -> Vec<u8> {
        let mut buf = request(4096, Target::Name("mpatha"), 0, 0).unwrap();
        let uuid = b"mpath-3600140512345";
        buf[176..176 + uuid.len()].copy_from_slice(uuid);
        put_u32(&mut buf, 20, targets.len() as u32);
        let mut pos = HEADER_SIZE;
        for (i, (ty, params)) in targets.iter().enumerate() {
            buf[pos + 8..pos + 16].copy_from_slice(&(2048u64 * (i as u64 + 1)).to_ne_bytes());
            buf[pos + 24..pos + 24 + ty.len()].copy_from_slice(ty.as_bytes());
            let p = pos + SPEC_SIZE;
            buf[p..p + params.len()].copy_from_slice(params.as_bytes());
            // Aligned to 8 like the kernel's align_ptr.
            let end = (p + params.len() + 1).next_multiple_of(8);
            let next = if i + 1 == targets.len() {
                0
            } else {
                end - HEADER_SIZE
            };
            put_u32(&mut buf, pos + 20, next as u32);
            pos = end;
        }
        buf
    }

    #[test]
    fn decodes_targets_and_names() {
        let buf = answer(&[
            ("multipath", "0 0 1 1 round-robin 0 1 1 8:16 1"),
            ("linear", "8:0 0"),
        ]);
        let info = info_of(&buf);
        assert_eq!(info.name, "mpatha");
        assert_eq!(info.uuid, "mpath-3600140512345");
        let t = decode_targets(&buf);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].target_type, "multipath");
        assert_eq!(t[0].length, 2048);
        assert_eq!(t[0].params, "0 0 1 1 round-robin 0 1 1 8:16 1");
        assert_eq!(t[1].target_type, "linear");
        assert_eq!(t[1].params, "8:0 0");
    }

    #[test]
    fn decoder_survives_bad_offsets() {
        let mut buf = answer(&[("multipath", "x")]);
        put_u32(&mut buf, 20, 1000);
        put_u32(&mut buf, HEADER_SIZE + 20, 0xffff_fff0);
        assert_eq!(decode_targets(&buf).len(), 1);
        // A spec pointing back at itself ends the list instead of repeating forever.
        put_u32(&mut buf, HEADER_SIZE + 20, 0);
        put_u32(&mut buf, HEADER_SIZE + 20, 1);
        assert_eq!(decode_targets(&buf).len(), 1);
        put_u32(&mut buf, 16, 0xffff_ffff);
        assert!(decode_targets(&buf).is_empty());
        assert!(decode_targets(&buf[..100]).is_empty());
    }
}
