//! Safe wrappers for the block layer's persistent-reservation ioctls (`<linux/pr.h>`).
//!
//! Any block device whose driver has `pr_ops` (sd, NVMe, dm) answers them; the kernel turns
//! them into the device's own PR commands. Two things differ from most ioctls: a device-level
//! failure comes back as a *positive* return value (a `pr_status`, e.g. 0x18 for a reservation
//! conflict) rather than -1/errno, so every wrapper returns that value as [`PrStatus`]; and
//! READ KEYS / READ RESERVATION exist only since Linux 6.19 (older kernels: `ENOTTY`, or the
//! driver's answer to an unknown ioctl, such as loop's `EINVAL`).
//!
//! Permissions (`blkdev_pr_allowed`): CAP_SYS_ADMIN, or since 6.5 an fd opened for writing
//! (6.19-stable: reading suffices for the two READ ioctls). Partitions are refused (`EPERM`).

use std::os::fd::BorrowedFd;

use rustix::io::Errno;
use rustix::ioctl::{Ioctl, IoctlOutput, Opcode, opcode};

/// `struct pr_registration`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[doc(alias = "pr_registration")]
pub struct PrRegistration {
    pub old_key: u64,
    pub new_key: u64,
    pub flags: u32,
    pub pad: u32,
}

/// `struct pr_reservation` (RESERVE and RELEASE).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[doc(alias = "pr_reservation")]
pub struct PrReservation {
    pub key: u64,
    pub pr_type: u32,
    pub flags: u32,
}

/// `struct pr_preempt` (PREEMPT and PREEMPT AND ABORT).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[doc(alias = "pr_preempt")]
pub struct PrPreempt {
    pub old_key: u64,
    pub new_key: u64,
    pub pr_type: u32,
    pub flags: u32,
}

/// `struct pr_clear`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[doc(alias = "pr_clear")]
pub struct PrClear {
    pub key: u64,
    pub flags: u32,
    pub pad: u32,
}

/// `struct pr_read_keys` (Linux 6.19): in, the capacity of the array at `keys_ptr`; out, the
/// generation and the number of keys the device holds, which may exceed the capacity.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[doc(alias = "pr_read_keys")]
pub struct PrReadKeys {
    pub generation: u32,
    pub num_keys: u32,
    pub keys_ptr: u64,
}

/// `struct pr_read_reservation` (Linux 6.19); `pr_type` 0 when no reservation is held.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[doc(alias = "pr_read_reservation")]
pub struct PrReadReservation {
    pub key: u64,
    pub generation: u32,
    pub pr_type: u32,
}

/// `PR_FL_IGNORE_KEY`: REGISTER AND IGNORE EXISTING KEY (and, for NVMe, IEKEY on RESERVE).
pub const PR_FL_IGNORE_KEY: u32 = 1;

/// `enum pr_type` values (the block layer's numbering, not SCSI's).
pub mod pr_type {
    pub const WRITE_EXCLUSIVE: u32 = 1;
    pub const EXCLUSIVE_ACCESS: u32 = 2;
    pub const WRITE_EXCLUSIVE_REG_ONLY: u32 = 3;
    pub const EXCLUSIVE_ACCESS_REG_ONLY: u32 = 4;
    pub const WRITE_EXCLUSIVE_ALL_REGS: u32 = 5;
    pub const EXCLUSIVE_ACCESS_ALL_REGS: u32 = 6;
}

pub const IOC_PR_REGISTER: Opcode = opcode::write::<PrRegistration>(b'p', 200);
pub const IOC_PR_RESERVE: Opcode = opcode::write::<PrReservation>(b'p', 201);
pub const IOC_PR_RELEASE: Opcode = opcode::write::<PrReservation>(b'p', 202);
pub const IOC_PR_PREEMPT: Opcode = opcode::write::<PrPreempt>(b'p', 203);
pub const IOC_PR_PREEMPT_ABORT: Opcode = opcode::write::<PrPreempt>(b'p', 204);
pub const IOC_PR_CLEAR: Opcode = opcode::write::<PrClear>(b'p', 205);
pub const IOC_PR_READ_KEYS: Opcode = opcode::read_write::<PrReadKeys>(b'p', 206);
pub const IOC_PR_READ_RESERVATION: Opcode = opcode::read::<PrReadReservation>(b'p', 207);

/// Every request number this module issues, for the seccomp allow-list.
pub const ALL_IOCTLS: [u32; 8] = [
    super::ioctl_request(IOC_PR_REGISTER),
    super::ioctl_request(IOC_PR_RESERVE),
    super::ioctl_request(IOC_PR_RELEASE),
    super::ioctl_request(IOC_PR_PREEMPT),
    super::ioctl_request(IOC_PR_PREEMPT_ABORT),
    super::ioctl_request(IOC_PR_CLEAR),
    super::ioctl_request(IOC_PR_READ_KEYS),
    super::ioctl_request(IOC_PR_READ_RESERVATION),
];

/// A PR ioctl's non-negative return value: 0 for success, else the device-level failure the
/// driver reports (`enum pr_status` since ≈6.4; before that sd passed the raw SCSI result and
/// NVMe the raw NVMe status, both positive too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrStatus(pub u32);

impl PrStatus {
    pub const SUCCESS: PrStatus = PrStatus(0);
    pub const IOERR: PrStatus = PrStatus(0x2);
    pub const RESERVATION_CONFLICT: PrStatus = PrStatus(0x18);
    pub const PATH_FAILED: PrStatus = PrStatus(0x1_0000);
    pub const RETRY_PATH_FAILURE: PrStatus = PrStatus(0xe_0000);
    pub const PATH_FAST_FAILED: PrStatus = PrStatus(0xf_0000);
}

/// One PR ioctl whose argument is `T`, keeping the return value rustix's `Setter` drops.
struct PrCall<'a, const OPCODE: Opcode, T> {
    arg: &'a mut T,
}

// SAFETY: `as_ptr` gives a pointer to a live, exclusively borrowed `T` that is the argument
// struct OPCODE's kernel handler expects (the opcode encodes its size); IS_MUTATING is true
// since the READ ioctls write into it; `output_from_ptr` reads nothing through the pointer.
unsafe impl<const OPCODE: Opcode, T> Ioctl for PrCall<'_, OPCODE, T> {
    type Output = PrStatus;
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        OPCODE
    }

    fn as_ptr(&mut self) -> *mut core::ffi::c_void {
        std::ptr::from_mut(self.arg).cast()
    }

    unsafe fn output_from_ptr(
        out: IoctlOutput,
        _: *mut core::ffi::c_void,
    ) -> rustix::io::Result<PrStatus> {
        // rustix has turned -1 into Err already, so `out` is 0 or a positive pr_status.
        Ok(PrStatus(out.unsigned_abs()))
    }
}

/// Issues OPCODE with `arg`, which must be the struct the opcode is defined with.
fn call<const OPCODE: Opcode, T>(fd: BorrowedFd<'_>, arg: &mut T) -> Result<PrStatus, Errno> {
    // SAFETY: every caller in this module pairs OPCODE with its `<linux/pr.h>` struct, whose
    // `#[repr(C)]` layout the tests check; the ioctl is synchronous, so the kernel keeps no
    // pointer to `arg` after it returns. The one pointer inside an argument (READ KEYS'
    // `keys_ptr`) is covered where it is set.
    unsafe { rustix::ioctl::ioctl(fd, PrCall::<OPCODE, T> { arg }) }
}

/// `IOC_PR_REGISTER`.
///
/// # Errors
/// `EPERM` (no CAP_SYS_ADMIN and fd not writable, or a partition), `EOPNOTSUPP` (no pr_ops, or
/// a flag other than `PR_FL_IGNORE_KEY`), `EINVAL` (device rejected a field), others from the
/// driver.
pub fn register(fd: BorrowedFd<'_>, mut arg: PrRegistration) -> Result<PrStatus, Errno> {
    call::<IOC_PR_REGISTER, _>(fd, &mut arg)
}

/// `IOC_PR_RESERVE`.
///
/// # Errors
/// As [`register`].
pub fn reserve(fd: BorrowedFd<'_>, mut arg: PrReservation) -> Result<PrStatus, Errno> {
    call::<IOC_PR_RESERVE, _>(fd, &mut arg)
}

/// `IOC_PR_RELEASE`.
///
/// # Errors
/// As [`register`]; any flag is `EOPNOTSUPP`.
pub fn release(fd: BorrowedFd<'_>, mut arg: PrReservation) -> Result<PrStatus, Errno> {
    call::<IOC_PR_RELEASE, _>(fd, &mut arg)
}

/// `IOC_PR_PREEMPT`, or `IOC_PR_PREEMPT_ABORT` when `abort`.
///
/// # Errors
/// As [`release`].
pub fn preempt(fd: BorrowedFd<'_>, mut arg: PrPreempt, abort: bool) -> Result<PrStatus, Errno> {
    if abort {
        call::<IOC_PR_PREEMPT_ABORT, _>(fd, &mut arg)
    } else {
        call::<IOC_PR_PREEMPT, _>(fd, &mut arg)
    }
}

/// `IOC_PR_CLEAR`.
///
/// # Errors
/// As [`release`].
pub fn clear(fd: BorrowedFd<'_>, mut arg: PrClear) -> Result<PrStatus, Errno> {
    call::<IOC_PR_CLEAR, _>(fd, &mut arg)
}

/// What `IOC_PR_READ_KEYS` reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeysRead {
    /// Nonzero: the device failed the command and the other fields mean nothing.
    pub status: PrStatus,
    pub generation: u32,
    /// Keys the device holds; the first `min(num_keys, keys.len())` are in `keys`.
    pub num_keys: u32,
}

/// `IOC_PR_READ_KEYS` (Linux 6.19) into `keys`, host-endian.
///
/// # Errors
/// `ENOTTY` or `EINVAL` from kernels without the ioctl, `EINVAL` for a capacity past the
/// kernel's limit (65536), plus those of [`register`].
pub fn read_keys(fd: BorrowedFd<'_>, keys: &mut [u64]) -> Result<KeysRead, Errno> {
    let mut arg = PrReadKeys {
        generation: 0,
        num_keys: u32::try_from(keys.len()).map_err(|_| Errno::INVAL)?,
        keys_ptr: keys.as_mut_ptr() as u64,
    };
    // `keys_ptr` points at `keys`, exclusively borrowed for this call, with room for the
    // `num_keys` u64s the kernel writes at most (it copies min(capacity, held) keys).
    let status = call::<IOC_PR_READ_KEYS, _>(fd, &mut arg)?;
    Ok(KeysRead {
        status,
        generation: arg.generation,
        num_keys: arg.num_keys,
    })
}

/// What `IOC_PR_READ_RESERVATION` reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservationRead {
    /// Nonzero: the device failed the command and `reservation` means nothing.
    pub status: PrStatus,
    pub reservation: PrReadReservation,
}

/// `IOC_PR_READ_RESERVATION` (Linux 6.19).
///
/// # Errors
/// As [`read_keys`].
pub fn read_reservation(fd: BorrowedFd<'_>) -> Result<ReservationRead, Errno> {
    let mut reservation = PrReadReservation::default();
    let status = call::<IOC_PR_READ_RESERVATION, _>(fd, &mut reservation)?;
    Ok(ReservationRead {
        status,
        reservation,
    })
}

/// `IOC_PR_CLEAR` with a null argument, as a side-effect-free probe for PR support.
struct ClearProbe;

// SAFETY: the pointer is null, which the kernel's copy_from_user rejects with EFAULT without
// touching memory; nothing is read back.
unsafe impl Ioctl for ClearProbe {
    type Output = ();
    const IS_MUTATING: bool = false;

    fn opcode(&self) -> Opcode {
        IOC_PR_CLEAR
    }

    fn as_ptr(&mut self) -> *mut core::ffi::c_void {
        std::ptr::null_mut()
    }

    unsafe fn output_from_ptr(_: IoctlOutput, _: *mut core::ffi::c_void) -> rustix::io::Result<()> {
        Ok(())
    }
}

/// Whether the device takes PR ioctls, asked without changing anything: `blkdev_pr_clear`
/// checks permission, then that the driver has `pr_clear`, and only then copies its argument,
/// so a null argument gets `EFAULT` exactly when the first two pass. Works on every kernel
/// with the PR ioctls (4.4 on), unlike the 6.19 READ ioctls.
///
/// # Errors
/// `EOPNOTSUPP` (no pr_ops), `EPERM` (not allowed, see the module docs), `ENOTTY` (not a
/// block device, or dm with other than one target).
pub fn probe(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: see `ClearProbe`: the kernel only fails to copy from the null pointer.
    match unsafe { rustix::ioctl::ioctl(fd, ClearProbe) } {
        Err(Errno::FAULT) => Ok(()),
        // Cannot happen with a null argument; if a kernel ever accepted it, nothing was
        // cleared without a key, and the ioctl evidently works.
        Ok(()) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};
    use std::os::fd::AsFd;

    #[test]
    fn structs_match_the_kernel_layout() {
        assert_eq!(size_of::<PrRegistration>(), 24);
        assert_eq!(offset_of!(PrRegistration, new_key), 8);
        assert_eq!(offset_of!(PrRegistration, flags), 16);
        assert_eq!(size_of::<PrReservation>(), 16);
        assert_eq!(offset_of!(PrReservation, pr_type), 8);
        assert_eq!(offset_of!(PrReservation, flags), 12);
        assert_eq!(size_of::<PrPreempt>(), 24);
        assert_eq!(offset_of!(PrPreempt, new_key), 8);
        assert_eq!(offset_of!(PrPreempt, pr_type), 16);
        assert_eq!(offset_of!(PrPreempt, flags), 20);
        assert_eq!(size_of::<PrClear>(), 16);
        assert_eq!(offset_of!(PrClear, flags), 8);
        assert_eq!(size_of::<PrReadKeys>(), 16);
        assert_eq!(offset_of!(PrReadKeys, num_keys), 4);
        assert_eq!(offset_of!(PrReadKeys, keys_ptr), 8);
        assert_eq!(size_of::<PrReadReservation>(), 16);
        assert_eq!(offset_of!(PrReadReservation, generation), 8);
        assert_eq!(offset_of!(PrReadReservation, pr_type), 12);
    }

    #[test]
    fn request_numbers_match_the_uapi_header() {
        let expected: [u32; 8] = [
            0x4018_70c8,
            0x4010_70c9,
            0x4010_70ca,
            0x4018_70cb,
            0x4018_70cc,
            0x4010_70cd,
            0xc010_70ce,
            0x8010_70cf,
        ];
        assert_eq!(ALL_IOCTLS, expected);
    }

    #[test]
    fn char_devices_refuse_every_pr_ioctl_with_enotty() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let fd = f.as_fd();
        assert_eq!(register(fd, PrRegistration::default()), Err(Errno::NOTTY));
        assert_eq!(clear(fd, PrClear::default()), Err(Errno::NOTTY));
        assert_eq!(preempt(fd, PrPreempt::default(), true), Err(Errno::NOTTY));
        let mut keys = [0u64; 4];
        assert_eq!(read_keys(fd, &mut keys), Err(Errno::NOTTY));
        assert_eq!(read_reservation(fd), Err(Errno::NOTTY));
        assert_eq!(probe(fd), Err(Errno::NOTTY));
    }
}
