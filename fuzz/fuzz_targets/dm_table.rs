//! The dm-multipath table and status parsers, the dm ioctl answer decoder, and the
//! multipath.conf, prkeys and multipathd reply readers. None may panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pr_helper::backend::multipath::{self, keys, multipathd, table};

fuzz_target!(|data: &[u8]| {
    let _ = pr_helper::sys::dm::decode_targets(data);
    let _ = multipathd::decode_reply(data.to_vec());
    if let Ok(word) =
        <[u8; size_of::<usize>()]>::try_from(data.get(..size_of::<usize>()).unwrap_or(&[]))
    {
        let _ = multipathd::decode_reply_len(word);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line as the table, the rest as the status, so both parsers and their
    // merge see related strings.
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(t) = table::parse_table(first) {
        assert!(
            t.paths
                .iter()
                .all(|p| table::parse_dev(&p.dev.to_string()) == Some(p.dev))
        );
    }
    let _ = table::parse_status(rest);
    let _ = table::paths(first, rest);
    let _ = keys::parse_key(text);
    let _ = keys::parse_getprkey_reply(text);
    let _ = keys::prkey_for(rest, first);
    let _ = keys::map_config([rest], first);
    let _ = multipath::parse_sysfs_link(text);
});
