//! The audit's unit tests, one file per concern as the module's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;
use crate::scsi::{pr, sense, status};

mod names;
mod peer;
mod record;
mod sinks;

/// A request's notes, its parameter list's first bytes `params`, on device 8:16.
fn pending(cdb: [u8; 16], params: &[u8]) -> Pending {
    let mut fixed = [0u8; 24];
    fixed[..params.len()].copy_from_slice(params);
    Pending {
        cdb,
        params: (cdb[0] == crate::scsi::cdb::PERSISTENT_RESERVE_OUT)
            .then(|| pr::ProutParams::decode(cdb[1] & 0x1f, &fixed).unwrap()),
        rdev: Some(rustix::fs::makedev(8, 16)),
        block: true,
        started: Instant::now(),
    }
}

/// A record of GOOD status in no time, with no device names, sense or paths.
fn record<'a>(peer: &'a Peer, pending: &'a Pending) -> Record<'a> {
    Record {
        peer,
        pending,
        device: None,
        status: status::GOOD,
        sense: None,
        paths: vec![],
        duration: Duration::ZERO,
    }
}

/// What the sink gets: the journal's datagram, or the stderr line.
fn emitted(record: &Record<'_>, journal: bool) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(record.encode("qemu-pr-helper", journal, |bytes| {
        out = bytes.to_vec();
        true
    }));
    out
}

/// The journal's fields of the record, read back.
fn journal(record: &Record<'_>) -> HashMap<String, String> {
    parse_journal_fields(&emitted(record, true))
        .expect("a well-formed datagram")
        .into_iter()
        .collect()
}

/// A fresh directory under the temporary one, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pr-audit-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
