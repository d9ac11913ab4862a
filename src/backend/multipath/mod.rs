//! SCSI PR on dm-multipath maps, as libmpathpersist does it (placeholder until it lands).

use std::os::fd::OwnedFd;

use super::{ExecOptions, Outcome, Request};

/// A multipath map and its paths.
#[derive(Debug)]
pub struct Map;

/// The map behind `fd`, when it is a dm-multipath map.
pub fn detect(_fd: &OwnedFd) -> Option<Map> {
    None
}

/// Runs the request on the map's paths.
pub fn run(
    req: &Request,
    _map: &Map,
    sense_area: &mut [u8],
    payload: &mut [u8],
    opts: &ExecOptions,
) -> Outcome {
    super::sgio::run(req, sense_area, payload, opts)
}
