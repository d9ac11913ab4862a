//! `--direct`: the same CDB through SG_IO on the device itself, no helper, with the reply
//! built the way the helper builds it, so the two paths print and exit alike.

use std::os::fd::{AsFd as _, BorrowedFd};

use super::Reply;
use crate::backend::{
    self, BlockDevice, ExecOptions, MultipathNote, ReplyBuffer, Request, multipath,
};
use crate::protocol::{
    PR_HELPER_DATA_SIZE, PR_HELPER_REPLY_HEADER_SIZE, PR_HELPER_SENSE_SIZE, ReplyHeader,
};
use crate::scsi::cdb;
use crate::scsi::sense::{self, StatusAndSense};
use crate::scsi::status;
use crate::sys::sg::{self, DataPhase};

/// The direct path's reply, and the errno text when the ioctl itself failed.
pub struct DirectReply {
    pub reply: Reply,
    pub ioctl_error: Option<String>,
}

/// Sends `cdb` (all 16 bytes, as the helper does) with `params` (PR OUT) or an 8 KiB data-in
/// buffer (PR IN, like the helper), and maps errors as the helper does.
pub fn run(
    device: BorrowedFd<'_>,
    cdb16: &[u8; 16],
    params: &[u8],
    timeout_ms: u32,
) -> DirectReply {
    let mut sense_buf = [0u8; PR_HELPER_SENSE_SIZE];
    let mut data = vec![0u8; PR_HELPER_DATA_SIZE];
    let pr_in = cdb16[0] == cdb::PERSISTENT_RESERVE_IN;
    let phase = if pr_in {
        DataPhase::FromDevice(&mut data)
    } else {
        DataPhase::ToDevice(params)
    };
    let result = sg::sg_io(device, cdb16, phase, &mut sense_buf, timeout_ms);
    let ioctl_error = result.as_ref().err().map(crate::errors::strerror);
    let mapped: StatusAndSense = match &result {
        Err(e) => sense::from_errno(e.raw_os_error().unwrap_or(libc::EIO)),
        // The device's own sense is already in sense_buf.
        Ok(r) if r.status != status::GOOD => StatusAndSense::bare(r.status),
        Ok(r) if r.host_status != 0 => {
            sense::from_host_status(r.host_status).unwrap_or(StatusAndSense::bare(status::GOOD))
        }
        Ok(r) if r.driver_status & 0x06 != 0 => StatusAndSense::check(sense::COMMAND_TIMEOUT),
        Ok(_) => StatusAndSense::bare(status::GOOD),
    };
    if let Some(code) = mapped.sense {
        sense_buf.fill(0);
        sense::build_fixed(code, &mut sense_buf);
    }
    let payload = match (&result, mapped.status) {
        (Ok(r), status::GOOD) if pr_in => {
            let got = PR_HELPER_DATA_SIZE.saturating_sub(usize::try_from(r.resid).unwrap_or(0));
            let alloc = usize::from(u16::from_be_bytes([cdb16[7], cdb16[8]]));
            data.truncate(got.min(alloc));
            data
        }
        _ => Vec::new(),
    };
    DirectReply {
        reply: Reply {
            header: ReplyHeader {
                status: i32::from(mapped.status),
                size: i32::try_from(payload.len()).unwrap_or(0),
                sense: sense_buf,
            },
            payload,
        },
        ioctl_error,
    }
}

/// When `device` is a dm-multipath map, runs the command there as the helper's multipath
/// backend does (every path for REGISTER, multipathd told), in this process; `None` for any
/// other device. The note says which paths the command went to.
pub fn run_on_map(
    device: &std::fs::File,
    cdb16: &[u8; 16],
    params: &[u8],
    timeout_ms: u32,
    read_only: bool,
) -> Option<(Reply, MultipathNote)> {
    multipath::detect(&BlockDevice::of(device.as_fd()))?;
    let cdb = crate::protocol::check_cdb(*cdb16).ok()?;
    let request = Request {
        cdb,
        device: device.try_clone().ok()?.into(),
        read_only,
    };
    let mut buf = ReplyBuffer::new();
    buf.payload_mut()[..params.len()].copy_from_slice(params);
    let opts = ExecOptions {
        sgio_timeout_ms: timeout_ms,
        ..ExecOptions::default()
    };
    let (outcome, note) = backend::execute(&request, &mut buf, &opts);
    let (header, payload) = backend::reply_parts(&buf, outcome);
    let header: &[u8; PR_HELPER_REPLY_HEADER_SIZE] = header.try_into().ok()?;
    let reply = Reply {
        header: ReplyHeader::decode(header),
        payload: payload.to_vec(),
    };
    Some((reply, note?))
}

/// When `device` is a dm-multipath map: its name and its paths with their states (or why
/// they could not be read).
pub fn map_paths(device: BorrowedFd<'_>) -> Option<(String, Result<String, String>)> {
    let map = multipath::detect(&BlockDevice::of(device))?;
    let paths = multipath::describe_paths(&map);
    Some((map.name, paths))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::pr::{InSa, pr_in_cdb};

    #[test]
    fn dev_null_is_aborted_command_like_the_helper() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let r = run(f.as_fd(), &pr_in_cdb(InSa::ReadKeys, 8192), &[], 1000);
        assert_eq!(r.reply.status(), status::CHECK_CONDITION);
        assert_eq!(sense::decode(&r.reply.header.sense), Some(sense::IO_ERROR));
        assert!(r.reply.payload.is_empty());
        assert_eq!(
            r.ioctl_error.as_deref(),
            Some("Inappropriate ioctl for device")
        );
    }
}
