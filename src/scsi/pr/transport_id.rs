//! TransportIDs (SPC-4 §7.6.4): decoding in words, and the command-line forms sg_persist
//! accepts (`fcp,`, `spi,`, `sbp,`, `srp,`, `iqn.`, `sas,`, `sop,` and hex byte lists).

use std::fmt;

/// PROTOCOL IDENTIFIER values (SPC-4 table 442).
pub mod proto {
    pub const FCP: u8 = 0x0;
    pub const SPI: u8 = 0x1;
    pub const SSA: u8 = 0x2;
    pub const SBP: u8 = 0x3;
    pub const SRP: u8 = 0x4;
    pub const ISCSI: u8 = 0x5;
    pub const SAS: u8 = 0x6;
    pub const ADT: u8 = 0x7;
    pub const ATA: u8 = 0x8;
    pub const UAS: u8 = 0x9;
    pub const SOP: u8 = 0xa;
    pub const PCIE: u8 = 0xb;
    pub const NONE: u8 = 0xf;
}

/// Smallest TransportID; every format but iSCSI is exactly this long.
pub const MIN_LEN: usize = 24;

/// A decoded TransportID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportId {
    /// Fibre Channel: N_PORT_NAME.
    Fcp { port_name: u64 },
    /// Parallel SCSI (obsolete): SCSI address and relative target port.
    Spi { address: u16, relative_port: u16 },
    /// IEEE 1394: EUI-64 name.
    Sbp { eui64: u64 },
    /// SCSI RDMA: 16-byte initiator port identifier.
    Srp { port_id: [u8; 16] },
    /// iSCSI: the name, and for format 1 the ISID after ",i,0x".
    Iscsi { name: String, isid: Option<String> },
    /// SAS address.
    Sas { address: u64 },
    /// SCSI over PCIe: routing ID.
    Sop { routing_id: u16 },
    /// Anything else: protocol, format and the raw bytes.
    Other {
        protocol: u8,
        format: u8,
        bytes: Vec<u8>,
    },
}

/// The transport protocol's name (SPC-4 table 442, as sg_lib spells them).
pub fn protocol_name(protocol: u8) -> &'static str {
    match protocol {
        proto::FCP => "Fibre Channel (FCP-4)",
        proto::SPI => "Parallel SCSI (SPI-5)",
        proto::SSA => "SSA",
        proto::SBP => "IEEE 1394 (SBP-3)",
        proto::SRP => "SCSI RDMA (SRP)",
        proto::ISCSI => "iSCSI",
        proto::SAS => "SAS (SPL-4)",
        proto::ADT => "Automation/Drive Interface (ADT-2)",
        proto::ATA => "AT Attachment Interface (ACS-2)",
        proto::UAS => "USB Attached SCSI (UAS-2)",
        proto::SOP => "SCSI over PCIe (SOP)",
        proto::PCIE => "PCIe",
        proto::NONE => "No specified protocol",
        _ => "reserved",
    }
}

/// Byte `i` of `b`, 0 past its end (descriptors may be cut short).
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

fn slice(b: &[u8], from: usize, len: usize) -> &[u8] {
    let start = from.min(b.len());
    &b[start..(from + len).min(b.len())]
}

impl TransportId {
    /// Decodes one TransportID from the start of `b` (missing bytes read as zero).
    pub fn decode(b: &[u8]) -> TransportId {
        let format = at(b, 0) >> 6;
        let protocol = at(b, 0) & 0x0f;
        match (protocol, format) {
            (proto::FCP, 0) => TransportId::Fcp {
                port_name: super::be64(b, 8),
            },
            (proto::SPI, 0) => TransportId::Spi {
                address: u16::from_be_bytes([at(b, 2), at(b, 3)]),
                relative_port: u16::from_be_bytes([at(b, 6), at(b, 7)]),
            },
            (proto::SBP, 0) => TransportId::Sbp {
                eui64: super::be64(b, 8),
            },
            (proto::SRP, 0) => {
                let mut port_id = [0u8; 16];
                let s = slice(b, 8, 16);
                port_id[..s.len()].copy_from_slice(s);
                TransportId::Srp { port_id }
            }
            (proto::ISCSI, 0 | 1) => {
                let len = usize::from(u16::from_be_bytes([at(b, 2), at(b, 3)]));
                let raw = slice(b, 4, len);
                let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
                let text = String::from_utf8_lossy(&raw[..end]).into_owned();
                match (format, text.split_once(",i,0x")) {
                    (1, Some((name, isid))) => TransportId::Iscsi {
                        name: name.to_owned(),
                        isid: Some(isid.to_owned()),
                    },
                    _ => TransportId::Iscsi {
                        name: text,
                        isid: None,
                    },
                }
            }
            (proto::SAS, 0) => TransportId::Sas {
                address: super::be64(b, 4),
            },
            (proto::SOP, 0) => TransportId::Sop {
                routing_id: u16::from_be_bytes([at(b, 2), at(b, 3)]),
            },
            _ => TransportId::Other {
                protocol,
                format,
                bytes: slice(b, 0, MIN_LEN).to_vec(),
            },
        }
    }

    /// The protocol identifier.
    pub fn protocol(&self) -> u8 {
        match self {
            TransportId::Fcp { .. } => proto::FCP,
            TransportId::Spi { .. } => proto::SPI,
            TransportId::Sbp { .. } => proto::SBP,
            TransportId::Srp { .. } => proto::SRP,
            TransportId::Iscsi { .. } => proto::ISCSI,
            TransportId::Sas { .. } => proto::SAS,
            TransportId::Sop { .. } => proto::SOP,
            TransportId::Other { protocol, .. } => *protocol,
        }
    }

    /// The identifier in words, one line (`SAS address: 0x5000c50005b32001`).
    pub fn describe(&self) -> String {
        match self {
            TransportId::Fcp { port_name } => format!("FCP-2 World Wide Name: 0x{port_name:016x}"),
            TransportId::Spi {
                address,
                relative_port,
            } => format!(
                "Parallel SCSI initiator SCSI address: 0x{address:x}, relative port number \
                 (of corresponding target): 0x{relative_port:x}"
            ),
            TransportId::Sbp { eui64 } => format!("IEEE 1394 EUI-64 name: 0x{eui64:016x}"),
            TransportId::Srp { port_id } => {
                format!("RDMA initiator port identifier: 0x{}", hex(port_id))
            }
            TransportId::Iscsi { name, isid: None } => format!("iSCSI name: {name}"),
            TransportId::Iscsi {
                name,
                isid: Some(isid),
            } => format!("iSCSI world wide unique port id: {name},i,0x{isid}"),
            TransportId::Sas { address } => format!("SAS address: 0x{address:016x}"),
            TransportId::Sop { routing_id } => format!("SOP Routing ID: 0x{routing_id:x}"),
            TransportId::Other {
                protocol,
                format,
                bytes,
            } => format!(
                "{} (protocol id 0x{protocol:x}, TPID format {format}): {}",
                protocol_name(*protocol),
                hex(bytes)
            ),
        }
    }
}

impl fmt::Display for TransportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Lower-case hex digits, no separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a `--transport-id` argument was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn err<T>(what: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(what.into()))
}

/// Exactly `digits` hex digits, as bytes.
fn hex_digits(s: &str, digits: usize, form: &str) -> Result<Vec<u8>, ParseError> {
    if s.len() != digits || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return err(format!(
            "badly formed symbolic {form} TransportID: '{s}' (want {digits} hex digits)"
        ));
    }
    (0..digits)
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| ParseError(e.to_string())))
        .collect()
}

/// Parses one TransportID as sg_persist's `--transport-id` takes it on the command line and
/// encodes it (24 bytes; iSCSI names padded to a multiple of 4, at least 24 in all).
///
/// # Errors
/// Malformed forms, with a message naming the problem.
pub fn parse(arg: &str) -> Result<Vec<u8>, ParseError> {
    let mut tid = vec![0u8; MIN_LEN];
    let lower_prefix = arg.get(..4).map(str::to_ascii_lowercase);
    let rest = arg.get(4..).unwrap_or_default();
    match lower_prefix.as_deref() {
        Some("sas,") => {
            tid[0] = proto::SAS;
            tid[4..12].copy_from_slice(&hex_digits(rest, 16, "SAS")?);
        }
        Some("fcp,") => {
            tid[0] = proto::FCP;
            tid[8..16].copy_from_slice(&hex_digits(rest, 16, "FCP")?);
        }
        Some("sbp,") => {
            tid[0] = proto::SBP;
            tid[8..16].copy_from_slice(&hex_digits(rest, 16, "SBP")?);
        }
        Some("srp,") => {
            tid[0] = proto::SRP;
            tid[8..24].copy_from_slice(&hex_digits(rest, 32, "SRP")?);
        }
        Some("spi,") => {
            let parsed = rest
                .split_once(',')
                .and_then(|(a, p)| Some((a.parse::<u16>().ok()?, p.parse::<u16>().ok()?)));
            let Some((address, port)) = parsed else {
                return err(format!(
                    "badly formed symbolic SPI TransportID: '{rest}' (want ADDRESS,RTPI in decimal)"
                ));
            };
            tid[0] = proto::SPI;
            tid[2..4].copy_from_slice(&address.to_be_bytes());
            tid[6..8].copy_from_slice(&port.to_be_bytes());
        }
        Some("sop,") => {
            let digits = rest.strip_prefix("0x").unwrap_or(rest);
            let Ok(routing_id) = u16::from_str_radix(digits, 16) else {
                return err(format!(
                    "badly formed symbolic SOP TransportID: '{rest}' (want a hex routing id)"
                ));
            };
            tid[0] = proto::SOP;
            tid[2..4].copy_from_slice(&routing_id.to_be_bytes());
        }
        Some("iqn.") => return iscsi(arg),
        _ => return hex_list(arg),
    }
    Ok(tid)
}

fn iscsi(arg: &str) -> Result<Vec<u8>, ParseError> {
    let name = arg.split([' ', '\t']).next().unwrap_or_default();
    let format1 = name.contains(",i,0x");
    // At least one trailing NUL, a multiple of 4, at least 20 (24 with the header).
    let mut alen = (name.len() + 1).max(20);
    alen = alen.div_ceil(4) * 4;
    if alen > 241 {
        return err(format!("iSCSI name too long ({} bytes)", name.len()));
    }
    let mut tid = vec![0u8; 4 + alen];
    tid[0] = proto::ISCSI | if format1 { 0x40 } else { 0 };
    tid[2..4].copy_from_slice(&(alen as u16).to_be_bytes());
    tid[4..4 + name.len()].copy_from_slice(name.as_bytes());
    Ok(tid)
}

/// A comma- or space-separated list of hex bytes, padded with zeros to 24 bytes.
fn hex_list(arg: &str) -> Result<Vec<u8>, ParseError> {
    let mut out = Vec::new();
    for item in arg.split([',', ' ']).filter(|s| !s.is_empty()) {
        match u8::from_str_radix(item, 16) {
            Ok(b) => out.push(b),
            Err(_) => {
                return err(format!(
                    "unable to parse TransportID '{arg}': '{item}' is not a hex byte \
                     (and no fcp,/spi,/sbp,/srp,/iqn./sas,/sop, prefix)"
                ));
            }
        }
    }
    if out.is_empty() {
        return err("empty TransportID");
    }
    if out.len() < MIN_LEN {
        out.resize(MIN_LEN, 0);
    }
    Ok(out)
}
