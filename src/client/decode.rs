//! PR IN parameter data in words: sg_persist's text layout, and JSON.

use std::fmt::Write as _;

use super::report::{Obj, array, json_str, named, or_null};
use crate::scsi::pr::transport_id::{TransportId, protocol_name};
use crate::scsi::pr::{self, DecodeError, InSa, PrType, Scope};

/// "scope: LU_SCOPE,  type: Write Exclusive", as sg_persist prints a reservation.
fn scope_and_type(scope: u8, t: u8) -> String {
    let scope = match Scope::from_byte(scope) {
        Some(s) => format!("{}, ", s.name()),
        None => format!("{scope} "),
    };
    format!("scope: {scope} type: {}", type_name(t))
}

/// The type's name as sg_persist prints it ("obsolete [N]" for the rest of the nibble).
fn type_name(t: u8) -> String {
    match PrType::from_byte(t) {
        Some(t) => t.name().to_owned(),
        None if t < 10 => format!("obsolete [{t}]"),
        None => format!("obsolete [0x{t:x}]"),
    }
}

fn type_json(t: u8) -> String {
    Obj::new()
        .num("value", t)
        .str("name", &type_name(t))
        .raw(
            "short",
            or_null(PrType::from_byte(t), |t| json_str(t.short_name())),
        )
        .finish()
}

fn scope_json(scope: u8) -> String {
    let name = Scope::from_byte(scope).map_or("reserved", Scope::name);
    named(scope, name)
}

fn key_json(key: u64) -> String {
    json_str(&format!("0x{key:x}"))
}

fn tid_json(t: &TransportId) -> String {
    Obj::new()
        .raw("protocol", named(t.protocol(), protocol_name(t.protocol())))
        .str("description", &t.describe())
        .finish()
}

/// PR IN parameter data, decoded once and rendered as text or JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Keys(pr::ReadKeys),
    Reservation(pr::ReadReservation),
    Capabilities(pr::Capabilities),
    FullStatus(pr::FullStatus),
}

impl Data {
    /// Decodes the payload of PR IN service action `sa`.
    ///
    /// # Errors
    /// Data too short to decode.
    pub fn decode(sa: InSa, data: &[u8]) -> Result<Self, DecodeError> {
        Ok(match sa {
            InSa::ReadKeys => Data::Keys(pr::decode_read_keys(data)?),
            InSa::ReadReservation => Data::Reservation(pr::decode_read_reservation(data)?),
            InSa::ReportCapabilities => Data::Capabilities(pr::decode_capabilities(data)?),
            InSa::ReadFullStatus => Data::FullStatus(pr::decode_full_status(data)?),
        })
    }

    /// In sg_persist's words.
    pub fn text(&self) -> String {
        let mut o = String::new();
        match self {
            Data::Keys(k) => keys_text(&mut o, k),
            Data::Reservation(r) => reservation_text(&mut o, r),
            Data::Capabilities(c) => capabilities_text(&mut o, c),
            Data::FullStatus(s) => full_status_text(&mut o, s),
        }
        o
    }

    /// As one JSON value.
    pub fn json(&self) -> String {
        match self {
            Data::Keys(k) => Obj::new()
                .num("generation", k.generation)
                .num("additional_length", k.additional_length)
                .raw("keys", array(k.keys.iter().map(|&x| key_json(x))))
                .bool("truncated", k.truncated)
                .finish(),
            Data::Reservation(r) => Obj::new()
                .num("generation", r.generation)
                .num("additional_length", r.additional_length)
                .raw("reservation", or_null(r.reservation, reservation_json))
                .bool("truncated", r.truncated)
                .finish(),
            Data::Capabilities(c) => capabilities_json(c),
            Data::FullStatus(s) => Obj::new()
                .num("generation", s.generation)
                .num("additional_length", s.additional_length)
                .raw(
                    "descriptors",
                    array(s.descriptors.iter().map(descriptor_json)),
                )
                .bool("truncated", s.truncated)
                .finish(),
        }
    }
}

/// The payload in sg_persist's words (`sa` is the PR IN service action).
///
/// # Errors
/// Data too short to decode.
pub fn text(sa: InSa, data: &[u8]) -> Result<String, DecodeError> {
    Data::decode(sa, data).map(|d| d.text())
}

/// The payload as one JSON value.
///
/// # Errors
/// Data too short to decode.
pub fn json(sa: InSa, data: &[u8]) -> Result<String, DecodeError> {
    Data::decode(sa, data).map(|d| d.json())
}

fn keys_text(o: &mut String, k: &pr::ReadKeys) {
    let _ = write!(o, "  PR generation=0x{:x}, ", k.generation);
    match k.keys.len() {
        0 => o.push_str("there are NO registered reservation keys\n"),
        1 => o.push_str("1 registered reservation key follows:\n"),
        n => {
            let _ = writeln!(o, "{n} registered reservation keys follow:");
        }
    }
    for key in &k.keys {
        let _ = writeln!(o, "    0x{key:x}");
    }
    truncation_note(o, k.truncated);
}

fn reservation_text(o: &mut String, r: &pr::ReadReservation) {
    let _ = write!(o, "  PR generation=0x{:x}, ", r.generation);
    match r.reservation {
        None => o.push_str("there is NO reservation held\n"),
        Some(res) => {
            let _ = writeln!(o, "Reservation follows:\n    Key=0x{:x}", res.key);
            let _ = writeln!(o, "    {}", scope_and_type(res.scope, res.prout_type));
        }
    }
    truncation_note(o, r.truncated);
}

fn capabilities_text(o: &mut String, c: &pr::Capabilities) {
    let lines = [
        ("Replace Lost Reservation Capable(RLR_C)", c.rlr_c),
        ("Compatible Reservation Handling(CRH)", c.crh),
        ("Specify Initiator Ports Capable(SIP_C)", c.sip_c),
        ("All Target Ports Capable(ATP_C)", c.atp_c),
        ("Persist Through Power Loss Capable(PTPL_C)", c.ptpl_c),
        ("Type Mask Valid(TMV)", c.tmv),
    ];
    o.push_str("Report capabilities response:\n");
    for (name, bit) in lines {
        let _ = writeln!(o, "  {name}: {}", u8::from(bit));
    }
    let _ = writeln!(o, "  Allow Commands: {}", c.allow_commands);
    let ptpl_a = u8::from(c.ptpl_a);
    let _ = writeln!(o, "  Persist Through Power Loss Active(PTPL_A): {ptpl_a}");
    if c.tmv {
        o.push_str("    Support indicated in Type mask:\n");
        // sg_persist's order: the type mask's bits from the top.
        for t in [7, 6, 5, 3, 1, 8].into_iter().filter_map(PrType::from_byte) {
            let _ = writeln!(o, "      {}: {}", t.name(), u8::from(c.supports_type(t)));
        }
    }
}

fn full_status_text(o: &mut String, s: &pr::FullStatus) {
    let _ = writeln!(o, "  PR generation=0x{:x}", s.generation);
    if s.descriptors.is_empty() {
        o.push_str("  No full status descriptors\n");
    }
    for d in &s.descriptors {
        let _ = writeln!(o, "    Key=0x{:x}", d.key);
        if d.all_tg_pt {
            o.push_str("      All target ports bit set\n");
        } else {
            let rtp = d.relative_target_port;
            o.push_str("      All target ports bit clear\n");
            let _ = writeln!(o, "      Relative port address: 0x{rtp:x}");
        }
        if d.reservation_holder {
            o.push_str("      << Reservation holder >>\n");
            let _ = writeln!(o, "      {}", scope_and_type(d.scope, d.prout_type));
        } else {
            o.push_str("      not reservation holder\n");
        }
        if let Some(t) = &d.transport_id {
            let _ = write!(o, "      Transport Id of initiator:\n        {t}\n");
        }
    }
    truncation_note(o, s.truncated);
}

fn truncation_note(o: &mut String, truncated: bool) {
    if truncated {
        o.push_str("  [response truncated by the allocation length]\n");
    }
}

fn reservation_json(res: pr::Reservation) -> String {
    Obj::new()
        .raw("key", key_json(res.key))
        .raw("scope", scope_json(res.scope))
        .raw("type", type_json(res.prout_type))
        .finish()
}

fn capabilities_json(c: &pr::Capabilities) -> String {
    let mut mask = Obj::new();
    for t in PrType::all() {
        mask = mask.bool(t.short_name(), c.supports_type(t));
    }
    Obj::new()
        .bool("rlr_c", c.rlr_c)
        .bool("crh", c.crh)
        .bool("sip_c", c.sip_c)
        .bool("atp_c", c.atp_c)
        .bool("ptpl_c", c.ptpl_c)
        .bool("tmv", c.tmv)
        .num("allow_commands", c.allow_commands)
        .bool("ptpl_a", c.ptpl_a)
        .num("type_mask", c.type_mask)
        .raw("types", mask.finish())
        .finish()
}

fn descriptor_json(d: &pr::StatusDescriptor) -> String {
    Obj::new()
        .raw("key", key_json(d.key))
        .bool("all_tg_pt", d.all_tg_pt)
        .bool("reservation_holder", d.reservation_holder)
        .raw("scope", scope_json(d.scope))
        .raw("type", type_json(d.prout_type))
        .num("relative_target_port", d.relative_target_port)
        .raw("transport_id", or_null(d.transport_id.as_ref(), tid_json))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_like_sg_persist() {
        assert_eq!(type_name(6), "Exclusive Access, registrants only");
        assert_eq!(type_name(2), "obsolete [2]");
        assert_eq!(type_name(0xb), "obsolete [0xb]");
    }

    #[test]
    fn read_keys_text_like_sg_persist() {
        let header = [0, 0, 0, 3, 0, 0, 0, 16];
        let d = [&header[..], &0x123abcu64.to_be_bytes(), &1u64.to_be_bytes()].concat();
        assert_eq!(
            text(InSa::ReadKeys, &d).unwrap(),
            "  PR generation=0x3, 2 registered reservation keys follow:\n    0x123abc\n    0x1\n"
        );
        assert_eq!(
            text(InSa::ReadKeys, &[0, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
            "  PR generation=0x0, there are NO registered reservation keys\n"
        );
        let j = json(InSa::ReadKeys, &d).unwrap();
        assert!(j.contains(r#""keys":["0x123abc","0x1"]"#), "{j}");
    }

    #[test]
    fn reservation_text_and_json() {
        let (header, fields) = ([0, 0, 0, 1, 0, 0, 0, 16], [0, 0, 0, 0, 0, 0x01, 0, 0]);
        let d = [&header[..], &0xabu64.to_be_bytes(), &fields].concat();
        assert_eq!(
            text(InSa::ReadReservation, &d).unwrap(),
            "  PR generation=0x1, Reservation follows:\n    Key=0xab\n    scope: LU_SCOPE,  type: Write Exclusive\n"
        );
        let j = json(InSa::ReadReservation, &d).unwrap();
        assert!(j.contains(r#""short":"wr_ex""#), "{j}");
        assert_eq!(
            text(InSa::ReadReservation, &[0, 0, 0, 1, 0, 0, 0, 0]).unwrap(),
            "  PR generation=0x1, there is NO reservation held\n"
        );
    }

    #[test]
    fn capabilities_and_full_status_text() {
        let t = text(InSa::ReportCapabilities, &[0, 8, 0x10, 0x80, 0x02, 0, 0, 0]).unwrap();
        assert!(t.contains("Compatible Reservation Handling(CRH): 1"));
        assert!(t.contains("      Write Exclusive: 1\n"));
        assert!(t.contains("      Exclusive Access: 0\n"));
        let j = json(InSa::ReportCapabilities, &[0, 8, 0, 0, 0, 0, 0, 0]).unwrap();
        assert!(j.contains(r#""wr_ex":false"#), "{j}");
        let tid = pr::transport_id::parse("sas,5000c50005b32001").unwrap();
        let header = [0, 0, 0, 2, 0, 0, 0, 48];
        let fields = [0, 0, 0, 0, 1, 3, 0, 0, 0, 0, 0, 2, 0, 0, 0, 24];
        let d = [&header[..], &0x11u64.to_be_bytes(), &fields, &tid].concat();
        let t = text(InSa::ReadFullStatus, &d).unwrap();
        assert!(t.contains(
            "    Key=0x11\n      All target ports bit clear\n      Relative port address: 0x2\n"
        ));
        assert!(t.contains(
            "      << Reservation holder >>\n      scope: LU_SCOPE,  type: Exclusive Access\n"
        ));
        assert!(t.contains(
            "      Transport Id of initiator:\n        SAS address: 0x5000c50005b32001\n"
        ));
        let j = json(InSa::ReadFullStatus, &d).unwrap();
        assert!(
            j.contains(r#""description":"SAS address: 0x5000c50005b32001""#),
            "{j}"
        );
        assert!(text(InSa::ReadFullStatus, &[0; 3]).is_err());
    }
}
