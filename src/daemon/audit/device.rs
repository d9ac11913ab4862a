//! The device a command went to, in words: its kernel name and WWID from sysfs, or from the
//! Device Identification VPD page when the kernel gives no `wwid` attribute.

use std::path::Path;

use super::read_small;

/// What a block device is, from `/sys/dev/block/MAJ:MIN`: its kernel name and its WWID
/// (a SCSI disk's `device/wwid`, an NVMe namespace's `wwid`, a dm map's uuid).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    pub name: Option<String>,
    pub wwid: Option<String>,
}

impl DeviceInfo {
    /// Reads the device's files under `sys_root` (`/sys`).
    pub fn read(major: u32, minor: u32, sys_root: &Path) -> DeviceInfo {
        let dir = sys_root.join(format!("dev/block/{major}:{minor}"));
        let text = |name: &str| {
            read_small(&dir.join(name), 4096)
                .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let name = text("dm/name").or_else(|| {
            text("uevent").and_then(|u| {
                u.lines()
                    .find_map(|l| l.strip_prefix("DEVNAME="))
                    .map(str::to_owned)
            })
        });
        let wwid = text("device/wwid")
            .or_else(|| text("wwid"))
            .or_else(|| text("dm/uuid"))
            .or_else(|| {
                read_small(&dir.join("device/vpd_pg83"), 4096).and_then(|p| wwid_from_vpd83(&p))
            });
        DeviceInfo { name, wwid }
    }
}

/// The logical unit's name from a Device Identification VPD page (0x83), as the kernel's
/// `wwid` attribute spells it: an NAA designator (`naa.HEX`), else EUI-64 (`eui.HEX`), else a
/// SCSI name string, else T10 vendor identification (`t10.TEXT`). For devices whose kernel
/// gives no `wwid` attribute.
pub fn wwid_from_vpd83(page: &[u8]) -> Option<String> {
    if page.len() < 4 || page[1] != 0x83 {
        return None;
    }
    let end = (4 + usize::from(u16::from_be_bytes([page[2], page[3]]))).min(page.len());
    let mut best: Option<(u8, String)> = None;
    let mut at = 4;
    while at + 4 <= end {
        let (assoc, kind, len) = ((page[at + 1] >> 4) & 3, page[at + 1] & 0x0f, page[at + 3]);
        let Some(id) = page.get(at + 4..at + 4 + usize::from(len)) else {
            break;
        };
        at += 4 + usize::from(len);
        if assoc != 0 {
            continue; // a port's or target's, not the logical unit's
        }
        let hex = || id.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let text = || {
            String::from_utf8_lossy(id)
                .trim_end_matches(['\0', ' '])
                .to_owned()
        };
        let (rank, name) = match kind {
            3 => (0, format!("naa.{}", hex())),
            2 => (1, format!("eui.{}", hex())),
            8 => (2, text()),
            1 => (3, format!("t10.{}", text())),
            _ => continue,
        };
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((rank, name));
        }
    }
    best.map(|(_, name)| name)
}

/// The device's information from `cache` ([`super::ConnAudit::device`]), read when the
/// connection's device changed.
pub fn device_info<'a>(
    cache: &'a mut Option<(u64, DeviceInfo)>,
    rdev: u64,
    sys_root: &Path,
) -> &'a DeviceInfo {
    if cache.as_ref().map(|(d, _)| *d) != Some(rdev) {
        let info = DeviceInfo::read(rustix::fs::major(rdev), rustix::fs::minor(rdev), sys_root);
        *cache = Some((rdev, info));
    }
    &cache.as_ref().expect("just set").1
}
