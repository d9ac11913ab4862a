//! SCSI PERSISTENT RESERVE IN/OUT ↔ block-layer PR ioctls, as pure functions: CDB and
//! parameter list in, the ioctl to issue (or the SCSI answer when there is none) out; ioctl
//! results in, SCSI status, sense and PR IN payload out.

use crate::scsi::pr::{InSa, OutSa, PR_OUT_FIXED_PARAM_SIZE, PrType, ProutParams, Scope};
use crate::scsi::sense::{self, StatusAndSense};
use crate::scsi::status;
use crate::sys::blkpr::{
    PR_FL_IGNORE_KEY, PrClear, PrPreempt, PrReadReservation, PrRegistration, PrReservation,
    PrStatus, pr_type,
};

/// The key passed as `old_key` when the device is told to ignore it (REGISTER AND IGNORE
/// EXISTING KEY): SCSI devices ignore the RESERVATION KEY field for that service action, and
/// Linux's NVMe driver needs a nonzero old key to send Replace (with IEKEY, so the value is not
/// compared) rather than Register.
pub const IGNORED_OLD_KEY: u64 = u64::MAX;

/// SCSI reservation type (SPC-4 table 172) → block `pr_type`.
pub fn scsi_to_block_type(scsi_type: PrType) -> u32 {
    match scsi_type {
        PrType::WriteExclusive => pr_type::WRITE_EXCLUSIVE,
        PrType::ExclusiveAccess => pr_type::EXCLUSIVE_ACCESS,
        PrType::WriteExclusiveRegistrantsOnly => pr_type::WRITE_EXCLUSIVE_REG_ONLY,
        PrType::ExclusiveAccessRegistrantsOnly => pr_type::EXCLUSIVE_ACCESS_REG_ONLY,
        PrType::WriteExclusiveAllRegistrants => pr_type::WRITE_EXCLUSIVE_ALL_REGS,
        PrType::ExclusiveAccessAllRegistrants => pr_type::EXCLUSIVE_ACCESS_ALL_REGS,
    }
}

/// Block `pr_type` → SCSI reservation type: the inverse of [`scsi_to_block_type`].
pub fn block_to_scsi_type(block_type: u32) -> Option<PrType> {
    PrType::all().find(|&t| scsi_to_block_type(t) == block_type)
}

/// GOOD.
pub const GOOD: StatusAndSense = StatusAndSense::bare(status::GOOD);
/// RESERVATION CONFLICT, which carries no sense.
pub const CONFLICT: StatusAndSense = StatusAndSense::bare(status::RESERVATION_CONFLICT);

/// What a PR OUT turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProutPlan {
    /// IOC_PR_REGISTER; when `retry_on_conflict` is set and the first call reports a
    /// reservation conflict (which changed nothing), issue that one instead.
    Register {
        arg: PrRegistration,
        retry_on_conflict: Option<PrRegistration>,
    },
    Reserve(PrReservation),
    Release(PrReservation),
    Preempt {
        arg: PrPreempt,
        abort: bool,
    },
    Clear(PrClear),
}

/// Checks a PR OUT CDB and parameter list as a SCSI device server would and picks the ioctl;
/// `Err` is the answer when none is issued.
///
/// * Service actions the ioctls cannot express (REGISTER AND MOVE, REPLACE LOST RESERVATION,
///   reserved ones), a scope other than LU, or an unknown type where the action uses it:
///   ILLEGAL REQUEST / INVALID FIELD IN CDB.
/// * SPEC_I_PT, or ALL_TG_PT on a register action (REPORT CAPABILITIES says SIP_C = ATP_C = 0):
///   INVALID FIELD IN PARAMETER LIST. A parameter list other than 24 bytes: PARAMETER LIST
///   LENGTH ERROR.
/// * APTPL is accepted either way, see [`report_capabilities`].
/// * A RESERVATION KEY of 0 for anything but a register action: RESERVATION CONFLICT without
///   asking the device. SCSI never registers key 0, so that is the answer an unregistered
///   I_T nexus gets; and Linux's NVMe driver turns key 0 on RELEASE and CLEAR into "ignore the
///   key", which would release or clear without holding a key at all.
pub fn plan_out(cdb: &[u8; 16], params: &[u8]) -> Result<ProutPlan, StatusAndSense> {
    let invalid_cdb = StatusAndSense::check(sense::INVALID_FIELD);
    let sa = OutSa::from_byte(cdb[1] & 0x1f).ok_or(invalid_cdb)?;
    let uses_type = match sa {
        OutSa::Register | OutSa::RegisterAndIgnoreExistingKey | OutSa::Clear => false,
        OutSa::Reserve | OutSa::Release | OutSa::Preempt | OutSa::PreemptAndAbort => true,
        OutSa::RegisterAndMove | OutSa::ReplaceLostReservation => return Err(invalid_cdb),
    };
    let block_type = if uses_type {
        Scope::from_byte(cdb[2] >> 4).ok_or(invalid_cdb)?;
        scsi_to_block_type(PrType::from_byte(cdb[2] & 0x0f).ok_or(invalid_cdb)?)
    } else {
        0
    };
    let Some(list) = ProutParams::decode(sa as u8, params) else {
        return Err(StatusAndSense::check(sense::INVALID_PARAM_LEN));
    };
    // Checked before the length: with SPEC_I_PT a longer list is legal, and the bit is what
    // this backend cannot do.
    if list.spec_i_pt {
        return Err(StatusAndSense::check(sense::INVALID_PARAM));
    }
    if params.len() != PR_OUT_FIXED_PARAM_SIZE {
        return Err(StatusAndSense::check(sense::INVALID_PARAM_LEN));
    }
    let (key, sa_key) = (list.reservation_key, list.service_action_key);
    let reservation = PrReservation {
        key,
        pr_type: block_type,
        flags: 0,
    };
    let registers = matches!(sa, OutSa::Register | OutSa::RegisterAndIgnoreExistingKey);
    // SPC-4 makes ALL_TG_PT meaningful for the register actions only and ignored elsewhere.
    if registers && list.all_tg_pt {
        return Err(StatusAndSense::check(sense::INVALID_PARAM));
    }
    if !registers && key == 0 {
        return Err(CONFLICT);
    }
    Ok(match sa {
        OutSa::Register => ProutPlan::Register {
            arg: PrRegistration {
                old_key: key,
                new_key: sa_key,
                ..PrRegistration::default()
            },
            retry_on_conflict: None,
        },
        OutSa::RegisterAndIgnoreExistingKey => plan_register_ignore(sa_key),
        OutSa::Reserve => ProutPlan::Reserve(reservation),
        OutSa::Release => ProutPlan::Release(reservation),
        OutSa::Clear => ProutPlan::Clear(PrClear {
            key,
            ..PrClear::default()
        }),
        _ => ProutPlan::Preempt {
            arg: PrPreempt {
                old_key: key,
                new_key: sa_key,
                pr_type: block_type,
                flags: 0,
            },
            abort: sa == OutSa::PreemptAndAbort,
        },
    })
}

/// REGISTER AND IGNORE EXISTING KEY. On SCSI (sd) any `old_key` gives the same command. On
/// NVMe Linux sends Register+IEKEY for old key 0, which fails with a reservation conflict when
/// the host is registered with another key, and Replace+IEKEY otherwise, which fails when it
/// is not registered at all: so try Register first and Replace on conflict (a conflict
/// changes nothing, so the retry is safe). Unregistering (new key 0) only makes sense as
/// Replace.
fn plan_register_ignore(sa_key: u64) -> ProutPlan {
    let replace = PrRegistration {
        old_key: IGNORED_OLD_KEY,
        new_key: sa_key,
        flags: PR_FL_IGNORE_KEY,
        pad: 0,
    };
    if sa_key == 0 {
        return ProutPlan::Register {
            arg: replace,
            retry_on_conflict: None,
        };
    }
    ProutPlan::Register {
        arg: PrRegistration {
            old_key: 0,
            ..replace
        },
        retry_on_conflict: Some(replace),
    }
}

/// What a PR IN turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrinPlan {
    ReadKeys,
    ReadReservation,
    /// Synthesised: see [`report_capabilities`].
    ReportCapabilities,
}

/// Picks the PR IN action; READ FULL STATUS (the ioctls report no transport IDs nor which
/// registrant holds the reservation) and reserved service actions get INVALID FIELD IN CDB.
pub fn plan_in(cdb: &[u8; 16]) -> Result<PrinPlan, StatusAndSense> {
    match InSa::from_byte(cdb[1] & 0x1f) {
        Some(InSa::ReadKeys) => Ok(PrinPlan::ReadKeys),
        Some(InSa::ReadReservation) => Ok(PrinPlan::ReadReservation),
        Some(InSa::ReportCapabilities) => Ok(PrinPlan::ReportCapabilities),
        Some(InSa::ReadFullStatus) | None => Err(StatusAndSense::check(sense::INVALID_FIELD)),
    }
}

/// How many keys to ask IOC_PR_READ_KEYS for, so that the reply fills `room` payload bytes:
/// at least one (the kernel reports the true count whatever the capacity, and a capacity of
/// 0 is an edge no driver needs to see).
pub fn read_keys_capacity(room: usize) -> usize {
    (room.saturating_sub(8) / 8).max(1)
}

/// READ KEYS parameter data (SPC-4 §6.15.2): generation, ADDITIONAL LENGTH for all `held`
/// keys (true even when fewer fit), then the `keys` read, big-endian, as far as `out` has
/// room. Returns the bytes written.
pub fn read_keys_payload(generation: u32, held: u32, keys: &[u64], out: &mut [u8]) -> usize {
    let mut data = Vec::with_capacity(8 + 8 * keys.len());
    data.extend_from_slice(&generation.to_be_bytes());
    data.extend_from_slice(&held.saturating_mul(8).to_be_bytes());
    let returned = keys.len().min(usize::try_from(held).unwrap_or(usize::MAX));
    for k in &keys[..returned] {
        data.extend_from_slice(&k.to_be_bytes());
    }
    fill(out, &data)
}

/// Copies as much of `data` as `out` has room for; the bytes written.
fn fill(out: &mut [u8], data: &[u8]) -> usize {
    let n = data.len().min(out.len());
    out[..n].copy_from_slice(&data[..n]);
    n
}

/// READ RESERVATION parameter data (SPC-4 §6.15.3) from what the kernel reported: no
/// reservation (type 0) is a bare header; otherwise a 16-byte descriptor with LU scope.
/// For the all-registrants types the RESERVATION KEY is 0, as SPC-4 requires (NVMe reports
/// some registrant's key there). `None` for a type SCSI cannot name.
pub fn read_reservation_payload(r: &PrReadReservation, out: &mut [u8]) -> Option<usize> {
    let mut data = [0u8; 24];
    data[0..4].copy_from_slice(&r.generation.to_be_bytes());
    if r.pr_type == 0 {
        return Some(fill(out, &data[..8]));
    }
    let scsi_type = block_to_scsi_type(r.pr_type)?;
    data[4..8].copy_from_slice(&16u32.to_be_bytes());
    let all_registrants = matches!(
        r.pr_type,
        pr_type::WRITE_EXCLUSIVE_ALL_REGS | pr_type::EXCLUSIVE_ACCESS_ALL_REGS
    );
    if !all_registrants {
        data[8..16].copy_from_slice(&r.key.to_be_bytes());
    }
    data[21] = ((Scope::LogicalUnit as u8) << 4) | scsi_type as u8;
    Some(fill(out, &data))
}

/// REPORT CAPABILITIES parameter data (SPC-4 §6.15.4) for this backend: no SPEC_I_PT
/// (SIP_C 0), no ALL_TG_PT (ATP_C 0), no compatible reservation handling (CRH 0), the six
/// persistent reservation types, and persist through power loss both capable and active
/// (PTPL_C = PTPL_A = 1) because the kernel asks the device for it on every registration it
/// sends (APTPL on SCSI, CPTPL "persist" on NVMe), whatever APTPL the guest gave. Returns the
/// bytes written.
pub fn report_capabilities(out: &mut [u8]) -> usize {
    const DATA: [u8; 8] = [
        0x00, 0x08, // LENGTH
        0x01, // PTPL_C
        0x81, // TMV, ALLOW COMMANDS 000b, PTPL_A
        0xea, 0x01, // WR_EX_AR EX_AC_RO WR_EX_RO EX_AC WR_EX | EX_AC_AR
        0x00, 0x00,
    ];
    fill(out, &DATA)
}

/// `NVME_SC_RESERVATION_CONFLICT`: kernels before the pr_status mapping (≈6.4) return the raw
/// NVMe status, with SCT/SC in the low 11 bits (DNR and MORE above them).
const RAW_NVME_RESERVATION_CONFLICT: u32 = 0x83;

/// SCSI answer for an ioctl's non-negative return.
///
/// * 0: GOOD. 0x18 (`PR_STS_RESERVATION_CONFLICT`, also the raw SCSI result older sd
///   kernels return): RESERVATION CONFLICT, no sense. So is a raw NVMe Reservation Conflict
///   status from kernels before ≈6.4.
/// * Path failures (`PR_STS_PATH_FAILED`, `_RETRY_PATH_FAILURE`, `_PATH_FAST_FAILED`): ABORTED
///   COMMAND with the sense the C helper gives the matching host statuses (no connect,
///   transport disrupted) or LOGICAL UNIT COMMUNICATION FAILURE, so that guests retry.
/// * `PR_STS_IOERR` and anything else: HARDWARE ERROR / INTERNAL TARGET FAILURE. The device
///   failed the command for a reason the kernel does not pass on.
pub fn status_reply(s: PrStatus) -> StatusAndSense {
    match s {
        PrStatus::SUCCESS => GOOD,
        PrStatus::RESERVATION_CONFLICT => CONFLICT,
        PrStatus::PATH_FAILED => StatusAndSense::check(sense::LUN_NOT_RESPONDING),
        PrStatus::RETRY_PATH_FAILURE => StatusAndSense::check(sense::I_T_NEXUS_LOSS),
        PrStatus::PATH_FAST_FAILED => StatusAndSense::check(sense::LUN_COMM_FAILURE),
        PrStatus(raw) if raw < 0x1_0000 && raw & 0x7ff == RAW_NVME_RESERVATION_CONFLICT => CONFLICT,
        _ => StatusAndSense::check(sense::TARGET_FAILURE),
    }
}

/// SCSI answer for an ioctl that failed with `errno`; `read_ioctl` for IOC_PR_READ_KEYS and
/// IOC_PR_READ_RESERVATION.
///
/// `EOPNOTSUPP` (the driver has no PR support, or not this operation): INVALID COMMAND
/// OPERATION CODE, as a device without persistent reservations answers. `ENOTTY` on the PR
/// OUT ioctls means the same (dm with other than one target); on the READ ioctls it means a
/// kernel before 6.19, and so does `EINVAL` from drivers that answer unknown ioctls with it:
/// PR IN as such works (REPORT CAPABILITIES), only this service action does not, so INVALID
/// FIELD IN CDB. `EINVAL` otherwise (the device rejected a field): INVALID FIELD IN CDB.
/// `EPERM` and `EACCES`: the kernel refused the caller (`blkdev_pr_allowed`: no
/// CAP_SYS_ADMIN and a descriptor not opened for writing, or a partition), which no retry
/// changes: ILLEGAL REQUEST, ACCESS DENIED - NO ACCESS RIGHTS (05/20/02), not the C helper's
/// ABORTED COMMAND for EPERM, which guests retry.
/// Anything else: the C helper's errno mapping (`EAGAIN`, `EWOULDBLOCK`: ABORTED COMMAND /
/// I/O PROCESS TERMINATED).
pub fn errno_reply(errno: i32, read_ioctl: bool) -> StatusAndSense {
    match errno {
        libc::EPERM | libc::EACCES => StatusAndSense::check(sense::ACCESS_DENIED),
        libc::EOPNOTSUPP => StatusAndSense::check(sense::INVALID_OPCODE),
        libc::ENOTTY if read_ioctl => StatusAndSense::check(sense::INVALID_FIELD),
        libc::ENOTTY => StatusAndSense::check(sense::INVALID_OPCODE),
        libc::EINVAL => StatusAndSense::check(sense::INVALID_FIELD),
        _ => sense::from_errno(errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::pr::{self, SPEC_I_PT, pr_in_cdb, pr_out_cdb};

    fn out(sa: OutSa, scope: u8, t: u8, params: &ProutParams) -> Result<ProutPlan, StatusAndSense> {
        let list = params.encode(sa);
        let cdb = pr_out_cdb(sa, scope, t, u32::try_from(list.len()).unwrap());
        plan_out(&cdb, &list)
    }

    fn keys(reservation_key: u64, service_action_key: u64) -> ProutParams {
        ProutParams::keys(reservation_key, service_action_key)
    }

    /// An IOC_PR_REGISTER argument.
    fn reg(old_key: u64, new_key: u64, flags: u32) -> PrRegistration {
        PrRegistration {
            old_key,
            new_key,
            flags,
            pad: 0,
        }
    }

    /// IOC_PR_REGISTER with `arg`, and `retry` after a conflict.
    fn register(arg: PrRegistration, retry: Option<PrRegistration>) -> Plan {
        Ok(ProutPlan::Register {
            arg,
            retry_on_conflict: retry,
        })
    }

    type Plan = Result<ProutPlan, StatusAndSense>;

    #[test]
    fn types_map_both_ways() {
        let pairs = [(1, 1), (3, 2), (5, 3), (6, 4), (7, 5), (8, 6)];
        for (scsi, block) in pairs {
            assert_eq!(PrType::from_byte(scsi).map(scsi_to_block_type), Some(block));
            assert_eq!(block_to_scsi_type(block).map(|t| t as u8), Some(scsi));
        }
        for scsi in [0, 2, 4, 9, 15] {
            assert_eq!(PrType::from_byte(scsi).map(scsi_to_block_type), None);
        }
        for block in [0, 7, 0x100] {
            assert_eq!(block_to_scsi_type(block), None);
        }
    }

    #[test]
    fn register_from_raw_bytes() {
        let cdb = [0x5f, 0x00, 0x00, 0, 0, 0, 0, 0, 24, 0, 0, 0, 0, 0, 0, 0];
        let params = [
            0, 0, 0, 0, 0, 0, 0, 0, // RESERVATION KEY
            0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // SERVICE ACTION RESERVATION KEY
            0, 0, 0, 0, // obsolete
            0x00, 0, 0, 0, // flags, reserved, obsolete
        ];
        let want = register(reg(0, 0x1122_3344_5566_7788, 0), None);
        assert_eq!(plan_out(&cdb, &params), want);
    }

    #[test]
    fn register_ignores_scope_and_type_and_accepts_aptpl() {
        let mut p = keys(0xaa, 0xbb);
        p.aptpl = true;
        let want = register(reg(0xaa, 0xbb, 0), None);
        assert_eq!(out(OutSa::Register, 3, 0xf, &p), want);
        // Unregister: new key 0 goes through as is.
        let want = register(reg(0xaa, 0, 0), None);
        assert_eq!(out(OutSa::Register, 0, 0, &keys(0xaa, 0)), want);
    }

    #[test]
    fn register_and_ignore_tries_register_then_replace() {
        let ign = OutSa::RegisterAndIgnoreExistingKey;
        let replace = reg(IGNORED_OLD_KEY, 0xbb, PR_FL_IGNORE_KEY);
        let want = register(reg(0, 0xbb, PR_FL_IGNORE_KEY), Some(replace));
        assert_eq!(out(ign, 0, 0, &keys(0x1234, 0xbb)), want);
        let want = register(reg(IGNORED_OLD_KEY, 0, PR_FL_IGNORE_KEY), None);
        assert_eq!(out(ign, 0, 0, &keys(0, 0)), want);
    }

    #[test]
    fn reserve_release_preempt_clear() {
        let reservation = |pr_type| PrReservation {
            key: 0xaa,
            pr_type,
            flags: 0,
        };
        let preempt = |pr_type, abort| {
            let arg = PrPreempt {
                old_key: 0xaa,
                new_key: 0xbb,
                pr_type,
                flags: 0,
            };
            Ok(ProutPlan::Preempt { arg, abort })
        };
        let want = Ok(ProutPlan::Reserve(reservation(
            pr_type::WRITE_EXCLUSIVE_REG_ONLY,
        )));
        assert_eq!(out(OutSa::Reserve, 0, 5, &keys(0xaa, 0)), want);
        let want = Ok(ProutPlan::Release(reservation(
            pr_type::EXCLUSIVE_ACCESS_ALL_REGS,
        )));
        assert_eq!(out(OutSa::Release, 0, 8, &keys(0xaa, 0)), want);
        let want = preempt(pr_type::WRITE_EXCLUSIVE, false);
        assert_eq!(out(OutSa::Preempt, 0, 1, &keys(0xaa, 0xbb)), want);
        let want = preempt(pr_type::EXCLUSIVE_ACCESS, true);
        assert_eq!(out(OutSa::PreemptAndAbort, 0, 3, &keys(0xaa, 0xbb)), want);
        // CLEAR ignores scope and type.
        let want = Ok(ProutPlan::Clear(PrClear {
            key: 0xaa,
            flags: 0,
            pad: 0,
        }));
        assert_eq!(out(OutSa::Clear, 2, 0xe, &keys(0xaa, 0)), want);
        // ALL_TG_PT matters for the register actions only.
        let mut p = keys(0xaa, 0);
        p.all_tg_pt = true;
        assert!(out(OutSa::Reserve, 0, 1, &p).is_ok());
    }

    #[test]
    fn zero_reservation_key_conflicts_without_the_device() {
        for sa in [
            OutSa::Reserve,
            OutSa::Release,
            OutSa::Clear,
            OutSa::Preempt,
            OutSa::PreemptAndAbort,
        ] {
            assert_eq!(out(sa, 0, 1, &keys(0, 0xbb)), Err(CONFLICT), "sa {sa:?}");
        }
    }

    #[test]
    fn cdb_fields_the_ioctls_cannot_express() {
        let invalid_cdb = Err(StatusAndSense::check(sense::INVALID_FIELD));
        assert_eq!(out(OutSa::RegisterAndMove, 0, 1, &keys(1, 2)), invalid_cdb);
        assert_eq!(
            out(OutSa::ReplaceLostReservation, 0, 1, &keys(1, 2)),
            invalid_cdb
        );
        let mut reserved = pr_out_cdb(OutSa::Reserve, 0, 1, 24);
        reserved[1] = 0x1f;
        let list = keys(1, 2).encode(OutSa::Reserve);
        assert_eq!(plan_out(&reserved, &list), invalid_cdb);
        assert_eq!(out(OutSa::Reserve, 1, 1, &keys(1, 0)), invalid_cdb);
        for t in [0, 2, 4, 9, 0xf] {
            assert_eq!(out(OutSa::Reserve, 0, t, &keys(1, 0)), invalid_cdb);
            assert_eq!(out(OutSa::Preempt, 0, t, &keys(1, 2)), invalid_cdb);
        }
    }

    #[test]
    fn parameter_list_checks() {
        let invalid_param = Err(StatusAndSense::check(sense::INVALID_PARAM));
        let bad_len = Err(StatusAndSense::check(sense::INVALID_PARAM_LEN));
        let mut p = keys(0, 0xbb);
        p.all_tg_pt = true;
        assert_eq!(out(OutSa::Register, 0, 0, &p), invalid_param);
        assert_eq!(
            out(OutSa::RegisterAndIgnoreExistingKey, 0, 0, &p),
            invalid_param
        );
        let mut p = keys(0, 0xbb);
        p.transport_ids = vec![0; 24];
        assert_eq!(out(OutSa::Register, 0, 0, &p), invalid_param);
        // SPEC_I_PT in a 24-byte list.
        let cdb = pr_out_cdb(OutSa::Register, 0, 0, 24);
        let mut list = keys(0, 1).encode(OutSa::Register);
        list[20] = SPEC_I_PT;
        assert_eq!(plan_out(&cdb, &list), invalid_param);
        list[20] = 0;
        assert_eq!(plan_out(&cdb, &list[..23]), bad_len);
        assert_eq!(plan_out(&cdb, &[]), bad_len);
        list.push(0);
        assert_eq!(plan_out(&cdb, &list), bad_len);
    }

    #[test]
    fn pr_in_service_actions() {
        let plan = |sa| plan_in(&pr_in_cdb(sa, 8192));
        assert_eq!(plan(InSa::ReadKeys), Ok(PrinPlan::ReadKeys));
        assert_eq!(plan(InSa::ReadReservation), Ok(PrinPlan::ReadReservation));
        assert_eq!(
            plan(InSa::ReportCapabilities),
            Ok(PrinPlan::ReportCapabilities)
        );
        assert_eq!(
            plan(InSa::ReadFullStatus),
            Err(StatusAndSense::check(sense::INVALID_FIELD))
        );
        let mut reserved = pr_in_cdb(InSa::ReadKeys, 8192);
        reserved[1] = 0x1f;
        let invalid = Err(StatusAndSense::check(sense::INVALID_FIELD));
        assert_eq!(plan_in(&reserved), invalid);
    }

    #[test]
    fn read_keys_capacity_fills_the_room() {
        assert_eq!(read_keys_capacity(8192), 1023);
        assert_eq!(read_keys_capacity(24), 2);
        assert_eq!(read_keys_capacity(23), 1);
        assert_eq!(read_keys_capacity(0), 1);
    }

    #[test]
    fn read_keys_payload_bytes() {
        let mut buf = [0xffu8; 64];
        let n = read_keys_payload(7, 2, &[0x0102_0304_0506_0708, 0xaa], &mut buf);
        assert_eq!(n, 24);
        assert_eq!(
            buf[..24],
            [
                0, 0, 0, 7, 0, 0, 0, 16, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0xaa
            ]
        );
        let decoded = pr::decode_read_keys(&buf[..n]).unwrap();
        assert_eq!(decoded.keys, vec![0x0102_0304_0506_0708, 0xaa]);
        assert!(!decoded.truncated);
    }

    #[test]
    fn read_keys_additional_length_counts_keys_that_did_not_fit() {
        let mut buf = [0u8; 64];
        // The device holds 5 keys; only 1 fitted the capacity.
        let n = read_keys_payload(1, 5, &[0x11], &mut buf);
        assert_eq!(n, 16);
        assert_eq!(buf[4..8], [0, 0, 0, 40]);
        // Capacity larger than what the device holds: only the held keys count.
        let n = read_keys_payload(1, 1, &[0x11, 0, 0], &mut buf);
        assert_eq!(n, 16);
        // No room at all.
        assert_eq!(read_keys_payload(1, 1, &[0x11], &mut []), 0);
        assert_eq!(read_keys_payload(0, 0, &[0], &mut buf), 8);
        assert_eq!(buf[..8], [0; 8]);
    }

    #[test]
    fn read_reservation_payload_bytes() {
        let mut buf = [0xffu8; 32];
        let none = PrReadReservation {
            key: 0,
            generation: 3,
            pr_type: 0,
        };
        assert_eq!(read_reservation_payload(&none, &mut buf), Some(8));
        assert_eq!(buf[..8], [0, 0, 0, 3, 0, 0, 0, 0]);

        let held = PrReadReservation {
            key: 0x0102_0304_0506_0708,
            generation: 9,
            pr_type: pr_type::EXCLUSIVE_ACCESS_REG_ONLY,
        };
        assert_eq!(read_reservation_payload(&held, &mut buf), Some(24));
        assert_eq!(
            buf[..24],
            [
                0, 0, 0, 9, 0, 0, 0, 16, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0x06, 0, 0
            ]
        );
        let decoded = pr::decode_read_reservation(&buf[..24]).unwrap();
        assert_eq!(
            decoded.reservation,
            Some(pr::Reservation {
                key: 0x0102_0304_0506_0708,
                scope: 0,
                prout_type: 6
            })
        );

        let all_regs = PrReadReservation {
            pr_type: pr_type::WRITE_EXCLUSIVE_ALL_REGS,
            ..held
        };
        assert_eq!(read_reservation_payload(&all_regs, &mut buf), Some(24));
        assert_eq!(buf[8..16], [0; 8]);
        assert_eq!(buf[21], 0x07);

        let unknown = PrReadReservation { pr_type: 9, ..held };
        assert_eq!(read_reservation_payload(&unknown, &mut buf), None);
        let mut short = [0u8; 10];
        assert_eq!(read_reservation_payload(&held, &mut short), Some(10));
    }

    #[test]
    fn report_capabilities_bytes() {
        let mut buf = [0u8; 8];
        assert_eq!(report_capabilities(&mut buf), 8);
        assert_eq!(buf, [0, 8, 0x01, 0x81, 0xea, 0x01, 0, 0]);
        let caps = pr::decode_capabilities(&buf).unwrap();
        assert!(caps.ptpl_c && caps.ptpl_a && caps.tmv);
        assert!(!caps.atp_c && !caps.sip_c && !caps.crh);
        for t in PrType::all() {
            assert!(caps.supports_type(t), "type {t:?}");
        }
    }

    #[test]
    fn pr_status_mapping() {
        let check = StatusAndSense::check;
        let cases = [
            (PrStatus::SUCCESS, GOOD),
            (PrStatus::RESERVATION_CONFLICT, CONFLICT),
            // Raw NVMe Reservation Conflict, with and without DNR.
            (PrStatus(0x83), CONFLICT),
            (PrStatus(0x4083), CONFLICT),
            (PrStatus::IOERR, check(sense::TARGET_FAILURE)),
            (PrStatus(0x0800_0002), check(sense::TARGET_FAILURE)),
            (PrStatus::PATH_FAILED, check(sense::LUN_NOT_RESPONDING)),
            (PrStatus::RETRY_PATH_FAILURE, check(sense::I_T_NEXUS_LOSS)),
            (PrStatus::PATH_FAST_FAILED, check(sense::LUN_COMM_FAILURE)),
        ];
        for (s, want) in cases {
            assert_eq!(status_reply(s), want, "{s:?}");
        }
    }

    #[test]
    fn errno_mapping() {
        let check = StatusAndSense::check;
        let (opcode, field) = (check(sense::INVALID_OPCODE), check(sense::INVALID_FIELD));
        // (errno, from a READ ioctl, answer)
        let cases = [
            (libc::EOPNOTSUPP, false, opcode),
            (libc::EOPNOTSUPP, true, opcode),
            (libc::ENOTTY, false, opcode),
            (libc::ENOTTY, true, field),
            (libc::EINVAL, false, field),
            (libc::EINVAL, true, field),
            (libc::EPERM, false, check(sense::ACCESS_DENIED)),
            (libc::EACCES, true, check(sense::ACCESS_DENIED)),
            (libc::EAGAIN, false, check(sense::IO_ERROR)),
            (libc::ENOMEM, true, check(sense::TARGET_FAILURE)),
            (libc::EBADE, false, CONFLICT),
        ];
        for (errno, read, want) in cases {
            assert_eq!(errno_reply(errno, read), want, "errno {errno}, read {read}");
        }
    }
}
