use super::*;

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
fn peer_from_a_fake_proc_tree_prefers_the_cgroup() {
    let root = std::env::temp_dir().join(format!("pr-audit-proc-{}", std::process::id()));
    let dir = root.join("4242");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("comm"), "qemu-system-x86\n").unwrap();
    std::fs::write(
        dir.join("cgroup"),
        "0::/machine.slice/machine-qemu\\x2d2\\x2dnode2.scope/libvirt/emulator\n",
    )
    .unwrap();
    std::fs::write(dir.join("cmdline"), b"qemu\0-name\0guest=other\0").unwrap();
    let peer = Peer::resolve(4242, 64055, 994, &root);
    assert_eq!(peer.comm.as_deref(), Some("qemu-system-x86"));
    assert_eq!(peer.vm.as_deref(), Some("node2"));
    // No machine scope: QEMU's -name.
    std::fs::write(dir.join("cgroup"), "0::/system.slice/qemu-node.service\n").unwrap();
    let peer = Peer::resolve(4242, 0, 0, &root);
    assert_eq!(peer.vm.as_deref(), Some("other"));
    assert_eq!(
        peer.cgroup.as_deref(),
        Some("/system.slice/qemu-node.service")
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_process_gone_before_it_is_read_leaves_pid_uid_gid() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    child.wait().unwrap();
    // Reaped: /proc/PID is gone (unless the number was reused at once by another process;
    // then there is nothing to assert). SO_PEERCRED's numbers stay.
    let peer = Peer::resolve(pid, 1, 2, Path::new("/proc"));
    assert_eq!((peer.pid, peer.uid, peer.gid), (pid, 1, 2));
    if !Path::new(&format!("/proc/{pid}")).exists() {
        assert_eq!(peer.comm, None);
        assert_eq!(peer.vm, None);
        assert_eq!(peer.cgroup, None);
    }
    // A pid that cannot exist.
    let peer = Peer::resolve(i32::MAX, 0, 0, Path::new("/proc"));
    assert_eq!(
        peer,
        Peer {
            pid: i32::MAX,
            ..Peer::default()
        }
    );
}

#[test]
fn this_process_as_its_own_peer() {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let peer = Peer::of_socket(a.as_fd(), Path::new("/proc"), Path::new("/sys/fs/cgroup"));
    assert_eq!(peer.pid as u32, std::process::id());
    assert_eq!(peer.uid, rustix::process::getuid().as_raw());
    assert!(peer.comm.is_some());
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
    assert!(record.emit_with("qemu-pr-helper", journal, |bytes| {
        out = bytes.to_vec();
        true
    }));
    out
}

/// The journal's fields of the record, read back.
fn journal(record: &Record<'_>) -> std::collections::HashMap<String, String> {
    parse_journal_fields(&emitted(record, true))
        .into_iter()
        .collect()
}

#[test]
fn preempt_record_fields_and_line() {
    let peer = Peer {
        pid: 77,
        uid: 64055,
        gid: 994,
        comm: Some("qemu-system-x86".into()),
        cgroup: Some("/machine.slice/machine-qemu\\x2d2\\x2dnode2.scope".into()),
        vm: Some("node2".into()),
    };
    let mut params = [0u8; 24];
    params[..8].copy_from_slice(&0x2222u64.to_be_bytes());
    params[8..16].copy_from_slice(&0x1111u64.to_be_bytes());
    params[20] = 1;
    let p = pending(pr::pr_out_cdb(pr::OutSa::Preempt, 0, 1, 24), &params);
    let info = DeviceInfo {
        name: Some("sdb".into()),
        wwid: Some("naa.6001405abcdef".into()),
    };
    let record = Record {
        device: Some(&info),
        duration: Duration::from_micros(1234),
        ..record(&peer, &p)
    };
    let fields = journal(&record);
    assert_eq!(fields["PR_ACTION"], "PREEMPT");
    assert_eq!(fields["PR_TYPE"], "wr_ex");
    assert_eq!(fields["PR_SCOPE"], "0");
    assert_eq!(fields["PR_KEY"], "0x0000000000002222");
    assert_eq!(fields["PR_SA_KEY"], "0x0000000000001111");
    assert_eq!(fields["PR_APTPL"], "1");
    assert_eq!(fields["PR_DEVICE"], "8:16");
    assert_eq!(fields["PR_DEVICE_WWID"], "naa.6001405abcdef");
    assert_eq!(fields["PR_VM"], "node2");
    assert_eq!(fields["PR_PEER_PID"], "77");
    assert_eq!(fields["PR_STATUS"], "GOOD");
    assert_eq!(fields["PR_DURATION_US"], "1234");
    assert_eq!(fields["PRIORITY"], "5");
    let line = "PREEMPT type=wr_ex scope=0 key=0x0000000000002222 sa_key=0x0000000000001111 \
                aptpl=1 device=8:16 device_name=sdb device_wwid=naa.6001405abcdef peer_pid=77 \
                peer_uid=64055 peer_gid=994 peer_comm=qemu-system-x86 vm=node2 \
                peer_cgroup=/machine.slice/machine-qemu\\x2d2\\x2dnode2.scope status=GOOD \
                duration_us=1234";
    assert_eq!(fields["MESSAGE"], format!("PR OUT {line}"));
    let stderr = String::from_utf8(emitted(&record, false)).unwrap();
    assert_eq!(stderr, format!("qemu-pr-helper: audit: {line}\n"));
}

#[test]
fn conflict_with_sense_in_words_and_journal_round_trip() {
    let peer = Peer {
        pid: 5,
        comm: Some("two\nlines".into()),
        ..Peer::default()
    };
    let p = pending(pr::pr_in_cdb(pr::InSa::ReadKeys, 24), &[]);
    let record = Record {
        status: status::CHECK_CONDITION,
        sense: Some(sense::SenseCode {
            key: 5,
            asc: 0x20,
            ascq: 0,
        }),
        paths: vec!["8:0".into(), "8:16".into()],
        ..record(&peer, &p)
    };
    let fields = journal(&record);
    assert_eq!(fields["PR_ACTION"], "READ_KEYS");
    assert_eq!(fields["PR_DIRECTION"], "IN");
    assert_eq!(fields["PR_STATUS"], "CHECK_CONDITION");
    let sense = &fields["PR_SENSE"];
    assert!(sense.starts_with("Illegal Request 05/20/00: "), "{sense}");
    assert_eq!(fields["PR_PATHS"], "8:0,8:16");
    // A value with a newline takes the binary form and reads back whole.
    assert_eq!(fields["PR_PEER_COMM"], "two\nlines");
    assert_eq!(fields["SYSLOG_IDENTIFIER"], "qemu-pr-helper");
    assert_eq!(fields["MESSAGE_ID"], MESSAGE_ID);
    assert!(fields["MESSAGE"].starts_with("PR IN READ_KEYS "));
    assert!(!fields.contains_key("PR_KEY"), "no keys for PR IN");
}

#[test]
fn a_missing_journal_drops_and_counts() {
    let config = Config::parse(Some("journal=/nonexistent/pr-audit.sock")).unwrap();
    let audit = Audit::new(config, "t").unwrap();
    let peer = Peer::default();
    let p = pending(pr::pr_out_cdb(pr::OutSa::Register, 0, 0, 24), &[]);
    let record = record(&peer, &p);
    assert!(!audit.emit(&record));
    assert!(!audit.emit(&record));
    assert_eq!((audit.written(), audit.dropped()), (0, 2));
}
