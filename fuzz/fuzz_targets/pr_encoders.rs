//! The PR OUT parameter-list encoder and the CDB builders on arbitrary fields: never a
//! panic, and the keys, flags and lengths land where SPC-4 puts them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pr_helper::scsi::pr::{self, InSa, OutSa, ProutParams};

fuzz_target!(|data: &[u8]| {
    if data.len() < 21 {
        return;
    }
    let word = |i: usize| u64::from_be_bytes(data[i..i + 8].try_into().unwrap());
    let (sa, flags) = (OutSa::from_byte(data[16] & 0x07).unwrap(), data[17]);
    let params = ProutParams {
        reservation_key: word(0),
        service_action_key: word(8),
        aptpl: flags & 1 != 0,
        all_tg_pt: flags & 2 != 0,
        unreg: flags & 4 != 0,
        relative_target_port: u16::from_be_bytes([data[18], data[19]]),
        transport_ids: data[21..].to_vec(),
        ..ProutParams::default()
    };
    let encoded = params.encode(sa);
    assert!(encoded.len() >= 24);
    assert_eq!(&encoded[0..8], &params.reservation_key.to_be_bytes());
    assert_eq!(&encoded[8..16], &params.service_action_key.to_be_bytes());
    if sa != OutSa::RegisterAndMove {
        assert_eq!(encoded[20] & 1 != 0, params.aptpl);
    }
    let len = u32::try_from(encoded.len()).unwrap_or(u32::MAX);
    let cdb = pr::pr_out_cdb(sa, data[20] >> 4, data[20] & 0x0f, len);
    assert_eq!(cdb[0], 0x5f);
    assert_eq!(u32::from_be_bytes([cdb[5], cdb[6], cdb[7], cdb[8]]), len);
    let in_cdb = pr::pr_in_cdb(
        InSa::from_byte(data[16] & 3).unwrap(),
        u16::from_be_bytes([data[18], data[19]]),
    );
    assert_eq!(&in_cdb[7..9], &data[18..20]);
});
