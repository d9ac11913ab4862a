//! The qemu-pr-helper wire protocol (QEMU `docs/interop/pr-helper.rst`), as pure bytes.
//!
//! ```text
//! helper -> client   features        u32 BE   (0: no optional feature)
//! client -> helper   features        u32 BE   (nonzero: the helper closes the connection)
//! then, repeated, one request at a time:
//! client -> helper   CDB             16 bytes, exactly one fd in SCM_RIGHTS on one fragment
//!                    parameter list  PR OUT only: transfer_length(CDB) bytes
//! helper -> client   status          i32 BE   SCSI status byte
//!                    size            i32 BE   payload bytes that follow (PR IN, GOOD only)
//!                    sense           96 bytes
//!                    payload         size bytes
//! ```
//! Nothing here does I/O: the daemon and the client both build and parse with these functions.

use crate::scsi::cdb::{self, PERSISTENT_RESERVE_IN, PERSISTENT_RESERVE_OUT};
use crate::scsi::sense::SENSE_BUFFER_SIZE;

/// Size of the CDB field of a request.
pub const PR_HELPER_CDB_SIZE: usize = 16;
/// Size of the sense field of a reply.
pub const PR_HELPER_SENSE_SIZE: usize = SENSE_BUFFER_SIZE;
/// Largest data transfer (PR IN payload or PR OUT parameter list) a request may carry.
pub const PR_HELPER_DATA_SIZE: usize = 8192;
/// Size of the feature words exchanged at connection start.
pub const PR_HELPER_FEATURES_SIZE: usize = 4;
/// Size of the reply header: status, size and sense.
pub const PR_HELPER_REPLY_HEADER_SIZE: usize = 8 + PR_HELPER_SENSE_SIZE;
/// Largest whole reply.
pub const PR_HELPER_MAX_REPLY_SIZE: usize = PR_HELPER_REPLY_HEADER_SIZE + PR_HELPER_DATA_SIZE;
/// Features this helper offers (none, like every released QEMU).
pub const SUPPORTED_FEATURES: u32 = 0;

/// Encodes a feature word.
pub fn encode_features(features: u32) -> [u8; PR_HELPER_FEATURES_SIZE] {
    features.to_be_bytes()
}

/// Whether the helper accepts the features a client asked for: only supported ones.
pub fn features_acceptable(requested: [u8; PR_HELPER_FEATURES_SIZE]) -> bool {
    u32::from_be_bytes(requested) & !SUPPORTED_FEATURES == 0
}

/// Why a request's CDB makes the helper close the connection without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CdbError {
    /// Neither PR IN nor PR OUT ("Invalid CDB, closing socket.").
    InvalidOpcode(u8),
    /// The transfer length is past `PR_HELPER_DATA_SIZE` (closed silently).
    TooLong(u32),
}

/// A request's CDB after the checks the C helper makes before running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedCdb {
    pub cdb: [u8; PR_HELPER_CDB_SIZE],
    /// Transfer length: PR IN allocation length, or PR OUT parameter bytes that follow.
    pub transfer_length: usize,
}

impl CheckedCdb {
    /// Whether this is PR OUT, whose parameter list follows on the socket.
    pub fn is_pr_out(&self) -> bool {
        self.cdb[0] == PERSISTENT_RESERVE_OUT
    }
    /// Bytes of parameter list the client sends after the CDB.
    pub fn parameter_length(&self) -> usize {
        if self.is_pr_out() {
            self.transfer_length
        } else {
            0
        }
    }
}

/// Checks a received CDB as `prh_read_request` does (after the fd check).
pub fn check_cdb(cdb: [u8; PR_HELPER_CDB_SIZE]) -> Result<CheckedCdb, CdbError> {
    if cdb[0] != PERSISTENT_RESERVE_IN && cdb[0] != PERSISTENT_RESERVE_OUT {
        return Err(CdbError::InvalidOpcode(cdb[0]));
    }
    let len = cdb::transfer_length(&cdb);
    if len as usize > PR_HELPER_DATA_SIZE {
        return Err(CdbError::TooLong(len));
    }
    Ok(CheckedCdb {
        cdb,
        transfer_length: len as usize,
    })
}

/// A decoded reply header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyHeader {
    /// SCSI status (the protocol carries an i32; valid values fit a byte).
    pub status: i32,
    /// Payload bytes that follow.
    pub size: i32,
    pub sense: [u8; PR_HELPER_SENSE_SIZE],
}

impl ReplyHeader {
    /// Encodes the header into the first `PR_HELPER_REPLY_HEADER_SIZE` bytes of `out`.
    ///
    /// # Panics
    /// If `out` is shorter than the header (a caller bug, not input-dependent).
    pub fn encode_into(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.status.to_be_bytes());
        out[4..8].copy_from_slice(&self.size.to_be_bytes());
        out[8..PR_HELPER_REPLY_HEADER_SIZE].copy_from_slice(&self.sense);
    }

    /// Decodes a header.
    pub fn decode(bytes: &[u8; PR_HELPER_REPLY_HEADER_SIZE]) -> ReplyHeader {
        let mut sense = [0u8; PR_HELPER_SENSE_SIZE];
        sense.copy_from_slice(&bytes[8..]);
        ReplyHeader {
            status: i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            size: i32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            sense,
        }
    }
}

/// Pads a CDB of up to 16 bytes with zeros, as QEMU's client does.
#[cfg(test)]
fn pad_cdb(cdb: &[u8]) -> Option<[u8; PR_HELPER_CDB_SIZE]> {
    if cdb.is_empty() || cdb.len() > PR_HELPER_CDB_SIZE {
        return None;
    }
    let mut out = [0u8; PR_HELPER_CDB_SIZE];
    out[..cdb.len()].copy_from_slice(cdb);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features() {
        assert_eq!(encode_features(SUPPORTED_FEATURES), [0, 0, 0, 0]);
        assert!(features_acceptable([0, 0, 0, 0]));
        assert!(!features_acceptable([0, 0, 0, 1]));
        assert!(!features_acceptable([0x80, 0, 0, 0]));
    }

    #[test]
    fn cdb_checks() {
        let mut cdb = [0u8; 16];
        cdb[0] = 0x12;
        assert_eq!(check_cdb(cdb), Err(CdbError::InvalidOpcode(0x12)));
        cdb[0] = 0x5e;
        cdb[7] = 0x20;
        let ok = check_cdb(cdb).unwrap();
        assert_eq!(ok.transfer_length, 8192);
        assert_eq!(ok.parameter_length(), 0);
        cdb[8] = 1;
        assert_eq!(check_cdb(cdb), Err(CdbError::TooLong(8193)));
        cdb[0] = 0x5f;
        cdb[7] = 0;
        cdb[8] = 24;
        assert_eq!(check_cdb(cdb).unwrap().parameter_length(), 24);
    }

    #[test]
    fn reply_header_round_trip() {
        // The C helper's reply to PR IN on /dev/null: CHECK CONDITION, size 0, 0B/00/06.
        let mut expected = [0u8; PR_HELPER_REPLY_HEADER_SIZE];
        expected[3] = 2;
        expected[8] = 0x70;
        expected[10] = 0x0b;
        expected[15] = 10;
        expected[21] = 0x06;
        let decoded = ReplyHeader::decode(&expected);
        assert_eq!(decoded.status, 2);
        assert_eq!(decoded.size, 0);
        let mut out = [0u8; PR_HELPER_REPLY_HEADER_SIZE];
        decoded.encode_into(&mut out);
        assert_eq!(out, expected);
    }

    #[test]
    fn pad() {
        assert_eq!(pad_cdb(&[0x5e, 1]).unwrap()[..3], [0x5e, 1, 0]);
        assert!(pad_cdb(&[]).is_none());
        assert!(pad_cdb(&[0; 17]).is_none());
    }
}
