//! Command descriptor blocks: opcodes and QEMU's transfer-length rule.

/// PERSISTENT RESERVE IN.
pub const PERSISTENT_RESERVE_IN: u8 = 0x5e;
/// PERSISTENT RESERVE OUT.
pub const PERSISTENT_RESERVE_OUT: u8 = 0x5f;
/// TEST UNIT READY.
pub const TEST_UNIT_READY: u8 = 0x00;
/// READ(10), used by the lab to probe reservation conflicts.
pub const READ_10: u8 = 0x28;
/// WRITE(10), likewise.
pub const WRITE_10: u8 = 0x2a;

/// QEMU's `scsi_cdb_xfer`: the data length a CDB carries, from its group code.
///
/// For PR IN and PR OUT (group 2) this is the big-endian u16 at bytes 7..8 for *both*
/// directions, although SPC gives PR OUT a 32-bit PARAMETER LIST LENGTH at bytes 5..8: the
/// helper and QEMU's client both read only bytes 7..8, so the stream stays in sync, and the
/// CDB goes to the device unchanged. Groups without a length field give `u32::MAX`, as the
/// C function's `-1` does.
pub fn transfer_length(cdb: &[u8; 16]) -> u32 {
    match cdb[0] >> 5 {
        0 => u32::from(cdb[4]),
        1 | 2 => u32::from(u16::from_be_bytes([cdb[7], cdb[8]])),
        4 => u32::from_be_bytes([cdb[10], cdb[11], cdb[12], cdb[13]]),
        5 => u32::from_be_bytes([cdb[6], cdb[7], cdb[8], cdb[9]]),
        _ => u32::MAX,
    }
}

/// The opcode's name, for traces and the client.
pub fn opcode_name(opcode: u8) -> &'static str {
    match opcode {
        PERSISTENT_RESERVE_IN => "PERSISTENT RESERVE IN",
        PERSISTENT_RESERVE_OUT => "PERSISTENT RESERVE OUT",
        TEST_UNIT_READY => "TEST UNIT READY",
        READ_10 => "READ(10)",
        WRITE_10 => "WRITE(10)",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdb(bytes: &[u8]) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[..bytes.len()].copy_from_slice(bytes);
        c
    }

    #[test]
    fn pr_lengths_come_from_bytes_7_and_8_only() {
        assert_eq!(
            transfer_length(&cdb(&[0x5e, 0, 0, 0, 0, 0, 0, 0x20, 0x00])),
            8192
        );
        assert_eq!(
            transfer_length(&cdb(&[0x5e, 0, 0, 0, 0, 0, 0, 0x20, 0x01])),
            8193
        );
        assert_eq!(
            transfer_length(&cdb(&[0x5f, 0, 0, 0, 0, 0xff, 0xff, 0, 24])),
            24
        );
        assert_eq!(
            transfer_length(&cdb(&[0x5f, 0, 0, 0, 0, 0, 0, 0xff, 0xff])),
            65535
        );
    }

    #[test]
    fn other_groups() {
        assert_eq!(transfer_length(&cdb(&[0x12, 0, 0, 0, 36])), 36);
        assert_eq!(
            transfer_length(&cdb(&[0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0])),
            256
        );
        assert_eq!(
            transfer_length(&cdb(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 2, 0])),
            512
        );
        assert_eq!(transfer_length(&cdb(&[0xff])), u32::MAX);
    }
}
