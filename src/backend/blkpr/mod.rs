//! SCSI PR through the block layer's IOC_PR_* ioctls: for NVMe namespaces and any block
//! device whose driver has PR support but does not answer SG_IO.
//!
//! The CDB and parameter list are checked as a SCSI device server would, turned into one
//! ioctl ([`translate`]), and the result turned back into SCSI status, sense and PR IN data.
//! What the ioctls cannot express is refused, what they express differently is documented
//! where it is translated:
//!
//! * APTPL: accepted whether 0 or 1. The kernel itself sets APTPL on every SCSI REGISTER and
//!   CPTPL "persist" on every NVMe Reservation Register, so registrations are always asked to
//!   persist through power loss; REPORT CAPABILITIES says so (PTPL_C = PTPL_A = 1). Refusing
//!   APTPL 0, the default of every initiator, would make the backend useless; refusing APTPL 1
//!   would refuse exactly what is done.
//! * ALL_TG_PT, SPEC_I_PT: INVALID FIELD IN PARAMETER LIST (ATP_C = SIP_C = 0). REGISTER AND
//!   MOVE, REPLACE LOST RESERVATION, READ FULL STATUS: INVALID FIELD IN CDB.
//! * Unregister on NVMe: Linux sends Replace with new key 0, so the host stays a registrant
//!   with key 0 (nvmet; the NVMe spec leaves key 0 legal). READ KEYS reports what the device
//!   holds, key 0 included, rather than hide a registrant that still has registrant access;
//!   commands naming key 0 as the RESERVATION KEY get RESERVATION CONFLICT without reaching
//!   the device, as an unregistered SCSI initiator would.
//! * READ KEYS and READ RESERVATION need Linux 6.19; on older kernels they get INVALID FIELD
//!   IN CDB (PR IN works, this service action does not).

pub mod translate;

use std::os::fd::{AsFd, BorrowedFd};

use super::{BlockDevice, ExecOptions, Outcome, Request, clip_payload, sgio};
use crate::protocol::{CheckedCdb, PR_HELPER_DATA_SIZE};
use crate::scsi::sense::{self, StatusAndSense};
use crate::scsi::status;
use crate::sys::blkpr::{self as ioc, PrStatus};

use self::translate::{PrinPlan, ProutPlan};

/// Runs the request through the block PR ioctls (`--pr-backend=block`).
pub fn run(req: &Request, sense_area: &mut [u8], payload: &mut [u8]) -> Outcome {
    let fd = req.device.as_fd();
    let reply = if req.cdb.is_pr_out() {
        run_out(fd, &req.cdb, &payload[..req.cdb.transfer_length])
    } else {
        run_in(fd, &req.cdb, payload)
    };
    match reply {
        Ok(len) => Outcome {
            status: status::GOOD,
            payload_len: len,
        },
        Err(answer) => {
            if let Some(code) = answer.sense {
                sense::build_fixed(code, sense_area);
            }
            Outcome {
                status: answer.status,
                payload_len: 0,
            }
        }
    }
}

/// For `--pr-backend=auto`: SG_IO first; when it fails with `ENOTTY` or `EINVAL` (no SG_IO
/// handler, which the kernel finds before sending anything) and the fd is a block device, the
/// block PR ioctls instead. Once SG_IO has been tried, its answer (or the ioctls') is the
/// reply: the command is never sent twice.
///
/// Only a failed SG_IO costs the extra `fstat`: sd and sg answer SG_IO, and /dev/null and
/// other non-block fds get the C helper's answer after that one call.
pub fn run_auto(
    req: &Request,
    block: &BlockDevice<'_>,
    sense_area: &mut [u8],
    payload: &mut [u8],
    opts: &ExecOptions,
) -> Outcome {
    match sgio::try_run(req, sense_area, payload, opts) {
        Ok(outcome) => outcome,
        Err(errno) if refuses_sg_io(errno) && block.stat().is_some() => {
            run(req, sense_area, payload)
        }
        Err(errno) => sgio::fail_errno(errno, sense_area),
    }
}

/// SG_IO errnos that mean "this device has no SG_IO": `ENOTTY` from drivers without it
/// (NVMe, virtio-blk, dm over those), `EINVAL` from drivers that answer unknown ioctls so
/// (loop, xen-blkfront). SG_IO's own checks give `EINVAL` only for a bad header, which the
/// helper never builds.
fn refuses_sg_io(errno: i32) -> bool {
    errno == libc::ENOTTY || errno == libc::EINVAL
}

/// An ioctl result as GOOD (`Ok`) or the SCSI answer for its failure.
fn settle(
    result: Result<PrStatus, rustix::io::Errno>,
    read_ioctl: bool,
) -> Result<(), StatusAndSense> {
    match result {
        Ok(PrStatus::SUCCESS) => Ok(()),
        Ok(s) => Err(translate::status_reply(s)),
        Err(e) => Err(translate::errno_reply(e.raw_os_error(), read_ioctl)),
    }
}

/// PR OUT; `Ok` carries no payload.
fn run_out(fd: BorrowedFd<'_>, cdb: &CheckedCdb, params: &[u8]) -> Result<usize, StatusAndSense> {
    let result = match translate::plan_out(&cdb.cdb, params)? {
        ProutPlan::Register {
            arg,
            retry_on_conflict,
        } => match (ioc::register(fd, arg), retry_on_conflict) {
            (Ok(PrStatus::RESERVATION_CONFLICT), Some(retry)) => ioc::register(fd, retry),
            (first, _) => first,
        },
        ProutPlan::Reserve(arg) => ioc::reserve(fd, arg),
        ProutPlan::Release(arg) => ioc::release(fd, arg),
        ProutPlan::Preempt { arg, abort } => ioc::preempt(fd, arg, abort),
        ProutPlan::Clear(arg) => ioc::clear(fd, arg),
    };
    settle(result, false).map(|()| 0)
}

/// PR IN; `Ok` is the payload length, clipped to the allocation length.
fn run_in(
    fd: BorrowedFd<'_>,
    cdb: &CheckedCdb,
    payload: &mut [u8],
) -> Result<usize, StatusAndSense> {
    let allocation_length = cdb.transfer_length;
    let room = clip_payload(PR_HELPER_DATA_SIZE, allocation_length).min(payload.len());
    let written = match translate::plan_in(&cdb.cdb)? {
        PrinPlan::ReadKeys => {
            let mut keys = [0u64; PR_HELPER_DATA_SIZE / 8];
            let capacity = translate::read_keys_capacity(room).min(keys.len());
            let read = ioc::read_keys(fd, &mut keys[..capacity]);
            let read = read.map_err(|e| translate::errno_reply(e.raw_os_error(), true))?;
            settle(Ok(read.status), true)?;
            let returned = capacity.min(usize::try_from(read.num_keys).unwrap_or(usize::MAX));
            translate::read_keys_payload(
                read.generation,
                read.num_keys,
                &keys[..returned],
                &mut payload[..room],
            )
        }
        PrinPlan::ReadReservation => {
            let read = ioc::read_reservation(fd);
            let read = read.map_err(|e| translate::errno_reply(e.raw_os_error(), true))?;
            settle(Ok(read.status), true)?;
            translate::read_reservation_payload(&read.reservation, &mut payload[..room])
                .ok_or_else(|| translate::status_reply(PrStatus::IOERR))?
        }
        PrinPlan::ReportCapabilities => {
            // Only "no PR here at all" makes REPORT CAPABILITIES fail: the capabilities
            // describe this backend, and a permission problem shows on the commands that
            // need the permission.
            match ioc::probe(fd) {
                Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOTTY => {
                    return Err(translate::errno_reply(libc::EOPNOTSUPP, false));
                }
                _ => {}
            }
            translate::report_capabilities(&mut payload[..room])
        }
    };
    Ok(clip_payload(written, allocation_length))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::check_cdb;
    use crate::scsi::pr::{InSa, OutSa, pr_in_cdb, pr_out_cdb};
    use std::os::fd::OwnedFd;

    fn request(cdb: [u8; 16], device: OwnedFd) -> Request {
        Request {
            cdb: check_cdb(cdb).unwrap(),
            device,
            read_only: false,
        }
    }

    fn dev_null() -> OwnedFd {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .unwrap()
            .into()
    }

    fn cdb_with_len(mut cdb: [u8; 16], len: u16) -> [u8; 16] {
        cdb[7..9].copy_from_slice(&len.to_be_bytes());
        cdb
    }

    #[test]
    fn auto_keeps_the_c_helpers_answer_for_non_block_fds() {
        let req = request(pr_in_cdb(InSa::ReadKeys, 8192), dev_null());
        let mut sense_area = [0u8; 96];
        let mut payload = [0u8; PR_HELPER_DATA_SIZE];
        let block = BlockDevice::of(req.device.as_fd());
        let outcome = run_auto(
            &req,
            &block,
            &mut sense_area,
            &mut payload,
            &ExecOptions::default(),
        );
        let mut c_sense = [0u8; 96];
        let c_outcome = sgio::run(&req, &mut c_sense, &mut payload, &ExecOptions::default());
        assert_eq!(outcome, c_outcome);
        assert_eq!(sense_area, c_sense);
        assert!(block.stat().is_none());
    }

    #[test]
    fn forced_block_on_a_char_device_is_invalid_opcode() {
        let cdb = cdb_with_len(pr_out_cdb(OutSa::Register, 0, 0, 0), 24);
        let req = request(cdb, dev_null());
        let mut sense_area = [0u8; 96];
        let mut payload = [0u8; PR_HELPER_DATA_SIZE];
        payload[15] = 1;
        let outcome = run(&req, &mut sense_area, &mut payload);
        assert_eq!(outcome.status, status::CHECK_CONDITION);
        assert_eq!(sense::decode(&sense_area), Some(sense::INVALID_OPCODE));
    }

    #[test]
    fn refused_pr_out_never_reaches_the_device() {
        // REGISTER AND MOVE on /dev/null: the answer is the translation's, not ENOTTY's.
        let cdb = cdb_with_len(pr_out_cdb(OutSa::RegisterAndMove, 0, 0, 0), 24);
        let req = request(cdb, dev_null());
        let mut sense_area = [0u8; 96];
        let mut payload = [0u8; PR_HELPER_DATA_SIZE];
        let outcome = run(&req, &mut sense_area, &mut payload);
        assert_eq!(outcome.payload_len, 0);
        assert_eq!(sense::decode(&sense_area), Some(sense::INVALID_FIELD));
        // RELEASE with key 0: conflict, no sense.
        let cdb = cdb_with_len(pr_out_cdb(OutSa::Release, 0, 1, 0), 24);
        let req = request(cdb, dev_null());
        let mut sense_area = [0u8; 96];
        let outcome = run(&req, &mut sense_area, &mut payload);
        assert_eq!(outcome.status, status::RESERVATION_CONFLICT);
        assert_eq!(sense_area, [0u8; 96]);
    }

    #[test]
    fn pr_in_on_a_char_device() {
        let mut payload = [0u8; PR_HELPER_DATA_SIZE];
        for (sa, want) in [
            (InSa::ReadKeys, sense::INVALID_FIELD),
            (InSa::ReadReservation, sense::INVALID_FIELD),
            (InSa::ReportCapabilities, sense::INVALID_OPCODE),
            (InSa::ReadFullStatus, sense::INVALID_FIELD),
        ] {
            let req = request(pr_in_cdb(sa, 8192), dev_null());
            let mut sense_area = [0u8; 96];
            let outcome = run(&req, &mut sense_area, &mut payload);
            assert_eq!(outcome.status, status::CHECK_CONDITION, "sa {sa:?}");
            assert_eq!(sense::decode(&sense_area), Some(want), "sa {sa:?}");
        }
    }
}
