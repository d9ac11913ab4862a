//! Byte vectors worked out from the SPC-4 tables (section numbers per SPC-4 r37).

use super::transport_id::{self, TransportId};
use super::*;

#[test]
fn cdbs() {
    // §6.15.1 table 164: opcode, SA in byte 1 bits 4..0, ALLOCATION LENGTH bytes 7..8.
    assert_eq!(
        pr_in_cdb(InSa::ReadFullStatus, 8192)[..10],
        [0x5e, 0x03, 0, 0, 0, 0, 0, 0x20, 0x00, 0]
    );
    // §6.16.1 table 180: SCOPE/TYPE byte 2, PARAMETER LIST LENGTH bytes 5..8.
    assert_eq!(
        pr_out_cdb(OutSa::Reserve, Scope::LogicalUnit as u8, 3, 24)[..10],
        [0x5f, 0x01, 0x03, 0, 0, 0, 0, 0, 24, 0]
    );
    let c = pr_out_cdb(OutSa::RegisterAndMove, 1, 8, 0x0001_0203);
    assert_eq!(c[..10], [0x5f, 0x07, 0x18, 0, 0, 0x00, 0x01, 0x02, 0x03, 0]);
    assert_eq!(c[10..], [0; 6]);
}

#[test]
fn types_and_names() {
    assert_eq!(PrType::parse("wr_ex"), Some(1));
    assert_eq!(PrType::parse("EX_AC"), Some(3));
    assert_eq!(PrType::parse("wr_ex_ro"), Some(5));
    assert_eq!(PrType::parse("ex_ac_ro"), Some(6));
    assert_eq!(PrType::parse("wr_ex_ar"), Some(7));
    assert_eq!(PrType::parse("ex_ac_ar"), Some(8));
    assert_eq!(PrType::parse("8"), Some(8));
    assert_eq!(PrType::parse("0xf"), Some(15));
    assert_eq!(PrType::parse("10"), None); // hex 0x10, out of the nibble
    assert_eq!(PrType::parse("rw"), None);
    let t = PrType::from_byte(6).unwrap();
    assert_eq!(t.name(), "Exclusive Access, registrants only");
    assert_eq!(PrType::from_byte(2), None);
    assert_eq!(
        PrType::from_byte(7).map(PrType::short_name),
        Some("wr_ex_ar")
    );
    assert_eq!(sa_name(true, 6), "Register and ignore existing key");
    assert_eq!(sa_name(true, 9), "reserved");
    assert_eq!(sa_name(false, 3), "Read full status");
    assert_eq!(sa_name(false, 4), "reserved");
    assert_eq!(Scope::from_byte(0).map(Scope::name), Some("LU_SCOPE"));
    assert_eq!(Scope::from_byte(1), None);
}

#[test]
fn each_enum_value_is_its_byte() {
    for b in 0..=u8::MAX {
        assert_eq!(InSa::from_byte(b).map(|sa| sa as u8), (b < 4).then_some(b));
        assert_eq!(OutSa::from_byte(b).map(|sa| sa as u8), (b < 9).then_some(b));
        let defined = [1, 3, 5, 6, 7, 8].contains(&b);
        assert_eq!(PrType::from_byte(b).map(|t| t as u8), defined.then_some(b));
    }
}

#[test]
fn read_keys() {
    // §6.15.2 table 165: generation, additional length, keys.
    let mut d = vec![0, 0, 0, 0x2a, 0, 0, 0, 16];
    d.extend_from_slice(&0x1234_5678_9abc_def0u64.to_be_bytes());
    d.extend_from_slice(&1u64.to_be_bytes());
    let k = decode_read_keys(&d).unwrap();
    assert_eq!(k.generation, 0x2a);
    assert_eq!(k.keys, vec![0x1234_5678_9abc_def0, 1]);
    assert!(!k.truncated);
    // Allocation length 16: additional length 16 promised, one key arrived.
    let k = decode_read_keys(&d[..16]).unwrap();
    assert_eq!(k.keys, vec![0x1234_5678_9abc_def0]);
    assert!(k.truncated);
    let empty = decode_read_keys(&[0, 0, 0, 1, 0, 0, 0, 0]).unwrap();
    assert!(empty.keys.is_empty());
    assert_eq!(
        decode_read_keys(&[0; 7]),
        Err(DecodeError::Short { need: 8, got: 7 })
    );
}

#[test]
fn read_reservation() {
    // §6.15.3.1 table 166/167: no reservation, additional length 0.
    let none = decode_read_reservation(&[0, 0, 0, 5, 0, 0, 0, 0]).unwrap();
    assert_eq!(none.generation, 5);
    assert_eq!(none.reservation, None);
    // With one: key, obsolete 4, reserved 1, scope/type, obsolete 2.
    let mut d = vec![0, 0, 1, 0, 0, 0, 0, 0x10];
    d.extend_from_slice(&0xabcdu64.to_be_bytes());
    d.extend_from_slice(&[0, 0, 0, 0, 0, 0x05, 0, 0]);
    let r = decode_read_reservation(&d).unwrap();
    assert_eq!(r.generation, 0x100);
    assert_eq!(
        r.reservation,
        Some(Reservation {
            key: 0xabcd,
            scope: 0,
            prout_type: 5
        })
    );
}

#[test]
fn report_capabilities() {
    // §6.15.4 table 171: length 8; RLR_C|CRH|SIP_C|ATP_C|PTPL_C; TMV, ALLOW COMMANDS 2,
    // PTPL_A; type mask WR_EX_AR|EX_AC_RO|WR_EX_RO|EX_AC|WR_EX, EX_AC_AR.
    let d = [0, 8, 0x9d, 0xa1, 0xea, 0x01, 0, 0];
    let c = decode_capabilities(&d).unwrap();
    assert!(c.rlr_c && c.crh && c.sip_c && c.atp_c && c.ptpl_c && c.tmv && c.ptpl_a);
    assert_eq!(c.allow_commands, 2);
    for t in PrType::all() {
        assert!(c.supports_type(t), "type {t:?}");
    }
    let bare = decode_capabilities(&[0, 8, 0, 0, 0x02, 0, 0, 0]).unwrap();
    assert!(!bare.crh && !bare.tmv && bare.supports_type(PrType::WriteExclusive));
    assert!(!bare.supports_type(PrType::ExclusiveAccess));
    assert_eq!(
        decode_capabilities(&[0, 9, 0, 0, 0, 0, 0, 0]),
        Err(DecodeError::BadLength(9))
    );
    assert!(decode_capabilities(&[0, 8]).is_err());
}

fn descriptor(key: u64, flags: u8, scope_type: u8, rtpi: u16, tid: &[u8]) -> Vec<u8> {
    let mut d = key.to_be_bytes().to_vec();
    d.extend_from_slice(&[0, 0, 0, 0, flags, scope_type, 0, 0, 0, 0]);
    d.extend_from_slice(&rtpi.to_be_bytes());
    d.extend_from_slice(&(tid.len() as u32).to_be_bytes());
    d.extend_from_slice(tid);
    d
}

#[test]
fn read_full_status_with_transport_ids() {
    // §6.15.5 table 179; TransportIDs per §7.6.4 (SAS table 451, iSCSI table 448).
    let sas = transport_id::parse("sas,5000c50005b32001").unwrap();
    assert_eq!(
        sas[..12],
        [6, 0, 0, 0, 0x50, 0, 0xc5, 0, 0x05, 0xb3, 0x20, 0x01]
    );
    let iqn = transport_id::parse("iqn.5886.com.acme").unwrap();
    assert_eq!(iqn.len(), 24);
    assert_eq!(iqn[..4], [5, 0, 0, 20]);
    let mut body = descriptor(0x11, 0x01, 0x01, 0, &sas); // holder, WR_EX
    body.extend(descriptor(0x22, 0x02, 0, 7, &iqn)); // ALL_TG_PT
    body.extend(descriptor(0x33, 0, 0, 2, &[]));
    let mut d = vec![0, 0, 0, 9];
    d.extend_from_slice(&(body.len() as u32).to_be_bytes());
    d.extend(body);
    let s = decode_full_status(&d).unwrap();
    assert_eq!(s.generation, 9);
    assert!(!s.truncated);
    assert_eq!(s.descriptors.len(), 3);
    let a = &s.descriptors[0];
    assert!(a.reservation_holder && !a.all_tg_pt);
    assert_eq!((a.key, a.scope, a.prout_type), (0x11, 0, 1));
    assert_eq!(
        a.transport_id,
        Some(TransportId::Sas {
            address: 0x5000_c500_05b3_2001
        })
    );
    let b = &s.descriptors[1];
    assert!(b.all_tg_pt && !b.reservation_holder);
    assert_eq!(b.relative_target_port, 7);
    assert_eq!(
        b.transport_id
            .as_ref()
            .map(TransportId::describe)
            .as_deref(),
        Some("iSCSI name: iqn.5886.com.acme")
    );
    assert_eq!(s.descriptors[2].transport_id, None);
    // Cut inside the second descriptor.
    let cut = decode_full_status(&d[..8 + 48 + 10]).unwrap();
    assert!(cut.truncated);
    assert_eq!(cut.descriptors.len(), 1);
}

#[test]
fn transport_id_forms() {
    let fcp = transport_id::parse("FCP,10000000C9F3A571").unwrap();
    assert_eq!(fcp[0], 0);
    assert_eq!(fcp[8..16], [0x10, 0, 0, 0, 0xc9, 0xf3, 0xa5, 0x71]);
    assert_eq!(
        TransportId::decode(&fcp).describe(),
        "FCP-2 World Wide Name: 0x10000000c9f3a571"
    );
    let spi = transport_id::parse("spi,7,2").unwrap();
    assert_eq!(spi[..8], [1, 0, 0, 7, 0, 0, 0, 2]);
    let sbp = transport_id::parse("sbp,0011223344556677").unwrap();
    assert_eq!(
        TransportId::decode(&sbp),
        TransportId::Sbp {
            eui64: 0x0011_2233_4455_6677
        }
    );
    let srp = transport_id::parse("srp,000102030405060708090a0b0c0d0e0f").unwrap();
    assert_eq!(srp[0], 4);
    assert_eq!(srp[8], 0);
    assert_eq!(srp[23], 0x0f);
    assert!(
        TransportId::decode(&srp)
            .describe()
            .ends_with("000102030405060708090a0b0c0d0e0f")
    );
    let sop = transport_id::parse("sop,1a2").unwrap();
    assert_eq!(sop[..4], [0x0a, 0, 0x01, 0xa2]);
    assert_eq!(
        TransportId::decode(&sop).describe(),
        "SOP Routing ID: 0x1a2"
    );
    let isid = transport_id::parse("iqn.2001-04.com.example:host,i,0x1234567890ab").unwrap();
    assert_eq!(isid[0], 0x45);
    assert_eq!(isid.len() % 4, 0);
    assert_eq!(
        TransportId::decode(&isid),
        TransportId::Iscsi {
            name: "iqn.2001-04.com.example:host".into(),
            isid: Some("1234567890ab".into())
        }
    );
    // (sg_persist(8) prints "5" for the fifth byte; SPC-4 table 451 puts 0x50 there.)
    let raw = transport_id::parse("6,0,0,0,50,0,c5,0,5,b3,20,1").unwrap();
    assert_eq!(raw, sas_bytes());
    assert!(transport_id::parse("sas,123").is_err());
    assert!(transport_id::parse("spi,x,1").is_err());
    assert!(transport_id::parse("zz,1").is_err());
    assert!(transport_id::parse("").is_err());
    let other = TransportId::decode(&[0x07, 1, 2, 3]);
    assert!(matches!(other, TransportId::Other { protocol: 7, .. }));
    assert!(other.describe().starts_with("Automation/Drive Interface"));
}

fn sas_bytes() -> Vec<u8> {
    transport_id::parse("sas,5000c50005b32001").unwrap()
}

#[test]
fn prout_parameter_lists() {
    // §6.16.3 table 186: RK, SARK, obsolete 4, SPEC_I_PT|ALL_TG_PT|APTPL byte 20.
    let p = ProutParams {
        reservation_key: 0x0102_0304_0506_0708,
        service_action_key: 0x1122,
        aptpl: true,
        all_tg_pt: true,
        ..ProutParams::default()
    };
    let b = p.encode(OutSa::Register);
    assert_eq!(b.len(), 24);
    assert_eq!(b[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(b[8..16], [0, 0, 0, 0, 0, 0, 0x11, 0x22]);
    assert_eq!(b[16..24], [0, 0, 0, 0, 0x05, 0, 0, 0]);
    // Every plain service action has the same 24-byte layout.
    for sa in (0..=u8::MAX).filter_map(OutSa::from_byte) {
        if sa == OutSa::RegisterAndMove {
            continue;
        }
        assert_eq!(p.encode(sa), b, "sa {sa:?}");
    }
    // Table 187: SPEC_I_PT with a TransportID list.
    let spec = ProutParams {
        transport_ids: sas_bytes(),
        ..ProutParams::default()
    };
    let b = spec.encode(OutSa::Register);
    assert_eq!(b.len(), 24 + 4 + 24);
    assert_eq!(b[20], 0x08);
    assert_eq!(b[24..28], [0, 0, 0, 24]);
    assert_eq!(b[28], 6);
    // Table 189: REGISTER AND MOVE: UNREG|APTPL byte 17, RTPI 18..19, TID length 20..23.
    let mv = ProutParams {
        reservation_key: 1,
        service_action_key: 2,
        aptpl: true,
        unreg: true,
        all_tg_pt: true, // not part of this layout
        relative_target_port: 0x0102,
        transport_ids: sas_bytes(),
        ..ProutParams::default()
    };
    let b = mv.encode(OutSa::RegisterAndMove);
    assert_eq!(b.len(), 48);
    assert_eq!(b[16..24], [0, 0x03, 0x01, 0x02, 0, 0, 0, 24]);
    assert_eq!(b[24..36], sas_bytes()[..12]);
}

#[test]
fn prout_parameter_lists_decode_as_they_encode() {
    let register = ProutParams {
        aptpl: true,
        all_tg_pt: true,
        transport_ids: sas_bytes(),
        ..ProutParams::keys(0x0102_0304_0506_0708, 0x1122)
    };
    let decoded = ProutParams::decode(OutSa::Register as u8, &register.encode(OutSa::Register));
    assert_eq!(
        decoded,
        Some(ProutParams {
            spec_i_pt: true,
            ..register
        })
    );
    let mv = ProutParams {
        aptpl: true,
        unreg: true,
        relative_target_port: 0x0102,
        transport_ids: sas_bytes(),
        ..ProutParams::keys(1, 2)
    };
    let sa = OutSa::RegisterAndMove;
    assert_eq!(ProutParams::decode(sa as u8, &mv.encode(sa)), Some(mv));
    // SPEC_I_PT alone, and the reserved bits, come back as they were, with the TransportID
    // list's length field SPEC_I_PT announces (none listed: 0), as libmpathpersist sends it,
    // whether the list came with that field or not; TransportIDs without SPEC_I_PT are not
    // part of the list; fewer than 24 bytes are no list.
    let mut list = ProutParams::keys(1, 2).encode(OutSa::Register);
    list[20] = 0xfa;
    let p = ProutParams::decode(OutSa::Register as u8, &list).unwrap();
    assert!(p.spec_i_pt && !p.all_tg_pt && !p.aptpl && p.transport_ids.is_empty());
    let with_header = [&list[..], &[0; 4]].concat();
    assert_eq!(p.encode(OutSa::Register), with_header);
    let p = ProutParams::decode(OutSa::Register as u8, &with_header).unwrap();
    assert_eq!(p.encode(OutSa::Register), with_header);
    list[20] = 0;
    list.extend_from_slice(&[0, 0, 0, 24]);
    list.extend_from_slice(&sas_bytes());
    let p = ProutParams::decode(OutSa::Register as u8, &list).unwrap();
    assert_eq!(p.encode(OutSa::Register), list[..24]);
    assert_eq!(
        ProutParams::decode(OutSa::Register as u8, &list[..23]),
        None
    );
}

#[test]
fn a_basic_list_goes_on_as_it_came_but_its_obsolete_bytes() {
    // What the multipath backend relies on: libmpathpersist sends the keys and the whole
    // flags byte on, and zeroes the rest.
    for flags in 0..=u8::MAX {
        let mut list: Vec<u8> = (1..=24).collect();
        list[20] = flags;
        let mut want = list.clone();
        want[16..20].fill(0);
        want[21..24].fill(0);
        if flags & SPEC_I_PT != 0 {
            // The TransportID list SPEC_I_PT announces: none, its length field alone.
            want.extend_from_slice(&[0; 4]);
        }
        for sa in (0..=6).filter_map(OutSa::from_byte) {
            let p = ProutParams::decode(sa as u8, &list).unwrap();
            assert_eq!(p.encode(sa), want, "sa {sa:?} flags {flags:#x}");
        }
    }
}
