//! Sense data: the codes the helper builds, fixed-format encoding, decoding of fixed and
//! descriptor formats, and the C helper's errno and host-status mappings (QEMU `scsi/utils.c`).

use super::status;

/// Size of the sense field in the helper protocol and of the SG_IO sense buffer.
pub const SENSE_BUFFER_SIZE: usize = 96;
/// Length of the fixed-format sense the helper builds itself.
pub const FIXED_SENSE_LEN: usize = 18;

/// A sense key with its additional sense code and qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenseCode {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

macro_rules! sense_codes {
    ($($name:ident = $key:literal / $asc:literal / $ascq:literal;)*) => {
        $(pub const $name: SenseCode = SenseCode { key: $key, asc: $asc, ascq: $ascq };)*
    };
}

// The codes QEMU's scsi/utils.c defines and the helper can produce, with QEMU's names.
sense_codes! {
    NO_SENSE = 0x00 / 0x00 / 0x00;
    NOT_READY = 0x02 / 0x04 / 0x00;
    NO_MEDIUM = 0x02 / 0x3a / 0x00;
    READ_ERROR = 0x03 / 0x11 / 0x00;
    TARGET_FAILURE = 0x04 / 0x44 / 0x00;
    INVALID_OPCODE = 0x05 / 0x20 / 0x00;
    // Not QEMU's: the block PR ioctls refused by the kernel for want of privilege (EPERM).
    ACCESS_DENIED = 0x05 / 0x20 / 0x02;
    INVALID_FIELD = 0x05 / 0x24 / 0x00;
    INVALID_PARAM = 0x05 / 0x26 / 0x00;
    INVALID_PARAM_LEN = 0x05 / 0x1a / 0x00;
    RESET = 0x06 / 0x29 / 0x00;
    SCSI_BUS_RESET = 0x06 / 0x29 / 0x02;
    SPACE_ALLOC_FAILED = 0x07 / 0x27 / 0x07;
    IO_ERROR = 0x0b / 0x00 / 0x06;
    LUN_NOT_RESPONDING = 0x0b / 0x05 / 0x00;
    LUN_COMM_FAILURE = 0x0b / 0x08 / 0x00;
    I_T_NEXUS_LOSS = 0x0b / 0x29 / 0x07;
    COMMAND_TIMEOUT = 0x0b / 0x2e / 0x02;
    COMMAND_ABORTED = 0x0b / 0x2f / 0x02;
}

/// Writes `code` as 18 bytes of current, fixed-format sense (`scsi_build_sense_buf` with
/// `fixed = true`) at the start of `buf`; the rest of `buf` is left as it is.
pub fn build_fixed(code: SenseCode, buf: &mut [u8]) {
    let mut fixed = [0u8; FIXED_SENSE_LEN];
    fixed[0] = 0x70;
    fixed[2] = code.key;
    fixed[7] = 10;
    fixed[12] = code.asc;
    fixed[13] = code.ascq;
    let n = buf.len().min(FIXED_SENSE_LEN);
    buf[..n].copy_from_slice(&fixed[..n]);
}

/// A SCSI status with the sense the helper builds for it, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusAndSense {
    pub status: u8,
    pub sense: Option<SenseCode>,
}

impl StatusAndSense {
    /// CHECK CONDITION with this sense.
    pub const fn check(code: SenseCode) -> Self {
        StatusAndSense {
            status: status::CHECK_CONDITION,
            sense: Some(code),
        }
    }
    /// A status that carries no sense.
    pub const fn bare(status: u8) -> Self {
        StatusAndSense {
            status,
            sense: None,
        }
    }
}

/// QEMU's `scsi_sense_from_errno` (Linux build): the status for a failed ioctl.
pub fn from_errno(errno: i32) -> StatusAndSense {
    match errno {
        0 => StatusAndSense::bare(status::GOOD),
        libc::EDOM => StatusAndSense::bare(status::TASK_SET_FULL),
        libc::ENODEV | libc::EREMOTEIO => StatusAndSense::check(TARGET_FAILURE),
        libc::EBADE => StatusAndSense::bare(status::RESERVATION_CONFLICT),
        libc::ENODATA => StatusAndSense::check(READ_ERROR),
        libc::ENOMEDIUM => StatusAndSense::check(NO_MEDIUM),
        libc::ENOMEM => StatusAndSense::check(TARGET_FAILURE),
        libc::EINVAL => StatusAndSense::check(INVALID_FIELD),
        libc::ENOSPC => StatusAndSense::check(SPACE_ALLOC_FAILED),
        _ => StatusAndSense::check(IO_ERROR),
    }
}

/// QEMU's `scsi_sense_from_host_status`: `None` for host statuses it does not know, which
/// the C helper then treats as success (it returns GOOD).
pub fn from_host_status(host_status: u16) -> Option<StatusAndSense> {
    Some(match host_status {
        0x01 => StatusAndSense::check(LUN_NOT_RESPONDING), // DID_NO_CONNECT
        0x02 => StatusAndSense::bare(status::BUSY),        // DID_BUS_BUSY
        0x03 => StatusAndSense::check(COMMAND_TIMEOUT),    // DID_TIME_OUT
        0x04 => StatusAndSense::check(LUN_COMM_FAILURE),   // DID_BAD_TARGET
        0x05 => StatusAndSense::check(COMMAND_ABORTED),    // DID_ABORT
        0x08 => StatusAndSense::check(RESET),              // DID_RESET
        0x0e => StatusAndSense::check(I_T_NEXUS_LOSS),     // DID_TRANSPORT_DISRUPTED
        0x10 => StatusAndSense::check(TARGET_FAILURE),     // DID_TARGET_FAILURE
        0x11 => StatusAndSense::bare(status::RESERVATION_CONFLICT), // DID_NEXUS_FAILURE
        0x12 => StatusAndSense::check(SPACE_ALLOC_FAILED), // DID_ALLOC_FAILURE
        0x13 => StatusAndSense::check(READ_ERROR),         // DID_MEDIUM_ERROR
        _ => return None,
    })
}

/// Sense key, ASC and ASCQ read from fixed (0x70/0x71) or descriptor (0x72/0x73) sense.
pub fn decode(sense: &[u8]) -> Option<SenseCode> {
    let response_code = sense.first()? & 0x7f;
    match response_code {
        0x70 | 0x71 if sense.len() >= 14 => Some(SenseCode {
            key: sense[2] & 0x0f,
            asc: sense[12],
            ascq: sense[13],
        }),
        0x70 | 0x71 if sense.len() >= 3 => Some(SenseCode {
            key: sense[2] & 0x0f,
            asc: 0,
            ascq: 0,
        }),
        0x72 | 0x73 if sense.len() >= 4 => Some(SenseCode {
            key: sense[1] & 0x0f,
            asc: sense[2],
            ascq: sense[3],
        }),
        _ => None,
    }
}

/// Whether the response code says "deferred error" rather than "current".
pub fn is_deferred(sense: &[u8]) -> bool {
    matches!(sense.first().map(|b| b & 0x7f), Some(0x71 | 0x73))
}

/// The sense key's name (SPC-4 table 51).
pub fn key_name(key: u8) -> &'static str {
    const NAMES: [&str; 16] = [
        "No Sense",
        "Recovered Error",
        "Not Ready",
        "Medium Error",
        "Hardware Error",
        "Illegal Request",
        "Unit Attention",
        "Data Protect",
        "Blank Check",
        "Vendor Specific",
        "Copy Aborted",
        "Aborted Command",
        "Equal",
        "Volume Overflow",
        "Miscompare",
        "Completed",
    ];
    NAMES[usize::from(key & 0x0f)]
}

/// Additional sense code and qualifier in words, for every code the helper produces and the
/// ones persistent reservations commonly meet; `None` for the rest.
pub fn asc_name(asc: u8, ascq: u8) -> Option<&'static str> {
    Some(match (asc, ascq) {
        (0x00, 0x00) => "No additional sense information",
        (0x00, 0x06) => "I/O process terminated",
        (0x04, 0x00) => "Logical unit not ready, cause not reportable",
        (0x04, 0x01) => "Logical unit is in process of becoming ready",
        (0x04, 0x02) => "Logical unit not ready, initializing command required",
        (0x04, 0x03) => "Logical unit not ready, manual intervention required",
        (0x04, 0x0a) => "Logical unit not accessible, asymmetric access state transition",
        (0x04, 0x0b) => "Logical unit not accessible, target port in standby state",
        (0x04, 0x0c) => "Logical unit not accessible, target port in unavailable state",
        (0x05, 0x00) => "Logical unit does not respond to selection",
        (0x08, 0x00) => "Logical unit communication failure",
        (0x11, 0x00) => "Unrecovered read error",
        (0x1a, 0x00) => "Parameter list length error",
        (0x20, 0x00) => "Invalid command operation code",
        (0x20, 0x02) => "Access denied - no access rights",
        (0x24, 0x00) => "Invalid field in cdb",
        (0x25, 0x00) => "Logical unit not supported",
        (0x26, 0x00) => "Invalid field in parameter list",
        (0x26, 0x01) => "Parameter not supported",
        (0x26, 0x02) => "Parameter value invalid",
        (0x26, 0x04) => "Invalid release of persistent reservation",
        (0x27, 0x07) => "Space allocation failed write protect",
        (0x28, 0x00) => "Not ready to ready change, medium may have changed",
        (0x29, 0x00) => "Power on, reset, or bus device reset occurred",
        (0x29, 0x01) => "Power on occurred",
        (0x29, 0x02) => "SCSI bus reset occurred",
        (0x29, 0x07) => "I_T nexus loss occurred",
        (0x2a, 0x01) => "Mode parameters changed",
        (0x2a, 0x03) => "Reservations preempted",
        (0x2a, 0x04) => "Reservations released",
        (0x2a, 0x05) => "Registrations preempted",
        (0x2a, 0x06) => "Asymmetric access state changed",
        (0x2e, 0x02) => "Command timeout before processing",
        (0x2f, 0x00) => "Commands cleared by another initiator",
        (0x2f, 0x02) => "Commands cleared by device server",
        (0x3a, 0x00) => "Medium not present",
        (0x3f, 0x0e) => "Reported luns data has changed",
        (0x44, 0x00) => "Internal target failure",
        (0x55, 0x02) => "Insufficient reservation resources",
        (0x55, 0x03) => "Insufficient resources",
        (0x55, 0x04) => "Insufficient registration resources",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_sense_layout_matches_qemu() {
        let mut buf = [0xffu8; 20];
        build_fixed(INVALID_OPCODE, &mut buf);
        assert_eq!(
            buf,
            [
                0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0xff, 0xff
            ]
        );
    }

    #[test]
    fn errno_mapping() {
        assert_eq!(from_errno(libc::ENOTTY), StatusAndSense::check(IO_ERROR));
        assert_eq!(from_errno(libc::EPERM), StatusAndSense::check(IO_ERROR));
        assert_eq!(
            from_errno(libc::EINVAL),
            StatusAndSense::check(INVALID_FIELD)
        );
        assert_eq!(from_errno(libc::EBADE).status, status::RESERVATION_CONFLICT);
        assert_eq!(from_errno(libc::EDOM).status, status::TASK_SET_FULL);
        assert_eq!(
            from_errno(libc::ENOMEDIUM),
            StatusAndSense::check(NO_MEDIUM)
        );
        assert_eq!(
            from_errno(libc::EREMOTEIO),
            StatusAndSense::check(TARGET_FAILURE)
        );
    }

    #[test]
    fn host_status_mapping_and_unknown_is_good() {
        assert_eq!(
            from_host_status(0x02),
            Some(StatusAndSense::bare(status::BUSY))
        );
        assert_eq!(
            from_host_status(0x11).unwrap().status,
            status::RESERVATION_CONFLICT
        );
        assert_eq!(
            from_host_status(0x0e),
            Some(StatusAndSense::check(I_T_NEXUS_LOSS))
        );
        assert_eq!(from_host_status(0x07), None);
        assert_eq!(from_host_status(0x06), None);
    }

    #[test]
    fn decode_both_formats() {
        let mut fixed = [0u8; 18];
        build_fixed(SCSI_BUS_RESET, &mut fixed);
        assert_eq!(decode(&fixed), Some(SCSI_BUS_RESET));
        let desc = [0x72, 0x05, 0x24, 0x00, 0, 0, 0, 0];
        assert_eq!(decode(&desc), Some(INVALID_FIELD));
        assert_eq!(decode(&[0u8; 18]), None);
        assert_eq!(key_name(0x0b), "Aborted Command");
        assert_eq!(
            asc_name(0x26, 0x00),
            Some("Invalid field in parameter list")
        );
    }
}
