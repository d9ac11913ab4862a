//! Every decoder of device and helper bytes: PR IN payloads, transport IDs, sense, reply
//! headers and CDB checks. None may panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pr_helper::protocol;
use pr_helper::scsi::{pr, sense};

fuzz_target!(|data: &[u8]| {
    let _ = pr::decode_read_keys(data);
    let _ = pr::decode_read_reservation(data);
    let _ = pr::decode_capabilities(data);
    if let Ok(status) = pr::decode_full_status(data) {
        let _ = format!("{status:?}");
    }
    let tid = pr::transport_id::TransportId::decode(data);
    let _ = tid.describe();
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pr::transport_id::parse(text);
        let _ = pr::PrType::parse(text);
    }
    let _ = sense::decode(data);
    if let Ok(header) =
        <&[u8; protocol::PR_HELPER_REPLY_HEADER_SIZE]>::try_from(data.get(..104).unwrap_or(&[]))
    {
        let decoded = protocol::ReplyHeader::decode(header);
        let mut out = [0u8; protocol::PR_HELPER_REPLY_HEADER_SIZE];
        decoded.encode_into(&mut out);
        assert_eq!(&out, header);
    }
    if let Some(cdb) = data.get(..16) {
        let mut c = [0u8; 16];
        c.copy_from_slice(cdb);
        let _ = protocol::check_cdb(c);
        let _ = pr_helper::scsi::cdb::transfer_length(&c);
    }
});
