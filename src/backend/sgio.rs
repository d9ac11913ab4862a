//! The SG_IO backend: the command goes to the device as is, exactly as `do_sgio_worker` sends
//! it (16-byte CDB, 96-byte sense, PR IN reading into the whole 8 KiB buffer).

use std::time::Instant;

use super::{ExecOptions, Outcome, Request, clip_payload};
use crate::protocol::PR_HELPER_DATA_SIZE;
use crate::scsi::sense;
use crate::scsi::status;
use crate::sys::sg::{self, DataPhase, SgIoResult};
use crate::trace::{self, TracePoint};

/// `driver_status` bits the C helper reads as a timeout (`SG_ERR_DRIVER_TIMEOUT` tested with
/// `& 0x06`, so DRIVER_BUSY and DRIVER_SOFT match too).
const DRIVER_TIMEOUT_MASK: u16 = 0x06;

/// Runs the request through SG_IO; sense lands in `sense_area`, PR IN data in `payload`
/// (which holds the PR OUT parameter list on entry).
pub fn run(
    req: &Request,
    sense_area: &mut [u8],
    payload: &mut [u8],
    opts: &ExecOptions,
) -> Outcome {
    try_run(req, sense_area, payload, opts).unwrap_or_else(|errno| fail_errno(errno, sense_area))
}

/// The reply [`run`] gives when the SG_IO ioctl itself failed with `errno`.
pub fn fail_errno(errno: i32, sense_area: &mut [u8]) -> Outcome {
    Outcome {
        status: map_result(Err(errno), sense_area).0,
        payload_len: 0,
    }
}

/// [`run`], except that when the ioctl itself fails its errno comes back unmapped and
/// `sense_area` untouched, so the caller may try another backend. The kernel checks an
/// SG_IO request (is there an SG_IO handler at all, is the header valid) before sending
/// anything, so an `ENOTTY` or `EINVAL` here means the device saw no command.
///
/// # Errors
/// The errno of the SG_IO ioctl.
pub fn try_run(
    req: &Request,
    sense_area: &mut [u8],
    payload: &mut [u8],
    opts: &ExecOptions,
) -> Result<Outcome, i32> {
    let cdb = &req.cdb.cdb;
    let pr_out = req.cdb.is_pr_out();
    let dxfer_len = if pr_out {
        req.cdb.transfer_length
    } else {
        PR_HELPER_DATA_SIZE
    };
    let data = if pr_out {
        DataPhase::ToDevice(&payload[..dxfer_len])
    } else {
        DataPhase::FromDevice(&mut payload[..dxfer_len])
    };
    trace::emit(TracePoint::SgioIssue, || {
        format!(
            "opcode=0x{:02x} sa=0x{:02x} len={dxfer_len}",
            cdb[0], cdb[1]
        )
    });
    let started = Instant::now();
    let result = sg::sg_io(
        std::os::fd::AsFd::as_fd(&req.device),
        cdb,
        data,
        sense_area,
        opts.sgio_timeout_ms,
    );
    let outcome = match &result {
        Ok(hdr) => map_result(Ok(*hdr), sense_area),
        // The status run's mapping will give, for the trace; the sense is left to the caller.
        Err(e) => (
            sense::from_errno(e.raw_os_error().unwrap_or(libc::EIO)).status,
            0,
        ),
    };
    trace::emit(TracePoint::SgioDone, || match &result {
        Ok(r) => format!(
            "status=0x{:02x} host=0x{:02x} driver=0x{:02x} resid={} usecs={} -> status=0x{:02x}",
            r.status,
            r.host_status,
            r.driver_status,
            r.resid,
            started.elapsed().as_micros(),
            outcome.0
        ),
        // The error last, as it is text with spaces: unquoted, as a person writes it.
        Err(e) => format!(
            "usecs={} -> status=0x{:02x} error={}",
            started.elapsed().as_micros(),
            outcome.0,
            crate::errors::strerror(e)
        ),
    });
    if let Err(e) = result {
        return Err(e.raw_os_error().unwrap_or(libc::EIO));
    }
    let (status, resid) = outcome;
    if status != status::GOOD || pr_out {
        return Ok(Outcome {
            status,
            payload_len: 0,
        });
    }
    let transferred = dxfer_len.saturating_sub(usize::try_from(resid.max(0)).unwrap_or(0));
    Ok(Outcome {
        status,
        payload_len: clip_payload(transferred, req.cdb.transfer_length),
    })
}

/// `do_sgio_worker`'s reading of an SG_IO result, in its order: errno, host status, driver
/// timeout, then the device's own status with its sense passed through raw. Returns the
/// status and the residual count.
pub fn map_result(result: Result<SgIoResult, i32>, sense_area: &mut [u8]) -> (u8, i32) {
    let hdr = match result {
        Err(errno) => {
            let mapped = sense::from_errno(errno);
            if let Some(code) = mapped.sense {
                sense::build_fixed(code, sense_area);
            }
            return (mapped.status, 0);
        }
        Ok(hdr) => hdr,
    };
    if hdr.host_status != 0 {
        return match sense::from_host_status(hdr.host_status) {
            Some(mapped) => {
                if let Some(code) = mapped.sense {
                    sense::build_fixed(code, sense_area);
                }
                (mapped.status, hdr.resid)
            }
            // Unknown transport statuses read as success, as in C.
            None => (status::GOOD, hdr.resid),
        };
    }
    if hdr.driver_status & DRIVER_TIMEOUT_MASK != 0 {
        return (status::BUSY, hdr.resid);
    }
    (hdr.status, hdr.resid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(status: u8, host: u16, driver: u16) -> Result<SgIoResult, i32> {
        Ok(SgIoResult {
            status,
            host_status: host,
            driver_status: driver,
            resid: 0,
            sense_len: 0,
        })
    }

    #[test]
    fn errno_builds_fixed_sense() {
        let mut s = [0u8; 96];
        assert_eq!(
            map_result(Err(libc::ENOTTY), &mut s).0,
            status::CHECK_CONDITION
        );
        assert_eq!(
            &s[..18],
            &[0x70, 0, 0x0b, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0]
        );
        assert!(s[18..].iter().all(|&b| b == 0));
    }

    #[test]
    fn host_status_comes_before_device_status() {
        let mut s = [0u8; 96];
        assert_eq!(
            map_result(ok(0x02, 0x11, 0), &mut s).0,
            status::RESERVATION_CONFLICT
        );
        assert_eq!(map_result(ok(0x02, 0x07, 0), &mut s).0, status::GOOD);
        assert_eq!(map_result(ok(0x02, 0, 0x02), &mut s).0, status::BUSY);
        assert_eq!(map_result(ok(0x02, 0, 0x04), &mut s).0, status::BUSY);
        assert_eq!(
            map_result(ok(0x02, 0, 0x08), &mut s).0,
            status::CHECK_CONDITION
        );
        assert_eq!(
            map_result(ok(0x18, 0, 0), &mut s).0,
            status::RESERVATION_CONFLICT
        );
    }

    #[test]
    fn device_sense_passes_through_raw() {
        let mut s = [0u8; 96];
        s[0] = 0x72;
        s[1] = 0x06;
        let (st, _) = map_result(ok(0x02, 0, 0x08), &mut s);
        assert_eq!(st, 2);
        assert_eq!(&s[..2], &[0x72, 0x06]);
    }
}
