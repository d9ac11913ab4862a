//! The argument's grammar, and names read from cgroups, command lines and VPD pages.

use super::*;
use crate::daemon::audit::cgroup::{
    cgroup_by_id, cgroup_path, pod_uid_from_cgroup, search_inode, unescape_unit, vm_from_cgroup,
};
use crate::daemon::audit::device::wwid_from_vpd83;
use crate::daemon::audit::peer::vm_from_cmdline;

#[test]
fn audit_argument_grammar() {
    let journal = |path: &str| Sink::Journal(PathBuf::from(path));
    let cases = [
        (None, Sink::Stderr, false),
        (Some("journal,all"), journal(JOURNAL_SOCKET), true),
        (
            Some("all,journal=/tmp/j.sock"),
            journal("/tmp/j.sock"),
            true,
        ),
        (Some("journal,stderr,all,out"), Sink::Stderr, false),
    ];
    for (value, sink, all) in cases {
        assert_eq!(Config::parse(value), Ok(Config { sink, all }), "{value:?}");
    }
    for bad in ["", "syslog", "journal=", "journal=relative", "all,,out"] {
        let e = Config::parse(Some(bad)).expect_err(bad);
        assert!(e.contains("invalid --audit value"), "{e}");
    }
}

#[test]
fn cgroup_v2_line_then_v1_systemd_hierarchy_then_a_machine_line() {
    let v2_path = "/machine.slice/machine-qemu\\x2d1\\x2dnode2.scope/libvirt/emulator";
    let v2 = format!("12:cpu,cpuacct:/elsewhere\n0::{v2_path}\n");
    let scope = "/machine.slice/machine-qemu\\x2d3\\x2dweb.scope";
    let v1 = "11:memory:/machine.slice/machine-qemu\\x2d3\\x2dweb.scope\n\
              5:cpu,cpuacct:/machine.slice/machine-qemu\\x2d3\\x2dweb.scope/emulator\n\
              1:name=systemd:/machine.slice/machine-qemu\\x2d3\\x2dweb.scope\n";
    let no_systemd = "4:devices:/\n3:cpu:/machine/qemu-7-db.libvirt-qemu/emulator\n";
    let cases = [
        ("v2 preferred", v2.as_str(), Some(v2_path)),
        ("v1 systemd", v1, Some(scope)),
        (
            "v1 machine",
            no_systemd,
            Some("/machine/qemu-7-db.libvirt-qemu/emulator"),
        ),
        ("empty", "", None),
        ("empty path", "0::\n", None),
    ];
    for (name, text, want) in cases {
        assert_eq!(cgroup_path(text), want, "{name}");
    }
}

#[test]
fn libvirt_scope_names_with_escapes() {
    let cases = [
        (
            "/machine.slice/machine-qemu\\x2d1\\x2dnode2.scope",
            Some("node2"),
        ),
        (
            "/machine.slice/machine-qemu\\x2d12\\x2dmy\\x2dvm\\x2done.scope/libvirt/vcpu0",
            Some("my-vm-one"),
        ),
        // libvirt before 1.3: no domain id.
        ("/machine.slice/machine-qemu\\x2dold.scope", Some("old")),
        // A name that starts with digits and a dash, after the id.
        (
            "/machine.slice/machine-qemu\\x2d4\\x2d2\\x2dtier.scope",
            Some("2-tier"),
        ),
        // Escaped non-ASCII (UTF-8 bytes).
        (
            "/machine.slice/machine-qemu\\x2d5\\x2dcaf\\xc3\\xa9.scope",
            Some("caf\u{e9}"),
        ),
        // Other machines (nspawn) and plain services are not VMs.
        ("/machine.slice/machine-debian.scope", None),
        ("/system.slice/libvirtd.service", None),
        ("/user.slice/user-0.slice/session-1.scope", None),
        ("/", None),
    ];
    for (path, want) in cases {
        assert_eq!(vm_from_cgroup(path).as_deref(), want, "{path}");
    }
    assert_eq!(unescape_unit("a\\x2db\\x5cc\\xzz"), "a-b\\c\\xzz");
    // An escape cut short by a multi-byte character is kept as it is.
    assert_eq!(unescape_unit("\\xa\u{e9}"), "\\xa\u{e9}");
}

#[test]
fn qemu_name_from_cmdline() {
    let cases = [
        ("qemu-system-x86_64 -name node1 -m 1G", Some("node1")),
        (
            "qemu-system-x86_64 -name guest=node2,debug-threads=on",
            Some("node2"),
        ),
        ("qemu -name web,process=qemu:web", Some("web")),
        ("qemu --name guest=a,,b", Some("a,b")),
        ("qemu -m 1G", None),
        ("qemu -name", None),
        ("qemu -name process=x", None),
    ];
    for (args, want) in cases {
        let cmdline = args.replace(' ', "\0");
        assert_eq!(
            vm_from_cmdline(cmdline.as_bytes()).as_deref(),
            want,
            "{args}"
        );
    }
    // /proc/PID/cmdline ends with a NUL.
    assert_eq!(
        vm_from_cmdline(b"qemu\0-name\0node3\0").as_deref(),
        Some("node3")
    );
}

#[test]
fn a_cgroup_is_found_by_its_directory_inode() {
    use std::os::unix::fs::MetadataExt as _;
    let root = std::env::temp_dir().join(format!("pr-audit-cg-{}", std::process::id()));
    let scope = root.join("machine.slice/machine-qemu\\x2d1\\x2dnode1.scope/libvirt/emulator");
    std::fs::create_dir_all(&scope).unwrap();
    std::fs::create_dir_all(root.join("system.slice/a.service")).unwrap();
    std::fs::write(root.join("cgroup.controllers"), "cpu\n").unwrap();
    let ino = std::fs::metadata(&scope).unwrap().ino();
    let path = cgroup_by_id(&root, ino).unwrap();
    assert_eq!(
        path,
        "/machine.slice/machine-qemu\\x2d1\\x2dnode1.scope/libvirt/emulator"
    );
    assert_eq!(vm_from_cgroup(&path).as_deref(), Some("node1"));
    let root_ino = std::fs::metadata(&root).unwrap().ino();
    assert_eq!(cgroup_by_id(&root, root_ino).as_deref(), Some("/"));
    // An id no directory has, and the search's bound.
    assert_eq!(cgroup_by_id(&root, u64::MAX), None);
    assert_eq!(search_inode(&root, ino, 2), None);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn wwid_from_a_device_identification_page() {
    // LIO's page: T10 vendor id, NAA 6 (IEEE registered extended), a port's relative id.
    let mut page = vec![0x00, 0x83, 0x00, 0x00];
    page.extend([0x02, 0x01, 0x00, 0x08]);
    page.extend(b"LIO-ORG ");
    page.extend([0x01, 0x03, 0x00, 0x10]);
    page.extend([0x60, 0x01, 0x40, 0x5a, 0xbc, 0xde, 0xf0, 0x12]);
    page.extend([0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x12]);
    page.extend([0x61, 0x94, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01]);
    let len = (page.len() - 4) as u16;
    page[2..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        wwid_from_vpd83(&page).as_deref(),
        Some("naa.6001405abcdef0123456789abcdef012")
    );
    // Without the NAA designator: the vendor's.
    let t10_only: Vec<u8> = [
        &[0x00, 0x83, 0x00, 0x0c][..],
        &[0x02, 0x01, 0x00, 0x08],
        b"LIO-ORG ",
    ]
    .concat();
    assert_eq!(wwid_from_vpd83(&t10_only).as_deref(), Some("t10.LIO-ORG"));
    // Another page, a truncated one.
    assert_eq!(wwid_from_vpd83(&[0x00, 0x80, 0x00, 0x00]), None);
    assert_eq!(wwid_from_vpd83(&page[..10]), None);
}

#[test]
fn a_kubernetes_container_cgroup_names_its_pod_not_a_vm() {
    let uid = "3cbb32a1-f11c-4065-99e6-62ce670bff12";
    let systemd = "/kubepods.slice/kubepods-burstable.slice/\
                   kubepods-burstable-pod3cbb32a1_f11c_4065_99e6_62ce670bff12.slice/\
                   cri-containerd-0123abcd.scope";
    let guaranteed = "/kubepods.slice/kubepods-pod3cbb32a1_f11c_4065_99e6_62ce670bff12.slice/\
                      crio-0123abcd.scope";
    let cgroupfs = "/kubepods/besteffort/pod3cbb32a1-f11c-4065-99e6-62ce670bff12/0123abcd";
    for path in [systemd, guaranteed, cgroupfs] {
        assert_eq!(pod_uid_from_cgroup(path).as_deref(), Some(uid), "{path}");
        assert_eq!(vm_from_cgroup(path), None, "{path}");
    }
    for path in [
        "/machine.slice/machine-qemu\\x2d1\\x2dnode1.scope",
        "/system.slice/pod3cbb32a1-f11c-4065-99e6-62ce670bff12",
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podnot_a_uid.slice",
        "/",
    ] {
        assert_eq!(pod_uid_from_cgroup(path), None, "{path}");
    }
}
