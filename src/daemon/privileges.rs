//! Dropping privileges as the C helper built with libcap-ng does: switch uid/gid, drop the
//! supplementary groups, clear the bounding set, keep only CAP_SYS_RAWIO (for SG_IO) and, with
//! multipath support, CAP_SYS_ADMIN (for the device-mapper ioctls). The path opener
//! (`backend::multipath::opener`) takes the same user and keeps CAP_SYS_ADMIN and
//! CAP_DAC_READ_SEARCH instead.
//!
//! Users and groups come from /etc/passwd and /etc/group directly (no NSS), by name or number.

use std::io;

use rustix::thread::{CapabilitySet, CapabilitySets};

/// Resolves `-u USER`: a name in /etc/passwd, else a decimal uid.
pub fn lookup_user(name: &str) -> Option<u32> {
    lookup_in("/etc/passwd", name, 2).or_else(|| parse_id(name))
}

/// Resolves `-g GROUP`: a name in /etc/group, else a decimal gid.
pub fn lookup_group(name: &str) -> Option<u32> {
    lookup_in("/etc/group", name, 2).or_else(|| parse_id(name))
}

/// qemu_strtoul(.., 10, ..) into a uid_t: decimal digits only, not -1.
fn parse_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok().filter(|&id| id != u32::MAX)
}

fn lookup_in(file: &str, name: &str, id_field: usize) -> Option<u32> {
    let text = std::fs::read(file).ok()?;
    // The name as its bytes on the command line (cli::argbytes), compared byte for byte.
    find_id_bytes(&text, &crate::cli::argbytes::decode_bytes(name), id_field)
}

/// Finds `name` in colon-separated database text and returns its numeric field.
fn find_id_bytes(text: &[u8], name: &[u8], id_field: usize) -> Option<u32> {
    text.split(|&b| b == b'\n').find_map(|line| {
        let mut fields = line.split(|&b| b == b':');
        if fields.next()? != name {
            return None;
        }
        let id = fields.nth(id_field - 1)?;
        std::str::from_utf8(id).ok()?.parse().ok()
    })
}

/// The capabilities the daemon keeps: SG_IO needs CAP_SYS_RAWIO for PR commands; the
/// device-mapper ioctls that find a multipath map's paths need CAP_SYS_ADMIN, which the C
/// helper keeps too when built with multipath support (CONFIG_MPATH). The block layer's PR
/// ioctls need neither on Linux 6.5 and later for an fd opened for writing, which QEMU passes.
pub fn kept_capabilities(multipath: bool) -> CapabilitySet {
    if multipath {
        CapabilitySet::SYS_RAWIO | CapabilitySet::SYS_ADMIN
    } else {
        CapabilitySet::SYS_RAWIO
    }
}

/// Switches to `uid`/`gid` (the current ones when not given), drops the supplementary groups,
/// empties the bounding set and keeps only [`kept_capabilities`] in the permitted and
/// effective sets: libcap-ng's `capng_change_id(.., CAPNG_DROP_SUPP_GRP | CAPNG_CLEAR_BOUNDING)`.
///
/// Must run while the process has one thread: these system calls act on the calling thread.
///
/// # Errors
/// The first failing step's errno (EPERM when not privileged, as C reports it).
pub fn drop_privileges(uid: Option<u32>, gid: Option<u32>, multipath: bool) -> io::Result<()> {
    // A capability the process does not hold (a unit's bounding set without CAP_SYS_ADMIN)
    // cannot be kept: keep what there is rather than fail, and multipath maps then answer
    // with the error the dm ioctl gives. CAP_SYS_RAWIO is required: without it the drop
    // fails, as C's does.
    let held = rustix::thread::capabilities(None)?.permitted;
    let keep = kept_capabilities(multipath) & (held | CapabilitySet::SYS_RAWIO);
    change_id_keeping(uid, gid, keep)
}

/// What the path opener keeps (`backend::multipath::opener`): CAP_SYS_ADMIN to read the
/// map's table from device-mapper, CAP_DAC_READ_SEARCH to open a path's node read-only
/// whatever its owner and mode.
pub fn opener_capabilities() -> CapabilitySet {
    CapabilitySet::SYS_ADMIN | CapabilitySet::DAC_READ_SEARCH
}

/// [`drop_privileges`] for the path opener: the same uid, gid and empty bounding set, with
/// [`opener_capabilities`] (those the process holds). Returns what it kept.
///
/// # Errors
/// As [`drop_privileges`].
pub fn drop_privileges_for_opener(uid: Option<u32>, gid: Option<u32>) -> io::Result<CapabilitySet> {
    let held = rustix::thread::capabilities(None)?.permitted;
    let keep = opener_capabilities() & held;
    change_id_keeping(uid, gid, keep)?;
    Ok(keep)
}

fn change_id_keeping(uid: Option<u32>, gid: Option<u32>, keep: CapabilitySet) -> io::Result<()> {
    let uid = uid.unwrap_or_else(|| rustix::process::getuid().as_raw());
    let gid = gid.unwrap_or_else(|| rustix::process::getgid().as_raw());
    // Keep the permitted set across setuid, with what the switch itself needs for now.
    rustix::thread::set_keep_capabilities(true)?;
    let transitional =
        keep | CapabilitySet::SETUID | CapabilitySet::SETGID | CapabilitySet::SETPCAP;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: transitional,
            permitted: transitional,
            inheritable: CapabilitySet::empty(),
        },
    )?;
    clear_bounding_set()?;
    let gid = rustix::process::Gid::from_raw(gid);
    rustix::thread::set_thread_res_gid(gid, gid, gid)?;
    rustix::thread::set_thread_groups(&[])?;
    let uid = rustix::process::Uid::from_raw(uid);
    rustix::thread::set_thread_res_uid(uid, uid, uid)?;
    rustix::thread::set_keep_capabilities(false)?;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: keep,
            permitted: keep,
            inheritable: CapabilitySet::empty(),
        },
    )?;
    Ok(())
}

fn clear_bounding_set() -> io::Result<()> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(63);
    for cap in 0..=last {
        match crate::sys::drop_bounding_capability(cap) {
            Ok(()) => {}
            // Past the kernel's last capability when /proc was not readable.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_lookup() {
        let passwd = b"root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(find_id_bytes(passwd, b"nobody", 2), Some(65534));
        assert_eq!(find_id_bytes(passwd, b"root", 2), Some(0));
        assert_eq!(find_id_bytes(passwd, b"nobod", 2), None);
        let group = b"root:x:0:\nnogroup:x:65534:\n";
        assert_eq!(find_id_bytes(group, b"nogroup", 2), Some(65534));
    }

    #[test]
    fn numeric_ids() {
        assert_eq!(parse_id("1000"), Some(1000));
        assert_eq!(parse_id("99999999999"), None);
        assert_eq!(parse_id("-1"), None);
        assert_eq!(parse_id("4294967295"), None);
        assert_eq!(parse_id("12a"), None);
    }
}
