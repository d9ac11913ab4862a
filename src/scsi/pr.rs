//! Persistent reservations (SPC-4 §6.15, §6.16): service actions, reservation types, scopes,
//! the PR IN / PR OUT CDBs, the PR IN parameter data decoders and the PR OUT parameter list
//! encoder. Pure functions: nothing here does I/O.

pub mod transport_id;

use std::fmt;

use self::transport_id::TransportId;
use super::cdb::{PERSISTENT_RESERVE_IN, PERSISTENT_RESERVE_OUT};

/// An SPC-4 code as an enum: each variant with its byte and the name sg_persist prints,
/// read back with `from_byte` and `name`.
macro_rules! codes {
    ($(#[$doc:meta])* $enum:ident { $($variant:ident = $byte:literal, $name:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub enum $enum {
            $($variant = $byte,)*
        }

        impl $enum {
            /// The value this byte names, if SPC-4 defines it.
            pub fn from_byte(b: u8) -> Option<$enum> {
                match b {
                    $($byte => Some($enum::$variant),)*
                    _ => None,
                }
            }

            /// The name as sg_persist prints it.
            pub fn name(self) -> &'static str {
                match self {
                    $($enum::$variant => $name,)*
                }
            }
        }
    };
}

codes! {
    /// PERSISTENT RESERVE IN service actions (SPC-4 table 167), in CDB byte 1 bits 4..0.
    InSa {
        ReadKeys = 0x00, "Read keys";
        ReadReservation = 0x01, "Read reservation";
        ReportCapabilities = 0x02, "Report capabilities";
        ReadFullStatus = 0x03, "Read full status";
    }
}

codes! {
    /// PERSISTENT RESERVE OUT service actions (SPC-4 table 180), in CDB byte 1 bits 4..0.
    OutSa {
        Register = 0x00, "Register";
        Reserve = 0x01, "Reserve";
        Release = 0x02, "Release";
        Clear = 0x03, "Clear";
        Preempt = 0x04, "Preempt";
        PreemptAndAbort = 0x05, "Preempt and abort";
        RegisterAndIgnoreExistingKey = 0x06, "Register and ignore existing key";
        RegisterAndMove = 0x07, "Register and move";
        ReplaceLostReservation = 0x08, "Replace lost reservation";
    }
}

codes! {
    /// Reservation scopes (SPC-4 table 171): SPC-4 defines one.
    Scope {
        LogicalUnit = 0, "LU_SCOPE";
    }
}

codes! {
    /// Persistent reservation types (SPC-4 table 172); the other values of the nibble are
    /// obsolete or reserved.
    PrType {
        WriteExclusive = 1, "Write Exclusive";
        ExclusiveAccess = 3, "Exclusive Access";
        WriteExclusiveRegistrantsOnly = 5, "Write Exclusive, registrants only";
        ExclusiveAccessRegistrantsOnly = 6, "Exclusive Access, registrants only";
        WriteExclusiveAllRegistrants = 7, "Write Exclusive, all registrants";
        ExclusiveAccessAllRegistrants = 8, "Exclusive Access, all registrants";
    }
}

/// The name of service action byte `sa` of PR OUT (`out`) or PR IN, "reserved" for one SPC-4
/// does not define.
pub fn sa_name(out: bool, sa: u8) -> &'static str {
    let name = if out {
        OutSa::from_byte(sa).map(OutSa::name)
    } else {
        InSa::from_byte(sa).map(InSa::name)
    };
    name.unwrap_or("reserved")
}

impl PrType {
    /// Every one, in byte order.
    pub fn all() -> impl Iterator<Item = PrType> {
        (0..=15).filter_map(PrType::from_byte)
    }

    /// The short name, as `--prout-type` takes it.
    pub fn short_name(self) -> &'static str {
        match self {
            PrType::WriteExclusive => "wr_ex",
            PrType::ExclusiveAccess => "ex_ac",
            PrType::WriteExclusiveRegistrantsOnly => "wr_ex_ro",
            PrType::ExclusiveAccessRegistrantsOnly => "ex_ac_ro",
            PrType::WriteExclusiveAllRegistrants => "wr_ex_ar",
            PrType::ExclusiveAccessAllRegistrants => "ex_ac_ar",
        }
    }

    /// A `--prout-type` argument: a short name (any case), or a number read as hex like
    /// sg_persist's `sscanf("%x")` (so 0..9 are the same in both bases), 0 to 15. A number,
    /// not a `PrType`: any value of the nibble may be sent.
    pub fn parse(s: &str) -> Option<u8> {
        let lower = s.to_ascii_lowercase();
        if let Some(t) = PrType::all().find(|t| t.short_name() == lower) {
            return Some(t as u8);
        }
        let digits = lower.strip_prefix("0x").unwrap_or(&lower);
        u8::from_str_radix(digits, 16).ok().filter(|&t| t <= 15)
    }
}

/// Length of the basic PR OUT parameter list.
pub const PR_OUT_FIXED_PARAM_SIZE: usize = 24;

/// A PR IN CDB (10 bytes, padded to 16 as the helper protocol carries it).
pub fn pr_in_cdb(sa: InSa, allocation_length: u16) -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = PERSISTENT_RESERVE_IN;
    cdb[1] = sa as u8;
    cdb[7..9].copy_from_slice(&allocation_length.to_be_bytes());
    cdb
}

/// A PR OUT CDB: SCOPE and TYPE in byte 2, the 32-bit PARAMETER LIST LENGTH in bytes 5..8.
pub fn pr_out_cdb(sa: OutSa, scope: u8, prout_type: u8, parameter_list_length: u32) -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = PERSISTENT_RESERVE_OUT;
    cdb[1] = sa as u8;
    cdb[2] = ((scope & 0x0f) << 4) | (prout_type & 0x0f);
    cdb[5..9].copy_from_slice(&parameter_list_length.to_be_bytes());
    cdb
}

/// Why PR IN data could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the fixed header.
    Short { need: usize, got: usize },
    /// REPORT CAPABILITIES with a LENGTH other than 8.
    BadLength(u16),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Short { need, got } => {
                write!(f, "response too short: {got} bytes, need {need}")
            }
            DecodeError::BadLength(l) => {
                write!(f, "unexpected REPORT CAPABILITIES length {l} (want 8)")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
/// The big-endian u64 at `at`; bytes past the end of `b` read as 0 (descriptors may be cut
/// short).
pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    let got = b.get(at..).unwrap_or_default();
    let n = got.len().min(8);
    x[..n].copy_from_slice(&got[..n]);
    u64::from_be_bytes(x)
}

/// The 8-byte header of READ KEYS, READ RESERVATION and READ FULL STATUS; the bytes after it
/// that the additional length covers, clipped to what arrived (`truncated` says so).
fn header(data: &[u8]) -> Result<(u32, u32, &[u8], bool), DecodeError> {
    if data.len() < 8 {
        return Err(DecodeError::Short {
            need: 8,
            got: data.len(),
        });
    }
    let generation = be32(data, 0);
    let additional = be32(data, 4);
    let body = &data[8..];
    let wanted = usize::try_from(additional).unwrap_or(usize::MAX);
    let truncated = wanted > body.len();
    Ok((
        generation,
        additional,
        &body[..wanted.min(body.len())],
        truncated,
    ))
}

/// READ KEYS parameter data (SPC-4 §6.15.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadKeys {
    pub generation: u32,
    pub additional_length: u32,
    pub keys: Vec<u64>,
    /// The additional length promises more than the allocation length let through.
    pub truncated: bool,
}

/// Decodes READ KEYS data.
///
/// # Errors
/// Fewer than 8 bytes.
pub fn decode_read_keys(data: &[u8]) -> Result<ReadKeys, DecodeError> {
    let (generation, additional_length, body, truncated) = header(data)?;
    let keys = body.chunks_exact(8).map(|k| be64(k, 0)).collect();
    Ok(ReadKeys {
        generation,
        additional_length,
        keys,
        truncated,
    })
}

/// The persistent reservation READ RESERVATION reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub key: u64,
    pub scope: u8,
    pub prout_type: u8,
}

/// READ RESERVATION parameter data (SPC-4 §6.15.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadReservation {
    pub generation: u32,
    pub additional_length: u32,
    /// `None`: no reservation is held (additional length 0).
    pub reservation: Option<Reservation>,
    pub truncated: bool,
}

/// Decodes READ RESERVATION data.
///
/// # Errors
/// Fewer than 8 bytes.
pub fn decode_read_reservation(data: &[u8]) -> Result<ReadReservation, DecodeError> {
    let (generation, additional_length, body, truncated) = header(data)?;
    let reservation = (body.len() >= 16).then(|| Reservation {
        key: be64(body, 0),
        scope: body[13] >> 4,
        prout_type: body[13] & 0x0f,
    });
    Ok(ReadReservation {
        generation,
        additional_length,
        reservation,
        truncated,
    })
}

/// REPORT CAPABILITIES parameter data (SPC-4 §6.15.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub rlr_c: bool,
    pub crh: bool,
    pub sip_c: bool,
    pub atp_c: bool,
    pub ptpl_c: bool,
    pub tmv: bool,
    pub allow_commands: u8,
    pub ptpl_a: bool,
    /// PERSISTENT RESERVATION TYPE MASK, bytes 4..5.
    pub type_mask: u16,
}

impl Capabilities {
    /// Whether the type mask marks reservation type `t` as supported.
    pub fn supports_type(&self, t: PrType) -> bool {
        let bit = match t {
            PrType::WriteExclusiveAllRegistrants => 0x8000,
            PrType::ExclusiveAccessRegistrantsOnly => 0x4000,
            PrType::WriteExclusiveRegistrantsOnly => 0x2000,
            PrType::ExclusiveAccess => 0x0800,
            PrType::WriteExclusive => 0x0200,
            PrType::ExclusiveAccessAllRegistrants => 0x0001,
        };
        self.type_mask & bit != 0
    }
}

/// Decodes REPORT CAPABILITIES data.
///
/// # Errors
/// Fewer than 8 bytes, or a LENGTH other than 8.
pub fn decode_capabilities(data: &[u8]) -> Result<Capabilities, DecodeError> {
    if data.len() < 8 {
        return Err(DecodeError::Short {
            need: 8,
            got: data.len(),
        });
    }
    let length = be16(data, 0);
    if length != 8 {
        return Err(DecodeError::BadLength(length));
    }
    Ok(Capabilities {
        rlr_c: data[2] & 0x80 != 0,
        crh: data[2] & 0x10 != 0,
        sip_c: data[2] & 0x08 != 0,
        atp_c: data[2] & 0x04 != 0,
        ptpl_c: data[2] & 0x01 != 0,
        tmv: data[3] & 0x80 != 0,
        allow_commands: (data[3] >> 4) & 0x07,
        ptpl_a: data[3] & 0x01 != 0,
        type_mask: be16(data, 4),
    })
}

/// One full status descriptor (SPC-4 table 179).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusDescriptor {
    pub key: u64,
    pub all_tg_pt: bool,
    pub reservation_holder: bool,
    pub scope: u8,
    pub prout_type: u8,
    pub relative_target_port: u16,
    /// The TransportID; `None` when the additional descriptor length is 0.
    pub transport_id: Option<TransportId>,
}

/// READ FULL STATUS parameter data (SPC-4 §6.15.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullStatus {
    pub generation: u32,
    pub additional_length: u32,
    pub descriptors: Vec<StatusDescriptor>,
    /// The data stopped inside a descriptor (or the additional length said more than came).
    pub truncated: bool,
}

/// Decodes READ FULL STATUS data.
///
/// # Errors
/// Fewer than 8 bytes.
pub fn decode_full_status(data: &[u8]) -> Result<FullStatus, DecodeError> {
    let (generation, additional_length, mut body, mut truncated) = header(data)?;
    let mut descriptors = Vec::new();
    while !body.is_empty() {
        if body.len() < 24 {
            truncated = true;
            break;
        }
        let desc_len = usize::try_from(be32(body, 20)).unwrap_or(usize::MAX);
        let tid_bytes = &body[24..24 + desc_len.min(body.len() - 24)];
        if tid_bytes.len() < desc_len {
            truncated = true;
        }
        descriptors.push(StatusDescriptor {
            key: be64(body, 0),
            all_tg_pt: body[12] & 0x02 != 0,
            reservation_holder: body[12] & 0x01 != 0,
            scope: body[13] >> 4,
            prout_type: body[13] & 0x0f,
            relative_target_port: be16(body, 18),
            transport_id: (!tid_bytes.is_empty()).then(|| TransportId::decode(tid_bytes)),
        });
        body = &body[24 + tid_bytes.len()..];
    }
    Ok(FullStatus {
        generation,
        additional_length,
        descriptors,
        truncated,
    })
}

/// Byte 20 of the PR OUT parameter list (SPC-4 table 186): SPEC_I_PT, ALL_TG_PT, APTPL.
pub const SPEC_I_PT: u8 = 0x08;
pub const ALL_TG_PT: u8 = 0x04;
pub const APTPL: u8 = 0x01;
/// Byte 17 of REGISTER AND MOVE's parameter list (table 189): UNREG (and APTPL, bit 0).
const UNREG: u8 = 0x02;

/// The fields of a PR OUT parameter list (SPC-4 §6.16.3), for every service action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProutParams {
    pub reservation_key: u64,
    pub service_action_key: u64,
    pub aptpl: bool,
    pub all_tg_pt: bool,
    /// SPEC_I_PT as the list set it; encoding also sets it for a nonempty `transport_ids`.
    pub spec_i_pt: bool,
    /// The reserved bits of byte 20, kept as they came: libmpathpersist passes the byte on.
    pub reserved_flags: u8,
    /// REGISTER AND MOVE only: UNREG.
    pub unreg: bool,
    /// REGISTER AND MOVE only.
    pub relative_target_port: u16,
    /// Encoded TransportIDs, back to back, without their length header. For REGISTER (and
    /// REGISTER AND IGNORE) a nonempty list sets SPEC_I_PT; for REGISTER AND MOVE it is the
    /// destination.
    pub transport_ids: Vec<u8>,
}

impl ProutParams {
    /// A list with these two keys and nothing else set.
    pub fn keys(reservation_key: u64, service_action_key: u64) -> ProutParams {
        ProutParams {
            reservation_key,
            service_action_key,
            ..ProutParams::default()
        }
    }

    /// Reads the parameter list of service action byte `sa` as the CDB has it (REGISTER AND
    /// MOVE's layout for that one, the basic one for any other byte): the basic 24 bytes, and the
    /// TransportIDs that SPEC_I_PT (or REGISTER AND MOVE) announces, as far as `list` holds
    /// them (a caller that must refuse a short list checks the length fields itself).
    /// `None` for fewer than 24 bytes.
    pub fn decode(sa: u8, list: &[u8]) -> Option<ProutParams> {
        if list.len() < PR_OUT_FIXED_PARAM_SIZE {
            return None;
        }
        let ids_after = |header: usize| {
            let listed = usize::try_from(be32(list, header)).unwrap_or(usize::MAX);
            let from = header + 4;
            list.get(from..from.saturating_add(listed).min(list.len()))
                .unwrap_or_default()
                .to_vec()
        };
        let mut p = ProutParams::keys(be64(list, 0), be64(list, 8));
        if sa == OutSa::RegisterAndMove as u8 {
            p.aptpl = list[17] & APTPL != 0;
            p.unreg = list[17] & UNREG != 0;
            p.relative_target_port = be16(list, 18);
            p.transport_ids = ids_after(20);
            return Some(p);
        }
        let flags = list[20];
        p.aptpl = flags & APTPL != 0;
        p.all_tg_pt = flags & ALL_TG_PT != 0;
        p.spec_i_pt = flags & SPEC_I_PT != 0;
        p.reserved_flags = flags & !(SPEC_I_PT | ALL_TG_PT | APTPL);
        if p.spec_i_pt && list.len() >= PR_OUT_FIXED_PARAM_SIZE + 4 {
            p.transport_ids = ids_after(PR_OUT_FIXED_PARAM_SIZE);
        }
        Some(p)
    }

    /// Encodes the parameter list for service action `sa`: the basic 24 bytes, then for
    /// REGISTER with TransportIDs SPEC_I_PT, a 4-byte TRANSPORTID PARAMETER DATA LENGTH and
    /// the IDs (table 187); for REGISTER AND MOVE its own layout (table 189).
    pub fn encode(&self, sa: OutSa) -> Vec<u8> {
        let tid_len = u32::try_from(self.transport_ids.len()).unwrap_or(u32::MAX);
        let mut out = vec![0u8; PR_OUT_FIXED_PARAM_SIZE];
        out[0..8].copy_from_slice(&self.reservation_key.to_be_bytes());
        out[8..16].copy_from_slice(&self.service_action_key.to_be_bytes());
        if sa == OutSa::RegisterAndMove {
            out[17] = flag(self.unreg, UNREG) | flag(self.aptpl, APTPL);
            out[18..20].copy_from_slice(&self.relative_target_port.to_be_bytes());
            out[20..24].copy_from_slice(&tid_len.to_be_bytes());
            out.extend_from_slice(&self.transport_ids);
            return out;
        }
        // SPEC_I_PT announces the TransportID list, whose length field then always follows,
        // as libmpathpersist sends it: a list of none is the 4-byte header alone.
        let with_ids = self.spec_i_pt || !self.transport_ids.is_empty();
        out[20] = flag(with_ids, SPEC_I_PT)
            | flag(self.all_tg_pt, ALL_TG_PT)
            | flag(self.aptpl, APTPL)
            | self.reserved_flags;
        if with_ids {
            out.extend_from_slice(&tid_len.to_be_bytes());
            out.extend_from_slice(&self.transport_ids);
        }
        out
    }
}

fn flag(set: bool, bit: u8) -> u8 {
    if set { bit } else { 0 }
}

#[cfg(test)]
mod tests;
