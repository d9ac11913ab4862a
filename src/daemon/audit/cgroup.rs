//! The peer's cgroup and the VM it names: the path from `/proc/PID/cgroup`, the path of a
//! cgroup v2 id (a walk of the unified hierarchy for the directory of that inode number), and
//! the VM name a libvirt machine scope carries, or the pod a Kubernetes container cgroup
//! belongs to. A process cannot rename its own cgroup: a name taken from it is the one
//! libvirt (through systemd-machined, or its own cgroups without systemd) or the kubelet gave.

use std::path::Path;

use rustix::fs::{Mode, OFlags};

use super::read_small;

/// Directories of the cgroup tree looked at, at most, for one peer.
const CGROUP_SEARCH_MAX: usize = 20_000;

/// The path (`/machine.slice/...`) of the cgroup v2 whose id is `id`: the unified hierarchy's
/// directory of that inode number, under `root` or, on a hybrid host, `root/unified`.
/// Breadth first, `machine.slice` first, and at most [`CGROUP_SEARCH_MAX`] directories.
pub fn cgroup_by_id(root: &Path, id: u64) -> Option<String> {
    let unified = [root.to_path_buf(), root.join("unified")]
        .into_iter()
        .find(|r| read_small(&r.join("cgroup.controllers"), 4096).is_some())
        .unwrap_or_else(|| root.to_path_buf());
    search_inode(&unified, id, CGROUP_SEARCH_MAX)
}

/// The directory under `root` (itself included) with inode number `ino`, as `/relative/path`.
pub(super) fn search_inode(root: &Path, ino: u64, max: usize) -> Option<String> {
    use rustix::fs::{Dir, FileType};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut queue = std::collections::VecDeque::from([String::new()]);
    let mut seen = 0;
    while let Some(rel) = queue.pop_front() {
        seen += 1;
        if seen > max {
            return None;
        }
        let path = root.join(rel.trim_start_matches('/'));
        let opened = rustix::fs::open(path, flags, Mode::empty());
        let Ok((st, fd)) = opened.and_then(|fd| Ok((rustix::fs::fstat(&fd)?, fd))) else {
            continue;
        };
        if st.st_ino == ino {
            return Some(if rel.is_empty() { "/".to_owned() } else { rel });
        }
        let Ok(dir) = Dir::read_from(&fd) else {
            continue;
        };
        let mut children: Vec<String> = dir
            .filter_map(Result::ok)
            .filter(|e| e.file_type() == FileType::Directory)
            .filter_map(|e| e.file_name().to_str().ok().map(str::to_owned))
            .filter(|n| n != "." && n != "..")
            .collect();
        // libvirt's machines first.
        children.sort_by_key(|n| n != "machine.slice" && n != "machine");
        queue.extend(children.into_iter().map(|n| format!("{rel}/{n}")));
    }
    None
}

/// The cgroup path from `/proc/PID/cgroup`: the unified hierarchy's line (`0::/path`), else
/// cgroup v1's systemd hierarchy (`N:name=systemd:/path`), else the first v1 line that names a
/// libvirt machine, else the first line's.
pub fn cgroup_path(text: &str) -> Option<&str> {
    let entries: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some((controllers, path))
        })
        .collect();
    let pick = |want: &dyn Fn(&str, &str) -> bool| {
        entries.iter().find(|(c, p)| want(c, p)).map(|&(_, p)| p)
    };
    pick(&|c, _| c.is_empty())
        .or_else(|| pick(&|c, _| c == "name=systemd"))
        .or_else(|| pick(&|_, p| p.contains("machine")))
        .or_else(|| entries.first().map(|&(_, p)| p))
        .filter(|p| !p.is_empty())
}

/// The VM a cgroup path belongs to, as libvirt names its cgroups: systemd's machine scope
/// `machine-qemu\x2dID\x2dNAME.scope` (libvirt 1.3 and later; `machine-qemu\x2dNAME.scope`
/// before), with systemd's `\xNN` escapes, or without systemd `qemu-ID-NAME.libvirt-qemu`.
pub fn vm_from_cgroup(path: &str) -> Option<String> {
    path.split('/').find_map(|component| {
        let scope = component
            .strip_prefix("machine-")
            .and_then(|c| c.strip_suffix(".scope"));
        let unit = match scope {
            Some(scope) => unescape_unit(scope),
            None => component.strip_suffix(".libvirt-qemu")?.to_owned(),
        };
        let rest = unit.strip_prefix("qemu-")?;
        // libvirt's domain id, when the name carries one ("1-node2").
        let name = match rest.split_once('-') {
            Some((id, name)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => rest,
        };
        (!name.is_empty()).then(|| name.to_owned())
    })
}

/// systemd's unit name escaping undone: `\xNN` is the byte NN (`\x2d` a `-`).
pub fn unescape_unit(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = s
            .get(i + 2..i + 4)
            .filter(|_| bytes[i..].starts_with(b"\\x"));
        let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
        out.push(byte.unwrap_or(bytes[i]));
        i += if byte.is_some() { 4 } else { 1 };
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The UID of the Kubernetes pod whose container cgroup this is: the kubelet's
/// `kubepods[-QOS]-podUID.slice` (systemd cgroup driver, the UID's dashes as underscores) or
/// `podUID` under `kubepods` (cgroupfs driver). KubeVirt's virt-launcher runs QEMU in its pod's
/// compute container with libvirt's cgroups off (`cgroup_controllers = [ ]`), so there the
/// cgroup names the pod, not the VM.
pub fn pod_uid_from_cgroup(path: &str) -> Option<String> {
    let mut components = path.split('/').filter(|c| !c.is_empty());
    if !components.next()?.starts_with("kubepods") {
        return None;
    }
    components.find_map(|component| {
        let uid = match component.strip_suffix(".slice") {
            Some(slice) => slice.rsplit_once("-pod")?.1.replace('_', "-"),
            None => component.strip_prefix("pod")?.to_owned(),
        };
        let well_formed = uid.len() == 36
            && uid.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            });
        well_formed.then_some(uid)
    })
}
