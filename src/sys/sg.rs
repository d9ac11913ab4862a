//! Safe wrapper for the `SG_IO` ioctl(2): one SCSI command, synchronously, on any fd.
//!
//! The kernel header `<scsi/sg.h>` defines `struct sg_io_hdr`; the block layer's
//! `scsi_ioctl.c` accepts it on sd, sr and st block devices as well as on sg nodes.

use rustix::ioctl::{Opcode, Updater};
use std::io;
use std::os::fd::BorrowedFd;

/// `SG_IO` request number (`<scsi/sg.h>`); not encoded with `_IOWR`, like most SCSI ioctls.
pub const SG_IO: Opcode = 0x2285;
/// `SG_DXFER_NONE`: no data phase.
pub const SG_DXFER_NONE: i32 = -1;
/// `SG_DXFER_TO_DEV`: data from `dxferp` to the device.
pub const SG_DXFER_TO_DEV: i32 = -2;
/// `SG_DXFER_FROM_DEV`: data from the device into `dxferp`.
pub const SG_DXFER_FROM_DEV: i32 = -3;

/// `struct sg_io_hdr` from `<scsi/sg.h>`, field for field.
#[repr(C)]
#[derive(Debug)]
#[doc(alias = "sg_io_hdr")]
pub struct SgIoHdr {
    pub interface_id: i32,
    pub dxfer_direction: i32,
    pub cmd_len: u8,
    pub mx_sb_len: u8,
    pub iovec_count: u16,
    pub dxfer_len: u32,
    pub dxferp: *mut u8,
    pub cmdp: *const u8,
    pub sbp: *mut u8,
    pub timeout: u32,
    pub flags: u32,
    pub pack_id: i32,
    pub usr_ptr: *mut u8,
    pub status: u8,
    pub masked_status: u8,
    pub msg_status: u8,
    pub sb_len_wr: u8,
    pub host_status: u16,
    pub driver_status: u16,
    pub resid: i32,
    pub duration: u32,
    pub info: u32,
}

/// Where the data phase goes, with the buffer it uses.
pub enum DataPhase<'a> {
    /// No data (TEST UNIT READY).
    None,
    /// Data written to the device (PR OUT parameter list).
    ToDevice(&'a [u8]),
    /// Data read from the device (PR IN).
    FromDevice(&'a mut [u8]),
}

/// What the kernel reported for a completed `SG_IO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SgIoResult {
    /// SCSI status byte from the device.
    pub status: u8,
    /// Transport status (`DID_*`).
    pub host_status: u16,
    /// Driver status (`DRIVER_*`).
    pub driver_status: u16,
    /// Bytes of the data phase that were not transferred.
    pub resid: i32,
    /// Bytes of sense data the kernel wrote.
    pub sense_len: u8,
}

/// Safe wrapper for `ioctl(fd, SG_IO, &hdr)`.
///
/// Sends `cdb` (all of it: `cmd_len` is `cdb.len()`) with the given data phase and
/// collects up to `sense.len()` bytes of sense. `timeout_ms` 0 means the queue's default.
///
/// # Errors
/// The ioctl's errno: `ENOTTY` for fds that are not SCSI devices, `EPERM` without
/// `CAP_SYS_RAWIO` for commands the kernel filters, `EINVAL` for bad lengths, and so on.
///
/// # References
/// - <https://tldp.org/HOWTO/SCSI-Generic-HOWTO/sg_io_hdr_t.html>
#[doc(alias = "SG_IO")]
pub fn sg_io(
    fd: BorrowedFd<'_>,
    cdb: &[u8],
    data: DataPhase<'_>,
    sense: &mut [u8],
    timeout_ms: u32,
) -> io::Result<SgIoResult> {
    let (dxfer_direction, dxferp, dxfer_len) = match data {
        DataPhase::None => (SG_DXFER_NONE, std::ptr::null_mut(), 0),
        // The kernel only reads through dxferp for TO_DEV; the cast to *mut is for the C type.
        DataPhase::ToDevice(buf) => (SG_DXFER_TO_DEV, buf.as_ptr().cast_mut(), buf.len()),
        DataPhase::FromDevice(buf) => (SG_DXFER_FROM_DEV, buf.as_mut_ptr(), buf.len()),
    };
    let mut hdr = SgIoHdr {
        interface_id: i32::from(b'S'),
        dxfer_direction,
        cmd_len: u8::try_from(cdb.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
        mx_sb_len: u8::try_from(sense.len()).unwrap_or(u8::MAX),
        iovec_count: 0,
        dxfer_len: u32::try_from(dxfer_len)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
        dxferp,
        cmdp: cdb.as_ptr(),
        sbp: sense.as_mut_ptr(),
        timeout: timeout_ms,
        flags: 0,
        pack_id: 0,
        usr_ptr: std::ptr::null_mut(),
        status: 0,
        masked_status: 0,
        msg_status: 0,
        sb_len_wr: 0,
        host_status: 0,
        driver_status: 0,
        resid: 0,
        duration: 0,
        info: 0,
    };
    // SAFETY: `hdr.cmdp`, `hdr.dxferp` and `hdr.sbp` point into `cdb`, the data buffer and
    // `sense`, whose lengths are `cmd_len`, `dxfer_len` and at least `mx_sb_len`; the borrows
    // keep all three alive and (for the written ones) unaliased until the ioctl returns, and
    // SG_IO is synchronous, so the kernel holds no pointer afterwards. `hdr` is a valid,
    // exclusively borrowed `sg_io_hdr` for the kernel to update.
    // SAFETY: `Updater` hands the kernel a pointer to `hdr`, a valid, exclusively borrowed
    // `sg_io_hdr`, which is what SG_IO reads and updates.
    let ioctl = unsafe { Updater::<SG_IO, SgIoHdr>::new(&mut hdr) };
    // SAFETY: `hdr.cmdp`, `hdr.dxferp` and `hdr.sbp` point into `cdb`, the data buffer and
    // `sense`, whose lengths are `cmd_len`, `dxfer_len` and at least `mx_sb_len`; the borrows
    // keep all three alive and (for the written ones) unaliased until the ioctl returns, and
    // SG_IO is synchronous, so the kernel holds no pointer afterwards.
    unsafe { rustix::ioctl::ioctl(fd, ioctl) }?;
    Ok(SgIoResult {
        status: hdr.status,
        host_status: hdr.host_status,
        driver_status: hdr.driver_status,
        resid: hdr.resid,
        sense_len: hdr.sb_len_wr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn sg_io_hdr_matches_the_kernel_layout() {
        assert_eq!(size_of::<SgIoHdr>(), 88);
        assert_eq!(offset_of!(SgIoHdr, dxfer_len), 12);
        assert_eq!(offset_of!(SgIoHdr, dxferp), 16);
        assert_eq!(offset_of!(SgIoHdr, cmdp), 24);
        assert_eq!(offset_of!(SgIoHdr, sbp), 32);
        assert_eq!(offset_of!(SgIoHdr, timeout), 40);
        assert_eq!(offset_of!(SgIoHdr, usr_ptr), 56);
        assert_eq!(offset_of!(SgIoHdr, status), 64);
        assert_eq!(offset_of!(SgIoHdr, host_status), 68);
        assert_eq!(offset_of!(SgIoHdr, resid), 72);
        assert_eq!(offset_of!(SgIoHdr, info), 80);
    }

    #[test]
    fn sg_io_on_dev_null_is_enotty() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let mut sense = [0u8; 96];
        let mut data = [0u8; 8];
        let err = sg_io(
            std::os::fd::AsFd::as_fd(&f),
            &[0x5e, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0],
            DataPhase::FromDevice(&mut data),
            &mut sense,
            1000,
        )
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTTY));
    }
}
